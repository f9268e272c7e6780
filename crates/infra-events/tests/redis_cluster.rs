//! Both Redis buses on a real 3-master Redis Cluster (`redis-cluster://` URLs): the shared
//! conformance suite (two buses each, like two processes; one cluster per test), then what a
//! cluster changes: channels are sharded (`SSUBSCRIBE`/`SPUBLISH` on the channel's shard),
//! pattern subscriptions get a cluster-wide `PUBLISH` broadcast, streams carry a hash tag so a
//! stream and its dead-letter stream share a slot, and plain clients' payloads still arrive.
#![cfg(feature = "redis")]

mod support;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{FutureExt, StreamExt};
use infra_config::RedisUrl;
use infra_events::{
    BoxError, Envelope, EventBus, EventStream, Pattern, Payload, SubscribeOptions, Topic,
    redis::{DurableBus, DurableOptions, RedisBus},
};
use infra_testkit::{RedisCluster, Reply};
use serde_json::json;
use support::{Fixture, Mode, suite};

const TIMEOUT: Duration = Duration::from_secs(5);

fn start_cluster() -> RedisCluster {
    RedisCluster::start().expect("redis-server and redis-cli must be installed")
}

fn url(cluster: &RedisCluster) -> RedisUrl {
    RedisUrl::parse(&cluster.url()).expect("cluster url")
}

fn ephemeral(cluster: &RedisCluster, source: &str) -> RedisBus {
    RedisBus::new(&url(cluster), "conformance", source, TIMEOUT).unwrap()
}

fn durable(cluster: &RedisCluster, source: &str, options: DurableOptions) -> DurableBus {
    DurableBus::new(&url(cluster), "conformance", source, TIMEOUT, options).unwrap()
}

/// Two buses on `cluster`, like two processes. The fixture names no single server, so the
/// suite's foreign-client case is covered by [`payloads_of_plain_redis_clients_are_delivered`].
fn fixture(cluster: &RedisCluster, mode: Mode) -> Fixture {
    let (publisher, subscriber): (Arc<dyn EventBus>, Arc<dyn EventBus>) = match mode {
        Mode::Durable => (
            Arc::new(durable(cluster, "pub", DurableOptions::default())),
            Arc::new(durable(cluster, "sub", DurableOptions::default())),
        ),
        _ => (Arc::new(ephemeral(cluster, "pub")), Arc::new(ephemeral(cluster, "sub"))),
    };
    Fixture { publisher, subscriber, mode, server: None }
}

macro_rules! conformance_on_a_cluster {
    ($($name:ident),* $(,)?) => {
        mod ephemeral {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let cluster = start_cluster();
                    suite::$name(&fixture(&cluster, Mode::Ephemeral)).await;
                }
            )*
        }

        mod durable {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let cluster = start_cluster();
                    suite::$name(&fixture(&cluster, Mode::Durable)).await;
                }
            )*
        }
    };
}

// `pattern_table` in its cluster form below: the suite's witness is a channel subscription,
// which on a cluster is not ordered with the pattern copies.
conformance_on_a_cluster!(
    order_and_fan_out,
    unsubscribe_and_drop_stop_delivery,
    handler_errors_and_panics_are_isolated,
    handlers_run_with_the_publishers_correlation_id,
    batch_publish,
);

fn channel(name: &str) -> Topic {
    Topic::Channel(name.to_owned())
}

async fn next(stream: &mut EventStream) -> Envelope {
    tokio::time::timeout(TIMEOUT, stream.next()).await.expect("an event in time").expect("stream open")
}

/// Channel names whose Redis keys (`conformance:<name>`, with `key` turning a name into the key
/// to place) live on three different masters, one per master.
fn one_per_master(cluster: &mut RedisCluster, key: impl Fn(&str) -> String) -> Vec<(String, usize)> {
    let mut found: Vec<(String, usize)> = Vec::new();
    for i in 0.. {
        let name = format!("ch{i}");
        let owner = cluster.node_for_key(&key(&name)).unwrap();
        if !found.iter().any(|(_, o)| *o == owner) {
            found.push((name, owner));
        }
        if found.len() == 3 {
            return found;
        }
    }
    unreachable!()
}

/// Streams are read by name on a cluster too: every pattern is refused, with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_refuses_patterns() {
    let cluster = start_cluster();
    suite::pattern_table(&fixture(&cluster, Mode::Durable)).await;
}

/// The suite's pattern table, with a pattern witness (`*`): a pattern copy and a channel copy
/// travel different connections on a cluster (the broadcast and the shard), so only a witness
/// on the same path proves a non-matching pattern got nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_table() {
    let cluster = start_cluster();
    let (publisher, subscriber) = (ephemeral(&cluster, "pub"), ephemeral(&cluster, "sub"));
    let cases = suite::PATTERN_CASES;
    let mut witness = subscriber.stream(Topic::Pattern(Pattern::new("*")), SubscribeOptions::default()).await.unwrap();
    for (case, (pattern, name, expected)) in cases.into_iter().enumerate() {
        let (marker, sentinel) = (json!(case), json!(format!("sentinel-{case}")));
        let mut matching =
            subscriber.stream(Topic::Pattern(Pattern::new(pattern)), SubscribeOptions::default()).await.unwrap();
        publisher.publish(name, marker.clone()).await.unwrap();
        publisher.publish(name, sentinel.clone()).await.unwrap();
        let mut seen = Vec::new();
        while seen.last() != Some(&sentinel) {
            seen.push(next(&mut witness).await.decode::<serde_json::Value>().unwrap());
        }
        assert!(seen.contains(&marker), "{pattern:?} ~ {name:?}: the witness saw {seen:?}");
        let got: Vec<serde_json::Value> = std::iter::from_fn(|| matching.next().now_or_never().flatten())
            .map(|e| e.decode().unwrap())
            .filter(|v| *v == marker)
            .collect();
        assert_eq!(got.len(), usize::from(expected), "{pattern:?} ~ {name:?}: {got:?}");
    }
    publisher.close().await.unwrap();
    subscriber.close().await.unwrap();
}

fn texts(reply: &Reply) -> Vec<String> {
    match reply {
        Reply::Bulk(Some(bytes)) => vec![String::from_utf8_lossy(bytes).into_owned()],
        Reply::Status(text) => vec![text.clone()],
        Reply::Integer(n) => vec![n.to_string()],
        Reply::Array(Some(items)) => items.iter().flat_map(texts).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_sharded_on_the_node_that_owns_them() {
    let mut cluster = start_cluster();
    let (publisher, subscriber) = (ephemeral(&cluster, "pub"), ephemeral(&cluster, "sub"));
    let channels = one_per_master(&mut cluster, |name| format!("conformance:{name}"));
    let mut streams = Vec::new();
    for (name, _) in &channels {
        streams.push(subscriber.stream(channel(name), SubscribeOptions::default()).await.unwrap());
    }
    for ((name, owner), stream) in channels.iter().zip(&mut streams) {
        // Each channel is a shard channel of its owner only, and no classic channel anywhere.
        for (index, node) in cluster.nodes().iter().enumerate() {
            let sharded = texts(&node.command(&["PUBSUB", "SHARDCHANNELS"]).unwrap());
            assert_eq!(sharded.contains(&format!("conformance:{name}")), index == *owner, "{name} on node {index}");
            assert_eq!(texts(&node.command(&["PUBSUB", "CHANNELS"]).unwrap()), Vec::<String>::new());
        }
        let published = publisher.publish(name, json!(name)).await.unwrap();
        assert_eq!(published.redis_receivers, Some(1), "SPUBLISH counts the shard's subscribers exactly");
        assert_eq!(next(stream).await.decode::<String>().unwrap(), *name);
    }
    // Released with the last local subscription.
    drop(streams);
    for (name, owner) in &channels {
        let node = &cluster.nodes()[*owner];
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        while texts(&node.command(&["PUBSUB", "SHARDCHANNELS"]).unwrap()).contains(&format!("conformance:{name}")) {
            assert!(tokio::time::Instant::now() < deadline, "{name} still subscribed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    publisher.close().await.unwrap();
    subscriber.close().await.unwrap();
}

/// Patterns cannot be sharded (Redis has no sharded `PSUBSCRIBE`): a pattern subscription is a
/// classic `PSUBSCRIBE ns:*` on one node and receives the classic `PUBLISH` copy each publish
/// sends, which the cluster bus broadcasts to every node, from channels of every master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_subscriptions_receive_channels_of_every_master_by_broadcast() {
    let mut cluster = start_cluster();
    let (publisher, subscriber) = (ephemeral(&cluster, "pub"), ephemeral(&cluster, "sub"));
    let channels = one_per_master(&mut cluster, |name| format!("conformance:{name}"));
    let mut all =
        subscriber.stream(Topic::Pattern(Pattern::parse("ch*").unwrap()), SubscribeOptions::default()).await.unwrap();
    let mut none = subscriber
        .stream(Topic::Pattern(Pattern::parse("other*").unwrap()), SubscribeOptions::default())
        .await
        .unwrap();
    let psubscribed: usize = cluster
        .nodes()
        .iter()
        .map(|node| texts(&node.command(&["PUBSUB", "NUMPAT"]).unwrap())[0].parse::<usize>().unwrap())
        .sum();
    assert_eq!(psubscribed, 1, "one PSUBSCRIBE for every pattern of the bus, on one node");
    for round in 0..10 {
        for (name, _) in &channels {
            publisher.publish(name, json!(round)).await.unwrap();
        }
    }
    let mut received: Vec<(String, i64)> = Vec::new();
    while received.len() < 30 {
        let event = next(&mut all).await;
        received.push((event.channel.clone(), event.decode().unwrap()));
    }
    for (name, _) in &channels {
        // A publisher's events on one channel keep their order.
        let rounds: Vec<i64> = received.iter().filter(|(c, _)| c == name).map(|(_, n)| *n).collect();
        assert_eq!(rounds, (0..10).collect::<Vec<_>>(), "{name}");
    }
    let owners: BTreeSet<usize> = channels.iter().map(|(_, owner)| *owner).collect();
    assert_eq!(owners.len(), 3);
    // Routed on the same path as `all`'s 30 events, before them: nothing can still be on its way.
    let event = none.next().now_or_never().flatten();
    assert!(event.is_none(), "a pattern that matches nothing gets nothing: {event:?}");
    publisher.close().await.unwrap();
    subscriber.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_of_plain_redis_clients_are_delivered() {
    let mut cluster = start_cluster();
    // Pub/sub: a plain client's SPUBLISH on the channel's shard.
    let subscriber = ephemeral(&cluster, "sub");
    let mut quotes = subscriber.stream(channel("quotes"), SubscribeOptions::default()).await.unwrap();
    let owner = cluster.node_for_key("conformance:quotes").unwrap();
    cluster.nodes()[owner].command(&["SPUBLISH", "conformance:quotes", r#"{"bid":1.5}"#]).unwrap();
    cluster.nodes()[owner].command(&["SPUBLISH", "conformance:quotes", "not json at all"]).unwrap();
    let json = next(&mut quotes).await;
    assert!(json.foreign);
    assert_eq!(json.payload, Payload::Json(json!({"bid": 1.5})));
    let raw = next(&mut quotes).await;
    assert_eq!(raw.payload, Payload::Raw(b"not json at all".to_vec()));
    subscriber.close().await.unwrap();

    // Streams: a plain client's XADD to the tagged stream key.
    let bus = durable(&cluster, "sub", DurableOptions::default());
    let key = bus.stream_key("quotes");
    let mut stored = bus.stream(channel("quotes"), SubscribeOptions::default()).await.unwrap();
    let owner = cluster.node_for_key(&key).unwrap();
    cluster.nodes()[owner].command(&["XADD", &key, "*", "body", "plain"]).unwrap();
    let event = next(&mut stored).await;
    assert!(event.foreign);
    assert_eq!(event.payload, Payload::Raw(b"plain".to_vec()));
    bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_and_its_dead_letters_share_a_slot_and_poison_is_buried() {
    let mut cluster = start_cluster();
    let options = DurableOptions::default().claim_after(Duration::from_millis(100)).max_deliveries(2);
    let bus = durable(&cluster, "bot", options);
    assert_eq!(bus.stream_key("orders"), "conformance:stream:{conformance:orders}");
    assert_eq!(bus.dead_letter_key("orders"), "conformance:dead:{conformance:orders}");
    // Channels on every master (by their stream key), each with its dead-letter stream.
    let channels = one_per_master(&mut cluster, |name| bus.stream_key(name));
    for (name, owner) in &channels {
        assert_eq!(cluster.node_for_key(&bus.dead_letter_key(name)).unwrap(), *owner, "{name}");
    }
    let handled = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&handled);
    let poison = move |event: Envelope| {
        let sink = Arc::clone(&sink);
        async move {
            let n: i64 = event.decode()?;
            if n < 0 {
                return Err::<(), BoxError>("poison".into());
            }
            sink.lock().unwrap().push((event.channel.clone(), n));
            Ok(())
        }
    };
    let handler: Arc<dyn infra_events::Handler> = Arc::new(poison);
    let mut subscriptions = Vec::new();
    for (name, _) in &channels {
        let group = SubscribeOptions::default().group("executor");
        subscriptions.push(bus.subscribe(channel(name), Arc::clone(&handler), group).await.unwrap());
    }
    let batch: Vec<(&str, serde_json::Value)> =
        channels.iter().flat_map(|(name, _)| [(name.as_str(), json!(1)), (name.as_str(), json!(-1))]).collect();
    for result in bus.publish_batch(batch).await.unwrap() {
        assert!(result.unwrap().position.is_some());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while subscriptions.iter().map(|s| s.stats().dead_lettered()).sum::<u64>() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the poison events were not dead-lettered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for subscription in subscriptions {
        subscription.unsubscribe().await;
    }
    let mut seen = handled.lock().unwrap().clone();
    seen.sort();
    let mut expected: Vec<(String, i64)> = channels.iter().map(|(name, _)| (name.clone(), 1)).collect();
    expected.sort();
    assert_eq!(seen, expected);
    for (name, owner) in &channels {
        let node = &cluster.nodes()[*owner];
        assert_eq!(node.command(&["XLEN", &bus.dead_letter_key(name)]).unwrap(), Reply::Integer(1), "{name}");
    }
    bus.close().await.unwrap();
}
