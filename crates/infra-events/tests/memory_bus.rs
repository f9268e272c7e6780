//! The memory bus: order, fan-out, patterns, unsubscribe, isolation, correlation, bursts and
//! overflow accounting.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use infra_events::{
    BoxError, Envelope, EventBus, EventsError, Overflow, Pattern, SubscribeOptions, Topic, memory::MemoryBus,
};
use infra_log::{CorrelationId, current_correlation_id, with_correlation_id};
use serde_json::json;

type Seen = Arc<Mutex<Vec<Envelope>>>;

fn recorder() -> (Seen, Arc<dyn infra_events::Handler>) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    let handler = move |event: Envelope| {
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push(event);
            Ok::<(), BoxError>(())
        }
    };
    (seen, Arc::new(handler))
}

/// The ERROR lines logged while it is the thread's default subscriber, as `field=value` lists.
#[derive(Clone, Default)]
struct ErrorLines(Arc<Mutex<Vec<String>>>);

impl tracing::Subscriber for ErrorLines {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() == tracing::Level::ERROR
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(Vec<String>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push(format!("{}={value:?}", field.name()));
            }
        }
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0.join(" "));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

fn channel(name: &str) -> Topic {
    Topic::Channel(name.to_owned())
}

fn numbers(seen: &Seen) -> Vec<i64> {
    seen.lock().unwrap().iter().map(|e| e.decode::<i64>().unwrap()).collect()
}

#[tokio::test]
async fn fan_out_in_publish_order() {
    let bus = MemoryBus::new("bot-1");
    let mut recorded = Vec::new();
    let mut subscriptions = Vec::new();
    for _ in 0..3 {
        let (seen, handler) = recorder();
        subscriptions.push(bus.subscribe(channel("fills"), handler, SubscribeOptions::default()).await.unwrap());
        recorded.push(seen);
    }
    for n in 0..100 {
        assert_eq!(bus.publish("fills", json!(n)).await.unwrap().delivered_to, Some(3));
    }
    assert_eq!(bus.publish("other", json!(0)).await.unwrap().delivered_to, Some(0));
    for subscription in subscriptions {
        assert_eq!(subscription.stats().received(), 100);
        subscription.unsubscribe().await;
    }
    for seen in &recorded {
        assert_eq!(numbers(seen), (0..100).collect::<Vec<_>>());
        let first = &seen.lock().unwrap()[0];
        assert_eq!((first.channel.as_str(), first.source.as_str(), first.foreign), ("fills", "bot-1", false));
    }
}

#[tokio::test]
async fn pattern_subscriptions_follow_redis_glob_rules() {
    let bus = MemoryBus::new("bot");
    let cases = [
        ("prices:*", "prices:BTC", true),
        ("prices:*", "price:BTC", false),
        ("h?llo", "hello", true),
        ("h?llo", "héllo", false),
        ("h[^e]llo", "hallo", true),
        ("h[a-b]llo", "hcllo", false),
        ("h\\*llo", "h*llo", true),
        ("*", "", false),
    ];
    for (pattern, name, expected) in cases {
        let stream = bus.stream(Topic::Pattern(Pattern::new(pattern)), SubscribeOptions::default()).await.unwrap();
        let delivered_to = bus.publish(name, json!(1)).await.unwrap().delivered_to;
        assert_eq!(delivered_to == Some(1), expected, "{pattern:?} ~ {name:?}");
        drop(stream);
        assert_eq!(bus.subscriber_count(), 0);
    }
}

#[tokio::test]
async fn unsubscribing_or_dropping_stops_delivery_without_losing_queued_events() {
    let bus = MemoryBus::new("bot");
    let (seen, handler) = recorder();
    let subscription = bus.subscribe(channel("c"), handler, SubscribeOptions::default()).await.unwrap();
    for n in 0..10 {
        bus.publish("c", json!(n)).await.unwrap();
    }
    subscription.unsubscribe().await;
    assert_eq!(numbers(&seen), (0..10).collect::<Vec<_>>(), "queued events are handled before it ends");
    assert_eq!(bus.publish("c", json!(99)).await.unwrap().delivered_to, Some(0));

    let stream = bus.stream(channel("c"), SubscribeOptions::default()).await.unwrap();
    assert_eq!(bus.subscriber_count(), 1);
    drop(stream);
    assert_eq!(bus.subscriber_count(), 0);
    assert_eq!(bus.publish("c", json!(1)).await.unwrap().delivered_to, Some(0));
}

#[tokio::test]
async fn handler_errors_and_panics_are_counted_and_isolated() {
    let bus = MemoryBus::new("bot");
    let flaky = |event: Envelope| async move {
        match event.decode::<i64>().unwrap() {
            3 => panic!("handler bug"),
            n if n % 2 == 1 => Err::<(), BoxError>("odd".into()),
            _ => Ok(()),
        }
    };
    let bad = bus.subscribe(channel("c"), Arc::new(flaky), SubscribeOptions::default()).await.unwrap();
    let (seen, handler) = recorder();
    let good = bus.subscribe(channel("c"), handler, SubscribeOptions::default()).await.unwrap();
    for n in 0..10 {
        bus.publish("c", json!(n)).await.unwrap();
    }
    let stats = bad.unsubscribe().await;
    // 0, 2, 4, 6, 8 succeed; 1, 5, 7, 9 fail; 3 panics; and every later event is still handled.
    assert_eq!((stats.received(), stats.handled(), stats.errors(), stats.panics()), (10, 5, 4, 1));
    good.unsubscribe().await;
    assert_eq!(numbers(&seen), (0..10).collect::<Vec<_>>(), "the other subscription saw everything");
}

#[tokio::test]
async fn a_handler_panicking_before_it_returns_its_future_keeps_its_subscription() {
    let bus = MemoryBus::new("bot");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    // The panic is in the closure itself, before any future exists.
    let handler = move |event: Envelope| {
        let n = event.decode::<i64>().unwrap();
        assert_ne!(n, 1, "handler bug in its synchronous part");
        // Read in the synchronous part, which runs under the publisher's correlation ID too.
        let correlation = current_correlation_id();
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push((n, correlation));
            Ok::<(), BoxError>(())
        }
    };
    let subscription = bus.subscribe(channel("c"), Arc::new(handler), SubscribeOptions::default()).await.unwrap();
    let id = CorrelationId::parse("exec-9").unwrap();
    with_correlation_id(id.clone(), bus.publish("c", json!(1))).await.unwrap();
    bus.publish("c", json!(2)).await.unwrap();
    with_correlation_id(id.clone(), bus.publish("c", json!(3))).await.unwrap();
    let stats = subscription.unsubscribe().await;
    assert_eq!(*seen.lock().unwrap(), [(2, None), (3, Some(id))], "the events after the panic are handled");
    assert_eq!((stats.received(), stats.handled(), stats.panics(), stats.dropped()), (3, 2, 1, 0));
    assert_eq!(stats.task_failures(), 0, "its task never stopped");
}

/// A finished future that panics when it is dropped.
struct DropBomb;

impl std::future::Future for DropBomb {
    type Output = Result<(), BoxError>;

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl Drop for DropBomb {
    fn drop(&mut self) {
        panic!("handler bug in a future's drop");
    }
}

/// An error that panics when formatted.
#[derive(Debug)]
struct Unprintable;

impl std::fmt::Display for Unprintable {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("handler bug in an error's display")
    }
}

impl std::error::Error for Unprintable {}

/// Event 1: a future that panics when dropped; 2: an error that panics when formatted; others
/// are handled.
struct Leftovers;

impl infra_events::Handler for Leftovers {
    fn handle(&self, event: Envelope) -> futures::future::BoxFuture<'static, Result<(), BoxError>> {
        match event.decode::<i64>().unwrap() {
            1 => Box::pin(DropBomb),
            2 => Box::pin(async { Err(Box::new(Unprintable) as BoxError) }),
            _ => Box::pin(async { Ok(()) }),
        }
    }
}

#[tokio::test]
async fn what_a_handler_leaves_behind_cannot_end_its_subscription_either() {
    let bus = MemoryBus::new("bot");
    let subscription = bus.subscribe(channel("c"), Arc::new(Leftovers), SubscribeOptions::default()).await.unwrap();
    for n in 1..=3 {
        bus.publish("c", json!(n)).await.unwrap();
    }
    let stats = subscription.unsubscribe().await;
    assert_eq!((stats.received(), stats.handled(), stats.panics(), stats.task_failures()), (3, 1, 2, 0));
}

#[test]
fn a_subscription_task_stopped_abnormally_is_counted_with_every_event_it_loses() {
    let lines = ErrorLines::default();
    let _logging = tracing::subscriber::set_default(lines.clone());
    let bus = MemoryBus::new("bot");
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let started = Arc::new(tokio::sync::Notify::new());
    let (subscription, finished) = runtime.block_on(async {
        let (finished, handler) = recorder();
        let done = bus.subscribe(channel("done"), handler, SubscribeOptions::default()).await.unwrap();
        bus.publish("done", json!(0)).await.unwrap();
        // Ends normally before the runtime goes: not a failure.
        assert_eq!(done.unsubscribe().await.task_failures(), 0);

        let notify = started.clone();
        let stuck = move |_event: Envelope| {
            let notify = notify.clone();
            async move {
                notify.notify_one();
                std::future::pending::<Result<(), BoxError>>().await
            }
        };
        let subscription = bus.subscribe(channel("c"), Arc::new(stuck), SubscribeOptions::default()).await.unwrap();
        for n in 0..3 {
            bus.publish("c", json!(n)).await.unwrap();
        }
        started.notified().await;
        (subscription, finished)
    });
    assert_eq!(numbers(&finished), [0]);
    assert!(lines.0.lock().unwrap().is_empty(), "{:?}", lines.0);
    // The runtime shutting down aborts the task: one event in the handler, two queued.
    drop(runtime);
    let logged = lines.0.lock().unwrap().clone();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].contains(r#"cause="the task was aborted" lost=3 task_failures=1"#), "{logged:?}");
    let stats = subscription.stats();
    assert_eq!((stats.received(), stats.handled(), stats.task_failures(), stats.dropped()), (3, 0, 1, 3));
    // The subscription is still attached: what reaches it now is lost, and counted.
    let published = futures::FutureExt::now_or_never(bus.publish("c", json!(3))).unwrap().unwrap();
    assert_eq!(published.delivered_to, Some(0));
    assert_eq!((stats.received(), stats.dropped()), (3, 4));
    drop(subscription);
    assert_eq!(bus.subscriber_count(), 0);
}

#[tokio::test]
async fn a_slow_handler_does_not_hold_up_other_subscriptions() {
    let bus = MemoryBus::new("bot");
    let gate = Arc::new(tokio::sync::Notify::new());
    let wait = gate.clone();
    let slow = move |_event: Envelope| {
        let wait = wait.clone();
        async move {
            wait.notified().await;
            Ok::<(), BoxError>(())
        }
    };
    let slow = bus.subscribe(channel("c"), Arc::new(slow), SubscribeOptions::default()).await.unwrap();
    let mut fast = bus.stream(channel("c"), SubscribeOptions::default()).await.unwrap();
    for n in 0..50 {
        bus.publish("c", json!(n)).await.unwrap();
    }
    for n in 0..50 {
        assert_eq!(fast.next().await.unwrap().decode::<i64>().unwrap(), n);
    }
    assert_eq!(slow.stats().handled(), 0, "the slow one is still on its first event");
    for _ in 0..50 {
        gate.notify_one();
        tokio::task::yield_now().await;
    }
    drop(slow);
}

#[tokio::test]
async fn the_handler_runs_with_the_publishers_correlation_id() {
    let bus = MemoryBus::new("bot");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let handler = move |_event: Envelope| {
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push(current_correlation_id());
            Ok::<(), BoxError>(())
        }
    };
    let subscription = bus.subscribe(channel("c"), Arc::new(handler), SubscribeOptions::default()).await.unwrap();
    let id = CorrelationId::parse("exec-7").unwrap();
    with_correlation_id(id.clone(), bus.publish("c", json!(1))).await.unwrap();
    bus.publish("c", json!(2)).await.unwrap();
    subscription.unsubscribe().await;
    assert_eq!(*seen.lock().unwrap(), [Some(id), None]);
}

#[tokio::test]
async fn batch_publish_reports_each_event() {
    let bus = MemoryBus::new("bot");
    let mut stream = bus.stream(Topic::Pattern(Pattern::new("orders:*")), SubscribeOptions::default()).await.unwrap();
    let results =
        bus.publish_batch(vec![("orders:1", json!(1)), ("fills:1", json!(2)), ("orders:2", json!(3))]).await.unwrap();
    let delivered_to: Vec<Option<usize>> = results.iter().map(|r| r.as_ref().unwrap().delivered_to).collect();
    assert_eq!(delivered_to, [Some(1), Some(0), Some(1)]);
    assert_eq!(stream.next().await.unwrap().decode::<i64>().unwrap(), 1);
    assert_eq!(stream.next().await.unwrap().decode::<i64>().unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_50_000_to_a_subscriber_that_keeps_up_loses_nothing() {
    let bus = MemoryBus::new("bot");
    let (seen, handler) = recorder();
    let subscription = bus.subscribe(channel("ticks"), handler, SubscribeOptions::default()).await.unwrap();
    for n in 0..50_000 {
        bus.publish("ticks", json!(n)).await.unwrap();
    }
    assert_eq!(subscription.stats().dropped(), 0);
    subscription.unsubscribe().await;
    assert_eq!(seen.lock().unwrap().len(), 50_000);
    assert_eq!(numbers(&seen), (0..50_000).collect::<Vec<_>>());
}

/// A publisher waiting for room in a blocking subscriber's queue may stop waiting (a timeout
/// around `publish`): the other subscribers have the event, the blocking one never will, and
/// that loss is counted like any other.
#[tokio::test]
async fn an_event_abandoned_by_a_publisher_that_stopped_waiting_is_counted_as_dropped() {
    let bus = MemoryBus::new("bot");
    let mut fast = bus.stream(channel("b"), SubscribeOptions::default()).await.unwrap();
    let options = SubscribeOptions { capacity: 1, overflow: Overflow::Block, ..SubscribeOptions::default() };
    let mut blocking = bus.stream(channel("b"), options).await.unwrap();
    bus.publish("b", json!(1)).await.unwrap();
    let second = bus.publish("b", json!(2));
    let waited = tokio::time::timeout(std::time::Duration::from_millis(20), second).await;
    assert!(waited.is_err(), "the publisher waited for room, then gave up");

    assert_eq!(fast.next().await.unwrap().decode::<i64>().unwrap(), 1);
    assert_eq!(fast.next().await.unwrap().decode::<i64>().unwrap(), 2, "the other subscriber has it");
    assert_eq!(blocking.next().await.unwrap().decode::<i64>().unwrap(), 1);
    let stats = blocking.stats();
    assert_eq!((stats.received(), stats.dropped()), (1, 1), "the blocking subscriber lost event 2");
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_or_blocks_as_configured() {
    let bus = MemoryBus::new("bot");
    let options = SubscribeOptions { capacity: 4, overflow: Overflow::DropNewest, ..SubscribeOptions::default() };
    let mut stream = bus.stream(channel("c"), options).await.unwrap();
    let mut delivered_to = Vec::new();
    for n in 0..10 {
        delivered_to.push(bus.publish("c", json!(n)).await.unwrap().delivered_to.unwrap());
    }
    assert_eq!(delivered_to, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!((stream.stats().received(), stream.stats().dropped()), (4, 6));
    for n in 0..4 {
        assert_eq!(stream.next().await.unwrap().decode::<i64>().unwrap(), n);
    }

    let options = SubscribeOptions { capacity: 2, overflow: Overflow::Block, ..SubscribeOptions::default() };
    let mut blocking = bus.stream(channel("b"), options).await.unwrap();
    bus.publish("b", json!(1)).await.unwrap();
    bus.publish("b", json!(2)).await.unwrap();
    let third = bus.publish("b", json!(3));
    tokio::pin!(third);
    assert!(futures::FutureExt::now_or_never(third.as_mut()).is_none(), "the publisher waits for room");
    assert_eq!(blocking.next().await.unwrap().decode::<i64>().unwrap(), 1);
    assert_eq!(third.await.unwrap().delivered_to, Some(1));
    assert_eq!(blocking.stats().dropped(), 0);

    let error = bus
        .stream(
            channel("x"),
            SubscribeOptions { capacity: 0, overflow: Overflow::Block, ..SubscribeOptions::default() },
        )
        .await
        .unwrap_err();
    assert!(matches!(error, EventsError::InvalidOption(_)), "{error}");
    assert_eq!(error.to_string(), "invalid subscription option: capacity must be at least 1");
}
