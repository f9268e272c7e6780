//! Subscriptions Redis refuses (an ACL without the channel, a frozen server) leave nothing
//! behind: once the cause is gone, the same channel subscribes and receives. Refusals are
//! reported without a secret or a client-library type.
#![cfg(feature = "redis")]

use std::time::Duration;

use futures::StreamExt;
use infra_config::RedisUrl;
use infra_events::{
    EventBus, EventStream, EventsError, Pattern, SubscribeOptions, Topic,
    redis::{DurableBus, DurableOptions, RedisBus},
};
use infra_testkit::{RedisServer, Reply};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(5);

fn channel(name: &str) -> Topic {
    Topic::Channel(name.to_owned())
}

async fn next_number(stream: &mut EventStream) -> i64 {
    tokio::time::timeout(TIMEOUT, stream.next()).await.expect("an event in time").expect("open").decode().unwrap()
}

/// Redis's count of subscribers to `channel` (`PUBSUB NUMSUB`).
fn subscribers(server: &RedisServer, channel: &str) -> i64 {
    match server.command(&["PUBSUB", "NUMSUB", channel]).unwrap() {
        Reply::Array(Some(items)) => match items.get(1) {
            Some(Reply::Integer(count)) => *count,
            other => panic!("unexpected NUMSUB count {other:?}"),
        },
        other => panic!("unexpected NUMSUB reply {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_refused_by_an_acl_succeeds_once_the_channel_is_granted() {
    let server = RedisServer::builder().acl_user("bot", "s3cret").start().expect("redis-server must be installed");
    // The bot may use other channels only.
    server.command(&["ACL", "SETUSER", "bot", "resetchannels", "&other:*"]).unwrap();
    let bus = RedisBus::new(&RedisUrl::parse(&server.url()).unwrap(), "test", "bot", TIMEOUT).unwrap();

    let error = bus.stream(channel("ticks"), SubscribeOptions::default()).await.unwrap_err();
    assert_eq!(error.to_string(), "redis refused subscribe on `test:ticks`");
    let EventsError::Backend { source, .. } = &error else { panic!("expected a refusal, got {error:?}") };
    let reason = source.to_string();
    assert!(reason.contains("NOPERM") && !reason.contains("s3cret"), "{reason}");
    let pattern = Topic::Pattern(Pattern::new("tick*"));
    let error = bus.stream(pattern.clone(), SubscribeOptions::default()).await.unwrap_err();
    assert_eq!(error.to_string(), "redis refused subscribe on `test:*`");

    // Granted (Redis disconnects pub/sub clients only when it revokes a channel).
    server.command(&["ACL", "SETUSER", "bot", "&test:*"]).unwrap();
    let mut ticks = bus.stream(channel("ticks"), SubscribeOptions::default()).await.unwrap();
    let mut all = bus.stream(pattern, SubscribeOptions::default()).await.unwrap();
    // Redis counts the connection once for the channel and once for the pattern.
    assert_eq!(bus.publish("ticks", json!(1)).await.unwrap().redis_receivers, Some(2));
    assert_eq!(next_number(&mut ticks).await, 1);
    assert_eq!(next_number(&mut all).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_that_timed_out_leaves_redis_unsubscribed_and_the_channel_usable() {
    let mut server = RedisServer::start().expect("redis-server must be installed");
    let short = Duration::from_millis(300);
    let bus = RedisBus::new(&RedisUrl::parse(&server.url()).unwrap(), "test", "bot", short).unwrap();
    // Connected, so the subscribe below reaches the frozen server rather than a connect.
    let warm_up = bus.stream(channel("warm-up"), SubscribeOptions::default()).await.unwrap();

    server.pause().unwrap();
    let outcome = tokio::time::timeout(TIMEOUT, bus.stream(channel("ticks"), SubscribeOptions::default())).await;
    server.resume().unwrap();
    let error = outcome.expect("the subscribe returned within its own timeout").unwrap_err();
    assert!(matches!(error, EventsError::Timeout { operation: "subscribe", .. }), "{error:?}");

    // The SUBSCRIBE written before the freeze is processed after it, and so is what undid it: a
    // confirmed subscription on the same connection comes after both.
    let _after = bus.stream(channel("after"), SubscribeOptions::default()).await.unwrap();
    assert_eq!(subscribers(&server, "test:ticks"), 0, "nobody subscribes to ticks: neither should Redis");

    let mut ticks = bus.stream(channel("ticks"), SubscribeOptions::default()).await.unwrap();
    assert_eq!(bus.publish("ticks", json!(7)).await.unwrap().redis_receivers, Some(1));
    assert_eq!(next_number(&mut ticks).await, 7);
    drop(warm_up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_abandoned_by_its_caller_is_undone() {
    let mut server = RedisServer::start().expect("redis-server must be installed");
    let bus = RedisBus::new(&RedisUrl::parse(&server.url()).unwrap(), "test", "bot", TIMEOUT).unwrap();
    let warm_up = bus.stream(channel("warm-up"), SubscribeOptions::default()).await.unwrap();

    // The caller gives up while Redis cannot answer; the subscription completes afterwards.
    server.pause().unwrap();
    let abandoned =
        tokio::time::timeout(Duration::from_millis(100), bus.stream(channel("ticks"), SubscribeOptions::default()));
    assert!(abandoned.await.is_err(), "the frozen server cannot have confirmed the subscription");
    server.resume().unwrap();

    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while subscribers(&server, "test:ticks") != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the abandoned subscription stayed on redis");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut ticks = bus.stream(channel("ticks"), SubscribeOptions::default()).await.unwrap();
    assert_eq!(subscribers(&server, "test:ticks"), 1);
    assert_eq!(bus.publish("ticks", json!(3)).await.unwrap().redis_receivers, Some(1));
    assert_eq!(next_number(&mut ticks).await, 3);
    drop(warm_up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_reported_without_the_password_or_a_client_type() {
    let server = RedisServer::builder().acl_user("bot", "right-one").start().unwrap();
    let url = RedisUrl::parse(&server.url_with("bot", "hunter2")).unwrap();
    let ephemeral = RedisBus::new(&url, "test", "bot", TIMEOUT).unwrap();
    let durable = DurableBus::new(&url, "test", "bot", TIMEOUT, DurableOptions::default()).unwrap();
    let errors = [
        ephemeral.publish("ticks", json!(1)).await.unwrap_err(),
        ephemeral.stream(channel("ticks"), SubscribeOptions::default()).await.unwrap_err(),
        durable.publish("ticks", json!(1)).await.unwrap_err(),
        durable.stream(channel("ticks"), SubscribeOptions::default()).await.unwrap_err(),
    ];
    for error in &errors {
        let EventsError::Connection { url, source } = error else { panic!("expected a connection error: {error:?}") };
        assert_eq!(url, &format!("redis://bot:***@127.0.0.1:{}", server.port()));
        let failure = source.downcast_ref::<infra_redis::Failure>().expect("the source is a redacted failure");
        assert_eq!(failure.kind(), infra_redis::FailureKind::Auth, "{failure}");
        let text = format!("{error} {error:?} {source} {source:?}");
        assert!(!text.contains("hunter2") && !text.contains("fred"), "{text}");
    }
}
