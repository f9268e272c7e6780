//! The facade on memory backends: assembly, health, breakers, the decorators' retries, the
//! correlation ID, the emergency controller, close and drop.

mod support;

use std::{error::Error as _, sync::Arc, time::Duration};

use futures::StreamExt;
use infra_facade::{
    BREAKER_CHANNEL, FacadeError, Infrastructure, LogSetup, ResilientStore,
    config::{Backend, Environment},
    prelude::*,
    resilience::BreakerRegistry,
};
use support::{Flaky, development};

#[tokio::test]
async fn development_assembles_memory_backends_that_work() {
    let infra = Infrastructure::create(development("dev-bot")).await.unwrap();
    assert_eq!(infra.config().state.backend, Backend::Memory);
    assert_eq!((infra.state().backend(), infra.state().namespace()), ("memory", "dev"));
    assert_eq!(infra.events().backend(), "memory");
    assert_eq!(infra.emergency().bot_id(), "dev-bot");

    infra.state().set_json("price:BTC", &50_234.5, None).await.unwrap();
    assert_eq!(infra.state().get_json::<f64>("price:BTC").await.unwrap(), Some(50_234.5));
    let mut prices = infra.events().stream(Topic::from("prices"), SubscribeOptions::default()).await.unwrap();
    infra.events().publish_json("prices", &1).await.unwrap();
    assert_eq!(prices.next().await.unwrap().decode::<i32>().unwrap(), 1);
    let stats = infra.state().stats();
    assert_eq!((stats.calls, stats.retries, stats.failures), (2, 0, 0));
    infra.close().await.unwrap();
}

#[tokio::test]
async fn create_infrastructure_loads_a_named_environment_and_rejects_unknown_names() {
    let infra = create_infrastructure("dev").await.unwrap();
    assert_eq!(infra.config().environment, Environment::Development);
    infra.close().await.unwrap();

    let error = create_infrastructure("prodution").await.unwrap_err();
    assert!(matches!(error, FacadeError::Config(_)), "{error:?}");
    assert_eq!(error.to_string(), "cannot load the configuration");
    assert!(
        error.source().unwrap().to_string().ends_with("valid environments: development, staging, production"),
        "{:?}",
        error.source()
    );
}

#[tokio::test]
async fn an_invalid_config_is_refused_before_anything_is_built() {
    let mut config = development("bot");
    config.emergency.daily_loss_limit = 500.0;
    let error = Infrastructure::create(config).await.unwrap_err();
    assert!(matches!(error, FacadeError::Config(_)), "{error:?}");
    assert!(error.source().unwrap().to_string().contains("emergency.daily_loss_limit"));
}

#[cfg(not(feature = "redis"))]
#[tokio::test]
async fn a_redis_config_without_the_feature_names_the_feature() {
    let mut config = development("bot");
    config.state = infra_facade::config::StateConfig::redis("redis://127.0.0.1:1").unwrap();
    let error = Infrastructure::create(config).await.unwrap_err();
    assert_eq!(error.to_string(), "cannot build the state store");
    assert!(error.source().unwrap().to_string().contains("enable the `redis` feature"));
}

#[tokio::test]
async fn health_reports_every_part_and_serializes() {
    let infra = Infrastructure::create(development("health-bot")).await.unwrap();
    infra.breaker("exchange");
    let report = infra.health().await;
    assert!(report.healthy, "{report:?}");
    assert_eq!(report.environment, "development");
    assert!(report.state.reachable && report.events.reachable);
    assert_eq!(report.state.latency_ms, Some(0.0));
    assert_eq!(report.state.error, None);
    let names: Vec<_> = report.breakers.iter().map(|b| (b.name.as_str(), b.state)).collect();
    assert_eq!(names, [("events", "closed"), ("exchange", "closed"), ("state", "closed")]);
    assert_eq!(report.emergency.state, EmergencyState::Normal);
    assert!(report.emergency.can_trade && !report.emergency.store_unavailable);
    assert_eq!(report.emergency.bot_id, "health-bot");
    assert_ne!(report.logging.setup, LogSetup::Skipped);

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["healthy"], true);
    assert_eq!(json["state"]["backend"], "memory");
    assert_eq!(json["emergency"]["state"], "NORMAL");
    assert_eq!(json["breakers"][2]["name"], "state");
    assert!(json["logging"]["setup"].is_string());
    infra.close().await.unwrap();
}

#[tokio::test]
async fn breakers_are_shared_by_name_and_guard_the_decorators() {
    let infra = Infrastructure::create(development("breaker-bot")).await.unwrap();
    let exchange = infra.breaker("exchange");
    infra.breaker("exchange").force_open();
    assert_eq!(exchange.state(), BreakerState::ForcedOpen, "one breaker per name");

    // `state` is the store decorator's breaker: opening it refuses calls without making them,
    // and the change is announced on the bus.
    let mut changes = infra.events().stream(Topic::from(BREAKER_CHANNEL), SubscribeOptions::default()).await.unwrap();
    infra.breaker("state").force_open();
    let change = loop {
        let event = tokio::time::timeout(Duration::from_secs(5), changes.next()).await.unwrap().unwrap();
        let event = event.decode::<serde_json::Value>().unwrap();
        if event.get("report").is_none() {
            break event;
        }
    };
    assert_eq!(
        change,
        serde_json::json!({"breaker": "state", "from": "closed", "to": "forced_open", "bot_id": "breaker-bot"})
    );
    assert_eq!(infra.state().breaker().state(), BreakerState::ForcedOpen);
    let error = infra.state().get("k").await.unwrap_err();
    assert!(matches!(error, StateError::Connection { .. }), "{error:?}");
    let rejected = error.source().unwrap().downcast_ref::<FacadeError>().expect("the facade's refusal");
    assert_eq!(
        rejected.to_string(),
        "calls to the state store were refused: circuit breaker `state` is open (forced open)"
    );
    assert_eq!(infra.state().stats().rejections, 1);
    let report = infra.health().await;
    assert!(!report.healthy, "an open breaker is unhealthy");
    assert!(report.state.reachable, "the health check bypasses the breaker");

    infra.breaker("state").reset();
    infra.state().set_json("k", &1, None).await.unwrap();
    assert!(infra.health().await.breakers.iter().any(|b| b.name == "exchange" && b.is_open()));

    // Another infrastructure has a registry of its own.
    let other = Infrastructure::create(development("other-bot")).await.unwrap();
    assert_eq!(other.breaker("exchange").state(), BreakerState::Closed);
    assert!(std::ptr::eq(infra.breakers(), infra.breakers()));
    assert!(!std::ptr::eq(infra.breakers(), other.breakers()));
    other.close().await.unwrap();
    infra.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn every_breaker_reports_its_state_every_few_seconds() {
    let infra = Infrastructure::create(development("report-bot")).await.unwrap();
    let mut changes = infra.events().stream(Topic::from(BREAKER_CHANNEL), SubscribeOptions::default()).await.unwrap();
    infra.breaker("exchange").force_open();
    let mut reports = std::collections::BTreeMap::new();
    while reports.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(30), changes.next()).await.unwrap().unwrap();
        let event = event.decode::<serde_json::Value>().unwrap();
        if event["report"] == true {
            assert_eq!(event["from"], event["to"], "{event}");
            assert_eq!(event["bot_id"], "report-bot");
            reports.insert(event["breaker"].as_str().unwrap().to_owned(), event["to"].as_str().unwrap().to_owned());
        }
    }
    let expected = [("events", "closed"), ("exchange", "forced_open"), ("state", "closed")];
    assert_eq!(reports, expected.map(|(k, v)| (k.to_owned(), v.to_owned())).into_iter().collect());
    infra.close().await.unwrap();
}

/// A store decorator with fast retries: 3 attempts from 10 ms, on tokio's paused clock.
fn flaky_store(failures: u32) -> (Flaky, ResilientStore) {
    let mut config = development("bot").resilience;
    config.retry.initial_delay = Duration::from_millis(10);
    let flaky = Flaky::new(failures);
    let breaker = BreakerRegistry::default().get("state");
    (flaky.clone(), ResilientStore::new(Arc::new(flaky), &config, breaker, "in-process".into()))
}

#[tokio::test(start_paused = true)]
async fn the_store_decorator_retries_a_transient_get() {
    let (flaky, store) = flaky_store(2);
    flaky.inner().set("k", StateValue::json(&7).unwrap(), None).await.unwrap();
    assert_eq!(store.get_json::<i32>("k").await.unwrap(), Some(7));
    assert_eq!(flaky.attempts(), 3);
    assert_eq!(store.stats().retries, 2);

    // Three failures in a row exhaust the three attempts: the last error is returned as is.
    let (flaky, store) = flaky_store(3);
    let error = store.get("k").await.unwrap_err();
    assert!(matches!(error, StateError::Timeout { operation: "get", .. }), "{error}");
    assert_eq!((flaky.attempts(), store.stats().failures), (3, 1));
}

#[tokio::test(start_paused = true)]
async fn the_store_decorator_never_repeats_an_increment_that_may_have_been_applied() {
    let (flaky, store) = flaky_store(1);
    let error = store.incr("fills", 1).await.unwrap_err();
    assert!(error.is_transient() && error.may_have_been_applied(), "{error}");
    assert_eq!(flaky.attempts(), 1, "not sent again");
    assert_eq!(store.stats().retries, 0);
    assert_eq!(flaky.inner().get_json::<i64>("fills").await.unwrap(), Some(1), "counted once");
}

#[tokio::test(start_paused = true)]
async fn the_correlation_id_follows_every_attempt_of_a_state_call() {
    let (flaky, store) = flaky_store(1);
    let id = CorrelationId::parse("exec-7").unwrap();
    with_correlation_id(id.clone(), async { store.get("k").await.unwrap() }).await;
    assert_eq!(flaky.seen(), [Some(id.clone()), Some(id)], "the first attempt and the retry");
}

#[tokio::test]
async fn events_carry_the_publishers_correlation_id_through_the_facade() {
    let infra = Infrastructure::create(development("corr-bot")).await.unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let _subscription = infra
        .events()
        .subscribe_channel("orders", move |event: Envelope| {
            let seen = seen_tx.clone();
            async move {
                let _ = seen.send((event.correlation_id.clone(), current_correlation_id()));
            }
        })
        .await
        .unwrap();
    let id = CorrelationId::parse("exec-42").unwrap();
    with_correlation_id(id.clone(), async {
        infra.state().set_json("order:1", &"new", None).await.unwrap();
        infra.events().publish_json("orders", &serde_json::json!({"order": 1})).await.unwrap();
    })
    .await;
    let (in_envelope, in_handler) = seen_rx.recv().await.unwrap();
    assert_eq!(in_envelope, Some(id.clone()));
    assert_eq!(in_handler, Some(id), "restored around the subscriber's handler");
    infra.close().await.unwrap();
}

#[tokio::test]
async fn a_halt_through_the_facade_stops_trading_and_goes_on_the_bus() {
    let infra = Infrastructure::create(development("halt-bot")).await.unwrap();
    let mut transitions = infra.events().stream(Topic::from("emergency"), SubscribeOptions::default()).await.unwrap();
    assert!(infra.emergency().can_trade());

    let bot = infra.emergency().bot_scope().clone();
    infra.emergency().halt(bot.clone(), "alice", "drill").await.unwrap();
    assert!(!infra.emergency().can_trade());
    let refused = infra.emergency().assert_can_trade().unwrap_err();
    assert!(refused.to_string().starts_with("trading refused: HALT"), "{refused}");

    let event = tokio::time::timeout(Duration::from_secs(5), transitions.next()).await.unwrap().unwrap();
    let record = event.decode::<serde_json::Value>().unwrap();
    assert_eq!(record["to"], "HALT", "{record}");
    let report = infra.health().await;
    assert_eq!(report.emergency.state, EmergencyState::Halt);
    assert_eq!(report.emergency.reason, "drill");
    assert!(report.healthy && !report.emergency.can_trade, "a halted bot is healthy but does not trade");

    // Persisted before it acted: the store has the audit record.
    let history = infra.emergency().history(&bot, 10).await.unwrap();
    assert_eq!(history[0].actor, "alice");
    infra.close().await.unwrap();
}

#[tokio::test]
async fn close_is_orderly_idempotent_and_keeps_the_gate_answering() {
    let infra = Infrastructure::create(development("close-bot")).await.unwrap();
    let bot = infra.emergency().bot_scope().clone();
    infra.emergency().halt(bot, "ops", "closing").await.unwrap();
    infra.close().await.unwrap();
    infra.close().await.unwrap();
    assert!(!infra.emergency().can_trade(), "the last applied state still answers");
    let error = infra.emergency().halt(Scope::Global, "ops", "after close").await.unwrap_err();
    assert!(matches!(error, EmergencyError::Closed), "{error:?}");
    drop(infra);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_without_close_never_hangs() {
    let infra = Infrastructure::create(development("drop-bot")).await.unwrap();
    infra.state().set_json("k", &1, None).await.unwrap();
    let _subscription = infra.events().subscribe_channel("c", |_: Envelope| async {}).await.unwrap();
    // Inside the runtime.
    tokio::time::timeout(Duration::from_secs(5), async move { drop(infra) }).await.expect("drop returns");

    // Outside any runtime (on a blocking thread).
    let infra = Infrastructure::create(development("drop-bot-2")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), tokio::task::spawn_blocking(move || drop(infra)))
        .await
        .expect("drop returns")
        .unwrap();
}

#[tokio::test]
async fn several_infrastructures_share_one_process_logging() {
    let configs = [development("a"), development("b"), development("c")];
    let infras = futures::future::try_join_all(configs.map(Infrastructure::create)).await.unwrap();
    let reports = futures::future::join_all(infras.iter().map(Infrastructure::health)).await;
    let setups: Vec<LogSetup> = reports.into_iter().map(|report| report.logging.setup).collect();
    assert!(setups.iter().all(|setup| *setup != LogSetup::Skipped), "{setups:?}");
    assert!(setups.iter().filter(|setup| **setup == LogSetup::Installed).count() <= 1, "{setups:?}");
    for infra in &infras {
        infra.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_policy_for_a_bots_own_dependency_uses_the_shared_breaker() {
    let infra = Infrastructure::create(development("policy-bot")).await.unwrap();
    let orders = infra.policy::<u64, std::io::Error>("exchange", Idempotency::NonIdempotent).build();
    infra.breaker("exchange").force_open();
    let error = orders.call(|| async { Ok::<u64, std::io::Error>(1) }).await.unwrap_err();
    assert!(matches!(error, ResilienceError::CircuitOpen { breaker: "exchange", .. }), "{error:?}");
    assert_eq!(infra.health().await.breakers.iter().find(|b| b.name == "exchange").unwrap().rejections, 1);
    infra.close().await.unwrap();
}

#[tokio::test]
async fn skip_logging_leaves_the_process_alone() {
    let infra = Infrastructure::builder(development("quiet-bot")).skip_logging().build().await.unwrap();
    let logging = infra.health().await.logging;
    assert_eq!((logging.setup, logging.dropped_lines), (LogSetup::Skipped, None));
    infra.close().await.unwrap();
}
