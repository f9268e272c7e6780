//! The facade against a real Redis (infra-testkit): a staging-like configuration built in
//! code, health, retries against a paused server, the emergency controller across
//! infrastructures, an unreachable Redis, close and drop.

mod support;

use std::{error::Error as _, time::Duration};

use infra_facade::{
    FacadeError, Infrastructure,
    config::{Config, Environment, EventsConfig, StateConfig},
    prelude::*,
};
use infra_testkit::RedisServer;
use support::eventually;

const OPERATION_TIMEOUT: Duration = Duration::from_millis(300);
const LIMIT: Duration = Duration::from_secs(20);

fn start_redis() -> RedisServer {
    RedisServer::start().expect("redis-server must be installed (apt-get install redis-server)")
}

/// The staging preset on `url`, under `namespace`, for `bot`: short timeouts, fast retries, a
/// breaker that stays closed through the faults these tests inject.
fn staging(url: &str, namespace: &str, bot: &str) -> Config {
    let mut config = Config::for_env(Environment::Staging);
    config.logging.level = "warn".to_owned();
    config.state = StateConfig::redis(url)
        .unwrap()
        .namespace(namespace)
        .operation_timeout(OPERATION_TIMEOUT)
        .connect_timeout(Duration::from_secs(1));
    config.events = EventsConfig::redis(url)
        .unwrap()
        .namespace(namespace)
        .operation_timeout(OPERATION_TIMEOUT)
        .connect_timeout(Duration::from_secs(1));
    config.emergency.bot_id = bot.to_owned();
    config.resilience.retry.initial_delay = Duration::from_millis(20);
    config.resilience.retry.max_delay = Duration::from_millis(100);
    config.resilience.breaker.failure_threshold = 50;
    config.resilience.breaker.window_size = 100;
    config.resilience.breaker.minimum_calls = 100;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staging_config_assembles_redis_backends_and_reports_their_health() {
    let server = start_redis();
    let infra = Infrastructure::create(staging(&server.url(), "stg", "stg-bot")).await.unwrap();
    assert_eq!((infra.state().backend(), infra.events().backend()), ("redis", "redis"));

    infra.state().set_json("price:BTC", &50_000, None).await.unwrap();
    let raw = server.command(&["GET", "stg:price:BTC"]).unwrap();
    assert_eq!(raw.as_text().as_deref(), Some("50000"), "keys live under the namespace");

    let report = infra.health().await;
    assert!(report.healthy, "{report:?}");
    assert_eq!(report.environment, "staging");
    for backend in [&report.state, &report.events] {
        assert_eq!(backend.backend, "redis");
        assert_eq!(backend.namespace, "stg");
        assert!(backend.reachable && backend.error.is_none(), "{backend:?}");
        assert!(backend.latency_ms.is_some_and(|ms| ms > 0.0 && ms < 1000.0), "{backend:?}");
    }
    assert_eq!(report.emergency.state, EmergencyState::Normal);
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"latency_ms\":"), "{json}");
    infra.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_is_unhealthy_then_healthy_again() {
    let mut server = start_redis();
    let infra = Infrastructure::create(staging(&server.url(), "pause", "pause-bot")).await.unwrap();
    server.pause().unwrap();
    let report = infra.health().await;
    assert!(!report.healthy && !report.state.reachable && !report.events.reachable, "{report:?}");
    assert!(report.state.error.as_deref().is_some_and(|e| e.contains("timed out")), "{report:?}");
    assert_eq!(report.state.latency_ms, None);
    server.resume().unwrap();
    eventually(LIMIT, "healthy again", || async {
        let report = infra.health().await;
        report.healthy.then_some(())
    })
    .await;
    infra.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_retries_a_get_that_timed_out_but_never_an_increment() {
    let mut server = start_redis();
    let infra = Infrastructure::create(staging(&server.url(), "retry", "retry-bot")).await.unwrap();
    let state = infra.state().clone();
    state.set_json("k", &7, None).await.unwrap();

    // A get on a frozen server times out; the decorator tries again, and the server answers
    // the retry once it is thawed.
    server.pause().unwrap();
    let before = state.stats();
    let get = tokio::spawn({
        let state = state.clone();
        async move { state.get_json::<i32>("k").await }
    });
    eventually(LIMIT, "a retry", || async { (state.stats().retries > before.retries).then_some(()) }).await;
    server.resume().unwrap();
    assert_eq!(get.await.unwrap().unwrap(), Some(7), "the retry succeeded");

    // An increment on a frozen server times out too, and is not sent again: Redis may have
    // run it (here it runs once the server is thawed), so a retry could count it twice.
    server.pause().unwrap();
    let before = state.stats();
    let error = state.incr("fills", 1).await.unwrap_err();
    assert!(matches!(error, StateError::Timeout { operation: "increment", .. }), "{error}");
    assert!(error.may_have_been_applied());
    let after = state.stats();
    assert_eq!(after.retries, before.retries, "never retried");
    assert_eq!((after.calls - before.calls, after.failures - before.failures), (1, 1));
    server.resume().unwrap();
    let fills =
        eventually(LIMIT, "the increment applied", || async { state.get_json::<i64>("fills").await.ok().flatten() })
            .await;
    assert_eq!(fills, 1, "applied exactly once");

    // A publish that timed out may have been delivered: not published again.
    server.pause().unwrap();
    let before = infra.events().stats();
    let error = infra.events().publish_json("fills", &1).await.unwrap_err();
    assert!(error.is_transient() && error.may_have_been_applied(), "{error}");
    let after = infra.events().stats();
    assert_eq!((after.retries, after.failures - before.failures), (before.retries, 1));
    server.resume().unwrap();
    infra.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_reaches_other_bots_on_the_bus_and_is_restored_at_start() {
    let server = start_redis();
    let url = server.url();
    let a = Infrastructure::create(staging(&url, "fleet", "bot-a")).await.unwrap();
    let b = Infrastructure::create(staging(&url, "fleet", "bot-b")).await.unwrap();
    assert!(a.emergency().can_trade() && b.emergency().can_trade());

    a.emergency().halt(Scope::Global, "alice", "fleet drill").await.unwrap();
    assert!(!a.emergency().can_trade());
    let mut watch = b.emergency().watch();
    tokio::time::timeout(LIMIT, watch.wait_for(|status| status.state == EmergencyState::Halt))
        .await
        .expect("the halt reaches bot-b")
        .unwrap();
    assert!(!b.emergency().can_trade());
    a.close().await.unwrap();
    b.close().await.unwrap();

    // A new process of the fleet starts halted: the state is read from Redis.
    let c = Infrastructure::create(staging(&url, "fleet", "bot-c")).await.unwrap();
    assert!(!c.emergency().can_trade(), "restored from the store at start");
    let report = c.health().await;
    assert_eq!((report.emergency.state, report.emergency.scope.as_str()), (EmergencyState::Halt, "global"));
    assert_eq!(report.emergency.reason, "fleet drill");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_the_correlation_id_between_infrastructures() {
    let server = start_redis();
    let a = Infrastructure::create(staging(&server.url(), "corr", "pub-bot")).await.unwrap();
    let b = Infrastructure::create(staging(&server.url(), "corr", "sub-bot")).await.unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let _subscription = b
        .events()
        .subscribe_json("fills", move |fill: serde_json::Value, meta: EventMeta| {
            let seen = seen_tx.clone();
            async move {
                let _ = seen.send((fill, meta.source, meta.correlation_id, current_correlation_id()));
            }
        })
        .await
        .unwrap();
    let id = CorrelationId::parse("exec-redis-1").unwrap();
    with_correlation_id(id.clone(), async {
        a.events().publish_json("fills", &serde_json::json!({"qty": 2})).await.unwrap();
    })
    .await;
    let (fill, source, in_envelope, in_handler) =
        tokio::time::timeout(LIMIT, seen_rx.recv()).await.expect("delivered").unwrap();
    assert_eq!(fill["qty"], 2);
    assert_eq!(source, "pub-bot");
    assert_eq!(in_envelope, Some(id.clone()));
    assert_eq!(in_handler, Some(id));
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_fails_create_without_showing_the_password() {
    let mut server = RedisServer::builder().password("hunter2-secret").start().expect("redis-server");
    let url = server.url_with("default", "hunter2-secret");
    server.kill().unwrap();

    let error = Infrastructure::create(staging(&url, "down", "down-bot")).await.unwrap_err();
    assert!(matches!(error, FacadeError::State { action: "connect", .. }), "{error:?}");
    let rendered = format!("{error} / {error:?} / {}", error.source().unwrap());
    assert!(!rendered.contains("hunter2-secret"), "{rendered}");
    assert!(rendered.contains("***"), "{rendered}");

    // Lazily connected, it starts anyway and its health says what is wrong.
    let infra = Infrastructure::builder(staging(&url, "down", "down-bot")).lazy_connect().build().await.unwrap();
    let report = infra.health().await;
    assert!(!report.healthy && !report.state.reachable);
    let rendered = format!("{report:?} / {infra:?} / {}", serde_json::to_string(&report).unwrap());
    assert!(!rendered.contains("hunter2-secret"), "{rendered}");
    drop(infra);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_then_drop_and_drop_without_close_return_promptly() {
    let server = start_redis();
    let infra = Infrastructure::create(staging(&server.url(), "close", "close-bot")).await.unwrap();
    let _subscription = infra.events().subscribe_channel("c", |_: Envelope| async {}).await.unwrap();
    tokio::time::timeout(LIMIT, infra.close()).await.expect("close returns").unwrap();
    let before = infra.state().stats();
    let error = infra.state().get("k").await.unwrap_err();
    let chain = format!("{error}: {}", error.source().map(ToString::to_string).unwrap_or_default());
    assert!(matches!(error, StateError::Connection { .. }) && chain.contains("closed"), "{chain}");
    assert_eq!(infra.state().stats().retries, before.retries, "a closed store is not retried");
    drop(infra);

    let infra = Infrastructure::create(staging(&server.url(), "close", "drop-bot")).await.unwrap();
    infra.state().set_json("k", &1, None).await.unwrap();
    let _subscription = infra.events().subscribe_channel("c", |_: Envelope| async {}).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), tokio::task::spawn_blocking(move || drop(infra)))
        .await
        .expect("drop returns")
        .unwrap();
}
