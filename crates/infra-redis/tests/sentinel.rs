//! A client behind Sentinel: it finds the master through the sentinels, and finds the promoted
//! replica after the master fails over.

use std::time::{Duration, Instant};

use fred::prelude::KeysInterface;
use infra_config::RedisUrl;
use infra_redis::{ClientOptions, Connection, fred};
use infra_testkit::RedisSentinel;

const TIMEOUT: Duration = Duration::from_secs(2);
/// A failover takes a few seconds: the master's silence (1 s), the vote, the promotion, and
/// the client's reconnection backoff (up to 2 s).
const RECOVERY: Duration = Duration::from_secs(30);

fn connection(url: &str) -> Connection {
    let url = RedisUrl::parse(url).unwrap();
    let options = ClientOptions::new(TIMEOUT, TIMEOUT);
    Connection::new(infra_redis::client(&url, &options).unwrap(), &url, TIMEOUT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_on_the_promoted_replica_after_a_failover() {
    let mut sentinel = tokio::task::spawn_blocking(RedisSentinel::start).await.unwrap().expect("sentinel starts");
    let connection = connection(&sentinel.url());
    connection.connect().await.unwrap();
    let () = connection.client().set("before", "1", None, None, false).await.unwrap();
    assert_eq!(
        sentinel.master().command(&["GET", "before"]).unwrap().as_text().as_deref(),
        Some("1"),
        "the client writes to the master the sentinels name"
    );
    let old_master = sentinel.master().port();

    let (sentinel, took) =
        tokio::task::spawn_blocking(move || sentinel.failover().map(|took| (sentinel, took))).await.unwrap().unwrap();
    assert_ne!(sentinel.master().port(), old_master);
    eprintln!("failover took {took:?}");

    let started = Instant::now();
    loop {
        match connection.client().set::<(), _, _>("after", "2", None, None, false).await {
            Ok(()) => break,
            Err(error) => assert!(started.elapsed() < RECOVERY, "no write within {RECOVERY:?}: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("writes resumed {:?} after the failover", started.elapsed());
    assert_eq!(sentinel.master().command(&["GET", "after"]).unwrap().as_text().as_deref(), Some("2"));
    // The replica had the write made before the failover.
    let before: Option<String> = connection.client().get("before").await.unwrap();
    assert_eq!(before.as_deref(), Some("1"));
    connection.close().await;
}

#[tokio::test]
async fn the_path_may_name_the_service() {
    let sentinel = tokio::task::spawn_blocking(RedisSentinel::start).await.unwrap().expect("sentinel starts");
    let ports = sentinel.sentinel_ports();
    let url =
        format!("redis-sentinel://127.0.0.1:{}/{}?node=127.0.0.1:{}", ports[0], sentinel.service_name(), ports[1]);
    let connection = connection(&url);
    connection.connect().await.unwrap();
    let () = connection.client().set("k", "v", None, None, false).await.unwrap();
    assert_eq!(sentinel.master().command(&["GET", "k"]).unwrap().as_text().as_deref(), Some("v"));
    connection.close().await;
}
