//! The live operator dashboard of the infra stack: the fleet, its emergency state and a
//! stop-everything button, served by axum with live updates.
//!
//! [`Dashboard::start`] serves one page (HTML, CSS and JavaScript compiled into the binary:
//! no build step) and a small JSON API over an [`Infrastructure`]:
//!
//! | what | where it comes from |
//! |---|---|
//! | emergency banner (state, scope, who, when, why; the page title too) | the infrastructure's emergency controller ([`status`](infra_facade::emergency::EmergencyController::status), its transition events) |
//! | halt, resume, shutdown, re-arm, global or per bot | the controller's transitions, audited with the operator's name |
//! | the fleet: state, heartbeat age (stale flagged), uptime, version, latest global applied | the heartbeats ([`fleet`](infra_facade::emergency::EmergencyController::fleet)) |
//! | live prices with their age | the bus, channels matching `dashboard.prices_pattern` (last price per channel) |
//! | executions, rejected ones with their reason | the bus, `dashboard.executions_pattern` (the last 200) |
//! | risk limits, used against limit | the heartbeats' `limit_use` |
//! | health: Redis reachable and latency, breakers, events dropped and gaps | [`Infrastructure::health`], the bus channel [`BREAKER_CHANNEL`], the dashboard's own subscriptions |
//! | the audit log, by bot and scope | [`history`](infra_facade::emergency::EmergencyController::history) |
//!
//! # HTTP
//!
//! - `GET /` the page; `GET /assets/app.js`, `GET /assets/app.css`.
//! - `GET /api/snapshot`: everything above as JSON, with `errors` listing every part that
//!   could not be read.
//! - `GET /api/stream`: server-sent events, `snapshot` first, then `price`, `execution`,
//!   `emergency` (a transition record with the banner's data under `emergency`), `breaker`,
//!   and every second `fleet`, `health` and `errors`. A client that falls behind, or
//!   reconnects, gets a fresh `snapshot`.
//! - `GET /api/audit?bot=ID&scope=all|global|bot&limit=N`: audit records, newest first.
//! - `POST /api/emergency/{halt|resume|shutdown|rearm}` with
//!   `{"scope": "global" | "bot:<id>", "reason": "...", "operator": "..."}`,
//!   `Authorization: Bearer <token>` and `X-Infra-Dashboard: 1`: 200 with the audit record and
//!   `"applied": true`, or `"applied": false` when nothing had to change (pressing twice is
//!   harmless); 400 bad scope or empty reason/operator, 401 token missing or wrong, 403
//!   cross-site or no token configured, 409 refused by the transition table, 503 store
//!   unreachable. Errors are `{"error": "..."}`.
//!
//! # Safety
//!
//! - **Reading changes nothing.** Every `GET` only reads; only the `POST` routes act.
//! - **A token from the configuration** (`dashboard.token`, a [`Secret`](infra_facade::config::Secret)
//!   redacted in every rendering) is required for every changing action, compared in constant
//!   time. Without one, the page still shows everything and every action is refused.
//! - **No cross-site requests.** An action needs the header `X-Infra-Dashboard: 1` (a form
//!   from another site cannot send it, and a cross-origin `fetch` that sets it needs a CORS
//!   preflight the dashboard never grants), an `Origin`, if any, equal to the page's own, and
//!   no `Sec-Fetch-Site: cross-site`. Responses forbid framing.
//! - **Fail closed, never a silent no-op.** A transition the store cannot commit is a 503
//!   naming the problem (URL secrets redacted); a part of the page that cannot be read is
//!   shown as an error.
//! - **Bounded.** The last 200 executions, the last price per channel (at most 1,000), and a
//!   live stream that falls 256 updates behind is sent a fresh snapshot instead.
//! - Loopback by default (`127.0.0.1:8080`).
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | none | | this crate has no optional parts (the backends are the facade's) |
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use infra_dashboard::{Dashboard, DashboardOptions};
//! use infra_facade::{Infrastructure, config::{Config, Environment}};
//!
//! let mut config = Config::for_env(Environment::Development);
//! config.logging.level = "warn".to_owned();
//! let infra = Arc::new(Infrastructure::create(config).await?);
//! let options = DashboardOptions::default().listen("127.0.0.1:0".parse()?).token("s3cret");
//! let dashboard = Dashboard::start(Arc::clone(&infra), options).await?;
//! println!("open http://{}/", dashboard.local_addr());
//! dashboard.close().await;
//! infra.close().await?;
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod guard;
mod live;
mod options;
mod routes;
mod snapshot;
mod stream;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use infra_facade::{
    BREAKER_CHANNEL, Infrastructure,
    emergency::EmergencyEvent,
    events::{EventBus, Pattern, SubscribeOptions, Topic},
};
pub use options::DashboardOptions;
use serde_json::{Value, json};
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::live::{Shared, emergency_json};

/// Events queued per subscription of the dashboard before newer ones are dropped (and
/// counted).
const QUEUE: usize = 4_096;
/// How often the fleet and the health are re-sent to the live streams.
const TICK: Duration = Duration::from_secs(1);

/// What the dashboard does with an event of one of its subscriptions.
type OnEvent = fn(&Shared, infra_facade::events::Envelope);

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A configured channel pattern is not a valid glob.
    #[error("invalid `dashboard.{key}`")]
    Pattern {
        /// `prices_pattern` or `executions_pattern`.
        key: &'static str,
        /// Why.
        #[source]
        source: infra_facade::events::EventsError,
    },
}

/// A running dashboard. [`close`](Self::close) stops it (the infrastructure stays open: it is
/// the caller's).
pub struct Dashboard {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Subscribes to prices, executions and breaker changes on the infrastructure's bus, then
    /// serves the page on `options.listen` (on the current tokio runtime). A subscription the
    /// bus refuses (a durable bus has no patterns) is reported on the page, not an error here.
    pub async fn start(infra: Arc<Infrastructure>, options: DashboardOptions) -> Result<Self, DashboardError> {
        let prices = Pattern::parse(options.prices_pattern.clone())
            .map_err(|source| DashboardError::Pattern { key: "prices_pattern", source })?;
        let executions = Pattern::parse(options.executions_pattern.clone())
            .map_err(|source| DashboardError::Pattern { key: "executions_pattern", source })?;
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| DashboardError::Bind { addr: options.listen, source })?;
        let addr = listener.local_addr().map_err(|source| DashboardError::Bind { addr: options.listen, source })?;
        let shared = Arc::new(Shared::new(infra, options));
        let topics: [(&str, Topic, OnEvent); 3] = [
            ("prices", Topic::Pattern(prices), Shared::on_price),
            ("executions", Topic::Pattern(executions), Shared::on_execution),
            ("breakers", Topic::Channel(BREAKER_CHANNEL.to_owned()), Shared::on_breaker),
        ];
        for (what, topic, on) in topics {
            let options = SubscribeOptions { capacity: QUEUE, ..SubscribeOptions::default() };
            let handler = Arc::new(live::handler(&shared, on));
            match shared.infra.events().subscribe(topic.clone(), handler, options).await {
                Ok(subscription) => {
                    shared.subscriptions.lock().unwrap_or_else(PoisonError::into_inner).push(subscription)
                }
                Err(error) => {
                    let problem = format!("cannot subscribe to the {what} ({topic}): {}", snapshot::chain(&error));
                    tracing::warn!(target: "infra_dashboard", problem, "dashboard subscription failed");
                    shared.problems.lock().unwrap_or_else(PoisonError::into_inner).push(problem);
                }
            }
        }
        let cancel = CancellationToken::new();
        let app = routes::App { shared: Arc::clone(&shared), cancel: cancel.clone() };
        let server =
            axum::serve(listener, routes::router(app)).with_graceful_shutdown(cancel.clone().cancelled_owned());
        let tasks = vec![
            tokio::spawn(async move {
                if let Err(error) = server.await {
                    tracing::error!(target: "infra_dashboard", %error, "the dashboard's server stopped");
                }
            }),
            tokio::spawn(forward_transitions(Arc::clone(&shared), cancel.clone())),
            tokio::spawn(tick(Arc::clone(&shared), cancel.clone())),
        ];
        tracing::info!(target: "infra_dashboard", %addr, "dashboard listening");
        Ok(Self { addr, shared, cancel, tasks: Mutex::new(tasks) })
    }

    /// The address it listens on (the port actually chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving (live streams end, requests in flight finish), stops its tasks and
    /// unsubscribes. Closing twice is harmless.
    pub async fn close(&self) {
        self.cancel.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            let _ = task.await;
        }
        let subscriptions =
            std::mem::take(&mut *self.shared.subscriptions.lock().unwrap_or_else(PoisonError::into_inner));
        for subscription in subscriptions {
            subscription.unsubscribe().await;
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Sends every transition the controller applies (global, its own scope) to the live streams.
async fn forward_transitions(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut events = shared.infra.emergency().events();
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return,
            event = events.recv() => event,
        };
        let data = match event {
            Ok(EmergencyEvent::Transition { record, .. }) => {
                let mut data = serde_json::to_value(&record).unwrap_or_default();
                data["applied"] = Value::Bool(true);
                data["emergency"] = emergency_json(&shared.infra, Some(&record));
                data
            }
            Ok(EmergencyEvent::StoreUnavailable { .. }) => {
                json!({"event": "store_unavailable", "emergency": emergency_json(&shared.infra, None)})
            }
            Ok(EmergencyEvent::StoreRecovered { .. }) => {
                json!({"event": "store_recovered", "emergency": emergency_json(&shared.infra, None)})
            }
            Ok(_) | Err(RecvError::Lagged(_)) => json!({"emergency": emergency_json(&shared.infra, None)}),
            Err(RecvError::Closed) => return,
        };
        shared.publish("emergency", &data);
    }
}

/// Every second, while someone watches: the fleet, the health and the current problems.
async fn tick(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        if shared.hub.receiver_count() == 0 {
            continue;
        }
        let mut errors = Vec::new();
        match snapshot::fleet(&shared).await {
            Ok(fleet) => shared.publish("fleet", &Value::Array(fleet)),
            Err(error) => errors.push(error),
        }
        let health = snapshot::health(&shared).await;
        if let Some(error) = health["redis"]["error"].as_str() {
            errors.push(format!("state store unreachable: {error}"));
        }
        shared.publish("health", &health);
        shared.publish("errors", &json!(errors));
    }
}
