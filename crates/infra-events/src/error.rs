//! The crate's error type.

/// A boxed error, as handlers return them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything an [`EventBus`](crate::EventBus) operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventsError {
    /// A subscription option out of range.
    #[error("invalid subscription option: {0}")]
    InvalidOption(&'static str),
    /// Redis could not be reached (the URL's password is redacted).
    #[error("cannot reach redis at {url}")]
    Connection {
        /// The URL, password redacted.
        url: String,
        /// What the client library said.
        #[source]
        source: BoxError,
    },
    /// An operation did not complete in time.
    #[error("{operation} timed out after {timeout:?}")]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// The bound.
        timeout: std::time::Duration,
    },
    /// The configuration names a backend this build does not include.
    #[error("the {backend} backend is not compiled in; enable the `{feature}` feature of infra-events")]
    BackendNotCompiled {
        /// The configured backend.
        backend: &'static str,
        /// The feature that provides it.
        feature: &'static str,
    },
    /// The Redis backend was configured without a URL.
    #[error("the redis backend needs `events.redis_url`")]
    MissingUrl,
}

/// The crate's result type.
pub type Result<T, E = EventsError> = std::result::Result<T, E>;
