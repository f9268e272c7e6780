//! Replica acknowledgements of writes (`state.replica_acks`): after a write, `WAIT` on the node
//! that holds the key, so that a write answered `Ok` survives a failover to a replica.

use std::{collections::BTreeMap, time::Duration};

use futures::future::BoxFuture;
use infra_redis::{fred::util::redis_keyslot, wait_for_replicas};

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
        self.acknowledged_keys(operation, &[key]).await?;
        Ok(answer)
    }

    /// [`RedisStore::replicated`] when acknowledgements are configured; nothing (and no
    /// allocation) otherwise.
    pub(super) async fn acknowledged_keys(&self, operation: &'static str, keys: &[&str]) -> Result<()> {
        if self.shared.replica_acks.is_some() { self.replicated(operation, keys).await } else { Ok(()) }
    }

    /// Waits until the configured number of replicas confirmed the writes this store sent the
    /// nodes holding `keys`: one `WAIT` per hash slot on a cluster, one in all otherwise. Fewer
    /// in time is [`StateError::NotReplicated`]. Returns at once without the setting.
    ///
    /// Boxed: fred's `WAIT` future is as large as the write's, and only stores configured to
    /// wait should pay for it.
    pub(super) fn replicated<'a>(&'a self, operation: &'static str, keys: &'a [&'a str]) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.wait_for_acks(operation, keys))
    }

    async fn wait_for_acks(&self, operation: &'static str, keys: &[&str]) -> Result<()> {
        let Some(acks) = self.shared.replica_acks else { return Ok(()) };
        let client = self.client().await?;
        let mut by_slot = BTreeMap::new();
        for key in keys {
            let full = self.full_key(key);
            let slot = if self.shared.clustered { redis_keyslot(full.as_bytes()) } else { 0 };
            by_slot.entry(slot).or_insert((*key, full));
        }
        for (key, full) in by_slot.into_values() {
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
        let keys: Vec<&str> = entries.iter().map(|(key, _)| *key).collect();
        self.acknowledged_keys("set_many", &keys).await
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
