//! The contract every backend must meet. Each function is one test, run on every backend.

use std::{collections::HashSet, sync::Arc, time::Duration};

use futures::TryStreamExt;
use infra_state::{
    CasOutcome, Expected, Number, StateError, StateStore, StateStoreExt, StateValue, Ttl, UpdateOptions,
};
use serde::{Deserialize, Serialize};

use super::Fixture;

fn json(text: &str) -> StateValue {
    StateValue::parse(text).expect("valid JSON in the test")
}

fn text(value: Option<StateValue>) -> Option<String> {
    value.map(|v| v.as_str().to_owned())
}

pub async fn basics(f: &Fixture) {
    let s = &f.store;
    assert_eq!(s.get("k").await.unwrap(), None);
    assert!(!s.exists("k").await.unwrap());
    s.set("k", json(r#"{"qty":3}"#), None).await.unwrap();
    assert_eq!(text(s.get("k").await.unwrap()).as_deref(), Some(r#"{"qty":3}"#));
    assert!(s.exists("k").await.unwrap());
    s.set("k", json("[1,2]"), None).await.unwrap();
    assert_eq!(text(s.get("k").await.unwrap()).as_deref(), Some("[1,2]"), "overwrite");
    assert!(s.delete("k").await.unwrap(), "delete says the key existed");
    assert!(!s.delete("k").await.unwrap(), "and that it no longer does");
    assert_eq!(s.get("k").await.unwrap(), None);
}

pub async fn ttl_and_expiry(f: &Fixture) {
    let s = &f.store;
    s.set("short", json("1"), Some(Duration::from_millis(300))).await.unwrap();
    s.set("forever", json("2"), None).await.unwrap();
    match s.ttl("short").await.unwrap() {
        Ttl::Expires(left) => {
            assert!(left <= Duration::from_millis(300) && left > Duration::from_millis(100), "{left:?}")
        }
        other => panic!("expected a ttl, got {other:?}"),
    }
    assert_eq!(s.ttl("forever").await.unwrap(), Ttl::Persistent);
    assert_eq!(s.ttl("missing").await.unwrap(), Ttl::Missing);

    f.advance(Duration::from_millis(450)).await;
    assert_eq!(s.get("short").await.unwrap(), None, "expired keys are never returned");
    assert!(!s.exists("short").await.unwrap());
    assert_eq!(s.ttl("short").await.unwrap(), Ttl::Missing);
    assert!(!s.delete("short").await.unwrap());
    assert_eq!(text(s.get("forever").await.unwrap()).as_deref(), Some("2"));

    // SET without a TTL removes an existing one.
    s.set("k", json("1"), Some(Duration::from_secs(60))).await.unwrap();
    s.set("k", json("2"), None).await.unwrap();
    assert_eq!(s.ttl("k").await.unwrap(), Ttl::Persistent);

    assert!(!s.expire("missing", Duration::from_secs(1)).await.unwrap());
    assert!(s.expire("k", Duration::from_millis(300)).await.unwrap());
    assert!(matches!(s.ttl("k").await.unwrap(), Ttl::Expires(_)));
    f.advance(Duration::from_millis(450)).await;
    assert_eq!(s.get("k").await.unwrap(), None, "expire() makes the key expire");
}

pub async fn invalid_ttls_are_rejected_the_same_way(f: &Fixture) {
    let s = &f.store;
    for ttl in [Duration::ZERO, Duration::from_micros(999)] {
        let err = s.set("k", json("1"), Some(ttl)).await.unwrap_err();
        assert!(matches!(err, StateError::InvalidTtl { .. }), "{err}");
        let err = s.set_if_not_exists("k", json("1"), Some(ttl)).await.unwrap_err();
        assert!(matches!(err, StateError::InvalidTtl { .. }), "{err}");
        let err = s.expire("k", ttl).await.unwrap_err();
        assert!(matches!(err, StateError::InvalidTtl { .. }), "{err}");
    }
    assert_eq!(
        s.set("k", json("1"), Some(Duration::ZERO)).await.unwrap_err().to_string(),
        "invalid ttl 0ns for key `k`: a ttl must be at least 1 ms"
    );
    assert_eq!(s.get("k").await.unwrap(), None, "a rejected write writes nothing");
    // Past what Redis accepts (its clock plus the TTL must fit in 63 bits of milliseconds): the
    // same typed error on every backend, whatever the operation.
    s.set("held", json("1"), None).await.unwrap();
    for ttl in [Duration::MAX, Duration::from_millis(i64::MAX as u64)] {
        let errors = [
            s.set("k", json("1"), Some(ttl)).await.unwrap_err(),
            s.set_if_not_exists("k", json("1"), Some(ttl)).await.unwrap_err(),
            s.expire("held", ttl).await.unwrap_err(),
            s.set_many(&[("k", json("1"))], Some(ttl)).await.unwrap_err(),
            s.compare_and_swap("k", Expected::Absent, json("1"), Some(ttl)).await.unwrap_err(),
        ];
        for err in errors {
            assert!(matches!(err, StateError::InvalidTtl { .. }), "{ttl:?}: {err}");
            assert!(err.to_string().contains("a ttl must be at most"), "{err}");
        }
    }
    assert_eq!(s.get("k").await.unwrap(), None, "a rejected write writes nothing");
    assert_eq!(s.ttl("held").await.unwrap(), Ttl::Persistent);
    // The longest TTL accepted works on every backend.
    let longest = Duration::from_millis(i64::MAX as u64 / 2);
    s.set("k", json("1"), Some(longest)).await.unwrap();
    assert!(s.expire("held", longest).await.unwrap());
    s.delete("k").await.unwrap();
    // Fractions of a millisecond round up, never down.
    s.set("k", json("1"), Some(Duration::from_micros(1500))).await.unwrap();
    match s.ttl("k").await.unwrap() {
        Ttl::Expires(left) => assert!(left <= Duration::from_millis(2)),
        Ttl::Missing => {} // a slow machine may already have let it expire
        Ttl::Persistent => panic!("a ttl was set"),
    }
}

pub async fn set_if_not_exists(f: &Fixture) {
    let s = &f.store;
    assert!(s.set_if_not_exists("lock", json(r#""a""#), Some(Duration::from_millis(300))).await.unwrap());
    assert!(!s.set_if_not_exists("lock", json(r#""b""#), None).await.unwrap());
    assert_eq!(text(s.get("lock").await.unwrap()).as_deref(), Some(r#""a""#), "the loser wrote nothing");
    f.advance(Duration::from_millis(450)).await;
    assert!(s.set_if_not_exists("lock", json(r#""c""#), None).await.unwrap(), "free again once expired");
    assert_eq!(s.ttl("lock").await.unwrap(), Ttl::Persistent);
}

pub async fn one_winner_among_100_concurrent_set_if_not_exists(f: &Fixture) {
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = Arc::clone(&f.store);
            tokio::spawn(async move {
                store.set_if_not_exists("contended", StateValue::json(&i).unwrap(), Some(Duration::from_secs(30))).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        if task.await.unwrap().unwrap() {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(f.store.get_json::<usize>("contended").await.unwrap(), Some(winners[0]));
}

/// 300 tasks at once, each writing its own key then reading every key written so far by
/// anyone, some with a TTL: enough calls in flight that Redis coalesces plain gets and sets
/// into `MGET`/`MSET` (see the Redis backend), which must not change any answer.
pub async fn many_concurrent_gets_and_sets(f: &Fixture) {
    let tasks: Vec<_> = (0..300_u32)
        .map(|i| {
            let store = Arc::clone(&f.store);
            tokio::spawn(async move {
                let key = format!("many:{i}");
                let ttl = (i % 10 == 0).then_some(Duration::from_secs(60));
                store.set(&key, StateValue::json(&i).unwrap(), ttl).await.unwrap();
                // Read-your-writes, under load.
                assert_eq!(store.get_json::<u32>(&key).await.unwrap(), Some(i), "{key}");
                store.set(&key, StateValue::json(&(i + 1000)).unwrap(), None).await.unwrap();
                store.get(&format!("many:{}", (i + 1) % 300)).await.unwrap().map(|v| v.decode::<u32>().unwrap())
            })
        })
        .collect();
    for task in tasks {
        let seen = task.await.unwrap();
        assert!(seen.is_none_or(|n| n < 300 || (1000..1300).contains(&n)), "{seen:?}");
    }
    for i in 0..300_u32 {
        let key = format!("many:{i}");
        assert_eq!(f.store.get_json::<u32>(&key).await.unwrap(), Some(i + 1000), "{key}");
        // The second, plain set removed the TTL of the first (SET semantics, MSET included).
        assert_eq!(f.store.ttl(&key).await.unwrap(), Ttl::Persistent, "{key}");
    }
}

pub async fn increments(f: &Fixture) {
    let s = &f.store;
    assert_eq!(s.increment("n", Number::Int(5)).await.unwrap(), Number::Int(5), "a missing key starts at 0");
    assert_eq!(s.incr("n", -7).await.unwrap(), -2);
    assert_eq!(text(s.get("n").await.unwrap()).as_deref(), Some("-2"), "stored as a plain JSON number");

    s.set("ttl", json("10"), Some(Duration::from_secs(60))).await.unwrap();
    assert_eq!(s.incr("ttl", 1).await.unwrap(), 11);
    assert!(matches!(s.ttl("ttl").await.unwrap(), Ttl::Expires(_)), "an increment keeps the TTL");

    assert_eq!(s.incr_float("n", 0.5).await.unwrap(), -1.5, "a float increment turns an integer into a float");
    assert_eq!(text(s.get("n").await.unwrap()).as_deref(), Some("-1.5"));
    let err = s.incr("n", 1).await.unwrap_err();
    assert!(matches!(err, StateError::NotAnInteger { .. }), "{err}");
    assert_eq!(err.to_string(), "cannot increment `n` by 1: its value is not an integer");

    assert_eq!(s.incr_float("f", 0.1).await.unwrap(), 0.1);
    assert_eq!(s.incr_float("f", 0.2).await.unwrap(), 0.1 + 0.2, "double precision, like Rust");
    assert_eq!(text(s.get("f").await.unwrap()).as_deref(), Some("0.30000000000000004"));
    assert_eq!(s.incr_float("g", 2.5).await.unwrap(), 2.5);
    assert_eq!(s.incr_float("g", 0.5).await.unwrap(), 3.0);
    assert_eq!(text(s.get("g").await.unwrap()).as_deref(), Some("3.0"), "an integral float stays a float");
    assert_eq!(s.get_json::<f64>("g").await.unwrap(), Some(3.0));

    s.set("word", json(r#""five""#), None).await.unwrap();
    let err = s.incr("word", 1).await.unwrap_err();
    assert!(matches!(err, StateError::NotAnInteger { .. }), "{err}");
    let err = s.incr_float("word", 1.0).await.unwrap_err();
    assert!(matches!(err, StateError::NotANumber { .. }), "{err}");
    assert_eq!(err.to_string(), "cannot increment `word` by 1: its value is not a number");
    assert_eq!(text(s.get("word").await.unwrap()).as_deref(), Some(r#""five""#), "a failed increment writes nothing");

    // Valid JSON that is not an integer as Redis reads one (`-0`): refused on every backend.
    s.set("negative-zero", StateValue::parse("-0").unwrap(), None).await.unwrap();
    let err = s.incr("negative-zero", 1).await.unwrap_err();
    assert!(matches!(err, StateError::NotAnInteger { .. }), "{err}");
    assert_eq!(text(s.get("negative-zero").await.unwrap()).as_deref(), Some("-0"));

    s.set("max", json(&i64::MAX.to_string()), None).await.unwrap();
    let err = s.incr("max", 1).await.unwrap_err();
    assert!(matches!(err, StateError::Overflow { .. }), "{err}");
    assert_eq!(s.incr("max", -1).await.unwrap(), i64::MAX - 1);
    s.set("huge", json("1e308"), None).await.unwrap();
    let err = s.incr_float("huge", 1e308).await.unwrap_err();
    assert!(matches!(err, StateError::Overflow { .. }), "{err}");

    // A failed increment of a missing (or expired) key creates nothing either.
    for by in [f64::INFINITY, f64::NAN] {
        let err = s.incr_float("absent", by).await.unwrap_err();
        assert!(matches!(err, StateError::Overflow { .. }), "{err}");
        assert!(!s.exists("absent").await.unwrap(), "a failed increment of {by} created the key");
    }
    s.set("expiring", json("1"), Some(Duration::from_millis(300))).await.unwrap();
    f.advance(Duration::from_millis(450)).await;
    assert!(s.incr_float("expiring", f64::INFINITY).await.is_err());
    assert_eq!(s.ttl("expiring").await.unwrap(), Ttl::Missing, "a failed increment revived an expired key");
}

pub async fn exact_total_after_1000_concurrent_increments(f: &Fixture) {
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let store = Arc::clone(&f.store);
            tokio::spawn(async move { store.incr("counter", if i % 2 == 0 { 3 } else { -1 }).await })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        seen.insert(task.await.unwrap().unwrap());
    }
    assert_eq!(f.store.incr("counter", 0).await.unwrap(), 500 * 3 - 500);
    let floats: Vec<_> = (0..100)
        .map(|_| {
            let store = Arc::clone(&f.store);
            tokio::spawn(async move { store.incr_float("float_counter", 0.25).await })
        })
        .collect();
    for task in floats {
        task.await.unwrap().unwrap();
    }
    assert_eq!(f.store.get_json::<f64>("float_counter").await.unwrap(), Some(25.0));
}

pub async fn bulk_operations(f: &Fixture) {
    let s = &f.store;
    s.set_many(&[("a", json("1")), ("b", json(r#""two""#)), ("c", json("null"))], None).await.unwrap();
    let values = s.get_many(&["a", "missing", "b", "c"]).await.unwrap();
    let values: Vec<Option<String>> = values.into_iter().map(text).collect();
    assert_eq!(values, [Some("1".into()), None, Some(r#""two""#.into()), Some("null".into())]);
    assert_eq!(s.get_many(&[]).await.unwrap(), Vec::new());
    s.set_many(&[], None).await.unwrap();

    s.set_many(&[("t1", json("1")), ("t2", json("2"))], Some(Duration::from_millis(300))).await.unwrap();
    assert!(matches!(s.ttl("t2").await.unwrap(), Ttl::Expires(_)));
    f.advance(Duration::from_millis(450)).await;
    assert_eq!(
        s.get_many(&["t1", "t2", "a"]).await.unwrap().into_iter().map(text).collect::<Vec<_>>(),
        [None, None, Some("1".into())]
    );

    let err = s.set_many(&[("ok", json("1")), ("", json("2"))], None).await.unwrap_err();
    assert!(matches!(err, StateError::InvalidKey { .. }), "{err}");
    assert_eq!(s.get("ok").await.unwrap(), None, "a batch with a bad key writes nothing");
    let err = s.get_many(&["a", ""]).await.unwrap_err();
    assert!(matches!(err, StateError::InvalidKey { .. }), "{err}");
}

pub async fn list_keys_by_prefix(f: &Fixture) {
    let s = &f.store;
    for key in ["prices:BTC", "prices:ETH", "positions:BTC", "a*1", "ab", "a[x]", "p"] {
        s.set(key, json("0"), None).await.unwrap();
    }
    s.set("prices:OLD", json("0"), Some(Duration::from_millis(300))).await.unwrap();
    assert_eq!(s.keys("prices:").await.unwrap(), ["prices:BTC", "prices:ETH", "prices:OLD"]);
    f.advance(Duration::from_millis(450)).await;
    assert_eq!(s.keys("prices:").await.unwrap(), ["prices:BTC", "prices:ETH"], "expired keys are not listed");
    assert_eq!(s.keys("a*").await.unwrap(), ["a*1"], "glob characters in a prefix are literal");
    assert_eq!(s.keys("a[").await.unwrap(), ["a[x]"]);
    assert_eq!(s.keys("nothing").await.unwrap(), Vec::<String>::new());
    assert_eq!(s.keys("").await.unwrap(), ["a*1", "a[x]", "ab", "p", "positions:BTC", "prices:BTC", "prices:ETH"]);
    let streamed: Vec<String> = s.scan("pos").try_collect().await.unwrap();
    assert_eq!(streamed, ["positions:BTC"]);
}

pub async fn compare_and_swap(f: &Fixture) {
    let s = &f.store;
    let first = json(r#"{"state":"NORMAL"}"#);
    let CasOutcome::Swapped(v1) = s.compare_and_swap("mode", Expected::Absent, first.clone(), None).await.unwrap()
    else {
        panic!("absent on a missing key swaps")
    };
    assert_eq!(v1, first.version());
    let conflict = s.compare_and_swap("mode", Expected::Absent, json("0"), None).await.unwrap();
    let CasOutcome::Conflict(Some(current)) = conflict else { panic!("{conflict:?}") };
    assert_eq!((current.value.as_str(), &current.version), (first.as_str(), &v1));

    let halted = json(r#"{"state":"HALT"}"#);
    let outcome = s.compare_and_swap("mode", Expected::Value(json(r#"{"state":"ALERT"}"#)), halted.clone(), None);
    assert!(!outcome.await.unwrap().is_swapped(), "a wrong expected value conflicts");
    let outcome = s.compare_and_swap("mode", Expected::Value(first.clone()), halted.clone(), None).await.unwrap();
    assert_eq!(outcome, CasOutcome::Swapped(halted.version()));

    let read = s.get_versioned("mode").await.unwrap().expect("exists");
    assert_eq!(read.value, halted);
    let stale = s.compare_and_swap("mode", Expected::Version(v1), json("1"), None).await.unwrap();
    assert!(matches!(stale, CasOutcome::Conflict(Some(_))), "a stale version conflicts");
    let fresh = s
        .compare_and_swap("mode", Expected::Version(read.version), json("2"), Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert!(fresh.is_swapped());
    assert!(matches!(s.ttl("mode").await.unwrap(), Ttl::Expires(_)));
    f.advance(Duration::from_millis(450)).await;
    let gone = s.compare_and_swap("mode", Expected::Version(json("2").version()), json("3"), None).await.unwrap();
    assert_eq!(gone, CasOutcome::Conflict(None), "an expired key is absent");
    assert!(s.compare_and_swap("mode", Expected::Absent, json("3"), None).await.unwrap().is_swapped());
    assert_eq!(s.get_versioned("missing").await.unwrap(), None);
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Position {
    qty: i64,
    updates: u32,
}

pub async fn optimistic_updates_from_many_tasks_lose_nothing(f: &Fixture) {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = Arc::clone(&f.store);
            tokio::spawn(async move {
                // 50 writers on one key: more attempts than the default bound, so none gives up.
                let options = UpdateOptions::new().max_attempts(1_000);
                store
                    .update_json_with("position", options, |p: Option<Position>| {
                        let p = p.unwrap_or_default();
                        Position { qty: p.qty + 2, updates: p.updates + 1 }
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(f.store.get_json::<Position>("position").await.unwrap(), Some(Position { qty: 100, updates: 50 }));
}

pub async fn unicode_binary_looking_and_large_values(f: &Fixture) {
    let s = &f.store;
    let values = [
        "\"ünïcödé ✓ 日本語 עברית e\u{301} 🚀\"".to_owned(),
        serde_json::to_string("\u{0}\u{1}\u{7f}\u{ff}\\/\"\r\n\t").unwrap(),
        r#"{"nested":{"a":[true,false,null,1.5e-7,-0]},"empty":{}}"#.to_owned(),
        serde_json::to_string(&"x".repeat(1 << 20)).unwrap(),
    ];
    for (i, value) in values.iter().enumerate() {
        let key = format!("v{i}");
        s.set(&key, json(value), None).await.unwrap();
        assert_eq!(text(s.get(&key).await.unwrap()).as_deref(), Some(value.as_str()), "value {i} round trips");
    }
    let big: String = s.get_json("v3").await.unwrap().unwrap();
    assert_eq!(big.len(), 1 << 20);
    let err = s.get_json::<u32>("v0").await.unwrap_err();
    assert!(matches!(err, StateError::Decode { type_name: "u32", .. }), "{err}");
    assert_eq!(err.to_string(), "cannot decode the value of `v0` as u32");
}

pub async fn odd_keys(f: &Fixture) {
    let s = &f.store;
    let keys = [
        " ".to_owned(),
        "with space".to_owned(),
        "new\nline".to_owned(),
        "日本:🔑".to_owned(),
        "*?[]\\".to_owned(),
        "::".to_owned(),
        "k".repeat(10_000),
    ];
    for (i, key) in keys.iter().enumerate() {
        s.set(key, StateValue::json(&i).unwrap(), None).await.unwrap();
        assert_eq!(s.get_json::<usize>(key).await.unwrap(), Some(i), "{key:?}");
    }
    let mut listed = s.keys("").await.unwrap();
    let mut expected: Vec<String> = keys.to_vec();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);

    let err = s.get("").await.unwrap_err();
    assert_eq!(err.to_string(), "invalid key ``: keys must not be empty");
    for result in [
        s.set("", json("1"), None).await.map(drop),
        s.delete("").await.map(drop),
        s.exists("").await.map(drop),
        s.ttl("").await.map(drop),
        s.expire("", Duration::from_secs(1)).await.map(drop),
        s.set_if_not_exists("", json("1"), None).await.map(drop),
        s.increment("", Number::Int(1)).await.map(drop),
        s.get_versioned("").await.map(drop),
        s.compare_and_swap("", Expected::Absent, json("1"), None).await.map(drop),
    ] {
        assert!(matches!(result, Err(StateError::InvalidKey { .. })), "{result:?}");
    }
}

pub async fn millisecond_exact_expiry_for_readers(f: &Fixture) {
    // Only a paused clock can check the exact millisecond; Redis expires by its own clock.
    assert!(f.is_exact_clock());
    let s = &f.store;
    s.set("k", json("1"), Some(Duration::from_millis(100))).await.unwrap();
    f.advance(Duration::from_millis(99)).await;
    assert!(s.get("k").await.unwrap().is_some());
    assert_eq!(s.ttl("k").await.unwrap(), Ttl::Expires(Duration::from_millis(1)));
    f.advance(Duration::from_millis(1)).await;
    assert_eq!(s.get("k").await.unwrap(), None, "gone at exactly 100 ms");
    assert_eq!(s.get_many(&["k"]).await.unwrap(), [None]);
    assert!(s.set_if_not_exists("k", json("2"), None).await.unwrap(), "and free for a lock");
}

pub async fn compare_and_delete(f: &Fixture) {
    let s = &f.store;
    s.set("owned", json(r#""me""#), None).await.unwrap();
    assert!(!s.compare_and_delete("owned", Expected::Value(json(r#""you""#))).await.unwrap());
    assert!(!s.compare_and_delete("owned", Expected::Absent).await.unwrap(), "absent deletes nothing");
    assert_eq!(text(s.get("owned").await.unwrap()).as_deref(), Some(r#""me""#), "a mismatch deletes nothing");
    assert!(s.compare_and_delete("owned", Expected::Value(json(r#""me""#))).await.unwrap());
    assert_eq!(s.get("owned").await.unwrap(), None);
    assert!(!s.compare_and_delete("owned", Expected::Value(json(r#""me""#))).await.unwrap(), "gone already");

    s.set("versioned", json("[1]"), None).await.unwrap();
    let version = s.get_versioned("versioned").await.unwrap().unwrap().version;
    s.set("versioned", json("[2]"), None).await.unwrap();
    assert!(!s.compare_and_delete("versioned", Expected::Version(version)).await.unwrap(), "stale version");
    let version = s.get_versioned("versioned").await.unwrap().unwrap().version;
    assert!(s.compare_and_delete("versioned", Expected::Version(version)).await.unwrap());

    s.set("short", json("1"), Some(Duration::from_millis(100))).await.unwrap();
    f.advance(Duration::from_millis(250)).await;
    assert!(!s.compare_and_delete("short", Expected::Value(json("1"))).await.unwrap(), "expired keys do not match");
    assert!(matches!(s.compare_and_delete("", Expected::Absent).await, Err(StateError::InvalidKey { .. })));
}

pub async fn locks_belong_to_their_owner(f: &Fixture) {
    let s = &f.store;
    let ttl = Duration::from_millis(300);
    let first = s.lock("lock:rebalance", ttl).await.unwrap().expect("a free lock is taken");
    assert!(s.lock("lock:rebalance", ttl).await.unwrap().is_none(), "held: nobody else takes it");
    assert!(first.extend(Duration::from_secs(30)).await.unwrap(), "the owner extends it");
    assert!(matches!(s.ttl("lock:rebalance").await.unwrap(), Ttl::Expires(left) if left > ttl));
    assert!(first.release().await.unwrap(), "the owner releases it");

    // A lock that expired and was taken by another owner is not the former owner's any more.
    let stale = s.lock("lock:rebalance", Duration::from_millis(100)).await.unwrap().unwrap();
    f.advance(Duration::from_millis(250)).await;
    let second = s.lock("lock:rebalance", Duration::from_secs(30)).await.unwrap().expect("expired: free again");
    assert!(!stale.extend(Duration::from_secs(30)).await.unwrap());
    assert!(!stale.release().await.unwrap(), "released only by its owner");
    assert_eq!(s.get("lock:rebalance").await.unwrap().as_ref(), Some(second.token()), "the new owner keeps it");

    // Dropping a guard releases it in the background.
    drop(second);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while s.exists("lock:rebalance").await.unwrap() {
        assert!(std::time::Instant::now() < deadline, "the dropped guard never released the lock");
        tokio::task::yield_now().await;
    }
    assert!(s.lock("lock:rebalance", ttl).await.unwrap().is_some());
}

pub async fn updates_can_refuse(f: &Fixture) {
    let s = &f.store;
    s.set_json("balance", &10, None).await.unwrap();
    let refused = s.update_json("balance", None, |b: Option<i64>| b.map(|b| b - 25).filter(|b| *b >= 0)).await;
    assert!(
        matches!(&refused, Err(StateError::UpdateRefused { key, reason: None }) if key == "balance"),
        "{refused:?}"
    );
    let refused = s
        .update_json("balance", None, |b: Option<i64>| {
            let b = b.unwrap_or(0);
            if b < 25 { Err(format!("balance {b} is below 25")) } else { Ok(b - 25) }
        })
        .await
        .unwrap_err();
    let reason = std::error::Error::source(&refused).map(ToString::to_string);
    assert_eq!(reason.as_deref(), Some("balance 10 is below 25"));
    assert_eq!(s.get_json::<i64>("balance").await.unwrap(), Some(10), "a refused update changes nothing");
    assert_eq!(s.update_json("balance", None, |b: Option<i64>| b.map(|b| b - 4)).await.unwrap(), 6);
}

pub async fn typed_bulk_with_owned_keys(f: &Fixture) {
    let s = &f.store;
    let entries: Vec<(String, f64)> = vec![("px:BTC".to_owned(), 50_000.5), ("px:ETH".to_owned(), 2_500.25)];
    s.set_many_json(&entries, None).await.unwrap();
    let keys: Vec<String> = vec!["px:BTC".into(), "px:SOL".into(), "px:ETH".into()];
    assert_eq!(s.get_many_json::<f64, _>(&keys).await.unwrap(), vec![Some(50_000.5), None, Some(2_500.25)]);
}

pub async fn connect_and_ping(f: &Fixture) {
    let s: &dyn StateStore = &*f.store;
    s.connect().await.unwrap();
    let rtt = s.ping().await.unwrap();
    assert!(rtt < Duration::from_secs(5), "{rtt:?}");
}
