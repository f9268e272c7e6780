//! The circuit breaker on tokio's paused clock: every transition, probes under concurrency,
//! cancellation, operator actions, subscriptions and metrics.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use infra_resilience::{BreakerSettings, BreakerState, CircuitBreaker, ResilienceError, StateChange};
use tokio::{sync::Semaphore, time::Instant};

const MS: fn(u64) -> Duration = Duration::from_millis;

async fn ok(breaker: &CircuitBreaker) -> Result<u32, ResilienceError<&'static str>> {
    breaker.call(async { Ok(1) }).await
}

async fn fail(breaker: &CircuitBreaker) -> Result<u32, ResilienceError<&'static str>> {
    breaker.call(async { Err("503") }).await
}

/// Moves the paused clock just past the open duration (1 s here): the breaker's timer, due at
/// exactly 1 s, has then let probes through.
async fn past_open_duration() {
    tokio::time::sleep(MS(1_001)).await;
}

/// Only the consecutive-failure rule, so tests of it are not tripped by the rate rule.
fn consecutive(n: u32) -> BreakerSettings {
    BreakerSettings::default().failure_threshold(n).failure_rate(1.0, 100, 100).open_duration(MS(1_000))
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_open_it_and_a_success_resets_the_count() {
    let breaker = CircuitBreaker::new("exchange", consecutive(3));
    fail(&breaker).await.unwrap_err();
    fail(&breaker).await.unwrap_err();
    ok(&breaker).await.unwrap();
    fail(&breaker).await.unwrap_err();
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Closed, "the success broke the run");
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Open);

    tokio::time::advance(MS(400)).await;
    let rejected = ok(&breaker).await.unwrap_err();
    assert!(matches!(&rejected, ResilienceError::CircuitOpen { breaker, .. } if &**breaker == "exchange"));
    assert_eq!(rejected.retry_in(), Some(MS(600)), "the time left until probes");
    assert_eq!(rejected.to_string(), "circuit breaker `exchange` is open; probes allowed in 600ms");
}

#[tokio::test(start_paused = true)]
async fn a_failure_rate_opens_it_once_enough_calls_were_seen() {
    let settings = BreakerSettings::default().failure_threshold(100).failure_rate(0.5, 10, 6);
    let breaker = CircuitBreaker::new("rate", settings);
    // 3 of 4 failed, but fewer than 6 calls: no decision yet.
    ok(&breaker).await.unwrap();
    for _ in 0..3 {
        fail(&breaker).await.unwrap_err();
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    ok(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed, "3 of 5");
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Open, "4 of 6 is over half");
    let metrics = breaker.metrics();
    assert_eq!((metrics.window_failures, metrics.window_calls, metrics.failures), (4, 6, 4));
}

#[tokio::test(start_paused = true)]
async fn old_failures_leave_the_window() {
    let settings = BreakerSettings::default().failure_threshold(100).failure_rate(0.5, 4, 4);
    let breaker = CircuitBreaker::new("window", settings);
    fail(&breaker).await.unwrap_err();
    for _ in 0..10 {
        ok(&breaker).await.unwrap();
    }
    assert_eq!(breaker.metrics().window_failures, 0);
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Closed, "1 of the last 4");
}

#[tokio::test(start_paused = true)]
async fn slow_successes_count_as_failures() {
    let breaker = CircuitBreaker::new("slow", consecutive(2).slow_call_threshold(MS(100)));
    let slow = || {
        breaker.call(async {
            tokio::time::sleep(MS(150)).await;
            Ok::<_, &str>(1)
        })
    };
    slow().await.unwrap();
    assert_eq!(breaker.metrics().consecutive_failures, 1);
    slow().await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn half_open_probes_close_it_or_open_it_again() {
    let breaker = CircuitBreaker::new("probe", consecutive(1).half_open_max_calls(2));
    let mut changes = breaker.subscribe();
    fail(&breaker).await.unwrap_err();
    past_open_duration().await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen, "the timer let probes through");
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Open, "a failed probe reopens it");
    past_open_duration().await;
    ok(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::HalfOpen, "one of two probes");
    ok(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);

    let mut seen = Vec::new();
    while let Ok(StateChange { from, to, .. }) = changes.try_recv() {
        seen.push((from, to));
    }
    use BreakerState::*;
    assert_eq!(seen, [(Closed, Open), (Open, HalfOpen), (HalfOpen, Open), (Open, HalfOpen), (HalfOpen, Closed)]);
}

/// 100 callers at once through a half-open `breaker`; every admitted call holds until the
/// rest have been decided. Returns how many were admitted and how many calls succeeded.
async fn hundred_concurrent_callers(breaker: &CircuitBreaker) -> (usize, usize) {
    let release = Arc::new(Semaphore::new(0));
    let admitted = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let (breaker, release, admitted) = (breaker.clone(), release.clone(), admitted.clone());
            tokio::spawn(async move {
                breaker
                    .call(async {
                        admitted.fetch_add(1, Ordering::SeqCst);
                        let _ = release.acquire().await;
                        Ok::<_, &str>(())
                    })
                    .await
            })
        })
        .collect();
    // Let every caller reach its admission decision while the probes are still running.
    while (admitted.load(Ordering::SeqCst) as u64 + breaker.metrics().rejections) < 100 {
        tokio::task::yield_now().await;
    }
    let admitted = admitted.load(Ordering::SeqCst);
    release.add_permits(100);
    let mut passed = 0;
    for caller in futures::future::join_all(callers).await {
        match caller.unwrap() {
            Ok(()) => passed += 1,
            Err(ResilienceError::CircuitOpen { .. }) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    (admitted, passed)
}

#[tokio::test(start_paused = true)]
async fn exactly_k_probes_pass_among_100_concurrent_callers() {
    let breaker = CircuitBreaker::new("concurrent", consecutive(1).half_open_max_calls(3));
    fail(&breaker).await.unwrap_err();
    past_open_duration().await;
    assert_eq!(hundred_concurrent_callers(&breaker).await, (3, 3));
    assert_eq!(breaker.metrics().rejections, 97);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_counts_as_neither_and_frees_its_slot() {
    let breaker = CircuitBreaker::new("cancel", consecutive(1));
    fail(&breaker).await.unwrap_err();
    past_open_duration().await;
    let hung = breaker.call(std::future::pending::<Result<(), &str>>());
    // Polled once (admitted as the only probe), then cancelled by the timeout.
    assert!(tokio::time::timeout(MS(10), hung).await.is_err());
    let metrics = breaker.metrics();
    assert_eq!((metrics.state, metrics.cancelled, metrics.failures), (BreakerState::HalfOpen, 1, 1));
    ok(&breaker).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed, "the freed slot went to the next caller");
}

#[tokio::test(start_paused = true)]
async fn operators_force_it_open_or_closed_and_reset_it() {
    let breaker = CircuitBreaker::new("ops", consecutive(1));
    breaker.force_open();
    let rejected = ok(&breaker).await.unwrap_err();
    assert_eq!(rejected.to_string(), "circuit breaker `ops` is open (forced open)");
    tokio::time::sleep(MS(60_000)).await;
    assert_eq!(breaker.state(), BreakerState::ForcedOpen, "no timer ends a forced state");

    breaker.force_closed();
    for _ in 0..10 {
        fail(&breaker).await.unwrap_err();
    }
    assert_eq!(breaker.state(), BreakerState::ForcedClosed, "failures are not counted");

    breaker.reset();
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Open, "counting again");
}

#[tokio::test(start_paused = true)]
async fn what_counts_as_a_failure_is_a_predicate() {
    let breaker = CircuitBreaker::new("predicate", consecutive(1));
    let not_found = breaker.call_with(async { Err::<(), _>("404") }, |e| *e != "404").await;
    assert_eq!(not_found.unwrap_err().into_inner(), Some("404"));
    assert_eq!(breaker.state(), BreakerState::Closed, "a 404 is a healthy answer");
    breaker.call_with(async { Err::<(), _>("500") }, |e| *e != "404").await.unwrap_err();
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn rejections_take_no_time() {
    let breaker = CircuitBreaker::new("fast-fail", consecutive(1));
    fail(&breaker).await.unwrap_err();
    let started = Instant::now();
    for _ in 0..1_000 {
        ok(&breaker).await.unwrap_err();
    }
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(breaker.metrics().rejections, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_k_probes_pass_on_a_multi_thread_runtime() {
    for _ in 0..20 {
        // Open for no time at all: the next call finds it half-open.
        let breaker =
            CircuitBreaker::new("threads", consecutive(1).open_duration(Duration::ZERO).half_open_max_calls(2));
        let mut changes = breaker.subscribe();
        fail(&breaker).await.unwrap_err();
        // Its timer fires at once: wait for it to let probes through.
        while changes.recv().await.unwrap().to != BreakerState::HalfOpen {}
        assert_eq!(hundred_concurrent_callers(&breaker).await, (2, 2));
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
