//! Replica acknowledgements on the durable bus (`DurableOptions::replica_acks`): with a master
//! and a replica, every event published `Ok` is already on the replica, so a failover cannot
//! lose it; an event the replica does not confirm in time is stored on the master and reported
//! as not replicated (transient, applied), never as a success.
#![cfg(feature = "redis")]

use std::time::Duration;

use infra_config::RedisUrl;
use infra_events::{
    EventBus, EventsError,
    redis::{DurableBus, DurableOptions},
};
use infra_testkit::{RedisServer, Reply};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(2);

fn bus(master: &RedisServer, ack_timeout: Duration) -> DurableBus {
    let options = DurableOptions::default().replica_acks(1, ack_timeout);
    DurableBus::new(&RedisUrl::parse(&master.url()).unwrap(), "ns", "bot", TIMEOUT, options).unwrap()
}

fn stream_len(server: &RedisServer, key: &str) -> i64 {
    match server.command(&["XLEN", key]).unwrap() {
        Reply::Integer(n) => n,
        other => panic!("XLEN answered {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_published_ok_is_on_the_replica_when_the_publish_returns() {
    let master = RedisServer::start().expect("redis-server must be installed");
    let replica = master.start_replica().unwrap();
    let bus = bus(&master, TIMEOUT);
    let (orders, fills) = (bus.stream_key("orders"), bus.stream_key("fills"));

    bus.publish("orders", json!({"id": 1})).await.unwrap();
    assert_eq!(stream_len(&replica, &orders), 1, "read right after the publish");
    let results = bus
        .publish_batch(vec![("orders", json!({"id": 2})), ("fills", json!({"id": 3})), ("fills", json!({"id": 4}))])
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!((stream_len(&replica, &orders), stream_len(&replica, &fills)), (2, 2));
    bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_replica_does_not_confirm_is_stored_and_reported_not_replicated() {
    let master = RedisServer::start().expect("redis-server must be installed");
    let mut replica = master.start_replica().unwrap();
    let bus = bus(&master, Duration::from_millis(300));
    let key = bus.stream_key("orders");

    replica.pause().unwrap();
    let error = bus.publish("orders", json!({"id": 1})).await.unwrap_err();
    assert!(
        matches!(&error, EventsError::NotReplicated { operation: "publish", acknowledged: 0, required: 1, key: k, .. } if *k == key),
        "{error:?}"
    );
    assert!(error.is_transient() && error.may_have_been_applied(), "{error}");
    let results = bus.publish_batch(vec![("orders", json!({"id": 2})), ("orders", json!({"id": 3}))]).await.unwrap();
    for result in &results {
        assert!(matches!(result, Err(EventsError::NotReplicated { operation: "publish_batch", .. })), "{result:?}");
    }
    // Stored on the master, as the errors say: subscribers will see these events.
    assert_eq!(stream_len(&master, &key), 3);

    replica.resume().unwrap();
    bus.publish("orders", json!({"id": 4})).await.unwrap();
    assert_eq!(stream_len(&replica, &key), 4);
    bus.close().await.unwrap();
}

#[test]
fn a_zero_acknowledgement_timeout_is_refused() {
    let options = DurableOptions::default().replica_acks(1, Duration::ZERO);
    let url = RedisUrl::parse("redis://127.0.0.1:1").unwrap();
    let error = DurableBus::new(&url, "ns", "bot", TIMEOUT, options).unwrap_err();
    assert_eq!(error.to_string(), "invalid subscription option: replica_ack_timeout must be greater than 0");
}
