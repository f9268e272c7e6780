//! The Redis backend, through `fred`.
//!
//! # Key layout
//!
//! Key `k` of a store with namespace `ns` is the Redis string `ns:k`; its value is the JSON text
//! exactly (`SET ns:k '{"qty":3}'`), readable by any Redis client. Counters are plain numbers
//! (`INCRBY` works on them from anywhere). Versions for compare-and-swap are not stored: a
//! version is the SHA-1 of the value's text, computed by Lua (`redis.sha1hex`) or locally.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use fred::{
    prelude::{
        Builder, Client, ClientLike, Config as FredConfig, Error as FredError, ErrorKind, EventInterface, Expiration,
        KeysInterface, LuaInterface, ReconnectPolicy, SetOptions, Value,
    },
    types::Key,
};
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use infra_config::{RedisUrl, StateConfig};

use crate::{
    CasOutcome, Expected, Number, Result, StateError, StateFuture, StateStore, StateValue, Ttl, Version, Versioned,
    store::{check_key, error_stream, ttl_millis},
};

mod coalesce;

use coalesce::{Coalescer, InFlight, Reply};

/// Commands buffered while disconnected before new ones fail at once instead of piling up.
const MAX_BUFFERED_COMMANDS: usize = 100_000;
/// Reconnection backoff: from 100 ms doubling up to 2 s, forever.
const RECONNECT_MIN_MS: u32 = 100;
const RECONNECT_MAX_MS: u32 = 2_000;
/// How often a first call waiting for the connection looks at its state.
const CONNECT_POLL: Duration = Duration::from_millis(5);

/// Float increments in double precision, written as `%.17g` (plus `.0` when integral) so
/// every backend stores the same text; the TTL is kept.
const INCREMENT_FLOAT: &str = r"
local current = 0
local text = redis.call('GET', KEYS[1])
if text then
  local ok, value = pcall(cjson.decode, text)
  if not ok or type(value) ~= 'number' then return redis.error_reply('NOTNUMBER') end
  current = value
end
local sum = current + tonumber(ARGV[1])
if sum ~= sum or sum == math.huge or sum == -math.huge then return redis.error_reply('OVERFLOW') end
local out = string.format('%.17g', sum)
if not string.find(out, '[%.e]') then out = out .. '.0' end
redis.call('SET', KEYS[1], out, 'KEEPTTL')
return out
";

/// Compare-and-swap. ARGV: mode (absent|value|version), expected, new value, ttl in ms or ''.
/// Returns {1, new version} or {0} (missing) or {0, current value, current version}.
const COMPARE_AND_SWAP: &str = r"
local current = redis.call('GET', KEYS[1])
local ok
if ARGV[1] == 'absent' then ok = (current == false)
elseif ARGV[1] == 'value' then ok = (current ~= false and current == ARGV[2])
else ok = (current ~= false and redis.sha1hex(current) == ARGV[2]) end
if ok then
  if ARGV[4] ~= '' then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) else redis.call('SET', KEYS[1], ARGV[3]) end
  return {1, redis.sha1hex(ARGV[3])}
end
if current == false then return {0} end
return {0, current, redis.sha1hex(current)}
";

/// A [`StateStore`] on Redis (standalone, or cluster with a `redis-cluster://` URL).
///
/// Nothing connects before the first call. A call that finds no connection starts a connection
/// attempt and waits for it at most the connect timeout; a refused or rejected attempt (wrong
/// password) fails that call at once with [`StateError::Connection`], and the next call tries
/// again. Once connected, lost connections are re-established in the background with backoff
/// (100 ms doubling to 2 s), and every call is bounded by the
/// operation timeout, so a dead server yields [`StateError::Timeout`] or
/// [`StateError::Connection`], never a hang. As with any network client, a write that timed out
/// may still have been applied.
///
/// Through `dyn StateStore`, plain `get`s and `set`s (no TTL) made while many calls are in
/// flight are coalesced into one `MGET` / `MSET` per batch on a standalone server (see
/// `redis/coalesce.rs`): under load that is cheaper than one boxed fred command each. A lone
/// call is sent as its own command.
///
/// Use a store from one tokio runtime: its connection task lives there.
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client,
    /// The connection task, once started; a new one is started if it ended without connecting.
    task: std::sync::Mutex<Option<fred::types::ConnectHandle>>,
    /// A first connection succeeded; from then on fred reconnects by itself.
    connected: AtomicBool,
    /// The last connection error fred reported, to explain a connect that timed out (a wrong
    /// password is retried like a network error and would otherwise only show as a timeout).
    last_error: Arc<std::sync::Mutex<Option<FredError>>>,
    namespace: String,
    prefix: String,
    url: String,
    clustered: bool,
    operation_timeout: Duration,
    connect_timeout: Duration,
    coalescer: Coalescer,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Stop the connection task (it would otherwise keep reconnecting).
        let started = self.task.lock().map(|task| task.is_some()).unwrap_or(true);
        if started && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            runtime.spawn(async move {
                let _ = client.quit().await;
            });
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.shared.url)
            .field("namespace", &self.shared.namespace)
            .field("operation_timeout", &self.shared.operation_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for `config` (which must name a Redis URL). Does not connect.
    pub fn new(config: &StateConfig) -> Result<Self> {
        let url = config.redis_url.as_ref().ok_or(StateError::MissingUrl)?;
        Self::with_url(url, &config.namespace, config.operation_timeout, config.connect_timeout)
    }

    /// A store on `url` under `namespace`, with explicit timeouts. Does not connect.
    pub fn with_url(
        url: &RedisUrl,
        namespace: &str,
        operation_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self> {
        // fred's parse errors may quote the URL; keep only our redacted form.
        let config_error = |reason: &str| StateError::Connection {
            backend: "redis",
            url: url.redacted(),
            source: reason.to_owned().into(),
        };
        let mut fred_config = FredConfig::from_url(url.expose())
            .map_err(|_| config_error("the url is not usable by the redis client"))?;
        // A failed first connection ends the connection task at once (instead of waiting out a
        // backoff delay first); the next call starts a new one.
        fred_config.fail_fast = true;
        let clustered = fred_config.server.is_clustered();
        let mut builder = Builder::from_config(fred_config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = connect_timeout;
                c.internal_command_timeout = operation_timeout;
                c.max_command_buffer_len = MAX_BUFFERED_COMMANDS;
            })
            .with_performance_config(|p| p.default_command_timeout = operation_timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, RECONNECT_MIN_MS, RECONNECT_MAX_MS, 2));
        let client = builder.build().map_err(|_| config_error("the redis client rejected its configuration"))?;
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                task: std::sync::Mutex::new(None),
                connected: AtomicBool::new(false),
                last_error: Arc::default(),
                namespace: namespace.to_owned(),
                prefix: format!("{namespace}:"),
                url: url.redacted(),
                clustered,
                operation_timeout,
                connect_timeout,
                coalescer: Coalescer::default(),
            }),
        })
    }

    /// [`StateStore::get`] without boxing the future.
    ///
    /// Called on a concrete `RedisStore`, these inherent methods take precedence over the trait's
    /// and skip the per-call allocation a `dyn StateStore` needs: fred's command futures are
    /// about 5 KB, and boxing one costs ~0.7 µs per call at 200 concurrent tasks on a 2-core
    /// machine (see docs/benchmarks.md). Same semantics as the trait methods.
    pub async fn get(&self, key: &str) -> Result<Option<StateValue>> {
        self.get_one(key).await
    }

    /// [`StateStore::set`] without boxing the future.
    pub async fn set(&self, key: &str, value: StateValue, ttl: Option<Duration>) -> Result<()> {
        self.set_one(key, value, ttl, false).await.map(drop)
    }

    /// [`StateStore::set_if_not_exists`] without boxing the future.
    pub async fn set_if_not_exists(&self, key: &str, value: StateValue, ttl: Option<Duration>) -> Result<bool> {
        self.set_one(key, value, ttl, true).await
    }

    /// [`StateStore::increment`] without boxing the future.
    pub async fn increment(&self, key: &str, by: Number) -> Result<Number> {
        self.increment_one(key, by).await
    }

    /// [`StateStore::get_many`] without boxing the future.
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<StateValue>>> {
        self.get_many_values(keys).await
    }

    /// [`StateStore::set_many`] without boxing the future.
    pub async fn set_many(&self, entries: &[(&str, StateValue)], ttl: Option<Duration>) -> Result<()> {
        self.set_many_values(entries, ttl).await
    }

    /// [`StateStore::compare_and_swap`] without boxing the future.
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome> {
        self.compare_and_swap_one(key, expected, value, ttl).await
    }

    /// The connected client, connecting on first use.
    async fn client(&self, operation: &'static str, key: &str) -> Result<&Client> {
        if self.shared.connected.load(Ordering::Acquire) {
            return Ok(&self.shared.client);
        }
        // Boxed so the rarely taken connect path does not bloat (and slow down, by the memory
        // moved) every call's future.
        Box::pin(self.connect(operation, key)).await
    }

    /// Starts the connection task once, then waits (bounded) for it to be connected.
    async fn connect(&self, operation: &'static str, key: &str) -> Result<&Client> {
        let shared = &self.shared;
        {
            let mut task = shared.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if task.is_none() {
                let last_error = Arc::clone(&shared.last_error);
                // Ends when the client quits (on drop), which closes the error channel.
                drop(shared.client.on_error(move |(error, _server)| {
                    let last_error = Arc::clone(&last_error);
                    async move {
                        *last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
                        Ok(())
                    }
                }));
            }
            if task.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
                // Lives until `quit` (on drop), reconnecting with backoff once connected.
                *task = Some(shared.client.connect());
            }
        }
        let deadline = tokio::time::Instant::now() + shared.connect_timeout;
        loop {
            if shared.client.is_connected() {
                shared.connected.store(true, Ordering::Release);
                return Ok(&shared.client);
            }
            // fred's connect event can fire between its state check and its subscription, so
            // never wait on it alone: look at the state again every few milliseconds.
            let slice = (tokio::time::Instant::now() + CONNECT_POLL).min(deadline);
            match tokio::time::timeout_at(slice, shared.client.wait_for_connect()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(self.error(operation, key, error)),
                Err(_) if tokio::time::Instant::now() < deadline => {}
                Err(_) => {
                    let last = shared.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
                    return Err(match last {
                        Some(error) => StateError::Connection {
                            backend: "redis",
                            url: shared.url.clone(),
                            source: Box::new(error),
                        },
                        None => StateError::Timeout { operation, key: key.to_owned(), timeout: shared.connect_timeout },
                    });
                }
            }
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
        if !crowded || shared.clustered || !shared.connected.load(Ordering::Acquire) || check_key(key).is_err() {
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
                url: self.shared.url.clone(),
                source: "the command dispatcher stopped".into(),
            }),
        }
    }

    fn full_key(&self, key: &str) -> Key {
        let prefix = &self.shared.prefix;
        let mut full = String::with_capacity(prefix.len() + key.len());
        full.push_str(prefix);
        full.push_str(key);
        Key::from(full)
    }

    fn error(&self, operation: &'static str, key: &str, error: FredError) -> StateError {
        match error.kind() {
            ErrorKind::Timeout => {
                StateError::Timeout { operation, key: key.to_owned(), timeout: self.shared.operation_timeout }
            }
            ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Auth | ErrorKind::Backpressure => {
                StateError::Connection { backend: "redis", url: self.shared.url.clone(), source: Box::new(error) }
            }
            _ => StateError::Backend { backend: "redis", operation, key: key.to_owned(), source: Box::new(error) },
        }
    }

    fn to_state_value(key: &str, value: Value) -> Result<Option<StateValue>> {
        match value {
            Value::Null => Ok(None),
            Value::String(text) => Ok(Some(StateValue::from_json_text(&*text))),
            Value::Bytes(bytes) => String::from_utf8(bytes.to_vec())
                .map(|text| Some(StateValue::from_json_text(text)))
                .map_err(|_| StateError::NotText { key: key.to_owned() }),
            // RESP3 or odd replies: integers and doubles are still JSON.
            Value::Integer(n) => Ok(Some(StateValue::from_json_text(n.to_string()))),
            other => other
                .into_string()
                .map(|text| Some(StateValue::from_json_text(text)))
                .ok_or_else(|| StateError::NotText { key: key.to_owned() }),
        }
    }

    async fn get_one(&self, key: &str) -> Result<Option<StateValue>> {
        check_key(key)?;
        let client = self.client("get", key).await?;
        let value: Value = client.get(self.full_key(key)).await.map_err(|e| self.error("get", key, e))?;
        Self::to_state_value(key, value)
    }

    async fn set_one(&self, key: &str, value: StateValue, ttl: Option<Duration>, nx: bool) -> Result<bool> {
        check_key(key)?;
        let expiration = ttl.map(|ttl| ttl_millis(key, ttl)).transpose()?.map(|ms| Expiration::PX(clamp_ms(ms)));
        let operation = if nx { "set_if_not_exists" } else { "set" };
        let client = self.client(operation, key).await?;
        let reply: Value = client
            .set(self.full_key(key), value.as_str(), expiration, nx.then_some(SetOptions::NX), false)
            .await
            .map_err(|e| self.error(operation, key, e))?;
        Ok(!reply.is_null())
    }

    async fn increment_one(&self, key: &str, by: Number) -> Result<Number> {
        check_key(key)?;
        let client = self.client("increment", key).await?;
        let full_key = self.full_key(key);
        match by {
            Number::Int(by) => {
                client.incr_by::<i64, _>(full_key, by).await.map(Number::Int).map_err(|e| match e.details() {
                    d if d.contains("overflow") => StateError::Overflow { key: key.to_owned(), by: by.to_string() },
                    d if d.contains("not an integer") => StateError::NotAnInteger { key: key.to_owned(), by },
                    _ => self.error("increment", key, e),
                })
            }
            Number::Float(by) => {
                let reply: Result<String, FredError> =
                    client.eval(INCREMENT_FLOAT, vec![full_key], vec![by.to_string()]).await;
                match reply {
                    Ok(text) => {
                        text.parse().map(Number::Float).map_err(|_| StateError::NotANumber { key: key.to_owned(), by })
                    }
                    Err(e) if e.details().contains("NOTNUMBER") => {
                        Err(StateError::NotANumber { key: key.to_owned(), by })
                    }
                    Err(e) if e.details().contains("OVERFLOW") => {
                        Err(StateError::Overflow { key: key.to_owned(), by: by.to_string() })
                    }
                    Err(e) => Err(self.error("increment", key, e)),
                }
            }
        }
    }

    async fn get_many_values(&self, keys: &[&str]) -> Result<Vec<Option<StateValue>>> {
        for key in keys {
            check_key(key)?;
        }
        let Some(first) = keys.first() else { return Ok(Vec::new()) };
        let client = self.client("get_many", first).await?;
        let values: Vec<Value> = if self.shared.clustered {
            // Keys of one batch may live on different nodes: one pipelined GET each.
            let pipeline = client.pipeline();
            for key in keys {
                let () = pipeline.get(self.full_key(key)).await.map_err(|e| self.error("get_many", key, e))?;
            }
            pipeline.all().await
        } else {
            let full: Vec<Key> = keys.iter().map(|k| self.full_key(k)).collect();
            client.mget(full).await
        }
        .map_err(|e| self.error("get_many", first, e))?;
        keys.iter().zip(values).map(|(key, value)| Self::to_state_value(key, value)).collect()
    }

    async fn set_many_values(&self, entries: &[(&str, StateValue)], ttl: Option<Duration>) -> Result<()> {
        let mut expiration = None;
        for (key, _) in entries {
            check_key(key)?;
            expiration = ttl.map(|ttl| ttl_millis(key, ttl)).transpose()?.map(|ms| Expiration::PX(clamp_ms(ms)));
        }
        let Some((first, _)) = entries.first() else { return Ok(()) };
        let client = self.client("set_many", first).await?;
        // One pipelined SET per entry: one round trip, routed per key on a cluster.
        let pipeline = client.pipeline();
        for (key, value) in entries {
            let () = pipeline
                .set(self.full_key(key), value.as_str(), expiration.clone(), None, false)
                .await
                .map_err(|e| self.error("set_many", key, e))?;
        }
        let replies: Vec<Value> = pipeline.all().await.map_err(|e| self.error("set_many", first, e))?;
        debug_assert_eq!(replies.len(), entries.len());
        Ok(())
    }

    async fn compare_and_swap_one(
        &self,
        key: &str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome> {
        check_key(key)?;
        let ttl = ttl.map(|ttl| ttl_millis(key, ttl)).transpose()?.map(clamp_ms);
        let (mode, expected) = match expected {
            Expected::Absent => ("absent", String::new()),
            Expected::Value(v) => ("value", v.as_str().to_owned()),
            Expected::Version(v) => ("version", v.0),
        };
        let client = self.client("compare_and_swap", key).await?;
        let args = vec![
            mode.to_owned(),
            expected,
            value.as_str().to_owned(),
            ttl.map(|ms| ms.to_string()).unwrap_or_default(),
        ];
        let reply: Vec<Value> = client
            .eval(COMPARE_AND_SWAP, vec![self.full_key(key)], args)
            .await
            .map_err(|e| self.error("compare_and_swap", key, e))?;
        let mut reply = reply.into_iter();
        let swapped = reply.next().and_then(|v| v.as_i64()) == Some(1);
        let text = |v: Option<Value>| v.and_then(Value::into_string);
        if swapped {
            let version = text(reply.next()).unwrap_or_default();
            return Ok(CasOutcome::Swapped(Version(version)));
        }
        match (text(reply.next()), text(reply.next())) {
            (Some(current), Some(version)) => Ok(CasOutcome::Conflict(Some(Versioned {
                value: StateValue::from_json_text(current),
                version: Version(version),
            }))),
            _ => Ok(CasOutcome::Conflict(None)),
        }
    }
}

fn clamp_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A SCAN pattern matching keys that start with `prefix` literally.
fn glob_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

impl StateStore for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn namespace(&self) -> &str {
        &self.shared.namespace
    }

    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateValue>> {
        let client = &self.shared.client;
        match self.coalesced(key, |coalescer, full_key| coalescer.get(client, full_key)) {
            (in_flight, Some(reply)) => StateFuture::new(async move {
                let _in_flight = in_flight;
                Self::to_state_value(key, self.coalesced_reply("get", key, reply).await?)
            }),
            (in_flight, None) => StateFuture::new(async move {
                let _in_flight = in_flight;
                self.get_one(key).await
            }),
        }
    }

    fn set<'a>(&'a self, key: &'a str, value: StateValue, ttl: Option<Duration>) -> StateFuture<'a, ()> {
        let client = &self.shared.client;
        // Only a plain SET becomes part of an MSET (which has no TTL).
        let queue = |coalescer: &Coalescer, full_key| match ttl {
            None => coalescer.set(client, full_key, Value::from(value.as_str())),
            Some(_) => None,
        };
        match self.coalesced(key, queue) {
            (in_flight, Some(reply)) => StateFuture::new(async move {
                let _in_flight = in_flight;
                self.coalesced_reply("set", key, reply).await.map(drop)
            }),
            (in_flight, None) => StateFuture::new(async move {
                let _in_flight = in_flight;
                self.set_one(key, value, ttl, false).await.map(drop)
            }),
        }
    }

    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        StateFuture::new(async move {
            check_key(key)?;
            let client = self.client("delete", key).await?;
            let removed: i64 = client.del(self.full_key(key)).await.map_err(|e| self.error("delete", key, e))?;
            Ok(removed > 0)
        })
    }

    fn exists<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        StateFuture::new(async move {
            check_key(key)?;
            let client = self.client("exists", key).await?;
            let count: i64 = client.exists(self.full_key(key)).await.map_err(|e| self.error("exists", key, e))?;
            Ok(count > 0)
        })
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StateFuture<'a, Ttl> {
        StateFuture::new(async move {
            check_key(key)?;
            let client = self.client("ttl", key).await?;
            let ms: i64 = client.pttl(self.full_key(key)).await.map_err(|e| self.error("ttl", key, e))?;
            Ok(match ms {
                -2 => Ttl::Missing,
                -1 => Ttl::Persistent,
                ms => Ttl::Expires(Duration::from_millis(u64::try_from(ms).unwrap_or_default())),
            })
        })
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StateFuture<'a, bool> {
        StateFuture::new(async move {
            check_key(key)?;
            let ms = clamp_ms(ttl_millis(key, ttl)?);
            let client = self.client("expire", key).await?;
            let set: i64 =
                client.pexpire(self.full_key(key), ms, None).await.map_err(|e| self.error("expire", key, e))?;
            Ok(set == 1)
        })
    }

    fn set_if_not_exists<'a>(
        &'a self,
        key: &'a str,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, bool> {
        StateFuture::new(self.set_one(key, value, ttl, true))
    }

    fn increment<'a>(&'a self, key: &'a str, by: Number) -> StateFuture<'a, Number> {
        StateFuture::new(self.increment_one(key, by))
    }

    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StateFuture<'a, Vec<Option<StateValue>>> {
        StateFuture::new(self.get_many_values(keys))
    }

    fn set_many<'a>(&'a self, entries: &'a [(&'a str, StateValue)], ttl: Option<Duration>) -> StateFuture<'a, ()> {
        StateFuture::new(self.set_many_values(entries, ttl))
    }

    fn scan<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<String>> {
        let pattern = glob_prefix(&format!("{}{prefix}", self.shared.prefix));
        futures::stream::once(async move { self.client("scan", prefix).await })
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
            .flatten()
            .boxed()
    }

    fn get_versioned<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<Versioned>> {
        StateFuture::new(async move {
            let value = self.get_one(key).await?;
            Ok(value.map(|value| Versioned { version: value.version(), value }))
        })
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, CasOutcome> {
        StateFuture::new(self.compare_and_swap_one(key, expected, value, ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_become_literal_glob_patterns() {
        assert_eq!(glob_prefix("ns:prices:"), "ns:prices:*");
        assert_eq!(glob_prefix("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
    }

    #[test]
    fn construction_does_not_connect_and_debug_hides_the_password() {
        let url = RedisUrl::parse("redis://bot:hunter2@127.0.0.1:1").unwrap();
        let store = RedisStore::with_url(&url, "ns", Duration::from_millis(50), Duration::from_millis(50)).unwrap();
        let debug = format!("{store:?}");
        assert!(debug.contains("redis://bot:***@127.0.0.1:1"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
