//! Resilience benchmarks, each against a raw baseline in the same run:
//! - `resilience/breaker_closed_vs_direct`: a successful call through a closed breaker vs
//!   awaiting the same future directly (goal: at most 15 ns more);
//! - `resilience/breaker_closed_vs_recloser`: the same call through `recloser`'s async breaker;
//! - `resilience/breaker_open_reject_vs_closed`: a rejected call vs a closed-path call;
//! - `resilience/breaker_closed_2_threads_vs_1`: ns per call per thread with 2 threads calling
//!   one breaker at once vs 1 thread alone;
//! - `resilience/retry_first_success_vs_direct`: a retry policy whose first attempt succeeds vs
//!   awaiting the future directly (goal: at most 20 ns more);
//! - `resilience/breaker_closed_with_recorder_vs_without`: a closed breaker's call recording into
//!   a Prometheus recorder vs the same call with no recorder installed (goal: at most 10 ns more).
//!
//! Futures here complete on their first poll. Each timed iteration is one `async` block that
//! awaits the calls in turn, as application code does, polled once by `now_or_never`: what is
//! measured is the wrapper, not an executor.

#![allow(missing_docs, reason = "criterion generates the bench entry points")]

use std::{
    future::Future,
    hint::black_box,
    sync::Barrier,
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt;
use infra_resilience::{BreakerSettings, CircuitBreaker, Retry};

/// Calls per timed iteration: criterion's own per-iteration cost is a few ns, as large as
/// what is measured, so each iteration makes this many calls and reports the mean.
const BATCH: u64 = 100;

fn settings() -> BreakerSettings {
    BreakerSettings::default().failure_threshold(1).open_duration(Duration::from_secs(3_600))
}

async fn closed_call(breaker: &CircuitBreaker) -> u64 {
    breaker.call(async { Ok::<u64, ()>(black_box(1)) }).await.unwrap()
}

async fn direct_call() -> u64 {
    async { Ok::<u64, ()>(black_box(1)) }.await.unwrap()
}

/// Mean time of one `call().await` over `iters * BATCH` calls awaited in one task.
fn per_call<F, Fut>(iters: u64, mut call: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = u64>,
{
    let started = Instant::now();
    async {
        for _ in 0..iters * BATCH {
            black_box(call().await);
        }
    }
    .now_or_never()
    .expect("every call completes at once");
    started.elapsed() / BATCH as u32
}

fn breaker(c: &mut Criterion) {
    let closed = CircuitBreaker::new("bench", settings());

    let mut group = c.benchmark_group("resilience/breaker_closed_vs_direct");
    group.bench_function("ours", |b| b.iter_custom(|iters| per_call(iters, || closed_call(&closed))));
    group.bench_function("baseline", |b| b.iter_custom(|iters| per_call(iters, direct_call)));
    group.finish();

    let recloser = recloser::AsyncRecloser::from(recloser::Recloser::default());
    let mut group = c.benchmark_group("resilience/breaker_closed_vs_recloser");
    group.bench_function("ours", |b| b.iter_custom(|iters| per_call(iters, || closed_call(&closed))));
    group.bench_function("baseline", |b| {
        b.iter_custom(|iters| {
            per_call(iters, || async { recloser.call(async { Ok::<u64, ()>(black_box(1)) }).await.unwrap() })
        })
    });
    group.finish();

    // Opened on a runtime, as in a service, so its half-open timer is armed.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let open = CircuitBreaker::new("bench-open", settings());
    runtime.block_on(async { open.call(async { Err::<u64, ()>(()) }).await.unwrap_err() });
    let mut group = c.benchmark_group("resilience/breaker_open_reject_vs_closed");
    group.bench_function("ours", |b| {
        b.iter_custom(|iters| {
            per_call(iters, || async { u64::from(open.call(async { Ok::<u64, ()>(black_box(1)) }).await.is_err()) })
        })
    });
    group.bench_function("baseline", |b| b.iter_custom(|iters| per_call(iters, || closed_call(&closed))));
    group.finish();
    assert_eq!(open.state(), infra_resilience::BreakerState::Open, "every measured call was a rejection");

    let mut group = c.benchmark_group("resilience/breaker_closed_2_threads_vs_1");
    group.bench_function("ours", |b| {
        b.iter_custom(|iters| {
            let start = Barrier::new(2);
            std::thread::scope(|scope| {
                let runs: Vec<_> = (0..2)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            per_call(iters, || closed_call(&closed))
                        })
                    })
                    .collect();
                // Each thread's own ns per call, averaged: perfect scaling keeps it equal to 1 thread's.
                runs.into_iter().map(|r| r.join().unwrap()).sum::<Duration>() / 2
            })
        })
    });
    group.bench_function("baseline", |b| b.iter_custom(|iters| per_call(iters, || closed_call(&closed))));
    group.finish();
}

fn retry(c: &mut Criterion) {
    let retry = Retry::<&'static str>::new().max_attempts(3);
    let mut group = c.benchmark_group("resilience/retry_first_success_vs_direct");
    group.bench_function("ours", |b| {
        b.iter_custom(|iters| {
            per_call(iters, || async { retry.call(|| async { Ok::<u64, &'static str>(black_box(1)) }).await.unwrap() })
        })
    });
    group.bench_function("baseline", |b| b.iter_custom(|iters| per_call(iters, direct_call)));
    group.finish();
}

fn recorder(c: &mut Criterion) {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    // A breaker resolves its handles when it is built, so only the construction needs the
    // recorder in effect: the calls measured below record into it, without a global recorder
    // that would reach the baseline too.
    let recorded = metrics::with_local_recorder(&recorder, || CircuitBreaker::new("bench-recorded", settings()));
    let unrecorded = CircuitBreaker::new("bench-unrecorded", settings());
    let mut group = c.benchmark_group("resilience/breaker_closed_with_recorder_vs_without");
    group.bench_function("ours", |b| b.iter_custom(|iters| per_call(iters, || closed_call(&recorded))));
    group.bench_function("baseline", |b| b.iter_custom(|iters| per_call(iters, || closed_call(&unrecorded))));
    group.finish();
    let rendered = recorder.handle().render();
    let successes = rendered
        .lines()
        .find(|line| line.starts_with(r#"infra_circuitbreaker_calls_total{name="bench-recorded",kind="successful"}"#))
        .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(successes.is_some_and(|n| n > 0.0), "the measured calls were recorded: {rendered}");
}

criterion_group!(benches, breaker, retry, recorder);
criterion_main!(benches);
