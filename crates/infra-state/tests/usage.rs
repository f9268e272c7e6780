//! A bot author's first program: each helper of issue #12 in a few lines, with assertions on
//! what it does.

use std::{sync::Arc, time::Duration};

use infra_config::StateConfig;
use infra_state::{
    CasOutcome, DynStateStore, Expected, StateError, StateFuture, StateStore, StateStoreExt, StateValue, UpdateOptions,
    memory::MemoryStore,
};

#[tokio::test(start_paused = true)]
async fn a_first_bot() {
    let state = infra_state::from_config(&StateConfig::memory().namespace("arb-1")).unwrap();
    state.connect().await.unwrap();
    state.ping().await.unwrap();

    state.set_json("price:BTC", &50_234.5, Some(Duration::from_secs(5))).await.unwrap();
    assert_eq!(state.get_json::<f64>("price:BTC").await.unwrap(), Some(50_234.5));

    // One rebalancer at a time, across every process sharing the store.
    let mine = state.lock("lock:rebalance", Duration::from_secs(30)).await.unwrap().unwrap();
    assert!(state.lock("lock:rebalance", Duration::from_secs(30)).await.unwrap().is_none());
    // Someone else's token never releases it.
    let theirs = StateValue::json(&"someone-else").unwrap();
    assert!(!state.compare_and_delete("lock:rebalance", Expected::Value(theirs)).await.unwrap());
    assert!(mine.extend(Duration::from_secs(60)).await.unwrap());
    assert!(mine.release().await.unwrap());

    // An update that refuses leaves the value unchanged.
    state.set_json("position:BTC", &3, None).await.unwrap();
    let sell_five = |qty: Option<i64>| qty.map(|q| q - 5).filter(|q| *q >= 0);
    let refused = state.update_json("position:BTC", None, sell_five).await.unwrap_err();
    assert!(matches!(refused, StateError::UpdateRefused { .. }), "{refused}");
    assert_eq!(state.get_json::<i64>("position:BTC").await.unwrap(), Some(3));
    assert_eq!(state.update_json("position:BTC", None, |q: Option<i64>| q.unwrap_or(0) + 2).await.unwrap(), 5);

    // Keys of any string type.
    let symbols: Vec<String> = ["BTC", "ETH"].iter().map(|s| format!("price:{s}")).collect();
    assert_eq!(state.get_many_json::<f64, _>(&symbols).await.unwrap(), vec![Some(50_234.5), None]);
    state.close().await.unwrap();
}

#[tokio::test]
async fn connect_fails_fast_against_a_closed_port_with_the_url_redacted() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = StateConfig::redis(format!("redis://bot:hunter2@127.0.0.1:{port}").as_str())
        .unwrap()
        .connect_timeout(Duration::from_millis(300));
    let state = infra_state::from_config(&config).unwrap();
    let started = std::time::Instant::now();
    let error = state.connect().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(300) + Duration::from_secs(1), "{:?}", started.elapsed());
    let message = format!("{error}: {:?}", std::error::Error::source(&error));
    assert!(message.contains(&format!("redis://bot:***@127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn connect_to_a_server_that_never_answers_names_the_redacted_url() {
    // Accepts the TCP connection (the kernel's backlog) but never answers a command.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let config = StateConfig::redis(format!("redis://bot:hunter2@127.0.0.1:{port}").as_str())
        .unwrap()
        .connect_timeout(Duration::from_millis(300));
    let state = infra_state::from_config(&config).unwrap();
    for error in [state.connect().await.unwrap_err(), state.ping().await.map(drop).unwrap_err()] {
        let source = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
        let message = format!("{error}: {source}");
        assert!(message.contains(&format!("redis://bot:***@127.0.0.1:{port}")), "{message}");
        assert!(message.contains("timed out after 300ms"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(error.is_transient() && error.may_have_been_applied(), "{error}");
    }
}

/// A store whose every compare-and-swap meets a concurrent write: the only way to make
/// contention deterministic. Everything else is a real memory store.
#[derive(Debug)]
struct AlwaysContended(MemoryStore);

#[tokio::test(start_paused = true)]
async fn an_update_that_keeps_conflicting_gives_up_after_its_bound() {
    let state: Arc<DynStateStore> = Arc::new(AlwaysContended(MemoryStore::new("t")));
    let error = state.update_json("k", None, |n: Option<i64>| n.unwrap_or(0) + 1).await.unwrap_err();
    assert!(matches!(error, StateError::TooManyConflicts { attempts: 16, .. }), "{error}");
    let error = state
        .update_json_with("k", UpdateOptions::new().max_attempts(3), |n: Option<i64>| n.unwrap_or(0) + 1)
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "the update of `k` conflicted with concurrent writes 3 times in a row");
    assert!(error.is_transient() && !error.may_have_been_applied());
}

impl StateStore for AlwaysContended {
    fn backend(&self) -> &'static str {
        self.0.backend()
    }
    fn namespace(&self) -> &str {
        self.0.namespace()
    }
    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateValue>> {
        self.0.get(key)
    }
    fn set<'a>(&'a self, key: &'a str, value: StateValue, ttl: Option<Duration>) -> StateFuture<'a, ()> {
        self.0.set(key, value, ttl)
    }
    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        self.0.delete(key)
    }
    fn exists<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        self.0.exists(key)
    }
    fn ttl<'a>(&'a self, key: &'a str) -> StateFuture<'a, infra_state::Ttl> {
        self.0.ttl(key)
    }
    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StateFuture<'a, bool> {
        self.0.expire(key, ttl)
    }
    fn set_if_not_exists<'a>(
        &'a self,
        key: &'a str,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, bool> {
        self.0.set_if_not_exists(key, value, ttl)
    }
    fn increment<'a>(&'a self, key: &'a str, by: infra_state::Number) -> StateFuture<'a, infra_state::Number> {
        self.0.increment(key, by)
    }
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StateFuture<'a, Vec<Option<StateValue>>> {
        self.0.get_many(keys)
    }
    fn set_many<'a>(&'a self, entries: &'a [(&'a str, StateValue)], ttl: Option<Duration>) -> StateFuture<'a, ()> {
        self.0.set_many(entries, ttl)
    }
    fn scan<'a>(&'a self, prefix: &'a str) -> futures::stream::BoxStream<'a, infra_state::Result<String>> {
        self.0.scan(prefix)
    }
    fn get_versioned<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<infra_state::Versioned>> {
        self.0.get_versioned(key)
    }
    fn compare_and_swap<'a>(
        &'a self,
        _key: &'a str,
        _expected: Expected,
        _value: StateValue,
        _ttl: Option<Duration>,
    ) -> StateFuture<'a, CasOutcome> {
        StateFuture::ready(Ok(CasOutcome::Conflict(None)))
    }
    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: Expected) -> StateFuture<'a, bool> {
        self.0.compare_and_delete(key, expected)
    }
}
