//! Differential property test: random sequences of operations give the same results on the
//! memory backend and on a real Redis server.

mod support;

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use infra_state::{CasOutcome, DynStateStore, Expected, Number, StateError, StateValue, Ttl, memory::MemoryStore};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use support::{Fixture, start_redis};

const KEYS: &[&str] = &["a", "b", "ab", "c:1", "ü", "*"];
const VALUES: &[&str] = &["1", "-3", "2.5", "\"s\"", "null", "{\"x\":1}", "9223372036854775807", "1e3"];
const INTS: &[i64] = &[-3, 1, 7, i64::MAX];
const FLOATS: &[f64] = &[0.5, -1.25, 0.1, 1e300];

#[derive(Debug, Clone)]
enum Op {
    Get(&'static str),
    Set(&'static str, &'static str, Option<u64>),
    Delete(&'static str),
    Exists(&'static str),
    Ttl(&'static str),
    Expire(&'static str, u64),
    SetIfNotExists(&'static str, &'static str, Option<u64>),
    IncrInt(&'static str, i64),
    IncrFloat(&'static str, f64),
    GetMany(Vec<&'static str>),
    SetMany(Vec<(&'static str, &'static str)>, Option<u64>),
    Keys(&'static str),
    CasAbsent(&'static str, &'static str),
    CasValue(&'static str, &'static str, &'static str),
    CasCurrentVersion(&'static str, &'static str),
}

fn op() -> impl Strategy<Value = Op> {
    let key = || proptest::sample::select(KEYS);
    let value = || proptest::sample::select(VALUES);
    // Long TTLs only: nothing expires during a case, so both clocks agree.
    let ttl = || proptest::option::of(prop_oneof![Just(60_000_u64), Just(120_000)]);
    prop_oneof![
        key().prop_map(Op::Get),
        (key(), value(), ttl()).prop_map(|(k, v, t)| Op::Set(k, v, t)),
        key().prop_map(Op::Delete),
        key().prop_map(Op::Exists),
        key().prop_map(Op::Ttl),
        (key(), Just(90_000_u64)).prop_map(|(k, t)| Op::Expire(k, t)),
        (key(), value(), ttl()).prop_map(|(k, v, t)| Op::SetIfNotExists(k, v, t)),
        (key(), proptest::sample::select(INTS)).prop_map(|(k, n)| Op::IncrInt(k, n)),
        (key(), proptest::sample::select(FLOATS)).prop_map(|(k, x)| Op::IncrFloat(k, x)),
        proptest::collection::vec(key(), 0..4).prop_map(Op::GetMany),
        (proptest::collection::vec((key(), value()), 0..4), ttl()).prop_map(|(e, t)| Op::SetMany(e, t)),
        prop_oneof![Just(""), Just("a"), Just("c:"), Just("*")].prop_map(Op::Keys),
        (key(), value()).prop_map(|(k, v)| Op::CasAbsent(k, v)),
        (key(), value(), value()).prop_map(|(k, e, v)| Op::CasValue(k, e, v)),
        (key(), value()).prop_map(|(k, v)| Op::CasCurrentVersion(k, v)),
    ]
}

fn json(text: &str) -> StateValue {
    StateValue::parse(text).expect("test values are JSON")
}

fn ms(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

/// An error by kind only: messages may legitimately name different things.
fn kind(error: &StateError) -> String {
    format!("{error:?}").split([' ', '{', '(']).next().unwrap_or_default().to_owned()
}

fn show<T: std::fmt::Debug>(result: Result<T, StateError>) -> String {
    match result {
        Ok(value) => format!("{value:?}"),
        Err(error) => format!("Err({})", kind(&error)),
    }
}

/// Runs one operation and renders its result in a backend-neutral way.
async fn apply(store: &DynStateStore, op: &Op) -> String {
    match op {
        Op::Get(k) => show(store.get(k).await),
        Op::Set(k, v, t) => show(store.set(k, json(v), ms(*t)).await),
        Op::Delete(k) => show(store.delete(k).await),
        Op::Exists(k) => show(store.exists(k).await),
        // Remaining times differ by the milliseconds the calls took: compare the kind.
        Op::Ttl(k) => show(store.ttl(k).await.map(|ttl| match ttl {
            Ttl::Expires(_) => "Expires",
            Ttl::Persistent => "Persistent",
            Ttl::Missing => "Missing",
        })),
        Op::Expire(k, t) => show(store.expire(k, Duration::from_millis(*t)).await),
        Op::SetIfNotExists(k, v, t) => show(store.set_if_not_exists(k, json(v), ms(*t)).await),
        Op::IncrInt(k, n) => show(store.increment(k, Number::Int(*n)).await),
        Op::IncrFloat(k, x) => show(store.increment(k, Number::Float(*x)).await),
        Op::GetMany(keys) => show(store.get_many(keys).await),
        Op::SetMany(entries, t) => {
            let entries: Vec<(&str, StateValue)> = entries.iter().map(|(k, v)| (*k, json(v))).collect();
            show(store.set_many(&entries, ms(*t)).await)
        }
        Op::Keys(prefix) => {
            let mut keys: Vec<String> =
                futures::TryStreamExt::try_collect(store.scan(prefix)).await.unwrap_or_default();
            keys.sort();
            format!("{keys:?}")
        }
        Op::CasAbsent(k, v) => show(store.compare_and_swap(k, Expected::Absent, json(v), None).await),
        Op::CasValue(k, e, v) => show(store.compare_and_swap(k, Expected::Value(json(e)), json(v), None).await),
        Op::CasCurrentVersion(k, v) => {
            let expected = match store.get_versioned(k).await {
                Ok(Some(current)) => Expected::Version(current.version),
                Ok(None) => Expected::Absent,
                Err(error) => return format!("Err({})", kind(&error)),
            };
            let outcome = store.compare_and_swap(k, expected, json(v), None).await;
            show(outcome.map(|o| matches!(o, CasOutcome::Swapped(_))))
        }
    }
}

#[test]
fn random_operation_sequences_agree_on_memory_and_redis() {
    let server = start_redis();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let case = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config { cases: 96, failure_persistence: None, ..Config::default() });
    let result = runner.run(&proptest::collection::vec(op(), 1..40), |ops| {
        let n = case.fetch_add(1, Ordering::Relaxed);
        runtime.block_on(async {
            let memory = MemoryStore::new("diff");
            let redis = Fixture::redis_with(&server, &format!("diff{n}"), Duration::from_secs(5));
            for (step, op) in ops.iter().enumerate() {
                let on_memory = apply(&memory, op).await;
                let on_redis = apply(&*redis.store, op).await;
                prop_assert_eq!(&on_memory, &on_redis, "step {} {:?} diverged", step, op);
            }
            Ok(())
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
