//! Replica acknowledgements (`state.replica_acks`): with a master and a replica, every write
//! answered `Ok` is already on the replica, so a failover cannot lose it; a write the replica
//! does not confirm in time is applied on the master and reported as not replicated (transient,
//! may have been applied), never as a success.

#![cfg(feature = "redis")]

use std::{sync::Arc, time::Duration};

use infra_config::StateConfig;
use infra_state::{CasOutcome, DynStateStore, Expected, StateError, StateStoreExt, StateValue, redis::RedisStore};
use infra_testkit::{RedisServer, Reply};

fn master_and_replica() -> (RedisServer, RedisServer) {
    let master = RedisServer::start().expect("redis-server must be installed");
    let replica = master.start_replica().expect("the replica syncs");
    (master, replica)
}

fn store(master: &RedisServer, timeout: Duration) -> Arc<DynStateStore> {
    let config = StateConfig::redis(master.url()).unwrap().namespace("ns").replica_acks(1, timeout);
    config.validate().unwrap();
    Arc::new(RedisStore::new(&config).unwrap())
}

fn v(json: &str) -> StateValue {
    StateValue::parse(json).unwrap()
}

fn text(server: &RedisServer, key: &str) -> Option<String> {
    match server.command(&["GET", key]).unwrap() {
        Reply::Bulk(None) => None,
        reply => reply.as_text(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_is_on_the_replica_when_the_call_returns() {
    let (master, replica) = master_and_replica();
    let store = store(&master, Duration::from_secs(2));

    // Each check reads the replica right after the call: `WAIT` answered only once it had
    // applied the write.
    store.set_json("price", &42, None).await.unwrap();
    assert_eq!(text(&replica, "ns:price").as_deref(), Some("42"));
    assert_eq!(store.incr("fills", 5).await.unwrap(), 5);
    assert_eq!(text(&replica, "ns:fills").as_deref(), Some("5"));
    assert!(store.set_if_not_exists("lock", v("\"me\""), None).await.unwrap());
    assert_eq!(text(&replica, "ns:lock").as_deref(), Some("\"me\""));
    store.set_many(&[("a", v("1")), ("b", v("2"))], None).await.unwrap();
    assert_eq!((text(&replica, "ns:a"), text(&replica, "ns:b")), (Some("1".into()), Some("2".into())));
    let swapped = store.compare_and_swap("price", Expected::Value(v("42")), v("43"), None).await.unwrap();
    assert!(matches!(swapped, CasOutcome::Swapped(_)));
    assert_eq!(text(&replica, "ns:price").as_deref(), Some("43"));
    assert!(store.expire("price", Duration::from_secs(60)).await.unwrap());
    assert!(matches!(replica.command(&["PTTL", "ns:price"]).unwrap(), Reply::Integer(ms) if ms > 0));
    assert!(store.delete("a").await.unwrap());
    assert_eq!(text(&replica, "ns:a"), None);
    assert!(store.compare_and_delete("lock", Expected::Value(v("\"me\""))).await.unwrap());
    assert_eq!(text(&replica, "ns:lock"), None);
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_replica_does_not_confirm_in_time_is_reported_not_replicated() {
    let (master, mut replica) = master_and_replica();
    let store = store(&master, Duration::from_millis(300));
    assert_eq!(store.incr("fills", 1).await.unwrap(), 1);

    replica.pause().unwrap();
    let error = store.incr("fills", 1).await.unwrap_err();
    assert!(
        matches!(error, StateError::NotReplicated { operation: "increment", acknowledged: 0, required: 1, .. }),
        "{error:?}"
    );
    assert!(error.is_transient() && error.may_have_been_applied(), "{error}");
    assert_eq!(
        error.to_string(),
        "increment `fills` was applied but acknowledged by 0 of 1 replicas within 300ms; a failover may lose it"
    );
    // Applied on the master, as the error says.
    assert_eq!(text(&master, "ns:fills").as_deref(), Some("2"));

    // An answer that wrote nothing waits too: the key it found is the write above, which no
    // replica has yet (a failover would take it away and make the answer wrong).
    let error = store.set_if_not_exists("fills", v("0"), None).await.unwrap_err();
    assert!(matches!(error, StateError::NotReplicated { operation: "set_if_not_exists", .. }), "{error:?}");
    let error = store.delete("never-written").await.unwrap_err();
    assert!(matches!(error, StateError::NotReplicated { operation: "delete", .. }), "{error:?}");

    replica.resume().unwrap();
    assert_eq!(store.incr("fills", 1).await.unwrap(), 3);
    assert_eq!(text(&replica, "ns:fills").as_deref(), Some("3"));
    store.close().await.unwrap();
}

/// On a cluster each write waits on the master of its own hash slot: a `set_many` spanning every
/// master is, when it returns, on every one of their replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_each_slot_written_is_acknowledged_by_its_masters_replica() {
    let mut cluster = infra_testkit::RedisCluster::with_replicas(3, 1).expect("redis-server and redis-cli");
    let config = StateConfig::redis(cluster.url()).unwrap().namespace("ns").replica_acks(1, Duration::from_secs(2));
    let store = RedisStore::new(&config).unwrap();
    let names: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let entries: Vec<(&str, StateValue)> = names.iter().map(|n| (n.as_str(), v(&format!("\"{n}\"")))).collect();
    store.set_many(&entries, None).await.unwrap();
    let mut masters_written = std::collections::BTreeSet::new();
    for name in &names {
        let key = format!("ns:{name}");
        let master = cluster.node_for_key(&key).unwrap();
        masters_written.insert(master);
        let port = cluster.nodes()[master].port().to_string();
        let replica = cluster
            .nodes()
            .iter()
            .find(|node| {
                let info = node.command(&["INFO", "replication"]).unwrap().as_text().unwrap_or_default();
                info.contains("role:slave") && info.contains(&format!("master_port:{port}"))
            })
            .expect("every master has a replica");
        // A replica answers reads of its master's slots on a connection in READONLY mode.
        let mut connection = replica.connect().unwrap();
        connection.command_ok(&["READONLY"]).unwrap();
        let stored = connection.command(&["GET", &key]).unwrap().as_text();
        assert_eq!(stored.as_deref(), Some(format!("\"{name}\"").as_str()), "{key} on the replica");
    }
    assert_eq!(masters_written.len(), 3, "the batch spans every master");
    store.close().await.unwrap();
}
