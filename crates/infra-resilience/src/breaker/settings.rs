//! The breaker's public data: its states, its settings (with their builder), the state changes
//! it reports and its metrics.

use std::{fmt, time::Duration};

use infra_config::BreakerConfig;

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go through; outcomes are counted.
    Closed,
    /// Calls are rejected until the open duration has passed.
    Open,
    /// A limited number of probe calls go through; the others are rejected.
    HalfOpen,
    /// An operator opened it: every call is rejected until it is reset.
    ForcedOpen,
    /// An operator closed it: every call goes through and nothing is counted until it is reset.
    ForcedClosed,
}

impl BreakerState {
    pub(crate) const ALL: [Self; 5] = [Self::Closed, Self::Open, Self::HalfOpen, Self::ForcedOpen, Self::ForcedClosed];

    pub(super) fn from_u8(value: u8) -> Self {
        Self::ALL.get(usize::from(value)).copied().unwrap_or(Self::Closed)
    }

    /// Lowercase name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::ForcedClosed => "forced_closed",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a breaker opens and how it recovers. [`BreakerSettings::from_config`] reads
/// [`BreakerConfig`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerSettings {
    /// Consecutive failures that open it.
    pub failure_threshold: u32,
    /// Failure rate over the window that opens it, in `(0, 1]`.
    pub failure_rate_threshold: f64,
    /// The window: the last this many calls.
    pub window_size: u32,
    /// Calls the window must hold before the rate counts.
    pub minimum_calls: u32,
    /// How long it stays open before letting probes through.
    pub open_duration: Duration,
    /// Probe calls let through while half-open; all must succeed to close it.
    pub half_open_max_calls: u32,
    /// A successful call slower than this counts as a failure (`None`: duration is ignored).
    pub slow_call_threshold: Option<Duration>,
}

impl Default for BreakerSettings {
    /// 5 consecutive failures, or 50% of the last 20 calls once 10 were seen; open for 30 s;
    /// 1 probe; no slow-call rule.
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            failure_rate_threshold: 0.5,
            window_size: 20,
            minimum_calls: 10,
            open_duration: Duration::from_secs(30),
            half_open_max_calls: 1,
            slow_call_threshold: None,
        }
    }
}

impl BreakerSettings {
    /// The settings of `config`.
    pub fn from_config(config: &BreakerConfig) -> Self {
        Self {
            failure_threshold: config.failure_threshold,
            failure_rate_threshold: config.failure_rate_threshold,
            window_size: config.window_size,
            minimum_calls: config.minimum_calls,
            open_duration: config.open_duration,
            half_open_max_calls: config.half_open_max_calls,
            slow_call_threshold: None,
        }
    }

    /// Sets [`BreakerSettings::failure_threshold`].
    #[must_use]
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// Sets the failure-rate rule: `rate` of the last `window_size` calls, once `minimum_calls`
    /// were seen.
    #[must_use]
    pub fn failure_rate(mut self, rate: f64, window_size: u32, minimum_calls: u32) -> Self {
        self.failure_rate_threshold = rate;
        self.window_size = window_size;
        self.minimum_calls = minimum_calls;
        self
    }

    /// Sets [`BreakerSettings::open_duration`].
    #[must_use]
    pub fn open_duration(mut self, duration: Duration) -> Self {
        self.open_duration = duration;
        self
    }

    /// Sets [`BreakerSettings::half_open_max_calls`].
    #[must_use]
    pub fn half_open_max_calls(mut self, calls: u32) -> Self {
        self.half_open_max_calls = calls;
        self
    }

    /// Sets [`BreakerSettings::slow_call_threshold`].
    #[must_use]
    pub fn slow_call_threshold(mut self, threshold: Duration) -> Self {
        self.slow_call_threshold = Some(threshold);
        self
    }
}

/// A state change, as [`CircuitBreaker::subscribe`](super::CircuitBreaker::subscribe) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The breaker's name.
    pub breaker: &'static str,
    /// The state it left.
    pub from: BreakerState,
    /// The state it entered.
    pub to: BreakerState,
}

/// A snapshot of a breaker's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerMetrics {
    /// The breaker's name.
    pub name: &'static str,
    /// Its state now.
    pub state: BreakerState,
    /// Failed calls (slow calls included) since it was made.
    pub failures: u64,
    /// Calls rejected without running.
    pub rejections: u64,
    /// Calls whose future was dropped before finishing (counted as neither).
    pub cancelled: u64,
    /// Failures among the calls in the window.
    pub window_failures: u32,
    /// Calls in the window (its successes are `window_calls - window_failures`). Successes are
    /// not counted in total: that would cost every call a shared write.
    pub window_calls: u32,
    /// `window_failures / window_calls` (0 for an empty window).
    pub failure_rate: f64,
    /// Failures in a row right now.
    pub consecutive_failures: u32,
}
