//! Heartbeats and the fleet view.

use std::{collections::BTreeMap, time::Duration};

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
