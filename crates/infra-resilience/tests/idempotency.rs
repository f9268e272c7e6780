//! Presets and retries on tokio's paused clock: an operation that is not idempotent is never
//! repeated after it may have been applied; an idempotent one is.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use infra_resilience::{Backoff, Idempotency, Jitter, ResilienceError, Retry, RetryClass, presets};
use tokio::time::Instant;

/// An exchange client's error, as a bot would classify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum ExchangeError {
    /// The exchange answered with an HTTP status.
    #[error("http {0}")]
    Status(u16),
    /// The connection was refused: the request never left.
    #[error("connection refused")]
    Refused,
    /// The connection dropped after the request was written.
    #[error("connection reset after sending")]
    Reset,
}

impl RetryClass for ExchangeError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Status(429 | 500..) | Self::Refused | Self::Reset)
    }

    fn may_have_been_applied(&self) -> bool {
        !matches!(self, Self::Status(400..=499) | Self::Refused)
    }
}

/// Counts attempts in `attempts`; each one runs `outcome` for its attempt number (1-based).
fn counted<T: Send + 'static>(
    attempts: &Arc<AtomicU32>,
    outcome: impl Fn(u32) -> Option<Result<T, ExchangeError>>,
) -> impl FnMut() -> futures::future::BoxFuture<'static, Result<T, ExchangeError>> {
    let attempts = Arc::clone(attempts);
    move || {
        let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
        match outcome(n) {
            Some(result) => Box::pin(std::future::ready(result)),
            // Hangs until the per-attempt timeout cancels it.
            None => Box::pin(std::future::pending()),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_non_idempotent_preset_does_not_retry_a_timed_out_order() {
    let orders = presets::exchange_rest::<u64, ExchangeError>("idem-orders", Idempotency::NonIdempotent).build();
    let attempts = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let error = orders.call(counted(&attempts, |_| None)).await.unwrap_err();
    assert!(matches!(error, ResilienceError::Timeout { attempts: 1, .. }), "{error:?}");
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "the order may have been placed: never sent again");
    assert_eq!(started.elapsed(), Duration::from_secs(5), "one attempt, cut by the per-attempt timeout");
}

#[tokio::test(start_paused = true)]
async fn an_idempotent_preset_retries_a_timeout() {
    let quotes = presets::exchange_rest::<u64, ExchangeError>("idem-quotes", Idempotency::Idempotent).build();
    let attempts = Arc::new(AtomicU32::new(0));
    let quote = quotes.call(counted(&attempts, |n| (n == 2).then_some(Ok(101)))).await;
    assert_eq!(quote.unwrap(), 101);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);

    let attempts = Arc::new(AtomicU32::new(0));
    let error = quotes.call(counted(&attempts, |_| None)).await.unwrap_err();
    // The third attempt may end at the 15 s deadline rather than its own 5 s bound (jitter).
    assert!(
        matches!(
            error,
            ResilienceError::Timeout { attempts: 3, .. } | ResilienceError::DeadlineExceeded { attempts: 3, .. }
        ),
        "{error:?}"
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_non_idempotent_preset_retries_only_errors_that_were_not_applied() {
    let orders = presets::exchange_rest::<u64, ExchangeError>("idem-orders-errors", Idempotency::NonIdempotent).build();
    // Refused twice, then placed: nothing was sent before, so the retries are safe.
    let attempts = Arc::new(AtomicU32::new(0));
    let placed =
        orders.call(counted(&attempts, |n| Some(if n < 3 { Err(ExchangeError::Refused) } else { Ok(7) }))).await;
    assert_eq!(placed.unwrap(), 7);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);

    for applied in [ExchangeError::Reset, ExchangeError::Status(502)] {
        let attempts = Arc::new(AtomicU32::new(0));
        let error = orders.call(counted(&attempts, |_| Some(Err(applied)))).await.unwrap_err();
        assert_eq!(error.into_inner(), Some(applied));
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "{applied} may have been applied");
    }
    // A refusal by the exchange will not change: not retried, idempotent or not.
    let attempts = Arc::new(AtomicU32::new(0));
    let error = orders.call(counted(&attempts, |_| Some(Err(ExchangeError::Status(400))))).await.unwrap_err();
    assert_eq!(error.into_inner(), Some(ExchangeError::Status(400)));
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_idempotent_preset_retries_transient_errors_but_not_refusals() {
    let quotes = presets::redis::<u64, ExchangeError>("idem-redis-reads", Idempotency::Idempotent).build();
    let attempts = Arc::new(AtomicU32::new(0));
    let value = quotes.call(counted(&attempts, |n| Some(if n < 3 { Err(ExchangeError::Reset) } else { Ok(1) }))).await;
    assert_eq!(value.unwrap(), 1);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);

    let attempts = Arc::new(AtomicU32::new(0));
    let error = quotes.call(counted(&attempts, |_| Some(Err(ExchangeError::Status(404))))).await.unwrap_err();
    assert_eq!(error.attempts(), 1);
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn every_preset_takes_its_idempotency() {
    let attempts = Arc::new(AtomicU32::new(0));
    let deliveries = presets::webhook::<(), ExchangeError>("idem-webhook", Idempotency::NonIdempotent).build();
    let error = deliveries.call(counted(&attempts, |_| None)).await.unwrap_err();
    assert!(matches!(error, ResilienceError::Timeout { attempts: 1, .. }), "{error:?}");
    assert_eq!(attempts.load(Ordering::SeqCst), 1);

    let attempts = Arc::new(AtomicU32::new(0));
    let increments = presets::redis::<i64, ExchangeError>("idem-redis-writes", Idempotency::NonIdempotent).build();
    let error = increments.call(counted(&attempts, |_| None)).await.unwrap_err();
    assert!(matches!(error, ResilienceError::Timeout { attempts: 1, .. }), "{error:?}");
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_plain_retry_takes_an_idempotency_too() {
    let backoff = Backoff { initial: Duration::from_millis(10), jitter: Jitter::None, ..Backoff::default() };
    let retry = Retry::<ExchangeError>::new().max_attempts(4).backoff(backoff).idempotency(Idempotency::NonIdempotent);
    let attempts = Arc::new(AtomicU32::new(0));
    let error = retry.call(counted(&attempts, |_| Some(Err::<(), _>(ExchangeError::Status(503))))).await.unwrap_err();
    assert_eq!(error.attempts(), 1, "a 503 may hide an applied call");

    let attempts = Arc::new(AtomicU32::new(0));
    let error = retry.call(counted(&attempts, |_| Some(Err::<(), _>(ExchangeError::Refused)))).await.unwrap_err();
    assert_eq!(error.attempts(), 4);
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
}
