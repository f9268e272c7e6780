//! Expiry of the memory store: the deadline heap, its compaction and the reaper task.
//!
//! Lock order. Two kinds of lock: the map's shard locks (every DashMap `Ref`, `RefMut` and `Entry`
//! holds one) and the expiry heap's mutex. No code holds both at once, nor two shards at once: a
//! writer changes its entry, releases the shard, then schedules the deadline; the reaper pops the
//! due deadlines, releases the heap, then removes entries; compaction takes the heap out,
//! releases it, checks the deadlines against the map, then merges the survivors back. Holding a
//! shard while taking the heap in one place and the heap while taking a shard in another let two
//! runtime workers deadlock each other (issue #11).
//!
//! Deadlines. Every TTL assignment pushes a deadline tagged with a fresh generation; an overwrite
//! leaves the old one in the heap, harmless (the reaper removes an entry only if the generations
//! match) but taking memory. Once the heap holds more than twice the entries with a TTL plus
//! `SLACK`, it is compacted: deadlines whose generation no longer matches their entry are
//! dropped. That keeps the heap proportional to the keys with a TTL for an amortised O(1) map
//! lookup per write. A deadline is pushed only after its entry is in the map, so compaction never
//! drops one that is about to become current.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    sync::{Arc, MutexGuard, PoisonError, Weak, atomic::Ordering},
};

use tokio::{sync::Notify, time::Instant};

use super::{Entry, Inner, MemoryStore};

/// Deadlines the heap may hold beyond twice the entries with a TTL before it is compacted; keeps
/// compaction rare when few keys carry a TTL.
const SLACK: usize = 32;

/// Deadlines the reaper handles per turn, so a burst of expiries does not hold a runtime worker.
const REAP_BATCH: usize = 1024;

impl Inner {
    pub(super) fn lock_expiries(&self) -> MutexGuard<'_, BinaryHeap<Reverse<Deadline>>> {
        self.expiries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `pending` deadlines are more than the entries with a TTL justify.
    pub(super) fn too_many_deadlines(&self, pending: usize) -> bool {
        pending > self.ttl_entries.load(Ordering::Relaxed).saturating_mul(2).saturating_add(SLACK)
    }

    /// Counts a write that replaced an entry with a TTL (`had_ttl`) or without by one with a TTL
    /// (`has_ttl`) or without. Call while the shard is still held; returns whether an entry with
    /// a TTL went away, for [`Inner::ttl_entries_gone`] once the shard is released.
    pub(super) fn count_replacement(&self, had_ttl: bool, has_ttl: bool) -> bool {
        if has_ttl && !had_ttl {
            self.ttl_entries.fetch_add(1, Ordering::Relaxed);
        }
        had_ttl && !has_ttl
    }

    /// `gone` entries with a TTL left the map or lost their TTL; their deadlines may now be too
    /// many. Takes the heap lock: never call it while holding a shard.
    pub(super) fn ttl_entries_gone(&self, gone: usize) {
        self.ttl_entries.fetch_sub(gone, Ordering::Relaxed);
        self.compact_if_needed();
    }

    pub(super) fn compact_if_needed(&self) {
        let pending = self.lock_expiries().len();
        if self.too_many_deadlines(pending) {
            self.compact();
        }
    }

    /// Drops the deadlines whose entry is gone or carries another generation. O(heap) map
    /// lookups, run only once the heap outgrew twice the TTL entries plus [`SLACK`]: amortised
    /// O(1) per write.
    pub(super) fn compact(&self) {
        if self.compacting.swap(true, Ordering::Acquire) {
            return;
        }
        // Taken out so no shard is read under the heap lock (see the lock order above); writes
        // meanwhile push into the emptied heap and the two are merged below.
        let mut deadlines = std::mem::take(&mut *self.lock_expiries()).into_vec();
        deadlines.retain(|Reverse(deadline)| {
            self.map.get(deadline.key.as_str()).is_some_and(|entry| entry.generation == deadline.generation)
        });
        // Give back the memory of a heap that once held many more deadlines.
        if deadlines.capacity() > 4 * deadlines.len() + SLACK {
            deadlines.shrink_to(2 * deadlines.len() + SLACK);
        }
        let mut kept = BinaryHeap::from(deadlines);
        self.lock_expiries().append(&mut kept);
        self.compacting.store(false, Ordering::Release);
        // The reaper may have found the heap empty meanwhile and be waiting without a deadline.
        self.wake_reaper.notify_one();
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Deadline {
    at: Instant,
    generation: u64,
    key: String,
}

impl MemoryStore {
    /// Pushes a deadline; the entry it names must already be in the map, and no shard held.
    pub(super) fn schedule(&self, key: &str, at: Instant, generation: u64) {
        let (earliest, compact) = {
            let mut heap = self.inner.lock_expiries();
            let earliest = heap.peek().is_none_or(|Reverse(first)| at < first.at);
            heap.push(Reverse(Deadline { at, generation, key: key.to_owned() }));
            (earliest, self.inner.too_many_deadlines(heap.len()))
        };
        self.start_reaper();
        if earliest {
            self.inner.wake_reaper.notify_one();
        }
        if compact {
            self.inner.compact();
        }
    }

    pub(super) fn start_reaper(&self) {
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
}

/// Reclaims expired entries until the store is dropped.
async fn reap(store: Weak<Inner>, wake_reaper: Arc<Notify>) {
    let mut due = Vec::new();
    loop {
        let Some(inner) = store.upgrade() else { return };
        let now = Instant::now();
        let next = {
            let mut heap = inner.lock_expiries();
            while due.len() < REAP_BATCH && heap.peek().is_some_and(|Reverse(first)| first.at <= now) {
                let Some(Reverse(deadline)) = heap.pop() else { break };
                due.push(deadline);
            }
            heap.peek().map(|Reverse(first)| first.at)
        };
        // The heap lock is released before any shard is taken (see the lock order above).
        let more_due = due.len() == REAP_BATCH;
        let mut removed = 0;
        for deadline in due.drain(..) {
            let expired = |_: &String, entry: &Entry| entry.generation == deadline.generation && !entry.is_live(now);
            if inner.map.remove_if(deadline.key.as_str(), expired).is_some() {
                removed += 1;
            }
        }
        if removed > 0 {
            inner.ttl_entries_gone(removed);
        }
        if more_due {
            drop(inner);
            tokio::task::yield_now().await;
            continue;
        }
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
