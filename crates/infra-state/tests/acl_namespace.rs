//! A Redis user limited to its namespace (`~ns:*`, `&ns:*`) can do everything the store does:
//! every `StateStore` and `StateStoreExt` operation, locks, coalesced calls through
//! `dyn StateStore`. A NOPERM on any of them would mean a key outside the namespace. A store
//! under another namespace is refused (the ACL really is enforced), and a wrong password is a
//! typed error that shows the password nowhere.
#![cfg(feature = "redis")]

use std::{error::Error as _, sync::Arc, time::Duration};

use futures::TryStreamExt;
use infra_config::RedisUrl;
use infra_state::{
    CasOutcome, Expected, Number, StateError, StateStore, StateStoreExt, StateValue, Ttl, redis::RedisStore,
};
use infra_testkit::{RedisServer, Reply};

const TIMEOUT: Duration = Duration::from_secs(5);
const PASSWORD: &str = "Zq9-bot-secret";

/// A server whose first user (`admin`, the kit's own probes) may do anything and whose `bot`
/// may touch only `ns:*` keys and channels.
fn server() -> RedisServer {
    let server = RedisServer::builder().acl_user("admin", "admin-pw").start().expect("redis-server must be installed");
    server.add_namespace_user("bot", PASSWORD, "ns").unwrap();
    server
}

fn store(server: &RedisServer, namespace: &str, password: &str) -> RedisStore {
    let url = RedisUrl::parse(&server.url_with("bot", password)).unwrap();
    RedisStore::with_url(&url, namespace, TIMEOUT, TIMEOUT).unwrap()
}

fn json(value: serde_json::Value) -> StateValue {
    StateValue::json(&value).unwrap()
}

/// Every key in the server, as the admin sees it.
fn all_keys(server: &RedisServer) -> Vec<String> {
    match server.command(&["KEYS", "*"]).unwrap() {
        Reply::Array(Some(items)) => items.iter().filter_map(Reply::as_text).collect(),
        other => panic!("unexpected KEYS reply {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_limited_to_its_namespace_can_do_every_state_operation() {
    let server = server();
    let store = store(&server, "ns", PASSWORD);
    store.connect().await.unwrap();
    store.ping().await.unwrap();

    // The trait's operations.
    store.set("a", json(serde_json::json!({"qty": 1})), None).await.unwrap();
    assert_eq!(store.get("a").await.unwrap().unwrap().as_str(), r#"{"qty":1}"#);
    assert!(store.exists("a").await.unwrap());
    assert_eq!(store.ttl("a").await.unwrap(), Ttl::Persistent);
    assert!(store.expire("a", Duration::from_secs(60)).await.unwrap());
    assert!(matches!(store.ttl("a").await.unwrap(), Ttl::Expires(_)));
    assert!(store.set_if_not_exists("b", json(serde_json::json!(1)), Some(Duration::from_secs(60))).await.unwrap());
    assert!(!store.set_if_not_exists("b", json(serde_json::json!(2)), None).await.unwrap());
    assert_eq!(store.increment("n", Number::Int(2)).await.unwrap(), Number::Int(2));
    assert_eq!(store.increment("f", Number::Float(0.5)).await.unwrap(), Number::Float(0.5));
    store.set_many(&[("m1", json(serde_json::json!(1))), ("m2", json(serde_json::json!(2)))], None).await.unwrap();
    store.set_many(&[("m3", json(serde_json::json!(3)))], Some(Duration::from_secs(60))).await.unwrap();
    let many = store.get_many(&["m1", "m2", "m3", "missing"]).await.unwrap();
    assert_eq!(many.iter().filter(|v| v.is_some()).count(), 3);
    let scanned: Vec<String> = StateStore::scan(&store, "m").try_collect().await.unwrap();
    assert_eq!(scanned.len(), 3, "{scanned:?}");
    let versioned = store.get_versioned("m1").await.unwrap().unwrap();
    let swapped =
        store.compare_and_swap("m1", Expected::Version(versioned.version), json(serde_json::json!(10)), None).await;
    assert!(swapped.unwrap().is_swapped());
    let conflict = store.compare_and_swap("m1", Expected::Absent, json(serde_json::json!(11)), None).await.unwrap();
    assert!(matches!(conflict, CasOutcome::Conflict(Some(_))));
    assert!(
        store.compare_and_swap("new", Expected::Absent, json(serde_json::json!(1)), None).await.unwrap().is_swapped()
    );
    assert!(store.compare_and_delete("m1", Expected::Value(json(serde_json::json!(10)))).await.unwrap());
    assert!(store.delete("m2").await.unwrap());

    // The extension trait's operations.
    store.set_json("typed", &vec![1, 2, 3], None).await.unwrap();
    assert_eq!(store.get_json::<Vec<i32>>("typed").await.unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(store.incr("count", 5).await.unwrap(), 5);
    assert!((store.incr_float("pnl", -1.25).await.unwrap() + 1.25).abs() < f64::EPSILON);
    assert_eq!(store.keys("m").await.unwrap(), ["m3"]);
    let updated = store.update_json("pos", None, |old: Option<i64>| old.unwrap_or(0) + 7).await.unwrap();
    assert_eq!(updated, 7);
    store.set_many_json(&[("j1", 1), ("j2", 2)], None).await.unwrap();
    assert_eq!(store.get_many_json::<i64, _>(&["j1", "j2"]).await.unwrap(), [Some(1), Some(2)]);

    // Locks (set-if-absent, extend and release by compare-and-swap scripts).
    let lock = store.lock("job", Duration::from_secs(10)).await.unwrap().expect("free lock");
    assert!(store.lock("job", Duration::from_secs(10)).await.unwrap().is_none());
    assert!(lock.extend(Duration::from_secs(20)).await.unwrap());
    assert!(lock.release().await.unwrap());

    // Through `dyn StateStore`, with enough calls in flight to be coalesced into MGET / MSET.
    let shared: Arc<dyn StateStore> = Arc::new(store.clone());
    let calls = (0..200).map(|i| {
        let shared = shared.clone();
        tokio::spawn(async move {
            let key = format!("c{}", i % 20);
            shared.set(&key, StateValue::json(&i).unwrap(), None).await?;
            shared.get(&key).await.map(|value| value.is_some())
        })
    });
    for call in futures::future::join_all(calls).await {
        assert!(call.unwrap().unwrap());
    }

    store.close().await.unwrap();
    let outside: Vec<String> = all_keys(&server).into_iter().filter(|key| !key.starts_with("ns:")).collect();
    assert!(outside.is_empty(), "keys outside the namespace: {outside:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_outside_the_namespace_are_refused_with_a_typed_error() {
    let server = server();
    let store = store(&server, "other", PASSWORD);
    let error = store.set("a", json(serde_json::json!(1)), None).await.unwrap_err();
    let StateError::Backend { operation, key, source, .. } = &error else { panic!("expected a refusal: {error:?}") };
    assert_eq!((*operation, key.as_str()), ("set", "a"));
    assert!(source.to_string().contains("NOPERM"), "{source}");
    assert!(!format!("{error} {error:?}").contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_for_the_user_is_a_typed_auth_error_without_the_password() {
    let server = server();
    let store = store(&server, "ns", "Zq9-wrong-guess");
    let error = store.get("a").await.unwrap_err();
    let StateError::Connection { url, source, .. } = &error else { panic!("expected a connection error: {error:?}") };
    assert_eq!(url, &format!("redis://bot:***@127.0.0.1:{}", server.port()));
    let failure = source.downcast_ref::<infra_redis::Failure>().expect("a redacted failure");
    assert_eq!(failure.kind(), infra_redis::FailureKind::Auth, "{failure}");

    let mut rendered = format!("{error} {error:?} {store:?}");
    let mut cause = error.source();
    while let Some(next) = cause {
        rendered.push_str(&format!(" {next} {next:?}"));
        cause = next.source();
    }
    assert!(!rendered.contains("Zq9"), "{rendered}");
}
