//! `events/memory_deliver_vs_broadcast`: publish → handler, ns per event, through the memory
//! bus vs a bare tokio broadcast channel feeding one receiving task.

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
use tokio::sync::{Notify, broadcast};

/// Waits until `counter` reaches `target`.
async fn until(counter: &AtomicU64, done: &Notify, target: u64) {
    while counter.load(Ordering::Acquire) < target {
        done.notified().await;
    }
}

fn deliver(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("events/memory_deliver_vs_broadcast");
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

    let (sender, mut receiver) = broadcast::channel::<serde_json::Value>(65_536);
    let received = Arc::new(AtomicU64::new(0));
    let woken = Arc::new(Notify::new());
    {
        let (received, woken) = (received.clone(), woken.clone());
        runtime.spawn(async move {
            while let Ok(value) = receiver.recv().await {
                black_box(value);
                received.fetch_add(1, Ordering::Release);
                woken.notify_one();
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
                    // A full channel makes the receiver lag; wait for room like our blocking policy.
                    while sender.len() >= 60_000 {
                        tokio::task::yield_now().await;
                    }
                    sender.send(payload.clone()).unwrap();
                }
                until(&received, &woken, start_count + iters).await;
                started.elapsed()
            }
        })
    });
    group.finish();
}

criterion_group!(benches, deliver);
criterion_main!(benches);
