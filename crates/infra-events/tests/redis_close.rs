//! Shutting the Redis buses down: `close()` finishes queued work and leaves no connection, and a
//! bus dropped without it, even outside its runtime, disconnects too.
#![cfg(feature = "redis")]

use std::{
    error::Error as _,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use infra_config::RedisUrl;
use infra_events::{
    BoxError, Envelope, EventBus, EventsError, SubscribeOptions, Topic,
    redis::{DurableBus, DurableOptions, RedisBus},
};
use infra_testkit::RedisServer;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(5);

fn url(server: &RedisServer) -> RedisUrl {
    RedisUrl::parse(&server.url()).unwrap()
}

fn channel(name: &str) -> Topic {
    Topic::Channel(name.to_owned())
}

/// Asserts `error` is what a closed bus answers.
fn assert_closed(error: &EventsError) {
    assert!(matches!(error, EventsError::Connection { .. }), "{error:?}");
    let source = error.source().map(ToString::to_string).unwrap_or_default();
    assert!(source.contains("was closed"), "{source}");
    // Refused before anything was sent, and never answered again: a retry policy must not
    // try it again.
    assert!(!error.is_transient() && !error.may_have_been_applied(), "{error}");
}

/// A handler recording each event's number.
fn recorder(seen: &Arc<Mutex<Vec<i64>>>) -> Arc<dyn infra_events::Handler> {
    let seen = Arc::clone(seen);
    Arc::new(move |event: Envelope| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().push(event.decode::<i64>()?);
            Ok::<(), BoxError>(())
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_pub_sub_bus_delivers_what_it_received_and_disconnects() {
    let server = RedisServer::start().expect("redis-server must be installed");
    let bus = RedisBus::new(&url(&server), "test", "bot", TIMEOUT).unwrap();
    let mut ticks = bus.stream(channel("ticks"), SubscribeOptions::default()).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscription = bus.subscribe(channel("ticks"), recorder(&seen), SubscribeOptions::default()).await.unwrap();
    for n in 0..100 {
        bus.publish("ticks", json!(n)).await.unwrap();
    }
    assert_eq!(server.clients().unwrap(), 2, "a publisher and a subscriber connection");

    let dyn_bus: &dyn EventBus = &bus;
    dyn_bus.close().await.unwrap();
    assert!(
        server.wait_for_clients(0, Duration::from_secs(10)).unwrap(),
        "clients still connected: {}",
        server.clients().unwrap()
    );
    // What Redis had sent before the close is delivered; then the subscriptions end.
    let received: Vec<i64> = ticks.by_ref().map(|event| event.decode::<i64>().unwrap()).collect().await;
    assert_eq!(received, (0..100).collect::<Vec<_>>());
    let stats = tokio::time::timeout(TIMEOUT, subscription.unsubscribe()).await.unwrap();
    assert_eq!((stats.handled(), seen.lock().unwrap().clone()), (100, (0..100).collect::<Vec<_>>()));

    assert_closed(&bus.publish("ticks", json!(100)).await.unwrap_err());
    assert_closed(&bus.stream(channel("ticks"), SubscribeOptions::default()).await.unwrap_err());
    bus.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_durable_bus_drains_its_subscriptions_and_disconnects() {
    let server = RedisServer::start().unwrap();
    let bus = DurableBus::new(&url(&server), "test", "bot", TIMEOUT, DurableOptions::default()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let group = SubscribeOptions::default().group("ledger");
    let subscription = bus.subscribe(channel("fills"), recorder(&seen), group).await.unwrap();
    let mut private = bus.stream(channel("fills"), SubscribeOptions::default()).await.unwrap();
    let fills = (0..500).map(|n| ("fills", json!(n))).collect();
    assert!(bus.publish_batch(fills).await.unwrap().iter().all(Result::is_ok));

    bus.close().await.unwrap();
    // Everything published before the close was handled, then every connection closed.
    assert_eq!(*seen.lock().unwrap(), (0..500).collect::<Vec<_>>());
    assert_eq!(server.clients().unwrap(), 0);
    let streamed: Vec<i64> = private.by_ref().map(|event| event.decode::<i64>().unwrap()).collect().await;
    assert_eq!(streamed, (0..500).collect::<Vec<_>>());
    let stats = subscription.unsubscribe().await;
    assert_eq!((stats.handled(), stats.errors()), (500, 0));
    let consumers = server.command(&["XINFO", "CONSUMERS", "test:stream:fills", "ledger"]).unwrap();
    assert_eq!(consumers, infra_testkit::Reply::Array(Some(Vec::new())), "the consumer was removed");

    assert_closed(&bus.publish("fills", json!(500)).await.unwrap_err());
    let group = SubscribeOptions::default().group("ledger");
    assert_closed(&bus.subscribe(channel("fills"), recorder(&seen), group).await.unwrap_err());
}

#[test]
fn buses_dropped_outside_their_runtime_disconnect() {
    let server = RedisServer::start().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (pubsub, subscription, durable, stream) = runtime.block_on(async {
        let pubsub = RedisBus::new(&url(&server), "test", "bot", TIMEOUT).unwrap();
        let subscription = pubsub.stream(channel("ticks"), SubscribeOptions::default()).await.unwrap();
        pubsub.publish("ticks", json!(1)).await.unwrap();
        let durable = DurableBus::new(&url(&server), "test", "bot", TIMEOUT, DurableOptions::default()).unwrap();
        let stream = durable.stream(channel("fills"), SubscribeOptions::default()).await.unwrap();
        durable.publish("fills", json!(1)).await.unwrap();
        (pubsub, subscription, durable, stream)
    });
    assert_eq!(server.clients().unwrap(), 4, "publisher, subscriber, durable publisher, durable reader");
    // This thread is in no runtime: the drops reach the one the buses connected from.
    drop((subscription, stream));
    drop((pubsub, durable));
    assert!(
        server.wait_for_clients(0, Duration::from_secs(10)).unwrap(),
        "clients still connected: {}",
        server.clients().unwrap()
    );
    drop(runtime);
}

#[test]
fn a_bus_dropped_after_its_runtime_is_gone_disconnects() {
    let server = RedisServer::start().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let bus = runtime.block_on(async {
        let bus = RedisBus::new(&url(&server), "test", "bot", TIMEOUT).unwrap();
        let subscription = bus.stream(channel("ticks"), SubscribeOptions::default()).await.unwrap();
        bus.publish("ticks", json!(1)).await.unwrap();
        drop(subscription);
        bus
    });
    drop(runtime);
    drop(bus);
    assert!(
        server.wait_for_clients(0, Duration::from_secs(10)).unwrap(),
        "clients still connected: {}",
        server.clients().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_never_hangs_on_a_handler_that_never_returns() {
    let server = RedisServer::start().unwrap();
    let options = DurableOptions::default().close_timeout(Duration::from_millis(300));
    let bus = DurableBus::new(&url(&server), "test", "bot", TIMEOUT, options).unwrap();
    let (entered, mut handling) = tokio::sync::mpsc::unbounded_channel();
    let stuck: Arc<dyn infra_events::Handler> = Arc::new(move |_event: Envelope| {
        let _ = entered.send(());
        std::future::pending::<Result<(), BoxError>>()
    });
    let options = SubscribeOptions { group: Some("workers".to_owned()), ..SubscribeOptions::default() };
    let _subscription = bus.subscribe(channel("orders"), stuck, options).await.unwrap();
    bus.publish("orders", json!(1)).await.unwrap();
    handling.recv().await.expect("the handler started");

    let started = Instant::now();
    let error = tokio::time::timeout(TIMEOUT, bus.close()).await.expect("close never hangs").unwrap_err();
    assert!(started.elapsed() < TIMEOUT, "{:?}", started.elapsed());
    assert!(matches!(error, EventsError::Timeout { operation: "close", .. }), "{error:?}");
    assert!(error.to_string().contains("1 durable subscriptions still draining"), "{error}");
    // The event was never acknowledged: it stays pending for the group, not lost.
    let pending = server.command(&["XPENDING", "test:stream:orders", "workers"]).unwrap();
    let infra_testkit::Reply::Array(Some(summary)) = pending else { panic!("{pending:?}") };
    assert_eq!(summary[0], infra_testkit::Reply::Integer(1));
}
