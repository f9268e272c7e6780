//! A Redis user limited to its namespace (`~ns:*`, `&ns:*`) can do everything both Redis buses
//! do: publish (one, a batch), subscribe to channels and patterns, and in durable mode consumer
//! groups (named and private), replay, claims of failed entries, dead letters, cleanup on
//! unsubscribe and close. A NOPERM on any of them would mean a key or channel outside the
//! namespace. (A wrong password: `redis_acl.rs`,
//! `a_wrong_password_is_reported_without_the_password_or_a_client_type`.)
#![cfg(feature = "redis")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use infra_config::RedisUrl;
use infra_events::{
    BoxError, Envelope, EventBus, EventBusExt, EventStream, Pattern, Start, SubscribeOptions, Topic,
    redis::{DurableBus, DurableOptions, RedisBus},
};
use infra_testkit::{RedisServer, Reply};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(5);
const PASSWORD: &str = "Zq9-bot-secret";

/// A server whose first user (`admin`, the kit's own probes) may do anything and whose `bot`
/// may touch only `ns:*` keys and channels.
fn server() -> RedisServer {
    let server = RedisServer::builder().acl_user("admin", "admin-pw").start().expect("redis-server must be installed");
    server.add_namespace_user("bot", PASSWORD, "ns").unwrap();
    server
}

fn url(server: &RedisServer) -> RedisUrl {
    RedisUrl::parse(&server.url_with("bot", PASSWORD)).unwrap()
}

fn channel(name: &str) -> Topic {
    Topic::Channel(name.to_owned())
}

async fn next(stream: &mut EventStream) -> Envelope {
    tokio::time::timeout(TIMEOUT, stream.next()).await.expect("an event in time").expect("open")
}

async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every key in the server, as the admin sees it.
fn all_keys(server: &RedisServer) -> Vec<String> {
    match server.command(&["KEYS", "*"]).unwrap() {
        Reply::Array(Some(items)) => items.iter().filter_map(Reply::as_text).collect(),
        other => panic!("unexpected KEYS reply {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_limited_to_its_namespace_can_use_every_pubsub_operation() {
    let server = server();
    let bus = RedisBus::new(&url(&server), "ns", "bot", TIMEOUT).unwrap();
    assert!(!format!("{bus:?}").contains(PASSWORD));
    bus.connect().await.unwrap();
    bus.ping().await.unwrap();

    let mut ticks = bus.stream(channel("ticks"), SubscribeOptions::default()).await.unwrap();
    let mut all =
        bus.stream(Topic::Pattern(Pattern::parse("tick*").unwrap()), SubscribeOptions::default()).await.unwrap();
    let seen = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&seen);
    let handled = bus
        .subscribe_pattern("ti?ks", move |_event: Envelope| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {}
        })
        .await
        .unwrap();

    assert_eq!(bus.publish("ticks", json!(1)).await.unwrap().redis_receivers, Some(2));
    for result in bus.publish_batch(vec![("ticks", json!(2)), ("ticks", json!(3))]).await.unwrap() {
        result.unwrap();
    }
    bus.publish_json("ticks", &4).await.unwrap();
    for expected in 1..=4 {
        assert_eq!(next(&mut ticks).await.decode::<i64>().unwrap(), expected);
        assert_eq!(next(&mut all).await.decode::<i64>().unwrap(), expected);
    }
    until("the pattern handler", || seen.load(Ordering::SeqCst) == 4).await;
    assert_eq!(handled.unsubscribe().await.handled(), 4);
    drop((ticks, all));
    bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_limited_to_its_namespace_can_use_every_durable_operation() {
    let server = server();
    let options = DurableOptions::default().claim_after(Duration::from_millis(100)).max_deliveries(2);
    let bus = DurableBus::new(&url(&server), "ns", "bot", TIMEOUT, options).unwrap();
    assert!(!format!("{bus:?}").contains(PASSWORD));
    bus.connect().await.unwrap();
    bus.ping().await.unwrap();

    // A private group (created and destroyed), a named group, replay from the beginning and
    // from a position.
    let mut private = bus.stream(channel("jobs"), SubscribeOptions::default()).await.unwrap();
    let named = SubscribeOptions::default().group("workers");
    let mut worker = bus.stream(channel("jobs"), named.clone()).await.unwrap();
    let first = bus.publish("jobs", json!(1)).await.unwrap();
    for result in bus.publish_batch(vec![("jobs", json!(2)), ("jobs", json!(3))]).await.unwrap() {
        result.unwrap();
    }
    for expected in 1..=3 {
        assert_eq!(next(&mut private).await.decode::<i64>().unwrap(), expected);
        assert_eq!(next(&mut worker).await.decode::<i64>().unwrap(), expected);
    }
    let mut replay = bus.stream(channel("jobs"), SubscribeOptions::default().start(Start::Beginning)).await.unwrap();
    assert_eq!(next(&mut replay).await.decode::<i64>().unwrap(), 1);
    let after = Start::After(first.position.clone().expect("a stream position"));
    let mut resumed = bus.stream(channel("jobs"), SubscribeOptions::default().start(after)).await.unwrap();
    assert_eq!(next(&mut resumed).await.decode::<i64>().unwrap(), 2);
    drop((private, worker, replay, resumed));

    // A handler that always fails: redelivered through a claim, then dead-lettered.
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&attempts);
    let failing = move |_event: Envelope| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Err::<(), BoxError>("poison".into()) }
    };
    let subscription =
        bus.subscribe(channel("orders"), Arc::new(failing), SubscribeOptions::default().group("exec")).await.unwrap();
    bus.publish("orders", json!("bad")).await.unwrap();
    until("the dead letter", || subscription.stats().dead_lettered() == 1).await;
    let stats = subscription.unsubscribe().await;
    assert_eq!((stats.errors(), stats.redelivered(), stats.dead_lettered()), (2, 1, 1));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(server.command(&["XLEN", &bus.dead_letter_key("orders")]).unwrap(), Reply::Integer(1));

    bus.close().await.unwrap();
    let outside: Vec<String> = all_keys(&server).into_iter().filter(|key| !key.starts_with("ns:")).collect();
    assert!(outside.is_empty(), "keys outside the namespace: {outside:?}");
}
