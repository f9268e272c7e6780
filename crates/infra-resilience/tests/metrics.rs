//! The metrics of docs/observability/metrics.md, recorded by a debugging recorder: every metric,
//! its label sets and exact counts over scripted sequences, on tokio's paused clock.
//!
//! Local recorders are per thread, so each test builds its components and a current-thread
//! runtime inside `with_local_recorder`. A snapshot resets counters and gauges to 0, so each
//! assertion after the first one reads what happened since the previous snapshot.

use std::{collections::BTreeMap, future::Future, time::Duration};

use infra_resilience::{
    Backoff, BreakerSettings, BreakerState, Bulkhead, CircuitBreaker, Jitter, Policy, ResilienceError, Retry,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

const MS: fn(u64) -> Duration = Duration::from_millis;

/// Runs `test` on a paused current-thread runtime with a fresh recorder in effect.
fn recorded<F, Fut>(test: F)
where
    F: FnOnce(Snapshotter) -> Fut,
    Fut: Future<Output = ()>,
{
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        runtime.block_on(test(snapshotter));
    });
}

/// A counter's or a gauge's value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Counter(u64),
    Gauge(f64),
}

/// The series of `metric` whose `name` label is `name`: their other labels (as `key=value`,
/// in order) and values.
type Series = BTreeMap<Vec<String>, Value>;

fn series(snapshot: &[(metrics_util::CompositeKey, DebugValue)], metric: &str, name: &str) -> Series {
    snapshot
        .iter()
        .filter(|(key, _)| key.key().name() == metric)
        .filter(|(key, _)| key.key().labels().any(|l| l.key() == "name" && l.value() == name))
        .map(|(key, value)| {
            let labels = key.key().labels().filter(|l| l.key() != "name");
            let value = match value {
                DebugValue::Counter(count) => Value::Counter(*count),
                DebugValue::Gauge(value) => Value::Gauge(value.into_inner()),
                DebugValue::Histogram(_) => panic!("{metric} is not a counter or a gauge"),
            };
            (labels.map(|l| format!("{}={}", l.key(), l.value())).collect(), value)
        })
        .collect()
}

fn snapshot(snapshotter: &Snapshotter) -> Vec<(metrics_util::CompositeKey, DebugValue)> {
    snapshotter.snapshot().into_vec().into_iter().map(|(key, _, _, value)| (key, value)).collect()
}

/// `(labels, count)` of the counters among `series` that are not zero.
fn nonzero(series: &Series) -> Vec<(String, u64)> {
    series
        .iter()
        .filter_map(|(labels, value)| match value {
            Value::Counter(0) => None,
            Value::Counter(count) => Some((labels.join(","), *count)),
            other => panic!("{labels:?} is not a counter: {other:?}"),
        })
        .collect()
}

fn gauge(value: f64) -> Value {
    Value::Gauge(value)
}

fn counts(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(labels, count)| ((*labels).to_owned(), *count)).collect()
}

/// The breaker's state gauges: exactly one at 1, the others at 0; returns the one.
fn current_state(snapshot: &[(metrics_util::CompositeKey, DebugValue)], name: &str) -> String {
    let states = series(snapshot, "infra_circuitbreaker_state", name);
    assert_eq!(states.len(), 5, "{states:?}");
    let ones: Vec<_> = states.iter().filter(|(_, v)| **v == gauge(1.0)).map(|(labels, _)| labels.join(",")).collect();
    let zeros = states.values().filter(|v| **v == gauge(0.0)).count();
    assert_eq!((ones.len(), zeros), (1, 4), "{states:?}");
    ones[0].trim_start_matches("state=").to_owned()
}

async fn ok(breaker: &CircuitBreaker) {
    breaker.call(async { Ok::<_, &str>(()) }).await.unwrap();
}

async fn fail(breaker: &CircuitBreaker) {
    breaker.call(async { Err::<(), _>("503") }).await.unwrap_err();
}

#[test]
fn a_breaker_counts_calls_by_kind_and_each_transition_once() {
    recorded(|snapshotter| async move {
        let settings = BreakerSettings::default().failure_threshold(3).open_duration(MS(1_000));
        let breaker = CircuitBreaker::new("scripted", settings);
        let built = snapshot(&snapshotter);
        assert_eq!(current_state(&built, "scripted"), "closed", "set when built");
        // The fifteen possible transitions are exported, at zero until they happen.
        let transitions = series(&built, "infra_circuitbreaker_transitions_total", "scripted");
        assert_eq!(transitions.len(), 15);
        assert!(nonzero(&transitions).is_empty());

        ok(&breaker).await;
        ok(&breaker).await;
        // An error the breaker is told is no failure is a success.
        breaker.call_with(async { Err::<(), _>("404") }, |_| false).await.unwrap_err();
        // Cancelled: counts as none. Ignored: counts as `ignored`, and as neither for the breaker.
        drop(breaker.admit::<()>().unwrap());
        breaker.admit::<()>().unwrap().ignore();
        for _ in 0..3 {
            fail(&breaker).await;
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        let rejected = breaker.call(async { Ok::<_, &str>(()) }).await;
        assert!(matches!(rejected, Err(ResilienceError::CircuitOpen { .. })));
        // Past the open duration the timer lets a probe through; it succeeds.
        tokio::time::sleep(MS(1_001)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        ok(&breaker).await;
        assert_eq!(breaker.state(), BreakerState::Closed);

        let after = snapshot(&snapshotter);
        assert_eq!(
            nonzero(&series(&after, "infra_circuitbreaker_calls_total", "scripted")),
            counts(&[("kind=failed", 3), ("kind=ignored", 1), ("kind=not_permitted", 1), ("kind=successful", 4)])
        );
        assert_eq!(
            nonzero(&series(&after, "infra_circuitbreaker_transitions_total", "scripted")),
            counts(&[("from=closed,to=open", 1), ("from=half_open,to=closed", 1), ("from=open,to=half_open", 1)])
        );
        assert_eq!(current_state(&after, "scripted"), "closed");
    });
}

#[test]
fn operator_actions_are_transitions_and_move_the_state_gauge() {
    recorded(|snapshotter| async move {
        let breaker = CircuitBreaker::new("operated", BreakerSettings::default());
        let transitions = |snapshot: &[(metrics_util::CompositeKey, DebugValue)]| {
            nonzero(&series(snapshot, "infra_circuitbreaker_transitions_total", "operated"))
        };

        breaker.force_open();
        let now = snapshot(&snapshotter);
        assert_eq!(current_state(&now, "operated"), "forced_open");
        assert_eq!(transitions(&now), counts(&[("from=closed,to=forced_open", 1)]));
        breaker.call(async { Ok::<_, &str>(()) }).await.unwrap_err();

        breaker.force_closed();
        // Forced closed, the breaker counts nothing, but the calls are still counted by kind.
        ok(&breaker).await;
        fail(&breaker).await;
        let now = snapshot(&snapshotter);
        assert_eq!(current_state(&now, "operated"), "forced_closed");
        assert_eq!(transitions(&now), counts(&[("from=forced_open,to=forced_closed", 1)]));
        assert_eq!(
            nonzero(&series(&now, "infra_circuitbreaker_calls_total", "operated")),
            counts(&[("kind=failed", 1), ("kind=not_permitted", 1), ("kind=successful", 1)])
        );

        breaker.reset();
        let now = snapshot(&snapshotter);
        assert_eq!(current_state(&now, "operated"), "closed");
        assert_eq!(transitions(&now), counts(&[("from=forced_closed,to=closed", 1)]));
        // Resetting a closed breaker changes nothing: no transition, the gauge still at closed.
        breaker.reset();
        let now = snapshot(&snapshotter);
        assert_eq!(current_state(&now, "operated"), "closed");
        assert!(transitions(&now).is_empty());
    });
}

#[test]
fn a_failed_probe_reopens_the_breaker() {
    recorded(|snapshotter| async move {
        let breaker = CircuitBreaker::new("reopened", BreakerSettings::default().failure_threshold(1));
        fail(&breaker).await;
        tokio::time::sleep(BreakerSettings::default().open_duration + MS(1)).await;
        fail(&breaker).await;
        let now = snapshot(&snapshotter);
        assert_eq!(current_state(&now, "reopened"), "open");
        assert_eq!(
            nonzero(&series(&now, "infra_circuitbreaker_transitions_total", "reopened")),
            counts(&[("from=closed,to=open", 1), ("from=half_open,to=open", 1), ("from=open,to=half_open", 1)])
        );
        assert_eq!(
            nonzero(&series(&now, "infra_circuitbreaker_calls_total", "reopened")),
            counts(&[("kind=failed", 2)])
        );
    });
}

fn exact(ms: u64) -> Backoff {
    Backoff { initial: MS(ms), max: MS(ms), multiplier: 1.0, jitter: Jitter::None }
}

#[test]
fn a_retry_counts_each_call_once_by_outcome_and_whether_it_retried() {
    recorded(|snapshotter| async move {
        let retry = Retry::<&str>::new()
            .name("quotes")
            .max_attempts(3)
            .backoff(exact(10))
            .retry_if(|error| error.inner().is_some_and(|e| *e != "fatal"));
        let script = |outcomes: &'static [Result<u32, &'static str>]| {
            let mut next = outcomes.iter();
            move || {
                let outcome = *next.next().expect("no more attempts scripted");
                async move { outcome }
            }
        };
        assert_eq!(retry.call(script(&[Ok(1)])).await.unwrap(), 1);
        assert_eq!(retry.call(script(&[Ok(2)])).await.unwrap(), 2);
        assert_eq!(retry.call(script(&[Err("busy"), Ok(3)])).await.unwrap(), 3);
        assert_eq!(retry.call(script(&[Err("fatal")])).await.unwrap_err().attempts(), 1);
        assert_eq!(retry.call(script(&[Err("busy"), Err("busy"), Err("busy")])).await.unwrap_err().attempts(), 3);
        assert_eq!(retry.call(script(&[Err("busy"), Err("fatal")])).await.unwrap_err().attempts(), 2);
        // An unnamed retry records as "default"; clones share the handles.
        let unnamed = Retry::<&str>::new().backoff(exact(10));
        unnamed.clone().call(script(&[Ok(1)])).await.unwrap();

        let now = snapshot(&snapshotter);
        assert_eq!(
            nonzero(&series(&now, "infra_retry_calls_total", "quotes")),
            counts(&[
                ("kind=failed_with_retry", 2),
                ("kind=failed_without_retry", 1),
                ("kind=successful_with_retry", 1),
                ("kind=successful_without_retry", 2)
            ])
        );
        assert_eq!(series(&now, "infra_retry_calls_total", "quotes").len(), 4);
        assert_eq!(
            nonzero(&series(&now, "infra_retry_calls_total", "default")),
            counts(&[("kind=successful_without_retry", 1)])
        );
    });
}

#[test]
fn a_policy_counts_each_bounded_attempt_under_its_breakers_name() {
    recorded(|snapshotter| async move {
        let breaker = CircuitBreaker::new("limited", BreakerSettings::default().failure_threshold(10));
        let policy = Policy::<u32, &str>::builder().breaker(breaker).timeout(MS(100)).build();
        policy.call(|| async { Ok(1) }).await.unwrap();
        policy.call(|| async { Err("refused") }).await.unwrap_err();
        let slow = policy.call(std::future::pending::<Result<u32, &str>>).await;
        assert!(matches!(slow, Err(ResilienceError::Timeout { .. })));
        // The deadline cuts an attempt: a timeout too, and neither success nor failure for the breaker.
        let named = Policy::<u32, &str>::builder().name("deadline").deadline(MS(50)).build();
        let cut = named.call(std::future::pending::<Result<u32, &str>>).await;
        assert!(matches!(cut, Err(ResilienceError::DeadlineExceeded { .. })));
        // No timeout, no deadline: no time limiter.
        Policy::<u32, &str>::builder().name("unbounded").build().call(|| async { Ok(1) }).await.unwrap();

        let now = snapshot(&snapshotter);
        assert_eq!(
            nonzero(&series(&now, "infra_timelimiter_calls_total", "limited")),
            counts(&[("kind=failed", 1), ("kind=successful", 1), ("kind=timeout", 1)])
        );
        assert_eq!(nonzero(&series(&now, "infra_timelimiter_calls_total", "deadline")), counts(&[("kind=timeout", 1)]));
        assert!(series(&now, "infra_timelimiter_calls_total", "unbounded").is_empty());
        assert_eq!(
            nonzero(&series(&now, "infra_circuitbreaker_calls_total", "limited")),
            counts(&[("kind=failed", 2), ("kind=successful", 1)])
        );
    });
}

#[test]
fn a_policy_ignores_a_bulkhead_rejection_in_its_breaker() {
    recorded(|snapshotter| async move {
        let bulkhead = Bulkhead::new("guarded", 1, None);
        let policy = Policy::<u32, &str>::builder()
            .breaker(CircuitBreaker::new("guarded", BreakerSettings::default()))
            .bulkhead(bulkhead.clone())
            .build();
        let held = bulkhead.acquire::<()>().await.unwrap();
        let full = policy.call(|| async { Ok(1) }).await;
        assert!(matches!(full, Err(ResilienceError::BulkheadFull { .. })));
        drop(held);
        policy.call(|| async { Ok(1) }).await.unwrap();
        let now = snapshot(&snapshotter);
        assert_eq!(
            nonzero(&series(&now, "infra_circuitbreaker_calls_total", "guarded")),
            counts(&[("kind=ignored", 1), ("kind=successful", 1)])
        );
        assert_eq!(
            nonzero(&series(&now, "infra_bulkhead_calls_total", "guarded")),
            counts(&[("kind=permitted", 2), ("kind=rejected", 1)])
        );
    });
}

#[test]
fn a_bulkhead_counts_permits_and_rejections_and_its_free_slots() {
    recorded(|snapshotter| async move {
        let _bulkhead = Bulkhead::new("pool", 2, None);
        let built = snapshot(&snapshotter);
        assert_eq!(series(&built, "infra_bulkhead_available_concurrent_calls", "pool"), [(vec![], gauge(2.0))].into());
        assert!(nonzero(&series(&built, "infra_bulkhead_calls_total", "pool")).is_empty());
    });
    recorded(|snapshotter| async move {
        let bulkhead = Bulkhead::new("pool", 2, None);
        let first = bulkhead.acquire::<()>().await.unwrap();
        let second = bulkhead.acquire::<()>().await.unwrap();
        assert!(matches!(bulkhead.acquire::<()>().await, Err(ResilienceError::BulkheadFull { .. })));
        drop(first);
        assert_eq!(bulkhead.call(async { Ok::<_, ()>(1) }).await.unwrap(), 1);
        let now = snapshot(&snapshotter);
        assert_eq!(series(&now, "infra_bulkhead_available_concurrent_calls", "pool"), [(vec![], gauge(1.0))].into());
        assert_eq!(
            nonzero(&series(&now, "infra_bulkhead_calls_total", "pool")),
            counts(&[("kind=permitted", 3), ("kind=rejected", 1)])
        );
        drop(second);
    });
}

#[test]
fn a_bulkhead_that_waits_counts_a_timed_out_wait_as_rejected() {
    recorded(|snapshotter| async move {
        let bulkhead = Bulkhead::new("queue", 1, Some(MS(100)));
        let held = bulkhead.acquire::<()>().await.unwrap();
        assert!(bulkhead.acquire::<()>().await.is_err());
        drop(held);
        let now = snapshot(&snapshotter);
        assert_eq!(
            nonzero(&series(&now, "infra_bulkhead_calls_total", "queue")),
            counts(&[("kind=permitted", 1), ("kind=rejected", 1)])
        );
        assert_eq!(series(&now, "infra_bulkhead_available_concurrent_calls", "queue"), [(vec![], gauge(1.0))].into());
    });
}

#[test]
fn nothing_is_recorded_for_components_built_before_the_recorder() {
    let breaker = CircuitBreaker::new("early", BreakerSettings::default());
    recorded(|snapshotter| async move {
        ok(&breaker).await;
        assert!(series(&snapshot(&snapshotter), "infra_circuitbreaker_calls_total", "early").is_empty());
    });
}

#[cfg(feature = "tower")]
mod tower_layers {
    use infra_resilience::tower_layers::{BulkheadLayer, CircuitBreakerLayer, RetryPolicy, TimeoutLayer};
    use tower::{ServiceBuilder, ServiceExt, retry::RetryLayer, service_fn};

    use super::*;

    #[test]
    fn the_layers_record_what_the_types_they_wrap_record() {
        recorded(|snapshotter| async move {
            let breaker = CircuitBreaker::new("svc", BreakerSettings::default().failure_threshold(10));
            let bulkhead = Bulkhead::new("svc", 1, None);
            let service = ServiceBuilder::new()
                .layer(CircuitBreakerLayer::new(breaker))
                .layer(TimeoutLayer::new(MS(100)).name("svc"))
                .layer(BulkheadLayer::new(bulkhead))
                .service(service_fn(|wait: u64| async move {
                    tokio::time::sleep(MS(wait)).await;
                    if wait == 1 { Err(std::io::Error::other("refused")) } else { Ok(wait) }
                }));
            assert_eq!(service.clone().oneshot(0).await.unwrap(), 0);
            service.clone().oneshot(1).await.unwrap_err();
            service.clone().oneshot(500).await.unwrap_err();
            // Two at once: the second finds the only slot taken.
            let (first, second) = tokio::join!(service.clone().oneshot(50), service.clone().oneshot(0));
            assert_eq!((first.unwrap(), second.is_err()), (50, true));

            let now = snapshot(&snapshotter);
            assert_eq!(
                nonzero(&series(&now, "infra_circuitbreaker_calls_total", "svc")),
                counts(&[("kind=failed", 2), ("kind=ignored", 1), ("kind=successful", 2)])
            );
            assert_eq!(
                nonzero(&series(&now, "infra_timelimiter_calls_total", "svc")),
                counts(&[("kind=failed", 2), ("kind=successful", 2), ("kind=timeout", 1)])
            );
            assert_eq!(
                nonzero(&series(&now, "infra_bulkhead_calls_total", "svc")),
                counts(&[("kind=permitted", 4), ("kind=rejected", 1)])
            );
            let available = series(&now, "infra_bulkhead_available_concurrent_calls", "svc");
            assert_eq!(available, [(vec![], gauge(1.0))].into(), "the timed-out call's slot was freed");
            assert_eq!(current_state(&now, "svc"), "closed");
        });
    }

    #[test]
    fn the_tower_retry_policy_counts_each_request_once() {
        recorded(|snapshotter| async move {
            let attempts = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
            let calls = std::sync::Arc::clone(&attempts);
            let service = ServiceBuilder::new()
                .layer(RetryLayer::new(RetryPolicy::<std::io::Error>::new(3, exact(10)).name("tower")))
                .service(service_fn(move |fail_first: u32| {
                    let attempt = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async move { if attempt < fail_first { Err(std::io::Error::other("busy")) } else { Ok(attempt) } }
                }));
            let reset = || attempts.store(0, std::sync::atomic::Ordering::SeqCst);
            service.clone().oneshot(0).await.unwrap();
            reset();
            service.clone().oneshot(2).await.unwrap();
            reset();
            service.clone().oneshot(5).await.unwrap_err();
            let now = snapshot(&snapshotter);
            assert_eq!(
                nonzero(&series(&now, "infra_retry_calls_total", "tower")),
                counts(&[
                    ("kind=failed_with_retry", 1),
                    ("kind=successful_with_retry", 1),
                    ("kind=successful_without_retry", 1)
                ])
            );
        });
    }
}
