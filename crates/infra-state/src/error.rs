//! The crate's error type.

use std::time::Duration;

/// A boxed error from a backend library, kept as the source so its types stay private.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a [`StateStore`](crate::StateStore) operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The key is not usable (empty).
    #[error("invalid key `{key}`: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A time to live below one millisecond.
    #[error("invalid ttl {ttl:?} for key `{key}`: a ttl must be at least 1 ms")]
    InvalidTtl {
        /// The key.
        key: String,
        /// The rejected duration.
        ttl: Duration,
    },
    /// A version string that no store produced.
    #[error("invalid version `{version}`: expected 40 lowercase hex digits")]
    InvalidVersion {
        /// The rejected text (cut to 64 characters).
        version: String,
    },
    /// An integer increment on a value that is not a 64-bit integer.
    #[error("cannot increment `{key}` by {by}: its value is not an integer")]
    NotAnInteger {
        /// The key.
        key: String,
        /// The increment.
        by: i64,
    },
    /// A float increment on a value that is not a number.
    #[error("cannot increment `{key}` by {by}: its value is not a number")]
    NotANumber {
        /// The key.
        key: String,
        /// The increment.
        by: f64,
    },
    /// An increment whose result does not fit (integer overflow, or a float that is NaN or
    /// infinite).
    #[error("cannot increment `{key}` by {by}: the result would overflow")]
    Overflow {
        /// The key.
        key: String,
        /// The increment, as text.
        by: String,
    },
    /// A stored value does not decode into the requested type.
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
    /// A value does not serialize to JSON.
    #[error("cannot encode the value for `{key}` as JSON")]
    Encode {
        /// The key.
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value is not UTF-8 text (written by another client).
    #[error("the value of `{key}` is not UTF-8 text")]
    NotText {
        /// The key.
        key: String,
    },
    /// The call did not complete in time (the backend is slow or unreachable).
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
    /// The backend failed in another way.
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
    /// The configuration names a backend this build does not include.
    #[error("the {backend} backend is not compiled in; enable the `{feature}` feature of infra-state")]
    BackendNotCompiled {
        /// The configured backend.
        backend: &'static str,
        /// The feature that provides it.
        feature: &'static str,
    },
    /// The Redis backend was configured without a URL.
    #[error("the redis backend needs `state.redis_url`")]
    MissingUrl,
}

/// The crate's result type.
pub type Result<T, E = StateError> = std::result::Result<T, E>;
