//! [`HealthReport`]: what [`Infrastructure::health`](crate::Infrastructure::health) says about
//! each part, typed and serializable.

use std::time::Duration;

use infra_emergency::EmergencyState;
use infra_resilience::{BreakerMetrics, BreakerState};
use serde::Serialize;

use crate::{CallStats, LogSetup};

/// The health of every part of an [`Infrastructure`](crate::Infrastructure), as JSON:
///
/// ```json
/// {"healthy":true,"environment":"staging",
///  "state":{"backend":"redis","namespace":"staging","reachable":true,"latency_ms":0.21,"error":null,"calls":{…}},
///  "events":{…},
///  "breakers":[{"name":"events","state":"closed",…},{"name":"state","state":"closed",…}],
///  "emergency":{"bot_id":"arb-1","state":"NORMAL","can_trade":true,…},
///  "logging":{"setup":"installed","dropped_lines":0}}
/// ```
///
/// `healthy` is true when the store and the bus answer their ping, no circuit breaker is open
/// (`open` or `forced_open`; `half_open` is recovering) and the emergency controller could
/// read its store. A halted bot can be healthy: its emergency state is reported, and whether
/// it may trade is `emergency.can_trade`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// Whether every part works (see above).
    pub healthy: bool,
    /// The configuration's environment: `development`, `staging` or `production`.
    pub environment: String,
    /// The state store.
    pub state: BackendHealth,
    /// The event bus.
    pub events: BackendHealth,
    /// Every circuit breaker of the infrastructure's registry, by name.
    pub breakers: Vec<BreakerHealth>,
    /// The emergency controller.
    pub emergency: EmergencyHealth,
    /// The log sink.
    pub logging: LoggingHealth,
}

/// One backend: whether it answered a ping, and how fast.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BackendHealth {
    /// `memory` or `redis`.
    pub backend: &'static str,
    /// The namespace of its keys or channels.
    pub namespace: String,
    /// Whether the ping succeeded (always, for memory backends).
    pub reachable: bool,
    /// The ping's round trip in milliseconds, when it succeeded.
    pub latency_ms: Option<f64>,
    /// Why the ping failed (URL passwords redacted), when it did.
    pub error: Option<String>,
    /// Calls through the resilient decorator so far.
    pub calls: CallStats,
}

impl BackendHealth {
    pub(crate) fn new(
        backend: &'static str,
        namespace: String,
        ping: Result<Duration, String>,
        calls: CallStats,
    ) -> Self {
        let (latency_ms, error) = match ping {
            Ok(latency) => (Some(latency.as_secs_f64() * 1000.0), None),
            Err(error) => (None, Some(error)),
        };
        Self { backend, namespace, reachable: error.is_none(), latency_ms, error, calls }
    }
}

/// One circuit breaker.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BreakerHealth {
    /// Its name (`state`, `events`, or one a bot asked for with `breaker(name)`).
    pub name: String,
    /// `closed`, `open`, `half_open`, `forced_open` or `forced_closed`.
    pub state: &'static str,
    /// Failed calls since it was made.
    pub failures: u64,
    /// Calls it rejected.
    pub rejections: u64,
    /// Failures in a row now.
    pub consecutive_failures: u32,
    /// Failure rate over its window.
    pub failure_rate: f64,
}

impl BreakerHealth {
    /// Whether calls are refused (open or forced open).
    pub fn is_open(&self) -> bool {
        self.state == BreakerState::Open.as_str() || self.state == BreakerState::ForcedOpen.as_str()
    }
}

impl From<BreakerMetrics> for BreakerHealth {
    fn from(metrics: BreakerMetrics) -> Self {
        Self {
            name: metrics.name.to_owned(),
            state: metrics.state.as_str(),
            failures: metrics.failures,
            rejections: metrics.rejections,
            consecutive_failures: metrics.consecutive_failures,
            failure_rate: metrics.failure_rate,
        }
    }
}

/// The emergency controller, from memory (no I/O).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct EmergencyHealth {
    /// The bot it serves.
    pub bot_id: String,
    /// The effective state.
    pub state: EmergencyState,
    /// The scope that imposes it (`global` or `bot:<id>`).
    pub scope: String,
    /// Why (empty in `NORMAL`).
    pub reason: String,
    /// Whether new orders may be sent.
    pub can_trade: bool,
    /// Whether its store has not answered since it started (it then applies `fail_closed`).
    pub store_unavailable: bool,
}

/// The log sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LoggingHealth {
    /// Who set up the process's logging.
    pub setup: LogSetup,
    /// Lines the sink dropped because it was slower than the program (known when the facade
    /// installed the sink).
    pub dropped_lines: Option<usize>,
}
