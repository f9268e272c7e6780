//! Replica acknowledgements of published events ([`DurableOptions::replica_acks`]): after
//! `XADD`, `WAIT` on the node that holds the stream, so that an event published `Ok` survives a
//! failover to a replica.
//!
//! [`DurableOptions::replica_acks`]: super::DurableOptions::replica_acks

use std::collections::BTreeMap;

use infra_redis::{ReplicaAcks, fred::util::redis_keyslot, wait_for_replicas};

use super::DurableBus;
use crate::{EventsError, Published, Result};

impl DurableBus {
    fn replica_acks(&self) -> Option<ReplicaAcks> {
        let options = &self.inner.options;
        ReplicaAcks::new(options.replica_acks, options.replica_ack_timeout)
    }

    /// Waits until the configured replicas acknowledged what this bus appended to `key` (and
    /// anything else it sent that node before); at once without the setting.
    pub(super) async fn replicated(&self, operation: &'static str, key: &str) -> Result<()> {
        let Some(acks) = self.replica_acks() else { return Ok(()) };
        let client = self.inner.publisher.client();
        let acknowledged = wait_for_replicas(client, key.as_bytes(), acks, self.inner.timeout)
            .await
            .map_err(|e| self.error(operation, key, e))?;
        if acknowledged < acks.replicas {
            return Err(not_replicated(operation, key, acknowledged, acks));
        }
        Ok(())
    }

    /// The results of a batch, each event stored `Ok` kept only if its stream's node had it
    /// acknowledged: one `WAIT` per hash slot written (one in all on a single server).
    pub(super) async fn replicated_batch(&self, results: Vec<(Result<Published>, String)>) -> Vec<Result<Published>> {
        if self.replica_acks().is_none() {
            return results.into_iter().map(|(result, _)| result).collect();
        }
        let slot = |key: &str| if self.inner.clustered { redis_keyslot(key.as_bytes()) } else { 0 };
        let mut slots: BTreeMap<u16, Option<EventsError>> = BTreeMap::new();
        for (_, key) in results.iter().filter(|(result, _)| result.is_ok()) {
            if slots.contains_key(&slot(key)) {
                continue;
            }
            let failure = self.replicated("publish_batch", key).await.err();
            slots.insert(slot(key), failure);
        }
        results
            .into_iter()
            .map(|(result, key)| match (result, slots.get(&slot(&key))) {
                (Ok(_), Some(Some(failure))) => Err(copy_failure(failure, &key)),
                (result, _) => result,
            })
            .collect()
    }
}

fn not_replicated(operation: &'static str, key: &str, acknowledged: u32, acks: ReplicaAcks) -> EventsError {
    EventsError::NotReplicated {
        operation,
        key: key.to_owned(),
        acknowledged,
        required: acks.replicas,
        timeout: acks.timeout,
    }
}

/// The failure of a slot's `WAIT`, for another event of that slot (errors are not `Clone`: a
/// command failure is restated with its text).
fn copy_failure(failure: &EventsError, key: &str) -> EventsError {
    match failure {
        EventsError::NotReplicated { operation, acknowledged, required, timeout, .. } => EventsError::NotReplicated {
            operation,
            key: key.to_owned(),
            acknowledged: *acknowledged,
            required: *required,
            timeout: *timeout,
        },
        EventsError::Timeout { operation, timeout, .. } => {
            EventsError::Timeout { operation, target: key.to_owned(), timeout: *timeout }
        }
        EventsError::Connection { url, source } => {
            EventsError::Connection { url: url.clone(), source: source.to_string().into() }
        }
        other => {
            EventsError::Backend { operation: "publish_batch", key: key.to_owned(), source: other.to_string().into() }
        }
    }
}
