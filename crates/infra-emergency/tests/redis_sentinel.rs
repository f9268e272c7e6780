//! The controller behind Sentinel (a master, a replica, three sentinels): a halt set before the
//! master fails over is still in force after it, for the running controllers and for one
//! started afterwards, and a new transition commits and reaches the fleet.

#![cfg(all(feature = "memory", feature = "redis"))]

mod support;

use std::{sync::Arc, time::Duration};

use infra_config::RedisUrl;
use infra_emergency::{ControllerOptions, EmergencyController, EmergencyState, Scope};
use infra_events::{EventBus, redis::RedisBus};
use infra_state::{StateStore, redis::RedisStore};
use infra_testkit::RedisSentinel;
use support::{config, eventually, wait_status};

/// A failover takes a few seconds (1 s of silence, the vote, the promotion, the clients'
/// reconnection backoff of up to 2 s); this only catches a controller that never recovers.
const WAIT: Duration = Duration::from_secs(30);

async fn start(sentinel: &RedisSentinel, bot: &str) -> EmergencyController {
    let url = RedisUrl::parse(&sentinel.url()).unwrap();
    let timeout = Duration::from_secs(1);
    let store: Arc<dyn StateStore> = Arc::new(RedisStore::with_url(&url, "test", timeout, timeout).unwrap());
    let bus: Arc<dyn EventBus> = Arc::new(RedisBus::new(&url, "test", bot, timeout).unwrap());
    let options =
        ControllerOptions::default().resync_interval(Duration::from_millis(200)).heartbeat_ttl(Duration::from_secs(5));
    EmergencyController::start(&config(bot, true), store, bus, options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_survives_a_failover_and_a_new_transition_commits_after_it() {
    let sentinel = tokio::task::spawn_blocking(RedisSentinel::start).await.unwrap().expect("sentinel starts");
    let a = start(&sentinel, "a").await;
    let b = start(&sentinel, "b").await;
    a.halt(Scope::Global, "alice", "incident").await.unwrap();
    wait_status(&b, WAIT, |s| s.state == EmergencyState::Halt).await;

    let old = sentinel.master().port();
    let mut sentinel = sentinel;
    let (sentinel, took) =
        tokio::task::spawn_blocking(move || sentinel.failover().map(|took| (sentinel, took))).await.unwrap().unwrap();
    assert_ne!(sentinel.master().port(), old);
    eprintln!("failover took {took:?}");

    // The running controllers stay halted, and one started now reads the halt from the
    // promoted replica.
    assert!(!a.can_trade() && !b.can_trade());
    let c = start(&sentinel, "c").await;
    let status = wait_status(&c, WAIT, |s| !s.store_unavailable).await;
    assert_eq!((status.state, status.scope, status.reason.as_str()), (EmergencyState::Halt, Scope::Global, "incident"));

    // A new transition commits on the new master (retried while the clients reconnect; a
    // resume that cannot commit is not applied) and reaches every controller.
    let outcome = eventually(WAIT, "a resume committed after the failover", || async {
        a.resume(Scope::Global, "alice", "venue back").await.ok()
    })
    .await;
    assert!(outcome.is_applied(), "{outcome:?}");
    for controller in [&a, &b, &c] {
        wait_status(controller, WAIT, |s| s.state == EmergencyState::Normal).await;
    }
    let history = c.history(&Scope::Global, 5).await.unwrap();
    assert_eq!(history.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 1], "the halt's record survived");
    for controller in [a, b, c] {
        controller.close().await.unwrap();
    }
}
