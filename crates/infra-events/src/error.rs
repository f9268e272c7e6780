//! The crate's error type.

use crate::EventId;

/// A boxed error, as handlers return them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything an [`EventBus`](crate::EventBus) operation can fail with.
///
/// [`EventsError::is_transient`] and [`EventsError::may_have_been_applied`] say whether to
/// retry: a publish is not idempotent (subscribers would see the event twice), so it must not
/// be repeated after an error that may have been applied. Each variant's documentation gives
/// both answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventsError {
    /// A subscription option out of range. Neither transient nor applied.
    #[error("invalid subscription option: {0}")]
    InvalidOption(&'static str),
    /// Redis could not be reached (the URL's password is redacted).
    ///
    /// Transient, and may have been applied: the variant covers a refused connection attempt
    /// (nothing sent) as well as a connection that dropped with a publish in flight, which
    /// Redis may have delivered, and does not say which. (A client that cannot be built from
    /// the URL, or a closed bus, is reported this way too; those repeat.)
    #[error("cannot reach redis at {url}")]
    Connection {
        /// The URL, password redacted.
        url: String,
        /// What the client library said.
        #[source]
        source: BoxError,
    },
    /// An operation did not complete in time. Transient; may have been applied (a publish may
    /// have reached Redis before the bound), except for the `connect` operation, which sends
    /// nothing, and `ping`, which changes nothing.
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
    /// The configuration names a backend this build does not include. Neither transient nor
    /// applied.
    #[error("the {backend} backend is not compiled in; enable the `{feature}` feature of infra-events")]
    BackendNotCompiled {
        /// The configured backend.
        backend: &'static str,
        /// The feature that provides it.
        feature: &'static str,
    },
    /// A subscription option this bus does not offer (consumer groups and start positions
    /// belong to the durable mode). Neither transient nor applied.
    #[error("the `{option}` subscription option needs the durable mode; the {backend} bus does not offer it")]
    Unsupported {
        /// The option.
        option: &'static str,
        /// The bus that rejected it (`memory`, `redis`).
        backend: &'static str,
    },
    /// A pattern subscription on the durable bus: streams are read by name. Neither transient
    /// nor applied.
    #[error(
        "pattern subscription `{pattern}` is not offered in durable mode: redis streams are read by name, subscribe to each channel"
    )]
    PatternNotDurable {
        /// The pattern, as written.
        pattern: String,
    },
    /// The configuration asks for durable events on a backend without them. Neither transient
    /// nor applied.
    #[error("durable mode needs `events.backend = \"redis\"`: the memory bus keeps nothing across restarts")]
    DurableNeedsRedis,
    /// A stream position that is not a Redis stream ID. Neither transient nor applied.
    #[error("`{0}` is not a stream position: expected `<milliseconds>-<sequence>` such as `1764320000000-0`")]
    InvalidPosition(String),
    /// Redis refused a command (other than for connection reasons), or its reply could not be
    /// read. Not transient, and may have been applied: a script can fail after one of its
    /// writes, and an unreadable reply says nothing of the outcome.
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
    /// A durable event was stored by the Redis master, but fewer replicas than configured
    /// (`events.replica_acks`, `DurableOptions::replica_acks`)
    /// acknowledged it within the replica timeout, so a failover may still lose it. Transient
    /// (the replicas may be catching up), and applied: subscribers may receive it, so a publish
    /// repeated after this error may deliver the event twice.
    #[error(
        "{operation} on `{key}` was stored but acknowledged by {acknowledged} of {required} replicas within {timeout:?}; a failover may lose it"
    )]
    NotReplicated {
        /// The operation (`publish`, `publish_batch`).
        operation: &'static str,
        /// The stream key.
        key: String,
        /// Replicas that acknowledged in time.
        acknowledged: u32,
        /// Replicas required.
        required: u32,
        /// The replica acknowledgement timeout.
        timeout: std::time::Duration,
    },
    /// The Redis backend was configured without a URL. Neither transient nor applied.
    #[error("the redis backend needs `events.redis_url`")]
    MissingUrl,
    /// A value given to [`EventBusExt::publish_json`](crate::EventBusExt::publish_json) could
    /// not be encoded as JSON (a map with non-string keys, a `Serialize` impl that failed).
    /// Nothing was published. Neither transient nor applied.
    #[error("cannot encode the payload for channel `{channel}` as json")]
    Encode {
        /// The channel it was for.
        channel: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// An event whose payload is not the type a
    /// [`EventBusExt::subscribe_json`](crate::EventBusExt::subscribe_json) handler takes: the
    /// handler error it counts (in [`SubscriptionStats::errors`](crate::SubscriptionStats::errors),
    /// logged with this message). Neither transient nor applied.
    #[error("cannot decode event {event_id} on `{channel}` as {type_name}: {reason}")]
    Decode {
        /// The channel it came on.
        channel: String,
        /// The event.
        event_id: EventId,
        /// The type the handler takes.
        type_name: &'static str,
        /// What serde said.
        reason: String,
    },
    /// An event whose wire form (the envelope with its payload, as JSON) is larger than
    /// [`MAX_EVENT_BYTES`](crate::MAX_EVENT_BYTES): refused by the Redis buses before anything
    /// is sent. Neither transient nor applied.
    #[error("the event for channel `{channel}` has {size} bytes encoded, more than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The channel it was for.
        channel: String,
        /// Its encoded size in bytes.
        size: usize,
        /// The limit, [`MAX_EVENT_BYTES`](crate::MAX_EVENT_BYTES).
        limit: usize,
    },
    /// A channel pattern that is almost certainly a mistake (empty, an unclosed `[`, a trailing
    /// `\`): see [`Pattern::parse`](crate::Pattern::parse). Neither transient nor applied.
    #[error("invalid channel pattern `{pattern}`: {reason}")]
    InvalidPattern {
        /// The pattern, as written.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl EventsError {
    /// Whether another attempt may succeed: only for [`EventsError::Timeout`],
    /// [`EventsError::NotReplicated`] and [`EventsError::Connection`] (Redis was slow or
    /// unreachable; not once the bus was closed, which refuses every later call). The other errors repeat: an
    /// option or position that is not valid, a configuration error, a refusal by Redis.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connection { .. } => !self.is_closed(),
            Self::Timeout { .. } | Self::NotReplicated { .. } => true,
            Self::InvalidOption(_)
            | Self::BackendNotCompiled { .. }
            | Self::Unsupported { .. }
            | Self::PatternNotDurable { .. }
            | Self::DurableNeedsRedis
            | Self::InvalidPosition(_)
            | Self::Backend { .. }
            | Self::MissingUrl
            | Self::Encode { .. }
            | Self::PayloadTooLarge { .. }
            | Self::Decode { .. }
            | Self::InvalidPattern { .. } => false,
        }
    }

    /// Whether the operation may have taken effect although it failed (an event published, an
    /// entry added): true for [`EventsError::Connection`] (but not a call on a closed bus),
    /// [`EventsError::Backend`], [`EventsError::NotReplicated`] and a
    /// [`EventsError::Timeout`] of anything but `connect` and `ping` (the answer when unsure),
    /// false for errors raised before anything was sent.
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            // The operation names are this crate's own; connecting happens before any command,
            // and a `PING` changes nothing.
            Self::Timeout { operation, .. } => !matches!(*operation, "connect" | "ping"),
            Self::Connection { .. } => !self.is_closed(),
            Self::Backend { .. } | Self::NotReplicated { .. } => true,
            Self::InvalidOption(_)
            | Self::BackendNotCompiled { .. }
            | Self::Unsupported { .. }
            | Self::PatternNotDurable { .. }
            | Self::DurableNeedsRedis
            | Self::InvalidPosition(_)
            | Self::MissingUrl
            | Self::Encode { .. }
            | Self::PayloadTooLarge { .. }
            | Self::Decode { .. }
            | Self::InvalidPattern { .. } => false,
        }
    }

    /// A call on a bus whose `close()` was called: refused before anything was sent.
    fn is_closed(&self) -> bool {
        #[cfg(feature = "redis")]
        if let Self::Connection { source, .. } = self {
            return matches!(source.downcast_ref(), Some(infra_redis::RedisError::Closed { .. }));
        }
        false
    }
}

/// The crate's result type.
pub type Result<T, E = EventsError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn timeout(operation: &'static str) -> EventsError {
        EventsError::Timeout { operation, target: "ns:orders".into(), timeout: Duration::from_secs(1) }
    }

    #[test]
    fn a_publish_cut_short_is_transient_and_may_have_been_delivered() {
        let connection = EventsError::Connection { url: "redis://localhost:1".into(), source: "reset".into() };
        for error in [timeout("publish"), timeout("publish_batch"), connection] {
            assert!(error.is_transient() && error.may_have_been_applied(), "{error}");
        }
    }

    #[test]
    fn an_event_stored_without_its_replica_acknowledgements_is_transient_and_applied() {
        let error = EventsError::NotReplicated {
            operation: "publish",
            key: "ns:stream:{orders}".into(),
            acknowledged: 0,
            required: 1,
            timeout: Duration::from_millis(300),
        };
        assert!(error.is_transient() && error.may_have_been_applied());
        assert_eq!(
            error.to_string(),
            "publish on `ns:stream:{orders}` was stored but acknowledged by 0 of 1 replicas within 300ms; a failover may lose it"
        );
    }

    #[test]
    fn a_connect_or_ping_that_timed_out_applied_nothing() {
        for error in [timeout("connect"), timeout("ping")] {
            assert!(error.is_transient() && !error.may_have_been_applied(), "{error}");
        }
    }

    #[test]
    fn a_refusal_by_redis_repeats_and_may_have_been_applied() {
        let error = EventsError::Backend { operation: "publish", key: "ns:stream:orders".into(), source: "ERR".into() };
        assert!(!error.is_transient() && error.may_have_been_applied());
    }

    #[test]
    fn errors_raised_before_sending_are_neither_transient_nor_applied() {
        let errors = [
            EventsError::InvalidOption("capacity must be positive"),
            EventsError::BackendNotCompiled { backend: "redis", feature: "redis" },
            EventsError::Unsupported { option: "group", backend: "memory" },
            EventsError::PatternNotDurable { pattern: "orders.*".into() },
            EventsError::DurableNeedsRedis,
            EventsError::InvalidPosition("soon".into()),
            EventsError::MissingUrl,
            EventsError::Encode {
                channel: "c".into(),
                source: serde_json::to_value(std::collections::HashMap::from([((1, 2), 3)])).unwrap_err(),
            },
            EventsError::Decode {
                channel: "c".into(),
                event_id: EventId::new(),
                type_name: "u8",
                reason: "invalid type".into(),
            },
            EventsError::InvalidPattern { pattern: "[a".into(), reason: "unclosed `[`" },
        ];
        for error in errors {
            assert!(!error.is_transient() && !error.may_have_been_applied(), "{error}");
        }
    }
}
