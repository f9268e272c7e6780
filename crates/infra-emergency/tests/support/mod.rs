//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test file uses part of the helpers")]

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::stream::BoxStream;
use infra_config::{Config, EmergencyConfig, Environment};
use infra_emergency::{ControllerOptions, EmergencyController, Status};
use infra_events::{EventBus, memory::MemoryBus};
use infra_state::{
    CasOutcome, Expected, Number, StateError, StateFuture, StateStore, StateStoreExt, StateValue, Ttl, Versioned,
    memory::MemoryStore,
};

/// The emergency section for `bot`: limit -500, alert at 80%, auto-halt on.
/// A Redis store and pub/sub bus on `url` under `namespace`, with their own connections, as
/// another process has.
#[cfg(feature = "redis")]
pub(crate) fn redis_backends(
    url: &str,
    namespace: &str,
    source: &str,
    timeout: Duration,
) -> (Arc<dyn StateStore>, Arc<dyn EventBus>) {
    let url = infra_config::RedisUrl::parse(url).unwrap();
    let store = infra_state::redis::RedisStore::with_url(&url, namespace, timeout, timeout).unwrap();
    let bus = infra_events::redis::RedisBus::new(&url, namespace, source, timeout).unwrap();
    (Arc::new(store), Arc::new(bus))
}

/// Controller options for tests: a 200 ms resync and a 5 s heartbeat TTL.
pub(crate) fn fast() -> ControllerOptions {
    ControllerOptions::default().resync_interval(Duration::from_millis(200)).heartbeat_ttl(Duration::from_secs(5))
}

pub(crate) fn config(bot: &str, fail_closed: bool) -> EmergencyConfig {
    let mut config = Config::for_env(Environment::Development).emergency;
    config.bot_id = bot.to_owned();
    config.daily_loss_limit = -500.0;
    config.auto_halt_on_limit = true;
    config.fail_closed = fail_closed;
    config.alert_fraction = 0.8;
    config
}

/// A memory store and bus shared by several controllers, as a fleet shares Redis.
pub(crate) fn shared_memory() -> (Arc<dyn StateStore>, Arc<dyn EventBus>) {
    (Arc::new(MemoryStore::new("test")), Arc::new(MemoryBus::new("test")))
}

/// Starts the controller of `bot` on `store` and `bus`.
pub(crate) async fn controller(
    bot: &str,
    store: &Arc<dyn StateStore>,
    bus: &Arc<dyn EventBus>,
    options: ControllerOptions,
) -> EmergencyController {
    EmergencyController::start(&config(bot, true), store.clone(), bus.clone(), options).await.expect("starts")
}

/// The keys of the audit log of `scope` (`global`, `bot:<id>`).
pub(crate) async fn audit_keys(store: &dyn StateStore, scope: &str) -> Vec<String> {
    store.keys(&format!("emergency:audit:{scope}:")).await.expect("scan")
}

/// Waits until the controller's status satisfies `condition`, for at most `limit`.
pub(crate) async fn wait_status(
    controller: &EmergencyController,
    limit: Duration,
    condition: impl Fn(&Status) -> bool,
) -> Status {
    let mut watch = controller.watch();
    match tokio::time::timeout(limit, watch.wait_for(|s| condition(s))).await {
        Ok(Ok(status)) => status.clone(),
        _ => panic!("condition not reached within {limit:?}; status {:?}", controller.status()),
    }
}

/// Polls `check` until it returns `Some`, for at most `limit` (real time: Redis tests).
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A real memory store that can be switched off: every call then fails with a timeout, as a
/// store whose server is down does.
#[derive(Debug, Clone)]
pub(crate) struct Switchable {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
}

impl Switchable {
    pub(crate) fn new(down: bool) -> Self {
        Self { inner: MemoryStore::new("test"), down: Arc::new(AtomicBool::new(down)) }
    }

    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub(crate) fn inner(&self) -> &MemoryStore {
        &self.inner
    }

    fn check<T>(&self, operation: &'static str, key: &str) -> Option<StateFuture<'static, T>> {
        self.down.load(Ordering::SeqCst).then(|| {
            StateFuture::ready(Err(StateError::Timeout {
                operation,
                key: key.to_owned(),
                timeout: Duration::from_secs(1),
            }))
        })
    }
}

macro_rules! delegate {
    ($self:ident, $op:literal, $key:expr, $call:expr) => {
        match $self.check($op, $key) {
            Some(failed) => failed,
            None => $call,
        }
    };
}

impl StateStore for Switchable {
    fn backend(&self) -> &'static str {
        "memory"
    }
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }
    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateValue>> {
        delegate!(self, "get", key, self.inner.get(key))
    }
    fn set<'a>(&'a self, key: &'a str, value: StateValue, ttl: Option<Duration>) -> StateFuture<'a, ()> {
        delegate!(self, "set", key, self.inner.set(key, value, ttl))
    }
    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        delegate!(self, "delete", key, self.inner.delete(key))
    }
    fn exists<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        delegate!(self, "exists", key, self.inner.exists(key))
    }
    fn ttl<'a>(&'a self, key: &'a str) -> StateFuture<'a, Ttl> {
        delegate!(self, "ttl", key, self.inner.ttl(key))
    }
    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StateFuture<'a, bool> {
        delegate!(self, "expire", key, self.inner.expire(key, ttl))
    }
    fn set_if_not_exists<'a>(
        &'a self,
        key: &'a str,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, bool> {
        delegate!(self, "set_if_not_exists", key, self.inner.set_if_not_exists(key, value, ttl))
    }
    fn increment<'a>(&'a self, key: &'a str, by: Number) -> StateFuture<'a, Number> {
        delegate!(self, "increment", key, self.inner.increment(key, by))
    }
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StateFuture<'a, Vec<Option<StateValue>>> {
        delegate!(self, "get_many", keys.first().copied().unwrap_or(""), self.inner.get_many(keys))
    }
    fn set_many<'a>(&'a self, entries: &'a [(&'a str, StateValue)], ttl: Option<Duration>) -> StateFuture<'a, ()> {
        delegate!(self, "set_many", entries.first().map_or("", |e| e.0), self.inner.set_many(entries, ttl))
    }
    fn scan<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, infra_state::Result<String>> {
        if self.down.load(Ordering::SeqCst) {
            let error =
                StateError::Timeout { operation: "scan", key: prefix.to_owned(), timeout: Duration::from_secs(1) };
            return Box::pin(futures::stream::once(async move { Err(error) }));
        }
        self.inner.scan(prefix)
    }
    fn get_versioned<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<Versioned>> {
        delegate!(self, "get_versioned", key, self.inner.get_versioned(key))
    }
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, CasOutcome> {
        delegate!(self, "compare_and_swap", key, self.inner.compare_and_swap(key, expected, value, ttl))
    }
    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: Expected) -> StateFuture<'a, bool> {
        delegate!(self, "compare_and_delete", key, self.inner.compare_and_delete(key, expected))
    }
}
