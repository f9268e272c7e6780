//! Retry on tokio's paused clock: exact schedules, jitter bounds, predicates, hints, budgets.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use infra_resilience::{Backoff, Jitter, ResilienceError, Retry, RetryBudget};
use tokio::time::Instant;

const MS: fn(u64) -> Duration = Duration::from_millis;

#[derive(Debug, Clone, PartialEq)]
enum ApiError {
    Connection,
    BadRequest,
    RateLimited(Duration),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// An operation that fails with `errors` in turn, then succeeds; records when each attempt ran.
fn flaky(
    errors: Vec<ApiError>,
    log: Arc<Mutex<Vec<Instant>>>,
) -> impl FnMut() -> std::future::Ready<Result<u32, ApiError>> {
    let mut errors = errors.into_iter();
    move || {
        log.lock().unwrap().push(Instant::now());
        let attempt = log.lock().unwrap().len() as u32;
        std::future::ready(match errors.next() {
            Some(error) => Err(error),
            None => Ok(attempt),
        })
    }
}

fn gaps(log: &Mutex<Vec<Instant>>) -> Vec<Duration> {
    log.lock().unwrap().windows(2).map(|w| w[1] - w[0]).collect()
}

fn exact(initial: u64) -> Backoff {
    Backoff { initial: MS(initial), max: MS(1_000), multiplier: 2.0, jitter: Jitter::None }
}

#[tokio::test(start_paused = true)]
async fn waits_follow_the_exponential_schedule_exactly() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let retry = Retry::new().max_attempts(6).backoff(exact(100));
    let result = retry.call(flaky(vec![ApiError::Connection; 5], log.clone())).await;
    assert_eq!(result.unwrap(), 6);
    assert_eq!(gaps(&log), [MS(100), MS(200), MS(400), MS(800), MS(1_000)]);
}

#[tokio::test(start_paused = true)]
async fn giving_up_returns_the_last_error_and_the_attempt_count() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let retry = Retry::new().max_attempts(3).backoff(exact(10));
    let error = retry.call(flaky(vec![ApiError::Connection; 10], log.clone())).await.unwrap_err();
    assert_eq!(error.attempts(), 3);
    assert_eq!(error.into_inner(), Some(ApiError::Connection));
    assert_eq!(log.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn jittered_waits_stay_within_their_bounds() {
    for (jitter, low, high) in [(Jitter::Full, 0.0, 1.0), (Jitter::Equal, 0.5, 1.0)] {
        for _ in 0..50 {
            let log = Arc::new(Mutex::new(Vec::new()));
            let retry = Retry::new().max_attempts(4).backoff(Backoff { jitter, ..exact(100) });
            retry.call(flaky(vec![ApiError::Connection; 3], log.clone())).await.unwrap();
            for (gap, base) in gaps(&log).into_iter().zip([100.0, 200.0, 400.0]) {
                let ms = gap.as_secs_f64() * 1000.0;
                assert!(ms >= base * low - 1e-6 && ms <= base * high + 1e-6, "{jitter:?}: {ms} ms for base {base}");
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn only_errors_the_predicate_selects_are_retried() {
    // The original design's retry_on=(ConnectionError, TimeoutError).
    let retry = Retry::new().max_attempts(5).backoff(exact(10)).retry_if(|e: &ResilienceError<ApiError>| {
        matches!(e.inner(), Some(ApiError::Connection)) || matches!(e, ResilienceError::Timeout { .. })
    });
    let log = Arc::new(Mutex::new(Vec::new()));
    let error = retry.call(flaky(vec![ApiError::Connection, ApiError::BadRequest], log.clone())).await.unwrap_err();
    assert_eq!((error.attempts(), error.into_inner()), (2, Some(ApiError::BadRequest)));
}

#[tokio::test(start_paused = true)]
async fn retry_after_hints_are_honoured_up_to_the_cap() {
    let hint = |e: &ApiError| match e {
        ApiError::RateLimited(wait) => Some(*wait),
        _ => None,
    };
    let retry = Retry::new().max_attempts(4).backoff(exact(100)).retry_after(hint, MS(2_000));
    let log = Arc::new(Mutex::new(Vec::new()));
    let errors = vec![ApiError::RateLimited(MS(700)), ApiError::RateLimited(MS(60_000)), ApiError::RateLimited(MS(1))];
    retry.call(flaky(errors, log.clone())).await.unwrap();
    // 700 ms as asked; 60 s capped to 2 s; 1 ms is shorter than the backoff's 400 ms.
    assert_eq!(gaps(&log), [MS(700), MS(2_000), MS(400)]);
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_past_the_elapsed_cap() {
    let retry = Retry::new().max_attempts(10).backoff(exact(100)).max_elapsed(MS(650));
    let log = Arc::new(Mutex::new(Vec::new()));
    let error = retry.call(flaky(vec![ApiError::Connection; 10], log.clone())).await.unwrap_err();
    // Waits of 100, 200 (300 in all) fit; the next 400 would end at 700 > 650.
    assert_eq!(gaps(&log), [MS(100), MS(200)]);
    assert_eq!(error.attempts(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_shared_budget_stops_retries_across_clones() {
    let budget = RetryBudget::new(4, 0.5);
    let retry = Retry::new().max_attempts(5).backoff(exact(10)).budget(budget.clone());
    let clone = retry.clone();
    // First caller: fails 1 + 1 retry (tokens 4 → 3 → 2, and 2 is not more than half of 4).
    let log = Arc::new(Mutex::new(Vec::new()));
    let error = retry.call(flaky(vec![ApiError::Connection; 10], log.clone())).await.unwrap_err();
    assert_eq!(error.attempts(), 2);
    // The clone shares the drained bucket: one attempt, no retry.
    let error = clone.call(flaky(vec![ApiError::Connection; 10], Arc::default())).await.unwrap_err();
    assert_eq!(error.attempts(), 1);
    // Successes refill it.
    for _ in 0..4 {
        clone.call(flaky(vec![], Arc::default())).await.unwrap();
    }
    assert!(budget.can_retry());
}

#[tokio::test(start_paused = true)]
async fn the_hook_sees_every_retry() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let retry = Retry::new().max_attempts(3).backoff(exact(50)).on_retry(move |event| {
        sink.lock().unwrap().push((event.attempt, event.delay, event.error.inner().cloned()));
    });
    retry.call(flaky(vec![ApiError::Connection, ApiError::Connection], Arc::default())).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [(1, MS(50), Some(ApiError::Connection)), (2, MS(100), Some(ApiError::Connection))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_first_success_does_not_wait() {
    let started = Instant::now();
    let value = Retry::<ApiError>::new().call(|| async { Ok::<_, ApiError>(5) }).await.unwrap();
    assert_eq!((value, started.elapsed()), (5, Duration::ZERO));
}
