//! The outcomes of the last N calls, lock-free, with no write at all while every call succeeds.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A count-based sliding window: one bit per call (1 = failure) in a ring.
///
/// While the window holds no failure, a success changes nothing it can tell (every slot says
/// success), so it is not written: the healthy path stays free of shared writes once `size`
/// calls have been seen. Under concurrency the order of calls is whatever the ring's cursor
/// gives; a success racing the first failure may go unrecorded, which only makes the breaker
/// very slightly quicker to open.
#[derive(Debug)]
pub(crate) struct Window {
    size: u64,
    bits: Box<[AtomicU64]>,
    cursor: AtomicU64,
    failures: AtomicU32,
    seen: AtomicU32,
}

impl Window {
    pub(crate) fn new(size: u32) -> Self {
        let size = size.max(1);
        let words = (size as usize).div_ceil(64);
        Self {
            size: u64::from(size),
            bits: (0..words).map(|_| AtomicU64::new(0)).collect(),
            cursor: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            seen: AtomicU32::new(0),
        }
    }

    /// Records one call; returns (failures, calls) in the window afterwards.
    pub(crate) fn record(&self, failure: bool) -> (u32, u32) {
        let size = u32::try_from(self.size).unwrap_or(u32::MAX);
        if self.seen.load(Ordering::Relaxed) < size {
            self.seen.fetch_add(1, Ordering::Relaxed);
        }
        if !failure && self.failures.load(Ordering::Relaxed) == 0 {
            return (0, self.calls());
        }
        let slot = self.cursor.fetch_add(1, Ordering::Relaxed) % self.size;
        let (word, mask) = ((slot / 64) as usize, 1_u64 << (slot % 64));
        let old = if failure {
            self.bits[word].fetch_or(mask, Ordering::AcqRel)
        } else {
            self.bits[word].fetch_and(!mask, Ordering::AcqRel)
        };
        match (old & mask != 0, failure) {
            (false, true) => {
                self.failures.fetch_add(1, Ordering::AcqRel);
            }
            (true, false) => {
                self.failures.fetch_sub(1, Ordering::AcqRel);
            }
            _ => {}
        }
        (self.failures.load(Ordering::Acquire), self.calls())
    }

    /// Calls in the window (at most its size).
    pub(crate) fn calls(&self) -> u32 {
        self.seen.load(Ordering::Relaxed).min(u32::try_from(self.size).unwrap_or(u32::MAX))
    }

    pub(crate) fn failures(&self) -> u32 {
        self.failures.load(Ordering::Acquire)
    }

    pub(crate) fn clear(&self) {
        for word in self.bits.iter() {
            word.store(0, Ordering::Release);
        }
        self.failures.store(0, Ordering::Release);
        self.seen.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_failures_among_the_last_calls() {
        let window = Window::new(4);
        assert_eq!(window.record(false), (0, 1));
        assert_eq!(window.record(true), (1, 2));
        assert_eq!(window.record(true), (2, 3));
        assert_eq!(window.record(false), (2, 4));
        assert_eq!(window.record(false), (2, 4));
        // The two failures leave the window as newer calls push them out.
        assert_eq!(window.record(false), (1, 4));
        assert_eq!(window.record(false), (0, 4));
        assert_eq!(window.record(false), (0, 4));
        window.clear();
        assert_eq!((window.failures(), window.calls()), (0, 0));
    }

    #[test]
    fn large_windows_span_several_words() {
        let window = Window::new(200);
        for _ in 0..150 {
            window.record(true);
        }
        assert_eq!((window.failures(), window.calls()), (150, 150));
        for _ in 0..200 {
            window.record(false);
        }
        assert_eq!((window.failures(), window.calls()), (0, 200));
    }
}
