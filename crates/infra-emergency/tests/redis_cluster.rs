//! The controller on a real 3-master Redis Cluster (`redis-cluster://`): halt, propagation,
//! restore after a restart, fleet and history, and one commit among racing controllers.
//!
//! Every operation of the controller is on one key (`set_if_not_exists` of an audit entry is
//! the commit, compare-and-swap of the scope's pointer, a heartbeat `SET` with a TTL), so no
//! key needs a hash tag; its reads of several keys (the pointer and the next audit entries, the
//! heartbeats) are `get_many`, which the store sends per key on a cluster: the answer is each
//! key's value at some point during the call, which the log's rules already allow (entries are
//! written once, in sequence). Listing heartbeats scans every master.
#![cfg(all(feature = "memory", feature = "redis"))]

mod support;

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use infra_config::{Config, Environment, EventsConfig, StateConfig};
use infra_emergency::{EmergencyController, EmergencyState, Scope};
use infra_events::EventBus;
use infra_state::StateStore;
use infra_testkit::RedisCluster;
use support::{audit_keys, config, eventually, fast, redis_backends, wait_status};

const WAIT: Duration = Duration::from_secs(20);

fn cluster() -> RedisCluster {
    RedisCluster::start().expect("redis-server and redis-cli are needed for these tests")
}

/// A store and a bus with their own connections, as another process has.
fn backends(cluster: &RedisCluster, source: &str) -> (Arc<dyn StateStore>, Arc<dyn EventBus>) {
    redis_backends(&cluster.url(), "test", source, Duration::from_secs(2))
}

async fn start(cluster: &RedisCluster, bot: &str) -> EmergencyController {
    let (store, bus) = backends(cluster, bot);
    EmergencyController::start(&config(bot, true), store, bus, fast()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halt_propagation_fleet_and_history_across_masters() {
    let mut cluster = cluster();
    let a = start(&cluster, "a").await;
    // One controller through the configuration, as a bot starts: `redis-cluster://` URLs.
    let mut full = Config::for_env(Environment::Development);
    full.state = StateConfig::redis(cluster.url().as_str()).unwrap().namespace("test");
    full.events = EventsConfig::redis(cluster.url().as_str()).unwrap().namespace("test");
    full.emergency = config("b", true);
    let b = EmergencyController::from_config(&full, fast()).await.unwrap();

    a.halt(Scope::Global, "alice", "venue incident").await.unwrap();
    let status = wait_status(&b, WAIT, |s| s.global_seq == 1).await;
    assert_eq!((status.state, status.scope), (EmergencyState::Halt, Scope::Global));
    assert!(!b.can_trade() && b.can_reduce());
    let member = eventually(WAIT, "b's heartbeat shows the halt", || async {
        let fleet = a.fleet().await.unwrap();
        fleet.into_iter().find(|m| m.heartbeat.bot == "b" && m.applied_latest_global)
    })
    .await;
    assert_eq!((member.heartbeat.state, member.heartbeat.global_seq), (EmergencyState::Halt, 1));
    let bots: BTreeSet<String> = a.fleet().await.unwrap().into_iter().map(|m| m.heartbeat.bot).collect();
    assert_eq!(bots, BTreeSet::from(["a".to_owned(), "b".to_owned()]), "heartbeats found on every master");

    b.halt(b.bot_scope().clone(), "bob", "own check").await.unwrap();
    a.resume(Scope::Global, "alice", "venue back").await.unwrap();
    let status = wait_status(&b, WAIT, |s| s.global_seq == 2).await;
    assert_eq!((status.state, status.scope), (EmergencyState::Halt, b.bot_scope().clone()), "its own halt holds");
    assert_eq!(a.history(&Scope::Global, 5).await.unwrap().iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 1]);

    // The keys this used are spread over the masters: the cluster really served them.
    let keys = [
        "test:emergency:state:global",
        "test:emergency:audit:global:00000000000000000001",
        "test:emergency:audit:global:00000000000000000002",
        "test:emergency:audit:bot:b:00000000000000000001",
        "test:emergency:heartbeat:a",
        "test:emergency:heartbeat:b",
    ];
    let owners: BTreeSet<usize> = keys.iter().map(|k| cluster.node_for_key(k).unwrap()).collect();
    assert!(owners.len() > 1, "{owners:?}");
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_the_halt_on_a_cluster() {
    let cluster = cluster();
    let first = start(&cluster, "b1").await;
    first.check_daily_loss(-700.0).await.unwrap();
    first.halt(Scope::Global, "alice", "incident").await.unwrap();
    first.close().await.unwrap();
    drop(first);
    let second = start(&cluster, "b1").await;
    let status = second.status();
    assert_eq!((status.state, status.global_seq), (EmergencyState::Halt, 1));
    let history = second.history(second.bot_scope(), 10).await.unwrap();
    assert_eq!(history.iter().map(|r| (r.seq, r.to)).collect::<Vec<_>>(), [(1, EmergencyState::Halt)]);
    assert!(!second.can_trade());
    // Resuming the global scope leaves the bot's own halt.
    second.resume(Scope::Global, "alice", "over").await.unwrap();
    assert_eq!(second.status().scope, second.bot_scope().clone());
    second.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_controllers_commit_one_halt_on_a_cluster() {
    let cluster = cluster();
    let mut racers = Vec::new();
    for i in 0..4 {
        racers.push(start(&cluster, &format!("r{i}")).await);
    }
    let halts: Vec<_> = racers
        .iter()
        .flat_map(|c| {
            (0..100).map(move |i| {
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
    let (store, _) = backends(&cluster, "reader");
    assert_eq!(audit_keys(store.as_ref(), "global").await.len(), 1);
    for racer in &racers {
        wait_status(racer, WAIT, |s| s.state == EmergencyState::Halt).await;
    }
    for racer in racers {
        racer.close().await.unwrap();
    }
}

/// The master holding the global scope's log fails over to its replica: the halt set before is
/// in force after, for the running controllers and for one started after; a resume then commits
/// and reaches both running ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_halt_survives_a_master_failover() {
    let mut cluster = RedisCluster::with_replicas(3, 1).expect("redis-server and redis-cli are needed");
    let a = start(&cluster, "a").await;
    let b = start(&cluster, "b").await;
    a.halt(Scope::Global, "alice", "before the failover").await.unwrap();
    wait_status(&b, WAIT, |s| s.state == EmergencyState::Halt).await;
    let failed = cluster.node_for_key("test:emergency:audit:global:00000000000000000001").unwrap();
    tokio::task::block_in_place(|| cluster.fail_over_master(failed)).unwrap();

    for controller in [&a, &b] {
        assert!(!controller.can_trade(), "the halt holds through the failover");
    }
    let late = start(&cluster, "late").await;
    let status = late.status();
    assert_eq!(
        (status.state, status.reason.as_str(), status.global_seq),
        (EmergencyState::Halt, "before the failover", 1)
    );
    // The client follows the slots to the promoted replica: the resume commits (retried until
    // the store answers), and reaches the others.
    let deadline = tokio::time::Instant::now() + WAIT;
    while late.resume(Scope::Global, "alice", "after the failover").await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the resume never committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for controller in [&a, &b, &late] {
        let status = wait_status(controller, WAIT, |s| s.state == EmergencyState::Normal).await;
        assert_eq!(status.global_seq, 2);
    }
    let (store, _) = backends(&cluster, "reader");
    assert_eq!(audit_keys(store.as_ref(), "global").await.len(), 2, "one record per transition");
    for controller in [a, b, late] {
        controller.close().await.unwrap();
    }
}
