//! Publish/subscribe for trading bots: one event bus with in-memory and Redis backends.
//!
//! - the object-safe [`EventBus`] trait: publish, batch publish, subscribe to a channel or a
//!   pattern with a handler (each subscription in its own task, errors and panics isolated and
//!   counted), or as a [`Stream`](futures::Stream); `connect()` and `ping()` to check the bus
//!   at start-up, `close()` to shut it down;
//! - [`EventBusExt`], on every bus (`Arc<dyn EventBus>` included): `publish_json` any
//!   `Serialize` value, `subscribe_json` with the payload decoded and the [`EventMeta`] (a
//!   payload that does not decode is a counted handler error), `subscribe_channel` and
//!   `subscribe_pattern` with default options. A [`Handler`] is any closure or `async fn` taking
//!   an [`Envelope`] and returning `()` or `Result<(), E>`;
//! - [`memory::MemoryBus`], bounded queues per subscription with an explicit [`Overflow`]
//!   policy and counted drops;
//! - `redis::RedisBus` (feature `redis`), ephemeral mode: PUBLISH / SUBSCRIBE with patterns
//!   matched locally, a subscriber buffer sized so bursts are not lost, a supervised listener,
//!   resubscription after a reconnect and a counted gap notice;
//! - `redis::DurableBus` (feature `redis`), durable mode on Redis Streams: consumer groups,
//!   acknowledgement after the handler succeeds, redelivery of what was not acknowledged in
//!   time, a dead-letter stream after too many deliveries, replay from a [`Position`];
//! - [`Published`]: what a publish reports, the same fields with the same meaning on every
//!   backend (a table in its docs says which each one knows);
//! - [`Pattern`]: Redis glob semantics, proven identical to Redis's own matcher;
//! - [`Envelope`]: ID, channel, timestamp, source and correlation ID, with a documented JSON
//!   wire format; foreign messages decode as foreign events, never as errors.
//!
//! [`from_config`] builds the configured bus (`events.backend`, `events.mode`).
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `memory` | yes | [`memory::MemoryBus`] |
//! | `redis` | | `redis::RedisBus` (pub/sub) and `redis::DurableBus` (streams) through `fred` |
//! | `tls` | | `rediss://` URLs (rustls with ring) for the Redis buses; CA and client certificate as URL parameters (see `infra-redis`) |
//!
//! # Metrics
//!
//! Every bus records through the [`metrics`](https://docs.rs/metrics) facade (catalog:
//! docs/observability/metrics.md). `backend` is `memory`, `redis` (pub/sub) or `redis_streams`
//! (durable); `topic` is the channel or pattern as subscribed, never each matched channel.
//! Handles are resolved when a bus is built (publishing) and when a subscription is made, so
//! install the recorder before both; each counter moves with its [`SubscriptionStats`] twin.
//!
//! | name | labels |
//! |---|---|
//! | `infra_events_published_total` | `backend`, `outcome` (`ok`, `error`) |
//! | `infra_events_received_total` | `topic`, `backend` |
//! | `infra_events_handled_total` | `topic`, `backend`, `outcome` (`ok`, `error`, `panic`) |
//! | `infra_events_dropped_total` | `topic`, `backend` |
//! | `infra_events_gaps_total` | `topic`, `backend` |
//! | `infra_events_redelivered_total` | `topic`, `backend="redis_streams"` |
//! | `infra_events_dead_lettered_total` | `topic`, `backend="redis_streams"` |
//! | `infra_events_trimmed_total` | `topic`, `backend="redis_streams"` |
//!
//! A stream ([`EventStream`]) counts each event it yields as handled `ok`.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), infra_events::EventsError> {
//! use infra_config::EventsConfig;
//! use infra_events::{Envelope, EventBusExt, EventMeta};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Price {
//!     symbol: String,
//!     price: f64,
//! }
//!
//! // The same code runs on Redis with `EventsConfig::redis(url)?` (or `Config::load_env`).
//! let bus = infra_events::from_config(&EventsConfig::memory().namespace("arb-1"), "bot-1")?;
//! bus.connect().await?; // on Redis, an unreachable server fails here, not at the first publish
//!
//! let prices = bus
//!     .subscribe_json("prices", |price: Price, meta: EventMeta| async move {
//!         println!("{} = {} (event {} from {})", price.symbol, price.price, meta.id, meta.source);
//!     })
//!     .await?;
//! let alerts = bus
//!     .subscribe_pattern("alerts:*", |event: Envelope| async move {
//!         match event.decode::<String>() {
//!             Ok(text) => Ok(println!("{}: {text}", event.channel)),
//!             Err(error) => Err(format!("unreadable alert on {}: {error}", event.channel)),
//!         }
//!     })
//!     .await?;
//!
//! let sent = bus.publish_json("prices", &Price { symbol: "BTC".into(), price: 50_234.56 }).await?;
//! assert_eq!(sent.delivered_to, Some(1));
//! bus.publish_json("alerts:risk", &"drawdown at 4%").await?;
//! bus.publish_json("alerts:risk", &42).await?; // not a string: counted as a handler error
//! bus.publish_json("prices", &"not a price").await?; // does not decode: counted too
//!
//! let prices = prices.unsubscribe().await;
//! assert_eq!((prices.handled(), prices.errors()), (1, 1));
//! let alerts = alerts.unsubscribe().await;
//! assert_eq!((alerts.handled(), alerts.errors()), (1, 1));
//! assert!(alerts.last_error().unwrap().starts_with("unreadable alert on alerts:risk"));
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod bus;
mod envelope;
mod error;
mod ext;
mod factory;
mod handler;
mod metrics;
mod pattern;
mod publish;
#[cfg(feature = "resilience")]
mod retry_class;
mod stats;

#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use bus::{
    DEFAULT_CAPACITY, EventBus, EventStream, Overflow, Position, Start, SubscribeOptions, Subscription,
    SubscriptionStats, Topic,
};
pub use envelope::{Envelope, EventId, EventMeta, Payload, WIRE_VERSION};

/// The largest event the Redis buses send, in bytes of its wire form (envelope and payload as
/// JSON): 16 MiB. Larger events are refused with [`EventsError::PayloadTooLarge`] before
/// anything is sent: Redis disconnects a pub/sub subscriber whose output buffer passes 32 MB
/// (`client-output-buffer-limit pubsub`), so a larger event could never be delivered, and a
/// stream entry that size stalls every consumer. The memory bus passes payloads by reference and
/// has no such limit (a documented difference).
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;
pub use error::{BoxError, EventsError, Result};
pub use ext::{EventBusExt, JsonHandler};
pub use factory::from_config;
pub use handler::{Handler, IntoHandlerResult};
pub use pattern::Pattern;
pub use publish::{PublishFuture, Published};
