//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test file uses part of the helpers")]

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use futures::stream::BoxStream;
use infra_facade::{
    config::{Config, Environment},
    log::{CorrelationId, current_correlation_id},
    state::{
        CasOutcome, Expected, Number, StateError, StateFuture, StateStore, StateValue, Ttl, Versioned,
        memory::MemoryStore,
    },
};

/// The development preset with quiet logs, for bot `bot`.
pub(crate) fn development(bot: &str) -> Config {
    let mut config = Config::for_env(Environment::Development);
    config.logging.level = "warn".to_owned();
    config.emergency.bot_id = bot.to_owned();
    config
}

/// Polls `check` until it returns `Some`, for at most `limit` (real time).
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not reached within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A memory store whose next `failures` calls of `get` and `increment` fail with a timeout
/// (an increment is applied first, as when Redis ran it and the reply was lost), and which
/// records the correlation ID each attempt ran under.
#[derive(Debug, Clone)]
pub(crate) struct Flaky {
    inner: MemoryStore,
    failures: Arc<AtomicU32>,
    attempts: Arc<AtomicU32>,
    seen: Arc<Mutex<Vec<Option<CorrelationId>>>>,
}

impl Flaky {
    pub(crate) fn new(failures: u32) -> Self {
        Self {
            inner: MemoryStore::new("flaky"),
            failures: Arc::new(AtomicU32::new(failures)),
            attempts: Arc::new(AtomicU32::new(0)),
            seen: Arc::default(),
        }
    }

    /// Calls of `get` and `increment` that reached this store.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::SeqCst)
    }

    /// The correlation ID of each attempt.
    pub(crate) fn seen(&self) -> Vec<Option<CorrelationId>> {
        self.seen.lock().unwrap().clone()
    }

    pub(crate) fn inner(&self) -> &MemoryStore {
        &self.inner
    }

    /// Counts the attempt; says whether it must fail.
    fn attempt(&self) -> bool {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push(current_correlation_id());
        self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

fn timed_out<T>(operation: &'static str, key: &str) -> infra_facade::state::Result<T> {
    Err(StateError::Timeout { operation, key: key.to_owned(), timeout: Duration::from_millis(250) })
}

impl StateStore for Flaky {
    fn backend(&self) -> &'static str {
        "memory"
    }
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }
    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateValue>> {
        if self.attempt() {
            return StateFuture::ready(timed_out("get", key));
        }
        self.inner.get(key)
    }
    fn set<'a>(&'a self, key: &'a str, value: StateValue, ttl: Option<Duration>) -> StateFuture<'a, ()> {
        self.inner.set(key, value, ttl)
    }
    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        self.inner.delete(key)
    }
    fn exists<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        self.inner.exists(key)
    }
    fn ttl<'a>(&'a self, key: &'a str) -> StateFuture<'a, Ttl> {
        self.inner.ttl(key)
    }
    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StateFuture<'a, bool> {
        self.inner.expire(key, ttl)
    }
    fn set_if_not_exists<'a>(
        &'a self,
        key: &'a str,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, bool> {
        self.inner.set_if_not_exists(key, value, ttl)
    }
    fn increment<'a>(&'a self, key: &'a str, by: Number) -> StateFuture<'a, Number> {
        let fail = self.attempt();
        StateFuture::new(async move {
            let value = self.inner.increment(key, by).await?;
            if fail { timed_out("increment", key) } else { Ok(value) }
        })
    }
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StateFuture<'a, Vec<Option<StateValue>>> {
        self.inner.get_many(keys)
    }
    fn set_many<'a>(&'a self, entries: &'a [(&'a str, StateValue)], ttl: Option<Duration>) -> StateFuture<'a, ()> {
        self.inner.set_many(entries, ttl)
    }
    fn scan<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, infra_facade::state::Result<String>> {
        self.inner.scan(prefix)
    }
    fn get_versioned<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<Versioned>> {
        self.inner.get_versioned(key)
    }
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, CasOutcome> {
        self.inner.compare_and_swap(key, expected, value, ttl)
    }
    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: Expected) -> StateFuture<'a, bool> {
        self.inner.compare_and_delete(key, expected)
    }
}
