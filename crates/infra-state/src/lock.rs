//! A lock on a key: taken with set-if-absent, released only by its owner.

use std::{fmt, sync::Arc, time::Duration};

use crate::{CasOutcome, DynStateStore, Expected, Result, StateValue, update::random_u64};

/// A held lock (see [`StateStoreExt::lock`](crate::StateStoreExt::lock)).
///
/// The key holds this owner's token (a JSON string, unique per acquisition) with a TTL, so a
/// crashed owner's lock frees itself. Only the owner can [`extend`](LockGuard::extend) or
/// [`release`](LockGuard::release) it: both compare the stored token atomically, so a lock
/// that expired and was taken by someone else is never extended or released by its former
/// owner.
///
/// Dropping the guard releases the lock in the background on the current tokio runtime (outside
/// one, the TTL frees it). Call [`release`](LockGuard::release) to know it happened.
pub struct LockGuard {
    store: Arc<DynStateStore>,
    key: String,
    token: StateValue,
    released: bool,
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").field("key", &self.key).field("token", &self.token.as_str()).finish()
    }
}

impl LockGuard {
    pub(crate) async fn acquire(store: Arc<DynStateStore>, name: &str, ttl: Duration) -> Result<Option<Self>> {
        let token = StateValue::json(&new_token())
            .map_err(|source| crate::StateError::Encode { key: name.to_owned(), source })?;
        if store.set_if_not_exists(name, token.clone(), Some(ttl)).await? {
            Ok(Some(Self { store, key: name.to_owned(), token, released: false }))
        } else {
            Ok(None)
        }
    }

    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// This owner's token, as stored (a JSON string).
    pub fn token(&self) -> &StateValue {
        &self.token
    }

    /// Sets the lock's TTL to `ttl` from now if this owner still holds it; `false` if it
    /// expired or another owner holds it now.
    pub async fn extend(&self, ttl: Duration) -> Result<bool> {
        let expected = Expected::Value(self.token.clone());
        let outcome = self.store.compare_and_swap(&self.key, expected, self.token.clone(), Some(ttl)).await?;
        Ok(matches!(outcome, CasOutcome::Swapped(_)))
    }

    /// Releases the lock if this owner still holds it; `false` if it had expired or was taken
    /// by another owner (whose lock stays untouched).
    pub async fn release(mut self) -> Result<bool> {
        self.released = true;
        self.store.compare_and_delete(&self.key, Expected::Value(self.token.clone())).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (store, key, token) = (Arc::clone(&self.store), std::mem::take(&mut self.key), self.token.clone());
        // A failed release is not lost: the TTL frees the lock.
        runtime.spawn(async move {
            let _ = store.compare_and_delete(&key, Expected::Value(token)).await;
        });
    }
}

/// A token unique to one acquisition: the process, the time and 64 random bits.
fn new_token() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}-{nanos:x}-{:016x}", std::process::id(), random_u64())
}
