//! The in-process backend: a sharded concurrent map, expiry checked on every read and expired
//! entries reclaimed in the background (`expiry.rs`: deadlines, compaction, the reaper, and the
//! lock order between the map and the deadline heap).

mod expiry;

use expiry::Deadline;

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use dashmap::{DashMap, mapref::entry::Entry as MapEntry};
use futures::{StreamExt, stream::BoxStream};
use tokio::{sync::Notify, time::Instant};

use crate::{
    CasOutcome, Expected, Number, Result, StateError, StateFuture, StateStore, StateValue, Ttl, Versioned,
    instruments::{Op, OpCounters},
    store::{check_entry, check_key, entry_is_valid, ttl_millis},
    value::format_float,
};

/// An in-process [`StateStore`]: the embedded default for development and tests.
///
/// Reads take no global lock (the map is sharded and read-locked per shard). A key past its TTL
/// is never returned, to the millisecond, even before it is reclaimed; a background task
/// (started on the first TTL, on the current tokio runtime) removes expired entries so memory
/// stays flat under a stream of short-lived keys, and the deadlines it waits on stay
/// proportional to the keys holding a TTL whatever the write pattern. Time is tokio's clock, so
/// tests can pause it.
///
/// Each store is its own namespace: two stores never share keys. Data lives as long as the
/// store and its clones.
///
/// Differences from Redis, by nature: [`StateStore::set_many`] writes key by key, so a reader may
/// see part of a batch (Redis applies a batch at once).
///
/// Metrics: `infra_state_operations_total{op, backend="memory", outcome}` (see the crate docs).
/// The handles are resolved in [`MemoryStore::new`], so install the recorder before building
/// the store.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    namespace: String,
    map: DashMap<String, Entry>,
    expiries: Mutex<BinaryHeap<Reverse<Deadline>>>,
    /// Entries in the map with a TTL, expired ones not yet reclaimed included: what the heap is
    /// measured against. Raised before (or while) such an entry is visible and lowered after it
    /// is gone, so it never drops below the true count.
    ttl_entries: AtomicUsize,
    /// Set while a compaction runs, so concurrent triggers do not repeat it.
    compacting: AtomicBool,
    wake_reaper: Arc<Notify>,
    reaper_started: AtomicBool,
    generation: AtomicU64,
    counters: OpCounters,
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

    /// The deadline to schedule once this entry is in the map.
    fn deadline(&self) -> Option<(Instant, u64)> {
        self.expires_at.map(|at| (at, self.generation))
    }
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
    /// An empty store. Resolves its metric handles with the recorder in effect now.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                namespace: namespace.into(),
                map: DashMap::new(),
                expiries: Mutex::new(BinaryHeap::new()),
                ttl_entries: AtomicUsize::new(0),
                compacting: AtomicBool::new(false),
                wake_reaper: Arc::new(Notify::new()),
                reaper_started: AtomicBool::new(false),
                // 0 marks entries that never had a TTL, so no deadline can match them.
                generation: AtomicU64::new(1),
                counters: OpCounters::new("memory"),
            }),
        }
    }

    /// Entries held in memory, expired ones not yet reclaimed included.
    pub fn stored_entries(&self) -> usize {
        self.inner.map.len()
    }

    /// Deadlines waiting for the background reclaimer: one per TTL assignment, until stale ones
    /// (of keys overwritten, deleted or given another TTL) are dropped. Between writes there are
    /// at most twice the stored entries with a TTL, plus 32.
    pub fn pending_expiries(&self) -> usize {
        self.inner.lock_expiries().len()
    }

    fn entry_value(&self, value: StateValue, ttl: Option<(Duration, u64)>, now: Option<Instant>) -> Entry {
        match ttl {
            // The common case stays cheap: no clock read, no shared counter.
            None => Entry { value, expires_at: None, generation: 0 },
            Some((_, ms)) => {
                let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
                let at = now.unwrap_or_else(Instant::now) + Duration::from_millis(ms);
                Entry { value, expires_at: Some(at), generation }
            }
        }
    }

    /// The bookkeeping of a write, once its shard is released: schedules the new entry's
    /// deadline, or counts the TTL it removed.
    fn after_write(&self, key: &str, deadline: Option<(Instant, u64)>, lost_ttl: bool) {
        if let Some((at, generation)) = deadline {
            self.schedule(key, at, generation);
        } else if lost_ttl {
            self.inner.ttl_entries_gone(1);
        }
    }

    fn ttl_of(key: &str, ttl: Option<Duration>) -> Result<Option<(Duration, u64)>> {
        ttl.map(|ttl| ttl_millis(key, ttl).map(|ms| (ttl, ms))).transpose()
    }

    #[inline(always)]
    fn get_now(&self, key: &str) -> Result<Option<StateValue>> {
        check_key(key)?;
        Ok(self.inner.map.get(key).and_then(|entry| {
            // Reading the clock costs more than the lookup; only entries with a TTL need it.
            if entry.expires_at.is_none() || entry.is_live(Instant::now()) { Some(entry.value.clone()) } else { None }
        }))
    }

    #[inline(always)]
    fn set_now(&self, key: &str, value: StateValue, ttl: Option<Duration>) -> Result<()> {
        check_entry(key, &value)?;
        match ttl {
            None => {
                self.overwrite(key, value);
                Ok(())
            }
            Some(ttl) => self.set_with_ttl(key, value, ttl),
        }
    }

    /// A `set` without a TTL, the common case: it costs no more than a map overwrite (no clock
    /// read, no shared counter, no heap unless the entry replaced had a TTL), and is inlined
    /// into `set`, the rarer paths staying out of line (issue #11).
    #[inline(always)]
    fn overwrite(&self, key: &str, value: StateValue) {
        // Overwriting (prices, positions) needs no owned copy of the key; field by field, so the
        // new entry is not built and then copied into the slot.
        let lost_ttl = match self.inner.map.get_mut(key) {
            Some(mut slot) => {
                slot.value = value;
                slot.generation = 0;
                slot.expires_at.take().is_some()
            }
            None => self.insert_absent(key, Entry { value, expires_at: None, generation: 0 }),
        };
        if lost_ttl {
            self.inner.ttl_entries_gone(1);
        }
    }

    /// Stores `entry` under a key `get_mut` did not find; returns whether a TTL went away.
    #[cold]
    #[inline(never)]
    fn insert_absent(&self, key: &str, entry: Entry) -> bool {
        self.replace(self.inner.map.entry(key.to_owned()), entry)
    }

    #[inline(never)]
    fn set_with_ttl(&self, key: &str, value: StateValue, ttl: Duration) -> Result<()> {
        let ms = ttl_millis(key, ttl)?;
        let entry = self.entry_value(value, Some((ttl, ms)), None);
        let deadline = entry.deadline();
        match self.inner.map.get_mut(key) {
            Some(mut slot) => {
                self.inner.count_replacement(slot.expires_at.is_some(), true);
                *slot = entry;
            }
            None => {
                self.replace(self.inner.map.entry(key.to_owned()), entry);
            }
        }
        // Scheduled once the shard is released (see the lock order).
        self.after_write(key, deadline, false);
        Ok(())
    }

    fn increment_now(&self, key: &str, by: Number) -> Result<Number> {
        check_key(key)?;
        let now = Instant::now();
        let zero = || Entry { value: StateValue::from_json_text("0"), expires_at: None, generation: 0 };
        // Nothing is written unless the sum is valid: a failed increment leaves a missing or
        // expired key as it was (Redis writes nothing either).
        let (outcome, lost_ttl) = match self.inner.map.entry(key.to_owned()) {
            MapEntry::Occupied(mut live) if live.get().is_live(now) => (Self::add(live.get_mut(), key, by), false),
            // An expired entry starts again at 0 without a TTL (its TTL is counted once the shard
            // is released).
            MapEntry::Occupied(mut expired) => {
                let mut entry = zero();
                let outcome = Self::add(&mut entry, key, by);
                if outcome.is_ok() {
                    expired.insert(entry);
                }
                let lost_ttl = outcome.is_ok();
                (outcome, lost_ttl)
            }
            MapEntry::Vacant(vacant) => {
                let mut entry = zero();
                let outcome = Self::add(&mut entry, key, by);
                if outcome.is_ok() {
                    vacant.insert(entry);
                }
                (outcome, false)
            }
        };
        if lost_ttl {
            self.inner.ttl_entries_gone(1);
        }
        outcome
    }

    fn add(slot: &mut Entry, key: &str, by: Number) -> Result<Number> {
        let text = slot.value.as_str();
        let (result, stored) = match by {
            Number::Int(by) => {
                let current =
                    redis_integer(text).ok_or_else(|| StateError::NotAnInteger { key: key.to_owned(), by })?;
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
        check_entry(key, &value)?;
        let ttl = Self::ttl_of(key, ttl)?;
        let now = Instant::now();
        let (version, deadline, lost_ttl) = {
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
            let entry = self.entry_value(value, ttl, Some(now));
            let deadline = entry.deadline();
            (version, deadline, self.replace(slot, entry))
        };
        self.after_write(key, deadline, lost_ttl);
        Ok(CasOutcome::Swapped(version))
    }

    /// Stores `entry` in the map slot held and releases it; returns whether a TTL went away.
    fn replace(&self, slot: MapEntry<'_, String, Entry>, entry: Entry) -> bool {
        let has_ttl = entry.expires_at.is_some();
        match slot {
            MapEntry::Occupied(mut slot) => {
                let had_ttl = slot.insert(entry).expires_at.is_some();
                self.inner.count_replacement(had_ttl, has_ttl)
            }
            MapEntry::Vacant(slot) => {
                self.inner.count_replacement(false, has_ttl);
                slot.insert(entry);
                false
            }
        }
    }
}

/// `text` as Redis's `INCRBY` reads an integer: only the canonical form (no `+`, no leading
/// zero, no `-0`), which `str::parse` alone would widen.
fn redis_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = match digits.as_bytes() {
        [b'0'] => digits.len() == text.len(),
        [b'1'..=b'9', ..] => true,
        _ => false,
    };
    if canonical { text.parse().ok() } else { None }
}

impl MemoryStore {
    /// A `set` with a TTL or a bad entry, out of line.
    #[inline(never)]
    fn set_checked(&self, key: &str, value: StateValue, ttl: Option<Duration>) -> StateFuture<'_, ()> {
        self.ready(Op::Set, self.set_now(key, value, ttl))
    }

    /// Counts the call and hands its result back, ready.
    #[inline(always)]
    fn ready<'a, T>(&self, op: Op, result: Result<T>) -> StateFuture<'a, T> {
        // Counted once the future is built, so the (large) result is not kept across the call.
        let failed = result.is_err();
        let future = StateFuture::ready(result);
        self.inner.counters.count_outcome(op, failed);
        future
    }
}

impl StateStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateValue>> {
        self.ready(Op::Get, self.get_now(key))
    }

    fn set<'a>(&'a self, key: &'a str, value: StateValue, ttl: Option<Duration>) -> StateFuture<'a, ()> {
        // The common case (a valid entry, no TTL) alone inline, knowing it succeeds: no `Result`
        // to carry, no outcome to pick (issue #11).
        if ttl.is_none() && entry_is_valid(key, &value) {
            self.overwrite(key, value);
            self.inner.counters.count_outcome(Op::Set, false);
            return StateFuture::ready(Ok(()));
        }
        self.set_checked(key, value, ttl)
    }

    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        self.ready(
            Op::Delete,
            check_key(key).map(|()| {
                let now = Instant::now();
                let Some((_, entry)) = self.inner.map.remove(key) else { return false };
                if entry.expires_at.is_some() {
                    self.inner.ttl_entries_gone(1);
                }
                entry.is_live(now)
            }),
        )
    }

    fn exists<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        self.ready(Op::Exists, self.get_now(key).map(|value| value.is_some()))
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StateFuture<'a, Ttl> {
        self.ready(
            Op::Ttl,
            check_key(key).map(|()| {
                let now = Instant::now();
                match self.inner.map.get(key) {
                    Some(entry) if entry.is_live(now) => match entry.expires_at {
                        Some(at) => Ttl::Expires(Duration::from_millis((at - now).as_millis() as u64)),
                        None => Ttl::Persistent,
                    },
                    _ => Ttl::Missing,
                }
            }),
        )
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StateFuture<'a, bool> {
        self.ready(
            Op::Expire,
            (|| {
                check_key(key)?;
                let ms = ttl_millis(key, ttl)?;
                let now = Instant::now();
                let Some(mut entry) = self.inner.map.get_mut(key) else { return Ok(false) };
                if !entry.is_live(now) {
                    return Ok(false);
                }
                let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
                let at = now + Duration::from_millis(ms);
                self.inner.count_replacement(entry.expires_at.is_some(), true);
                entry.expires_at = Some(at);
                entry.generation = generation;
                // Scheduled once the shard is released (see the lock order).
                drop(entry);
                self.schedule(key, at, generation);
                Ok(true)
            })(),
        )
    }

    fn set_if_not_exists<'a>(
        &'a self,
        key: &'a str,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, bool> {
        self.ready(
            Op::SetIfAbsent,
            (|| {
                check_entry(key, &value)?;
                let ttl = Self::ttl_of(key, ttl)?;
                let now = Instant::now();
                let (deadline, lost_ttl) = {
                    let slot = self.inner.map.entry(key.to_owned());
                    if let MapEntry::Occupied(live) = &slot
                        && live.get().is_live(now)
                    {
                        return Ok(false);
                    }
                    let entry = self.entry_value(value, ttl, Some(now));
                    let deadline = entry.deadline();
                    (deadline, self.replace(slot, entry))
                };
                self.after_write(key, deadline, lost_ttl);
                Ok(true)
            })(),
        )
    }

    fn increment<'a>(&'a self, key: &'a str, by: Number) -> StateFuture<'a, Number> {
        self.ready(Op::Increment, self.increment_now(key, by))
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StateFuture<'a, Vec<Option<StateValue>>> {
        self.ready(Op::GetMany, keys.iter().map(|key| self.get_now(key)).collect())
    }

    fn set_many<'a>(&'a self, entries: &'a [(&'a str, StateValue)], ttl: Option<Duration>) -> StateFuture<'a, ()> {
        self.ready(
            Op::SetMany,
            (|| {
                // Validate everything first so a bad entry leaves the store untouched.
                for (key, value) in entries {
                    check_entry(key, value)?;
                    Self::ttl_of(key, ttl)?;
                }
                for (key, value) in entries {
                    self.set_now(key, value.clone(), ttl)?;
                }
                Ok(())
            })(),
        )
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<String>> {
        // Collected at once and never failing: counted here.
        self.inner.counters.count_outcome(Op::Scan, false);
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
        self.ready(
            Op::GetVersioned,
            self.get_now(key).map(|value| value.map(|value| Versioned { version: value.version(), value })),
        )
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, CasOutcome> {
        self.ready(Op::CompareAndSwap, self.compare_and_swap_now(key, &expected, value, ttl))
    }

    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: Expected) -> StateFuture<'a, bool> {
        self.ready(
            Op::CompareAndDelete,
            check_key(key).map(|()| {
                let now = Instant::now();
                // `remove_if` decides under the shard's write lock: atomic against every writer.
                let matches = |_: &String, entry: &Entry| {
                    entry.is_live(now)
                        && match &expected {
                            Expected::Absent => false,
                            Expected::Value(want) => want.as_str() == entry.value.as_str(),
                            Expected::Version(want) => *want == entry.value.version(),
                        }
                };
                let Some((_, entry)) = self.inner.map.remove_if(key, matches) else { return false };
                if entry.expires_at.is_some() {
                    self.inner.ttl_entries_gone(1);
                }
                true
            }),
        )
    }

    fn ping(&self) -> StateFuture<'_, Duration> {
        self.ready(Op::Ping, Ok(Duration::ZERO))
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
