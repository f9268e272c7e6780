//! The contract every bus backend meets, one function per test.
//!
//! Negative checks ("this subscription got nothing") use a sentinel: a later event on a channel
//! that a witness stream receives. Every backend delivers a publisher's events in order through
//! one dispatch path, so once the witness has the sentinel, every earlier event has reached every
//! queue it was going to reach (the sentinel's own copies may still be on their way).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{FutureExt, StreamExt};
use infra_events::{
    BoxError, Envelope, EventStream, EventsError, Pattern, Payload, Published, SubscribeOptions, Topic,
};
use infra_log::{CorrelationId, current_correlation_id, with_correlation_id};
use serde_json::json;

use super::{Fixture, Mode};

const WAIT: Duration = Duration::from_secs(5);

fn channel(name: &str) -> Topic {
    Topic::Channel(name.to_owned())
}

async fn next(stream: &mut EventStream) -> Envelope {
    tokio::time::timeout(WAIT, stream.next()).await.expect("an event in time").expect("stream open")
}

async fn number(stream: &mut EventStream) -> i64 {
    next(stream).await.decode().unwrap()
}

/// Whether `published` says a subscription will get the event, checking that it fills exactly
/// the fields the table of `Published` gives for the backend: memory knows the subscriptions it
/// was queued for, Redis pub/sub what `PUBLISH` answered, a stream the stored entry.
fn reached(f: &Fixture, published: &Published) -> bool {
    match (f.mode, published.delivered_to, published.redis_receivers, &published.position) {
        (Mode::Memory, Some(n), None, None) | (Mode::Ephemeral, None, Some(n), None) => n > 0,
        (Mode::Durable, None, None, Some(_)) => true,
        _ => panic!("{:?} does not report as documented: {published:?}", f.mode),
    }
}

/// Publishes a sentinel on `witness_channel` and waits for it on `witness`.
async fn settle(f: &Fixture, witness: &mut EventStream, witness_channel: &str) {
    f.publisher.publish(witness_channel, json!("sentinel")).await.unwrap();
    assert_eq!(next(witness).await.decode::<String>().unwrap(), "sentinel");
}

pub async fn order_and_fan_out(f: &Fixture) {
    let mut first = f.subscriber.stream(channel("fills"), SubscribeOptions::default()).await.unwrap();
    let mut second = f.subscriber.stream(channel("fills"), SubscribeOptions::default()).await.unwrap();
    for n in 0..200 {
        assert!(reached(f, &f.publisher.publish("fills", json!(n)).await.unwrap()));
    }
    for n in 0..200 {
        assert_eq!(number(&mut first).await, n);
        assert_eq!(number(&mut second).await, n);
    }
    let event = next(&mut first).now_or_never();
    assert!(event.is_none(), "nothing more: {event:?}");
}

/// Pattern, channel, whether the pattern matches it: Redis glob semantics, shared by every
/// topology that runs the pattern table.
pub const PATTERN_CASES: [(&str, &str, bool); 10] = [
    ("prices:*", "prices:BTC", true),
    ("prices:*", "price:BTC", false),
    ("*:BTC", "spot:BTC", true),
    ("h?llo", "hello", true),
    ("h?llo", "héllo", false),
    ("h[^e]llo", "hallo", true),
    ("j[^e]llo", "jello", false),
    ("h[a-b]llo", "hcllo", false),
    ("h\\*llo", "h*llo", true),
    ("a*b*c", "aXbYc", true),
];

pub async fn pattern_table(f: &Fixture) {
    // One channel per case: resubscribing a channel just released is a separate concern.
    let cases = PATTERN_CASES;
    if f.mode == Mode::Durable {
        // Streams are read by name: every pattern is refused, with a reason.
        for (pattern, _, _) in cases {
            let error = f.subscriber.stream(Topic::Pattern(Pattern::new(pattern)), SubscribeOptions::default()).await;
            match error {
                Err(EventsError::PatternNotDurable { pattern: refused }) => assert_eq!(refused, pattern),
                other => panic!("{pattern}: expected PatternNotDurable, got {other:?}"),
            }
        }
        return;
    }
    for (case, (pattern, name, expected)) in cases.into_iter().enumerate() {
        // Each case has its own markers: copies from an earlier case may still be in flight.
        let (marker, sentinel) = (json!(case), json!(format!("sentinel-{case}")));
        let mut matching =
            f.subscriber.stream(Topic::Pattern(Pattern::new(pattern)), SubscribeOptions::default()).await.unwrap();
        let mut witness = f.subscriber.stream(channel(name), SubscribeOptions::default()).await.unwrap();
        f.publisher.publish(name, marker.clone()).await.unwrap();
        f.publisher.publish(name, sentinel.clone()).await.unwrap();
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
}

pub async fn unsubscribe_and_drop_stop_delivery(f: &Fixture) {
    let count = Arc::new(Mutex::new(0));
    let counter = count.clone();
    let handler = move |_event: Envelope| {
        let counter = counter.clone();
        async move {
            *counter.lock().unwrap() += 1;
            Ok::<(), BoxError>(())
        }
    };
    let subscription =
        f.subscriber.subscribe(channel("c"), Arc::new(handler), SubscribeOptions::default()).await.unwrap();
    let mut witness = f.subscriber.stream(channel("c"), SubscribeOptions::default()).await.unwrap();
    for n in 0..10 {
        f.publisher.publish("c", json!(n)).await.unwrap();
    }
    for n in 0..10 {
        assert_eq!(number(&mut witness).await, n);
    }
    let stats = subscription.unsubscribe().await;
    assert_eq!((stats.received(), stats.handled(), *count.lock().unwrap()), (10, 10, 10));
    f.publisher.publish("c", json!(99)).await.unwrap();
    assert_eq!(number(&mut witness).await, 99);
    assert_eq!(*count.lock().unwrap(), 10, "nothing after unsubscribing");

    drop(witness);
    let mut other = f.subscriber.stream(channel("d"), SubscribeOptions::default()).await.unwrap();
    f.publisher.publish("d", json!(1)).await.unwrap();
    assert_eq!(number(&mut other).await, 1);
}

pub async fn handler_errors_and_panics_are_isolated(f: &Fixture) {
    let flaky = |event: Envelope| async move {
        match event.decode::<i64>().unwrap() {
            3 => panic!("handler bug"),
            n if n % 2 == 1 => Err::<(), BoxError>("odd".into()),
            _ => Ok(()),
        }
    };
    let bad = f.subscriber.subscribe(channel("c"), Arc::new(flaky), SubscribeOptions::default()).await.unwrap();
    let mut witness = f.subscriber.stream(channel("c"), SubscribeOptions::default()).await.unwrap();
    for n in 0..10 {
        f.publisher.publish("c", json!(n)).await.unwrap();
    }
    for n in 0..10 {
        assert_eq!(number(&mut witness).await, n, "the other subscription is unaffected");
    }
    let stats = bad.unsubscribe().await;
    assert_eq!((stats.received(), stats.handled(), stats.errors(), stats.panics()), (10, 5, 4, 1));
    a_panic_before_the_handlers_future_exists_is_isolated(f).await;
}

/// Part of [`handler_errors_and_panics_are_isolated`]: a closure handler that panics in its
/// synchronous part, before it returns a future, on the first of three events.
async fn a_panic_before_the_handlers_future_exists_is_isolated(f: &Fixture) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let handler = move |event: Envelope| {
        let n = event.decode::<i64>().unwrap();
        assert_ne!(n, 1, "handler bug in its synchronous part");
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push(n);
            Ok::<(), BoxError>(())
        }
    };
    let bad = f.subscriber.subscribe(channel("d"), Arc::new(handler), SubscribeOptions::default()).await.unwrap();
    let mut witness = f.subscriber.stream(channel("d"), SubscribeOptions::default()).await.unwrap();
    for n in 1..=3 {
        f.publisher.publish("d", json!(n)).await.unwrap();
    }
    for n in 1..=3 {
        assert_eq!(number(&mut witness).await, n, "the other subscription is unaffected");
    }
    let stats = bad.unsubscribe().await;
    assert_eq!(*seen.lock().unwrap(), [2, 3], "the events after the panic are handled");
    assert_eq!((stats.received(), stats.handled(), stats.panics(), stats.dropped()), (3, 2, 1, 0));
    assert_eq!(stats.task_failures(), 0, "its task never stopped");
}

pub async fn handlers_run_with_the_publishers_correlation_id(f: &Fixture) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let handler = move |event: Envelope| {
        let sink = sink.clone();
        async move {
            sink.lock().unwrap().push((event.source.clone(), current_correlation_id()));
            Ok::<(), BoxError>(())
        }
    };
    let subscription =
        f.subscriber.subscribe(channel("orders"), Arc::new(handler), SubscribeOptions::default()).await.unwrap();
    let mut witness = f.subscriber.stream(channel("orders"), SubscribeOptions::default()).await.unwrap();
    let id = CorrelationId::parse("exec-42").unwrap();
    with_correlation_id(id.clone(), f.publisher.publish("orders", json!(1))).await.unwrap();
    f.publisher.publish("orders", json!(2)).await.unwrap();
    assert_eq!(number(&mut witness).await, 1);
    assert_eq!(number(&mut witness).await, 2);
    subscription.unsubscribe().await;
    assert_eq!(*seen.lock().unwrap(), [("pub".to_owned(), Some(id)), ("pub".to_owned(), None)]);
}

pub async fn batch_publish(f: &Fixture) {
    let mut orders = f.subscriber.stream(channel("orders"), SubscribeOptions::default()).await.unwrap();
    let results =
        f.publisher.publish_batch(vec![("orders", json!(1)), ("fills", json!(2)), ("orders", json!(3))]).await.unwrap();
    // Matching events reach someone; whether the other does depends on the backend (a stream
    // stores it for whoever subscribes later).
    let reached: Vec<bool> = results.iter().map(|r| reached(f, r.as_ref().unwrap())).collect();
    assert!(reached[0] && reached[2], "{results:?}");
    if f.mode != Mode::Durable {
        assert!(!reached[1], "{results:?}");
    }
    assert_eq!(number(&mut orders).await, 1);
    assert_eq!(number(&mut orders).await, 3);
}

pub async fn payloads_of_plain_redis_clients_are_delivered(f: &Fixture) {
    let mut quotes = f.subscriber.stream(channel("quotes"), SubscribeOptions::default()).await.unwrap();
    if f.publish_foreign("quotes", r#"{"bid":1.5}"#).is_none() {
        return; // the memory bus has no wire a foreign client could write to
    }
    f.publish_foreign("quotes", "not json at all").unwrap();
    f.publisher.publish("quotes", json!("ours")).await.unwrap();
    let json = next(&mut quotes).await;
    assert!(json.foreign);
    assert_eq!(json.payload, Payload::Json(json!({"bid": 1.5})));
    let raw = next(&mut quotes).await;
    assert!(raw.foreign);
    assert_eq!(raw.payload, Payload::Raw(b"not json at all".to_vec()));
    let ours = next(&mut quotes).await;
    assert!(!ours.foreign);
    assert_eq!(ours.decode::<String>().unwrap(), "ours");
}
