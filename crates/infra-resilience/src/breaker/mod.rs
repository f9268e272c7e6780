//! The circuit breaker: stop calling a dependency that keeps failing, probe it, resume.
//!
//! `settings.rs` holds the public data types, `state.rs` the shared state word and its
//! transitions, `permit.rs` the permits that report outcomes; this file is the handle.

mod permit;
mod registry;
mod settings;
mod state;
mod window;

use std::{
    fmt,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
};

pub use permit::{OwnedPermit, Permit};
use permit::{PermitKind, Ticket};
pub use registry::BreakerRegistry;
pub use settings::{BreakerMetrics, BreakerSettings, BreakerState, StateChange};
use state::{Inner, pack, tagged, unpack};
use tokio::{sync::broadcast, time::Instant};
use window::Window;

use crate::{ResilienceError, counter::StripedCounter, instruments::BreakerInstruments};

/// A named circuit breaker; clones share it.
///
/// The closed path takes no lock, allocates nothing and, while calls succeed, writes nothing
/// shared. Open → half-open happens on a tokio timer when opened inside a runtime (so a
/// rejection reads no clock), otherwise at the first call after the open duration. A call whose future is dropped before
/// it finishes counts as neither success nor failure and frees its probe slot.
///
/// # Metrics
///
/// Its handles are resolved when it is built, so install the recorder first:
/// `infra_circuitbreaker_state{name,state}` (1 for the current state, 0 for the other four),
/// `infra_circuitbreaker_calls_total{name,kind}` (`successful`; `failed`, slow calls included;
/// `ignored`, see [`Permit::ignore`]; `not_permitted`; a cancelled call counts as none) and
/// `infra_circuitbreaker_transitions_total{name,from,to}`. A successful closed call adds one
/// counter increment. Breakers sharing a name share their series: get them from a
/// [`BreakerRegistry`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use infra_resilience::{BreakerSettings, CircuitBreaker, ResilienceError};
///
/// let breaker = CircuitBreaker::new("exchange", BreakerSettings::default().failure_threshold(2));
/// for _ in 0..2 {
///     let _ = breaker.call(async { Err::<(), _>("503") }).await;
/// }
/// let rejected = breaker.call(async { Ok::<_, &str>(1) }).await;
/// assert!(matches!(rejected, Err(ResilienceError::CircuitOpen { .. })));
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.inner.name)
            .field("state", &self.state())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    /// A closed breaker named `name` (the dependency it protects: `binance-rest`, `redis`).
    pub fn new(name: &str, settings: BreakerSettings) -> Self {
        let (changes, _) = broadcast::channel(64);
        let name = crate::names::intern(name);
        Self {
            inner: Arc::new_cyclic(|this| Inner {
                name,
                window: Window::new(settings.window_size),
                settings,
                word: AtomicU64::new(pack(0, BreakerState::Closed)),
                consecutive: AtomicU32::new(0),
                open_until: AtomicU64::new(0),
                timer_armed: AtomicU64::new(u64::MAX),
                probes_left: AtomicU64::new(tagged(u64::MAX, 0)),
                probe_successes: AtomicU64::new(tagged(u64::MAX, 0)),
                epoch: Instant::now(),
                failures: AtomicU64::new(0),
                rejections: StripedCounter::default(),
                cancelled: AtomicU64::new(0),
                changes,
                instruments: BreakerInstruments::new(name),
                this: this.clone(),
            }),
        }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.inner.name
    }

    /// Its settings.
    pub fn settings(&self) -> &BreakerSettings {
        &self.inner.settings
    }

    /// Its state now.
    pub fn state(&self) -> BreakerState {
        let (generation, state) = unpack(self.inner.word.load(Ordering::Acquire));
        // Without a timer, the open state ends at the next call after its duration.
        if state == BreakerState::Open
            && self.inner.timer_armed.load(Ordering::Acquire) != generation
            && self.inner.open_elapsed()
        {
            BreakerState::HalfOpen
        } else {
            state
        }
    }

    /// Asks to make one call: a [`Permit`], or [`ResilienceError::CircuitOpen`].
    #[inline(always)]
    pub fn admit<E>(&self) -> Result<Permit<'_>, ResilienceError<E>> {
        Ok(Permit { inner: &self.inner, ticket: self.ticket()? })
    }

    #[inline(always)]
    fn ticket<E>(&self) -> Result<Ticket, ResilienceError<E>> {
        let inner = &*self.inner;
        match unpack(inner.word.load(Ordering::Acquire)) {
            (generation, BreakerState::Closed) => Ok(inner.ticket(PermitKind::Closed, generation)),
            (generation, BreakerState::ForcedClosed) => Ok(inner.ticket(PermitKind::Untracked, generation)),
            // Open with its timer armed: rejected without reading a clock.
            (generation, BreakerState::Open) if inner.timer_armed.load(Ordering::Relaxed) == generation => {
                Err(inner.reject(Some(inner.reopens_at())))
            }
            _ => inner.admit_slow(),
        }
    }

    /// [`CircuitBreaker::admit`], for a permit that must outlive this borrow.
    pub fn admit_owned<E>(&self) -> Result<OwnedPermit, ResilienceError<E>> {
        let ticket = self.ticket()?;
        Ok(OwnedPermit { breaker: self.clone(), ticket })
    }

    /// Runs `call` if admitted; any `Err` counts as a failure.
    pub async fn call<T, E, Fut>(&self, call: Fut) -> Result<T, ResilienceError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_with(call, |_| true).await
    }

    /// Runs `call` if admitted; an `Err` counts as a failure when `is_failure` says so (a
    /// "not found" may be a healthy answer) and as a success otherwise.
    pub async fn call_with<T, E, Fut>(
        &self,
        call: Fut,
        is_failure: impl Fn(&E) -> bool,
    ) -> Result<T, ResilienceError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let mut permit = self.admit()?;
        let result = call.await;
        // Reported in place: moving the permit out of this future's state into a by-value
        // call cost the closed path a store-forwarding stall.
        permit.finish(result.as_ref().map_or_else(|error| !is_failure(error), |_| true));
        result.map_err(ResilienceError::failed)
    }

    /// Opens it until [`CircuitBreaker::reset`]: every call is rejected.
    pub fn force_open(&self) {
        self.inner.transition_any(BreakerState::ForcedOpen);
    }

    /// Closes it until [`CircuitBreaker::reset`]: every call goes through, nothing is counted.
    pub fn force_closed(&self) {
        self.inner.transition_any(BreakerState::ForcedClosed);
    }

    /// Back to closed with empty counts (totals in the metrics are kept).
    pub fn reset(&self) {
        self.inner.window.clear();
        self.inner.consecutive.store(0, Ordering::Release);
        self.inner.transition_any(BreakerState::Closed);
    }

    /// State changes from now on. A slow receiver may miss some (it sees
    /// `RecvError::Lagged`); [`CircuitBreaker::state`] is always current.
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.inner.changes.subscribe()
    }

    /// A snapshot of its counters.
    pub fn metrics(&self) -> BreakerMetrics {
        let inner = &*self.inner;
        let (window_failures, window_calls) = (inner.window.failures(), inner.window.calls());
        BreakerMetrics {
            name: inner.name,
            state: self.state(),
            failures: inner.failures.load(Ordering::Relaxed),
            rejections: inner.rejections.get(),
            cancelled: inner.cancelled.load(Ordering::Relaxed),
            window_failures,
            window_calls,
            failure_rate: if window_calls == 0 { 0.0 } else { f64::from(window_failures) / f64::from(window_calls) },
            consecutive_failures: inner.consecutive.load(Ordering::Relaxed),
        }
    }
}
