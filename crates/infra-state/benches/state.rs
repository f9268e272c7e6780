//! State benchmarks, each against a raw baseline in the same run:
//! - `state/memory_get_vs_dashmap`, `state/memory_set_vs_dashmap`: the memory backend through
//!   `Arc<dyn StateStore>` vs a bare `DashMap<String, Arc<str>>`;
//! - `state/memory_get_with_recorder_vs_without`: the same `get` on a store built while a
//!   Prometheus recorder was in effect (its counters resolved) vs one built without a recorder;
//! - `state/redis_{set,get}_200_tasks_vs_fred`: ns per op with 200 concurrent tasks, ours vs raw
//!   fred on the same throwaway server, same client settings;
//! - `state/redis_get_sequential_vs_fred`: one task, one op at a time, the two sides alternating
//!   (median latency, merged by `cargo xtask bench` like the events round trip);
//! - `state/redis_get_many_100_vs_fred_mget`: one `get_many` of 100 keys vs one raw fred `MGET`
//!   of the same keys.

#![allow(missing_docs, reason = "criterion generates the bench entry points")]

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::{Criterion, criterion_group, criterion_main};
use dashmap::DashMap;
use infra_config::RedisUrl;
use infra_redis::fred::{
    prelude::{Builder, Client, ClientLike, Config as FredConfig, KeysInterface, ReconnectPolicy, Value},
    types::Key,
};
use infra_state::{DynStateStore, StateValue, memory::MemoryStore, redis::RedisStore};
use infra_testkit::{RedisServer, bench};

const KEYS: usize = 1024;
const TASKS: u64 = 200;
const TIMEOUT: Duration = Duration::from_secs(5);

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("key:{i}")).collect()
}

fn memory(c: &mut Criterion) {
    let keys = keys();
    let value = StateValue::json(&serde_json::json!({"price": 50234.56, "qty": 3})).unwrap();
    let store: Arc<DynStateStore> = Arc::new(MemoryStore::new("bench"));
    let map: DashMap<String, Arc<str>> = DashMap::new();
    for key in &keys {
        store.set(key, value.clone(), None).now_or_never().unwrap().unwrap();
        map.insert(key.clone(), Arc::from(value.as_str()));
    }
    let raw_value: Arc<str> = Arc::from(value.as_str());

    let mut group = c.benchmark_group("state/memory_get_vs_dashmap");
    let mut i = 0;
    group.bench_function("ours", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(store.get(&keys[i]).now_or_never().unwrap().unwrap())
        })
    });
    group.bench_function("baseline", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(map.get(keys[i].as_str()).map(|v| v.clone()))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("state/memory_set_vs_dashmap");
    group.bench_function("ours", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            store.set(&keys[i], value.clone(), None).now_or_never().unwrap().unwrap();
        })
    });
    // What ours does: overwrite the existing entry in place (no owned key), one value clone.
    group.bench_function("baseline", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            match map.get_mut(keys[i].as_str()) {
                Some(mut slot) => *slot = raw_value.clone(),
                None => {
                    map.insert(keys[i].clone(), raw_value.clone());
                }
            }
        })
    });
    group.finish();

    // What recording costs a memory `get` once a real recorder resolved the store's handles.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let recorded: Arc<DynStateStore> = metrics::with_local_recorder(&recorder, || Arc::new(MemoryStore::new("bench")));
    let bare: Arc<DynStateStore> = Arc::new(MemoryStore::new("bench"));
    for key in &keys {
        recorded.set(key, value.clone(), None).now_or_never().unwrap().unwrap();
        bare.set(key, value.clone(), None).now_or_never().unwrap().unwrap();
    }
    let mut group = c.benchmark_group("state/memory_get_with_recorder_vs_without");
    group.bench_function("ours", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(recorded.get(&keys[i]).now_or_never().unwrap().unwrap())
        })
    });
    group.bench_function("baseline", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(bare.get(&keys[i]).now_or_never().unwrap().unwrap())
        })
    });
    group.finish();
    drop(recorder);
}

/// A raw fred client with the same settings `RedisStore` uses.
async fn raw_fred(url: &str) -> Client {
    let mut builder = Builder::from_config(FredConfig::from_url(url).unwrap());
    builder
        .with_connection_config(|c| {
            c.connection_timeout = TIMEOUT;
            c.internal_command_timeout = TIMEOUT;
            c.max_command_buffer_len = 100_000;
        })
        .with_performance_config(|p| p.default_command_timeout = TIMEOUT)
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
    let client = builder.build().unwrap();
    client.init().await.unwrap();
    client
}

/// Runs `iters` operations spread over `TASKS` tasks and returns the total time.
async fn spread<F, Fut>(iters: u64, op: F) -> Duration
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let per_task = iters.div_ceil(TASKS);
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                for n in 0..per_task {
                    op((t as usize * 7919 + n as usize) % KEYS).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Normalise to exactly `iters` operations.
    started.elapsed().mul_f64(iters as f64 / (per_task * TASKS) as f64)
}

/// One comparison: both sides run from 200 concurrent tasks.
fn pair<O, OF, B, BF>(c: &mut Criterion, runtime: &tokio::runtime::Runtime, name: &str, ours: O, baseline: B)
where
    O: Fn(usize) -> OF + Clone + Send + 'static,
    OF: Future<Output = ()> + Send,
    B: Fn(usize) -> BF + Clone + Send + 'static,
    BF: Future<Output = ()> + Send,
{
    let mut group = c.benchmark_group(name);
    group.bench_function("ours", |b| b.to_async(runtime).iter_custom(|iters| spread(iters, ours.clone())));
    group.bench_function("baseline", |b| b.to_async(runtime).iter_custom(|iters| spread(iters, baseline.clone())));
    group.finish();
}

fn redis(c: &mut Criterion) {
    let server = RedisServer::start().expect("redis-server is needed for the redis benchmarks");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let url = RedisUrl::parse(&server.url()).unwrap();
    let ours: Arc<DynStateStore> = Arc::new(RedisStore::with_url(&url, "bench", TIMEOUT, TIMEOUT).unwrap());
    let raw = runtime.block_on(raw_fred(&server.url()));
    let keys = Arc::new(keys());
    let value = StateValue::json(&serde_json::json!({"price": 50234.56, "qty": 3})).unwrap();
    let raw_keys: Arc<Vec<String>> = Arc::new(keys.iter().map(|k| format!("raw:{k}")).collect());
    runtime.block_on(async {
        for (key, raw_key) in keys.iter().zip(raw_keys.iter()) {
            ours.set(key, value.clone(), None).await.unwrap();
            let () = raw.set(raw_key.as_str(), value.as_str(), None, None, false).await.unwrap();
        }
    });

    // One closure per way of doing an operation; `spread` runs them from 200 tasks.
    let dyn_get = {
        let (store, keys) = (ours.clone(), keys.clone());
        move |i: usize| {
            let (store, keys) = (store.clone(), keys.clone());
            async move {
                black_box(store.get(&keys[i]).await.unwrap());
            }
        }
    };
    let dyn_set = {
        let (store, keys, value) = (ours.clone(), keys.clone(), value.clone());
        move |i: usize| {
            let (store, keys, value) = (store.clone(), keys.clone(), value.clone());
            async move { store.set(&keys[i], value, None).await.unwrap() }
        }
    };
    // The concrete type's inherent methods skip the boxing a `dyn StateStore` call needs.
    let concrete = Arc::new(RedisStore::with_url(&url, "bench", TIMEOUT, TIMEOUT).unwrap());
    let concrete_get = {
        let (store, keys) = (concrete.clone(), keys.clone());
        move |i: usize| {
            let (store, keys) = (store.clone(), keys.clone());
            async move {
                black_box(store.get(&keys[i]).await.unwrap());
            }
        }
    };
    let concrete_set = {
        let (store, keys, value) = (concrete.clone(), keys.clone(), value.clone());
        move |i: usize| {
            let (store, keys, value) = (store.clone(), keys.clone(), value.clone());
            async move { store.set(&keys[i], value, None).await.unwrap() }
        }
    };
    let raw_get = {
        let (client, keys) = (raw.clone(), raw_keys.clone());
        move |i: usize| {
            let (client, keys) = (client.clone(), keys.clone());
            async move {
                let value: Value = client.get(keys[i].as_str()).await.unwrap();
                black_box(value);
            }
        }
    };
    let raw_set = {
        let (client, keys, value) = (raw.clone(), raw_keys.clone(), value.clone());
        move |i: usize| {
            let (client, keys, value) = (client.clone(), keys.clone(), value.clone());
            async move {
                let () = client.set(keys[i].as_str(), value.as_str(), None, None, false).await.unwrap();
            }
        }
    };

    // Bring both clients, the server and the allocator to a steady state before measuring
    // either: without this the first group measured in the process came out 10-30% slower,
    // whichever side it was (seen when running groups alone vs after the memory benches).
    runtime.block_on(async {
        for _ in 0..2 {
            spread(200_000, dyn_get.clone()).await;
            spread(200_000, raw_get.clone()).await;
        }
    });

    pair(c, &runtime, "state/redis_set_200_tasks_vs_fred", dyn_set, raw_set.clone());
    pair(c, &runtime, "state/redis_get_200_tasks_vs_fred", dyn_get, raw_get.clone());
    pair(c, &runtime, "state/redis_set_200_tasks_concrete_vs_fred", concrete_set, raw_set);
    pair(c, &runtime, "state/redis_get_200_tasks_concrete_vs_fred", concrete_get, raw_get);

    sequential_gets(&runtime, &ours, &keys, &raw, &raw_keys);

    let batch: Vec<&str> = keys.iter().take(100).map(String::as_str).collect();
    // The baseline is what a bot author would write with fred alone: one MGET of the same 100
    // (namespaced) keys, the replies decoded into owned strings as ours decodes its values.
    let raw_batch: Vec<&str> = raw_keys.iter().take(100).map(String::as_str).collect();
    let mut group = c.benchmark_group("state/redis_get_many_100_vs_fred_mget");
    group.bench_function("ours", |b| {
        b.to_async(&runtime).iter(|| async { black_box(ours.get_many(&batch).await.unwrap()) })
    });
    group.bench_function("baseline", |b| {
        b.to_async(&runtime).iter(|| async {
            let keys: Vec<Key> = raw_batch.iter().map(|k| Key::from(*k)).collect();
            let values: Vec<Option<String>> = raw.mget(keys).await.unwrap();
            black_box(values)
        })
    });
    group.finish();
    drop(runtime);
    drop(server);
}

/// `state/redis_get_sequential_vs_fred`: one get at a time, ours and raw fred alternating op by
/// op, median latency of each. Measured as two criterion groups one after the other, the side
/// measured second after the 200-task groups read 10-20% faster in full runs and equal alone.
fn sequential_gets(
    runtime: &tokio::runtime::Runtime,
    ours: &Arc<DynStateStore>,
    keys: &[String],
    raw: &Client,
    raw_keys: &[String],
) {
    const NAME: &str = "state/redis_get_sequential_vs_fred";
    if !bench::selected(NAME) {
        return;
    }
    let samples = if bench::quick() { 2_000 } else { 20_000 };
    let (mut ours_samples, mut raw_samples) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    runtime.block_on(async {
        for i in 0..samples {
            let started = Instant::now();
            black_box(ours.get(&keys[i % KEYS]).await.unwrap());
            ours_samples.push(started.elapsed());
            let started = Instant::now();
            let value: Value = raw.get(raw_keys[i % KEYS].as_str()).await.unwrap();
            black_box(value);
            raw_samples.push(started.elapsed());
        }
    });
    ours_samples.sort();
    raw_samples.sort();
    bench::write_comparison(NAME, bench::percentile(&ours_samples, 0.5), bench::percentile(&raw_samples, 0.5));
}

criterion_group!(benches, memory, redis);
criterion_main!(benches);
