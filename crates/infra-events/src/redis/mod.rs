//! The Redis backends, through `fred`: [`RedisBus`] (ephemeral) and [`DurableBus`] (durable).
//!
//! # Ephemeral mode: pub/sub
//!
//! Channel `c` of a bus with namespace `ns` is the Redis channel `ns:c`; messages are envelopes
//! in the crate's wire format. Pattern subscriptions are matched here, with the same
//! [`Pattern`](crate::Pattern) as the memory bus: while any exists, the subscriber connection
//! holds one `PSUBSCRIBE ns:*` (fred does not say which pattern a `pmessage` matched, so
//! overlapping Redis patterns could not be told apart). A message then arrives once as
//! `message` for channel subscriptions and once as `pmessage` for pattern subscriptions.
//!
//! Redis pub/sub is at-most-once: a message published while the subscriber connection is down
//! is lost. After a reconnection fred resubscribes, and every subscription's
//! [`SubscriptionStats::gaps`](crate::SubscriptionStats::gaps) is incremented and a WARN line
//! written, so subscribers know to resynchronise. One listener task per bus reads the subscriber
//! connection; it is supervised: should it panic, it is started again, every subscription is
//! told of a gap and an ERROR line written.
//!
//! # Durable mode: streams
//!
//! Channel `c` is the stream `ns:stream:c`; each entry has one field, `event`, holding the
//! envelope in the wire format (entries written by other clients with other fields are
//! delivered as foreign events). Publishing is `XADD ns:stream:c MAXLEN ~ <stream_max_len> *`.
//! A subscription reads through a consumer group (`XREADGROUP`) on its own connection and
//! acknowledges an event (`XACK`) only after its handler succeeded, so delivery is
//! at-least-once:
//!
//! - an event whose handler failed, or whose consumer died, stays pending; once it has been
//!   idle for `claim_after` any consumer of the group claims it (`XAUTOCLAIM`) and it
//!   is delivered again ([`SubscriptionStats::redelivered`](crate::SubscriptionStats::redelivered));
//! - an event delivered `max_deliveries` times without success moves to the dead-letter
//!   stream `ns:dead:c` (same `event` field, plus `stream_id`, `group` and `deliveries`) and is
//!   acknowledged ([`SubscriptionStats::dead_lettered`](crate::SubscriptionStats::dead_lettered));
//! - a consumer task that panics is started again; what it had read but not acknowledged is
//!   claimed again like a crashed consumer's, so nothing is lost;
//! - an entry trimmed from the stream by `MAXLEN` before it was acknowledged (read and
//!   pending, or not yet read by the group) is lost: it is counted in
//!   [`SubscriptionStats::trimmed`](crate::SubscriptionStats::trimmed) and logged at ERROR,
//!   never as a dead letter. Size `stream_max_len` for the longest backlog a group may fall
//!   behind by. (Entries trimmed before the group read them are counted on Redis 7 and on
//!   streams without `XDEL`-deleted entries, from the counters Redis keeps per stream and group.)
//! - a subscription joins a named group ([`SubscribeOptions::group`](crate::SubscribeOptions::group)),
//!   which resumes where it left off after a restart, or gets a private group
//!   `<source>.<id>` that receives every event and is destroyed when the subscription ends; in
//!   a named group its consumer is removed when it ends, unless entries are still pending for
//!   it (they stay for the group to claim);
//! - `unsubscribe` first delivers what the stream held when the subscription saw the stop
//!   (up to the last entry then, plus the rest of the batch that reached it), so it returns
//!   even while publishers go on;
//! - a new group starts at the end of the stream, at its beginning, or after a
//!   [`Position`](crate::Position) ([`Start`](crate::Start)), which is how a subscriber replays
//!   history: every delivered [`Envelope`](crate::Envelope) carries its position.
//!
//! With [`DurableOptions::replica_acks`] (`events.replica_acks`) set, a publish answers `Ok`
//! only once that many replicas confirmed the entry (`WAIT` on the stream's node), so an event
//! accepted survives the master's crash and a failover; fewer in time is
//! [`crate::EventsError::NotReplicated`] (the entry is stored on the master).
//!
//! Patterns are not offered (streams are read by name): subscribing to one is
//! [`crate::EventsError::PatternNotDurable`].
//!
//! # Redis Cluster
//!
//! A `redis-cluster://` URL (Redis 7 or later) works in both modes; per operation:
//!
//! | operation | on one server | on a cluster |
//! |---|---|---|
//! | publish (ephemeral) | `PUBLISH ns:c` | `SPUBLISH ns:c` to the channel's shard, plus `PUBLISH ns:c` for pattern subscriptions |
//! | channel subscription | `SUBSCRIBE ns:c` | `SSUBSCRIBE ns:c` on the channel's shard |
//! | pattern subscription | `PSUBSCRIBE ns:*` | the same, on one node: it receives the `PUBLISH` copies the cluster bus broadcasts to every node |
//! | stream keys | `ns:stream:c`, `ns:dead:c` | `ns:stream:{ns:c}`, `ns:dead:{ns:c}`: the hash tag puts both in one slot |
//! | dead-letter move (script over the stream and its dead-letter stream) | one key pair | needs the shared slot above |
//! | reads, claims, acknowledgements, group commands, `XADD` | one key each | unchanged |
//!
//! Patterns cannot be sharded (Redis has no sharded `PSUBSCRIBE`), so on a cluster each
//! ephemeral publish is sent twice (pipelined, both to the channel's node): the sharded copy
//! reaches channel subscriptions only within its shard and its reply is
//! [`Published::redis_receivers`](crate::Published::redis_receivers) (exact: the channel's
//! subscribers); the classic copy is broadcast to every node for pattern subscriptions and not
//! counted (its reply counts one node's subscribers only). A channel subscription and a pattern
//! subscription of one process receive their copies over different connections, so there is no
//! order between the two; each keeps a publisher's order per channel. Namespaces from the
//! configuration contain no `{`, so the tag is always the one written here.

mod pubsub;
mod streams;

pub use pubsub::RedisBus;
pub use streams::{DurableBus, DurableOptions};

use std::time::Duration;

use infra_redis::{Failure, FailureKind, RedisError, fred::error::Error as FredError};

use crate::EventsError;

/// The error of a connection to `url` (redacted) that could not be made, or that was closed.
fn connect_error(url: &str, error: RedisError) -> EventsError {
    match error {
        RedisError::ConnectTimeout { url, timeout } => {
            EventsError::Timeout { operation: "connect", target: url, timeout }
        }
        RedisError::Connect { url, source } => EventsError::Connection { url, source: Box::new(source) },
        other => EventsError::Connection { url: url.to_owned(), source: Box::new(other) },
    }
}

/// The error of an operation on a bus whose `close()` was called, for `url` (redacted).
fn closed_error(url: &str) -> EventsError {
    EventsError::Connection { url: url.to_owned(), source: Box::new(RedisError::Closed { url: url.to_owned() }) }
}

/// The error of a failed command on `url` (redacted): fred's error becomes a redacted
/// [`Failure`]; a timeout names `target` (a channel or stream key); a refusal by the server
/// (including an ACL `NOPERM`) is [`EventsError::Backend`], a connection problem
/// [`EventsError::Connection`].
fn command_error(
    url: &str,
    timeout: Duration,
    operation: &'static str,
    target: impl FnOnce() -> String,
    error: FredError,
) -> EventsError {
    let failure = Failure::from(error);
    match failure.kind() {
        FailureKind::Timeout => EventsError::Timeout { operation, target: target(), timeout },
        FailureKind::Auth if failure.message().starts_with("NOPERM") => {
            EventsError::Backend { operation, key: target(), source: Box::new(failure) }
        }
        FailureKind::Connection | FailureKind::Auth | FailureKind::Backpressure => {
            EventsError::Connection { url: url.to_owned(), source: Box::new(failure) }
        }
        _ => EventsError::Backend { operation, key: target(), source: Box::new(failure) },
    }
}
