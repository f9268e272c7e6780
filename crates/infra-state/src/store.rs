//! The [`StateStore`] trait every backend implements, and typed helpers on top of it.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
    time::Duration,
};

use futures::{TryStreamExt, future::BoxFuture, stream::BoxStream};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    CasOutcome, Expected, LockGuard, Number, Result, StateError, StateValue, Ttl, Versioned,
    update::{UpdateOptions, UpdateResult, conflict_pause},
};

/// Key/value state shared by a bot's tasks (memory) or by many processes (Redis).
///
/// Object-safe: hold it as `Arc<dyn StateStore>` and switch backends by configuration. Every
/// backend passes the same conformance suite, so they behave the same; differences are bugs.
///
/// Keys are any non-empty strings; backends store them under the store's namespace, which is
/// invisible through this trait. Values are JSON text ([`StateValue`]); [`StateStoreExt`] adds
/// typed (serde) helpers. Time to live is millisecond-precise; a key is gone once its TTL has
/// elapsed, and is never returned after that.
pub trait StateStore: fmt::Debug + Send + Sync + 'static {
    /// Which backend this is: `memory` or `redis`.
    fn backend(&self) -> &'static str;

    /// The namespace every key lives under.
    fn namespace(&self) -> &str;

    /// The value of `key`, if it exists.
    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateValue>>;

    /// Stores `value`; with a TTL the key expires after it, without one any previous TTL is
    /// removed (Redis `SET` semantics).
    fn set<'a>(&'a self, key: &'a str, value: StateValue, ttl: Option<Duration>) -> StateFuture<'a, ()>;

    /// Removes `key`; says whether it existed.
    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool>;

    /// Whether `key` exists.
    fn exists<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool>;

    /// The remaining time to live of `key`.
    fn ttl<'a>(&'a self, key: &'a str) -> StateFuture<'a, Ttl>;

    /// Sets the TTL of an existing key; says whether the key existed.
    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StateFuture<'a, bool>;

    /// Stores `value` only if `key` does not exist; says whether it did. With a TTL this is a
    /// lock that frees itself.
    fn set_if_not_exists<'a>(&'a self, key: &'a str, value: StateValue, ttl: Option<Duration>)
    -> StateFuture<'a, bool>;

    /// Adds `by` atomically and returns the new value. A missing key starts at 0; an existing
    /// TTL is kept (Redis `INCRBY`/`INCRBYFLOAT`). See [`Number`] for integer and float rules.
    fn increment<'a>(&'a self, key: &'a str, by: Number) -> StateFuture<'a, Number>;

    /// The values of `keys`, in order, in one round trip.
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StateFuture<'a, Vec<Option<StateValue>>>;

    /// Stores every entry, all with the same TTL (or none), in one round trip. Every key is
    /// checked first, so a bad key or TTL leaves the store untouched. On Redis the batch is one
    /// `MULTI`/`EXEC` transaction: no reader sees part of it (on a cluster, atomic per hash
    /// slot: put `{tag}` in the keys to keep a batch in one slot). On the memory backend each
    /// entry is written atomically but a concurrent reader may see part of the batch.
    fn set_many<'a>(&'a self, entries: &'a [(&'a str, StateValue)], ttl: Option<Duration>) -> StateFuture<'a, ()>;

    /// Every key starting with `prefix` (`""` for all), in no particular order. Redis walks
    /// the keyspace with `SCAN`, never `KEYS`, so a key written during the walk may be missed
    /// or seen twice.
    fn scan<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<String>>;

    /// The value of `key` with its version, for [`StateStore::compare_and_swap`].
    fn get_versioned<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<Versioned>>;

    /// Stores `value` only if `key` matches `expected`, atomically. `ttl` works as in
    /// [`StateStore::set`].
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, CasOutcome>;

    /// Deletes `key` only if it matches `expected`, atomically; says whether it deleted. This is
    /// how a lock's owner releases it only while it still holds it ([`Expected::Absent`] never
    /// deletes anything).
    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: Expected) -> StateFuture<'a, bool>;

    /// Connects now, within the connect timeout, so a bot fails at start-up rather than on its
    /// first call. Backends without a connection answer at once.
    fn connect(&self) -> StateFuture<'_, ()> {
        StateFuture::ready(Ok(()))
    }

    /// One round trip to the backend (`PING` on Redis, connecting first if needed), timed: a
    /// health check a bot runs before trading.
    fn ping(&self) -> StateFuture<'_, Duration> {
        StateFuture::ready(Ok(Duration::ZERO))
    }

    /// Finishes the calls already sent, then releases the store's connections and background
    /// tasks. Later calls fail with [`StateError::Connection`](crate::StateError::Connection)
    /// saying the store was closed (the memory backend has nothing to release and keeps
    /// working). Closing twice is harmless. Dropping a store without closing it also releases
    /// everything, in the background.
    fn close(&self) -> StateFuture<'_, ()> {
        StateFuture::ready(Ok(()))
    }
}

/// What [`StateStore`] methods return: a boxed future, or for in-process backends a result
/// that is already there, so the memory backend's calls allocate nothing for the future.
#[must_use = "futures do nothing unless awaited"]
pub struct StateFuture<'a, T>(FutureKind<'a, T>);

// A ready success holds only its value and a ready error is boxed, so a ready future is the size
// of its value rather than of `StateError` (72 bytes): the memory backend's hot path moves it
// several times between the store and the caller (issue #11).
enum FutureKind<'a, T> {
    /// `None` once taken.
    Ready(Option<T>),
    /// `None` once taken.
    Failed(Option<Box<StateError>>),
    Boxed(BoxFuture<'a, Result<T>>),
}

impl<'a, T> StateFuture<'a, T> {
    /// A future that resolves at once to `result`.
    #[inline]
    pub fn ready(result: Result<T>) -> Self {
        match result {
            Ok(value) => Self(FutureKind::Ready(Some(value))),
            Err(error) => Self::failed(error),
        }
    }

    /// Out of line: errors are the rare case, and boxing one is not worth inlining.
    #[cold]
    #[inline(never)]
    fn failed(error: StateError) -> Self {
        Self(FutureKind::Failed(Some(Box::new(error))))
    }

    /// Boxes any future.
    pub fn new(future: impl Future<Output = Result<T>> + Send + 'a) -> Self {
        Self(FutureKind::Boxed(Box::pin(future)))
    }

    /// The result if it is there now (polled once, without a runtime), else `None`: what
    /// [`FutureExt::now_or_never`](futures::FutureExt::now_or_never) does, and found before it.
    /// An already ready result is handed back directly, without a waker, a poll or moving a
    /// `Result` through them, which halves the cost of a memory call made from synchronous code.
    ///
    /// # Panics
    ///
    /// If the future already resolved, as polling it again would.
    #[inline]
    pub fn now_or_never(self) -> Option<Result<T>> {
        match self.0 {
            FutureKind::Ready(Some(value)) => Some(Ok(value)),
            kind => Self(kind).poll_once(),
        }
    }

    /// The rest of [`StateFuture::now_or_never`], out of line so that the ready case inlines.
    #[inline(never)]
    fn poll_once(self) -> Option<Result<T>> {
        match self.0 {
            FutureKind::Ready(value) => Some(Ok(value.expect(DONE))),
            FutureKind::Failed(error) => Some(Err(*error.expect(DONE))),
            FutureKind::Boxed(mut future) => match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(result) => Some(result),
                Poll::Pending => None,
            },
        }
    }
}

const DONE: &str = "StateFuture polled after completion";

impl<T: Unpin> Future for StateFuture<'_, T> {
    type Output = Result<T>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            FutureKind::Ready(value) => Poll::Ready(Ok(value.take().expect(DONE))),
            FutureKind::Failed(error) => Poll::Ready(Err(*error.take().expect(DONE))),
            FutureKind::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for StateFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.0 {
            FutureKind::Ready(Some(_)) | FutureKind::Failed(Some(_)) => "ready",
            FutureKind::Ready(None) | FutureKind::Failed(None) => "done",
            FutureKind::Boxed(_) => "pending",
        };
        f.debug_tuple("StateFuture").field(&kind).finish()
    }
}

/// A store behind a pointer: `Arc<DynStateStore>`.
pub type DynStateStore = dyn StateStore;

/// A shared store is a store: `Arc<dyn StateStore>` gets every helper, [`StateStoreExt::lock`]
/// included.
impl<S: StateStore + ?Sized> StateStore for std::sync::Arc<S> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }
    fn namespace(&self) -> &str {
        (**self).namespace()
    }
    fn get<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<StateValue>> {
        (**self).get(key)
    }
    fn set<'a>(&'a self, key: &'a str, value: StateValue, ttl: Option<Duration>) -> StateFuture<'a, ()> {
        (**self).set(key, value, ttl)
    }
    fn delete<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        (**self).delete(key)
    }
    fn exists<'a>(&'a self, key: &'a str) -> StateFuture<'a, bool> {
        (**self).exists(key)
    }
    fn ttl<'a>(&'a self, key: &'a str) -> StateFuture<'a, Ttl> {
        (**self).ttl(key)
    }
    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StateFuture<'a, bool> {
        (**self).expire(key, ttl)
    }
    fn set_if_not_exists<'a>(
        &'a self,
        key: &'a str,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, bool> {
        (**self).set_if_not_exists(key, value, ttl)
    }
    fn increment<'a>(&'a self, key: &'a str, by: Number) -> StateFuture<'a, Number> {
        (**self).increment(key, by)
    }
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StateFuture<'a, Vec<Option<StateValue>>> {
        (**self).get_many(keys)
    }
    fn set_many<'a>(&'a self, entries: &'a [(&'a str, StateValue)], ttl: Option<Duration>) -> StateFuture<'a, ()> {
        (**self).set_many(entries, ttl)
    }
    fn scan<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<String>> {
        (**self).scan(prefix)
    }
    fn get_versioned<'a>(&'a self, key: &'a str) -> StateFuture<'a, Option<Versioned>> {
        (**self).get_versioned(key)
    }
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> StateFuture<'a, CasOutcome> {
        (**self).compare_and_swap(key, expected, value, ttl)
    }
    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: Expected) -> StateFuture<'a, bool> {
        (**self).compare_and_delete(key, expected)
    }
    fn connect(&self) -> StateFuture<'_, ()> {
        (**self).connect()
    }
    fn ping(&self) -> StateFuture<'_, Duration> {
        (**self).ping()
    }
    fn close(&self) -> StateFuture<'_, ()> {
        (**self).close()
    }
}

/// Typed helpers for every [`StateStore`], `dyn StateStore` included.
pub trait StateStoreExt: StateStore {
    /// Reads `key` and decodes its JSON into `T`.
    fn get_json<'a, T: DeserializeOwned>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<Option<T>>> + Send + 'a {
        async move {
            match self.get(key).await? {
                Some(value) => decode(key, &value).map(Some),
                None => Ok(None),
            }
        }
    }

    /// Encodes `value` as JSON and stores it.
    fn set_json<'a, T: Serialize + ?Sized + Sync>(
        &'a self,
        key: &'a str,
        value: &'a T,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        async move { self.set(key, encode(key, value)?, ttl).await }
    }

    /// Adds an integer and returns the new value.
    fn incr<'a>(&'a self, key: &'a str, by: i64) -> impl Future<Output = Result<i64>> + Send + 'a {
        async move {
            match self.increment(key, Number::Int(by)).await? {
                Number::Int(n) => Ok(n),
                Number::Float(_) => Err(StateError::NotAnInteger { key: key.to_owned(), by }),
            }
        }
    }

    /// Adds a float and returns the new value.
    fn incr_float<'a>(&'a self, key: &'a str, by: f64) -> impl Future<Output = Result<f64>> + Send + 'a {
        async move {
            match self.increment(key, Number::Float(by)).await? {
                Number::Float(x) => Ok(x),
                Number::Int(n) => Ok(n as f64),
            }
        }
    }

    /// Every key starting with `prefix`, collected and sorted.
    fn keys<'a>(&'a self, prefix: &'a str) -> impl Future<Output = Result<Vec<String>>> + Send + 'a {
        async move {
            let mut keys: Vec<String> = self.scan(prefix).try_collect().await?;
            keys.sort();
            keys.dedup();
            Ok(keys)
        }
    }

    /// Reads `key`, applies `update` and writes the result with compare-and-swap, retrying on
    /// conflicts: an optimistic read-modify-write that is safe across processes. Returns the
    /// stored value.
    ///
    /// `update` receives the current value (`None` when missing) and returns the new one: a
    /// plain `T`, or an `Option<T>` / `Result<T, E>` whose `None` / `Err` refuses the update
    /// ([`StateError::UpdateRefused`], the value untouched). Conflicts are retried at most
    /// [`UpdateOptions::DEFAULT_MAX_ATTEMPTS`] times in all, with a short jittered pause between
    /// them, then [`StateError::TooManyConflicts`]; [`StateStoreExt::update_json_with`] sets
    /// the bound.
    fn update_json<'a, T, R, F>(
        &'a self,
        key: &'a str,
        ttl: Option<Duration>,
        update: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'a,
        R: UpdateResult<T> + Send + 'a,
        F: FnMut(Option<T>) -> R + Send + 'a,
    {
        self.update_json_with(key, UpdateOptions::new().ttl(ttl), update)
    }

    /// [`StateStoreExt::update_json`] with explicit options (TTL, attempts).
    fn update_json_with<'a, T, R, F>(
        &'a self,
        key: &'a str,
        options: UpdateOptions,
        mut update: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'a,
        R: UpdateResult<T> + Send + 'a,
        F: FnMut(Option<T>) -> R + Send + 'a,
    {
        async move {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let current = self.get_versioned(key).await?;
                let (expected, old) = match current {
                    Some(versioned) => {
                        let old = decode(key, &versioned.value)?;
                        (Expected::Version(versioned.version), Some(old))
                    }
                    None => (Expected::Absent, None),
                };
                let new = update(old)
                    .into_update()
                    .map_err(|reason| StateError::UpdateRefused { key: key.to_owned(), reason })?;
                let encoded = encode(key, &new)?;
                if self.compare_and_swap(key, expected, encoded, options.ttl).await?.is_swapped() {
                    return Ok(new);
                }
                if attempt >= options.max_attempts {
                    return Err(StateError::TooManyConflicts { key: key.to_owned(), attempts: attempt });
                }
                tokio::time::sleep(conflict_pause(attempt)).await;
            }
        }
    }

    /// The values of `keys` (any string type), decoded into `T`, in one round trip.
    fn get_many_json<'a, T, K>(&'a self, keys: &'a [K]) -> impl Future<Output = Result<Vec<Option<T>>>> + Send + 'a
    where
        T: DeserializeOwned + 'a,
        K: AsRef<str> + Sync,
    {
        async move {
            let names: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
            let values = self.get_many(&names).await?;
            names.iter().zip(values).map(|(key, value)| value.map(|value| decode(key, &value)).transpose()).collect()
        }
    }

    /// Encodes every value as JSON and stores them in one batch ([`StateStore::set_many`]);
    /// keys are any string type.
    fn set_many_json<'a, T, K>(
        &'a self,
        entries: &'a [(K, T)],
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<()>> + Send + 'a
    where
        T: Serialize + Sync + 'a,
        K: AsRef<str> + Sync,
    {
        async move {
            let encoded = entries
                .iter()
                .map(|(key, value)| Ok((key.as_ref(), encode(key.as_ref(), value)?)))
                .collect::<Result<Vec<_>>>()?;
            self.set_many(&encoded, ttl).await
        }
    }

    /// Takes the lock `name` for `ttl` if nobody holds it: `Some(guard)` for the new owner,
    /// `None` while another owner holds it. See [`LockGuard`]: it can be extended and released
    /// only by its owner, and dropping it releases it in the background.
    fn lock<'a>(&'a self, name: &'a str, ttl: Duration) -> impl Future<Output = Result<Option<LockGuard>>> + Send + 'a
    where
        Self: Clone + Sized,
    {
        LockGuard::acquire(std::sync::Arc::new(self.clone()), name, ttl)
    }
}

impl<S: StateStore + ?Sized> StateStoreExt for S {}

fn decode<T: DeserializeOwned>(key: &str, value: &StateValue) -> Result<T> {
    value.decode().map_err(|source| StateError::Decode {
        key: key.to_owned(),
        type_name: std::any::type_name::<T>(),
        source,
    })
}

fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<StateValue> {
    StateValue::json(value).map_err(|source| StateError::Encode { key: key.to_owned(), source })
}

/// Rejects keys every backend must reject the same way.
#[inline]
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() { Err(empty_key()) } else { Ok(()) }
}

/// The longest value a store accepts, in bytes: 512 MiB, the largest string Redis stores (its
/// default `proto-max-bulk-len`; a longer argument makes it drop the connection). Every
/// backend refuses a longer value with [`StateError::ValueTooLarge`] before sending anything,
/// so both behave alike and the error names the size.
pub const MAX_VALUE_BYTES: usize = 512 * 1024 * 1024;

/// Rejects a key, then a value longer than [`MAX_VALUE_BYTES`], as every backend must.
#[inline]
pub(crate) fn check_entry(key: &str, value: &StateValue) -> Result<()> {
    if entry_is_valid(key, value) { Ok(()) } else { Err(entry_error(key, value)) }
}

/// Whether [`check_entry`] accepts the entry: one test, so a hot path can take the rest of its
/// work as known to succeed.
#[inline]
pub(crate) fn entry_is_valid(key: &str, value: &StateValue) -> bool {
    !key.is_empty() && value.len() <= MAX_VALUE_BYTES
}

/// Why [`check_entry`] refused: the key first, then the size.
#[cold]
#[inline(never)]
fn entry_error(key: &str, value: &StateValue) -> StateError {
    if key.is_empty() {
        empty_key()
    } else {
        StateError::ValueTooLarge { key: key.to_owned(), size: value.len(), limit: MAX_VALUE_BYTES }
    }
}

/// Out of line so that checking a key is one comparison on every hot path.
#[cold]
#[inline(never)]
fn empty_key() -> StateError {
    StateError::InvalidKey { key: String::new(), reason: "keys must not be empty" }
}

/// The longest TTL, in milliseconds: Redis refuses a TTL whose deadline (its clock plus the
/// TTL) does not fit in 63 bits, so every backend refuses the same ones, with the same error.
pub(crate) const MAX_TTL_MS: u64 = i64::MAX as u64 / 2;

/// TTLs are whole milliseconds, rounded up so a key never expires before it was asked to.
pub(crate) fn ttl_millis(key: &str, ttl: Duration) -> Result<u64> {
    let micros = ttl.as_micros();
    let ms = micros.div_ceil(1000);
    if micros < 1000 || ms > u128::from(MAX_TTL_MS) {
        return Err(StateError::InvalidTtl { key: key.to_owned(), ttl });
    }
    Ok(ms as u64)
}

/// A stream holding just one error, for a `scan` that cannot start.
#[cfg(feature = "redis")]
pub(crate) fn error_stream<'a, T: Send + 'a>(error: StateError) -> BoxStream<'a, Result<T>> {
    use futures::StreamExt;
    futures::stream::once(async move { Err(error) }).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_future_is_the_size_of_its_value_not_of_the_error() {
        // The memory backend's hot path moves these around (issue #11): keep them small.
        assert!(size_of::<StateFuture<'_, ()>>() <= 24, "{}", size_of::<StateFuture<'_, ()>>());
        assert!(size_of::<StateFuture<'_, Option<StateValue>>>() <= 24);
    }

    #[test]
    fn a_ready_error_resolves_to_the_error_once() {
        use futures::FutureExt;
        let mut future = StateFuture::<()>::ready(Err(StateError::MissingUrl));
        assert_eq!(format!("{future:?}"), "StateFuture(\"ready\")");
        assert!(matches!((&mut future).now_or_never(), Some(Err(StateError::MissingUrl))));
        assert_eq!(format!("{future:?}"), "StateFuture(\"done\")");
    }

    #[test]
    fn now_or_never_hands_back_a_ready_result_and_polls_a_boxed_future_once() {
        assert!(matches!(StateFuture::ready(Ok(7)).now_or_never(), Some(Ok(7))));
        let failed = StateFuture::<()>::ready(Err(StateError::MissingUrl)).now_or_never();
        assert!(matches!(failed, Some(Err(StateError::MissingUrl))));
        assert!(matches!(StateFuture::new(async { Ok(8) }).now_or_never(), Some(Ok(8))));
        assert!(StateFuture::<()>::new(futures::future::pending()).now_or_never().is_none());
    }

    #[test]
    #[should_panic(expected = "StateFuture polled after completion")]
    fn now_or_never_on_a_resolved_future_panics_as_a_poll_would() {
        use futures::FutureExt;
        let mut future = StateFuture::ready(Ok(1));
        assert!(matches!((&mut future).now_or_never(), Some(Ok(1))));
        let _ = future.now_or_never();
    }
}
