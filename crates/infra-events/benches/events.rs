//! - `events/memory_deliver_vs_mpsc`: publish → handler, ns per event, through the memory bus
//!   (one subscription, blocking overflow) vs what one would write by hand: a bounded tokio mpsc
//!   channel of the same size feeding one receiving task, carrying the same data as our envelope
//!   (a counter ID, channel, timestamp, source, correlation ID restored around the work, and the
//!   payload cloned once per event, as the caller of our publish clones it);
//! - `events/redis_roundtrip_{p50,p99}_vs_fred`: publish → receive latency percentiles through
//!   Redis pub/sub, ours vs raw fred (computed here, merged by `cargo xtask bench`);
//! - `events/durable_publish_vs_xadd`: one durable publish (a stream append) through
//!   `Arc<dyn EventBus>` vs a raw fred `XADD` of the same envelope text, one at a time.

#![allow(missing_docs, reason = "criterion generates the bench entry points")]

use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use criterion::{Criterion, criterion_group, criterion_main};
use infra_events::{BoxError, Envelope, EventBus, Overflow, SubscribeOptions, Topic, memory::MemoryBus};
use infra_log::{CorrelationId, current_correlation_id, with_correlation_id};
use tokio::sync::{Notify, mpsc};

/// Waits until `counter` reaches `target`.
async fn until(counter: &AtomicU64, done: &Notify, target: u64) {
    while counter.load(Ordering::Acquire) < target {
        done.notified().await;
    }
}

fn deliver(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("events/memory_deliver_vs_mpsc");
    let payload = serde_json::json!({"symbol": "BTC", "price": 50234.56});

    let bus = MemoryBus::new("bench");
    let handled = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let subscription = {
        let (handled, done) = (handled.clone(), done.clone());
        let handler = move |event: Envelope| {
            let (handled, done) = (handled.clone(), done.clone());
            async move {
                black_box(event);
                handled.fetch_add(1, Ordering::Release);
                done.notify_one();
                Ok::<(), BoxError>(())
            }
        };
        // Blocking overflow: the publisher waits for room, as the baseline does, so no event can
        // be dropped and leave the measurement waiting for it.
        let options = SubscribeOptions { overflow: Overflow::Block, ..SubscribeOptions::default() };
        runtime.block_on(bus.subscribe(Topic::Channel("ticks".into()), Arc::new(handler), options))
    }
    .unwrap();
    group.bench_function("ours", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (bus, handled, done, payload) = (bus.clone(), handled.clone(), done.clone(), payload.clone());
            async move {
                let start_count = handled.load(Ordering::Acquire);
                let started = Instant::now();
                for _ in 0..iters {
                    bus.publish("ticks", payload.clone()).await.unwrap();
                }
                until(&handled, &done, start_count + iters).await;
                started.elapsed()
            }
        })
    });
    assert_eq!(subscription.stats().dropped(), 0, "a dropped event would flatter the measurement");
    drop(subscription);

    // By hand: the same data as our envelope, in a struct of one's own.
    #[expect(dead_code, reason = "carried to the receiver like our envelope's fields, not read there")]
    struct Tick {
        id: u64,
        channel: String,
        timestamp_ms: u64,
        source: String,
        correlation_id: Option<CorrelationId>,
        payload: serde_json::Value,
    }
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let now_ms = || {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    };
    // The same queue size as a subscription's, and the publisher waits for room like ours.
    let (sender, mut receiver) = mpsc::channel::<Tick>(infra_events::DEFAULT_CAPACITY);
    let received = Arc::new(AtomicU64::new(0));
    let woken = Arc::new(Notify::new());
    {
        let (received, woken) = (received.clone(), woken.clone());
        runtime.spawn(async move {
            while let Some(mut tick) = receiver.recv().await {
                let correlation = tick.correlation_id.take();
                let work = async {
                    black_box(tick);
                    received.fetch_add(1, Ordering::Release);
                    woken.notify_one();
                };
                match correlation {
                    Some(id) => with_correlation_id(id, work).await,
                    None => work.await,
                }
            }
        });
    }
    group.bench_function("baseline", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let (sender, received, woken, payload) = (sender.clone(), received.clone(), woken.clone(), payload.clone());
            async move {
                let start_count = received.load(Ordering::Acquire);
                let started = Instant::now();
                for _ in 0..iters {
                    let tick = Tick {
                        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                        channel: "ticks".to_owned(),
                        timestamp_ms: now_ms(),
                        source: "bench".to_owned(),
                        correlation_id: current_correlation_id(),
                        payload: payload.clone(),
                    };
                    sender.send(tick).await.unwrap_or_else(|_| panic!("the receiving task is running"));
                }
                until(&received, &woken, start_count + iters).await;
                started.elapsed()
            }
        })
    });
    group.finish();
}

/// Round-trip latency percentiles, which criterion does not report: written as comparisons for
/// `cargo xtask bench` to merge (`<target>/criterion-extra/*.json`).
#[cfg(feature = "redis")]
mod roundtrip {
    use std::time::{Duration, Instant};

    use futures::StreamExt;
    use infra_config::RedisUrl;
    use infra_events::{EventBus, SubscribeOptions, Topic, redis::RedisBus};
    use infra_redis::fred::prelude::{Builder, ClientLike, Config as FredConfig, EventInterface, PubsubInterface};
    use infra_testkit::{RedisServer, bench};

    const SAMPLES: usize = 5_000;

    pub(super) fn run() {
        const P50: &str = "events/redis_roundtrip_p50_vs_fred";
        const P99: &str = "events/redis_roundtrip_p99_vs_fred";
        if !bench::selected(P50) && !bench::selected(P99) {
            return;
        }
        let samples = if bench::quick() { SAMPLES / 5 } else { SAMPLES };
        let server = RedisServer::start().expect("redis-server is needed for the redis benchmarks");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let timeout = Duration::from_secs(5);
        let payload = serde_json::json!({"symbol": "BTC", "price": 50234.56});
        let (ours, baseline) = runtime.block_on(async {
            let url = RedisUrl::parse(&server.url()).unwrap();
            let publisher = RedisBus::new(&url, "bench", "pub", timeout).unwrap();
            let subscriber = RedisBus::new(&url, "bench", "sub", timeout).unwrap();
            let mut stream = subscriber.stream(Topic::Channel("rt".into()), SubscribeOptions::default()).await.unwrap();

            let config = FredConfig::from_url(&server.url()).unwrap();
            let raw_publisher = Builder::from_config(config.clone()).build().unwrap();
            let raw_subscriber = Builder::from_config(config).build_subscriber_client().unwrap();
            raw_publisher.init().await.unwrap();
            raw_subscriber.init().await.unwrap();
            let mut messages = raw_subscriber.message_rx();
            raw_subscriber.subscribe("raw:rt").await.unwrap();
            let text = payload.to_string();

            // Samples alternate between the two, so drift on this shared VM hits both alike.
            let mut ours = Vec::with_capacity(samples);
            let mut baseline = Vec::with_capacity(samples);
            for i in 0..samples + 100 {
                let started = Instant::now();
                publisher.publish("rt", payload.clone()).await.unwrap();
                stream.next().await.unwrap();
                let ours_sample = started.elapsed();

                let started = Instant::now();
                let _: i64 = raw_publisher.publish("raw:rt", text.as_str()).await.unwrap();
                messages.recv().await.unwrap();
                let baseline_sample = started.elapsed();
                if i >= 100 {
                    ours.push(ours_sample);
                    baseline.push(baseline_sample);
                }
            }
            (ours, baseline)
        });
        let (mut ours, mut baseline) = (ours, baseline);
        ours.sort();
        baseline.sort();
        bench::write_comparison(P50, bench::percentile(&ours, 0.50), bench::percentile(&baseline, 0.50));
        bench::write_comparison(P99, bench::percentile(&ours, 0.99), bench::percentile(&baseline, 0.99));
    }
}

fn roundtrip(_: &mut Criterion) {
    #[cfg(feature = "redis")]
    roundtrip::run();
}

#[cfg(feature = "redis")]
fn durable_publish(c: &mut Criterion) {
    use infra_config::RedisUrl;
    use infra_events::redis::{DurableBus, DurableOptions};
    use infra_redis::fred::{
        prelude::{Builder, ClientLike, Config as FredConfig, StreamsInterface},
        types::{
            Value,
            streams::{XCapKind, XCapTrim},
        },
    };

    const MAX_LEN: u64 = 100_000;
    let server = infra_testkit::RedisServer::start().expect("redis-server is needed for the redis benchmarks");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let timeout = std::time::Duration::from_secs(5);
    let payload = serde_json::json!({"symbol": "BTC", "price": 50234.56});
    let url = RedisUrl::parse(&server.url()).unwrap();
    let bus: Arc<dyn EventBus> = Arc::new(
        DurableBus::new(&url, "bench", "pub", timeout, DurableOptions::default().stream_max_len(MAX_LEN)).unwrap(),
    );
    let raw = Builder::from_config(FredConfig::from_url(&server.url()).unwrap()).build().unwrap();
    let wire = Envelope::new("ticks", "pub", payload.clone()).to_wire();
    // The same append with the same cap as ours, through fred directly.
    let raw_xadd = || async {
        let cap = (XCapKind::MaxLen, XCapTrim::AlmostExact, MAX_LEN as i64);
        raw.xadd::<Value, _, _, _, _>("raw:ticks", false, cap, "*", vec![("event", wire.as_str())]).await.unwrap()
    };
    runtime.block_on(async {
        raw.init().await.unwrap();
        // Both clients connected and warm before measuring.
        for _ in 0..200 {
            bus.publish("ticks", payload.clone()).await.unwrap();
            raw_xadd().await;
        }
    });

    let mut group = c.benchmark_group("events/durable_publish_vs_xadd");
    group.bench_function("ours", |b| {
        b.to_async(&runtime).iter(|| async { black_box(bus.publish("ticks", payload.clone()).await.unwrap()) })
    });
    group.bench_function("baseline", |b| b.to_async(&runtime).iter(|| async { black_box(raw_xadd().await) }));
    group.finish();
}

#[cfg(not(feature = "redis"))]
fn durable_publish(_: &mut Criterion) {}

criterion_group!(benches, deliver, roundtrip, durable_publish);
criterion_main!(benches);
