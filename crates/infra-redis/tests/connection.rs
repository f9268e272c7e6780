//! The connection discipline against real servers: connect, reject, close, drop.

use std::time::{Duration, Instant};

use fred::prelude::KeysInterface;
use infra_config::RedisUrl;
use infra_redis::{ClientOptions, Connection, RedisError, fred};
use infra_testkit::RedisServer;

const TIMEOUT: Duration = Duration::from_secs(2);

fn connection(url: &str) -> Connection {
    let url = RedisUrl::parse(url).unwrap();
    let options = ClientOptions::new(TIMEOUT, TIMEOUT);
    Connection::new(infra_redis::client(&url, &options).unwrap(), &url, TIMEOUT)
}

#[tokio::test]
async fn connects_once_then_close_quits_and_refuses_to_reconnect() {
    let server = RedisServer::start().unwrap();
    let connection = connection(&server.url());
    assert!(!connection.is_ready());
    connection.connect().await.unwrap();
    assert!(connection.is_ready());
    let () = connection.client().set("k", "v", None, None, false).await.unwrap();
    assert_eq!(server.clients().unwrap(), 1);

    connection.close().await;
    assert!(connection.is_closed() && !connection.is_ready());
    assert!(
        server.wait_for_clients(0, Duration::from_secs(5)).unwrap(),
        "clients still connected: {}",
        server.clients().unwrap()
    );
    let error = connection.connect().await.unwrap_err();
    assert!(matches!(error, RedisError::Closed { .. }), "{error:?}");
    assert_eq!(error.to_string(), format!("the redis client for `{}` was closed", server.url()));
    connection.close().await;
}

#[tokio::test]
async fn a_wrong_password_says_what_the_server_said_without_the_password() {
    let server = RedisServer::builder().password("right-one").start().unwrap();
    let connection = connection(&server.url_with("default", "hunter2"));
    let error = connection.connect().await.unwrap_err();
    let RedisError::Connect { url, source } = &error else { panic!("expected a connect error, got {error:?}") };
    assert_eq!(url, &format!("redis://default:***@127.0.0.1:{}", server.port()));
    assert_eq!(source.kind(), infra_redis::FailureKind::Auth, "{source}");
    let text = format!("{error} {error:?} {source}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn a_closed_port_fails_within_the_connect_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let connection = connection(&format!("redis://127.0.0.1:{port}"));
    let started = Instant::now();
    let error = connection.connect().await.unwrap_err();
    assert!(started.elapsed() < TIMEOUT + Duration::from_secs(1), "took {:?}", started.elapsed());
    assert!(error.to_string().contains(&format!("redis://127.0.0.1:{port}")), "{error}");
}

#[test]
fn dropping_outside_the_runtime_still_disconnects() {
    let server = RedisServer::start().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let connection = runtime.block_on(async {
        let connection = connection(&server.url());
        connection.connect().await.unwrap();
        connection
    });
    assert_eq!(server.clients().unwrap(), 1);
    // This thread is in no runtime: the drop reaches the one it connected from.
    drop(connection);
    assert!(
        server.wait_for_clients(0, Duration::from_secs(5)).unwrap(),
        "clients still connected: {}",
        server.clients().unwrap()
    );
    drop(runtime);
}

#[test]
fn dropping_after_the_runtime_is_gone_does_not_panic() {
    let server = RedisServer::start().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let connection = runtime.block_on(async {
        let connection = connection(&server.url());
        connection.connect().await.unwrap();
        connection
    });
    drop(runtime);
    drop(connection);
    assert!(
        server.wait_for_clients(0, Duration::from_secs(5)).unwrap(),
        "clients still connected: {}",
        server.clients().unwrap()
    );
}

#[test]
fn debug_shows_the_redacted_url_only() {
    let connection = connection("redis://bot:hunter2@127.0.0.1:1");
    let debug = format!("{connection:?}");
    assert!(debug.contains("redis://bot:***@127.0.0.1:1") && !debug.contains("hunter2"), "{debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_counts_one_reconnect_and_the_first_connection_none() {
    let mut server = RedisServer::start().unwrap();
    let counter = std::sync::Arc::new(AtomicCounter::default());
    let connection =
        connection(&server.url()).count_reconnects(metrics::Counter::from_arc(std::sync::Arc::clone(&counter)));
    connection.connect().await.unwrap();
    let () = connection.client().set("k", "v", None, None, false).await.unwrap();
    assert_eq!(connection.reconnects(), 0);

    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // fred announces the new connection from its own task: wait for the count, bounded.
    while connection.reconnects() == 0 {
        assert!(Instant::now() < deadline, "no reconnect counted");
        let _ = connection.client().set::<(), _, _>("k", "v", None, None, false).await;
    }
    assert_eq!(connection.reconnects(), 1);
    assert_eq!(counter.0.load(std::sync::atomic::Ordering::Relaxed), 1, "the metrics counter saw it too");
    connection.close().await;
}

/// A bare `metrics` counter, to see what the connection adds to it without a recorder.
#[derive(Default)]
struct AtomicCounter(std::sync::atomic::AtomicU64);

impl metrics::CounterFn for AtomicCounter {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, std::sync::atomic::Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, std::sync::atomic::Ordering::Relaxed);
    }
}
