//! Ready-made policies for common dependencies. Each returns a builder: change what you need,
//! then `build()`. Breakers come from the process-wide [`BreakerRegistry`] under the given name,
//! so every policy for one dependency shares one breaker.

use std::time::Duration;

use crate::{Backoff, BreakerRegistry, BreakerSettings, Bulkhead, Jitter, PolicyBuilder, Retry};

/// An exchange's REST API: 3 attempts from 200 ms (full jitter, up to 5 s) honouring nothing
/// by default (add [`Retry::retry_after`] for 429s), 5 s per attempt, 15 s overall; a breaker
/// opening on 5 consecutive failures or half of the last 20 calls, for 30 s, with 2 probes; at
/// most 10 calls at once, waiting up to 1 s for a slot.
pub fn exchange_rest<T, E>(name: &str) -> PolicyBuilder<T, E> {
    let breaker = BreakerRegistry::global().get_or_insert_with(name, || {
        BreakerSettings::default()
            .failure_threshold(5)
            .failure_rate(0.5, 20, 10)
            .open_duration(Duration::from_secs(30))
            .half_open_max_calls(2)
    });
    crate::Policy::builder()
        .retry(Retry::new().max_attempts(3).backoff(Backoff {
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

/// Redis: 3 attempts from 10 ms (equal jitter, up to 200 ms), 500 ms per attempt, 2 s overall;
/// a breaker opening on 10 consecutive failures or half of the last 100 calls, for 5 s.
pub fn redis<T, E>(name: &str) -> PolicyBuilder<T, E> {
    let breaker = BreakerRegistry::global().get_or_insert_with(name, || {
        BreakerSettings::default()
            .failure_threshold(10)
            .failure_rate(0.5, 100, 20)
            .open_duration(Duration::from_secs(5))
            .half_open_max_calls(3)
    });
    crate::Policy::builder()
        .retry(Retry::new().max_attempts(3).backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(200),
            multiplier: 2.0,
            jitter: Jitter::Equal,
        }))
        .breaker(breaker)
        .timeout(Duration::from_millis(500))
        .deadline(Duration::from_secs(2))
}

/// An outgoing webhook: 5 attempts from 1 s (decorrelated jitter, up to 60 s), 10 s per
/// attempt, 5 minutes overall; a breaker opening on 5 consecutive failures, for 60 s; at most 4
/// deliveries at once, waiting up to 30 s.
pub fn webhook<T, E>(name: &str) -> PolicyBuilder<T, E> {
    let breaker = BreakerRegistry::global().get_or_insert_with(name, || {
        BreakerSettings::default().failure_threshold(5).open_duration(Duration::from_secs(60))
    });
    crate::Policy::builder()
        .retry(Retry::new().max_attempts(5).backoff(Backoff {
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
