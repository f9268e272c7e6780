//! The Redis backend on a real 3-master Redis Cluster: the whole conformance suite (the same
//! functions `conformance.rs` runs on memory and on one server), each test on its own cluster.
//! What differs from one server is inside the store: `set_many` is one `MULTI`/`EXEC` per hash
//! slot, `get_many`/`delete_many` are pipelined per key, `keys` scans every master.

mod support;

use std::{sync::Arc, time::Duration};

use infra_config::RedisUrl;
use infra_state::{DynStateStore, StateValue, redis::RedisStore};
use infra_testkit::RedisCluster;
use support::{Fixture, suite};

fn start_cluster() -> RedisCluster {
    RedisCluster::start().expect("redis-server and redis-cli must be installed")
}

fn cluster_fixture(cluster: &RedisCluster) -> Fixture {
    let url = RedisUrl::parse(&cluster.url()).expect("cluster url");
    let store: Arc<DynStateStore> =
        Arc::new(RedisStore::with_url(&url, "cluster", Duration::from_secs(5), Duration::from_secs(5)).unwrap());
    Fixture::from_store(store)
}

macro_rules! on_a_cluster {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let cluster = start_cluster();
                suite::$name(&cluster_fixture(&cluster)).await;
            }
        )*
    };
}

support::every_case!(on_a_cluster);

/// The keys of one `set_many` land on every master, and the batch is still written whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_many_spans_every_master() {
    let mut cluster = start_cluster();
    let f = cluster_fixture(&cluster);
    let names: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
    let entries: Vec<(&str, StateValue)> =
        names.iter().enumerate().map(|(i, k)| (k.as_str(), StateValue::json(&i).unwrap())).collect();
    f.store.set_many(&entries, None).await.unwrap();
    let mut owners = std::collections::BTreeSet::new();
    for name in &names {
        owners.insert(cluster.node_for_key(&format!("cluster:{name}")).unwrap());
    }
    assert_eq!(owners.len(), 3, "the batch spans every master");
    let keys: Vec<&str> = names.iter().map(String::as_str).collect();
    let read = f.store.get_many(&keys).await.unwrap();
    assert_eq!(read, entries.iter().map(|(_, v)| Some(v.clone())).collect::<Vec<_>>());
}

/// A master fails over to its replica (killed, replica promoted): the store follows the slots to
/// the new master; what was written before is there, and writes resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_failover_keeps_the_data_and_writes_resume() {
    let mut cluster = RedisCluster::with_replicas(3, 1).expect("redis-server and redis-cli must be installed");
    assert_eq!(cluster.nodes().len(), 6);
    assert_eq!(cluster.masters().len(), 3);
    let f = cluster_fixture(&cluster);
    let names: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        f.store.set(name, StateValue::json(&i).unwrap(), None).await.unwrap();
    }
    let failed = cluster.node_for_key("cluster:k0").unwrap();
    let started = std::time::Instant::now();
    let promoted = tokio::task::block_in_place(|| cluster.fail_over_master(failed)).unwrap();
    let promotion = started.elapsed();
    assert_ne!(promoted, failed);
    assert_eq!(cluster.node_for_key("cluster:k0").unwrap(), promoted);
    // The store learns the new owner at its next command (a connection error, then fred
    // refreshes the slots): poll with a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match f.store.set("k0", StateValue::json(&"after").unwrap(), None).await {
            Ok(_) => break,
            Err(error) => assert!(tokio::time::Instant::now() < deadline, "writes never resumed: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("promoted {promotion:?} after the kill; writes resumed {:?} after the kill", started.elapsed());
    assert_eq!(f.store.get("k0").await.unwrap(), Some(StateValue::json(&"after").unwrap()));
    let keys: Vec<&str> = names.iter().skip(1).map(String::as_str).collect();
    let read = f.store.get_many(&keys).await.unwrap();
    let expected: Vec<Option<StateValue>> = (1..64).map(|i| Some(StateValue::json(&i).unwrap())).collect();
    assert_eq!(read, expected, "nothing written before the failover is lost");
}
