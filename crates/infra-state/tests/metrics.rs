//! What the stores record through the `metrics` facade: exact counts per operation and outcome,
//! Redis latencies per operation, and reconnects.
#![cfg(feature = "memory")]

use std::collections::BTreeMap;

use infra_state::{Expected, Number, StateStore, StateStoreExt, StateValue, memory::MemoryStore};
use metrics_util::{
    MetricKind,
    debugging::{DebugValue, DebuggingRecorder, Snapshotter},
};

/// Everything recorded so far (the debugging recorder hands out deltas: they are summed here).
#[derive(Default)]
struct Seen {
    /// (name, sorted labels) → total.
    counters: BTreeMap<(String, Vec<(String, String)>), u64>,
    /// (name, sorted labels) → samples.
    histograms: BTreeMap<(String, Vec<(String, String)>), usize>,
}

impl Seen {
    fn take(&mut self, snapshotter: &Snapshotter) {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let kind = key.kind();
            let key = key.key();
            let mut labels: Vec<(String, String)> =
                key.labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
            labels.sort();
            let id = (key.name().to_owned(), labels);
            match (kind, value) {
                (MetricKind::Counter, DebugValue::Counter(n)) => *self.counters.entry(id).or_default() += n,
                (MetricKind::Histogram, DebugValue::Histogram(samples)) => {
                    *self.histograms.entry(id).or_default() += samples.len();
                }
                other => panic!("unexpected metric {other:?}"),
            }
        }
    }

    /// `infra_state_operations_total` of `backend` by (op, outcome), zeros left out.
    fn operations(&self, backend: &str) -> BTreeMap<(String, String), u64> {
        let mut found = BTreeMap::new();
        for ((name, labels), n) in &self.counters {
            if name != "infra_state_operations_total" || *n == 0 {
                continue;
            }
            let label = |k: &str| labels.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
            assert_eq!(labels.len(), 3, "{labels:?}");
            if label("backend") == backend {
                found.insert((label("op"), label("outcome")), *n);
            }
        }
        found
    }

    /// Samples of `infra_state_operation_duration_seconds` by op, empty ones left out.
    fn durations(&self) -> BTreeMap<String, usize> {
        let mut found = BTreeMap::new();
        for ((name, labels), n) in &self.histograms {
            if name == "infra_state_operation_duration_seconds" && *n > 0 {
                assert_eq!(labels.len(), 2, "{labels:?}");
                assert!(labels.contains(&("backend".to_owned(), "redis".to_owned())), "{labels:?}");
                let op = labels.iter().find(|(k, _)| k == "op").map(|(_, v)| v.clone()).unwrap_or_default();
                found.insert(op, *n);
            }
        }
        found
    }

    #[cfg(feature = "redis")]
    fn reconnects(&self) -> u64 {
        let id = ("infra_state_reconnects_total".to_owned(), vec![("backend".to_owned(), "redis".to_owned())]);
        self.counters.get(&id).copied().unwrap_or_default()
    }
}

fn expected(entries: &[(&str, &str, u64)]) -> BTreeMap<(String, String), u64> {
    entries.iter().map(|(op, outcome, n)| (((*op).to_owned(), (*outcome).to_owned()), *n)).collect()
}

fn json(value: impl serde::Serialize) -> StateValue {
    StateValue::json(&value).unwrap()
}

/// Runs `body` on a current-thread runtime with `recorder` in effect on this thread (local
/// recorders are thread-local), so the stores it builds resolve their handles there.
fn recorded<F: Future<Output = ()>>(recorder: &DebuggingRecorder, body: impl FnOnce() -> F) {
    metrics::with_local_recorder(recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(body());
    });
}

/// One call of every operation; `increment` twice, once on a value that is not an integer.
async fn every_operation(store: &dyn StateStore) {
    store.set("a", json(1), None).await.unwrap();
    store.set("text", json("x"), None).await.unwrap();
    store.get("a").await.unwrap();
    store.get("missing").await.unwrap();
    assert!(store.exists("a").await.unwrap());
    store.ttl("a").await.unwrap();
    assert!(store.expire("a", std::time::Duration::from_secs(60)).await.unwrap());
    assert_eq!(store.increment("a", Number::Int(2)).await.unwrap(), Number::Int(3));
    store.increment("text", Number::Int(1)).await.unwrap_err();
    assert!(store.set_if_not_exists("lock", json("me"), None).await.unwrap());
    let versioned = store.get_versioned("lock").await.unwrap().unwrap();
    assert!(
        store
            .compare_and_swap("lock", Expected::Version(versioned.version), json("you"), None)
            .await
            .unwrap()
            .is_swapped()
    );
    assert!(store.compare_and_delete("lock", Expected::Value(json("you"))).await.unwrap());
    store.set_many(&[("m1", json(1)), ("m2", json(2))], None).await.unwrap();
    assert_eq!(store.get_many(&["m1", "m2"]).await.unwrap().len(), 2);
    assert_eq!(store.keys("m").await.unwrap(), ["m1", "m2"]);
    assert!(store.delete("m1").await.unwrap());
    store.ping().await.unwrap();
    store.get("").await.unwrap_err();
}

const EVERY_OPERATION: &[(&str, &str, u64)] = &[
    ("compare_and_delete", "ok", 1),
    ("compare_and_swap", "ok", 1),
    ("delete", "ok", 1),
    ("exists", "ok", 1),
    ("expire", "ok", 1),
    ("get", "error", 1),
    ("get", "ok", 2),
    ("get_many", "ok", 1),
    ("get_versioned", "ok", 1),
    ("increment", "error", 1),
    ("increment", "ok", 1),
    ("ping", "ok", 1),
    ("scan", "ok", 1),
    ("set", "ok", 2),
    ("set_if_absent", "ok", 1),
    ("set_many", "ok", 1),
    ("ttl", "ok", 1),
];

#[test]
fn the_memory_store_counts_every_operation_by_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorded(&recorder, || async move {
        let store = MemoryStore::new("metrics");
        every_operation(&store).await;
    });
    let mut seen = Seen::default();
    seen.take(&snapshotter);
    assert_eq!(seen.operations("memory"), expected(EVERY_OPERATION));
    assert!(seen.durations().is_empty(), "the memory backend records no latency");
}

#[test]
fn a_store_built_before_the_recorder_records_nothing() {
    let store = MemoryStore::new("early");
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let store = &store;
    recorded(&recorder, || async move {
        store.set("k", json(1), None).await.unwrap();
        store.get("k").await.unwrap();
    });
    let mut seen = Seen::default();
    seen.take(&snapshotter);
    assert!(seen.operations("memory").is_empty(), "handles are resolved when the store is built");
}

#[cfg(feature = "redis")]
mod redis {
    use std::{
        sync::Arc,
        time::{Duration, Instant},
    };

    use infra_config::RedisUrl;
    use infra_state::{DynStateStore, redis::RedisStore};
    use infra_testkit::RedisServer;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(2);

    fn store(server: &RedisServer) -> RedisStore {
        let url = RedisUrl::parse(&server.url()).unwrap();
        RedisStore::with_url(&url, "metrics", TIMEOUT, TIMEOUT).unwrap()
    }

    #[test]
    fn the_redis_store_counts_and_times_every_operation_and_counts_reconnects() {
        let mut server = RedisServer::start().expect("redis-server must be installed for these tests");
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut seen = Seen::default();
        let (server, seen, snapshotter) = (&mut server, &mut seen, &snapshotter);
        recorded(&recorder, || async move {
            let store = store(server);
            every_operation(&store).await;
            seen.take(snapshotter);
            assert_eq!(seen.operations("redis"), expected(EVERY_OPERATION));
            let durations: BTreeMap<String, usize> =
                EVERY_OPERATION.iter().fold(BTreeMap::new(), |mut d, (op, _, n)| {
                    *d.entry((*op).to_owned()).or_default() += *n as usize;
                    d
                });
            assert_eq!(seen.durations(), durations, "one latency sample per call");
            assert_eq!(seen.reconnects(), 0, "the first connection is not a reconnect");

            server.restart().unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            // fred announces the new connection from its own task: wait for it, bounded.
            while seen.reconnects() == 0 {
                assert!(Instant::now() < deadline, "no reconnect counted");
                let _ = store.ping().await;
                seen.take(snapshotter);
            }
            assert_eq!(seen.reconnects(), 1);
            store.close().await.unwrap();
        });
    }

    #[test]
    fn coalesced_gets_and_sets_are_counted_and_timed_like_the_others() {
        let server = RedisServer::start().expect("redis-server must be installed for these tests");
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let server = &server;
        recorded(&recorder, || async move {
            let store: Arc<DynStateStore> = Arc::new(store(server));
            store.connect().await.unwrap();
            // Every call is made before any is polled: more than enough in flight to coalesce.
            let sets: Vec<_> = (0..40).map(|i| store.set("k", json(i), None)).collect();
            for result in futures::future::join_all(sets).await {
                result.unwrap();
            }
            let gets: Vec<_> = (0..40).map(|_| store.get("k")).collect();
            for result in futures::future::join_all(gets).await {
                assert!(result.unwrap().is_some());
            }
            store.close().await.unwrap();
        });
        let stats = server.command(&["INFO", "commandstats"]).unwrap().as_text().unwrap_or_default();
        assert!(stats.contains("cmdstat_mget") && stats.contains("cmdstat_mset"), "nothing coalesced: {stats}");
        let mut seen = Seen::default();
        seen.take(&snapshotter);
        assert_eq!(seen.operations("redis"), expected(&[("get", "ok", 40), ("set", "ok", 40)]));
        let durations: BTreeMap<String, usize> = [("get".to_owned(), 40), ("set".to_owned(), 40)].into_iter().collect();
        assert_eq!(seen.durations(), durations);
    }
}
