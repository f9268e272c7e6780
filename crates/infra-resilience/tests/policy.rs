//! Policies on tokio's paused clock: the documented layer order, the deadline across retries,
//! fallbacks, presets and configuration.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use infra_config::{Config, Environment};
use infra_resilience::{
    Backoff, BreakerSettings, BreakerState, Bulkhead, CircuitBreaker, Idempotency, Jitter, Policy, ResilienceError,
    Retry, presets,
};
use tokio::time::Instant;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn exact(initial: u64) -> Backoff {
    Backoff { initial: MS(initial), max: MS(10_000), multiplier: 2.0, jitter: Jitter::None }
}

/// Counts calls; each one hangs forever.
fn hanging(calls: &Arc<AtomicU32>) -> impl FnMut() -> futures::future::BoxFuture<'static, Result<u32, String>> + '_ {
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::pending())
    }
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_retried_and_counted_by_the_breaker_until_it_opens() {
    let breaker =
        CircuitBreaker::new("order", BreakerSettings::default().failure_threshold(3).open_duration(MS(5_000)));
    let policy = Policy::<u32, String>::builder()
        .retry(Retry::new().max_attempts(5).backoff(exact(100)))
        .breaker(breaker.clone())
        .timeout(MS(200))
        .build();
    let calls = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let error = policy.call(hanging(&calls)).await.unwrap_err();
    // Three timed-out attempts open the breaker; the fourth attempt is rejected, and the retry
    // does not retry a rejection.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(matches!(error, ResilienceError::CircuitOpen { attempts: 4, .. }), "{error}");
    assert_eq!(started.elapsed(), MS(200 + 100 + 200 + 200 + 200 + 400));
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_the_whole_call_across_retries() {
    let policy = Policy::<u32, String>::builder()
        .retry(Retry::new().max_attempts(10).backoff(exact(100)))
        .timeout(MS(300))
        .deadline(MS(1_000))
        .build();
    let calls = Arc::new(AtomicU32::new(0));
    let started = Instant::now();
    let error = policy.call(hanging(&calls)).await.unwrap_err();
    // 0-300 timeout, wait 100, 400-700 timeout, wait 200, 900-1000 cut by the deadline.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(matches!(error, ResilienceError::DeadlineExceeded { attempts: 3, .. }), "{error}");
    assert_eq!(started.elapsed(), MS(1_000));

    // A retry whose wait alone would pass the deadline is not started.
    let policy = Policy::<u32, String>::builder()
        .retry(Retry::new().max_attempts(10).backoff(exact(800)))
        .timeout(MS(300))
        .deadline(MS(1_000))
        .build();
    let started = Instant::now();
    let error = policy.call(hanging(&Arc::default())).await.unwrap_err();
    assert!(matches!(error, ResilienceError::Timeout { attempts: 1, .. }), "{error}");
    assert_eq!(started.elapsed(), MS(300));
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_rejects_without_tripping_the_breaker_and_the_fallback_answers() {
    let bulkhead = Bulkhead::new("quotes", 1, None);
    let breaker = CircuitBreaker::new("quotes", BreakerSettings::default().failure_threshold(1));
    let policy = Policy::<f64, String>::builder()
        .breaker(breaker.clone())
        .bulkhead(bulkhead.clone())
        .fallback(|error| match error {
            ResilienceError::BulkheadFull { .. } => Ok(-1.0),
            other => Err(other),
        })
        .build();
    let held = bulkhead.acquire::<String>().await.unwrap();
    assert_eq!(policy.call(|| async { Ok::<_, String>(1.5) }).await.unwrap(), -1.0);
    assert_eq!(breaker.state(), BreakerState::Closed, "a rejection is not the dependency's failure");
    drop(held);
    assert_eq!(policy.call(|| async { Ok::<_, String>(1.5) }).await.unwrap(), 1.5);
    let error = policy.call(|| async { Err::<f64, _>("down".to_owned()) }).await.unwrap_err();
    assert_eq!(error.into_inner().as_deref(), Some("down"), "the fallback passed other errors on");
}

#[tokio::test(start_paused = true)]
async fn a_fallback_value_covers_exhausted_retries_and_an_open_breaker() {
    let breaker = CircuitBreaker::new("prices", BreakerSettings::default().failure_threshold(2));
    let policy = Policy::<f64, String>::builder()
        .retry(Retry::new().max_attempts(2).backoff(exact(10)))
        .breaker(breaker.clone())
        .fallback_value(0.0)
        .build();
    assert_eq!(policy.call(|| async { Err::<f64, _>("502".to_owned()) }).await.unwrap(), 0.0);
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(policy.call(|| async { Ok::<_, String>(9.0) }).await.unwrap(), 0.0, "rejected, then the fallback");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_is_recorded_as_neither() {
    let breaker = CircuitBreaker::new("cancelled", BreakerSettings::default().failure_threshold(1));
    let policy = Policy::<u32, String>::builder().breaker(breaker.clone()).build();
    let calls = Arc::new(AtomicU32::new(0));
    let call = policy.call(hanging(&calls));
    assert!(tokio::time::timeout(MS(50), call).await.is_err());
    let metrics = breaker.metrics();
    assert_eq!(
        (metrics.state, metrics.failures, metrics.window_calls, metrics.cancelled),
        (BreakerState::Closed, 0, 0, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn the_breaker_predicate_decides_what_is_the_dependencys_fault() {
    let breaker = CircuitBreaker::new("http", BreakerSettings::default().failure_threshold(1));
    let policy = Policy::<u32, u16>::builder()
        .breaker(breaker.clone())
        .breaker_counts(|e| e.inner().is_none_or(|status| *status >= 500))
        .build();
    assert_eq!(policy.call(|| async { Err::<u32, u16>(404) }).await.unwrap_err().into_inner(), Some(404));
    assert_eq!(breaker.state(), BreakerState::Closed);
    policy.call(|| async { Err::<u32, u16>(503) }).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn presets_and_configuration_build_working_policies() {
    let exchange = presets::exchange_rest::<u32, io::Error>("preset-exchange", Idempotency::Idempotent).build();
    assert_eq!(exchange.circuit_breaker().unwrap().name(), "preset-exchange");
    assert_eq!(exchange.bulkhead().unwrap().available(), 10);
    let mut calls = 0;
    let value = exchange
        .call(|| {
            calls += 1;
            let n = calls;
            async move { if n < 2 { Err(io::Error::from(io::ErrorKind::TimedOut)) } else { Ok(n) } }
        })
        .await;
    assert_eq!(value.unwrap(), 2);
    let redis = presets::redis::<(), io::Error>("preset-redis", Idempotency::NonIdempotent).build();
    assert_eq!(redis.circuit_breaker().unwrap().settings().open_duration, MS(5_000));
    let webhook = presets::webhook::<(), io::Error>("preset-webhook", Idempotency::Idempotent).build();
    assert_eq!(webhook.bulkhead().unwrap().available(), 4);

    let config = Config::for_env(Environment::Production).resilience;
    let policy = Policy::<u32, String>::from_config(&config, "configured").build();
    let breaker = policy.circuit_breaker().unwrap();
    assert_eq!(breaker.settings().failure_threshold, config.breaker.failure_threshold);
    let started = Instant::now();
    let error = policy.call(hanging(&Arc::default())).await.unwrap_err();
    assert!(started.elapsed() <= config.timeout.overall, "bounded by the configured deadline: {error}");
}
