//! Metric handles, resolved once when a component is built so that recording on a hot path is
//! one `Counter::increment` (a not-taken branch when no recorder was installed). Names and
//! labels follow docs/observability/metrics.md, in Resilience4j's vocabulary.

use std::sync::{Mutex, PoisonError};

use metrics::{Counter, Gauge, Unit, counter, describe_counter, describe_gauge, gauge};

use crate::{BreakerState, ResilienceError};

pub(crate) const BREAKER_STATE: &str = "infra_circuitbreaker_state";
pub(crate) const BREAKER_CALLS: &str = "infra_circuitbreaker_calls_total";
pub(crate) const BREAKER_TRANSITIONS: &str = "infra_circuitbreaker_transitions_total";
pub(crate) const RETRY_CALLS: &str = "infra_retry_calls_total";
pub(crate) const TIMELIMITER_CALLS: &str = "infra_timelimiter_calls_total";
pub(crate) const BULKHEAD_CALLS: &str = "infra_bulkhead_calls_total";
pub(crate) const BULKHEAD_AVAILABLE: &str = "infra_bulkhead_available_concurrent_calls";

/// The name components get when none is given.
pub(crate) const DEFAULT_NAME: &str = "default";

/// A circuit breaker's handles.
pub(crate) struct BreakerInstruments {
    pub(crate) successful: Counter,
    pub(crate) failed: Counter,
    pub(crate) ignored: Counter,
    pub(crate) not_permitted: Counter,
    /// Boxed: only transitions touch it, and it is large.
    cold: Box<BreakerStateInstruments>,
}

struct BreakerStateInstruments {
    /// By `BreakerState as usize`.
    states: [Gauge; 5],
    /// By `[from][to]`; a no-op handle for transitions that cannot happen, so that only the
    /// possible ones are exported (as zeros until they happen).
    transitions: [[Counter; 5]; 5],
    /// Serialises publishing the state gauges, so that the last publisher read the newest state
    /// and exactly one gauge ends at 1.
    publishing: Mutex<()>,
}

/// Whether the breaker can move from `from` to `to` (see `state.rs`): the automatic moves, and
/// the operator's forced states and reset from anywhere.
fn possible(from: BreakerState, to: BreakerState) -> bool {
    from != to
        && match to {
            BreakerState::Open => matches!(from, BreakerState::Closed | BreakerState::HalfOpen),
            BreakerState::HalfOpen => from == BreakerState::Open,
            BreakerState::Closed | BreakerState::ForcedOpen | BreakerState::ForcedClosed => true,
        }
}

impl BreakerInstruments {
    /// The handles of the breaker `name`, its state gauges set to closed.
    pub(crate) fn new(name: &'static str) -> Self {
        describe_gauge!(BREAKER_STATE, "1 for the circuit breaker's current state, 0 for the others");
        describe_counter!(BREAKER_CALLS, Unit::Count, "Calls through the circuit breaker by kind");
        describe_counter!(BREAKER_TRANSITIONS, Unit::Count, "Circuit breaker state changes");
        let calls = |kind: &'static str| counter!(BREAKER_CALLS, "name" => name, "kind" => kind);
        let states = BreakerState::ALL.map(|state| gauge!(BREAKER_STATE, "name" => name, "state" => state.as_str()));
        let transitions = BreakerState::ALL.map(|from| {
            BreakerState::ALL.map(|to| {
                if possible(from, to) {
                    counter!(BREAKER_TRANSITIONS, "name" => name, "from" => from.as_str(), "to" => to.as_str())
                } else {
                    Counter::noop()
                }
            })
        });
        for (state, gauge) in BreakerState::ALL.iter().zip(&states) {
            gauge.set(if *state == BreakerState::Closed { 1.0 } else { 0.0 });
        }
        Self {
            successful: calls("successful"),
            failed: calls("failed"),
            ignored: calls("ignored"),
            not_permitted: calls("not_permitted"),
            cold: Box::new(BreakerStateInstruments { states, transitions, publishing: Mutex::new(()) }),
        }
    }

    /// Counts `from` → `to` (a reset of a closed breaker is no change) and publishes the state
    /// `current()` reads.
    pub(crate) fn transitioned(&self, from: BreakerState, to: BreakerState, current: impl FnOnce() -> BreakerState) {
        let cold = &*self.cold;
        cold.transitions[from as usize][to as usize].increment(1);
        let _publishing = cold.publishing.lock().unwrap_or_else(PoisonError::into_inner);
        let current = current();
        for (state, gauge) in BreakerState::ALL.iter().zip(&cold.states) {
            gauge.set(if *state == current { 1.0 } else { 0.0 });
        }
    }
}

/// A retry policy's handles.
pub(crate) struct RetryInstruments {
    pub(crate) successful_without_retry: Counter,
    pub(crate) successful_with_retry: Counter,
    pub(crate) failed_without_retry: Counter,
    pub(crate) failed_with_retry: Counter,
}

impl RetryInstruments {
    pub(crate) fn new(name: &'static str) -> Self {
        describe_counter!(RETRY_CALLS, Unit::Count, "Calls through a retry policy by outcome and whether it retried");
        let calls = |kind: &'static str| counter!(RETRY_CALLS, "name" => name, "kind" => kind);
        Self {
            successful_without_retry: calls("successful_without_retry"),
            successful_with_retry: calls("successful_with_retry"),
            failed_without_retry: calls("failed_without_retry"),
            failed_with_retry: calls("failed_with_retry"),
        }
    }

    /// Records a call that ended after `attempts` attempts.
    pub(crate) fn finished(&self, success: bool, attempts: u32) {
        match (success, attempts > 1) {
            (true, false) => &self.successful_without_retry,
            (true, true) => &self.successful_with_retry,
            (false, false) => &self.failed_without_retry,
            (false, true) => &self.failed_with_retry,
        }
        .increment(1);
    }
}

/// A time limiter's handles.
pub(crate) struct TimeLimiterInstruments {
    successful: Counter,
    failed: Counter,
    timeout: Counter,
}

impl TimeLimiterInstruments {
    pub(crate) fn new(name: &'static str) -> Self {
        describe_counter!(TIMELIMITER_CALLS, Unit::Count, "Time-limited calls by outcome");
        let calls = |kind: &'static str| counter!(TIMELIMITER_CALLS, "name" => name, "kind" => kind);
        Self { successful: calls("successful"), failed: calls("failed"), timeout: calls("timeout") }
    }

    pub(crate) fn succeeded(&self) {
        self.successful.increment(1);
    }

    pub(crate) fn failed(&self) {
        self.failed.increment(1);
    }

    pub(crate) fn timed_out(&self) {
        self.timeout.increment(1);
    }

    /// Records one bounded attempt: cut by its timeout or the overall deadline, failed, or not.
    pub(crate) fn record<T, E>(&self, result: &Result<T, ResilienceError<E>>) {
        match result {
            Ok(_) => self.succeeded(),
            Err(ResilienceError::Timeout { .. } | ResilienceError::DeadlineExceeded { .. }) => self.timed_out(),
            Err(_) => self.failed(),
        }
    }
}

/// A bulkhead's handles.
pub(crate) struct BulkheadInstruments {
    pub(crate) permitted: Counter,
    pub(crate) rejected: Counter,
    /// Moved by increments, not set, so that it stays exact whatever order concurrent
    /// acquisitions and releases publish in (and sums bulkheads sharing a name).
    pub(crate) available: Gauge,
    max_concurrent: usize,
}

impl BulkheadInstruments {
    pub(crate) fn new(name: &'static str, max_concurrent: usize) -> Self {
        describe_counter!(BULKHEAD_CALLS, Unit::Count, "Calls through a bulkhead: permitted or rejected");
        describe_gauge!(BULKHEAD_AVAILABLE, Unit::Count, "Free slots of the bulkhead now");
        let calls = |kind: &'static str| counter!(BULKHEAD_CALLS, "name" => name, "kind" => kind);
        let available = gauge!(BULKHEAD_AVAILABLE, "name" => name);
        available.increment(max_concurrent as f64);
        Self { permitted: calls("permitted"), rejected: calls("rejected"), available, max_concurrent }
    }

    pub(crate) fn acquired(&self) {
        self.permitted.increment(1);
        self.available.decrement(1.0);
    }

    pub(crate) fn released(&self) {
        self.available.increment(1.0);
    }
}

impl Drop for BulkheadInstruments {
    /// The bulkhead is gone (every slot was released): its slots no longer count.
    fn drop(&mut self) {
        self.available.decrement(self.max_concurrent as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifteen_transitions_are_possible() {
        let count = BreakerState::ALL.iter().flat_map(|f| BreakerState::ALL.map(|t| possible(*f, t))).filter(|p| *p);
        assert_eq!(count.count(), 15);
        assert!(!possible(BreakerState::Closed, BreakerState::HalfOpen));
        assert!(possible(BreakerState::HalfOpen, BreakerState::Closed));
    }
}
