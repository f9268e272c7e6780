//! One call assembles the infra stack for a trading bot: state, events, the emergency
//! controller, circuit breakers and logging, from one [`Config`].
//!
//! [`Infrastructure::create`] (or [`create_infrastructure`] with an environment's name) builds
//! the configured backends and does the wiring that crosses components, once:
//!
//! - the store and the bus a bot gets are wrapped in the configured resilience policy by
//!   decorators implementing the same traits ([`ResilientStore`], [`ResilientBus`]), which
//!   retry only what is safe to repeat (never an increment or a publish that may have been
//!   applied) and share the breakers `"state"` and `"events"` of one registry
//!   ([`Infrastructure::breaker`], whose state changes go on the bus's [`BREAKER_CHANNEL`];
//!   [`Infrastructure::policy`] builds a policy for a bot's own dependency on the same
//!   registry);
//! - the emergency controller is restored from the store at start and publishes its
//!   transitions on the bus;
//! - logging is set up from the configuration unless the process already has a subscriber;
//! - the correlation ID of an execution follows its state calls (the decorators run every
//!   attempt in the caller's task, so their log lines carry it) and its events (the envelope
//!   carries the publisher's ID, restored around the subscribers' handlers).
//!
//! [`Infrastructure::health`] reports each part ([`HealthReport`], serializable);
//! [`Infrastructure::close`] shuts down in order. The component crates are re-exported as
//! modules ([`state`], [`events`], [`emergency`], [`resilience`], [`log`], [`config`]) and what
//! a bot uses every day is in the [`prelude`].
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `redis` | | the Redis backends of the store, the bus and the emergency controller (without it, only memory backends are compiled and no Redis client is built) |
//! | `tls` | | `rediss://` URLs (rustls with ring) for the store, the bus and the controller; CA and client certificate as URL parameters (`tls_ca`, `tls_cert`, `tls_key`, `tls_server_name`) |
//! | `tower` | | `resilience::tower_layers`: `tower` layers for the breaker, timeout and bulkhead |
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use infra_facade::prelude::*;
//!
//! // Development: memory backends, console logs. Nothing to install.
//! let infra = create_infrastructure("development").await?;
//! let state = infra.state();
//! let events = infra.events();
//!
//! // Every call goes through the policy; the correlation ID follows the execution.
//! let mut fills = events.stream(Topic::from("fills"), SubscribeOptions::default()).await?;
//! let execution = CorrelationId::parse("exec-42")?;
//! with_correlation_id(execution.clone(), async {
//!     infra.emergency().assert_can_trade()?;
//!     state.set_json("position:BTC", &0.5, None).await?;
//!     assert_eq!(state.incr("trades:today", 1).await?, 1);
//!     events.publish_json("fills", &serde_json::json!({"qty": 0.5})).await?;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })
//! .await?;
//! let fill = futures::StreamExt::next(&mut fills).await.expect("an event");
//! assert_eq!(fill.correlation_id, Some(execution));
//!
//! // The kill switch, through the facade.
//! let bot = infra.emergency().bot_scope().clone();
//! infra.emergency().halt(bot, "alice", "drill").await?;
//! assert!(!infra.emergency().can_trade());
//!
//! let health = infra.health().await;
//! assert!(health.healthy && !health.emergency.can_trade);
//! assert_eq!(infra.breaker("state").state(), BreakerState::Closed);
//! infra.close().await?;
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod bus;
mod endpoint;
mod error;
mod health;
mod infrastructure;
mod layers;
mod logging;
mod metrics;
mod store;

pub use bus::ResilientBus;
pub use endpoint::{BeforeScrape, MetricsEndpoint};
pub use error::FacadeError;
pub use health::{BackendHealth, BreakerHealth, EmergencyHealth, HealthReport, LoggingHealth};
pub use infra_config::Config;
pub use infrastructure::{
    BREAKER_CHANNEL, EVENTS_BREAKER, Infrastructure, InfrastructureBuilder, STATE_BREAKER, create_infrastructure,
};
pub use layers::CallStats;
pub use logging::LogSetup;
pub use metrics::{PrometheusRecorder, record_redis_ping};
pub use store::ResilientStore;

/// Typed, layered configuration (`infra-config`).
pub use infra_config as config;
/// The kill switch (`infra-emergency`).
pub use infra_emergency as emergency;
/// Publish/subscribe (`infra-events`).
pub use infra_events as events;
/// Structured logs and correlation IDs (`infra-log`).
pub use infra_log as log;
/// Retry, circuit breaker, timeout, bulkhead (`infra-resilience`).
pub use infra_resilience as resilience;
/// Key/value state (`infra-state`).
pub use infra_state as state;

/// What a bot uses every day: `use infra_facade::prelude::*;`.
pub mod prelude {
    pub use infra_config::{Config, Environment};
    pub use infra_emergency::{
        ControllerOptions, EmergencyController, EmergencyError, EmergencyEvent, EmergencyState, Scope, Status,
    };
    pub use infra_events::{
        Envelope, EventBus, EventBusExt, EventMeta, EventsError, Pattern, SubscribeOptions, Subscription, Topic,
    };
    pub use infra_log::{CorrelationId, LogContext, current_correlation_id, with_correlation_id};
    pub use infra_resilience::{
        BreakerState, CircuitBreaker, Idempotency, Policy, ResilienceError, Retry, RetryClass, presets,
    };
    pub use infra_state::{StateError, StateStore, StateStoreExt, StateValue};

    pub use crate::{FacadeError, HealthReport, Infrastructure, create_infrastructure};
}
