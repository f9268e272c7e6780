//! The facade on a `redis-cluster://` URL (a real 3-master cluster from infra-testkit), in both
//! event modes: `create`, `health`, a state round trip across masters, an event round trip
//! between two infrastructures (two processes), a halt that reaches the other one.
#![cfg(feature = "redis")]

use std::time::Duration;

use futures::StreamExt;
use infra_facade::{
    Infrastructure,
    config::{Config, Environment, EventsConfig, EventsMode, StateConfig},
    prelude::*,
};
use infra_testkit::RedisCluster;

const LIMIT: Duration = Duration::from_secs(20);

fn staging(url: &str, mode: EventsMode, bot: &str) -> Config {
    let timeout = Duration::from_secs(2);
    let mut config = Config::for_env(Environment::Staging);
    config.logging.level = "warn".to_owned();
    config.state = StateConfig::redis(url).unwrap().namespace("ns").operation_timeout(timeout).connect_timeout(timeout);
    config.events = EventsConfig::redis(url)
        .unwrap()
        .namespace("ns")
        .mode(mode)
        .operation_timeout(timeout)
        .connect_timeout(timeout);
    config.emergency.bot_id = bot.to_owned();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_stack_runs_on_a_cluster_in_both_modes() {
    let mut cluster = RedisCluster::start().expect("redis-server and redis-cli must be installed");
    for mode in [EventsMode::Ephemeral, EventsMode::Durable] {
        let a = Infrastructure::builder(staging(&cluster.url(), mode, "a")).skip_logging().build().await.unwrap();
        let b = Infrastructure::builder(staging(&cluster.url(), mode, "b")).skip_logging().build().await.unwrap();
        assert_eq!((a.state().backend(), a.events().backend()), ("redis", "redis"));

        let report = a.health().await;
        assert!(report.healthy, "{mode:?}: {report:?}");
        for backend in [&report.state, &report.events] {
            assert!(backend.reachable && backend.error.is_none(), "{backend:?}");
            assert!(backend.latency_ms.is_some_and(|ms| ms > 0.0 && ms < 1000.0), "{backend:?}");
        }

        // State: written by one, read by the other, over keys on every master.
        let symbols: Vec<String> = (0..32).map(|i| format!("price:S{i}")).collect();
        for (i, symbol) in symbols.iter().enumerate() {
            a.state().set_json(symbol, &i, None).await.unwrap();
        }
        for (i, symbol) in symbols.iter().enumerate() {
            assert_eq!(b.state().get_json::<usize>(symbol).await.unwrap(), Some(i), "{symbol}");
        }
        let masters: std::collections::BTreeSet<usize> =
            symbols.iter().map(|s| cluster.node_for_key(&format!("ns:{s}")).unwrap()).collect();
        assert_eq!(masters.len(), 3);

        // Events: published by one, received by the other.
        let mut fills = b.events().stream(Topic::Channel("fills".into()), SubscribeOptions::default()).await.unwrap();
        a.events().publish_json("fills", &serde_json::json!({"qty": 2})).await.unwrap();
        let event = tokio::time::timeout(LIMIT, fills.next()).await.expect("delivered").expect("open");
        assert_eq!(event.decode::<serde_json::Value>().unwrap()["qty"], 2);
        assert_eq!(event.source, "a");

        // The emergency controller: a halt from one reaches the other.
        assert!(a.emergency().halt(Scope::Global, "ops", "cluster drill").await.unwrap().is_applied());
        let mut status = b.emergency().watch();
        tokio::time::timeout(LIMIT, status.wait_for(|s| s.state == EmergencyState::Halt)).await.unwrap().unwrap();
        assert!(!b.emergency().can_trade());
        a.emergency().resume(Scope::Global, "ops", "drill over").await.unwrap();
        tokio::time::timeout(LIMIT, status.wait_for(|s| s.state == EmergencyState::Normal)).await.unwrap().unwrap();

        drop(fills);
        a.close().await.unwrap();
        b.close().await.unwrap();
    }
}
