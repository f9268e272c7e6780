//! Heartbeats and the fleet view.

use std::{
    collections::BTreeMap,
    sync::OnceLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use crate::EmergencyState;

/// What a controller writes to the store every resync interval (and right after it applies a
/// transition), with a TTL: which state it applies and the last transitions it has seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Heartbeat {
    /// The bot.
    pub bot: String,
    /// The effective state it applies.
    pub state: EmergencyState,
    /// Sequence of the last global transition it applied (0: none).
    pub global_seq: u64,
    /// Sequence of the last transition of its own scope it applied (0: none).
    pub bot_seq: u64,
    /// Whether its store has not answered yet since it started (it then applies what
    /// `fail_closed` says).
    pub store_unavailable: bool,
    /// Its host.
    pub host: String,
    /// Its process ID.
    pub pid: u32,
    /// Its version (see [`ControllerOptions::version`](crate::ControllerOptions::version)).
    pub version: String,
    /// When it was written, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Utilization (used / limit, 1.0 at the limit) of each risk limit at its last check, by
    /// limit name (absent from heartbeats of older versions).
    #[serde(default)]
    pub limits: BTreeMap<String, f64>,
    /// When its process started its first controller, in milliseconds since the Unix epoch
    /// (0 in heartbeats of older versions): uptime is `at_ms - started_ms`.
    #[serde(default)]
    pub started_ms: u64,
    /// The value and the limit of each risk limit at its last check, by limit name (absent
    /// from heartbeats of older versions).
    #[serde(default)]
    pub limit_use: BTreeMap<String, LimitUse>,
}

/// A risk limit's value against its limit, as a heartbeat carries it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LimitUse {
    /// The value at the last check (a P&L, an exposure).
    pub used: f64,
    /// The limit it was checked against (same sign convention as
    /// [`check_risk_limit`](crate::EmergencyController::check_risk_limit)).
    pub limit: f64,
}

impl LimitUse {
    /// `used` against `limit`.
    pub fn new(used: f64, limit: f64) -> Self {
        Self { used, limit }
    }
}

/// When this process started its first controller, in milliseconds since the Unix epoch
/// (fixed at the first call).
pub(crate) fn process_started_ms() -> u64 {
    static STARTED: OnceLock<u64> = OnceLock::new();
    *STARTED.get_or_init(|| {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

/// One bot of the fleet, as [`fleet`](crate::EmergencyController::fleet) lists it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FleetMember {
    /// Its last heartbeat.
    pub heartbeat: Heartbeat,
    /// How old that heartbeat is (by the reader's clock).
    pub age: Duration,
    /// Whether it has applied the latest global transition in the store.
    pub applied_latest_global: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmergencyState;

    #[test]
    fn older_heartbeats_read_without_uptime_or_limit_use() {
        let old = r#"{"bot":"b1","state":"NORMAL","global_seq":0,"bot_seq":0,"store_unavailable":false,
            "host":"h","pid":1,"version":"0.1.0","at_ms":5}"#;
        let heartbeat: Heartbeat = serde_json::from_str(old).unwrap();
        assert_eq!((heartbeat.started_ms, heartbeat.limit_use.len(), heartbeat.state), (0, 0, EmergencyState::Normal));

        let mut heartbeat = heartbeat;
        heartbeat.started_ms = 2;
        heartbeat.limit_use.insert("daily_loss".into(), LimitUse::new(-250.0, -500.0));
        let json = serde_json::to_string(&heartbeat).unwrap();
        assert!(json.contains(r#""limit_use":{"daily_loss":{"used":-250.0,"limit":-500.0}}"#), "{json}");
        assert_eq!(serde_json::from_str::<Heartbeat>(&json).unwrap(), heartbeat);
        assert!(process_started_ms() > 0 && process_started_ms() == process_started_ms());
    }

    #[cfg(feature = "memory")]
    #[tokio::test]
    async fn the_fleet_shows_uptime_and_limit_use() {
        let mut config = infra_config::Config::for_env(infra_config::Environment::Development).emergency;
        config.bot_id = "b1".into();
        config.daily_loss_limit = -500.0;
        let controller =
            crate::EmergencyController::in_memory(&config, crate::ControllerOptions::default()).await.unwrap();
        controller.check_daily_loss(-250.0).await.unwrap();
        controller.refresh().await.unwrap(); // writes the heartbeat
        let fleet = controller.fleet().await.unwrap();
        let heartbeat = &fleet[0].heartbeat;
        assert_eq!(heartbeat.limit_use.get("daily_loss"), Some(&LimitUse::new(-250.0, -500.0)));
        assert!(heartbeat.started_ms > 0 && heartbeat.started_ms <= heartbeat.at_ms);
        controller.close().await.unwrap();
    }
}
