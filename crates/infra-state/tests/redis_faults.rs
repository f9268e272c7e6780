//! Redis killed, paused or unreachable: calls fail with typed errors within the timeout, never
//! hang, and the same store works again once Redis is back.

mod support;

use std::time::{Duration, Instant};

use infra_state::{StateError, StateStoreExt, StateValue};
use infra_testkit::RedisServer;
use support::{Fixture, start_redis};

const TIMEOUT: Duration = Duration::from_millis(500);
/// Generous: a failing call must end near TIMEOUT; this only catches hangs.
const NO_HANG: Duration = Duration::from_secs(5);

fn is_unreachable(error: &StateError) -> bool {
    matches!(error, StateError::Timeout { .. } | StateError::Connection { .. })
}

async fn until_ok<T>(mut attempt: impl AsyncFnMut() -> Result<T, StateError>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) if Instant::now() < deadline => assert!(is_unreachable(&error), "{error}"),
            Err(error) => panic!("never recovered: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_fails_within_the_timeout_and_recovers_without_a_new_store() {
    let mut server = start_redis();
    let f = Fixture::redis_with(&server, "faults", TIMEOUT);
    let store = &f.store;
    store.set_json("k", &1, None).await.unwrap();

    server.kill().unwrap();
    for attempt in 0..3 {
        let started = Instant::now();
        let result = tokio::time::timeout(NO_HANG, store.get("k")).await.expect("a call never hangs");
        let error = result.unwrap_err();
        assert!(is_unreachable(&error), "attempt {attempt}: {error}");
        let result = tokio::time::timeout(NO_HANG, store.incr("n", 1)).await.expect("a call never hangs");
        assert!(is_unreachable(&result.unwrap_err()));
        assert!(started.elapsed() < NO_HANG);
    }

    server.restart().unwrap();
    until_ok(async || store.set_json("k", &2, None).await).await;
    assert_eq!(store.get_json::<i32>("k").await.unwrap(), Some(2));
    assert_eq!(store.incr("n", 5).await.unwrap(), 5, "the restarted server starts empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_times_out_and_answers_again_when_thawed() {
    let mut server = start_redis();
    let f = Fixture::redis_with(&server, "frozen", TIMEOUT);
    f.store.set_json("k", &1, None).await.unwrap();
    server.pause().unwrap();
    let started = Instant::now();
    let error = f.store.get("k").await.unwrap_err();
    assert!(matches!(error, StateError::Timeout { operation: "get", .. }), "{error}");
    assert_eq!(error.to_string(), "get `k` timed out after 500ms");
    assert!(started.elapsed() < NO_HANG);
    server.resume().unwrap();
    assert_eq!(until_ok(async || f.store.get_json::<i32>("k").await).await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_use_with_redis_down_fails_then_connects_once_it_is_up() {
    let mut server = start_redis();
    let f = Fixture::redis_with(&server, "lazy", TIMEOUT);
    server.kill().unwrap();
    let error = f.store.get("k").await.unwrap_err();
    assert!(is_unreachable(&error), "{error}");
    server.restart().unwrap();
    until_ok(async || f.store.set("k", StateValue::json(&7).unwrap(), None).await).await;
    assert_eq!(f.store.get_json::<i32>("k").await.unwrap(), Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_connects_before_the_first_call() {
    let server = start_redis();
    let before = server.clients().unwrap();
    let f = Fixture::redis_with(&server, "lazy", TIMEOUT);
    assert_eq!(server.clients().unwrap(), before, "building the store opens no connection");
    f.store.exists("k").await.unwrap();
    assert_eq!(server.clients().unwrap(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_typed_error_that_never_shows_the_password() {
    let server = RedisServer::builder().password("right-password").start().unwrap();
    let url = infra_config::RedisUrl::parse(&server.url_with("default", "wrong-password")).unwrap();
    let store = infra_state::redis::RedisStore::with_url(&url, "auth", TIMEOUT, TIMEOUT).unwrap();
    let error = store.get("k").await.unwrap_err();
    let rendered = format!("{error} / {error:?} / {store:?}");
    assert!(!rendered.contains("wrong-password"), "{rendered}");
    assert!(matches!(error, StateError::Connection { .. }), "{error}");
    assert_eq!(error.to_string(), format!("cannot reach redis at redis://default:***@127.0.0.1:{}", server.port()));

    let url = infra_config::RedisUrl::parse(&server.url()).unwrap();
    let store = infra_state::redis::RedisStore::with_url(&url, "auth", TIMEOUT, TIMEOUT).unwrap();
    store.set("k", StateValue::json(&1).unwrap(), None).await.unwrap();
}
