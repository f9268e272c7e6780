//! [`RetryClass`] for [`EventsError`] (feature `resilience`): the presets of infra-resilience
//! then retry a bus operation only when [`EventsError::is_transient`] and, for a publish (not
//! idempotent), only when not [`EventsError::may_have_been_applied`].

use infra_resilience::RetryClass;

use crate::EventsError;

impl RetryClass for EventsError {
    fn is_transient(&self) -> bool {
        EventsError::is_transient(self)
    }

    fn may_have_been_applied(&self) -> bool {
        EventsError::may_have_been_applied(self)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicU32, Ordering},
        time::Duration,
    };

    use infra_resilience::{Idempotency, presets};

    use crate::EventsError;

    fn timed_out(operation: &'static str) -> EventsError {
        EventsError::Timeout { operation, target: "ns:orders".into(), timeout: Duration::from_millis(500) }
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_idempotent_policy_does_not_publish_again_after_a_timeout() {
        let policy = presets::redis::<u64, EventsError>("events-publish", Idempotency::NonIdempotent).build();
        let attempts = AtomicU32::new(0);
        let error = policy
            .call(|| async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err::<u64, _>(timed_out("publish"))
            })
            .await
            .unwrap_err();
        assert_eq!(error.attempts(), 1);
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connect_that_timed_out_is_retried_even_for_a_publish() {
        let policy = presets::redis::<u64, EventsError>("events-publish", Idempotency::NonIdempotent).build();
        let attempts = AtomicU32::new(0);
        let delivered = policy
            .call(|| async {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                if attempt < 3 { Err(timed_out("connect")) } else { Ok(2) }
            })
            .await;
        assert_eq!(delivered.unwrap(), 2);
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
    }
}
