//! Bad input for the state store (listed in docs/reliability.md, "Bad input"): values over the
//! limit, keys with odd bytes, and what foreign clients leave under the namespace (text that is
//! not JSON, bytes that are not UTF-8, lists, sets, sorted sets, streams). Each is a typed
//! error or reads as documented, and the store keeps working.
#![cfg(all(feature = "memory", feature = "redis"))]

use std::{sync::Arc, time::Duration};

use infra_config::RedisUrl;
use infra_state::{
    Expected, MAX_VALUE_BYTES, Number, StateError, StateStore, StateStoreExt, StateValue, memory::MemoryStore,
    redis::RedisStore,
};
use infra_testkit::{RedisServer, Reply};

const TIMEOUT: Duration = Duration::from_secs(5);

fn redis(server: &RedisServer) -> RedisStore {
    RedisStore::with_url(&RedisUrl::parse(&server.url()).unwrap(), "ns", TIMEOUT, TIMEOUT).unwrap()
}

fn json<T: serde::Serialize>(value: &T) -> StateValue {
    StateValue::json(value).unwrap()
}

fn is_wrong_type(error: &StateError) -> bool {
    matches!(error, StateError::Backend { .. })
        && std::error::Error::source(error).is_some_and(|source| source.to_string().contains("WRONGTYPE"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_over_512_mib_is_refused_naming_its_size_on_both_backends() {
    let server = RedisServer::start().expect("redis-server must be installed");
    // A JSON string one byte over the limit (built by copying, parsed 8 bytes at a time).
    let mut text = "x".repeat(MAX_VALUE_BYTES - 1);
    text.insert(0, '"');
    text.push('"');
    let big = StateValue::parse(&text).unwrap();
    drop(text);
    let expected = format!(
        "the value for `big` has {} bytes, more than the limit of {MAX_VALUE_BYTES} bytes",
        MAX_VALUE_BYTES + 1
    );

    let stores: [Arc<dyn StateStore>; 2] = [Arc::new(MemoryStore::new("ns")), Arc::new(redis(&server))];
    for store in stores {
        let too_large = |result: Result<(), StateError>| match result {
            Err(error @ StateError::ValueTooLarge { .. }) => {
                assert_eq!(error.to_string(), expected, "{}", store.backend());
                assert!(!error.is_transient() && !error.may_have_been_applied());
            }
            other => panic!("{}: expected ValueTooLarge, got {other:?}", store.backend()),
        };
        too_large(store.set("big", big.clone(), None).await);
        too_large(store.set("big", big.clone(), Some(Duration::from_secs(9))).await);
        too_large(store.set_if_not_exists("big", big.clone(), None).await.map(drop));
        too_large(store.compare_and_swap("big", Expected::Absent, big.clone(), None).await.map(drop));
        // One oversized entry refuses the whole batch: nothing of it is written.
        too_large(store.set_many(&[("small", json(&1)), ("big", big.clone())], None).await);
        assert_eq!(store.get_many(&["small", "big"]).await.unwrap(), [None, None], "{}", store.backend());
        store.set("small", json(&2), None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_over_the_servers_own_limit_is_a_backend_error_and_the_store_carries_on() {
    // A server configured below Redis's default limit refuses longer arguments itself.
    let server = RedisServer::builder().args(["--proto-max-bulk-len", "1mb"]).start().unwrap();
    let store = redis(&server);
    let big = json(&"x".repeat(2 << 20));
    let error = store.set("big", big.clone(), None).await.unwrap_err();
    assert!(matches!(error, StateError::Backend { operation: "set", .. }), "{error:?}");
    let reason = std::error::Error::source(&error).unwrap().to_string();
    assert!(reason.contains("invalid bulk length"), "{reason}");
    store.set("after", json(&1), None).await.unwrap();
    // In a transaction Redis drops the connection instead: a connection error, then the store
    // reconnects by itself.
    let error = store.set_many(&[("a", json(&1)), ("big", big)], None).await.unwrap_err();
    assert!(matches!(error, StateError::Connection { .. } | StateError::Backend { .. }), "{error:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.get("after").await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the store did not reconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.get_many(&["a", "after"]).await.unwrap(), [None, Some(json(&1))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_nul_bytes_control_characters_and_a_megabyte_round_trip_on_both_backends() {
    let server = RedisServer::start().unwrap();
    let stores: [Arc<dyn StateStore>; 2] = [Arc::new(MemoryStore::new("ns")), Arc::new(redis(&server))];
    let keys = [
        "a\0b".to_owned(),
        "\0".to_owned(),
        "\r\n\t\u{7f}\u{1b}[31m".to_owned(),
        "\u{feff}\u{200b}".to_owned(),
        "k".repeat(1 << 20),
    ];
    for store in stores {
        for (i, key) in keys.iter().enumerate() {
            store.set(key, json(&i), None).await.unwrap();
            assert_eq!(store.get_json::<usize>(key).await.unwrap(), Some(i), "{}: {key:?}", store.backend());
            assert_eq!(store.incr(&format!("{key}:n"), 1).await.unwrap(), 1);
        }
        let listed = store.keys("").await.unwrap();
        assert_eq!(listed.len(), keys.len() * 2, "{}", store.backend());
        assert!(listed.contains(&"a\0b".to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_text_that_is_not_json_reads_raw_and_fails_typed_decoding() {
    let server = RedisServer::start().unwrap();
    server.command(&["SET", "ns:text", "not json {"]).unwrap();
    let store = redis(&server);
    assert_eq!(store.get("text").await.unwrap().unwrap().as_str(), "not json {");
    let error = store.get_json::<i64>("text").await.unwrap_err();
    assert!(matches!(error, StateError::Decode { type_name: "i64", .. }), "{error:?}");
    let error = store.update_json("text", None, |old: Option<i64>| old.unwrap_or(0) + 1).await.unwrap_err();
    assert!(matches!(error, StateError::Decode { .. }), "{error:?}");
    let error = store.incr("text", 1).await.unwrap_err();
    assert!(matches!(error, StateError::NotAnInteger { .. }), "{error:?}");
    let error = store.incr_float("text", 1.5).await.unwrap_err();
    assert!(matches!(error, StateError::NotANumber { .. }), "{error:?}");
    // Overwriting it is allowed.
    store.set_json("text", &1, None).await.unwrap();
    assert_eq!(store.get_json::<i64>("text").await.unwrap(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_bytes_that_are_not_utf8_are_a_typed_error_on_every_read() {
    let server = RedisServer::start().unwrap();
    assert_eq!(
        server.command_bytes(&[b"SET", b"ns:bin", &[0xff, 0xfe, 0x00, 0x80]]).unwrap(),
        Reply::Status("OK".to_owned())
    );
    let store = redis(&server);
    let not_text =
        |error: StateError| assert!(matches!(&error, StateError::NotText { key } if key == "bin"), "{error:?}");
    not_text(store.get("bin").await.unwrap_err());
    not_text(store.get_many(&["bin"]).await.unwrap_err());
    not_text(store.get_versioned("bin").await.unwrap_err());
    not_text(store.get_json::<i64>("bin").await.unwrap_err());
    not_text(store.update_json("bin", None, |_: Option<i64>| 1).await.unwrap_err());
    assert!(store.exists("bin").await.unwrap());
    assert_eq!(store.keys("").await.unwrap(), ["bin"]);
    assert!(store.delete("bin").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_sets_sorted_sets_and_streams_read_as_absent_and_refuse_updates_with_wrongtype() {
    let server = RedisServer::start().unwrap();
    let store = redis(&server);
    let foreign: [(&str, &[&str]); 4] = [
        ("list", &["RPUSH", "ns:list", "x"]),
        ("set", &["SADD", "ns:set", "x"]),
        ("zset", &["ZADD", "ns:zset", "1", "x"]),
        ("stream", &["XADD", "ns:stream", "*", "f", "v"]),
    ];
    for (key, command) in foreign {
        server.command(command).unwrap();
        assert_eq!(store.get(key).await.unwrap(), None, "{key}");
        assert_eq!(store.get_versioned(key).await.unwrap(), None, "{key}");
        assert_eq!(store.get_many(&[key]).await.unwrap(), [None], "{key}");
        assert!(store.exists(key).await.unwrap(), "{key}");
        assert!(!store.set_if_not_exists(key, json(&1), None).await.unwrap(), "{key}: it exists");
        assert!(is_wrong_type(&store.increment(key, Number::Int(1)).await.unwrap_err()), "{key}");
        assert!(is_wrong_type(&store.increment(key, Number::Float(1.5)).await.unwrap_err()), "{key}");
        let cas = store.compare_and_swap(key, Expected::Absent, json(&1), None).await.unwrap_err();
        assert!(is_wrong_type(&cas), "{key}: {cas:?}");
        let cad = store.compare_and_delete(key, Expected::Value(json(&1))).await.unwrap_err();
        assert!(is_wrong_type(&cad), "{key}: {cad:?}");
        store.set(key, json(&7), None).await.unwrap();
        assert_eq!(store.get_json::<i64>(key).await.unwrap(), Some(7), "{key}: overwritten by set");
    }
}
