//! A bot author's first program with events: each helper of issue #12 in a few lines, with
//! assertions on what it does.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use infra_config::{EventsConfig, EventsMode};
use infra_events::{Envelope, EventBus, EventBusExt, EventMeta, EventsError, Pattern, Published};
use infra_log::{CorrelationId, with_correlation_id};
use infra_testkit::RedisServer;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Fill {
    order: u64,
    qty: f64,
}

#[derive(Debug, thiserror::Error)]
#[error("order {0} belongs to another account")]
struct NotOurs(u64);

#[tokio::test]
async fn a_first_bot() {
    let bus = infra_events::from_config(&EventsConfig::memory().namespace("arb-1"), "bot-1").unwrap();
    bus.connect().await.unwrap();
    assert_eq!(bus.ping().await.unwrap(), Duration::ZERO);

    // Typed events: a struct goes out, the handler gets it back with the envelope's metadata.
    let (tx, mut fills) = mpsc::unbounded_channel();
    let on_fill = bus
        .subscribe_json("fills", move |fill: Fill, meta: EventMeta| {
            let tx = tx.clone();
            async move { tx.send((fill, meta)).unwrap() }
        })
        .await
        .unwrap();
    let execution = CorrelationId::parse("exec-42").unwrap();
    let fill = Fill { order: 7, qty: 0.5 };
    let sent = with_correlation_id(execution.clone(), bus.publish_json("fills", &fill)).await.unwrap();
    assert_eq!(sent.delivered_to, Some(1));
    let (received, meta) = fills.recv().await.unwrap();
    assert_eq!(received, fill);
    assert_eq!((meta.id, meta.channel.as_str(), meta.source.as_str()), (sent.id, "fills", "bot-1"));
    assert_eq!(meta.correlation_id, Some(execution));
    assert!(meta.published_at() <= SystemTime::now() && meta.position.is_none() && !meta.foreign);

    // A payload that is not a `Fill` is a counted handler error with serde's message, never a
    // panic, and the next fill is handled.
    bus.publish("fills", json!({"order": "seven", "qty": 1})).await.unwrap();
    bus.publish_json("fills", &Fill { order: 8, qty: 1.0 }).await.unwrap();
    assert_eq!(fills.recv().await.unwrap().0.order, 8);
    let stats = on_fill.unsubscribe().await;
    assert_eq!((stats.received(), stats.handled(), stats.errors(), stats.panics()), (3, 2, 1, 0));
    let error = stats.last_error().unwrap();
    assert!(error.starts_with("cannot decode event "), "{error}");
    assert!(error.ends_with(r#" on `fills` as usage::Fill: invalid type: string "seven", expected u64"#), "{error}");

    // A value that cannot be JSON fails before anything is published, naming the channel.
    let error = bus.publish_json("fills", &HashMap::from([((1, 2), 3)])).await.unwrap_err();
    assert!(matches!(&error, EventsError::Encode { channel, .. } if channel == "fills"), "{error:?}");
    assert_eq!(error.to_string(), "cannot encode the payload for channel `fills` as json");
}

#[tokio::test]
async fn handlers_are_closures_returning_unit_or_result() {
    let bus = infra_events::from_config(&EventsConfig::memory(), "bot-1").unwrap();

    // Returns `()`: nothing can fail.
    let (tx, mut seen) = mpsc::unbounded_channel();
    let logger = bus
        .subscribe_channel("orders", move |event: Envelope| {
            let tx = tx.clone();
            async move { tx.send(event.decode::<u64>().unwrap()).unwrap() }
        })
        .await
        .unwrap();
    // Returns `Result<(), NotOurs>`: an `Err` is counted, the subscription goes on.
    let checker = bus
        .subscribe_channel("orders", |event: Envelope| async move {
            let order: u64 = event.decode().unwrap();
            if order % 2 == 1 {
                return Err(NotOurs(order));
            }
            Ok(())
        })
        .await
        .unwrap();
    // An `async fn`, and an async closure that captures nothing, on every `orders:*` channel.
    async fn audit(event: Envelope) -> Result<(), NotOurs> {
        match event.decode::<u64>() {
            Ok(order) if order < 100 => Ok(()),
            _ => Err(NotOurs(0)),
        }
    }
    let audit = bus.subscribe_pattern("order*", audit).await.unwrap();
    let quiet = bus.subscribe_pattern("order?", async |_event: Envelope| -> Result<(), NotOurs> { Ok(()) }).await;
    let quiet = quiet.unwrap();

    for order in 1..=4_u64 {
        assert_eq!(bus.publish("orders", json!(order)).await.unwrap().delivered_to, Some(4));
    }
    let logged = logger.unsubscribe().await;
    assert_eq!((logged.handled(), logged.errors()), (4, 0));
    assert_eq!([1, 2, 3, 4].map(|_| seen.try_recv().unwrap()), [1, 2, 3, 4]);
    let checked = checker.unsubscribe().await;
    assert_eq!((checked.handled(), checked.errors()), (2, 2));
    assert_eq!(checked.last_error().as_deref(), Some("order 3 belongs to another account"));
    assert_eq!(audit.unsubscribe().await.handled(), 4);
    assert_eq!(quiet.unsubscribe().await.handled(), 4);

    // A glob that is almost certainly a typo is refused with a typed error.
    let error = bus.subscribe_pattern("orders:[0-9", |_: Envelope| async {}).await.unwrap_err();
    assert!(matches!(error, EventsError::InvalidPattern { .. }), "{error:?}");
    assert_eq!(error.to_string(), "invalid channel pattern `orders:[0-9`: `[` is never closed by `]`");
}

/// Anything that takes `impl EventBus` takes the shared bus a bot holds.
async fn announce(bus: &impl EventBus, status: &str) -> Published {
    bus.publish_json("status", &json!({ "status": status })).await.unwrap()
}

#[tokio::test]
async fn batches_borrow_their_channel_names() {
    let bus: Arc<dyn EventBus> = infra_events::from_config(&EventsConfig::memory(), "bot-1").unwrap();
    let (tx, mut prices) = mpsc::unbounded_channel();
    let watcher = bus
        .subscribe_json(Pattern::parse("prices:*").unwrap(), move |price: f64, meta: EventMeta| {
            let tx = tx.clone();
            async move { tx.send((meta.channel, price)).unwrap() }
        })
        .await
        .unwrap();

    // Channel names built at run time are lent, not copied into the call.
    let channels: Vec<String> = ["BTC", "ETH"].iter().map(|symbol| format!("prices:{symbol}")).collect();
    let sent = bus.publish_batch(channels.iter().map(|c| (c.as_str(), json!(1.5))).collect()).await.unwrap();
    assert!(sent.iter().all(|s| s.as_ref().unwrap().delivered_to == Some(1)));
    // Typed, with names of any string type.
    let sent = bus.publish_batch_json(&[(&channels[0], 50_234.5), (&channels[1], 3_012.0)]).await.unwrap();
    assert_eq!(sent.len(), 2);
    assert_eq!(announce(&bus, "trading").await.delivered_to, Some(0));

    let stats = watcher.unsubscribe().await;
    assert_eq!((stats.handled(), stats.errors()), (4, 0));
    let mut received = Vec::new();
    while let Ok(price) = prices.try_recv() {
        received.push(price);
    }
    let expected = [("BTC", 1.5), ("ETH", 1.5), ("BTC", 50_234.5), ("ETH", 3_012.0)];
    let expected: Vec<(String, f64)> = expected.iter().map(|(s, p)| (format!("prices:{s}"), *p)).collect();
    assert_eq!(received, expected);
}

#[tokio::test]
async fn connect_fails_fast_against_a_closed_port_with_the_url_redacted() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://bot:hunter2@127.0.0.1:{port}");
    for mode in [EventsMode::Ephemeral, EventsMode::Durable] {
        let config = EventsConfig::redis(url.as_str()).unwrap().mode(mode).connect_timeout(Duration::from_millis(300));
        let bus = infra_events::from_config(&config, "bot-1").unwrap();
        let started = Instant::now();
        let error = bus.connect().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(300) + Duration::from_secs(1), "{:?}", started.elapsed());
        let message = format!("{error}: {:?}", std::error::Error::source(&error));
        assert!(message.contains(&format!("redis://bot:***@127.0.0.1:{port}")), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(bus.ping().await.is_err());
    }
}

#[tokio::test]
async fn connect_gives_up_within_the_connect_timeout_on_a_server_that_never_answers() {
    // Accepts connections (the kernel completes the handshake) but never reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = EventsConfig::redis(format!("redis://:hunter2@127.0.0.1:{port}").as_str())
        .unwrap()
        .connect_timeout(Duration::from_millis(300));
    let bus = infra_events::from_config(&config, "bot-1").unwrap();
    let started = Instant::now();
    let error = bus.connect().await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(200) && elapsed < Duration::from_millis(1300), "{elapsed:?}");
    let message = format!("{error}: {:?}", std::error::Error::source(&error));
    assert!(message.contains(&format!("127.0.0.1:{port}")) && !message.contains("hunter2"), "{message}");
    drop(silent);
}

#[tokio::test]
async fn on_redis_a_bot_checks_the_bus_then_trades() {
    let server = RedisServer::start().unwrap();
    for mode in [EventsMode::Ephemeral, EventsMode::Durable] {
        let config = EventsConfig::redis(server.url().as_str()).unwrap().namespace("arb-1").mode(mode);
        let bus = infra_events::from_config(&config, "bot-1").unwrap();
        bus.connect().await.unwrap();
        let round_trip = bus.ping().await.unwrap();
        assert!(round_trip > Duration::ZERO && round_trip < Duration::from_secs(1), "{round_trip:?}");

        let (tx, mut fills) = mpsc::unbounded_channel();
        // The type can be named once, in the call; the closure needs no annotations then.
        let on_fill = bus
            .subscribe_json::<Fill, _>("fills", move |fill, meta| {
                let tx = tx.clone();
                async move { tx.send((fill, meta)).unwrap() }
            })
            .await
            .unwrap();
        let sent = bus.publish_json("fills", &Fill { order: 9, qty: 2.0 }).await.unwrap();
        let (fill, meta) = tokio::time::timeout(Duration::from_secs(5), fills.recv()).await.unwrap().unwrap();
        assert_eq!((fill.order, meta.id), (9, sent.id));
        // What the publish reports, per backend (see `Published`).
        assert_eq!(sent.delivered_to, None);
        match mode {
            EventsMode::Ephemeral => assert_eq!((sent.redis_receivers, &meta.position), (Some(1), &None)),
            EventsMode::Durable => {
                assert_eq!(sent.redis_receivers, None);
                assert!(sent.position.is_some() && meta.position == sent.position, "{sent:?} {meta:?}");
            }
        }
        // Patterns: refused as a typo everywhere, and by the durable bus altogether.
        let pattern = bus.subscribe_pattern("fills*", |_: Envelope| async {}).await;
        match mode {
            EventsMode::Ephemeral => drop(pattern.unwrap()),
            EventsMode::Durable => assert!(matches!(pattern, Err(EventsError::PatternNotDurable { .. }))),
        }

        assert_eq!(on_fill.unsubscribe().await.errors(), 0);
        bus.close().await.unwrap();
        let error = bus.ping().await.unwrap_err();
        assert!(matches!(error, EventsError::Connection { .. }), "{error:?}");
    }
}
