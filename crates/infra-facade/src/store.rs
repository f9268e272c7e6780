//! [`ResilientStore`]: any [`StateStore`] behind the configured retry, circuit breaker and
//! timeouts, implementing the same trait.

use std::{fmt, sync::Arc, time::Duration};

use futures::stream::BoxStream;
use infra_config::ResilienceConfig;
use infra_resilience::{CircuitBreaker, Idempotency::*};
use infra_state::{CasOutcome, Expected, Number, StateError, StateFuture, StateStore, StateValue, Ttl, Versioned};

use crate::{
    FacadeError,
    layers::{CallStats, LayerError, Layers},
};

impl LayerError for StateError {
    fn timed_out(operation: &'static str, target: &str, timeout: Duration) -> Self {
        StateError::Timeout { operation, key: target.to_owned(), timeout }
    }

    fn rejected(component: &'static str, backend: &'static str, url: &str, reason: String) -> Self {
        StateError::Connection {
            backend,
            url: url.to_owned(),
            source: Box::new(FacadeError::Rejected { component, reason }),
        }
    }
}

/// A [`StateStore`] whose calls go through the configured resilience policy: the retry of
/// `resilience.retry`, the `"state"` circuit breaker of the infrastructure's registry, the
/// per-attempt timeout and the overall deadline of `resilience.timeout`.
///
/// Only what is safe is retried, by [`StateError::is_transient`] and
/// [`StateError::may_have_been_applied`]:
///
/// | operations | retried after |
/// |---|---|
/// | `get`, `exists`, `ttl`, `get_many`, `get_versioned`, `set`, `set_many`, `delete`, `expire`, `connect`, `ping` (idempotent) | any transient error, a timeout included |
/// | `increment`, `set_if_not_exists`, `compare_and_swap`, `compare_and_delete` (not idempotent) | only a transient error that certainly was not applied; never a timeout |
///
/// `scan` (a stream) and `close` go straight to the inner store; after `close`, calls are made
/// once, without the policy (the closed store refuses them). Only transient errors and
/// timeouts count as failures for the breaker: a bad key is the caller's doing. A call the
/// open breaker refuses fails at once with [`StateError::Connection`] whose source is
/// [`FacadeError::Rejected`] (it reports "may have been applied", the safe answer, although
/// nothing was sent). A retried `delete` may report `false` when its first attempt deleted the
/// key.
///
/// The correlation ID of the calling execution stays in scope for every attempt, so the log
/// lines of the retries (and the store's own) carry it.
pub struct ResilientStore {
    inner: Arc<dyn StateStore>,
    layers: Layers<StateError>,
}

impl fmt::Debug for ResilientStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilientStore").field("inner", &self.inner).field("layers", &self.layers).finish()
    }
}

impl ResilientStore {
    /// Wraps `inner` in the policy `config` describes, guarded by `breaker`. `url` names the
    /// backend in errors (give it redacted: `RedisUrl`'s `Display` is).
    pub fn new(inner: Arc<dyn StateStore>, config: &ResilienceConfig, breaker: CircuitBreaker, url: String) -> Self {
        Self { layers: Layers::new(config, breaker, "state store", inner.backend(), url), inner }
    }

    /// The store without the policy (for calls that must bypass the breaker, such as health
    /// checks).
    pub fn inner(&self) -> &Arc<dyn StateStore> {
        &self.inner
    }

    /// The circuit breaker guarding the store.
    pub fn breaker(&self) -> &CircuitBreaker {
        self.layers.breaker()
    }

    /// Calls, retries, refusals and failures so far.
    pub fn stats(&self) -> CallStats {
        self.layers.stats()
    }
}

impl StateStore for ResilientStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn namespace(&self) -> &str {
        self.inner.namespace()
    }

    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateValue>> {
        StateFuture::new(self.layers.call("get", key, Idempotent, move || self.inner.get(key)))
    }

    fn set<'a>(&'a self, key: &'a str, value: StateValue, ttl: Option<Duration>) -> StateFuture<'a, ()> {
        StateFuture::new(self.layers.call("set", key, Idempotent, move || self.inner.set(key, value.clone(), ttl)))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        StateFuture::new(self.layers.call("delete", key, Idempotent, move || self.inner.delete(key)))
    }

    fn exists<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        StateFuture::new(self.layers.call("exists", key, Idempotent, move || self.inner.exists(key)))
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StateFuture<'a, Ttl> {
        StateFuture::new(self.layers.call("ttl", key, Idempotent, move || self.inner.ttl(key)))
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StateFuture<'a, bool> {
        StateFuture::new(self.layers.call("expire", key, Idempotent, move || self.inner.expire(key, ttl)))
    }

    fn set_if_not_exists<'a>(
        &'a self,
        key: &'a str,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, bool> {
        StateFuture::new(self.layers.call("set_if_not_exists", key, NonIdempotent, move || {
            self.inner.set_if_not_exists(key, value.clone(), ttl)
        }))
    }

    fn increment<'a>(&'a self, key: &'a str, by: Number) -> StateFuture<'a, Number> {
        StateFuture::new(self.layers.call("increment", key, NonIdempotent, move || self.inner.increment(key, by)))
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StateFuture<'a, Vec<Option<StateValue>>> {
        let first = keys.first().copied().unwrap_or_default();
        StateFuture::new(self.layers.call("get_many", first, Idempotent, move || self.inner.get_many(keys)))
    }

    fn set_many<'a>(&'a self, entries: &'a [(&'a str, StateValue)], ttl: Option<Duration>) -> StateFuture<'a, ()> {
        let first = entries.first().map(|(key, _)| *key).unwrap_or_default();
        StateFuture::new(self.layers.call("set_many", first, Idempotent, move || self.inner.set_many(entries, ttl)))
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, infra_state::Result<String>> {
        self.inner.scan(prefix)
    }

    fn get_versioned<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<Versioned>> {
        StateFuture::new(self.layers.call("get_versioned", key, Idempotent, move || self.inner.get_versioned(key)))
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, CasOutcome> {
        StateFuture::new(self.layers.call("compare_and_swap", key, NonIdempotent, move || {
            self.inner.compare_and_swap(key, expected.clone(), value.clone(), ttl)
        }))
    }

    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: Expected) -> StateFuture<'a, bool> {
        StateFuture::new(self.layers.call("compare_and_delete", key, NonIdempotent, move || {
            self.inner.compare_and_delete(key, expected.clone())
        }))
    }

    fn connect(&self) -> StateFuture<'_, ()> {
        StateFuture::new(self.layers.call("connect", "", Idempotent, move || self.inner.connect()))
    }

    fn ping(&self) -> StateFuture<'_, Duration> {
        StateFuture::new(self.layers.call("ping", "", Idempotent, move || self.inner.ping()))
    }

    fn close(&self) -> StateFuture<'_, ()> {
        self.layers.close();
        self.inner.close()
    }
}
