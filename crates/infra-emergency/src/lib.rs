//! A kill switch for trading bots: persisted before it acts, shared by the whole fleet,
//! fail-closed and audited.
//!
//! An [`EmergencyController`] holds a bot in one of four [`EmergencyState`]s (`NORMAL`,
//! `ALERT`, `HALT`, `SHUTDOWN`) for two [`Scope`]s, the bot's own and the global one; the
//! effective state is the stricter of the two. It runs on any backend: it takes the store and
//! the bus as `Arc<dyn StateStore>` and `Arc<dyn EventBus>`.
//!
//! - **The gate.** [`can_trade`](EmergencyController::can_trade) (`NORMAL`, `ALERT`) and
//!   [`can_reduce`](EmergencyController::can_reduce) (also `HALT`: cancels and risk-reducing
//!   exits) are one atomic load, no lock, no I/O;
//!   [`assert_can_trade`](EmergencyController::assert_can_trade) returns a typed error with
//!   the state, the scope that imposes it and the reason.
//! - **The transition table** ([`table`]), as data: any state moves to a stricter one; only a
//!   person resumes a halt (after an optional cooldown), and a shutdown needs a re-arm first.
//! - **Persistence first.** A transition claims the next sequence of its scope's log in the
//!   store (`set_if_not_exists` of the audit record: exactly one record per real transition,
//!   however many controllers race), then flips the in-memory state, then notifies. On start
//!   the controller restores both scopes; with `fail_closed` a store that cannot be read means
//!   `HALT` with the reason [`STATE_UNAVAILABLE`] until it answers. A store that lost its data
//!   (a Redis restarted without persistence) is written back from memory, never read as a
//!   resume.
//! - **Propagation.** Transitions are published on the bus; every controller applies those of
//!   its scopes (a stricter one at once, then by re-reading the store, which decides), and
//!   re-reads the store every resync interval and after every gap the bus reports, so a missed
//!   message never keeps a bot trading.
//! - **Risk limits.** [`check_risk_limit`](EmergencyController::check_risk_limit): `ALERT`
//!   past a fraction of the limit, `HALT` once breached, optionally after N consecutive
//!   breaches; [`check_daily_loss`](EmergencyController::check_daily_loss) uses
//!   `EmergencyConfig`.
//! - **Fleet and audit.** A heartbeat per bot with a TTL; [`fleet`](EmergencyController::fleet)
//!   lists the bots and whether each applied the latest global transition;
//!   [`history`](EmergencyController::history) reads the audit log. Notifications through
//!   [`subscribe`](EmergencyController::subscribe), [`events`](EmergencyController::events) and
//!   a [`watch`](EmergencyController::watch) receiver of the [`Status`].
//!
//! The key layout is documented on the `log` module (`emergency:audit:<scope>:<seq>`,
//! `emergency:state:<scope>`, `emergency:heartbeat:<bot>`, under the store's namespace); the
//! channel is `emergency` under the bus's namespace.
//!
//! # Metrics
//!
//! Recorded through the [`metrics`](https://docs.rs/metrics) facade (no exporter here); the
//! catalog is `docs/observability/metrics.md`. Install the recorder **before** starting a
//! controller: it resolves its handles at start (a risk limit's gauge at the limit's first
//! check).
//!
//! | name | type | labels | recorded |
//! |---|---|---|---|
//! | `infra_emergency_state` | gauge | `bot`, `state` | 1 for the bot's effective state (the strictest of the global scope and its own, as [`state`](EmergencyController::state) answers), 0 for the three others; set at start and on every change, whether committed here or learned from the bus or a re-read |
//! | `infra_emergency_transitions_total` | counter | `scope`, `from`, `to`, `source` | once per transition per process (below) |
//! | `infra_risk_limit_utilization_ratio` | gauge | `bot`, `limit` | `current / limit` at every [`check_risk_limit`](EmergencyController::check_risk_limit) (0 on the other side of zero) |
//! | `infra_emergency_heartbeat_timestamp_seconds` | gauge | `bot` | the Unix time of the heartbeat this controller last wrote |
//!
//! A transition is counted by the first controller of the process that commits it or applies
//! it: a controller counts a transition of a scope it applies (global, its bot's) when it
//! first applies its record, whether it committed it, read it from the store or confirmed a
//! bus message, and a transition it commits for another bot's scope when it commits it.
//! Controllers of one process that share a store (the same `Arc`) count each transition
//! (scope and sequence) once between them; the state restored at start is not counted; a
//! controller that was several transitions behind counts the latest only (the one it
//! applies).
//!
//! A process that is not a bot (an operator tool) exports the whole fleet from the
//! heartbeats with [`record_fleet_metrics`] or
//! [`EmergencyController::record_fleet_metrics`] on each scrape, and starts its own
//! controller with [`ControllerOptions::bot_gauges`] off.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `memory` | yes | [`EmergencyController::in_memory`] and the memory backends of `infra-state` and `infra-events` |
//! | `redis` | | the Redis backends of `infra-state` and `infra-events`, for [`EmergencyController::from_config`] |
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), infra_emergency::EmergencyError> {
//! use infra_config::{Config, Environment};
//! use infra_emergency::{ControllerOptions, EmergencyController, EmergencyState};
//!
//! let mut config = Config::for_env(Environment::Development).emergency;
//! config.bot_id = "arb-btc-1".into();
//! config.daily_loss_limit = -500.0;
//! config.auto_halt_on_limit = true;
//! let emergency = EmergencyController::in_memory(&config, ControllerOptions::default()).await?;
//!
//! assert!(emergency.can_trade());
//! emergency.check_daily_loss(-420.0).await?; // past 80% of the limit
//! assert_eq!(emergency.state(), EmergencyState::Alert);
//! emergency.check_daily_loss(-520.0).await?; // breached: halted, persisted, audited
//! assert!(!emergency.can_trade() && emergency.can_reduce());
//! let refused = emergency.assert_can_trade().unwrap_err();
//! assert!(refused.to_string().starts_with("trading refused: HALT imposed by the bot:arb-btc-1 scope"));
//!
//! let bot = emergency.bot_scope().clone();
//! emergency.resume(bot.clone(), "alice", "loss booked, limit reviewed").await?;
//! assert!(emergency.can_trade());
//! let history = emergency.history(&bot, 10).await?;
//! assert_eq!(history.len(), 3); // alert, halt, resume: newest first
//! assert_eq!(history[0].actor, "alice");
//! emergency.close().await?;
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod background;
mod controller;
mod error;
mod fleet;
mod gate;
mod limits;
mod log;
mod metrics;
mod notify;
mod options;
mod record;
mod state;
pub mod table;
mod transition;

pub use controller::{EmergencyController, Outcome, Request};
pub use error::EmergencyError;
pub use fleet::{FleetMember, Heartbeat, LimitUse};
pub use gate::{STATE_UNAVAILABLE, Status};
pub use limits::{LimitCheck, LimitOptions, LimitStatus};
pub use metrics::record_fleet_metrics;
pub use notify::{CallbackSubscription, EmergencyEvent};
pub use options::ControllerOptions;
pub use record::AuditRecord;
pub use state::{Action, EmergencyState, Scope, Source};
