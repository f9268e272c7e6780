//! The durable bus (Redis Streams) against throwaway real servers: groups, acknowledgement,
//! redelivery, dead letters, entries trimmed before acknowledgement, replay, unsubscribing
//! under load, cleanup of groups and consumers, and a server killed mid-run.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use infra_config::RedisUrl;
use infra_events::{
    BoxError, Envelope, EventBus, EventStream, EventsError, Pattern, Position, Start, SubscribeOptions, Topic,
    redis::{DurableBus, DurableOptions, RedisBus},
};
use infra_testkit::{RedisServer, Reply};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(5);

fn durable(server: &RedisServer, source: &str, options: DurableOptions) -> DurableBus {
    DurableBus::new(&RedisUrl::parse(&server.url()).unwrap(), "test", source, TIMEOUT, options).unwrap()
}

fn channel(name: &str) -> Topic {
    Topic::Channel(name.to_owned())
}

async fn next(stream: &mut EventStream) -> Envelope {
    tokio::time::timeout(TIMEOUT, stream.next()).await.expect("an event in time").expect("open")
}

/// Waits (bounded) until `condition` holds, polling the shared state the handlers write.
async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
async fn a_named_group_shares_its_events_and_resumes_where_it_left_off() {
    let server = RedisServer::start().expect("redis-server must be installed");
    let bus = durable(&server, "bot", DurableOptions::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let group = SubscribeOptions::default().group("workers");
    let first = bus.subscribe(channel("jobs"), recorder(&seen), group.clone()).await.unwrap();
    let second = bus.subscribe(channel("jobs"), recorder(&seen), group.clone()).await.unwrap();
    for n in 0..100 {
        bus.publish("jobs", json!(n)).await.unwrap();
    }
    until("100 jobs", || seen.lock().unwrap().len() >= 100).await;
    let (a, b) = (first.unsubscribe().await, second.unsubscribe().await);
    assert_eq!(a.handled() + b.handled(), 100, "each event to one member of the group");
    let mut handled = seen.lock().unwrap().clone();
    handled.sort_unstable();
    assert_eq!(handled, (0..100).collect::<Vec<_>>());

    // Published while nobody listens: the group picks them up after a restart (a new bus).
    for n in 100..150 {
        bus.publish("jobs", json!(n)).await.unwrap();
    }
    let restarted = durable(&server, "bot", DurableOptions::default());
    seen.lock().unwrap().clear();
    let again = restarted.subscribe(channel("jobs"), recorder(&seen), group).await.unwrap();
    until("the 50 published meanwhile", || seen.lock().unwrap().len() >= 50).await;
    again.unsubscribe().await;
    assert_eq!(*seen.lock().unwrap(), (100..150).collect::<Vec<_>>(), "in order, nothing old, nothing lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_events_are_redelivered_then_dead_lettered() {
    let server = RedisServer::start().unwrap();
    let options = DurableOptions::default().claim_after(Duration::from_millis(100)).max_deliveries(3);
    let bus = durable(&server, "bot", options);
    let attempts = Arc::new(Mutex::new(BTreeMap::<i64, u32>::new()));
    let counts = Arc::clone(&attempts);
    // 1 fails once then succeeds; 2 always fails (poison); the others succeed at once.
    let handler = move |event: Envelope| {
        let counts = Arc::clone(&counts);
        async move {
            let n: i64 = event.decode()?;
            let attempt = {
                let mut counts = counts.lock().unwrap();
                let attempt = counts.entry(n).or_default();
                *attempt += 1;
                *attempt
            };
            match (n, attempt) {
                (1, 1) => Err::<(), BoxError>("transient".into()),
                (2, _) => Err("poison".into()),
                _ => Ok(()),
            }
        }
    };
    let subscription = bus
        .subscribe(channel("orders"), Arc::new(handler), SubscribeOptions::default().group("executor"))
        .await
        .unwrap();
    for n in 0..5 {
        bus.publish("orders", json!(n)).await.unwrap();
    }
    until("the poison event to be dead-lettered", || subscription.stats().dead_lettered() == 1).await;
    let stats = subscription.unsubscribe().await;
    assert_eq!(*attempts.lock().unwrap(), BTreeMap::from([(0, 1), (1, 2), (2, 3), (3, 1), (4, 1)]));
    assert_eq!((stats.handled(), stats.errors(), stats.redelivered(), stats.dead_lettered()), (4, 4, 3, 1));

    let Reply::Array(Some(dead)) = server.command(&["XRANGE", "test:dead:orders", "-", "+"]).unwrap() else {
        panic!("the dead-letter stream is a stream")
    };
    assert_eq!(dead.len(), 1);
    let fields = texts(&dead[0]);
    let value = |name: &str| fields.iter().position(|f| f == name).map(|i| fields[i + 1].clone());
    assert!(value("event").unwrap().contains(r#""payload":2"#), "{fields:?}");
    assert_eq!(value("group").as_deref(), Some("executor"));
    assert_eq!(value("deliveries").as_deref(), Some("3"));
    assert!(value("stream_id").is_some(), "{fields:?}");
    // Nothing is left pending in the group.
    let pending = server.command(&["XPENDING", "test:stream:orders", "executor"]).unwrap();
    assert_eq!(texts(&pending).first().map(String::as_str), Some("0"), "{pending:?}");
}

/// Every bulk string and integer of a reply, depth first.
fn texts(reply: &Reply) -> Vec<String> {
    match reply {
        Reply::Bulk(Some(bytes)) => vec![String::from_utf8_lossy(bytes).into_owned()],
        Reply::Integer(n) => vec![n.to_string()],
        Reply::Status(text) => vec![text.clone()],
        Reply::Array(Some(items)) => items.iter().flat_map(texts).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_a_crashed_consumer_are_claimed_by_the_group() {
    let server = RedisServer::start().unwrap();
    let bus = durable(&server, "bot", DurableOptions::default().claim_after(Duration::from_millis(100)));
    bus.publish("fills", json!(1)).await.unwrap();
    server.command(&["XGROUP", "CREATE", "test:stream:fills", "settlement", "0"]).unwrap();
    // Another process read the event and died before acknowledging it.
    server
        .command(&["XREADGROUP", "GROUP", "settlement", "ghost", "COUNT", "10", "STREAMS", "test:stream:fills", ">"])
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscription = bus
        .subscribe(channel("fills"), recorder(&seen), SubscribeOptions::default().group("settlement"))
        .await
        .unwrap();
    until("the orphaned event", || !seen.lock().unwrap().is_empty()).await;
    let stats = subscription.unsubscribe().await;
    assert_eq!(*seen.lock().unwrap(), [1]);
    assert_eq!((stats.received(), stats.redelivered()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_replays_from_a_position() {
    let server = RedisServer::start().unwrap();
    let bus = durable(&server, "bot", DurableOptions::default());
    for n in 0..5 {
        bus.publish("prices", json!(n)).await.unwrap();
    }
    let mut all = bus.stream(channel("prices"), SubscribeOptions::default().start(Start::Beginning)).await.unwrap();
    let mut positions = Vec::new();
    for n in 0..5 {
        let event = next(&mut all).await;
        assert_eq!(event.decode::<i64>().unwrap(), n);
        positions.push(event.position.clone().expect("durable events have a position"));
    }
    assert!(positions.windows(2).all(|w| w[0] < w[1] || w[0].as_str().len() < w[1].as_str().len()));

    let from_third = SubscribeOptions::default().start(Start::After(positions[2].clone()));
    let mut replay = bus.stream(channel("prices"), from_third).await.unwrap();
    let mut latest = bus.stream(channel("prices"), SubscribeOptions::default()).await.unwrap();
    bus.publish("prices", json!(5)).await.unwrap();
    for n in 3..=5 {
        assert_eq!(next(&mut replay).await.decode::<i64>().unwrap(), n);
    }
    assert_eq!(next(&mut latest).await.decode::<i64>().unwrap(), 5, "latest sees only new events");
    assert_eq!(next(&mut all).await.decode::<i64>().unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_of_the_wrong_mode_are_refused_with_the_reason() {
    let server = RedisServer::start().unwrap();
    let bus = durable(&server, "bot", DurableOptions::default());
    let error = bus.stream(Topic::Pattern(Pattern::new("prices:*")), SubscribeOptions::default()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "pattern subscription `prices:*` is not offered in durable mode: redis streams are read by name, subscribe to each channel"
    );
    let error = bus.stream(channel("x"), SubscribeOptions::default().group("")).await.unwrap_err();
    assert_eq!(error.to_string(), "invalid subscription option: group must not be empty");

    let ephemeral = RedisBus::new(&RedisUrl::parse(&server.url()).unwrap(), "test", "bot", TIMEOUT).unwrap();
    let error = ephemeral.stream(channel("x"), SubscribeOptions::default().group("workers")).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the `group` subscription option needs the durable mode; the redis bus does not offer it"
    );
    let memory = infra_events::memory::MemoryBus::new("bot");
    let error = memory.stream(channel("x"), SubscribeOptions::default().start(Start::Beginning)).await.unwrap_err();
    assert!(matches!(error, EventsError::Unsupported { option: "start", backend: "memory" }), "{error}");

    assert_eq!(
        Position::parse("12-x").unwrap_err().to_string(),
        "`12-x` is not a stream position: expected `<milliseconds>-<sequence>` such as `1764320000000-0`"
    );
    assert_eq!(Position::parse("1764320000000-3").unwrap().as_str(), "1764320000000-3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_the_server_is_killed_and_restarted() {
    // Persisted on every write, so a killed server keeps its streams and groups.
    let mut server = RedisServer::builder()
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .start()
        .expect("redis-server must be installed");
    let url = RedisUrl::parse(&server.url()).unwrap();
    let options = DurableOptions::default().claim_after(Duration::from_millis(500));
    let timeout = Duration::from_millis(500);
    let publisher = DurableBus::new(&url, "test", "pub", timeout, options.clone()).unwrap();
    let subscriber = DurableBus::new(&url, "test", "sub", timeout, options).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscription = subscriber
        .subscribe(channel("fills"), recorder(&seen), SubscribeOptions::default().group("ledger"))
        .await
        .unwrap();

    const TOTAL: i64 = 600;
    let failed_attempts = Arc::new(AtomicU64::new(0));
    let published = Arc::new(AtomicU64::new(0));
    let publishing = {
        let (failed_attempts, published) = (Arc::clone(&failed_attempts), Arc::clone(&published));
        tokio::spawn(async move {
            for n in 0..TOTAL {
                // The publisher retries until the event is stored: that is its side of the deal.
                while publisher.publish("fills", json!(n)).await.is_err() {
                    failed_attempts.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                published.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    until("a third published", || published.load(Ordering::Relaxed) >= 200).await;
    server.kill().unwrap();
    until("the publisher to notice the outage", || failed_attempts.load(Ordering::Relaxed) >= 2).await;
    server.restart().unwrap();
    publishing.await.unwrap();
    until("every event", || seen.lock().unwrap().iter().collect::<HashSet<_>>().len() == TOTAL as usize).await;
    let stats = subscription.unsubscribe().await;
    let seen = seen.lock().unwrap();
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique, (0..TOTAL).collect::<HashSet<_>>(), "zero lost");
    let duplicates = seen.len() - unique.len();
    eprintln!(
        "outage: {} failed publish attempts, {duplicates} duplicates, {} redelivered",
        failed_attempts.load(Ordering::Relaxed),
        stats.redelivered()
    );
    assert_eq!(stats.handled(), seen.len() as u64, "every delivery, duplicates included, is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_returns_while_a_publisher_keeps_publishing() {
    let server = RedisServer::start().unwrap();
    let bus = durable(&server, "bot", DurableOptions::default());
    let handled = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&handled);
    // Slower than the publisher: the stream is never empty while it publishes.
    let handler = move |_: Envelope| {
        let counter = Arc::clone(&counter);
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<(), BoxError>(())
        }
    };
    let subscription =
        bus.subscribe(channel("ticks"), Arc::new(handler), SubscribeOptions::default().group("g")).await.unwrap();
    let (published, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let publishing = {
        let (bus, published, stop) = (bus.clone(), Arc::clone(&published), Arc::clone(&stop));
        tokio::spawn(async move {
            for n in 0_u64.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                bus.publish("ticks", json!(n)).await.unwrap();
                published.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    until("the subscription to be busy", || handled.load(Ordering::SeqCst) >= 1).await;

    let before = published.load(Ordering::SeqCst);
    let stats = tokio::time::timeout(Duration::from_secs(10), subscription.unsubscribe())
        .await
        .expect("unsubscribe returned although the publisher never paused");
    assert!(!publishing.is_finished(), "the publisher was still publishing");
    stop.store(true, Ordering::SeqCst);
    publishing.await.unwrap();
    assert!(stats.handled() >= before, "published before unsubscribe: {before}, handled: {}", stats.handled());
    assert_eq!(stats.errors(), 0);
}

/// Publishes five events whose handler fails (so they stay pending), then enough others to
/// trim them from the stream (some of those are trimmed before they are read), and checks that
/// every entry is either handled or counted as trimmed, none as dead-lettered.
async fn trimmed_while_pending(server: &RedisServer, channel_name: &str, max_deliveries: u32) {
    // A claim only looks at entries idle this long: by then the five are long trimmed.
    let options =
        DurableOptions::default().stream_max_len(10).claim_after(Duration::from_secs(1)).max_deliveries(max_deliveries);
    let bus = durable(server, "bot", options);
    let handler = |event: Envelope| async move {
        match event.decode::<i64>()? {
            n if n < 5 => Err::<(), BoxError>("the handler fails".into()),
            _ => Ok(()),
        }
    };
    let group = SubscribeOptions::default().group("ledger");
    let subscription = bus.subscribe(channel(channel_name), Arc::new(handler), group).await.unwrap();
    for n in 0..5 {
        bus.publish(channel_name, json!(n)).await.unwrap();
    }
    until("five failed deliveries", || subscription.stats().errors() >= 5).await;
    let rest = (5..105).map(|n| (channel_name, json!(n))).collect();
    assert!(bus.publish_batch(rest).await.unwrap().iter().all(Result::is_ok));
    let key = bus.stream_key(channel_name);
    let first = texts(&server.command(&["XRANGE", &key, "-", "+", "COUNT", "1"]).unwrap());
    assert!(first.iter().all(|text| !text.contains(r#""payload":4"#)), "the failed five are trimmed: {first:?}");

    let stats = subscription.stats();
    until("every entry handled or reported trimmed", || stats.handled() + stats.trimmed() == 105).await;
    let stats = subscription.unsubscribe().await;
    assert_eq!((stats.errors(), stats.dead_lettered(), stats.redelivered()), (5, 0, 0), "{stats:?}");
    assert!(stats.trimmed() >= 5, "the failed five are lost, and counted: {stats:?}");
    let dead_letters = server.command(&["XLEN", &bus.dead_letter_key(channel_name)]).unwrap();
    assert_eq!(dead_letters, Reply::Integer(0), "a trimmed entry is not a dead letter");
    let pending = server.command(&["XPENDING", &key, "ledger"]).unwrap();
    assert_eq!(texts(&pending).first().map(String::as_str), Some("0"), "{pending:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_trimmed_before_acknowledgement_are_counted_as_trimmed_not_dead_lettered() {
    // Small stream nodes, so `MAXLEN ~ 10` trims within a few dozen entries.
    let server = RedisServer::builder().args(["--stream-node-max-entries", "4"]).start().unwrap();
    // Due for the dead-letter stream when trimmed (the bury step finds them gone) ...
    trimmed_while_pending(&server, "buried", 1).await;
    // ... or to be claimed again (XAUTOCLAIM reports them deleted).
    trimmed_while_pending(&server, "claimed", 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_trimmed_before_the_group_read_them_are_counted_as_trimmed() {
    let server = RedisServer::builder().args(["--stream-node-max-entries", "4"]).start().unwrap();
    let bus = durable(&server, "bot", DurableOptions::default().stream_max_len(10));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let group = SubscribeOptions::default().group("ledger");
    let subscription = bus.subscribe(channel("fills"), recorder(&seen), group.clone()).await.unwrap();
    bus.publish("fills", json!(0)).await.unwrap();
    until("the first fill", || seen.lock().unwrap().len() == 1).await;
    subscription.unsubscribe().await;

    // Nobody reads the group meanwhile: most of these are trimmed unread.
    let fills = (1..=100).map(|n| ("fills", json!(n))).collect();
    assert!(bus.publish_batch(fills).await.unwrap().iter().all(Result::is_ok));
    let subscription = bus.subscribe(channel("fills"), recorder(&seen), group).await.unwrap();
    let stats = subscription.stats();
    until("every fill handled or reported trimmed", || stats.handled() + stats.trimmed() == 100).await;
    let stats = subscription.unsubscribe().await;
    let seen = seen.lock().unwrap().clone();
    assert!(stats.trimmed() >= 80, "{stats:?}");
    assert_eq!(seen.len() as u64, 1 + stats.handled());
    let expected: Vec<i64> = (0..=100).filter(|&n| n == 0 || n > i64::try_from(stats.trimmed()).unwrap()).collect();
    assert_eq!(seen, expected, "the newest fills, in order, after the trimmed ones");
}

/// The consumers of `group` on `key`: each one's name and pending count.
fn consumers(server: &RedisServer, key: &str, group: &str) -> Vec<(String, String)> {
    let Reply::Array(Some(consumers)) = server.command(&["XINFO", "CONSUMERS", key, group]).unwrap() else {
        panic!("XINFO CONSUMERS answers an array")
    };
    consumers
        .iter()
        .map(|consumer| {
            let fields = texts(consumer);
            let value = |name: &str| fields.iter().position(|f| f == name).map(|i| fields[i + 1].clone()).unwrap();
            (value("name"), value("pending"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_leaves_no_consumer_or_private_group_behind() {
    let server = RedisServer::start().unwrap();
    let bus = durable(&server, "bot", DurableOptions::default());
    let key = bus.stream_key("jobs");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let workers = SubscribeOptions::default().group("workers");
    let subscription = bus.subscribe(channel("jobs"), recorder(&seen), workers.clone()).await.unwrap();
    bus.publish("jobs", json!(1)).await.unwrap();
    until("the job", || seen.lock().unwrap().len() == 1).await;
    assert_eq!(consumers(&server, &key, "workers").len(), 1);
    subscription.unsubscribe().await;
    assert_eq!(consumers(&server, &key, "workers"), [], "the consumer left with its subscription");

    // An entry still pending for a consumer would be lost with it: that consumer stays.
    let failing = |_: Envelope| async { Err::<(), BoxError>("fails".into()) };
    let subscription = bus.subscribe(channel("jobs"), Arc::new(failing), workers).await.unwrap();
    bus.publish("jobs", json!(2)).await.unwrap();
    until("the failed job", || subscription.stats().errors() == 1).await;
    subscription.unsubscribe().await;
    let left = consumers(&server, &key, "workers");
    assert_eq!(left.iter().map(|(_, pending)| pending.as_str()).collect::<Vec<_>>(), ["1"], "{left:?}");

    // A private group goes with its subscription, also when the stream is just dropped.
    let stream = bus.stream(channel("jobs"), SubscribeOptions::default()).await.unwrap();
    let groups = || texts(&server.command(&["XINFO", "GROUPS", &key]).unwrap()).iter().filter(|t| *t == "name").count();
    assert_eq!(groups(), 2);
    drop(stream);
    until("the private group to be destroyed", || groups() == 1).await;
}
