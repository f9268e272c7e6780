//! The crate's error type.

use std::time::Duration;

/// A boxed error from a backend library, kept as the source so its types stay private.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a [`StateStore`](crate::StateStore) operation can fail with.
///
/// [`StateError::is_transient`] and [`StateError::may_have_been_applied`] say whether to retry:
/// an operation that is not idempotent (an increment, a set-if-absent, a compare-and-swap) must
/// not be repeated after an error that may have been applied. Each variant's documentation
/// gives both answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The key is not usable (empty). Neither transient nor applied.
    #[error("invalid key `{key}`: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A time to live below one millisecond, or longer than Redis accepts (about 146 million
    /// years). Neither transient nor applied.
    #[error("invalid ttl {ttl:?} for key `{key}`: {}", ttl_rule(.ttl))]
    InvalidTtl {
        /// The key.
        key: String,
        /// The rejected duration.
        ttl: Duration,
    },
    /// A version string that no store produced. Neither transient nor applied.
    #[error("invalid version `{version}`: expected 40 lowercase hex digits")]
    InvalidVersion {
        /// The rejected text (cut to 64 characters).
        version: String,
    },
    /// An integer increment on a value that is not a 64-bit integer. Neither transient nor
    /// applied: the value is left as it was.
    #[error("cannot increment `{key}` by {by}: its value is not an integer")]
    NotAnInteger {
        /// The key.
        key: String,
        /// The increment.
        by: i64,
    },
    /// A float increment on a value that is not a number. Neither transient nor applied.
    #[error("cannot increment `{key}` by {by}: its value is not a number")]
    NotANumber {
        /// The key.
        key: String,
        /// The increment.
        by: f64,
    },
    /// An increment whose result does not fit (integer overflow, or a float that is NaN or
    /// infinite). Neither transient nor applied: checked before anything is written.
    #[error("cannot increment `{key}` by {by}: the result would overflow")]
    Overflow {
        /// The key.
        key: String,
        /// The increment, as text.
        by: String,
    },
    /// A stored value does not decode into the requested type. Neither transient nor applied
    /// (raised by reads, and by `update_json` before it writes).
    #[error("cannot decode the value of `{key}` as {type_name}")]
    Decode {
        /// The key.
        key: String,
        /// The requested Rust type.
        type_name: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A value does not serialize to JSON. Neither transient nor applied: nothing was sent.
    #[error("cannot encode the value for `{key}` as JSON")]
    Encode {
        /// The key.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A value longer than [`MAX_VALUE_BYTES`](crate::MAX_VALUE_BYTES) (512 MiB, the largest
    /// string Redis stores), refused by every backend before anything is sent. Neither
    /// transient nor applied.
    #[error("the value for `{key}` has {size} bytes, more than the limit of {limit} bytes")]
    ValueTooLarge {
        /// The key.
        key: String,
        /// The value's length in bytes.
        size: usize,
        /// The limit, [`MAX_VALUE_BYTES`](crate::MAX_VALUE_BYTES).
        limit: usize,
    },
    /// A stored value is not UTF-8 text (written by another client). Neither transient nor
    /// applied (raised by reads).
    #[error("the value of `{key}` is not UTF-8 text")]
    NotText {
        /// The key.
        key: String,
    },
    /// The call did not complete in time (the backend is slow or unreachable). Transient, and
    /// may have been applied: the command may have reached the server before the bound. (A
    /// first connection that timed out is a [`StateError::Connection`] naming the server.)
    #[error("{operation} `{key}` timed out after {timeout:?}")]
    Timeout {
        /// The operation, e.g. `get`.
        operation: &'static str,
        /// The (first) key involved.
        key: String,
        /// The configured bound.
        timeout: Duration,
    },
    /// The backend could not be reached. The URL's password is redacted.
    ///
    /// Transient, and may have been applied: the variant covers a refused connection attempt
    /// (nothing sent) as well as a connection lost, or a command cut short, with the command in
    /// flight, and does not say which. A first connection that did not complete within the
    /// connect timeout is reported this way, its source saying so. (A client that cannot be
    /// built from the URL is reported this way too; that error repeats.) A call on a store
    /// whose `close()` was called is reported this way too, its source saying so, and is
    /// neither transient nor applied: nothing was sent, and the store never answers again.
    #[error("cannot reach {backend} at {url}")]
    Connection {
        /// `redis`.
        backend: &'static str,
        /// The URL, password redacted.
        url: String,
        /// What the client library said.
        #[source]
        source: BoxError,
    },
    /// The backend failed in another way: it refused the command (a wrong type, a script
    /// error, a missing permission) or the client could not read its reply. Not transient, and
    /// may have been applied: a script can fail after one of its writes, and an unreadable reply
    /// says nothing of the outcome.
    #[error("{backend} failed during {operation} `{key}`")]
    Backend {
        /// `redis`.
        backend: &'static str,
        /// The operation.
        operation: &'static str,
        /// The (first) key involved.
        key: String,
        /// What the client library said.
        #[source]
        source: BoxError,
    },
    /// The write was applied on the Redis master, but fewer replicas than configured
    /// (`state.replica_acks`) acknowledged it within the replica timeout, so a failover may
    /// still lose it. Transient (the replicas may be catching up, or one is being replaced),
    /// and applied on the master: do not repeat a write that is not idempotent.
    #[error(
        "{operation} `{key}` was applied but acknowledged by {acknowledged} of {required} replicas within {timeout:?}; a failover may lose it"
    )]
    NotReplicated {
        /// The operation.
        operation: &'static str,
        /// The (first) key written.
        key: String,
        /// Replicas that acknowledged in time.
        acknowledged: u32,
        /// Replicas required.
        required: u32,
        /// The replica acknowledgement timeout.
        timeout: Duration,
    },
    /// The configuration names a backend this build does not include. Neither transient nor
    /// applied.
    #[error("the {backend} backend is not compiled in; enable the `{feature}` feature of infra-state")]
    BackendNotCompiled {
        /// The configured backend.
        backend: &'static str,
        /// The feature that provides it.
        feature: &'static str,
    },
    /// The Redis backend was configured without a URL. Neither transient nor applied.
    #[error("the redis backend needs `state.redis_url`")]
    MissingUrl,
    /// An update closure refused to produce a new value (returned `None` or `Err`); the stored
    /// value is unchanged. Neither transient nor applied.
    #[error("the update of `{key}` was refused")]
    UpdateRefused {
        /// The key.
        key: String,
        /// The closure's error, when it returned one.
        #[source]
        reason: Option<BoxError>,
    },
    /// An optimistic update met a concurrent write on every attempt; nothing was written.
    /// Transient (later, with less contention, it may succeed), not applied.
    #[error("the update of `{key}` conflicted with concurrent writes {attempts} times in a row")]
    TooManyConflicts {
        /// The key.
        key: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl StateError {
    /// Whether another attempt may succeed: for [`StateError::Timeout`] and
    /// [`StateError::Connection`] (the backend was slow or unreachable; not once the store was
    /// closed), [`StateError::NotReplicated`] and [`StateError::TooManyConflicts`]. The other errors repeat:
    /// a bad argument, a value of the wrong kind, a refusal by the backend, a configuration
    /// error.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connection { .. } => !self.is_closed(),
            Self::Timeout { .. } | Self::TooManyConflicts { .. } | Self::NotReplicated { .. } => true,
            Self::UpdateRefused { .. }
            | Self::InvalidKey { .. }
            | Self::InvalidTtl { .. }
            | Self::InvalidVersion { .. }
            | Self::NotAnInteger { .. }
            | Self::NotANumber { .. }
            | Self::Overflow { .. }
            | Self::Decode { .. }
            | Self::Encode { .. }
            | Self::NotText { .. }
            | Self::ValueTooLarge { .. }
            | Self::Backend { .. }
            | Self::BackendNotCompiled { .. }
            | Self::MissingUrl => false,
        }
    }

    /// Whether the operation may have taken effect although it failed: true for
    /// [`StateError::Timeout`], [`StateError::Connection`] (but not a call on a closed store),
    /// [`StateError::NotReplicated`] (applied on the master) and
    /// [`StateError::Backend`], whose command may have been carried out (the answer when
    /// unsure), false for errors raised before anything was written.
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            Self::Connection { .. } => !self.is_closed(),
            Self::Timeout { .. } | Self::Backend { .. } | Self::NotReplicated { .. } => true,
            Self::UpdateRefused { .. }
            | Self::TooManyConflicts { .. }
            | Self::InvalidKey { .. }
            | Self::InvalidTtl { .. }
            | Self::InvalidVersion { .. }
            | Self::NotAnInteger { .. }
            | Self::NotANumber { .. }
            | Self::Overflow { .. }
            | Self::Decode { .. }
            | Self::Encode { .. }
            | Self::NotText { .. }
            | Self::ValueTooLarge { .. }
            | Self::BackendNotCompiled { .. }
            | Self::MissingUrl => false,
        }
    }

    /// A call on a store whose `close()` was called: refused before anything was sent.
    fn is_closed(&self) -> bool {
        #[cfg(feature = "redis")]
        if let Self::Connection { source, .. } = self {
            return matches!(source.downcast_ref(), Some(infra_redis::RedisError::Closed { .. }));
        }
        false
    }
}

/// The rule a rejected TTL broke.
fn ttl_rule(ttl: &Duration) -> String {
    if *ttl < Duration::from_millis(1) {
        "a ttl must be at least 1 ms".to_owned()
    } else {
        format!("a ttl must be at most {} ms", crate::store::MAX_TTL_MS)
    }
}

/// The crate's result type.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn json_error() -> serde_json::Error {
        serde_json::from_str::<u32>("\"x\"").unwrap_err()
    }

    #[test]
    fn an_unreachable_or_slow_backend_is_transient_and_may_have_applied_the_command() {
        let timeout =
            StateError::Timeout { operation: "increment", key: "fills".into(), timeout: Duration::from_millis(500) };
        let connection =
            StateError::Connection { backend: "redis", url: "redis://localhost:1".into(), source: "reset".into() };
        let not_replicated = StateError::NotReplicated {
            operation: "increment",
            key: "fills".into(),
            acknowledged: 0,
            required: 1,
            timeout: Duration::from_millis(500),
        };
        assert_eq!(
            not_replicated.to_string(),
            "increment `fills` was applied but acknowledged by 0 of 1 replicas within 500ms; a failover may lose it"
        );
        for error in [timeout, connection, not_replicated] {
            assert!(error.is_transient() && error.may_have_been_applied(), "{error}");
        }
    }

    #[test]
    fn a_refusal_by_the_backend_repeats_and_may_have_been_applied() {
        let backend = StateError::Backend {
            backend: "redis",
            operation: "compare_and_swap",
            key: "k".into(),
            source: "ERR script failed".into(),
        };
        assert!(!backend.is_transient() && backend.may_have_been_applied());
    }

    #[test]
    fn errors_raised_before_writing_are_neither_transient_nor_applied() {
        let key = || "k".to_owned();
        let errors = [
            StateError::InvalidKey { key: String::new(), reason: "empty" },
            StateError::InvalidTtl { key: key(), ttl: Duration::ZERO },
            StateError::InvalidVersion { version: "v".into() },
            StateError::NotAnInteger { key: key(), by: 1 },
            StateError::NotANumber { key: key(), by: 1.5 },
            StateError::Overflow { key: key(), by: "1".into() },
            StateError::Decode { key: key(), type_name: "u32", source: json_error() },
            StateError::Encode { key: key(), source: json_error() },
            StateError::NotText { key: key() },
            StateError::ValueTooLarge { key: key(), size: 2, limit: 1 },
            StateError::BackendNotCompiled { backend: "redis", feature: "redis" },
            StateError::MissingUrl,
        ];
        for error in errors {
            assert!(!error.is_transient() && !error.may_have_been_applied(), "{error}");
        }
    }
}
