//! Publish/subscribe for trading bots: one event bus with in-memory and Redis backends.
//!
//! **Status: in progress.** This release holds the first building block only: [`Pattern`],
//! channel patterns with Redis glob semantics, proven identical to Redis's own matcher against
//! a real server. The bus itself (publish, subscribe, pattern subscribe, envelopes with
//! correlation IDs, durable mode on Streams) comes next; see the project's issue tracker.
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

mod pattern;

pub use pattern::Pattern;
