//! A Redis user limited to its namespace (`~ns:*`, `&ns:*`) can run the emergency controller
//! end to end, on the pub/sub bus and on the durable bus: start (restoring what the store
//! holds), halt, resume, shutdown, re-arm, history, fleet, heartbeats, risk limits, close. A
//! NOPERM anywhere would fail-close the controller or fail a transition.
#![cfg(all(feature = "memory", feature = "redis"))]

mod support;

use std::{sync::Arc, time::Duration};

use infra_config::RedisUrl;
use infra_emergency::{ControllerOptions, EmergencyController, EmergencyState, Scope};
use infra_events::{
    EventBus,
    redis::{DurableBus, DurableOptions, RedisBus},
};
use infra_state::{StateStore, redis::RedisStore};
use infra_testkit::{RedisServer, Reply};
use support::{config, eventually, wait_status};

const TIMEOUT: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "Zq9-bot-secret";

/// A server whose first user (`admin`, the kit's own probes) may do anything and whose `bot`
/// may touch only `ns:*` keys and channels.
fn server() -> RedisServer {
    let server = RedisServer::builder().acl_user("admin", "admin-pw").start().expect("redis-server must be installed");
    server.add_namespace_user("bot", PASSWORD, "ns").unwrap();
    server
}

fn backends(server: &RedisServer, bot: &str, durable: bool) -> (Arc<dyn StateStore>, Arc<dyn EventBus>) {
    let url = RedisUrl::parse(&server.url_with("bot", PASSWORD)).unwrap();
    let store = RedisStore::with_url(&url, "ns", TIMEOUT, TIMEOUT).unwrap();
    let bus: Arc<dyn EventBus> = if durable {
        Arc::new(DurableBus::new(&url, "ns", bot, TIMEOUT, DurableOptions::default()).unwrap())
    } else {
        Arc::new(RedisBus::new(&url, "ns", bot, TIMEOUT).unwrap())
    };
    (Arc::new(store), bus)
}

fn options() -> ControllerOptions {
    ControllerOptions::default()
        .resync_interval(Duration::from_millis(200))
        .heartbeat_ttl(Duration::from_secs(5))
        .resume_cooldown(Duration::ZERO)
}

async fn start(server: &RedisServer, bot: &str, durable: bool) -> EmergencyController {
    let (store, bus) = backends(server, bot, durable);
    EmergencyController::start(&config(bot, true), store, bus, options()).await.expect("starts on the limited user")
}

/// Every key in the server, as the admin sees it.
fn all_keys(server: &RedisServer) -> Vec<String> {
    match server.command(&["KEYS", "*"]).unwrap() {
        Reply::Array(Some(items)) => items.iter().filter_map(Reply::as_text).collect(),
        other => panic!("unexpected KEYS reply {other:?}"),
    }
}

async fn every_operation(durable: bool) {
    let server = server();
    let a = start(&server, "a", durable).await;
    let b = start(&server, "b", durable).await;
    assert!(a.can_trade() && b.can_trade(), "{:?}", a.status());

    // Heartbeats and the fleet view.
    let fleet = eventually(WAIT, "both heartbeats", || async {
        let fleet = a.fleet().await.unwrap();
        (fleet.len() == 2).then_some(fleet)
    })
    .await;
    assert_eq!(fleet.iter().map(|m| m.heartbeat.bot.as_str()).collect::<Vec<_>>(), ["a", "b"]);

    // A global halt from one bot reaches the other (store and bus), then resume, shutdown, re-arm.
    assert!(a.halt(Scope::Global, "ops", "venue down").await.unwrap().is_applied());
    wait_status(&b, WAIT, |s| s.state == EmergencyState::Halt).await;
    assert!(a.resume(Scope::Global, "ops", "venue back").await.unwrap().is_applied());
    wait_status(&b, WAIT, |s| s.state == EmergencyState::Normal).await;
    assert!(b.shutdown(Scope::bot("b").unwrap(), "ops", "bug").await.unwrap().is_applied());
    assert!(b.rearm(Scope::bot("b").unwrap(), "ops", "fixed").await.unwrap().is_applied());
    assert_eq!(b.state(), EmergencyState::Halt);
    assert!(b.resume(Scope::bot("b").unwrap(), "ops", "go").await.unwrap().is_applied());
    let history = a.history(&Scope::Global, 10).await.unwrap();
    assert_eq!(history.iter().map(|r| r.to).collect::<Vec<_>>(), [EmergencyState::Normal, EmergencyState::Halt]);
    assert_eq!(b.history(&Scope::bot("b").unwrap(), 10).await.unwrap().len(), 3);

    // Risk limits: an alert, then a halt by rule.
    let alert = a.check_risk_limit("exposure", 9_000.0, 10_000.0, true).await.unwrap();
    assert_eq!(alert.state, EmergencyState::Alert);
    let halt = a.check_daily_loss(-600.0).await.unwrap();
    assert_eq!(halt.state, EmergencyState::Halt);
    a.refresh().await.unwrap();
    a.record_fleet_metrics().await.unwrap();

    // A restart restores the halt from the store.
    a.close().await.unwrap();
    let restarted = start(&server, "a", durable).await;
    assert_eq!(restarted.state(), EmergencyState::Halt);
    restarted.close().await.unwrap();
    b.close().await.unwrap();

    let outside: Vec<String> = all_keys(&server).into_iter().filter(|key| !key.starts_with("ns:")).collect();
    assert!(outside.is_empty(), "keys outside the namespace: {outside:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_limited_to_its_namespace_runs_the_controller_on_pubsub() {
    every_operation(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_limited_to_its_namespace_runs_the_controller_on_streams() {
    every_operation(true).await;
}
