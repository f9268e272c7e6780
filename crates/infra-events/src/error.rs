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
    #[error("{operation} `{target}` timed out after {timeout:?}")]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// What it was for: the channel of a publish, the stream key of a durable command, the
        /// URL (password redacted) of a connection.
        target: String,
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
    /// A subscription option this bus does not offer (consumer groups and start positions
    /// belong to the durable mode).
    #[error("the `{option}` subscription option needs the durable mode; the {backend} bus does not offer it")]
    Unsupported {
        /// The option.
        option: &'static str,
        /// The bus that rejected it (`memory`, `redis`).
        backend: &'static str,
    },
    /// A pattern subscription on the durable bus: streams are read by name.
    #[error(
        "pattern subscription `{pattern}` is not offered in durable mode: redis streams are read by name, subscribe to each channel"
    )]
    PatternNotDurable {
        /// The pattern, as written.
        pattern: String,
    },
    /// The configuration asks for durable events on a backend without them.
    #[error("durable mode needs `events.backend = \"redis\"`: the memory bus keeps nothing across restarts")]
    DurableNeedsRedis,
    /// A stream position that is not a Redis stream ID.
    #[error("`{0}` is not a stream position: expected `<milliseconds>-<sequence>` such as `1764320000000-0`")]
    InvalidPosition(String),
    /// Redis refused a command (other than for connection reasons).
    #[error("redis refused {operation} on `{key}`")]
    Backend {
        /// The operation.
        operation: &'static str,
        /// The stream key.
        key: String,
        /// What Redis said.
        #[source]
        source: BoxError,
    },
    /// The Redis backend was configured without a URL.
    #[error("the redis backend needs `events.redis_url`")]
    MissingUrl,
}

/// The crate's result type.
pub type Result<T, E = EventsError> = std::result::Result<T, E>;
