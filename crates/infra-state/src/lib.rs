//! Key/value state for trading bots: one object-safe [`StateStore`] trait, with in-memory and
//! Redis backends whose behaviour is identical (proven by one shared conformance suite).
//!
//! Bots keep prices, counters, locks and positions here: the memory backend in development,
//! Redis in production, no code change between them ([`from_config`]).
//!
//! | operation | what it does |
//! |---|---|
//! | [`get`](StateStore::get), [`set`](StateStore::set) (optional TTL), [`delete`](StateStore::delete), [`exists`](StateStore::exists) | the basics |
//! | [`ttl`](StateStore::ttl), [`expire`](StateStore::expire) | millisecond time to live |
//! | [`set_if_not_exists`](StateStore::set_if_not_exists) | a lock (with a TTL, one that frees itself) |
//! | [`increment`](StateStore::increment) | atomic integer or float counters (Redis `INCRBY` semantics) |
//! | [`get_many`](StateStore::get_many), [`set_many`](StateStore::set_many) | bulk, one round trip |
//! | [`scan`](StateStore::scan) | keys by prefix (`SCAN` on Redis, never `KEYS`) |
//! | [`get_versioned`](StateStore::get_versioned), [`compare_and_swap`](StateStore::compare_and_swap), [`compare_and_delete`](StateStore::compare_and_delete) | optimistic updates across processes |
//! | [`connect`](StateStore::connect), [`ping`](StateStore::ping), [`close`](StateStore::close) | fail at start-up, health checks, an orderly shutdown |
//!
//! [`StateStoreExt`] adds what bots write every day: serde helpers (`get_json`, `set_json`,
//! `get_many_json`, `set_many_json`, `incr`), [`update_json`](StateStoreExt::update_json) (a
//! bounded optimistic read-modify-write whose closure may refuse) and
//! [`lock`](StateStoreExt::lock) (a [`LockGuard`] only its owner extends or releases).
//!
//! Values are JSON text ([`StateValue`]), so any Redis client in any language reads them.
//!
//! Performance note: a call through `dyn StateStore` boxes the backend's future. For the memory
//! backend that costs nothing ([`StateFuture`] holds ready results inline); for Redis it is
//! measurable under heavy concurrency, because fred's command futures are large (figures in
//! docs/benchmarks.md). Hot paths can hold a concrete `redis::RedisStore`, whose inherent methods (same names, same semantics)
//! skip the box.
//!
//! # Metrics
//!
//! Every store records through the [`metrics`](https://docs.rs/metrics) facade (names and labels
//! in docs/observability/metrics.md). Install a recorder **before** building a store: a store
//! resolves its metric handles once, when it is built ([`memory::MemoryStore::new`],
//! [`redis::RedisStore::with_url`]), so a call records with one atomic add, and with a
//! not-taken branch when no recorder was installed.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `infra_state_operations_total` | counter | `op`, `backend` (`memory`, `redis`), `outcome` (`ok`, `error`) |
//! | `infra_state_operation_duration_seconds` | histogram | `op`, `backend="redis"`: each Redis-backed call's latency |
//! | `infra_state_reconnects_total` | counter | `backend="redis"`: the connection re-established |
//!
//! `op` is `get`, `set`, `delete`, `exists`, `ttl`, `expire`, `increment`, `set_if_absent`
//! ([`set_if_not_exists`](StateStore::set_if_not_exists)), `compare_and_swap`,
//! `compare_and_delete`, `get_versioned`, `get_many`, `set_many`, `scan` (recorded when the
//! stream ends or fails) and `ping`; `connect` and `close` are not counted.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `memory` | yes | [`memory::MemoryStore`] |
//! | `redis` | | [`redis::RedisStore`], through the `infra-redis` connection layer (key layout documented there) |
//! | `tls` | | `rediss://` URLs (rustls with ring) for the Redis backend; CA and client certificate as URL parameters (see `infra-redis`) |
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "memory")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use infra_config::{Config, Environment};
//! use infra_state::StateStoreExt;
//!
//! let config = Config::for_env(Environment::Development);
//! let state = infra_state::from_config(&config.state)?; // Arc<dyn StateStore>, memory here
//!
//! state.set_json("price:BTC", &50_234.56, Some(Duration::from_secs(5))).await?;
//! assert_eq!(state.get_json::<f64>("price:BTC").await?, Some(50_234.56));
//!
//! let guard = state.lock("lock:rebalance", Duration::from_secs(30)).await?.expect("free");
//! assert!(state.lock("lock:rebalance", Duration::from_secs(30)).await?.is_none(), "held");
//! guard.release().await?;
//! assert_eq!(state.incr("trades:today", 1).await?, 1);
//!
//! let position = state.update_json("position:BTC", None, |qty: Option<i64>| qty.unwrap_or(0) + 3).await?;
//! assert_eq!(position, 3);
//! # Ok(()) }
//! # #[cfg(not(feature = "memory"))]
//! # fn main() {}
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod error;
mod factory;
#[cfg(any(feature = "memory", feature = "redis"))]
mod instruments;
mod lock;
#[cfg(feature = "resilience")]
mod retry_class;
mod store;
mod update;
mod value;

#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub mod memory;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use error::{BoxError, Result, StateError};
pub use factory::from_config;
pub use lock::LockGuard;
pub use store::{DynStateStore, MAX_VALUE_BYTES, StateFuture, StateStore, StateStoreExt};
pub use update::{UpdateOptions, UpdateResult};
pub use value::{CasOutcome, Expected, Number, StateValue, Ttl, Version, Versioned};
