//! Bad input for the buses (listed in docs/reliability.md, "Bad input"): foreign garbage on
//! channels and streams (binary, empty, truncated or nested JSON, an envelope of another
//! version or with fields of the wrong type, entries with other fields), invalid patterns,
//! odd channel names, oversized payloads, and a key of the wrong type where a stream is
//! expected. Each is delivered raw (foreign), counted, or a typed error; no subscription stops.
#![cfg(feature = "redis")]

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use infra_config::RedisUrl;
use infra_events::{
    BoxError, Envelope, EventBus, EventBusExt, EventStream, EventsError, Payload, SubscribeOptions, Topic,
    memory::MemoryBus,
    redis::{DurableBus, DurableOptions, RedisBus},
};
use infra_testkit::{RedisServer, Reply};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(5);

fn url(server: &RedisServer) -> RedisUrl {
    RedisUrl::parse(&server.url()).unwrap()
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

/// Messages no publisher of ours would send, each with what it must arrive as.
fn garbage() -> Vec<(Vec<u8>, Payload)> {
    let ours = Envelope::new("c", "bot", json!({"qty": 1})).to_wire();
    let truncated = ours.as_bytes()[..ours.len() / 2].to_vec();
    let nested = "[".repeat(100_000).into_bytes();
    let raw = |bytes: &[u8]| (bytes.to_vec(), Payload::Raw(bytes.to_vec()));
    vec![
        raw(&[0xff, 0x00, 0xfe, 0x80]),
        raw(b""),
        raw(&truncated),
        // Deeper than serde_json's recursion limit: not JSON to us, never a stack overflow.
        raw(&nested),
        (
            br#"{"v":2,"id":"x","channel":"c","ts":1,"source":"s","payload":1}"#.to_vec(),
            Payload::Json(json!({"v": 2, "id": "x", "channel": "c", "ts": 1, "source": "s", "payload": 1})),
        ),
        (
            br#"{"v":1,"id":5,"channel":[],"ts":"soon","source":null,"payload":1}"#.to_vec(),
            Payload::Json(json!({"v": 1, "id": 5, "channel": [], "ts": "soon", "source": null, "payload": 1})),
        ),
        (b"42".to_vec(), Payload::Json(json!(42))),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_a_pubsub_channel_is_delivered_raw_and_the_subscription_carries_on() {
    let server = RedisServer::start().expect("redis-server must be installed");
    let bus = RedisBus::new(&url(&server), "ns", "bot", TIMEOUT).unwrap();
    let mut events = bus.stream(channel("c"), SubscribeOptions::default()).await.unwrap();
    let decoded = bus.subscribe_json("c", |_: i64, _| async {}).await.unwrap();
    let garbage = garbage();
    for (bytes, _) in &garbage {
        assert_eq!(server.command_bytes(&[b"PUBLISH", b"ns:c", bytes]).unwrap(), Reply::Integer(1));
    }
    bus.publish("c", json!(7)).await.unwrap();
    for (_, payload) in &garbage {
        let event = next(&mut events).await;
        assert!(event.foreign, "{event:?}");
        assert_eq!(&event.payload, payload);
    }
    let ours = next(&mut events).await;
    assert_eq!((ours.foreign, ours.decode::<i64>().unwrap()), (false, 7));
    // A typed subscriber counts each one that is not an i64 as a handler error, and goes on.
    until("every event handled", || decoded.stats().handled() + decoded.stats().errors() == 8).await;
    let stats = decoded.unsubscribe().await;
    assert_eq!((stats.handled(), stats.errors(), stats.dropped(), stats.gaps()), (2, 6, 0, 0));
    assert!(stats.last_error().is_some_and(|e| e.contains("cannot decode")), "{:?}", stats.last_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_a_stream_is_delivered_raw_or_dead_lettered_never_stopping_the_consumer() {
    let server = RedisServer::start().unwrap();
    let options = DurableOptions::default().claim_after(Duration::from_millis(100)).max_deliveries(2);
    let bus = DurableBus::new(&url(&server), "ns", "bot", TIMEOUT, options).unwrap();
    let mut events = bus.stream(channel("c"), SubscribeOptions::default()).await.unwrap();
    let decoded =
        bus.subscribe_json("c", |n: i64, _| async move {
            if n >= 0 { Ok(()) } else { Err::<(), BoxError>("negative".into()) }
        })
        .await
        .unwrap();
    let garbage = garbage();
    for (bytes, _) in &garbage {
        let reply = server.command_bytes(&[b"XADD", b"ns:stream:c", b"*", b"event", bytes]).unwrap();
        assert!(matches!(reply, Reply::Bulk(Some(_))), "{reply:?}");
    }
    // Entries with fields of their own: one field gives its value, several an object.
    let reply = server.command_bytes(&[b"XADD", b"ns:stream:c", b"*", b"price", b"42.5"]).unwrap();
    assert!(matches!(reply, Reply::Bulk(Some(_))), "{reply:?}");
    let reply = server.command_bytes(&[b"XADD", b"ns:stream:c", b"*", b"a", b"1", b"b", &[0xff]]).unwrap();
    assert!(matches!(reply, Reply::Bulk(Some(_))), "{reply:?}");
    bus.publish("c", json!(7)).await.unwrap();

    for (_, payload) in &garbage {
        let event = next(&mut events).await;
        assert!(event.foreign && event.position.is_some(), "{event:?}");
        assert_eq!(&event.payload, payload);
    }
    assert_eq!(next(&mut events).await.decode::<f64>().unwrap(), 42.5);
    let several = next(&mut events).await;
    assert!(several.foreign, "{several:?}");
    assert_eq!(several.decode::<serde_json::Value>().unwrap()["a"], json!("1"));
    assert_eq!(next(&mut events).await.decode::<i64>().unwrap(), 7);

    // The typed subscriber cannot decode 8 of the 10: each is retried, then dead-lettered.
    until("the undecodable entries dead-lettered", || decoded.stats().dead_lettered() == 8).await;
    let stats = decoded.unsubscribe().await;
    assert_eq!((stats.handled(), stats.dead_lettered(), stats.dropped()), (2, 8, 0));
    assert_eq!(server.command(&["XLEN", "ns:dead:c"]).unwrap(), infra_testkit::Reply::Integer(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_another_type_where_the_stream_belongs_is_a_typed_error() {
    let server = RedisServer::start().unwrap();
    server.command(&["SET", "ns:stream:orders", "not a stream"]).unwrap();
    let bus = DurableBus::new(&url(&server), "ns", "bot", TIMEOUT, DurableOptions::default()).unwrap();
    let error = bus.publish("orders", json!(1)).await.unwrap_err();
    assert!(matches!(error, EventsError::Backend { .. }), "{error:?}");
    assert!(format!("{error:?}").contains("WRONGTYPE"), "{error:?}");
    let error = bus.stream(channel("orders"), SubscribeOptions::default()).await.unwrap_err();
    assert!(matches!(error, EventsError::Backend { .. }), "{error:?}");
    assert!(format!("{error:?}").contains("WRONGTYPE"), "{error:?}");

    // Once the foreign key is gone, the same bus works.
    server.command(&["DEL", "ns:stream:orders"]).unwrap();
    let mut orders = bus.stream(channel("orders"), SubscribeOptions::default()).await.unwrap();
    bus.publish("orders", json!(2)).await.unwrap();
    assert_eq!(next(&mut orders).await.decode::<i64>().unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_patterns_are_refused_before_anything_is_subscribed() {
    let server = RedisServer::start().unwrap();
    let buses: [Arc<dyn EventBus>; 2] =
        [Arc::new(MemoryBus::new("ns")), Arc::new(RedisBus::new(&url(&server), "ns", "bot", TIMEOUT).unwrap())];
    for bus in buses {
        for bad in ["", "prices:[A-Z", "orders\\", "[a-]"] {
            let error = bus.subscribe_pattern(bad, |_: Envelope| async {}).await.unwrap_err();
            assert!(matches!(&error, EventsError::InvalidPattern { pattern, .. } if pattern == bad), "{error:?}");
        }
    }
    // Any string is a Redis pattern: odd ones subscribe, and a pathological one matches in time.
    let bus = RedisBus::new(&url(&server), "ns", "bot", TIMEOUT).unwrap();
    let pathological = format!("{}b", "*a".repeat(50));
    let mut stream = bus
        .stream(Topic::Pattern(infra_events::Pattern::new(pathological)), SubscribeOptions::default())
        .await
        .unwrap();
    let mut any =
        bus.stream(Topic::Pattern(infra_events::Pattern::new("*")), SubscribeOptions::default()).await.unwrap();
    let started = std::time::Instant::now();
    bus.publish(&"a".repeat(10_000), json!(1)).await.unwrap();
    bus.publish(&format!("{}b", "a".repeat(60)), json!(2)).await.unwrap();
    assert_eq!(next(&mut any).await.decode::<i64>().unwrap(), 1);
    assert_eq!(next(&mut stream).await.decode::<i64>().unwrap(), 2);
    assert!(started.elapsed() < TIMEOUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_channel_names_round_trip_on_every_bus() {
    let server = RedisServer::start().unwrap();
    let durable = DurableBus::new(&url(&server), "ns", "bot", TIMEOUT, DurableOptions::default()).unwrap();
    let buses: [Arc<dyn EventBus>; 3] = [
        Arc::new(MemoryBus::new("ns")),
        Arc::new(RedisBus::new(&url(&server), "ns", "bot", TIMEOUT).unwrap()),
        Arc::new(durable),
    ];
    let names = ["with space", "new\nline", "nul\0byte", "日本:🔑", "*?[]\\", "", &"c".repeat(100_000)];
    for bus in buses {
        for (i, name) in names.iter().enumerate() {
            let mut stream = bus.stream(channel(name), SubscribeOptions::default()).await.unwrap();
            bus.publish(name, json!(i)).await.unwrap();
            let event = next(&mut stream).await;
            assert_eq!((event.channel.as_str(), event.decode::<usize>().unwrap()), (*name, i), "{}", bus.backend());
        }
    }
}

/// Publishes until the bus has reconnected (bounded).
async fn publish_until_ok(bus: &dyn EventBus, channel: &str, payload: serde_json::Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Err(error) = bus.publish(channel, payload.clone()).await {
        assert!(matches!(error, EventsError::Connection { .. }), "{error:?}");
        assert!(tokio::time::Instant::now() < deadline, "the bus did not reconnect: {error}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_over_the_servers_limit_is_a_typed_error_and_the_bus_carries_on() {
    // The server's limit on one argument (512 MB by default) set to 1 MB.
    let server = RedisServer::builder().args(["--proto-max-bulk-len", "1mb"]).start().unwrap();
    let ephemeral = RedisBus::new(&url(&server), "ns", "bot", TIMEOUT).unwrap();
    let durable = DurableBus::new(&url(&server), "ns", "bot", TIMEOUT, DurableOptions::default()).unwrap();
    let buses: [Arc<dyn EventBus>; 2] = [Arc::new(ephemeral), Arc::new(durable)];
    let big = json!("x".repeat(2 << 20));
    for bus in buses {
        let mut stream = bus.stream(channel("c"), SubscribeOptions::default()).await.unwrap();
        let error = bus.publish("c", big.clone()).await.unwrap_err();
        // Redis answers `invalid bulk length` and closes the connection; which of the two the
        // client reports first is a race (the reply, or a command it could not route).
        assert!(matches!(error, EventsError::Backend { .. } | EventsError::Connection { .. }), "{error:?}");
        let text = format!("{error:?}");
        assert!(text.contains("invalid bulk length") || text.contains("route"), "{error:?}");
        // Redis closes the connection after a protocol error: the bus reconnects by itself.
        publish_until_ok(bus.as_ref(), "c", json!(1)).await;
        assert_eq!(next(&mut stream).await.decode::<i64>().unwrap(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pubsub_event_over_the_subscribers_output_limit_is_lost_and_reported_as_a_gap() {
    // Redis disconnects a pub/sub subscriber whose output buffer passes its limit (32 MB by
    // default, here 1 MB): a larger event cannot be delivered.
    let server = RedisServer::builder().args(["--client-output-buffer-limit", "pubsub 1mb 1mb 0"]).start().unwrap();
    let bus = RedisBus::new(&url(&server), "ns", "bot", TIMEOUT).unwrap();
    let mut stream = bus.stream(channel("c"), SubscribeOptions::default()).await.unwrap();
    bus.publish("c", json!("x".repeat(2 << 20))).await.unwrap();
    until("the gap", || stream.stats().gaps() >= 1).await;
    publish_until_ok(&bus, "c", json!(1)).await;
    assert_eq!(next(&mut stream).await.decode::<i64>().unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_over_the_event_limit_is_refused_before_anything_is_sent() {
    let server = RedisServer::start().unwrap();
    let ephemeral = RedisBus::new(&url(&server), "ns", "bot", TIMEOUT).unwrap();
    let durable = DurableBus::new(&url(&server), "ns", "bot", TIMEOUT, DurableOptions::default()).unwrap();
    let buses: [Arc<dyn EventBus>; 2] = [Arc::new(ephemeral), Arc::new(durable)];
    let big = json!("x".repeat(infra_events::MAX_EVENT_BYTES));
    for bus in buses {
        let mut stream = bus.stream(channel("big"), SubscribeOptions::default()).await.unwrap();
        let error = bus.publish("big", big.clone()).await.unwrap_err();
        let EventsError::PayloadTooLarge { channel, size, limit } = &error else { panic!("{error:?}") };
        assert_eq!((channel.as_str(), *limit), ("big", infra_events::MAX_EVENT_BYTES));
        assert!(*size > *limit, "{error}");
        assert!(error.to_string().starts_with("the event for channel `big` has "), "{error}");
        assert!(!error.is_transient() && !error.may_have_been_applied());
        // A batch holding one is refused whole: nothing of it is sent.
        let batch = bus.publish_batch(vec![("big", json!(1)), ("big", big.clone())]).await;
        assert!(matches!(batch, Err(EventsError::PayloadTooLarge { .. })), "{batch:?}");
        bus.publish("big", json!(2)).await.unwrap();
        assert_eq!(next(&mut stream).await.decode::<i64>().unwrap(), 2, "neither the event nor the batch went out");
    }
}
