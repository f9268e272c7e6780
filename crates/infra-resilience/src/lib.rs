//! Retry, circuit breaker, timeout, bulkhead and fallback for async calls, composable in one
//! [`Policy`] and, with the `tower` feature, as `tower` layers.
//!
//! - [`Retry`]: exponential [`Backoff`] with full, equal or decorrelated [`Jitter`] (or none),
//!   attempts and elapsed-time caps, a predicate, retry-after hints (capped), a hook, and a
//!   [`RetryBudget`] shared across clones so a fleet cannot multiply load during an outage;
//! - [`CircuitBreaker`]: consecutive failures or a failure rate over the last N calls (with a
//!   minimum), optional slow calls, exactly K half-open probes, forced states, state-change
//!   subscription and metrics; a lock-free, allocation-free closed path; [`BreakerRegistry`]
//!   hands out one per dependency;
//! - [`timeout()`] per attempt and an overall deadline across retries, as typed errors;
//! - [`Bulkhead`]: a bound on concurrent calls, rejecting or waiting (bounded);
//! - [`Policy`]: fallback → deadline → retry → breaker → timeout → bulkhead, and [`presets`]
//!   for an exchange REST API, Redis and a webhook;
//! - [`RetryClass`] and [`Idempotency`]: whether an error is worth retrying and whether the
//!   failed call may have been applied, so that an operation that is not idempotent (an order,
//!   an increment) is never repeated after it may have taken effect.
//!
//! Everything runs on tokio's clock, so tests on a paused clock see exact schedules.
//!
//! # Metrics
//!
//! Recorded through the [`metrics`](https://docs.rs/metrics) facade (no exporter here), in
//! Resilience4j's vocabulary, as docs/observability/metrics.md lists them:
//!
//! | name | type | labels |
//! |---|---|---|
//! | `infra_circuitbreaker_state` | gauge | `name`, `state` (1 for the current state, 0 for the other four) |
//! | `infra_circuitbreaker_calls_total` | counter | `name`, `kind`: `successful`, `failed`, `ignored`, `not_permitted` |
//! | `infra_circuitbreaker_transitions_total` | counter | `name`, `from`, `to` |
//! | `infra_retry_calls_total` | counter | `name`, `kind`: `successful_without_retry`, `successful_with_retry`, `failed_without_retry`, `failed_with_retry` |
//! | `infra_timelimiter_calls_total` | counter | `name`, `kind`: `successful`, `failed`, `timeout` |
//! | `infra_bulkhead_calls_total` | counter | `name`, `kind`: `permitted`, `rejected` |
//! | `infra_bulkhead_available_concurrent_calls` | gauge | `name` |
//!
//! Each component resolves its handles once, when it is built ([`CircuitBreaker::new`],
//! [`Retry::new`] or [`Retry::name`], [`PolicyBuilder::build`], [`Bulkhead::new`], and in
//! `tower_layers` when a layer makes its service), so **install the recorder before building
//! them**: a component built earlier records nothing. A successful call through a closed breaker
//! then costs one counter increment. `name` is the breaker's or bulkhead's name; a retry, a
//! policy's timeout and the tower timeout and retry are named with their `name` builder method
//! (a policy defaults to its breaker's name, the others to `"default"`). The free function
//! [`timeout()`] has no name and records nothing. A cancelled call counts as none of the kinds.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `tower` | | `tower_layers`: `tower::Layer`s for the breaker, the timeout and the bulkhead (named futures, no boxing), and `tower::retry::Policy` for [`Retry`] |
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use infra_resilience::{BreakerSettings, CircuitBreaker, Policy, ResilienceError, Retry};
//!
//! let breaker = CircuitBreaker::new("exchange", BreakerSettings::default());
//! let policy = Policy::<u64, String>::builder()
//!     .retry(Retry::new().max_attempts(4))
//!     .breaker(breaker)
//!     .timeout(Duration::from_millis(500))
//!     .build();
//!
//! // A read, so repeating it is harmless (see `Retry::idempotency` for calls that are not).
//! let mut calls = 0;
//! let balance = policy
//!     .call(|| {
//!         calls += 1;
//!         let attempt = calls;
//!         async move { if attempt < 3 { Err("502 bad gateway".to_owned()) } else { Ok(42) } }
//!     })
//!     .await;
//! assert_eq!(balance.unwrap(), 42);
//!
//! let never = policy.call(|| std::future::pending::<Result<u64, String>>()).await;
//! assert!(matches!(never, Err(ResilienceError::Timeout { attempts: 4, .. })));
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod backoff;
mod breaker;
mod budget;
mod bulkhead;
mod counter;
mod error;
mod instruments;
mod names;
mod policy;
pub mod presets;
mod retry;
mod retry_class;
mod timeout;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower_layers;

pub use backoff::{Backoff, Jitter};
pub use breaker::{
    BreakerMetrics, BreakerRegistry, BreakerSettings, BreakerState, CircuitBreaker, OwnedPermit, Permit, StateChange,
};
pub use budget::RetryBudget;
pub use bulkhead::{Bulkhead, BulkheadSlot};
pub use error::{ReopensAt, ResilienceError};
pub use policy::{Policy, PolicyBuilder, TimeLimiterMetrics};
pub use retry::{Retry, RetryEvent};
pub use retry_class::{Idempotency, RetryClass};
pub use timeout::timeout;
