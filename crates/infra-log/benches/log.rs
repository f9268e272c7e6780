//! `log/json_line_vs_plain_json`: one JSON line with 5 fields inside an execution span, ours
//! (bunyan, redaction check, non-blocking writer) vs tracing-subscriber's JSON layer writing
//! straight to the same sink.
//! `log/disabled_event_vs_plain`: an event below the level, ours vs a plain subscriber.

#![allow(missing_docs, reason = "criterion generates the bench entry points")]

use std::{hint::black_box, io::Write};

use criterion::{Criterion, criterion_group, criterion_main};
use infra_config::{Config, Environment, LogFormat};
use infra_log::{LogBuilder, LogContext};
use tracing_subscriber::{filter::LevelFilter, layer::SubscriberExt};

/// The shared sink: discards bytes after touching them.
#[derive(Clone, Copy)]
struct Discard;

impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        black_box(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn ours() -> (tracing::Dispatch, infra_log::LogGuard) {
    let mut logging = Config::for_env(Environment::Production).logging;
    logging.format = LogFormat::Json;
    logging.level = "info".to_owned();
    LogBuilder::new(&logging).name("bench").writer(Discard).ignore_rust_log().build().expect("valid")
}

fn plain() -> tracing::Dispatch {
    tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(LevelFilter::INFO)
            .with(tracing_subscriber::fmt::layer().json().with_writer(|| Discard)),
    )
}

fn one_line() {
    tracing::info!(symbol = "BTC-USD", price = 50234.56, qty = 3_u64, side = "buy", venue = "binance", "order placed");
}

fn json_line(c: &mut Criterion) {
    let mut group = c.benchmark_group("log/json_line_vs_plain_json");
    let (dispatch, guard) = ours();
    tracing::dispatcher::with_default(&dispatch, || {
        LogContext::execution("exec-42", "bot-1", "arb-btc").in_scope(|| {
            group.bench_function("ours", |b| b.iter(one_line));
        });
    });
    let dropped = guard.dropped_lines();
    drop(guard);
    assert_eq!(dropped, 0, "the writer fell behind: the measurement would flatter us");

    let dispatch = plain();
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::error_span!(
            "execution",
            execution_id = "exec-42",
            bot_id = "bot-1",
            strategy_id = "arb-btc",
            correlation_id = "exec-42"
        );
        span.in_scope(|| group.bench_function("baseline", |b| b.iter(one_line)));
    });
    group.finish();
}

/// Disabled events cost about a nanosecond, the size of criterion's own per-iteration
/// overhead, so each timed iteration runs a batch and reports the time per event.
fn per_event(iters: u64) -> std::time::Duration {
    const BATCH: u32 = 100;
    let started = std::time::Instant::now();
    for _ in 0..iters {
        for _ in 0..BATCH {
            tracing::debug!(price = black_box(1.5), "below the level");
        }
    }
    started.elapsed() / BATCH
}

fn disabled_event(c: &mut Criterion) {
    let mut group = c.benchmark_group("log/disabled_event_vs_plain");
    let (dispatch, guard) = ours();
    tracing::dispatcher::with_default(&dispatch, || {
        group.bench_function("ours", |b| b.iter_custom(per_event));
    });
    drop(guard);
    let dispatch = plain();
    tracing::dispatcher::with_default(&dispatch, || {
        group.bench_function("baseline", |b| b.iter_custom(per_event));
    });
    group.finish();
}

criterion_group!(benches, json_line, disabled_event);
criterion_main!(benches);
