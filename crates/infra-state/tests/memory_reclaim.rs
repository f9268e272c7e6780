//! The memory backend reclaims expired entries in the background: memory stays flat under a
//! long stream of short-lived keys.

use std::time::Duration;

use infra_state::{StateStore, StateValue, memory::MemoryStore};

async fn let_the_reaper_run() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn memory_stays_flat_under_a_stream_of_short_ttl_keys() {
    const ROUNDS: usize = 200;
    const PER_ROUND: usize = 500;
    let store = MemoryStore::new("reclaim");
    let value = StateValue::json(&"tick").unwrap();
    let mut peak_entries = 0;
    let mut peak_deadlines = 0;
    for round in 0..ROUNDS {
        for i in 0..PER_ROUND {
            store.set(&format!("tick:{round}:{i}"), value.clone(), Some(Duration::from_millis(10))).await.unwrap();
        }
        tokio::time::advance(Duration::from_millis(5)).await;
        let_the_reaper_run().await;
        peak_entries = peak_entries.max(store.stored_entries());
        peak_deadlines = peak_deadlines.max(store.pending_expiries());
    }
    // 100,000 keys went through; each lives 10 ms and a round lasts 5 ms, so about three rounds'
    // worth are ever held.
    assert!(peak_entries <= 3 * PER_ROUND, "peak {peak_entries} entries");
    assert!(peak_deadlines <= 3 * PER_ROUND, "peak {peak_deadlines} deadlines");

    tokio::time::advance(Duration::from_millis(20)).await;
    let_the_reaper_run().await;
    assert_eq!(store.stored_entries(), 0);
    assert_eq!(store.pending_expiries(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_refreshed_ttl_is_not_cut_short_by_its_old_deadline() {
    let store = MemoryStore::new("refresh");
    let value = StateValue::json(&1).unwrap();
    store.set("k", value.clone(), Some(Duration::from_millis(10))).await.unwrap();
    store.set("k", value.clone(), Some(Duration::from_millis(100))).await.unwrap();
    tokio::time::advance(Duration::from_millis(50)).await;
    let_the_reaper_run().await;
    assert_eq!(store.get("k").await.unwrap(), Some(value.clone()));
    assert_eq!(store.stored_entries(), 1);
    // A key rewritten without a TTL is never reclaimed by an old deadline either.
    store.set("k", value.clone(), None).await.unwrap();
    tokio::time::advance(Duration::from_millis(100)).await;
    let_the_reaper_run().await;
    assert_eq!(store.get("k").await.unwrap(), Some(value));
    assert_eq!(store.pending_expiries(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_store_ends_the_reaper() {
    let store = MemoryStore::new("drop");
    store.set("k", StateValue::json(&1).unwrap(), Some(Duration::from_secs(3600))).await.unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let_the_reaper_run().await;
    assert_eq!(metrics.num_alive_tasks(), 1, "the reaper runs");
    drop(store);
    tokio::time::advance(Duration::from_secs(2)).await;
    let_the_reaper_run().await;
    assert_eq!(metrics.num_alive_tasks(), 0, "and stops with its store");
}
