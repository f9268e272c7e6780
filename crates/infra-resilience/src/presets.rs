//! Ready-made policies for common dependencies. Each returns a builder: change what you need,
//! then `build()`. Breakers come from the process-wide [`BreakerRegistry`] under the given name,
//! so every policy for one dependency shares one breaker; the retry, the timeout and the
//! bulkhead record their metrics under that name too.
//!
//! Every preset asks whether the operation is [idempotent](Idempotency) and requires its error
//! type to implement [`RetryClass`]; its retry predicate is [`Idempotency::allows_retry`]. A
//! non-idempotent operation (an order without a deduplicated client order ID, an increment, a
//! publish) is therefore never retried after a per-attempt timeout or an error that may have
//! been applied, only after errors that certainly were not (a refused connection).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use infra_resilience::{Idempotency, RetryClass, presets};
//!
//! #[derive(Debug, thiserror::Error)]
//! enum ApiError {
//!     #[error("http {0}")]
//!     Status(u16),
//!     #[error("connection refused")]
//!     Refused,
//! }
//!
//! impl RetryClass for ApiError {
//!     fn is_transient(&self) -> bool {
//!         matches!(self, Self::Status(429 | 500..) | Self::Refused)
//!     }
//!     fn may_have_been_applied(&self) -> bool {
//!         !matches!(self, Self::Status(400..=499) | Self::Refused)
//!     }
//! }
//!
//! // Quotes can be fetched again; an order must not be sent twice.
//! let quotes = presets::exchange_rest::<f64, ApiError>("docs-exchange", Idempotency::Idempotent).build();
//! let orders = presets::exchange_rest::<u64, ApiError>("docs-exchange", Idempotency::NonIdempotent).build();
//!
//! let mut sent = 0;
//! let placed = orders
//!     .call(|| {
//!         sent += 1;
//!         let attempt = sent;
//!         async move { Err::<u64, _>(if attempt == 1 { ApiError::Refused } else { ApiError::Status(502) }) }
//!     })
//!     .await;
//! // Refused: nothing was sent, so it was sent again. A 502 may hide an order the exchange
//! // executed: not sent a third time.
//! assert_eq!((sent, placed.unwrap_err().attempts()), (2, 2));
//! # let _ = quotes;
//! # }
//! ```

use std::time::Duration;

use crate::{
    Backoff, BreakerRegistry, BreakerSettings, Bulkhead, Idempotency, Jitter, PolicyBuilder, Retry, RetryClass,
};

/// An exchange's REST API: up to 3 attempts from 200 ms (full jitter, up to 5 s), retrying what
/// `idempotency` [allows](Idempotency::allows_retry) and honouring no retry-after hint (for
/// 429s, replace it with a [`Retry`] that adds [`Retry::retry_after`] to
/// [`Retry::idempotency`]), 5 s per attempt, 15 s overall; a breaker opening on 5 consecutive failures or half of the last 20
/// calls, for 30 s, with 2 probes; at most 10 calls at once, waiting up to 1 s for a slot.
///
/// Use [`Idempotency::NonIdempotent`] for order placement unless the exchange deduplicates your
/// client order IDs, [`Idempotency::Idempotent`] for market data, balances and cancels.
pub fn exchange_rest<T, E: RetryClass + 'static>(name: &str, idempotency: Idempotency) -> PolicyBuilder<T, E> {
    let breaker = BreakerRegistry::global().get_or_insert_with(name, || {
        BreakerSettings::default()
            .failure_threshold(5)
            .failure_rate(0.5, 20, 10)
            .open_duration(Duration::from_secs(30))
            .half_open_max_calls(2)
    });
    crate::Policy::builder()
        .retry(Retry::named(name).max_attempts(3).idempotency(idempotency).backoff(Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: Jitter::Full,
        }))
        .breaker(breaker)
        .timeout(Duration::from_secs(5))
        .deadline(Duration::from_secs(15))
        .bulkhead(Bulkhead::new(name, 10, Some(Duration::from_secs(1))))
}

/// Redis: up to 3 attempts from 10 ms (equal jitter, up to 200 ms), retrying what `idempotency`
/// [allows](Idempotency::allows_retry), 500 ms per attempt, 2 s overall; a breaker opening on
/// 10 consecutive failures or half of the last 100 calls, for 5 s.
///
/// Gets, `SET`s of a fixed value and deletes are idempotent; increments, set-if-absent,
/// compare-and-swap and publishes are not (a second attempt would count twice, or report that
/// the first one's write is in the way). With the `resilience` feature of infra-state and
/// infra-events, `StateError` and `EventsError` implement [`RetryClass`].
pub fn redis<T, E: RetryClass + 'static>(name: &str, idempotency: Idempotency) -> PolicyBuilder<T, E> {
    let breaker = BreakerRegistry::global().get_or_insert_with(name, || {
        BreakerSettings::default()
            .failure_threshold(10)
            .failure_rate(0.5, 100, 20)
            .open_duration(Duration::from_secs(5))
            .half_open_max_calls(3)
    });
    crate::Policy::builder()
        .retry(Retry::named(name).max_attempts(3).idempotency(idempotency).backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(200),
            multiplier: 2.0,
            jitter: Jitter::Equal,
        }))
        .breaker(breaker)
        .timeout(Duration::from_millis(500))
        .deadline(Duration::from_secs(2))
}

/// An outgoing webhook: up to 5 attempts from 1 s (decorrelated jitter, up to 60 s), retrying
/// what `idempotency` [allows](Idempotency::allows_retry), 10 s per attempt, 5 minutes
/// overall; a breaker opening on 5 consecutive failures, for 60 s; at most 4 deliveries at once,
/// waiting up to 30 s. A delivery is idempotent when the receiver deduplicates it (by a delivery
/// ID it sees again on a retry).
pub fn webhook<T, E: RetryClass + 'static>(name: &str, idempotency: Idempotency) -> PolicyBuilder<T, E> {
    let breaker = BreakerRegistry::global().get_or_insert_with(name, || {
        BreakerSettings::default().failure_threshold(5).open_duration(Duration::from_secs(60))
    });
    crate::Policy::builder()
        .retry(Retry::named(name).max_attempts(5).idempotency(idempotency).backoff(Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: Jitter::Decorrelated,
        }))
        .breaker(breaker)
        .timeout(Duration::from_secs(10))
        .deadline(Duration::from_secs(300))
        .bulkhead(Bulkhead::new(name, 4, Some(Duration::from_secs(30))))
}
