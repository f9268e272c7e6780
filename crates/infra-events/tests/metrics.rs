//! The events metrics of docs/observability/metrics.md, read back from metrics-util's debugging
//! recorder: exact values and label sets on the memory bus, Redis pub/sub and the durable bus.

use std::{collections::BTreeMap, future::Future, sync::Arc};

use infra_events::{
    BoxError, Envelope, EventBus, EventBusExt, Overflow, Pattern, SubscribeOptions, Topic, memory::MemoryBus,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;

/// Runs `test` on a current-thread runtime with a fresh local recorder (handles are resolved
/// on this thread, where the recorder is current); returns every `infra_events_*` counter as
/// `name{label=value,...}` (labels sorted) → value.
fn recorded<F: Future<Output = ()>>(test: impl FnOnce() -> F) -> BTreeMap<String, u64> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(test());
    });
    counters(&snapshotter)
}

fn counters(snapshotter: &Snapshotter) -> BTreeMap<String, u64> {
    let mut counters = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        if !key.name().starts_with("infra_events_") {
            continue;
        }
        let DebugValue::Counter(value) = value else { panic!("{} is a counter", key.name()) };
        let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        labels.sort();
        counters.insert(format!("{}{{{}}}", key.name(), labels.join(",")), value);
    }
    counters
}

/// The expected counters, from `(series, value)` pairs.
fn expect(series: &[(&str, u64)]) -> BTreeMap<String, u64> {
    series.iter().map(|(name, value)| ((*name).to_owned(), *value)).collect()
}

/// A handler whose outcome is the event's payload: `"ok"`, `"error"` or `"panic"`.
fn by_payload() -> Arc<dyn infra_events::Handler> {
    Arc::new(|event: Envelope| async move {
        match event.decode::<String>()?.as_str() {
            "ok" => Ok::<(), BoxError>(()),
            "panic" => panic!("handler panic requested by the test"),
            other => Err(format!("failure requested: {other}").into()),
        }
    })
}

#[test]
fn the_memory_bus_counts_publishes_receptions_handler_outcomes_and_drops() {
    let counters = recorded(|| async {
        let bus = MemoryBus::new("bot");
        let orders =
            bus.subscribe(Topic::Channel("orders".into()), by_payload(), SubscribeOptions::default()).await.unwrap();
        let prices = bus.subscribe_pattern("prices.*", |_: Envelope| async {}).await.unwrap();
        // Capacity 1, dropping: this task does not yield while publishing, so the subscription's
        // task takes nothing until the burst is over and the two later events are dropped.
        let options = SubscribeOptions { capacity: 1, overflow: Overflow::DropNewest, ..SubscribeOptions::default() };
        let slow =
            bus.subscribe(Topic::Channel("fills".into()), Arc::new(|_: Envelope| async {}), options).await.unwrap();

        for outcome in ["ok", "ok", "error", "panic"] {
            bus.publish("orders", json!(outcome)).await.unwrap();
        }
        bus.publish("prices.btc", json!(1)).await.unwrap();
        bus.publish("prices.eth", json!(2)).await.unwrap();
        for n in 0..3 {
            bus.publish("fills", json!(n)).await.unwrap();
        }
        let batch = bus.publish_batch(vec![("nobody", json!(0)), ("prices.sol", json!(3))]).await.unwrap();
        assert_eq!(batch.len(), 2);

        let orders = orders.unsubscribe().await;
        assert_eq!((orders.received(), orders.handled(), orders.errors(), orders.panics()), (4, 2, 1, 1));
        let prices = prices.unsubscribe().await;
        assert_eq!((prices.received(), prices.handled()), (3, 3));
        let slow = slow.unsubscribe().await;
        assert_eq!((slow.received(), slow.handled(), slow.dropped()), (1, 1, 2));
    });
    let mut expected = expect(&[
        ("infra_events_published_total{backend=memory,outcome=error}", 0),
        ("infra_events_published_total{backend=memory,outcome=ok}", 11),
    ]);
    for (topic, received, ok, error, panic, dropped) in
        [("orders", 4, 2, 1, 1, 0), ("prices.*", 3, 3, 0, 0, 0), ("fills", 1, 1, 0, 0, 2)]
    {
        let series = |name: &str, extra: &str| format!("infra_events_{name}{{backend=memory,{extra}topic={topic}}}");
        expected.extend([
            (series("received_total", ""), received),
            (series("handled_total", "outcome=ok,"), ok),
            (series("handled_total", "outcome=error,"), error),
            (series("handled_total", "outcome=panic,"), panic),
            (series("dropped_total", ""), dropped),
            (series("gaps_total", ""), 0),
        ]);
    }
    assert_eq!(counters, expected);
}

#[test]
fn a_stream_counts_what_it_yields_as_handled() {
    let counters = recorded(|| async {
        use futures::StreamExt;
        let bus = MemoryBus::new("bot");
        let mut ticks = bus.stream(Topic::Pattern(Pattern::new("ticks.*")), SubscribeOptions::default()).await.unwrap();
        bus.publish("ticks.a", json!(1)).await.unwrap();
        bus.publish("ticks.b", json!(2)).await.unwrap();
        assert_eq!(ticks.next().await.unwrap().channel, "ticks.a");
    });
    assert_eq!(
        counters,
        expect(&[
            ("infra_events_dropped_total{backend=memory,topic=ticks.*}", 0),
            ("infra_events_gaps_total{backend=memory,topic=ticks.*}", 0),
            ("infra_events_handled_total{backend=memory,outcome=error,topic=ticks.*}", 0),
            ("infra_events_handled_total{backend=memory,outcome=ok,topic=ticks.*}", 1),
            ("infra_events_handled_total{backend=memory,outcome=panic,topic=ticks.*}", 0),
            ("infra_events_published_total{backend=memory,outcome=error}", 0),
            ("infra_events_published_total{backend=memory,outcome=ok}", 2),
            ("infra_events_received_total{backend=memory,topic=ticks.*}", 2),
        ])
    );
}

#[test]
fn nothing_is_recorded_without_a_recorder_and_the_stats_still_count() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let bus = MemoryBus::new("bot");
        let subscription = bus.subscribe_channel("orders", |_: Envelope| async {}).await.unwrap();
        bus.publish("orders", json!(1)).await.unwrap();
        let stats = subscription.unsubscribe().await;
        assert_eq!((stats.received(), stats.handled()), (1, 1));
    });
}

#[cfg(feature = "redis")]
mod redis {
    use std::{future::Future, time::Duration};

    use infra_config::RedisUrl;
    use infra_events::{
        EventBus, SubscribeOptions, Topic,
        redis::{DurableBus, DurableOptions, RedisBus},
    };
    use infra_testkit::RedisServer;
    use serde_json::json;

    use super::{by_payload, expect, recorded};

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// Waits (bounded) until `condition` holds, polling the counters the subscription's task writes.
    async fn until(what: &str, condition: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !condition() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn settled<F: Future<Output = ()>>(test: impl FnOnce(RedisUrl) -> F) -> super::BTreeMap<String, u64> {
        let server = RedisServer::start().expect("redis-server must be installed");
        let url = RedisUrl::parse(&server.url()).unwrap();
        recorded(|| test(url))
    }

    #[test]
    fn redis_pub_sub_counts_publishes_refusals_and_handler_outcomes() {
        let counters = settled(|url| async move {
            let bus = RedisBus::new(&url, "test", "bot", TIMEOUT).unwrap();
            let orders = bus
                .subscribe(Topic::Channel("orders".into()), by_payload(), SubscribeOptions::default())
                .await
                .unwrap();
            for outcome in ["ok", "error", "panic", "ok"] {
                bus.publish("orders", json!(outcome)).await.unwrap();
            }
            bus.publish_batch(vec![("orders", json!("ok"))]).await.unwrap().pop().unwrap().unwrap();
            let stats = orders.stats();
            until("every event handled", || stats.handled() + stats.errors() + stats.panics() == 5).await;
            let orders = orders.unsubscribe().await;
            assert_eq!((orders.received(), orders.handled(), orders.errors(), orders.panics()), (5, 3, 1, 1));
            bus.close().await.unwrap();
            // Refused: the bus is closed.
            assert!(bus.publish("orders", json!("ok")).await.is_err());
        });
        assert_eq!(
            counters,
            expect(&[
                ("infra_events_dropped_total{backend=redis,topic=orders}", 0),
                ("infra_events_gaps_total{backend=redis,topic=orders}", 0),
                ("infra_events_handled_total{backend=redis,outcome=error,topic=orders}", 1),
                ("infra_events_handled_total{backend=redis,outcome=ok,topic=orders}", 3),
                ("infra_events_handled_total{backend=redis,outcome=panic,topic=orders}", 1),
                ("infra_events_published_total{backend=redis,outcome=error}", 1),
                ("infra_events_published_total{backend=redis,outcome=ok}", 5),
                ("infra_events_received_total{backend=redis,topic=orders}", 5),
            ])
        );
    }

    #[test]
    fn the_durable_bus_counts_redeliveries_and_dead_letters() {
        let counters = settled(|url| async move {
            let options = DurableOptions::default().claim_after(Duration::from_millis(100)).max_deliveries(2);
            let bus = DurableBus::new(&url, "test", "bot", TIMEOUT, options).unwrap();
            let orders = bus
                .subscribe(Topic::Channel("orders".into()), by_payload(), SubscribeOptions::default())
                .await
                .unwrap();
            bus.publish("orders", json!("ok")).await.unwrap();
            // Fails at each of its two deliveries, then moves to the dead-letter stream.
            bus.publish("orders", json!("poison")).await.unwrap();
            let stats = orders.stats();
            until("the poison event to be dead-lettered", || stats.dead_lettered() == 1).await;
            let orders = orders.unsubscribe().await;
            assert_eq!(
                (orders.received(), orders.handled(), orders.errors(), orders.redelivered(), orders.dead_lettered()),
                (3, 1, 2, 1, 1)
            );
            bus.close().await.unwrap();
            assert!(bus.publish("orders", json!("ok")).await.is_err());
        });
        assert_eq!(
            counters,
            expect(&[
                ("infra_events_dead_lettered_total{backend=redis_streams,topic=orders}", 1),
                ("infra_events_dropped_total{backend=redis_streams,topic=orders}", 0),
                ("infra_events_gaps_total{backend=redis_streams,topic=orders}", 0),
                ("infra_events_handled_total{backend=redis_streams,outcome=error,topic=orders}", 2),
                ("infra_events_handled_total{backend=redis_streams,outcome=ok,topic=orders}", 1),
                ("infra_events_handled_total{backend=redis_streams,outcome=panic,topic=orders}", 0),
                ("infra_events_published_total{backend=redis_streams,outcome=error}", 1),
                ("infra_events_published_total{backend=redis_streams,outcome=ok}", 2),
                ("infra_events_received_total{backend=redis_streams,topic=orders}", 3),
                ("infra_events_redelivered_total{backend=redis_streams,topic=orders}", 1),
                ("infra_events_trimmed_total{backend=redis_streams,topic=orders}", 0),
            ])
        );
    }
}
