//! Publish/subscribe for trading bots: one event bus with in-memory and Redis backends.
//!
//! **Status: in progress.** This release holds the first building blocks only:
//! - [`Pattern`]: channel patterns with Redis glob semantics, proven identical to Redis's own
//!   matcher against a real server;
//! - [`Envelope`]: the event envelope (ID, channel, timestamp, source, correlation ID) and its
//!   documented JSON wire format; messages from foreign publishers decode as foreign events,
//!   never as errors.
//!
//! The bus itself (publish, subscribe, pattern subscribe, durable mode on Streams) comes next;
//! see the project's issue tracker.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | none | | this crate has no optional parts yet |
//!
//! # Example
//!
//! ```
//! use infra_events::Pattern;
//!
//! let prices = Pattern::new("prices:*");
//! assert!(prices.matches("prices:BTC"));
//! assert!(!prices.matches("orders:BTC"));
//! assert!(Pattern::new("h[^e]llo").matches("hallo"));
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod envelope;
mod pattern;

pub use envelope::{Envelope, Payload, WIRE_VERSION};
pub use pattern::Pattern;
