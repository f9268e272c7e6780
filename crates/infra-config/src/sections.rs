//! The typed sections of [`crate::Config`], one per component.
//!
//! Durations are whole milliseconds and their keys end in `_ms`. Every section is
//! `#[non_exhaustive]` so that new keys are not breaking changes; start from a preset
//! ([`crate::Config::for_env`]) and change the fields you need, or build the state and events
//! sections in code: `StateConfig::memory()`, `EventsConfig::redis(url)?` and their setters.

use std::{net::SocketAddr, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{RedisUrl, Secret, duration_ms};

/// Which implementation backs a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In-process, nothing to install; lost on exit and not shared between processes.
    Memory,
    /// Redis through `fred`; needs `redis_url`.
    Redis,
}

impl Backend {
    /// The name used in files and environment variables.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
        }
    }
}

/// Key/value state (`infra-state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StateConfig {
    /// `memory` or `redis`.
    pub backend: Backend,
    /// Required when `backend = "redis"`. Its password is redacted everywhere.
    pub redis_url: Option<RedisUrl>,
    /// Prefix of every key, so that environments sharing a server never see each other's keys.
    /// Letters, digits, `_`, `-` and `.`; at most 64 characters.
    pub namespace: String,
    /// Upper bound on one call, including waiting for a connection (`operation_timeout_ms`).
    #[serde(rename = "operation_timeout_ms", with = "duration_ms")]
    pub operation_timeout: Duration,
    /// Upper bound on establishing a connection (`connect_timeout_ms`).
    #[serde(rename = "connect_timeout_ms", with = "duration_ms")]
    pub connect_timeout: Duration,
    /// Redis replicas that must acknowledge every write before the call returns `Ok` (Redis
    /// `WAIT`), so that an acknowledged write survives a failover to a replica. 0 (the default)
    /// does not wait: Redis replicates asynchronously, and a master that dies right after a
    /// write may lose it. Needs `backend = "redis"`.
    #[serde(default)]
    pub replica_acks: u32,
    /// How long a write waits for its replica acknowledgements (`replica_ack_timeout_ms`);
    /// fewer in time fail the call with a "not replicated" error (the write was applied on the
    /// master). Default 1000 ms.
    #[serde(rename = "replica_ack_timeout_ms", with = "duration_ms", default = "default_replica_ack_timeout")]
    pub replica_ack_timeout: Duration,
}

/// The default of `replica_ack_timeout_ms`, for files written before the key existed.
pub(crate) const fn default_replica_ack_timeout() -> Duration {
    Duration::from_secs(1)
}

/// Publish/subscribe (`infra-events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventsConfig {
    /// `memory` or `redis`.
    pub backend: Backend,
    /// Required when `backend = "redis"`. Its password is redacted everywhere.
    pub redis_url: Option<RedisUrl>,
    /// Prefix of every channel. Same rules as [`StateConfig::namespace`](field@StateConfig::namespace).
    pub namespace: String,
    /// Upper bound on one publish (`operation_timeout_ms`).
    #[serde(rename = "operation_timeout_ms", with = "duration_ms")]
    pub operation_timeout: Duration,
    /// Upper bound on establishing a connection (`connect_timeout_ms`).
    #[serde(rename = "connect_timeout_ms", with = "duration_ms")]
    pub connect_timeout: Duration,
    /// `ephemeral` (pub/sub, at-most-once) or `durable` (Redis Streams, at-least-once; needs
    /// `backend = "redis"`).
    pub mode: EventsMode,
    /// Durable mode: entries kept per stream, approximately (`XADD MAXLEN ~`). At least 1.
    pub stream_max_len: u64,
    /// Durable mode: an event unacknowledged this long is delivered again, to any consumer of
    /// its group (`claim_after_ms`).
    #[serde(rename = "claim_after_ms", with = "duration_ms")]
    pub claim_after: Duration,
    /// Durable mode: deliveries of one event before it moves to the dead-letter stream. At
    /// least 1.
    pub max_deliveries: u32,
    /// Durable mode: Redis replicas that must acknowledge every published event before the
    /// publish returns `Ok` (Redis `WAIT`), so that an accepted event survives a failover to a
    /// replica. 0 (the default) does not wait. Needs `mode = "durable"`: pub/sub keeps nothing
    /// to replicate.
    #[serde(default)]
    pub replica_acks: u32,
    /// How long a publish waits for its replica acknowledgements (`replica_ack_timeout_ms`).
    /// Default 1000 ms.
    #[serde(rename = "replica_ack_timeout_ms", with = "duration_ms", default = "default_replica_ack_timeout")]
    pub replica_ack_timeout: Duration,
}

/// How events travel (`events.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventsMode {
    /// Redis pub/sub (or the memory bus): fast, at-most-once, gaps are reported.
    Ephemeral,
    /// Redis Streams with consumer groups: stored, acknowledged after handling, redelivered.
    Durable,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One bunyan JSON object per line, for machines.
    Json,
    /// Readable text, for people.
    Console,
}

/// Structured logging (`infra-log`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LoggingConfig {
    /// A level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or a comma-separated list of
    /// `target=level` directives with an optional bare default level: `info,infra_state=debug`.
    pub level: String,
    /// `json` or `console`.
    pub format: LogFormat,
}

/// Metrics exposition (`infra-facade`): where the Prometheus endpoint listens, if anywhere.
///
/// Components always record through the `metrics` facade; this section only decides whether the
/// facade installs its Prometheus recorder and serves `GET /metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// The address of the Prometheus endpoint, such as `127.0.0.1:9464` (port 0 picks a free
    /// port). Unset: no endpoint and no recorder installed by the facade.
    pub listen: Option<SocketAddr>,
}

impl MetricsConfig {
    /// Serve `GET /metrics` on `addr`.
    pub fn listen(addr: SocketAddr) -> Self {
        Self { listen: Some(addr) }
    }
}

/// The live operator dashboard (`infra-dashboard`, `infractl dashboard`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct DashboardConfig {
    /// Where it listens (default `127.0.0.1:8080`: loopback only).
    pub listen: SocketAddr,
    /// The token changing actions (halt, resume, shutdown, re-arm) need as
    /// `Authorization: Bearer <token>` (redacted everywhere; `INFRA_DASHBOARD__TOKEN`). Unset:
    /// the page shows everything and every changing action is refused.
    pub token: Option<Secret>,
    /// The bus channels carrying prices (glob, default `trading_bot.prices.*`).
    pub prices_pattern: String,
    /// The bus channels carrying executions (glob, default `trading_bot.executions.*`).
    pub executions_pattern: String,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            prices_pattern: "trading_bot.prices.*".to_owned(),
            executions_pattern: "trading_bot.executions.*".to_owned(),
        }
    }
}

/// The kill switch (`infra-emergency`).
///
/// # Sign convention
/// Loss limits are **profit-and-loss thresholds**, so they are negative: `daily_loss_limit =
/// -500.0` halts once the day's P&L reaches -500 or less. Zero and positive values are rejected,
/// since they would halt a bot that is breaking even or winning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmergencyConfig {
    /// The bot this process controls. Letters, digits, `_`, `-` and `.`; at most 64 characters.
    pub bot_id: String,
    /// Daily P&L at or below which the limit is breached. Negative (see the sign convention).
    pub daily_loss_limit: f64,
    /// Halt automatically when a limit is breached, instead of only alerting.
    pub auto_halt_on_limit: bool,
    /// When the controller cannot read its state (store down), refuse to trade instead of
    /// trading on a possibly stale NORMAL.
    pub fail_closed: bool,
    /// Fraction of a limit at which the controller enters ALERT: `0.8` alerts at a P&L of -400
    /// for a limit of -500. Strictly between 0 and 1.
    pub alert_fraction: f64,
}

/// How the delay between retries is randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// Exactly the exponential delay.
    None,
    /// Uniform in `[0, delay]` (spreads a fleet the most).
    Full,
    /// Uniform in `[delay / 2, delay]`.
    Equal,
    /// Uniform in `[initial, previous * 3]`, capped (AWS "decorrelated jitter").
    Decorrelated,
}

/// Default retry policy (`infra-resilience`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Attempts in all, the first one included. At least 1.
    pub max_attempts: u32,
    /// Delay before the first retry (`initial_delay_ms`).
    #[serde(rename = "initial_delay_ms", with = "duration_ms")]
    pub initial_delay: Duration,
    /// Cap on any single delay (`max_delay_ms`). At least `initial_delay_ms`.
    #[serde(rename = "max_delay_ms", with = "duration_ms")]
    pub max_delay: Duration,
    /// Growth factor of the delay. At least 1.0.
    pub multiplier: f64,
    /// `none`, `full`, `equal` or `decorrelated`.
    pub jitter: Jitter,
    /// Give up once this much time has passed since the first attempt (`max_elapsed_ms`).
    #[serde(rename = "max_elapsed_ms", with = "duration_ms")]
    pub max_elapsed: Duration,
}

/// Default circuit breaker policy (`infra-resilience`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker. At least 1.
    pub failure_threshold: u32,
    /// Failure rate over the window that opens the breaker, in `(0, 1]`.
    pub failure_rate_threshold: f64,
    /// How many recent calls the failure rate is computed over. At least 1.
    pub window_size: u32,
    /// Calls the window must hold before the rate counts. Between 1 and `window_size`.
    pub minimum_calls: u32,
    /// How long the breaker stays open before letting probes through (`open_duration_ms`).
    #[serde(rename = "open_duration_ms", with = "duration_ms")]
    pub open_duration: Duration,
    /// Probe calls let through while half-open. At least 1.
    pub half_open_max_calls: u32,
}

/// Default timeout policy (`infra-resilience`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TimeoutConfig {
    /// Upper bound on one attempt (`per_attempt_ms`).
    #[serde(rename = "per_attempt_ms", with = "duration_ms")]
    pub per_attempt: Duration,
    /// Upper bound on a whole call, retries included (`overall_ms`). At least `per_attempt_ms`.
    #[serde(rename = "overall_ms", with = "duration_ms")]
    pub overall: Duration,
}

/// Defaults for the resilience policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResilienceConfig {
    /// Retry defaults.
    pub retry: RetryConfig,
    /// Circuit breaker defaults.
    pub breaker: BreakerConfig,
    /// Timeout defaults.
    pub timeout: TimeoutConfig,
}
