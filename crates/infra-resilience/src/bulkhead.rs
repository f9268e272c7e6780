//! The bulkhead: a bound on concurrent calls to one dependency.

use std::{
    fmt,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::{ResilienceError, instruments::BulkheadInstruments};

/// Lets at most `max_concurrent` calls run at once; the others are rejected at once, or wait
/// up to `max_wait` for a slot. Clones share the slots.
///
/// # Metrics
///
/// `infra_bulkhead_calls_total{name,kind}` (`permitted`, `rejected`) and the gauge
/// `infra_bulkhead_available_concurrent_calls{name}` (free slots; bulkheads sharing a name add
/// up). Handles are resolved when it is built, so install the recorder first.
#[derive(Clone)]
pub struct Bulkhead {
    inner: Arc<Inner>,
}

struct Inner {
    name: &'static str,
    max_concurrent: usize,
    max_wait: Option<Duration>,
    slots: Arc<Semaphore>,
    rejected: AtomicU64,
    instruments: BulkheadInstruments,
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.inner.name)
            .field("max_concurrent", &self.inner.max_concurrent)
            .field("max_wait", &self.inner.max_wait)
            .field("available", &self.available())
            .finish()
    }
}

/// A slot of a [`Bulkhead`], freed when dropped.
#[derive(Debug)]
pub struct BulkheadSlot<'a> {
    _permit: SemaphorePermit<'a>,
    bulkhead: &'a Bulkhead,
}

impl Drop for BulkheadSlot<'_> {
    fn drop(&mut self) {
        self.bulkhead.inner.instruments.released();
    }
}

/// A slot that owns a handle to its bulkhead (tower services), freed when dropped.
#[cfg(feature = "tower")]
#[derive(Debug)]
pub(crate) struct OwnedBulkheadSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    bulkhead: Bulkhead,
}

#[cfg(feature = "tower")]
impl Drop for OwnedBulkheadSlot {
    fn drop(&mut self) {
        self.bulkhead.inner.instruments.released();
    }
}

impl Bulkhead {
    /// A bulkhead named `name` (at least one slot); `max_wait: None` rejects at once when full.
    pub fn new(name: &str, max_concurrent: usize, max_wait: Option<Duration>) -> Self {
        let max_concurrent = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        let name = crate::names::intern(name);
        Self {
            inner: Arc::new(Inner {
                name,
                max_concurrent,
                max_wait,
                slots: Arc::new(Semaphore::new(max_concurrent)),
                rejected: AtomicU64::new(0),
                instruments: BulkheadInstruments::new(name, max_concurrent),
            }),
        }
    }

    /// Free slots now.
    pub fn available(&self) -> usize {
        self.inner.slots.available_permits()
    }

    /// Calls rejected so far.
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }

    /// A slot, or [`ResilienceError::BulkheadFull`].
    pub async fn acquire<E>(&self) -> Result<BulkheadSlot<'_>, ResilienceError<E>> {
        let inner = &*self.inner;
        let slot = match inner.max_wait {
            None => inner.slots.try_acquire().ok(),
            Some(wait) => tokio::time::timeout(wait, inner.slots.acquire()).await.ok().and_then(Result::ok),
        };
        let slot = slot.ok_or_else(|| self.full())?;
        inner.instruments.acquired();
        Ok(BulkheadSlot { _permit: slot, bulkhead: self })
    }

    /// A slot that owns a handle to the bulkhead, taken at once or not at all (tower services).
    #[cfg(feature = "tower")]
    pub(crate) fn try_acquire_owned(&self) -> Option<OwnedBulkheadSlot> {
        let permit = Arc::clone(&self.inner.slots).try_acquire_owned().ok()?;
        self.inner.instruments.acquired();
        Some(OwnedBulkheadSlot { _permit: permit, bulkhead: self.clone() })
    }

    pub(crate) fn full<E>(&self) -> ResilienceError<E> {
        let inner = &*self.inner;
        inner.rejected.fetch_add(1, Ordering::Relaxed);
        inner.instruments.rejected.increment(1);
        ResilienceError::BulkheadFull { bulkhead: inner.name, max_concurrent: inner.max_concurrent, attempts: 1 }
    }

    /// Runs `call` in a slot.
    pub async fn call<T, E, Fut>(&self, call: Fut) -> Result<T, ResilienceError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let _slot = self.acquire().await?;
        call.await.map_err(ResilienceError::failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rejects_or_waits_when_full() {
        let rejecting = Bulkhead::new("orders", 1, None);
        let held = rejecting.acquire::<()>().await.unwrap();
        let error = rejecting.acquire::<()>().await.unwrap_err();
        assert_eq!(error.to_string(), "bulkhead `orders` is full (1 concurrent calls)");
        assert_eq!(rejecting.rejected(), 1);
        drop(held);
        assert_eq!(rejecting.call(async { Ok::<_, ()>(7) }).await.unwrap(), 7);

        let waiting = Bulkhead::new("quotes", 1, Some(Duration::from_millis(100)));
        let held = waiting.acquire::<()>().await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(waiting.acquire::<()>().await.is_err(), "no slot within 100 ms");
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        let release = async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(held);
        };
        let (slot, ()) = tokio::join!(waiting.acquire::<()>(), release);
        assert!(slot.is_ok(), "a slot freed within the wait");
    }
}
