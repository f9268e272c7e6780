//! A retry budget shared by every clone: retries stop fleet-wide while most calls fail.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

/// A token bucket in the manner of gRPC retry throttling: every failed attempt takes a token,
/// every success gives back `refill` tokens, and retries are allowed only while more than half
/// of `max_tokens` remain. During an outage the bucket drains, so a fleet of callers falls back
/// to one attempt each instead of multiplying load; as calls succeed again it refills.
///
/// Clones share one bucket: hand the same budget to every retry policy that calls one
/// dependency. Lock-free; tokens are kept in thousandths.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    milli_tokens: AtomicU64,
    max: u64,
    refill: u64,
}

const MILLI: f64 = 1000.0;

impl RetryBudget {
    /// A full bucket of `max_tokens` (at least 1) that gains `refill` tokens per success
    /// (gRPC uses 10 and 0.1).
    pub fn new(max_tokens: u32, refill: f64) -> Self {
        let max = u64::from(max_tokens.max(1)) * 1000;
        let refill = (refill.max(0.0) * MILLI).round() as u64;
        Self { inner: Arc::new(Inner { milli_tokens: AtomicU64::new(max), max, refill }) }
    }

    /// Tokens left.
    pub fn tokens(&self) -> f64 {
        self.inner.milli_tokens.load(Ordering::Relaxed) as f64 / MILLI
    }

    /// Whether a retry may be made now.
    pub fn can_retry(&self) -> bool {
        self.inner.milli_tokens.load(Ordering::Relaxed) * 2 > self.inner.max
    }

    /// Records a successful attempt.
    pub fn on_success(&self) {
        let inner = &*self.inner;
        if inner.refill == 0 || inner.milli_tokens.load(Ordering::Relaxed) >= inner.max {
            return;
        }
        let _ = inner
            .milli_tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some((t + inner.refill).min(inner.max)));
    }

    /// Records a failed attempt.
    pub fn on_failure(&self) {
        let _ = self
            .inner
            .milli_tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(t.saturating_sub(1000)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_on_failures_and_refills_on_successes() {
        let budget = RetryBudget::new(10, 0.5);
        let clone = budget.clone();
        for _ in 0..4 {
            clone.on_failure();
        }
        assert!(budget.can_retry(), "6 of 10 left");
        budget.on_failure();
        assert!(!budget.can_retry(), "5 of 10 is not more than half");
        assert_eq!(budget.tokens(), 5.0);
        budget.on_success();
        assert!(clone.can_retry(), "5.5 of 10");
        for _ in 0..100 {
            budget.on_success();
        }
        assert_eq!(budget.tokens(), 10.0, "never above the maximum");
        for _ in 0..100 {
            budget.on_failure();
        }
        assert_eq!(budget.tokens(), 0.0, "never below zero");
    }
}
