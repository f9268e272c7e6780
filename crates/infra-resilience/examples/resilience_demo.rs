//! A bot polling a simulated flaky exchange through one resilience policy.
//!
//! The exchange answers, then rate-limits (with a retry-after hint), hangs, goes down for a
//! while and comes back. The policy retries with backoff, honours the hint, times out hung
//! calls, opens its breaker during the outage (failing fast instead of hammering), probes, and
//! closes again; a fallback keeps the bot running on the last known price.
//!
//! Runs on tokio's paused clock, so the minutes of simulated time take milliseconds:
//! `cargo run -p infra-resilience --example resilience_demo`.

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use infra_resilience::{
    Backoff, BreakerSettings, BreakerState, CircuitBreaker, Idempotency, Jitter, Policy, ResilienceError, Retry,
    RetryClass,
};
use tokio::time::Instant;

/// What the simulated exchange can do wrong.
#[derive(Debug, Clone)]
enum ExchangeError {
    Unavailable,
    RateLimited { retry_after: Duration },
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable => f.write_str("503 service unavailable"),
            Self::RateLimited { retry_after } => write!(f, "429 too many requests (retry after {retry_after:?})"),
        }
    }
}

impl std::error::Error for ExchangeError {}

impl RetryClass for ExchangeError {
    fn is_transient(&self) -> bool {
        true
    }

    fn may_have_been_applied(&self) -> bool {
        // A 429 is refused before anything runs; a 503 from a gateway says nothing.
        matches!(self, Self::Unavailable)
    }
}

/// An exchange whose behaviour depends on the simulated time since it started.
struct FlakyExchange {
    started: Instant,
    calls: Mutex<u32>,
}

impl FlakyExchange {
    async fn price(&self, symbol: &str) -> Result<f64, ExchangeError> {
        *self.calls.lock().unwrap() += 1;
        let t = self.started.elapsed().as_secs();
        match t {
            // Rate limited for a moment.
            10..=11 => Err(ExchangeError::RateLimited { retry_after: Duration::from_secs(2) }),
            // Hangs: every call would wait forever.
            20..=21 => std::future::pending().await,
            // Down for a minute.
            30..=89 => Err(ExchangeError::Unavailable),
            _ => Ok(50_000.0 + t as f64 + symbol.len() as f64),
        }
    }
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let exchange = Arc::new(FlakyExchange { started: Instant::now(), calls: Mutex::new(0) });
    let breaker = CircuitBreaker::new(
        "demo-exchange",
        BreakerSettings::default().failure_threshold(5).open_duration(Duration::from_secs(15)),
    );
    let last_price = Arc::new(Mutex::new(0.0));
    let fallback_price = Arc::clone(&last_price);
    let policy = Policy::<f64, ExchangeError>::builder()
        .retry(
            Retry::new()
                .max_attempts(3)
                // A price read is safe to repeat; placing an order would be `NonIdempotent`.
                .idempotency(Idempotency::Idempotent)
                .backoff(Backoff {
                    initial: Duration::from_millis(200),
                    max: Duration::from_secs(2),
                    multiplier: 2.0,
                    jitter: Jitter::Full,
                })
                .retry_after(
                    |e| match e {
                        ExchangeError::RateLimited { retry_after } => Some(*retry_after),
                        ExchangeError::Unavailable => None,
                    },
                    Duration::from_secs(5),
                ),
        )
        .breaker(breaker.clone())
        .timeout(Duration::from_secs(1))
        .deadline(Duration::from_secs(6))
        .fallback(move |error| {
            let stale = *fallback_price.lock().unwrap();
            if stale > 0.0 {
                println!("    fallback: last known price {stale:.0} ({error})");
                Ok(stale)
            } else {
                Err(error)
            }
        })
        .build();

    let mut changes = breaker.subscribe();
    for tick in 0..24 {
        let started = Instant::now();
        let result = policy.call(|| exchange.price("BTC")).await;
        let waited = started.elapsed();
        match &result {
            Ok(price) => {
                *last_price.lock().unwrap() = *price;
                println!(
                    "t={:>3}s tick {tick:>2}: price {price:.0} after {waited:?}",
                    exchange.started.elapsed().as_secs()
                );
            }
            Err(error @ ResilienceError::CircuitOpen { .. }) => {
                println!("t={:>3}s tick {tick:>2}: {error}", exchange.started.elapsed().as_secs())
            }
            Err(error) => println!("t={:>3}s tick {tick:>2}: failed: {error}", exchange.started.elapsed().as_secs()),
        }
        while let Ok(change) = changes.try_recv() {
            println!("    breaker {}: {} -> {}", change.breaker, change.from, change.to);
        }
        tokio::time::sleep(Duration::from_secs(5).saturating_sub(waited)).await;
    }
    let metrics = breaker.metrics();
    println!(
        "\n{} calls reached the exchange; breaker {} with {} failures and {} rejected calls",
        exchange.calls.lock().unwrap(),
        metrics.state,
        metrics.failures,
        metrics.rejections
    );
    assert_eq!(breaker.state(), BreakerState::Closed, "the exchange recovered and the breaker closed");
}
