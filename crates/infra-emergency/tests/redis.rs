//! The controller on real Redis servers (infra-testkit): races, restarts, fail-closed start,
//! propagation between controllers with their own connections.

mod support;

use std::{sync::Arc, time::Duration};

use infra_emergency::{ControllerOptions, EmergencyController, EmergencyState, Outcome, STATE_UNAVAILABLE, Scope};
use infra_events::EventBus;
use infra_state::StateStore;
use infra_testkit::RedisServer;
use support::{audit_keys, config, eventually, fast, redis_backends, wait_status};

const WAIT: Duration = Duration::from_secs(20);

fn server() -> RedisServer {
    RedisServer::start().expect("redis-server is needed for these tests")
}

/// A store and a bus with their own connections, as another process has.
fn backends(server: &RedisServer, source: &str) -> (Arc<dyn StateStore>, Arc<dyn EventBus>) {
    redis_backends(&server.url(), "test", source, Duration::from_millis(500))
}

async fn start(server: &RedisServer, bot: &str, fail_closed: bool) -> EmergencyController {
    let (store, bus) = backends(server, bot);
    EmergencyController::start(&config(bot, fail_closed), store, bus, fast()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_breaches_give_one_halt_event_and_one_audit_record() {
    let server = server();
    let emergency = start(&server, "b1", true).await;
    let mut events = emergency.events();
    let checks = (0..1000).map(|i| {
        let emergency = emergency.clone();
        tokio::spawn(async move { emergency.check_daily_loss(-501.0 - f64::from(i)).await })
    });
    let results = futures::future::join_all(checks).await;
    let applied = results
        .into_iter()
        .filter(|r| r.as_ref().unwrap().as_ref().unwrap().outcome.as_ref().is_some_and(Outcome::is_applied))
        .count();
    assert_eq!(applied, 1);
    let (store, _) = backends(&server, "reader");
    assert_eq!(audit_keys(store.as_ref(), "bot:b1").await.len(), 1);
    let event = events.recv().await.unwrap();
    assert_eq!(event.record().map(|r| r.to), Some(EmergencyState::Halt));
    emergency.refresh().await.unwrap();
    assert!(events.try_recv().is_err(), "one halt event");

    // Across processes: four controllers with their own connections race on the global scope.
    let mut racers = Vec::new();
    for i in 0..4 {
        racers.push(start(&server, &format!("r{i}"), true).await);
    }
    let halts: Vec<_> = racers
        .iter()
        .flat_map(|c| {
            (0..250).map(move |i| {
                let c = c.clone();
                tokio::spawn(async move { c.halt(Scope::Global, format!("op{i}"), "venue down").await })
            })
        })
        .collect();
    let applied = futures::future::join_all(halts)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().as_ref().unwrap().is_applied())
        .count();
    assert_eq!(applied, 1);
    assert_eq!(audit_keys(store.as_ref(), "global").await.len(), 1);
    for racer in racers {
        wait_status(&racer, WAIT, |s| s.global_seq == 1 && s.state == EmergencyState::Halt).await;
        racer.close().await.unwrap();
    }
    emergency.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_the_halt() {
    let server = server();
    let first = start(&server, "b1", true).await;
    first.check_daily_loss(-700.0).await.unwrap();
    first.close().await.unwrap();
    drop(first);
    let second = start(&server, "b1", false).await;
    let status = second.status();
    assert_eq!(
        (status.state, status.reason.as_str()),
        (EmergencyState::Halt, "risk limit `daily_loss` breached: -700 reached the limit -500")
    );
    assert!(!second.can_trade());
    second.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_with_redis_down_at_start_recovers_when_it_comes_back() {
    let mut server = server();
    server.kill().unwrap();
    let emergency = start(&server, "b1", true).await;
    let status = emergency.status();
    assert_eq!(
        (status.state, status.reason.as_str(), status.store_unavailable),
        (EmergencyState::Halt, STATE_UNAVAILABLE, true)
    );
    let refused = emergency.assert_can_trade().unwrap_err();
    assert_eq!(refused.to_string(), "trading refused: HALT imposed by the bot:b1 scope: state unavailable");
    // While it is down, resuming is impossible and the halt holds.
    assert!(emergency.resume(Scope::Global, "alice", "go").await.is_err());
    assert!(!emergency.can_trade());

    server.restart().unwrap();
    // The store answers and says NORMAL (a fresh server): trading resumes by itself.
    let status = wait_status(&emergency, WAIT, |s| !s.store_unavailable).await;
    assert_eq!(status.state, EmergencyState::Normal);
    assert!(emergency.can_trade());
    // And the bus works again: a halt from another controller arrives.
    let other = start(&server, "b2", true).await;
    other.halt(Scope::Global, "alice", "after the outage").await.unwrap();
    wait_status(&emergency, WAIT, |s| s.state == EmergencyState::Halt).await;
    other.close().await.unwrap();
    emergency.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_without_persistence_does_not_lift_a_halt() {
    let mut server = server();
    let emergency = start(&server, "b1", true).await;
    emergency.halt(Scope::Global, "alice", "incident").await.unwrap();
    server.kill().unwrap();
    server.restart().unwrap();
    // The controller writes its record back into the empty server.
    let (store, _) = backends(&server, "reader");
    eventually(WAIT, "the halt written back", || async {
        (audit_keys(store.as_ref(), "global").await.len() == 1).then_some(())
    })
    .await;
    assert!(!emergency.can_trade());
    let fresh = start(&server, "b2", true).await;
    assert_eq!(fresh.status().reason, "incident");
    fresh.close().await.unwrap();
    emergency.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_reaches_a_controller_with_its_own_connections_and_its_heartbeat() {
    let server = server();
    let a = start(&server, "a", true).await;
    let b = start(&server, "b", true).await;
    a.halt(Scope::Global, "alice", "venue incident").await.unwrap();
    let status = wait_status(&b, WAIT, |s| s.global_seq == 1).await;
    assert_eq!((status.state, status.scope), (EmergencyState::Halt, Scope::Global));
    let member = eventually(WAIT, "b's heartbeat shows the halt", || async {
        let fleet = a.fleet().await.unwrap();
        fleet.into_iter().find(|m| m.heartbeat.bot == "b" && m.applied_latest_global)
    })
    .await;
    assert_eq!((member.heartbeat.state, member.heartbeat.global_seq), (EmergencyState::Halt, 1));
    assert!(member.age < Duration::from_secs(5));
    a.resume(Scope::Global, "alice", "venue back").await.unwrap();
    wait_status(&b, WAIT, |s| s.state == EmergencyState::Normal).await;
    let history = b.history(&Scope::Global, 5).await.unwrap();
    assert_eq!(history.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 1]);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_gap_makes_the_controller_read_the_store_again() {
    let server = server();
    // Resync once a minute: only the gap can make it read the store within the test.
    let options =
        ControllerOptions::default().resync_interval(Duration::from_secs(60)).heartbeat_ttl(Duration::from_secs(120));
    let (store, bus) = backends(&server, "b1");
    let emergency = EmergencyController::start(&config("b1", true), store, bus, options).await.unwrap();
    // A halt committed by someone whose publish never arrived: written straight into Redis.
    let record = r#"{"seq":1,"scope":"global","from":"NORMAL","to":"HALT","action":"halt","source":"manual","actor":"ops","reason":"message lost","metrics":{},"at_ms":0,"by_bot":"ops","host":"h"}"#;
    let key = "test:emergency:audit:global:00000000000000000001";
    server.command(&["SET", key, record, "NX"]).unwrap();
    assert!(emergency.can_trade(), "nothing was published");
    // The subscriber connection drops; the bus reconnects and counts a gap.
    server.command(&["CLIENT", "KILL", "TYPE", "pubsub"]).unwrap();
    let status = wait_status(&emergency, WAIT, |s| s.state == EmergencyState::Halt).await;
    assert_eq!((status.scope, status.reason.as_str(), status.global_seq), (Scope::Global, "message lost", 1));
    emergency.close().await.unwrap();
}
