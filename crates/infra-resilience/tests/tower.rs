//! The tower layers and the tower retry policy, on tokio's paused clock.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use infra_resilience::{
    Backoff, BreakerSettings, BreakerState, Bulkhead, CircuitBreaker, Jitter, ResilienceError,
    tower_layers::{BoxError, BulkheadLayer, CircuitBreakerLayer, LayerError, RetryPolicy, TimeoutLayer},
};
use tower::{Service, ServiceBuilder, ServiceExt, retry::RetryLayer, service_fn};

const MS: fn(u64) -> Duration = Duration::from_millis;

fn layer_error(error: &BoxError) -> &LayerError {
    error.downcast_ref::<LayerError>().unwrap_or_else(|| panic!("not a layer error: {error}"))
}

#[tokio::test(start_paused = true)]
async fn the_breaker_layer_counts_timeouts_and_rejects_when_open() {
    let breaker = CircuitBreaker::new("svc", BreakerSettings::default().failure_threshold(2));
    let mut service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(TimeoutLayer::new(MS(100)))
        .service(service_fn(|slow: bool| async move {
            if slow {
                tokio::time::sleep(MS(1_000)).await;
            }
            Ok::<_, std::io::Error>("pong")
        }));
    assert_eq!(service.ready().await.unwrap().call(false).await.unwrap(), "pong");
    for _ in 0..2 {
        let error = service.ready().await.unwrap().call(true).await.unwrap_err();
        assert!(matches!(layer_error(&error), ResilienceError::Timeout { .. }), "{error}");
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    let error = service.ready().await.unwrap().call(false).await.unwrap_err();
    assert!(matches!(layer_error(&error), ResilienceError::CircuitOpen { .. }), "{error}");
}

#[tokio::test(start_paused = true)]
async fn the_bulkhead_layer_rejects_beyond_its_slots_without_tripping_the_breaker() {
    let breaker = CircuitBreaker::new("bulk", BreakerSettings::default().failure_threshold(1));
    let bulkhead = Bulkhead::new("bulk", 1, None);
    let service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(BulkheadLayer::new(bulkhead.clone()))
        .service(service_fn(|()| async {
            tokio::time::sleep(MS(100)).await;
            Ok::<_, std::io::Error>(())
        }));
    let (first, second) = tokio::join!(service.clone().oneshot(()), service.clone().oneshot(()));
    first.unwrap();
    let error = second.unwrap_err();
    assert!(matches!(layer_error(&error), ResilienceError::BulkheadFull { .. }), "{error}");
    assert_eq!((breaker.state(), bulkhead.rejected(), bulkhead.available()), (BreakerState::Closed, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn the_retry_policy_waits_by_the_backoff() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let policy =
        RetryPolicy::new(4, Backoff { initial: MS(100), max: MS(1_000), multiplier: 2.0, jitter: Jitter::None })
            .retry_if(|error: &std::io::Error| error.kind() == std::io::ErrorKind::ConnectionRefused);
    let service =
        ServiceBuilder::new().layer(RetryLayer::new(policy)).service(service_fn(move |n: u32| {
            let attempt = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if attempt < 3 { Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)) } else { Ok(n * 2) }
            }
        }));
    let started = tokio::time::Instant::now();
    assert_eq!(service.oneshot(21).await.unwrap(), 42);
    assert_eq!((calls.load(Ordering::SeqCst), started.elapsed()), (3, MS(300)));
}
