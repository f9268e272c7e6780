//! The in-process backend: a sharded concurrent map, expiry checked on every read and expired
//! entries reclaimed in the background.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    fmt,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use dashmap::{DashMap, mapref::entry::Entry as MapEntry};
use futures::{StreamExt, stream::BoxStream};
use tokio::{sync::Notify, time::Instant};

use crate::{
    CasOutcome, Expected, Number, Result, StateError, StateFuture, StateStore, StateValue, Ttl, Versioned,
    store::{check_key, ttl_millis},
    value::format_float,
};

/// An in-process [`StateStore`]: the embedded default for development and tests.
///
/// Reads take no global lock (the map is sharded and read-locked per shard). A key past its TTL
/// is never returned, to the millisecond, even before it is reclaimed; a background task
/// (started on the first TTL, on the current tokio runtime) removes expired entries so memory
/// stays flat under a stream of short-lived keys. Time is tokio's clock, so tests can pause it.
///
/// Each store is its own namespace: two stores never share keys. Data lives as long as the
/// store and its clones.
///
/// Differences from Redis, by nature: [`StateStore::set_many`] writes key by key, so a reader may
/// see part of a batch (Redis applies a batch at once).
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    namespace: String,
    map: DashMap<String, Entry>,
    expiries: Mutex<BinaryHeap<Reverse<Deadline>>>,
    wake_reaper: Arc<Notify>,
    reaper_started: AtomicBool,
    generation: AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Wakes the reaper so it notices the store is gone and ends.
        self.wake_reaper.notify_one();
    }
}

struct Entry {
    value: StateValue,
    expires_at: Option<Instant>,
    /// Which TTL assignment this entry carries, so a stale deadline never removes a newer value.
    generation: u64,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    at: Instant,
    generation: u64,
    key: String,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("namespace", &self.inner.namespace)
            .field("stored_entries", &self.inner.map.len())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new("default")
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                namespace: namespace.into(),
                map: DashMap::new(),
                expiries: Mutex::new(BinaryHeap::new()),
                wake_reaper: Arc::new(Notify::new()),
                reaper_started: AtomicBool::new(false),
                // 0 marks entries that never had a TTL, so no deadline can match them.
                generation: AtomicU64::new(1),
            }),
        }
    }

    /// Entries held in memory, expired ones not yet reclaimed included.
    pub fn stored_entries(&self) -> usize {
        self.inner.map.len()
    }

    /// Deadlines waiting for the background reclaimer (one per TTL assignment).
    pub fn pending_expiries(&self) -> usize {
        self.inner.expiries.lock().map(|heap| heap.len()).unwrap_or_default()
    }

    fn entry_value(&self, value: StateValue, ttl: Option<(Duration, u64)>, key: &str, now: Option<Instant>) -> Entry {
        match ttl {
            // The common case stays cheap: no clock read, no shared counter.
            None => Entry { value, expires_at: None, generation: 0 },
            Some((_, ms)) => {
                let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
                let at = now.unwrap_or_else(Instant::now) + Duration::from_millis(ms);
                self.schedule(key, at, generation);
                Entry { value, expires_at: Some(at), generation }
            }
        }
    }

    fn schedule(&self, key: &str, at: Instant, generation: u64) {
        let earliest = {
            let mut heap = self.inner.expiries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let earliest = heap.peek().is_none_or(|Reverse(first)| at < first.at);
            heap.push(Reverse(Deadline { at, generation, key: key.to_owned() }));
            earliest
        };
        self.start_reaper();
        if earliest {
            self.inner.wake_reaper.notify_one();
        }
    }

    fn start_reaper(&self) {
        if self.inner.reaper_started.load(Ordering::Relaxed) {
            return;
        }
        // Outside a runtime nothing is reclaimed until a TTL is set from inside one; reads stay
        // correct either way.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.inner.reaper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        runtime.spawn(reap(Arc::downgrade(&self.inner), self.inner.wake_reaper.clone()));
    }

    fn ttl_of(key: &str, ttl: Option<Duration>) -> Result<Option<(Duration, u64)>> {
        ttl.map(|ttl| ttl_millis(key, ttl).map(|ms| (ttl, ms))).transpose()
    }

    fn get_now(&self, key: &str) -> Result<Option<StateValue>> {
        check_key(key)?;
        Ok(self.inner.map.get(key).and_then(|entry| {
            // Reading the clock costs more than the lookup; only entries with a TTL need it.
            if entry.expires_at.is_none() || entry.is_live(Instant::now()) { Some(entry.value.clone()) } else { None }
        }))
    }

    fn set_now(&self, key: &str, value: StateValue, ttl: Option<Duration>) -> Result<()> {
        check_key(key)?;
        let ttl = Self::ttl_of(key, ttl)?;
        let entry = self.entry_value(value, ttl, key, None);
        // Overwriting (prices, positions) is the common case: it needs no owned copy of the key.
        match self.inner.map.get_mut(key) {
            Some(mut slot) => *slot = entry,
            None => {
                self.inner.map.insert(key.to_owned(), entry);
            }
        }
        Ok(())
    }

    fn increment_now(&self, key: &str, by: Number) -> Result<Number> {
        check_key(key)?;
        let now = Instant::now();
        let mut slot = self.inner.map.entry(key.to_owned()).or_insert_with(|| Entry {
            value: StateValue::from_json_text("0"),
            expires_at: None,
            generation: 0,
        });
        if !slot.is_live(now) {
            *slot = Entry { value: StateValue::from_json_text("0"), expires_at: None, generation: 0 };
        }
        let text = slot.value.as_str();
        let (result, stored) = match by {
            Number::Int(by) => {
                let current: i64 = text.parse().map_err(|_| StateError::NotAnInteger { key: key.to_owned(), by })?;
                let sum = current
                    .checked_add(by)
                    .ok_or_else(|| StateError::Overflow { key: key.to_owned(), by: by.to_string() })?;
                (Number::Int(sum), sum.to_string())
            }
            Number::Float(by) => {
                let current: f64 = serde_json::from_str::<f64>(text)
                    .map_err(|_| StateError::NotANumber { key: key.to_owned(), by })?;
                let sum = current + by;
                if !sum.is_finite() {
                    return Err(StateError::Overflow { key: key.to_owned(), by: by.to_string() });
                }
                (Number::Float(sum), format_float(sum))
            }
        };
        slot.value = StateValue::from_json_text(stored);
        Ok(result)
    }

    fn compare_and_swap_now(
        &self,
        key: &str,
        expected: &Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome> {
        check_key(key)?;
        let ttl = Self::ttl_of(key, ttl)?;
        let now = Instant::now();
        let slot = self.inner.map.entry(key.to_owned());
        let current = match &slot {
            MapEntry::Occupied(o) if o.get().is_live(now) => Some(o.get().value.clone()),
            _ => None,
        };
        let matches = match (expected, &current) {
            (Expected::Absent, None) => true,
            (Expected::Value(want), Some(have)) => want.as_str() == have.as_str(),
            (Expected::Version(want), Some(have)) => *want == have.version(),
            _ => false,
        };
        if !matches {
            return Ok(CasOutcome::Conflict(current.map(|value| Versioned { version: value.version(), value })));
        }
        let version = value.version();
        let entry = self.entry_value(value, ttl, key, Some(now));
        slot.insert(entry);
        Ok(CasOutcome::Swapped(version))
    }
}

/// Reclaims expired entries until the store is dropped.
async fn reap(store: Weak<Inner>, wake_reaper: Arc<Notify>) {
    loop {
        let Some(inner) = store.upgrade() else { return };
        let next = {
            let mut heap = inner.expiries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            while heap.peek().is_some_and(|Reverse(first)| first.at <= now) {
                let Some(Reverse(due)) = heap.pop() else { break };
                inner.map.remove_if(&due.key, |_, entry| entry.generation == due.generation && !entry.is_live(now));
            }
            heap.peek().map(|Reverse(first)| first.at)
        };
        let wake = wake_reaper.notified();
        // Hold only a weak reference while waiting, so dropping the store ends this task.
        drop(inner);
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = wake => {}
                }
            }
            None => wake.await,
        }
    }
}

fn ready<'a, T>(result: Result<T>) -> StateFuture<'a, T> {
    StateFuture::ready(result)
}

impl StateStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateValue>> {
        ready(self.get_now(key))
    }

    fn set<'a>(&'a self, key: &'a str, value: StateValue, ttl: Option<Duration>) -> StateFuture<'a, ()> {
        ready(self.set_now(key, value, ttl))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        ready(check_key(key).map(|()| {
            let now = Instant::now();
            self.inner.map.remove(key).is_some_and(|(_, entry)| entry.is_live(now))
        }))
    }

    fn exists<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        ready(self.get_now(key).map(|value| value.is_some()))
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StateFuture<'a, Ttl> {
        ready(check_key(key).map(|()| {
            let now = Instant::now();
            match self.inner.map.get(key) {
                Some(entry) if entry.is_live(now) => match entry.expires_at {
                    Some(at) => Ttl::Expires(Duration::from_millis((at - now).as_millis() as u64)),
                    None => Ttl::Persistent,
                },
                _ => Ttl::Missing,
            }
        }))
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StateFuture<'a, bool> {
        ready((|| {
            check_key(key)?;
            let ms = ttl_millis(key, ttl)?;
            let now = Instant::now();
            let Some(mut entry) = self.inner.map.get_mut(key) else { return Ok(false) };
            if !entry.is_live(now) {
                return Ok(false);
            }
            let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
            let at = now + Duration::from_millis(ms);
            entry.expires_at = Some(at);
            entry.generation = generation;
            drop(entry);
            self.schedule(key, at, generation);
            Ok(true)
        })())
    }

    fn set_if_not_exists<'a>(
        &'a self,
        key: &'a str,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, bool> {
        ready((|| {
            check_key(key)?;
            let ttl = Self::ttl_of(key, ttl)?;
            let now = Instant::now();
            match self.inner.map.entry(key.to_owned()) {
                MapEntry::Occupied(slot) if slot.get().is_live(now) => Ok(false),
                MapEntry::Occupied(mut slot) => {
                    slot.insert(self.entry_value(value, ttl, key, Some(now)));
                    Ok(true)
                }
                MapEntry::Vacant(slot) => {
                    slot.insert(self.entry_value(value, ttl, key, Some(now)));
                    Ok(true)
                }
            }
        })())
    }

    fn increment<'a>(&'a self, key: &'a str, by: Number) -> StateFuture<'a, Number> {
        ready(self.increment_now(key, by))
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StateFuture<'a, Vec<Option<StateValue>>> {
        ready(keys.iter().map(|key| self.get_now(key)).collect())
    }

    fn set_many<'a>(&'a self, entries: &'a [(&'a str, StateValue)], ttl: Option<Duration>) -> StateFuture<'a, ()> {
        ready((|| {
            // Validate everything first so a bad entry leaves the store untouched.
            for (key, _) in entries {
                check_key(key)?;
                Self::ttl_of(key, ttl)?;
            }
            for (key, value) in entries {
                self.set_now(key, value.clone(), ttl)?;
            }
            Ok(())
        })())
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<String>> {
        let now = Instant::now();
        let keys: Vec<Result<String>> = self
            .inner
            .map
            .iter()
            .filter(|entry| entry.key().starts_with(prefix) && entry.value().is_live(now))
            .map(|entry| Ok(entry.key().clone()))
            .collect();
        futures::stream::iter(keys).boxed()
    }

    fn get_versioned<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<Versioned>> {
        ready(self.get_now(key).map(|value| value.map(|value| Versioned { version: value.version(), value })))
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, CasOutcome> {
        ready(self.compare_and_swap_now(key, &expected, value, ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn works_outside_a_runtime_without_reclaiming() {
        let store = MemoryStore::new("t");
        store.set_now("k", StateValue::json(&1).unwrap(), Some(Duration::from_secs(60))).unwrap();
        assert_eq!(store.get_now("k").unwrap().unwrap().as_str(), "1");
        assert_eq!(store.pending_expiries(), 1);
    }
}
