//! A counter that threads can bump at once without sharing a cache line or a lock-prefixed
//! instruction: each thread owns a stripe while it lives.

use std::{
    cell::Cell,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

/// Threads with a stripe of their own; more threads share the last stripe.
const OWNED_STRIPES: usize = 32;

#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

/// Adds are a plain load and store on the calling thread's own stripe (exact: one writer per
/// stripe); reads sum the stripes.
#[derive(Debug)]
pub(crate) struct StripedCounter {
    stripes: Box<[Stripe]>,
}

impl Default for StripedCounter {
    fn default() -> Self {
        Self { stripes: (0..=OWNED_STRIPES).map(|_| Stripe::default()).collect() }
    }
}

/// Stripe indices free to take; a thread returns its index when it exits.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static NEXT: Mutex<usize> = Mutex::new(0);

struct Slot(usize);

impl Slot {
    fn take() -> Self {
        if let Some(index) = FREE.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Self(index);
        }
        let mut next = NEXT.lock().unwrap_or_else(PoisonError::into_inner);
        let index = (*next).min(OWNED_STRIPES);
        *next = (*next + 1).min(OWNED_STRIPES);
        Self(index)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Anything this thread still counts (other thread-local destructors) goes to the shared
        // stripe: the owned one may belong to another thread from now on.
        let _ = INDEX.try_with(|index| index.set(OWNED_STRIPES));
        if self.0 < OWNED_STRIPES {
            FREE.lock().unwrap_or_else(PoisonError::into_inner).push(self.0);
        }
    }
}

thread_local! {
    static SLOT: Slot = Slot::take();
    // A cache of the index, readable without the lazy-initialisation check of `SLOT`.
    static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn stripe_index() -> usize {
    let cached = INDEX.get();
    if cached != usize::MAX {
        return cached;
    }
    // During thread teardown SLOT may be gone: count on the shared stripe then.
    let index = SLOT.try_with(|slot| slot.0).unwrap_or(OWNED_STRIPES);
    INDEX.set(index);
    index
}

impl StripedCounter {
    #[inline]
    pub(crate) fn add(&self) {
        let index = stripe_index();
        let stripe = &self.stripes[index].0;
        if index < OWNED_STRIPES {
            stripe.store(stripe.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        } else {
            stripe.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn get(&self) -> u64 {
        self.stripes.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_across_many_threads_and_reused_stripes() {
        let counter = StripedCounter::default();
        // More threads than stripes, in waves, so stripes are shared and handed over.
        for _ in 0..3 {
            std::thread::scope(|scope| {
                for _ in 0..(OWNED_STRIPES + 8) {
                    scope.spawn(|| (0..1000).for_each(|_| counter.add()));
                }
            });
        }
        assert_eq!(counter.get(), 3 * (OWNED_STRIPES as u64 + 8) * 1000);
    }
}
