//! Both Redis buses while a cluster master fails over to its replica (infra-testkit's
//! `RedisCluster::with_replicas` and `fail_over_master`): subscriptions made before receive
//! again once the replica serves the slots, the loss in between is reported as a gap
//! (ephemeral), and the durable bus delivers every event, before and after, with nothing lost.
#![cfg(feature = "redis")]

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use infra_config::RedisUrl;
use infra_events::{
    BoxError, Envelope, EventBus, EventStream, Pattern, SubscribeOptions, Topic,
    redis::{DurableBus, DurableOptions, RedisBus},
};
use infra_testkit::RedisCluster;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(2);
const LIMIT: Duration = Duration::from_secs(30);

fn cluster() -> RedisCluster {
    RedisCluster::with_replicas(3, 1).expect("redis-server and redis-cli must be installed")
}

fn url(cluster: &RedisCluster) -> RedisUrl {
    RedisUrl::parse(&cluster.url()).unwrap()
}

/// Publishes `n`, `n + 1`, … on `channel` until `stream` receives one of them; returns it.
async fn publish_until_received(bus: &RedisBus, channel: &str, stream: &mut EventStream, from: i64) -> i64 {
    let deadline = tokio::time::Instant::now() + LIMIT;
    for n in from.. {
        assert!(tokio::time::Instant::now() < deadline, "{channel}: nothing received after the failover");
        let _ = bus.publish(channel, json!(n)).await;
        if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(100), stream.next()).await {
            return event.decode().unwrap();
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_subscriptions_receive_again_after_a_failover() {
    let mut cluster = cluster();
    let (publisher, subscriber) = (
        RedisBus::new(&url(&cluster), "ns", "pub", TIMEOUT).unwrap(),
        RedisBus::new(&url(&cluster), "ns", "sub", TIMEOUT).unwrap(),
    );
    let failed = cluster.node_for_key("ns:fills").unwrap();
    let mut fills = subscriber.stream(Topic::Channel("fills".into()), SubscribeOptions::default()).await.unwrap();
    let mut all =
        subscriber.stream(Topic::Pattern(Pattern::parse("*").unwrap()), SubscribeOptions::default()).await.unwrap();
    publisher.publish("fills", json!(0)).await.unwrap();
    assert_eq!(fills.next().await.unwrap().decode::<i64>().unwrap(), 0);
    assert_eq!(all.next().await.unwrap().decode::<i64>().unwrap(), 0);

    let killed = Instant::now();
    let promoted = tokio::task::block_in_place(|| cluster.fail_over_master(failed)).unwrap();
    let promotion = killed.elapsed();
    assert_eq!(cluster.node_for_key("ns:fills").unwrap(), promoted);
    let first = publish_until_received(&publisher, "fills", &mut fills, 1000).await;
    eprintln!("promoted {promotion:?} after the kill; the channel received again {:?} after it", killed.elapsed());
    assert!(first >= 1000);
    assert!(fills.stats().gaps() >= 1, "the lost connection is reported as a gap");
    // The pattern subscription (on whichever node holds it) receives too.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let event = tokio::time::timeout(LIMIT, all.next()).await.expect("pattern events").unwrap();
        if event.decode::<i64>().unwrap() >= 1000 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
    }
    publisher.close().await.unwrap();
    subscriber.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_durable_bus_loses_nothing_across_a_failover() {
    let mut cluster = cluster();
    let options = DurableOptions::default().claim_after(Duration::from_millis(500));
    let bus = DurableBus::new(&url(&cluster), "ns", "bot", TIMEOUT, options).unwrap();
    let failed = cluster.node_for_key(&bus.stream_key("jobs")).unwrap();
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let sink = Arc::clone(&seen);
    let handler = move |event: Envelope| {
        let sink = Arc::clone(&sink);
        async move {
            sink.lock().unwrap().insert(event.decode::<i64>()?);
            Ok::<(), BoxError>(())
        }
    };
    let subscription = bus
        .subscribe(Topic::Channel("jobs".into()), Arc::new(handler), SubscribeOptions::default().group("workers"))
        .await
        .unwrap();
    for n in 0..50 {
        bus.publish("jobs", json!(n)).await.unwrap();
    }
    let killed = Instant::now();
    tokio::task::block_in_place(|| cluster.fail_over_master(failed)).unwrap();
    // Publishing resumes once the client follows the slots; every event it accepted is kept.
    let mut published: BTreeSet<i64> = (0..50).collect();
    let deadline = tokio::time::Instant::now() + LIMIT;
    let mut n = 50;
    while published.len() < 100 {
        assert!(tokio::time::Instant::now() < deadline, "publishing never resumed");
        if bus.publish("jobs", json!(n)).await.is_ok() {
            published.insert(n);
        }
        n += 1;
    }
    eprintln!("publishing resumed {:?} after the kill", killed.elapsed());
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !published.is_subset(&seen.lock().unwrap()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "missing: {:?}",
            published.difference(&seen.lock().unwrap()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("every event delivered {:?} after the kill", killed.elapsed());
    subscription.unsubscribe().await;
    bus.close().await.unwrap();
}
