//! The memory backend under stress: writers and the reaper never deadlock each other, and the
//! expiry heap stays proportional to the keys that carry a TTL whatever the write pattern.

#![cfg(feature = "memory")]

use std::{
    sync::mpsc::{self, RecvTimeoutError},
    thread,
    time::Duration,
};

use infra_state::{CasOutcome, Expected, Number, StateStore, StateValue, Ttl, memory::MemoryStore};

/// What the store may hold over twice its entries with a TTL (documented on `pending_expiries`).
const SLACK: usize = 32;
const HOUR: Duration = Duration::from_secs(3600);

fn value(n: i64) -> StateValue {
    StateValue::json(&n).unwrap()
}

#[track_caller]
fn assert_bounded(store: &MemoryStore, ttl_keys: usize, when: &str) {
    let pending = store.pending_expiries();
    assert!(pending <= 2 * ttl_keys + SLACK, "{pending} deadlines for {ttl_keys} keys with a TTL, {when}");
}

async fn let_the_reaper_run() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

// --- lock order -------------------------------------------------------------------------------

const WORKERS: usize = 4;
const KEYS: usize = 64;
/// Real time on purpose: the point is real concurrency between the writers and the reaper.
const RUN_FOR: Duration = Duration::from_millis(1500);
const WATCHDOG: Duration = Duration::from_secs(20);

#[derive(Default, Debug)]
struct Counts {
    swapped: u64,
    claimed: u64,
}

/// CAS and set-if-absent with 1-3 ms TTLs over a small key space, until `RUN_FOR` has passed.
async fn hammer(store: &MemoryStore, worker: usize) -> Counts {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    let mut counts = Counts::default();
    let started = std::time::Instant::now();
    let mut round = 0usize;
    while started.elapsed() < RUN_FOR {
        for (i, key) in keys.iter().enumerate() {
            let ttl = Some(Duration::from_millis(1 + ((i + worker + round) % 3) as u64));
            let mine = value((worker * KEYS + i) as i64);
            // Swaps over live entries (the map entry is held while the write is prepared) and
            // over absent or expired ones.
            let expected = match store.get_versioned(key).await.unwrap() {
                Some(current) => Expected::Version(current.version),
                None => Expected::Absent,
            };
            if let CasOutcome::Swapped(_) = store.compare_and_swap(key, expected, mine.clone(), ttl).await.unwrap() {
                counts.swapped += 1;
            }
            let other = &keys[(i + KEYS / 2) % KEYS];
            if store.set_if_not_exists(other, mine, ttl).await.unwrap() {
                counts.claimed += 1;
            }
        }
        round += 1;
    }
    counts
}

#[test]
fn short_ttl_writes_never_deadlock_with_the_reaper() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    let store = MemoryStore::new("stress");
    // The reaper starts on the runtime of the first TTL write: it then runs on the runtime's
    // workers, concurrently with the writer threads below.
    runtime.block_on(store.set("first", value(0), Some(Duration::from_millis(1)))).unwrap();

    let (done, finished) = mpsc::channel();
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let store = store.clone();
            let runtime = runtime.handle().clone();
            let done = done.clone();
            thread::spawn(move || {
                let counts = runtime.block_on(hammer(&store, worker));
                done.send(counts).unwrap();
            })
        })
        .collect();
    drop(done);

    let mut total = Counts::default();
    for _ in 0..WORKERS {
        match finished.recv_timeout(WATCHDOG) {
            Ok(counts) => {
                total.swapped += counts.swapped;
                total.claimed += counts.claimed;
            }
            Err(RecvTimeoutError::Timeout) => {
                // Deadlocked threads never finish: do not wait for the runtime's workers.
                runtime.shutdown_background();
                panic!(
                    "deadlock: writers did not finish within {WATCHDOG:?} of a {RUN_FOR:?} run (a map shard lock \
                     and the expiry heap's lock taken in opposite orders)"
                );
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    for worker in workers {
        worker.join().expect("a writer panicked");
    }
    assert!(total.swapped > 0 && total.claimed > 0, "{total:?}");

    // Every deadline the writers scheduled is still honoured: everything is reclaimed.
    runtime.block_on(async {
        let reclaimed = tokio::time::timeout(Duration::from_secs(5), async {
            while store.stored_entries() > 0 || store.pending_expiries() > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert!(
            reclaimed.is_ok(),
            "{} entries and {} deadlines left after every TTL elapsed",
            store.stored_entries(),
            store.pending_expiries()
        );
    });
}

// --- expiry heap bound ------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn overwriting_one_key_with_a_ttl_keeps_the_heap_small() {
    let store = MemoryStore::new("overwrite");
    for i in 0..200_000 {
        store.set("price", value(i), Some(HOUR)).await.unwrap();
        assert_bounded(&store, 1, "overwriting one key");
    }
    assert_eq!(store.get("price").await.unwrap(), Some(value(199_999)));
    assert!(matches!(store.ttl("price").await.unwrap(), Ttl::Expires(_)));
}

#[tokio::test(start_paused = true)]
async fn overwriting_many_keys_with_a_ttl_keeps_the_heap_proportional() {
    const KEYS: usize = 1000;
    let store = MemoryStore::new("many");
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    for round in 0..50 {
        for (i, key) in keys.iter().enumerate() {
            store.set(key, value(round), Some(HOUR)).await.unwrap();
            let ttl_keys = if round == 0 { i + 1 } else { KEYS };
            assert_bounded(&store, ttl_keys, "overwriting many keys");
        }
    }
    assert_eq!(store.stored_entries(), KEYS);
}

#[tokio::test(start_paused = true)]
async fn refreshing_a_ttl_keeps_the_heap_small() {
    let store = MemoryStore::new("expire");
    store.set("lock", value(1), None).await.unwrap();
    for _ in 0..100_000 {
        assert!(store.expire("lock", HOUR).await.unwrap());
        assert_bounded(&store, 1, "refreshing a TTL");
    }
    // The deadline that survived is the current one: the key still expires on time.
    tokio::time::advance(HOUR).await;
    let_the_reaper_run().await;
    assert_eq!(store.get("lock").await.unwrap(), None);
    assert_eq!(store.stored_entries(), 0);
    assert_eq!(store.pending_expiries(), 0);
}

#[tokio::test(start_paused = true)]
async fn deleting_keys_with_a_ttl_drops_their_deadlines() {
    let store = MemoryStore::new("delete");
    for i in 0..100_000 {
        store.set("session", value(i), Some(HOUR)).await.unwrap();
        assert!(store.delete("session").await.unwrap());
        assert_bounded(&store, 0, "setting and deleting one key");
    }
    // A lock: claimed with a TTL, released by its owner.
    for i in 0..100_000 {
        assert!(store.set_if_not_exists("lock", value(i), Some(HOUR)).await.unwrap());
        assert!(store.compare_and_delete("lock", Expected::Value(value(i))).await.unwrap());
        assert_bounded(&store, 0, "claiming and releasing a lock");
    }
    const KEYS: usize = 10_000;
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    for key in &keys {
        store.set(key, value(0), Some(HOUR)).await.unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert!(store.delete(key).await.unwrap());
        assert_bounded(&store, KEYS - i - 1, "deleting many keys");
    }
    assert!(store.pending_expiries() <= SLACK);
}

#[tokio::test(start_paused = true)]
async fn removing_ttls_by_overwriting_drops_their_deadlines() {
    const KEYS: usize = 10_000;
    let store = MemoryStore::new("persist");
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    for key in &keys {
        store.set(key, value(0), Some(HOUR)).await.unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        if i % 2 == 0 {
            store.set(key, value(1), None).await.unwrap();
        } else {
            let swapped = store.compare_and_swap(key, Expected::Value(value(0)), value(1), None).await.unwrap();
            assert!(swapped.is_swapped());
        }
        assert_bounded(&store, KEYS - i - 1, "removing TTLs");
    }
    assert!(store.pending_expiries() <= SLACK);
    // Nothing persistent is ever reclaimed by a deadline left over.
    tokio::time::advance(2 * HOUR).await;
    let_the_reaper_run().await;
    assert_eq!(store.stored_entries(), KEYS);
}

/// CAS, set-if-absent and increment over expired entries still in the map: one key, so at most
/// one entry with a TTL.
#[test]
fn writes_over_expired_entries_keep_the_heap_small() {
    // The reaper starts on the runtime of the first TTL write; this one is never driven, so the
    // reaper never runs and the writes below meet every expired entry themselves.
    let idle = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let store = MemoryStore::new("expired");
    {
        let _context = idle.enter();
        store.set("first", value(0), Some(HOUR)).now_or_never().unwrap().unwrap();
        assert!(store.delete("first").now_or_never().unwrap().unwrap());
    }
    let paused = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
    paused.block_on(async {
        let short = Duration::from_millis(1);
        for i in 0..20_000 {
            // Every step leaves the key with a 1 ms TTL, so the next one writes over an expired
            // entry.
            match i % 4 {
                0 => assert!(store.set_if_not_exists("k", value(i), Some(short)).await.unwrap()),
                1 => {
                    let outcome = store.compare_and_swap("k", Expected::Absent, value(i), Some(short)).await.unwrap();
                    assert!(outcome.is_swapped());
                }
                2 => {
                    // Starts again at 0, without a TTL.
                    assert_eq!(store.increment("k", Number::Int(1)).await.unwrap(), Number::Int(1));
                    assert_bounded(&store, 1, "incrementing an expired counter");
                    assert!(store.expire("k", short).await.unwrap());
                }
                _ => {
                    assert!(store.set_if_not_exists("k", value(i), None).await.unwrap());
                    assert_bounded(&store, 1, "claiming an expired key without a TTL");
                    assert!(store.expire("k", short).await.unwrap());
                }
            }
            assert_bounded(&store, 1, "writing over expired entries");
            tokio::time::advance(Duration::from_millis(2)).await;
            assert_eq!(store.stored_entries(), 1, "the expired entry stays for the next write");
        }
        // The store still counts one key with a TTL at most: a miscount on any path above would
        // let the deadlines of long TTLs pile up now.
        for i in 0..10_000 {
            store.set("k", value(i), Some(HOUR)).await.unwrap();
            assert_bounded(&store, 1, "overwriting after writes over expired entries");
        }
    });
}

/// A deterministic mix of every write, with TTLs long enough that nothing expires, checked after
/// each operation against the keys that hold a TTL.
#[tokio::test(start_paused = true)]
async fn a_mix_of_writes_keeps_the_heap_proportional() {
    const KEYS: usize = 32;
    let store = MemoryStore::new("mix");
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    // xorshift64: reproducible without a dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut peak = 0;
    for _ in 0..20_000 {
        let roll = next();
        let key = &keys[(roll % KEYS as u64) as usize];
        let ttl = if (roll >> 8) % 4 == 0 { None } else { Some(HOUR) };
        let n = (roll >> 16) as i64 % 1000;
        match (roll >> 32) % 9 {
            0 | 1 => store.set(key, value(n), ttl).await.unwrap(),
            2 => {
                store.expire(key, HOUR).await.unwrap();
            }
            3 => {
                store.delete(key).await.unwrap();
            }
            4 => {
                let expected = match store.get_versioned(key).await.unwrap() {
                    Some(current) => Expected::Version(current.version),
                    None => Expected::Absent,
                };
                assert!(store.compare_and_swap(key, expected, value(n), ttl).await.unwrap().is_swapped());
            }
            5 => {
                store.set_if_not_exists(key, value(n), ttl).await.unwrap();
            }
            6 => {
                if let Some(current) = store.get(key).await.unwrap() {
                    assert!(store.compare_and_delete(key, Expected::Value(current)).await.unwrap());
                }
            }
            _ => {
                store.increment(key, Number::Int(n)).await.unwrap();
            }
        }
        let mut ttl_keys = 0;
        for key in &keys {
            if matches!(store.ttl(key).await.unwrap(), Ttl::Expires(_)) {
                ttl_keys += 1;
            }
        }
        assert_bounded(&store, ttl_keys, "after a mix of writes");
        peak = peak.max(store.pending_expiries());
    }
    // The mix did write many TTLs; the bound is what held them down.
    assert!(peak > KEYS, "peak {peak}");
}
