//! Waiting for replicas to acknowledge writes (Redis `WAIT`), so that an acknowledged write
//! survives a failover.
//!
//! Redis replicates asynchronously: a master that dies right after answering a write may take
//! the write with it, and the replica promoted in its place never had it. `WAIT n timeout`, sent
//! after the write on the same connection, blocks until `n` replicas confirmed every write that
//! connection sent. fred keeps one connection per server (per master on a cluster), so the
//! `WAIT` is routed to the node that holds the written key's hash slot.

use std::time::Duration;

use fred::{
    error::Error as FredError,
    interfaces::ClientLike,
    prelude::Client,
    types::{ClusterHash, CustomCommand, config::Options},
};

/// How many replicas must acknowledge each write, and how long to wait for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaAcks {
    /// Replicas that must confirm the write (at least 1 to wait at all).
    pub replicas: u32,
    /// How long the server waits for them (`WAIT`'s own bound).
    pub timeout: Duration,
}

impl ReplicaAcks {
    /// `replicas` acknowledgements within `timeout`; `None` when `replicas` is 0 (do not wait).
    pub fn new(replicas: u32, timeout: Duration) -> Option<Self> {
        (replicas > 0).then_some(Self { replicas, timeout })
    }
}

/// Sends `WAIT` to the node holding `key` (a full key, namespace included) and returns how
/// many replicas acknowledged every write this client sent that node before it.
///
/// The command's client-side bound is `acks.timeout` plus `command_timeout`, so a slow
/// acknowledgement is answered by the server (with the count so far) rather than cut short by
/// the client. An error means the answer is unknown, as for any write in flight.
pub async fn wait_for_replicas(
    client: &Client,
    key: &[u8],
    acks: ReplicaAcks,
    command_timeout: Duration,
) -> Result<u32, FredError> {
    let slot = fred::util::redis_keyslot(key);
    // Blocking: fred holds the connection's later commands until the answer, as Redis does.
    let command = CustomCommand::new_static("WAIT", ClusterHash::Custom(slot), true);
    let timeout_ms = i64::try_from(acks.timeout.as_millis()).unwrap_or(i64::MAX).max(1);
    // Never re-sent: a `WAIT` replayed on a new connection (after a reconnect, or to a promoted
    // replica) has no write of its own to wait for and would answer at once, vouching for a
    // write it never saw. A lost `WAIT` is an error, as for any write in flight.
    let options = Options {
        timeout: Some(acks.timeout.saturating_add(command_timeout)),
        max_attempts: Some(1),
        ..Options::default()
    };
    let acknowledged: i64 =
        client.with_options(&options).custom(command, vec![i64::from(acks.replicas), timeout_ms]).await?;
    Ok(u32::try_from(acknowledged).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_replicas_means_do_not_wait() {
        assert_eq!(ReplicaAcks::new(0, Duration::from_secs(1)), None);
        assert_eq!(
            ReplicaAcks::new(2, Duration::from_millis(300)),
            Some(ReplicaAcks { replicas: 2, timeout: Duration::from_millis(300) })
        );
    }
}
