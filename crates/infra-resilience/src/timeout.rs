//! Timeouts: per attempt, and an overall deadline carried across retries.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

use crate::ResilienceError;

/// Runs `call`, cancelling it (by dropping it) after `timeout`:
/// [`ResilienceError::Timeout`] then, [`ResilienceError::Failed`] if it failed by itself.
pub async fn timeout<T, E, Fut>(timeout: Duration, call: Fut) -> Result<T, ResilienceError<E>>
where
    Fut: Future<Output = Result<T, E>>,
{
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(ResilienceError::failed),
        Err(_) => Err(ResilienceError::Timeout { timeout, attempts: 1 }),
    }
}

/// The bounds on one attempt: its own timeout and what is left of the overall deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) per_attempt: Option<Duration>,
    /// The deadline's instant and its total length (for the error).
    pub(crate) deadline: Option<(Instant, Duration)>,
}

impl Bounds {
    /// Runs one attempt within the bounds; whichever ends first names the error.
    pub(crate) async fn run<T, E, Fut>(self, attempt: Fut) -> Result<T, ResilienceError<E>>
    where
        Fut: Future<Output = Result<T, ResilienceError<E>>>,
    {
        let per_attempt = self.per_attempt.map(|t| (Instant::now() + t, t));
        let (at, error) = match (per_attempt, self.deadline) {
            (None, None) => return attempt.await,
            (Some((at, timeout)), Some((deadline, _))) if at < deadline => {
                (at, ResilienceError::Timeout { timeout, attempts: 1 })
            }
            (Some((at, timeout)), None) => (at, ResilienceError::Timeout { timeout, attempts: 1 }),
            (_, Some((at, deadline))) => (at, ResilienceError::DeadlineExceeded { deadline, attempts: 1 }),
        };
        match tokio::time::timeout_at(at, attempt).await {
            Ok(result) => result,
            Err(_) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_call_is_cancelled_at_the_bound() {
        let started = Instant::now();
        let result: Result<(), ResilienceError<&str>> =
            timeout(Duration::from_millis(200), std::future::pending()).await;
        assert!(
            matches!(result, Err(ResilienceError::Timeout { timeout, attempts: 1 }) if timeout == Duration::from_millis(200))
        );
        assert_eq!(started.elapsed(), Duration::from_millis(200));
        let fast = timeout(Duration::from_millis(200), async { Err::<(), _>("refused") }).await;
        assert_eq!(fast.unwrap_err().into_inner(), Some("refused"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_nearer_bound_wins_and_names_the_error() {
        let deadline_at = Instant::now() + Duration::from_millis(150);
        let bounds = Bounds {
            per_attempt: Some(Duration::from_millis(100)),
            deadline: Some((deadline_at, Duration::from_secs(1))),
        };
        let result: Result<(), ResilienceError<()>> = bounds.run(std::future::pending()).await;
        assert!(matches!(result, Err(ResilienceError::Timeout { .. })), "{result:?}");
        // 100 ms later only 50 ms of the deadline are left: it cuts the next attempt.
        let result: Result<(), ResilienceError<()>> = bounds.run(std::future::pending()).await;
        assert!(matches!(result, Err(ResilienceError::DeadlineExceeded { .. })), "{result:?}");
        assert_eq!(Instant::now(), deadline_at);
    }
}
