//! Publish/subscribe for trading bots: one event bus with in-memory and Redis backends.
//!
//! - the object-safe [`EventBus`] trait: publish, batch publish, subscribe to a channel or a
//!   pattern with a handler (each subscription in its own task, errors and panics isolated and
//!   counted), or as a [`Stream`](futures::Stream);
//! - [`memory::MemoryBus`], bounded queues per subscription with an explicit [`Overflow`]
//!   policy and counted drops;
//! - `redis::RedisBus` (feature `redis`), ephemeral mode: PUBLISH / SUBSCRIBE with patterns
//!   matched locally, a subscriber buffer sized so bursts are not lost, a supervised listener,
//!   resubscription after a reconnect and a counted gap notice;
//! - `redis::DurableBus` (feature `redis`), durable mode on Redis Streams: consumer groups,
//!   acknowledgement after the handler succeeds, redelivery of what was not acknowledged in
//!   time, a dead-letter stream after too many deliveries, replay from a [`Position`];
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
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), infra_events::EventsError> {
//! use std::sync::Arc;
//! use futures::StreamExt;
//! use infra_events::{EventBus, Pattern, SubscribeOptions, Topic, memory::MemoryBus};
//!
//! let bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new("bot-1"));
//! let mut prices = bus.stream(Topic::Pattern(Pattern::new("prices:*")), SubscribeOptions::default()).await?;
//! let sent = bus.publish("prices:BTC", serde_json::json!({"price": 50234.56})).await?;
//! assert_eq!(sent.receivers, 1);
//!
//! let event = prices.next().await.expect("an event");
//! assert_eq!(event.channel, "prices:BTC");
//! assert_eq!(event.decode::<serde_json::Value>().unwrap()["price"], 50234.56);
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod bus;
mod envelope;
mod error;
mod factory;
mod pattern;
#[cfg(feature = "resilience")]
mod retry_class;

#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use bus::{
    DEFAULT_CAPACITY, EventBus, EventStream, Handler, Overflow, Position, PublishFuture, Published, Start,
    SubscribeOptions, Subscription, SubscriptionStats, Topic,
};
pub use envelope::{Envelope, EventId, Payload, WIRE_VERSION};
pub use error::{BoxError, EventsError, Result};
pub use factory::from_config;
pub use pattern::Pattern;
