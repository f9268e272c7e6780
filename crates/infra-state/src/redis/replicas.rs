//! Replica acknowledgements of writes (`state.replica_acks`): after a write, `WAIT` on the node
//! that holds the key, so that a write answered `Ok` survives a failover to a replica.

use std::{collections::BTreeMap, time::Duration};

use infra_redis::{ReplicaAcks, fred::types::Key, wait_for_replicas};

use super::RedisStore;
use crate::{CasOutcome, Expected, Result, StateError, StateValue};

impl RedisStore {
    /// `answer` (of a call already made), once the replicas acknowledged everything this store
    /// sent the key's node, when acknowledgements are configured. Every answer waits, also one
    /// that wrote nothing (a set-if-absent that found the key, a delete of nothing): what it
    /// read may be an earlier write, its own retried one included, that no replica has yet.
    /// The caller awaits its command first, so the two futures never live side by side.
    pub(super) async fn acknowledged<T>(&self, operation: &'static str, key: &str, answer: Result<T>) -> Result<T> {
        let answer = answer?;
        self.acknowledged_keys(operation, [key]).await?;
        Ok(answer)
    }

    /// Waits until the configured number of replicas confirmed the writes this store sent the
    /// nodes holding `keys`: one `WAIT` per hash slot on a cluster, one in all otherwise. Fewer
    /// in time is [`StateError::NotReplicated`]. Without the setting: nothing, no allocation.
    pub(super) async fn acknowledged_keys<'k>(
        &self,
        operation: &'static str,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<()> {
        let Some(acks) = self.shared.replica_acks else { return Ok(()) };
        let mut by_slot = BTreeMap::new();
        for key in keys {
            let full = self.full_key(key);
            by_slot.entry(self.slot(&full)).or_insert((key, full));
        }
        // Boxed: fred's `WAIT` future is as large as the write's, and only stores configured to
        // wait should carry it.
        Box::pin(self.wait_for_acks(operation, by_slot.into_values(), acks)).await
    }

    async fn wait_for_acks<'k>(
        &self,
        operation: &'static str,
        keys: impl Iterator<Item = (&'k str, Key)>,
        acks: ReplicaAcks,
    ) -> Result<()> {
        let client = self.client().await?;
        for (key, full) in keys {
            let acknowledged = wait_for_replicas(client, full.as_bytes(), acks, self.shared.operation_timeout)
                .await
                .map_err(|e| self.error(operation, key, e))?;
            if acknowledged < acks.replicas {
                return Err(StateError::NotReplicated {
                    operation,
                    key: key.to_owned(),
                    acknowledged,
                    required: acks.replicas,
                    timeout: acks.timeout,
                });
            }
        }
        Ok(())
    }

    /// A lone `SET`, acknowledged.
    pub(super) async fn set_lone(&self, key: &str, value: StateValue, ttl: Option<Duration>) -> Result<()> {
        self.acknowledged("set", key, self.set_one(key, value, ttl, false).await).await.map(drop)
    }

    /// `SET NX`, acknowledged.
    pub(super) async fn set_if_absent_acknowledged(
        &self,
        key: &str,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.acknowledged("set_if_not_exists", key, self.set_one(key, value, ttl, true).await).await
    }

    /// `set_many`, acknowledged on every slot it wrote.
    pub(super) async fn set_many_acknowledged(
        &self,
        entries: &[(&str, StateValue)],
        ttl: Option<Duration>,
    ) -> Result<()> {
        self.set_many_values(entries, ttl).await?;
        self.acknowledged_keys("set_many", entries.iter().map(|(key, _)| *key)).await
    }

    /// Compare-and-swap, acknowledged.
    pub(super) async fn compare_and_swap_acknowledged(
        &self,
        key: &str,
        expected: Expected,
        value: StateValue,
        ttl: Option<Duration>,
    ) -> Result<CasOutcome> {
        let outcome = self.compare_and_swap_one(key, expected, value, ttl).await;
        self.acknowledged("compare_and_swap", key, outcome).await
    }
}
