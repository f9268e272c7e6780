//! Metrics through the `metrics` facade (see the crate documentation's "Metrics" section).
//!
//! Handles are resolved once, when the controller is built (a risk limit's gauge when the limit
//! is first checked); the transition counter is rare and goes through the macro.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use infra_state::StateStore;
use metrics::{Gauge, Unit, counter, describe_counter, describe_gauge, gauge};

use crate::{AuditRecord, EmergencyState, FleetMember, Scope};

/// `infra_emergency_state{bot,state}`.
pub(crate) const STATE: &str = "infra_emergency_state";
/// `infra_emergency_transitions_total{scope,from,to,source}`.
pub(crate) const TRANSITIONS: &str = "infra_emergency_transitions_total";
/// `infra_risk_limit_utilization_ratio{bot,limit}`.
pub(crate) const RISK_LIMIT: &str = "infra_risk_limit_utilization_ratio";
/// `infra_emergency_heartbeat_timestamp_seconds{bot}`.
pub(crate) const HEARTBEAT: &str = "infra_emergency_heartbeat_timestamp_seconds";

/// Registers the help texts (idempotent: a recorder keeps the last).
fn describe() {
    describe_gauge!(STATE, "1 for the bot's effective emergency state, 0 for the three others");
    describe_counter!(TRANSITIONS, "Emergency transitions this process committed or applied");
    describe_gauge!(RISK_LIMIT, "Used / limit of a risk limit at its last check (1.0 = at the limit)");
    describe_gauge!(HEARTBEAT, Unit::Seconds, "Unix time of the bot's last emergency heartbeat");
}

/// `infra_emergency_state{bot,state}` of one bot: a gauge per state, in `EmergencyState::ALL`
/// order.
#[derive(Debug, Clone)]
pub(crate) struct StateGauges([Gauge; 4]);

impl StateGauges {
    /// The gauges of `bot` in the installed recorder.
    pub(crate) fn new(bot: &str) -> Self {
        Self(EmergencyState::ALL.map(|state| gauge!(STATE, "bot" => bot.to_owned(), "state" => state.as_str())))
    }

    /// Gauges that record nothing.
    pub(crate) fn noop() -> Self {
        Self([Gauge::noop(), Gauge::noop(), Gauge::noop(), Gauge::noop()])
    }

    /// 1 for `current`, 0 for the others.
    pub(crate) fn set(&self, current: EmergencyState) {
        for (state, gauge) in EmergencyState::ALL.iter().zip(&self.0) {
            gauge.set(if *state == current { 1.0 } else { 0.0 });
        }
    }
}

/// The handles of one controller.
#[derive(Debug)]
pub(crate) struct ControllerMetrics {
    /// The bot label.
    bot: String,
    /// Whether the bot's gauges are recorded (`ControllerOptions::bot_gauges`).
    bot_gauges: bool,
    /// `infra_emergency_heartbeat_timestamp_seconds{bot}`.
    pub(crate) heartbeat: Gauge,
    /// The store transitions are numbered in, for the once-per-process count.
    store: Weak<dyn StateStore>,
}

impl ControllerMetrics {
    /// Describes the metrics and resolves the handles of `bot`; the state gauges go to the gate.
    pub(crate) fn new(bot: &str, bot_gauges: bool, store: &Arc<dyn StateStore>) -> (Self, StateGauges) {
        describe();
        let (heartbeat, state) = if bot_gauges {
            (gauge!(HEARTBEAT, "bot" => bot.to_owned()), StateGauges::new(bot))
        } else {
            (Gauge::noop(), StateGauges::noop())
        };
        (Self { bot: bot.to_owned(), bot_gauges, heartbeat, store: Arc::downgrade(store) }, state)
    }

    /// The utilization gauge of limit `name` (resolved once per limit, then kept by its track).
    pub(crate) fn risk_limit(&self, name: &str) -> Gauge {
        if self.bot_gauges {
            gauge!(RISK_LIMIT, "bot" => self.bot.clone(), "limit" => name.to_owned())
        } else {
            Gauge::noop()
        }
    }

    /// Counts `record` unless this process already counted it (see [`first_in_process`]).
    pub(crate) fn transition(&self, record: &AuditRecord) {
        if first_in_process(&self.store, &record.scope, record.seq) {
            counter!(TRANSITIONS,
                "scope" => record.scope.to_string(),
                "from" => record.from.as_str(),
                "to" => record.to.as_str(),
                "source" => record.source.as_str())
            .increment(1);
        }
    }
}

/// The highest sequence of each scope counted by this process, per store.
struct Counted {
    store: Weak<dyn StateStore>,
    scope: Scope,
    seq: u64,
}

static COUNTED: Mutex<Vec<Counted>> = Mutex::new(Vec::new());

/// Whether transition `seq` of `scope` in `store` is new to this process; it is then recorded as
/// counted. Sequences of a scope only grow in a store, so "above the highest counted" is "not
/// counted yet": several controllers of one process sharing a store (several bots, or a bot and
/// an operator tool) count each transition once. Entries of dropped stores are forgotten.
fn first_in_process(store: &Weak<dyn StateStore>, scope: &Scope, seq: u64) -> bool {
    let mut counted = COUNTED.lock().unwrap_or_else(PoisonError::into_inner);
    counted.retain(|entry| entry.store.strong_count() > 0);
    let same = |entry: &&mut Counted| std::ptr::addr_eq(entry.store.as_ptr(), store.as_ptr()) && entry.scope == *scope;
    match counted.iter_mut().find(same) {
        Some(entry) if entry.seq >= seq => false,
        Some(entry) => {
            entry.seq = seq;
            true
        }
        None => {
            if store.strong_count() > 0 {
                counted.push(Counted { store: store.clone(), scope: scope.clone(), seq });
            }
            true
        }
    }
}

/// Sets, for every bot of `fleet`, `infra_emergency_state{bot,state}` (from the state its
/// heartbeat says it applies), `infra_emergency_heartbeat_timestamp_seconds{bot}` and
/// `infra_risk_limit_utilization_ratio{bot,limit}` for each limit its heartbeat carries, in the
/// installed recorder.
///
/// This is the fleet exporter of a process that is not a bot (an operator tool scraped by
/// Prometheus): read the fleet ([`EmergencyController::fleet`](crate::EmergencyController::fleet))
/// and call this on each scrape, or call
/// [`EmergencyController::record_fleet_metrics`](crate::EmergencyController::record_fleet_metrics),
/// which does both. It only sets gauges to the heartbeats' values, so calling it again is
/// harmless, and it costs a few registry look-ups per bot and no I/O.
///
/// A bot that left the fleet (its heartbeat expired or was removed) keeps its last values
/// until the recorder drops idle series: its heartbeat timestamp then stops moving, which is
/// what a "heartbeat older than 30 s" alert looks for.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), infra_emergency::EmergencyError> {
/// use infra_config::{Config, Environment};
/// use infra_emergency::{ControllerOptions, EmergencyController, record_fleet_metrics};
///
/// let mut config = Config::for_env(Environment::Development).emergency;
/// config.bot_id = "ops-console".into();
/// let emergency = EmergencyController::in_memory(&config, ControllerOptions::default()).await?;
/// let fleet = emergency.fleet().await?;
/// record_fleet_metrics(&fleet); // on each scrape
/// # Ok(()) }
/// ```
pub fn record_fleet_metrics(fleet: &[FleetMember]) {
    describe();
    for member in fleet {
        let heartbeat = &member.heartbeat;
        StateGauges::new(&heartbeat.bot).set(heartbeat.state);
        gauge!(HEARTBEAT, "bot" => heartbeat.bot.clone()).set(seconds(heartbeat.at_ms));
        for (limit, ratio) in &heartbeat.limits {
            gauge!(RISK_LIMIT, "bot" => heartbeat.bot.clone(), "limit" => limit.clone()).set(*ratio);
        }
    }
}

/// Milliseconds since the Unix epoch as seconds.
pub(crate) fn seconds(ms: u64) -> f64 {
    // Exact for any realistic time (below 2^53 ms).
    ms as f64 / 1000.0
}

/// Used / limit of a value against its limit: 1.0 at the limit, 0 for a value on the other side
/// of zero (a profit against a loss limit uses none of it).
pub(crate) fn utilization(current: f64, limit: f64) -> f64 {
    (current / limit).max(0.0)
}
