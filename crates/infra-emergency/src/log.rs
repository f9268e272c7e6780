//! The persisted log of each scope, on any [`StateStore`].
//!
//! Per scope, under the store's namespace:
//!
//! | key | holds |
//! |---|---|
//! | `emergency:audit:<scope>:<seq, 20 digits>` | the audit record of transition `seq`, written once with `set_if_not_exists`: **claiming the key is the commit** |
//! | `emergency:state:<scope>` | a copy of the latest record, advanced with compare-and-swap (never backwards) by the background task of any controller that finds it behind the log (the committing one within 100 ms): a pointer into the log |
//! | `emergency:heartbeat:<bot>` | the bot's heartbeat, with a TTL |
//!
//! A transition from a scope at sequence `n` claims `n + 1`; of concurrent transitions exactly
//! one claims it, the others read the log again and decide anew, so there is exactly one audit
//! record per real transition. The latest record of a scope is the pointer's, or a later entry
//! of the log (the pointer is written after the commit and may lag): a read fetches the pointer
//! and the two entries after the reader's last known sequence in one round trip, then follows
//! the log while entries exist.

use std::sync::Arc;

use futures::TryStreamExt;
use infra_state::{Expected, StateStore, StateValue};
use serde::de::DeserializeOwned;

use crate::{
    AuditRecord, EmergencyError, Scope,
    fleet::Heartbeat,
    record::{audit_key, heartbeat_key, heartbeat_prefix, state_key},
};

/// Log entries followed past the pointer in one read before giving up (a pointer this far
/// behind means its writers keep failing; the read still answers with what it found).
const MAX_FOLLOW: u32 = 10_000;

/// Attempts to advance a pointer under contention.
const POINTER_ATTEMPTS: u32 = 16;

/// The store, seen as per-scope logs.
#[derive(Debug, Clone)]
pub(crate) struct Log {
    store: Arc<dyn StateStore>,
}

fn decode<T: DeserializeOwned>(key: &str, value: &StateValue) -> Result<T, EmergencyError> {
    value.decode().map_err(|source| EmergencyError::Corrupt { key: key.to_owned(), source })
}

fn encode(record: &impl serde::Serialize) -> StateValue {
    // Records and heartbeats are plain data (strings, finite numbers, enums): always JSON.
    StateValue::json(record).unwrap_or_else(|_| StateValue::from(serde_json::Value::Null))
}

impl Log {
    pub(crate) fn new(store: Arc<dyn StateStore>) -> Self {
        Self { store }
    }

    pub(crate) fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The latest record of each scope (`None`: it never moved), reading from each one's
    /// `hint` (the last sequence the caller knows): the pointer, entry `hint` and the next two
    /// entries in one round trip, so a read that is at most two transitions behind costs one
    /// round trip (entry `hint` itself tells a lagging pointer from a store that lost the log);
    /// the log is followed further only when both next entries exist or the pointer is past
    /// them.
    pub(crate) async fn read(&self, scopes: &[(&Scope, u64)]) -> Result<Vec<Option<AuditRecord>>, EmergencyError> {
        Ok(self.read_with_pointers(scopes).await?.into_iter().map(|(latest, _)| latest).collect())
    }

    /// [`Log::read`], with the sequence each scope's pointer holds (0: none), so the caller can
    /// advance a pointer that lags.
    pub(crate) async fn read_with_pointers(
        &self,
        scopes: &[(&Scope, u64)],
    ) -> Result<Vec<(Option<AuditRecord>, u64)>, EmergencyError> {
        let keys: Vec<String> = scopes
            .iter()
            .flat_map(|(scope, hint)| {
                [state_key(scope), audit_key(scope, *hint), audit_key(scope, hint + 1), audit_key(scope, hint + 2)]
            })
            .collect();
        let names: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = self.store.get_many(&names).await.map_err(|e| EmergencyError::store("reading the state", e))?;
        let mut latest = Vec::with_capacity(scopes.len());
        for (i, (scope, hint)) in scopes.iter().enumerate() {
            let mut best: Option<AuditRecord> = None;
            let mut pointer = 0;
            for j in 4 * i..4 * i + 4 {
                if let Some(value) = &values[j] {
                    // The pointer is only a shortcut into the log: one that does not decode
                    // (written by a foreign client) is read as absent, so the log decides and
                    // the next advance replaces it, rather than the scope staying unreadable.
                    let record: AuditRecord = match decode(&keys[j], value) {
                        Err(error) if j == 4 * i => {
                            tracing::warn!(target: "infra_emergency", %error, "ignoring a corrupt state pointer");
                            continue;
                        }
                        decoded => decoded?,
                    };
                    if j == 4 * i {
                        pointer = record.seq;
                    }
                    if best.as_ref().is_none_or(|b| record.seq > b.seq) {
                        best = Some(record);
                    }
                }
            }
            // Sequences are dense: with entry `hint + 2` absent and the pointer not past
            // `hint + 1`, nothing later exists.
            let beyond = values[4 * i + 3].is_some() || best.as_ref().is_some_and(|b| b.seq > hint + 1);
            latest.push((if beyond { self.follow(scope, best).await? } else { best }, pointer));
        }
        Ok(latest)
    }

    /// Follows the log of `scope` past `from` while entries exist.
    async fn follow(
        &self,
        scope: &Scope,
        mut from: Option<AuditRecord>,
    ) -> Result<Option<AuditRecord>, EmergencyError> {
        for _ in 0..MAX_FOLLOW {
            let key = audit_key(scope, from.as_ref().map_or(0, |r| r.seq) + 1);
            match self.store.get(&key).await.map_err(|e| EmergencyError::store("reading the audit log", e))? {
                Some(value) => from = Some(decode(&key, &value)?),
                None => return Ok(from),
            }
        }
        Ok(from)
    }

    /// Commits `record`: claims its sequence in its scope's log. `false`: another transition
    /// holds that sequence (the caller's view was stale).
    pub(crate) async fn claim(&self, record: &AuditRecord) -> Result<bool, EmergencyError> {
        let key = audit_key(&record.scope, record.seq);
        self.store.set_if_not_exists(&key, encode(record), None).await.map_err(|e| {
            EmergencyError::store(format!("committing transition {} of the {} scope", record.seq, record.scope), e)
        })
    }

    /// Moves the scope's pointer to `record` unless it already points at it or later.
    pub(crate) async fn advance_pointer(&self, record: &AuditRecord) -> Result<(), EmergencyError> {
        let key = state_key(&record.scope);
        let doing = || format!("advancing the state pointer of the {} scope", record.scope);
        for _ in 0..POINTER_ATTEMPTS {
            let current = self.store.get_versioned(&key).await.map_err(|e| EmergencyError::store(doing(), e))?;
            let expected = match current {
                Some(versioned) => {
                    // A corrupt pointer is replaced: the log is the truth.
                    let seq = versioned.value.decode::<AuditRecord>().map_or(0, |r| r.seq);
                    if seq >= record.seq {
                        return Ok(());
                    }
                    Expected::Version(versioned.version)
                }
                None => Expected::Absent,
            };
            let outcome = self
                .store
                .compare_and_swap(&key, expected, encode(record), None)
                .await
                .map_err(|e| EmergencyError::store(doing(), e))?;
            if outcome.is_swapped() {
                return Ok(());
            }
        }
        Err(EmergencyError::Contended { scope: record.scope.clone(), attempts: POINTER_ATTEMPTS })
    }

    /// The last `limit` records of `scope`, newest first.
    pub(crate) async fn history(&self, scope: &Scope, limit: usize) -> Result<Vec<AuditRecord>, EmergencyError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Some(latest) = self.read(&[(scope, 0)]).await?.pop().flatten() else {
            return Ok(Vec::new());
        };
        let oldest = latest.seq.saturating_sub(limit as u64 - 1).max(1);
        let keys: Vec<String> = (oldest..=latest.seq).rev().map(|seq| audit_key(scope, seq)).collect();
        let names: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values =
            self.store.get_many(&names).await.map_err(|e| EmergencyError::store("reading the audit log", e))?;
        keys.iter().zip(values).filter_map(|(key, value)| value.map(|v| decode(key, &v))).collect()
    }

    /// Writes `heartbeat` with a TTL.
    pub(crate) async fn beat(&self, heartbeat: &Heartbeat, ttl: std::time::Duration) -> Result<(), EmergencyError> {
        let key = heartbeat_key(&heartbeat.bot);
        self.store
            .set(&key, encode(heartbeat), Some(ttl))
            .await
            .map_err(|e| EmergencyError::store("writing the heartbeat", e))
    }

    /// Removes the heartbeat of `bot`.
    pub(crate) async fn leave(&self, bot: &str) -> Result<(), EmergencyError> {
        self.store
            .delete(&heartbeat_key(bot))
            .await
            .map(drop)
            .map_err(|e| EmergencyError::store("removing the heartbeat", e))
    }

    /// Every live heartbeat, sorted by bot. A heartbeat that does not decode is skipped.
    pub(crate) async fn heartbeats(&self) -> Result<Vec<Heartbeat>, EmergencyError> {
        let prefix = heartbeat_prefix();
        let mut keys: Vec<String> =
            self.store.scan(&prefix).try_collect().await.map_err(|e| EmergencyError::store("listing heartbeats", e))?;
        keys.sort();
        keys.dedup();
        let names: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = self.store.get_many(&names).await.map_err(|e| EmergencyError::store("reading heartbeats", e))?;
        Ok(values.into_iter().flatten().filter_map(|value| value.decode::<Heartbeat>().ok()).collect())
    }
}
