//! [`RetryClass`] for [`StateError`] (feature `resilience`): the presets of infra-resilience
//! then retry a store operation only when [`StateError::is_transient`] and, for an operation that
//! is not idempotent, only when not [`StateError::may_have_been_applied`].

use infra_resilience::RetryClass;

use crate::StateError;

impl RetryClass for StateError {
    fn is_transient(&self) -> bool {
        StateError::is_transient(self)
    }

    fn may_have_been_applied(&self) -> bool {
        StateError::may_have_been_applied(self)
    }
}

#[cfg(all(test, feature = "memory"))]
mod tests {
    use std::{
        sync::atomic::{AtomicU32, Ordering},
        time::Duration,
    };

    use infra_resilience::{Idempotency, ResilienceError, presets};

    use crate::{StateError, StateStoreExt, memory::MemoryStore};

    /// An increment that reaches the store, then loses its reply: what a Redis timeout after
    /// the server ran `INCRBY` looks like.
    async fn increment_then_time_out(store: &MemoryStore, attempts: &AtomicU32) -> Result<i64, StateError> {
        attempts.fetch_add(1, Ordering::SeqCst);
        store.incr("fills", 1).await?;
        Err(StateError::Timeout { operation: "increment", key: "fills".into(), timeout: Duration::from_millis(500) })
    }

    async fn fills(store: &MemoryStore) -> i64 {
        store.get_json::<i64>("fills").await.unwrap().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_idempotent_redis_policy_sends_an_increment_that_timed_out_once() {
        let store = MemoryStore::new("bot");
        let attempts = AtomicU32::new(0);
        let policy = presets::redis::<i64, StateError>("state-increments", Idempotency::NonIdempotent).build();
        let error = policy.call(|| increment_then_time_out(&store, &attempts)).await.unwrap_err();
        assert!(matches!(error, ResilienceError::Failed { source: StateError::Timeout { .. }, attempts: 1 }));
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert_eq!(fills(&store).await, 1, "counted once");

        // An increment still running at the preset's 500 ms bound is cancelled, not resent.
        let attempts = AtomicU32::new(0);
        let error = policy
            .call(|| async {
                attempts.fetch_add(1, Ordering::SeqCst);
                store.incr("fills", 1).await?;
                std::future::pending::<Result<i64, StateError>>().await
            })
            .await
            .unwrap_err();
        assert!(matches!(error, ResilienceError::Timeout { attempts: 1, .. }), "{error:?}");
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert_eq!(fills(&store).await, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idempotent_policy_would_count_the_same_increment_again() {
        let store = MemoryStore::new("bot");
        let attempts = AtomicU32::new(0);
        let policy = presets::redis::<i64, StateError>("state-reads", Idempotency::Idempotent).build();
        policy.call(|| increment_then_time_out(&store, &attempts)).await.unwrap_err();
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        assert_eq!(fills(&store).await, 3, "why increments must be declared non-idempotent");
    }

    #[tokio::test(start_paused = true)]
    async fn errors_that_repeat_are_not_retried() {
        let store = MemoryStore::new("bot");
        let attempts = AtomicU32::new(0);
        let policy = presets::redis::<i64, StateError>("state-reads", Idempotency::Idempotent).build();
        let error = policy
            .call(|| async {
                attempts.fetch_add(1, Ordering::SeqCst);
                store.incr("", 1).await
            })
            .await
            .unwrap_err();
        assert!(matches!(error.into_inner(), Some(StateError::InvalidKey { .. })));
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }
}
