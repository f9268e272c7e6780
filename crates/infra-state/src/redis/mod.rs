//! The Redis backend, through the `infra-redis` connection layer.
//!
//! # Key layout
//!
//! Key `k` of a store with namespace `ns` is the Redis string `ns:k`; its value is the JSON text
//! exactly (`SET ns:k '{"qty":3}'`), readable by any Redis client. Counters are plain numbers
//! (`INCRBY` works on them from anywhere). Versions for compare-and-swap are not stored: a
//! version is the SHA-1 of the value's text, computed by Lua (`redis.sha1hex`) or locally.
//!
//! # Keys of other types
//!
//! Only a foreign client can put a hash, list or set under the namespace. Such a key reads as
//! absent in `get`, `get_many` and `get_versioned`, on every path (a lone `GET`, a coalesced or
//! explicit `MGET`), since that is what `MGET` answers; `exists`, `ttl`, `expire` and `delete`
//! see it; `set` and `set_many` overwrite it; `increment` and `compare_and_swap` fail with
//! [`StateError::Backend`] quoting Redis's `WRONGTYPE` reply.
//!
//! # Batches
//!
//! `set_many` is one `MULTI`/`EXEC` transaction (one per hash slot on a cluster), so no reader
//! sees part of it; `get_many` is one `MGET` (pipelined `GET`s on a cluster).

use std::{fmt, sync::Arc, time::Duration};

use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use infra_config::{RedisUrl, StateConfig};
use infra_redis::{
    ClientOptions, Connection, RedisError, ReplicaAcks,
    fred::{
        prelude::{Client, KeysInterface, Value},
        types::Key,
        util::redis_keyslot,
    },
};

use crate::{
    CasOutcome, Expected, Number, Result, StateError, StateFuture, StateStore, StateValue, Ttl, Versioned,
    instruments::{CountedScan, Op, RedisMetrics},
    store::{check_key, error_stream, ttl_millis},
};

mod coalesce;
mod ops;
mod replicas;
mod scripts;

use coalesce::{Coalescer, InFlight, Reply};
use ops::clamp_ms;

/// A [`StateStore`] on Redis (standalone, or cluster with a `redis-cluster://` URL).
///
/// Nothing connects before the first call (or [`RedisStore::connect`]). A call that finds no
/// connection starts a connection attempt and waits for it at most the connect timeout; a
/// refused or rejected attempt (wrong password) fails that call at once with
/// [`StateError::Connection`], and the next call tries again. Once connected, lost connections
/// are re-established in the background with backoff (100 ms doubling to 2 s), and every call
/// is bounded by the operation timeout, so a dead server yields [`StateError::Timeout`] or
/// [`StateError::Connection`], never a hang. As with any network client, a write that timed out
/// may still have been applied.
///
/// Through `dyn StateStore`, plain `get`s and `set`s (no TTL) made while many calls are in
/// flight are coalesced into one `MGET` / `MSET` per batch on a standalone server (see
/// `redis/coalesce.rs`): under load that is cheaper than one boxed fred command each. A lone
/// call is sent as its own command.
///
/// [`StateStore::close`] finishes the commands already sent, then closes the connection; later
/// calls fail with [`StateError::Connection`]. A store dropped without `close()` (its last
/// clone) sends `QUIT` in the background on the runtime it connected from, even when dropped
/// outside it, so no task goes on reconnecting; commands still queued then may be cut short.
///
/// Metrics (see the crate docs): `infra_state_operations_total{op, backend="redis", outcome}`,
/// `infra_state_operation_duration_seconds{op, backend="redis"}` (each call as the caller saw
/// it, connecting and coalescing included) and `infra_state_reconnects_total{backend="redis"}`.
/// The handles are resolved in [`RedisStore::with_url`] (and [`RedisStore::new`]), so install
/// the recorder before building the store.
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

struct Shared {
    connection: Connection,
    namespace: String,
    prefix: String,
    clustered: bool,
    operation_timeout: Duration,
    /// `WAIT` after every write (`state.replica_acks`), when set.
    replica_acks: Option<ReplicaAcks>,
    coalescer: Coalescer,
    metrics: RedisMetrics,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.shared.connection.url())
            .field("namespace", &self.shared.namespace)
            .field("operation_timeout", &self.shared.operation_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `config` (which must name a Redis URL). Does not connect.
    pub fn new(config: &StateConfig) -> Result<Self> {
        let url = config.redis_url.as_ref().ok_or(StateError::MissingUrl)?;
        let acks = ReplicaAcks::new(config.replica_acks, config.replica_ack_timeout);
        Self::build(url, &config.namespace, config.operation_timeout, config.connect_timeout, acks)
    }

    /// A store on `url` under `namespace`, with explicit timeouts. Does not connect. Resolves
    /// its metric handles with the recorder in effect now.
    pub fn with_url(
        url: &RedisUrl,
        namespace: &str,
        operation_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self> {
        Self::build(url, namespace, operation_timeout, connect_timeout, None)
    }

    fn build(
        url: &RedisUrl,
        namespace: &str,
        operation_timeout: Duration,
        connect_timeout: Duration,
        replica_acks: Option<ReplicaAcks>,
    ) -> Result<Self> {
        let options = ClientOptions::new(connect_timeout, operation_timeout);
        let setup = |error: RedisError| StateError::Connection {
            backend: "redis",
            url: url.redacted(),
            source: Box::new(error),
        };
        let clustered = infra_redis::is_clustered(url).map_err(setup)?;
        let client = infra_redis::client(url, &options).map_err(setup)?;
        let metrics = RedisMetrics::new();
        let connection = Connection::new(client, url, connect_timeout).count_reconnects(metrics.reconnects.clone());
        Ok(Self {
            shared: Arc::new(Shared {
                connection,
                namespace: namespace.to_owned(),
                prefix: format!("{namespace}:"),
                clustered,
                operation_timeout,
                replica_acks,
                coalescer: Coalescer::default(),
                metrics,
            }),
        })
    }

    /// Connects now (within the connect timeout) instead of on the first call, so a bot can
    /// fail at start-up rather than on its first trade.
    pub async fn connect(&self) -> Result<()> {
        self.client().await.map(drop)
    }

    /// [`StateStore::ping`] without boxing the future: one `PING` round trip, timed.
    pub async fn ping(&self) -> Result<Duration> {
        self.timed(Op::Ping, self.ping_once()).await
    }

    /// [`StateStore::compare_and_delete`] without boxing the future.
    pub async fn compare_and_delete(&self, key: &str, expected: Expected) -> Result<bool> {
        let call = async {
            let deleted = self.compare_and_delete_one(key, expected).await;
            self.acknowledged("compare_and_delete", key, deleted).await
        };
        self.timed(Op::CompareAndDelete, call).await
    }

    /// [`StateStore::close`] without boxing the future.
    pub async fn close(&self) -> Result<()> {
        self.shared.connection.close().await;
        Ok(())
    }

    /// [`StateStore::get`] without boxing the future.
    ///
    /// Called on a concrete `RedisStore`, these inherent methods take precedence over the trait's
    /// and skip the per-call allocation a `dyn StateStore` needs: fred's command futures are
    /// large, and boxing one per call shows under heavy concurrency (see docs/benchmarks.md).
    /// Same semantics as the trait methods.
    pub async fn get(&self, key: &str) -> Result<Option<StateValue>> {
        self.timed(Op::Get, self.get_one(key)).await
    }

    /// [`StateStore::set`] without boxing the future.
    pub async fn set(&self, key: &str, value: StateValue, ttl: Option<Duration>) -> Result<()> {
        self.timed(Op::Set, self.set_lone(key, value, ttl)).await
    }

    /// [`StateStore::set_if_not_exists`] without boxing the future.
    pub async fn set_if_not_exists(&self, key: &str, value: StateValue, ttl: Option<Duration>) -> Result<bool> {
        self.timed(Op::SetIfAbsent, self.set_if_absent_acknowledged(key, value, ttl)).await
    }

    /// [`StateStore::increment`] without boxing the future.
    pub async fn increment(&self, key: &str, by: Number) -> Result<Number> {
        let call = async { self.acknowledged("increment", key, self.increment_one(key, by).await).await };
        self.timed(Op::Increment, call).await
    }

    /// [`StateStore::get_many`] without boxing the future.
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<StateValue>>> {
        self.timed(Op::GetMany, self.get_many_values(keys)).await
    }

    /// [`StateStore::set_many`] without boxing the future.
    pub async fn set_many(&self, entries: &[(&str, StateValue)], ttl: Option<Duration>) -> Result<()> {
        self.timed(Op::SetMany, self.set_many_acknowledged(entries, ttl)).await
    }

    /// [`StateStore::compare_and_swap`] without boxing the future.
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome> {
        self.timed(Op::CompareAndSwap, self.compare_and_swap_acknowledged(key, expected, value, ttl)).await
    }

    /// Awaits `call` and records it as `op`: its outcome and how long it took.
    async fn timed<T>(&self, op: Op, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.shared.metrics.timed(op, call).await
    }

    /// The connected client, connecting on first use.
    async fn client(&self) -> Result<&Client> {
        let connection = &self.shared.connection;
        if connection.is_ready() {
            return Ok(connection.client());
        }
        match connection.connect().await {
            Ok(()) => Ok(connection.client()),
            // The source names the server and the bound; a `Timeout` would name only the key.
            Err(error @ RedisError::ConnectTimeout { .. }) => Err(StateError::Connection {
                backend: "redis",
                url: connection.url().to_owned(),
                source: Box::new(error),
            }),
            Err(RedisError::Connect { url, source }) => {
                Err(StateError::Connection { backend: "redis", url, source: Box::new(source) })
            }
            Err(error) => Err(StateError::Connection {
                backend: "redis",
                url: connection.url().to_owned(),
                source: Box::new(error),
            }),
        }
    }

    /// Registers a trait call; when many are in flight on a connected standalone store and
    /// `queue` accepts, the call is coalesced (see [`coalesce`]) and its reply is returned.
    fn coalesced(
        &self,
        key: &str,
        queue: impl FnOnce(&Coalescer, Key) -> Option<Reply>,
    ) -> (InFlight<'_>, Option<Reply>) {
        let shared = &*self.shared;
        let (in_flight, crowded) = shared.coalescer.enter();
        if !crowded || shared.clustered || !shared.connection.is_ready() || check_key(key).is_err() {
            return (in_flight, None);
        }
        let reply = queue(&shared.coalescer, self.full_key(key));
        (in_flight, reply)
    }

    /// The reply to a coalesced command.
    async fn coalesced_reply(&self, operation: &'static str, key: &str, reply: Reply) -> Result<Value> {
        match reply.await {
            Ok(result) => result.map_err(|e| self.error(operation, key, e)),
            // The dispatcher is gone: only while the store is being dropped.
            Err(_) => Err(StateError::Connection {
                backend: "redis",
                url: self.shared.connection.url().to_owned(),
                source: "the command dispatcher stopped".into(),
            }),
        }
    }

    /// The hash slot of `full` on a cluster; 0 on a single server, where every key shares one
    /// connection.
    fn slot(&self, full: &Key) -> u16 {
        if self.shared.clustered { redis_keyslot(full.as_bytes()) } else { 0 }
    }

    fn full_key(&self, key: &str) -> Key {
        let prefix = &self.shared.prefix;
        let mut full = String::with_capacity(prefix.len() + key.len());
        full.push_str(prefix);
        full.push_str(key);
        Key::from(full)
    }
}

impl StateStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateValue>> {
        let client = self.shared.connection.client();
        match self.coalesced(key, |coalescer, full_key| coalescer.get(client, full_key)) {
            (in_flight, Some(reply)) => StateFuture::new(async move {
                let _in_flight = in_flight;
                let reply = async { Self::to_state_value(key, self.coalesced_reply("get", key, reply).await?) };
                self.timed(Op::Get, reply).await
            }),
            (in_flight, None) => StateFuture::new(async move {
                let _in_flight = in_flight;
                self.timed(Op::Get, self.get_one(key)).await
            }),
        }
    }

    fn set<'a>(&'a self, key: &'a str, value: StateValue, ttl: Option<Duration>) -> StateFuture<'a, ()> {
        let client = self.shared.connection.client();
        // Only a plain SET becomes part of an MSET (which has no TTL).
        // An oversized value takes the lone path, which refuses it before sending.
        let queue = |coalescer: &Coalescer, full_key| match ttl {
            None if value.len() <= crate::MAX_VALUE_BYTES => {
                coalescer.set(client, full_key, Value::from(value.as_str()))
            }
            _ => None,
        };
        match self.coalesced(key, queue) {
            (in_flight, Some(reply)) => StateFuture::new(async move {
                let _in_flight = in_flight;
                let reply = async {
                    let reply = self.coalesced_reply("set", key, reply).await.map(drop);
                    self.acknowledged("set", key, reply).await
                };
                self.timed(Op::Set, reply).await
            }),
            (in_flight, None) => StateFuture::new(async move {
                let _in_flight = in_flight;
                self.timed(Op::Set, self.set_lone(key, value, ttl)).await
            }),
        }
    }

    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        StateFuture::new(self.timed(Op::Delete, async move {
            check_key(key)?;
            let client = self.client().await?;
            let removed: i64 = client.del(self.full_key(key)).await.map_err(|e| self.error("delete", key, e))?;
            self.acknowledged_keys("delete", [key]).await?;
            Ok(removed > 0)
        }))
    }

    fn exists<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        StateFuture::new(self.timed(Op::Exists, async move {
            check_key(key)?;
            let client = self.client().await?;
            let count: i64 = client.exists(self.full_key(key)).await.map_err(|e| self.error("exists", key, e))?;
            Ok(count > 0)
        }))
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StateFuture<'a, Ttl> {
        StateFuture::new(self.timed(Op::Ttl, async move {
            check_key(key)?;
            let client = self.client().await?;
            let ms: i64 = client.pttl(self.full_key(key)).await.map_err(|e| self.error("ttl", key, e))?;
            Ok(match ms {
                -2 => Ttl::Missing,
                -1 => Ttl::Persistent,
                ms => Ttl::Expires(Duration::from_millis(u64::try_from(ms).unwrap_or_default())),
            })
        }))
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StateFuture<'a, bool> {
        StateFuture::new(self.timed(Op::Expire, async move {
            check_key(key)?;
            let ms = clamp_ms(ttl_millis(key, ttl)?);
            let client = self.client().await?;
            let set: i64 =
                client.pexpire(self.full_key(key), ms, None).await.map_err(|e| self.error("expire", key, e))?;
            self.acknowledged_keys("expire", [key]).await?;
            Ok(set == 1)
        }))
    }

    fn set_if_not_exists<'a>(
        &'a self,
        key: &'a str,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, bool> {
        StateFuture::new(self.timed(Op::SetIfAbsent, self.set_if_absent_acknowledged(key, value, ttl)))
    }

    fn increment<'a>(&'a self, key: &'a str, by: Number) -> StateFuture<'a, Number> {
        StateFuture::new(RedisStore::increment(self, key, by))
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StateFuture<'a, Vec<Option<StateValue>>> {
        StateFuture::new(self.timed(Op::GetMany, self.get_many_values(keys)))
    }

    fn set_many<'a>(&'a self, entries: &'a [(&'a str, StateValue)], ttl: Option<Duration>) -> StateFuture<'a, ()> {
        StateFuture::new(RedisStore::set_many(self, entries, ttl))
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<String>> {
        let started = std::time::Instant::now();
        let pattern = infra_redis::glob_prefix(&format!("{}{prefix}", self.shared.prefix));
        let keys = futures::stream::once(async move { self.client().await })
            .map(move |client| match client {
                Err(error) => error_stream(error),
                Ok(client) => {
                    let keys = if self.shared.clustered {
                        client.scan_cluster_buffered(pattern.clone(), Some(1000), None).boxed()
                    } else {
                        client.scan_buffered(pattern.clone(), Some(1000), None).boxed()
                    };
                    let strip = self.shared.prefix.len();
                    keys.map_err(move |e| self.error("scan", prefix, e))
                        .map_ok(move |key| key.as_str_lossy().get(strip..).unwrap_or_default().to_owned())
                        .boxed()
                }
            })
            .flatten();
        CountedScan { stream: keys.boxed(), metrics: &self.shared.metrics, started, recorded: false }.boxed()
    }

    fn get_versioned<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<Versioned>> {
        StateFuture::new(self.timed(Op::GetVersioned, async move {
            let value = self.get_one(key).await?;
            Ok(value.map(|value| Versioned { version: value.version(), value }))
        }))
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, CasOutcome> {
        StateFuture::new(RedisStore::compare_and_swap(self, key, expected, value, ttl))
    }

    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: Expected) -> StateFuture<'a, bool> {
        StateFuture::new(RedisStore::compare_and_delete(self, key, expected))
    }

    fn connect(&self) -> StateFuture<'_, ()> {
        StateFuture::new(RedisStore::connect(self))
    }

    fn ping(&self) -> StateFuture<'_, Duration> {
        StateFuture::new(RedisStore::ping(self))
    }

    fn close(&self) -> StateFuture<'_, ()> {
        StateFuture::new(RedisStore::close(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_does_not_connect_and_debug_hides_the_password() {
        let url = RedisUrl::parse("redis://bot:hunter2@127.0.0.1:1").unwrap();
        let store = RedisStore::with_url(&url, "ns", Duration::from_millis(50), Duration::from_millis(50)).unwrap();
        let debug = format!("{store:?}");
        assert!(debug.contains("redis://bot:***@127.0.0.1:1"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
