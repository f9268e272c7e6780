//! The Redis bus (ephemeral pub/sub) against throwaway real servers.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use infra_config::RedisUrl;
use infra_events::{
    BoxError, Envelope, EventBus, Overflow, Pattern, Payload, SubscribeOptions, Topic, redis::RedisBus,
};
use infra_log::{CorrelationId, current_correlation_id, with_correlation_id};
use infra_testkit::RedisServer;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(5);

fn bus(server: &RedisServer, source: &str) -> RedisBus {
    RedisBus::new(&RedisUrl::parse(&server.url()).unwrap(), "test", source, TIMEOUT).unwrap()
}

fn channel(name: &str) -> Topic {
    Topic::Channel(name.to_owned())
}

async fn next_number(stream: &mut infra_events::EventStream) -> i64 {
    tokio::time::timeout(TIMEOUT, stream.next()).await.expect("an event in time").expect("open").decode().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_order_and_fan_out_across_processes() {
    let server = RedisServer::start().expect("redis-server must be installed");
    let (publisher, subscriber) = (bus(&server, "pub"), bus(&server, "sub"));
    let mut first = subscriber.stream(channel("fills"), SubscribeOptions::default()).await.unwrap();
    let mut second = subscriber.stream(channel("fills"), SubscribeOptions::default()).await.unwrap();
    for n in 0..100 {
        // Redis counts receiving connections: one subscriber bus is one receiver.
        assert_eq!(publisher.publish("fills", json!(n)).await.unwrap().redis_receivers, Some(1));
    }
    for n in 0..100 {
        assert_eq!(next_number(&mut first).await, n);
        assert_eq!(next_number(&mut second).await, n);
    }
    assert_eq!(publisher.publish("other", json!(0)).await.unwrap().redis_receivers, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_and_pattern_subscriptions_each_get_one_copy() {
    let server = RedisServer::start().unwrap();
    let bus = bus(&server, "bot");
    let mut exact = bus.stream(channel("prices:BTC"), SubscribeOptions::default()).await.unwrap();
    let mut all = bus.stream(Topic::Pattern(Pattern::new("prices:*")), SubscribeOptions::default()).await.unwrap();
    let mut overlapping = bus.stream(Topic::Pattern(Pattern::new("*:BTC")), SubscribeOptions::default()).await.unwrap();
    let mut unmatched =
        bus.stream(Topic::Pattern(Pattern::new("h[^e]llo")), SubscribeOptions::default()).await.unwrap();
    bus.publish("prices:BTC", json!(1)).await.unwrap();
    bus.publish("prices:ETH", json!(2)).await.unwrap();
    bus.publish("hallo", json!(3)).await.unwrap();
    assert_eq!(next_number(&mut exact).await, 1);
    assert_eq!(next_number(&mut all).await, 1);
    assert_eq!(next_number(&mut all).await, 2);
    assert_eq!(next_number(&mut overlapping).await, 1);
    assert_eq!(next_number(&mut unmatched).await, 3);
    // Nothing else arrived: no duplicates from the message/pmessage pair.
    bus.publish("end", json!(0)).await.unwrap();
    for stream in [&mut exact, &mut all, &mut overlapping, &mut unmatched] {
        assert!(tokio::time::timeout(Duration::from_millis(200), stream.next()).await.is_err());
        assert_eq!(stream.stats().received(), stream.stats().handled());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_publishers_are_delivered_raw() {
    let server = RedisServer::start().unwrap();
    let bus = bus(&server, "bot");
    let mut alerts = bus.stream(channel("alerts"), SubscribeOptions::default()).await.unwrap();
    server.command(&["PUBLISH", "test:alerts", "BTC crossed 50k"]).unwrap();
    server.command(&["PUBLISH", "test:alerts", r#"{"from":"python"}"#]).unwrap();
    let text = tokio::time::timeout(TIMEOUT, alerts.next()).await.unwrap().unwrap();
    assert!(text.foreign);
    assert_eq!(text.payload, Payload::Raw(b"BTC crossed 50k".to_vec()));
    let json = tokio::time::timeout(TIMEOUT, alerts.next()).await.unwrap().unwrap();
    assert_eq!(json.payload, Payload::Json(json!({"from": "python"})));
    assert_eq!(json.channel, "alerts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_runs_with_the_remote_publishers_correlation_id() {
    let server = RedisServer::start().unwrap();
    let (publisher, subscriber) = (bus(&server, "pub"), bus(&server, "sub"));
    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel();
    let handler = move |event: Envelope| {
        let sender = sender.clone();
        async move {
            sender.send((event.source.clone(), current_correlation_id())).unwrap();
            Ok::<(), BoxError>(())
        }
    };
    let subscription =
        subscriber.subscribe(channel("orders"), Arc::new(handler), SubscribeOptions::default()).await.unwrap();
    let id = CorrelationId::parse("exec-9").unwrap();
    with_correlation_id(id.clone(), publisher.publish("orders", json!({"qty": 1}))).await.unwrap();
    let (source, seen) = tokio::time::timeout(TIMEOUT, received.recv()).await.unwrap().unwrap();
    assert_eq!((source.as_str(), seen), ("pub", Some(id)));
    drop(subscription);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_50_000_loses_nothing() {
    let server = RedisServer::start().unwrap();
    let (publisher, subscriber) = (bus(&server, "pub"), bus(&server, "sub"));
    let options = SubscribeOptions { overflow: Overflow::DropNewest, ..SubscribeOptions::default() };
    let mut ticks = subscriber.stream(channel("ticks"), options).await.unwrap();
    // As fast as the server takes them: pipelined batches of 1,000.
    for batch in 0..50 {
        let events = (0..1000).map(|i| ("ticks", json!(batch * 1000 + i))).collect();
        for result in publisher.publish_batch(events).await.unwrap() {
            assert_eq!(result.unwrap().redis_receivers, Some(1));
        }
    }
    for n in 0..50_000 {
        assert_eq!(next_number(&mut ticks).await, n);
    }
    assert_eq!((ticks.stats().dropped(), subscriber.lost_upstream(), ticks.stats().gaps()), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_subscribers_resume_and_are_told_of_the_gap() {
    let mut server = RedisServer::start().unwrap();
    let (publisher, subscriber) = (bus(&server, "pub"), bus(&server, "sub"));
    let mut ticks = subscriber.stream(channel("ticks"), SubscribeOptions::default()).await.unwrap();
    publisher.publish("ticks", json!(1)).await.unwrap();
    assert_eq!(next_number(&mut ticks).await, 1);

    server.kill().unwrap();
    server.restart().unwrap();
    // Publish until the resubscribed connection receives again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(published) = publisher.publish("ticks", json!(2)).await
            && published.redis_receivers == Some(1)
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never resubscribed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(next_number(&mut ticks).await, 2);
    assert!(ticks.stats().gaps() >= 1, "the reconnection is reported as a possible gap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_to_a_frozen_server_fails_with_a_timeout_instead_of_hanging() {
    let mut server = RedisServer::start().unwrap();
    let short = Duration::from_millis(300);
    let publisher = RedisBus::new(&RedisUrl::parse(&server.url()).unwrap(), "test", "pub", short).unwrap();
    publisher.publish("ticks", json!(1)).await.unwrap();

    server.pause().unwrap();
    // The outer bound only catches a publish that never returns; the error must be the bus's.
    let outcome = tokio::time::timeout(TIMEOUT, publisher.publish("ticks", json!(2))).await;
    server.resume().unwrap();
    match outcome.expect("the publish returned within its own timeout") {
        Err(error @ infra_events::EventsError::Timeout { operation: "publish", timeout, .. }) => {
            assert_eq!(timeout, short);
            assert_eq!(error.to_string(), "publish `test:ticks` timed out after 300ms");
        }
        other => panic!("expected a publish timeout, got {other:?}"),
    }
    // The connection survives the freeze: publishing works again once the server answers.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while publisher.publish("ticks", json!(3)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "publishing never recovered");
    }
}
