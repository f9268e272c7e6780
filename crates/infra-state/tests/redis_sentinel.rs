//! The Redis store behind Sentinel (a master, a replica, three sentinels): it finds the master
//! through the sentinels and, once the master fails over, reads and writes resume on the
//! promoted replica with the same store, and the data written before is still there.

#![cfg(feature = "redis")]

use std::time::{Duration, Instant};

use infra_config::RedisUrl;
use infra_state::{StateError, StateStoreExt, redis::RedisStore};
use infra_testkit::RedisSentinel;

const TIMEOUT: Duration = Duration::from_secs(2);
/// A failover takes a few seconds (1 s of silence, the vote, the promotion, the client's
/// reconnection backoff of up to 2 s); this only catches a store that never recovers.
const RECOVERY: Duration = Duration::from_secs(30);

async fn until_ok<T>(what: &str, mut attempt: impl AsyncFnMut() -> Result<T, StateError>) -> T {
    let started = Instant::now();
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) => {
                assert!(started.elapsed() < RECOVERY, "{what}: no success within {RECOVERY:?}: {error}");
                assert!(
                    matches!(
                        error,
                        StateError::Timeout { .. } | StateError::Connection { .. } | StateError::Backend { .. }
                    ),
                    "{what}: {error}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_resume_after_a_failover() {
    let mut sentinel = tokio::task::spawn_blocking(RedisSentinel::start).await.unwrap().expect("sentinel starts");
    let url = RedisUrl::parse(&sentinel.url()).unwrap();
    let store = RedisStore::with_url(&url, "sentinel", TIMEOUT, TIMEOUT).unwrap();
    store.set_json("price", &100, None).await.unwrap();
    assert_eq!(store.incr("fills", 3).await.unwrap(), 3);
    assert_eq!(
        sentinel.master().command(&["GET", "sentinel:price"]).unwrap().as_text().as_deref(),
        Some("100"),
        "the store writes to the master the sentinels name"
    );

    let old_master = sentinel.master().port();
    let (sentinel, took) =
        tokio::task::spawn_blocking(move || sentinel.failover().map(|took| (sentinel, took))).await.unwrap().unwrap();
    assert_ne!(sentinel.master().port(), old_master);

    let resumed = Instant::now();
    until_ok("a write after the failover", async || store.set_json("price", &101, None).await).await;
    eprintln!("failover took {took:?}; the store wrote again {:?} later", resumed.elapsed());
    assert_eq!(store.get_json::<i64>("price").await.unwrap(), Some(101));
    assert_eq!(store.incr("fills", 1).await.unwrap(), 4, "the count written before the failover survived it");
    assert_eq!(
        sentinel.master().command(&["GET", "sentinel:price"]).unwrap().as_text().as_deref(),
        Some("101"),
        "the write landed on the promoted replica"
    );
    store.close().await.unwrap();
}
