//! Retry with exponential backoff, jitter, a predicate, retry-after hints and a shared budget.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use infra_config::RetryConfig;
use tokio::time::Instant;

use crate::{
    Backoff, Idempotency, ResilienceError, RetryBudget, RetryClass,
    instruments::{DEFAULT_NAME, RetryInstruments},
};

type RetryIf<E> = Arc<dyn Fn(&ResilienceError<E>) -> bool + Send + Sync>;
type RetryAfter<E> = Arc<dyn Fn(&E) -> Option<Duration> + Send + Sync>;
type OnRetry<E> = Arc<dyn Fn(&RetryEvent<'_, E>) + Send + Sync>;

/// What the retry hook is told before each retry.
#[derive(Debug)]
#[non_exhaustive]
pub struct RetryEvent<'a, E> {
    /// The attempt that failed (1 for the first).
    pub attempt: u32,
    /// The wait before the next attempt.
    pub delay: Duration,
    /// Why the attempt failed.
    pub error: &'a ResilienceError<E>,
}

/// A retry policy for operations failing with `E`. Clones share the budget and the callbacks.
///
/// Attempts stop at the first success, after `max_attempts`, when the predicate refuses the
/// error (by default only [`ResilienceError::is_transient`] errors are retried), when the next
/// wait would pass `max_elapsed` (counted from the first failure, so a first attempt that
/// succeeds reads no clock) or the caller's deadline, or when the shared [`RetryBudget`] is
/// drained. Giving up returns the last error, which says how many attempts were made.
///
/// The default predicate retries every operation error and every timeout, which repeats a call
/// that may already have been applied: for an operation that is not idempotent (placing an
/// order, an increment) use [`Retry::idempotency`].
///
/// # Metrics
///
/// Every call counts once in `infra_retry_calls_total{name,kind}` (`successful_without_retry`,
/// `successful_with_retry`, `failed_without_retry`, `failed_with_retry`; a call dropped midway
/// counts as none) under its [name](Retry::name), `"default"` unless set. Handles are resolved
/// when it is built or renamed, so install the recorder first; clones share them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use infra_resilience::{Backoff, Jitter, Retry};
///
/// let retry = Retry::<&str>::new()
///     .max_attempts(3)
///     .backoff(Backoff { initial: Duration::from_millis(100), jitter: Jitter::None, ..Backoff::default() });
/// let mut calls = 0;
/// let result = retry.call(|| { calls += 1; let n = calls; async move { if n < 3 { Err("busy") } else { Ok(n) } } }).await;
/// assert_eq!(result.unwrap(), 3);
/// # }
/// ```
pub struct Retry<E> {
    max_attempts: u32,
    backoff: Backoff,
    max_elapsed: Option<Duration>,
    max_retry_after: Duration,
    /// `None`: [`ResilienceError::is_transient`].
    retry_if: Option<RetryIf<E>>,
    retry_after: Option<RetryAfter<E>>,
    on_retry: Option<OnRetry<E>>,
    budget: Option<RetryBudget>,
    name: &'static str,
    instruments: Arc<RetryInstruments>,
}

impl<E> Clone for Retry<E> {
    fn clone(&self) -> Self {
        Self {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            max_elapsed: self.max_elapsed,
            max_retry_after: self.max_retry_after,
            retry_if: self.retry_if.clone(),
            retry_after: self.retry_after.clone(),
            on_retry: self.on_retry.clone(),
            budget: self.budget.clone(),
            name: self.name,
            instruments: Arc::clone(&self.instruments),
        }
    }
}

impl<E> fmt::Debug for Retry<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("name", &self.name)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("max_elapsed", &self.max_elapsed)
            .field("max_retry_after", &self.max_retry_after)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl<E> Default for Retry<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Retry<E> {
    /// 3 attempts, [`Backoff::default`], no elapsed-time cap, retry-after hints capped at 60 s,
    /// transient errors only, no budget, named `"default"`.
    pub fn new() -> Self {
        Self::named(DEFAULT_NAME)
    }

    /// [`Retry::new`] named `name`, its handles resolved once.
    pub(crate) fn named(name: &str) -> Self {
        let name = crate::names::intern(name);
        Self {
            max_attempts: 3,
            backoff: Backoff::default(),
            max_elapsed: None,
            max_retry_after: Duration::from_secs(60),
            retry_if: None,
            retry_after: None,
            on_retry: None,
            budget: None,
            name,
            instruments: Arc::new(RetryInstruments::new(name)),
        }
    }

    /// The policy `config` describes.
    pub fn from_config(config: &RetryConfig) -> Self {
        Self::from_config_named(config, DEFAULT_NAME)
    }

    /// [`Retry::from_config`] named `name`.
    pub(crate) fn from_config_named(config: &RetryConfig, name: &str) -> Self {
        Self::named(name)
            .max_attempts(config.max_attempts)
            .backoff(Backoff {
                initial: config.initial_delay,
                max: config.max_delay,
                multiplier: config.multiplier,
                jitter: config.jitter,
            })
            .max_elapsed(config.max_elapsed)
    }

    /// Names it in metrics (`name` label): the dependency it retries, as for its breaker.
    /// Resolves its handles again, under the new name.
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = crate::names::intern(name);
        self.instruments = Arc::new(RetryInstruments::new(self.name));
        self
    }

    /// Attempts in all, the first included (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The delays between attempts.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// No retry whose wait would end more than `elapsed` after the first failure.
    #[must_use]
    pub fn max_elapsed(mut self, elapsed: Duration) -> Self {
        self.max_elapsed = Some(elapsed);
        self
    }

    /// Which errors are worth another attempt (the original design's `retry_on`): for example
    /// `|e| e.inner().is_some_and(MyError::is_connection) || matches!(e, ResilienceError::Timeout { .. })`.
    #[must_use]
    pub fn retry_if(mut self, predicate: impl Fn(&ResilienceError<E>) -> bool + Send + Sync + 'static) -> Self {
        self.retry_if = Some(Arc::new(predicate));
        self
    }

    /// Retries only what `idempotency` [allows](Idempotency::allows_retry) for an operation
    /// failing with `E`: with [`Idempotency::NonIdempotent`], never a timeout or an error that
    /// may have been applied. Replaces [`Retry::retry_if`].
    #[must_use]
    pub fn idempotency(self, idempotency: Idempotency) -> Self
    where
        E: RetryClass + 'static,
    {
        self.retry_if(move |error| idempotency.allows_retry(error))
    }

    /// Reads a retry-after hint from the operation's error (an HTTP 429's `Retry-After`): the
    /// next attempt waits at least that long, but never more than `cap`.
    #[must_use]
    pub fn retry_after(mut self, hint: impl Fn(&E) -> Option<Duration> + Send + Sync + 'static, cap: Duration) -> Self {
        self.retry_after = Some(Arc::new(hint));
        self.max_retry_after = cap;
        self
    }

    /// Called before each retry (after the failure, before the wait).
    #[must_use]
    pub fn on_retry(mut self, hook: impl Fn(&RetryEvent<'_, E>) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(Arc::new(hook));
        self
    }

    /// Spends retries from `budget`, shared with every other user of it.
    #[must_use]
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Runs `operation` until it succeeds or the policy gives up.
    pub async fn call<T, F, Fut>(&self, mut operation: F) -> Result<T, ResilienceError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        self.run(
            || {
                let attempt = operation();
                async move { attempt.await.map_err(ResilienceError::failed) }
            },
            None,
        )
        .await
    }

    /// The retry loop over attempts that already speak [`ResilienceError`], bounded by an
    /// optional overall deadline.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        mut attempt: F,
        deadline: Option<Instant>,
    ) -> Result<T, ResilienceError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ResilienceError<E>>>,
        E: fmt::Display,
    {
        match attempt().await {
            Ok(value) => {
                self.instruments.successful_without_retry.increment(1);
                Ok(self.succeeded(value))
            }
            // Boxed: the retry machinery (timers included) would otherwise make every call's
            // future several times larger, first successes included.
            Err(error) => {
                let result = Box::pin(self.retry_after_failure(error, attempt, deadline)).await;
                // A success here came from a retry; an error says how many attempts it took.
                self.instruments.finished(result.is_ok(), result.as_ref().map_or_else(|e| e.attempts(), |_| 2));
                result
            }
        }
    }

    /// Records a success with the budget and hands `value` back.
    fn succeeded<T>(&self, value: T) -> T {
        if let Some(budget) = &self.budget {
            budget.on_success();
        }
        value
    }

    /// Retries after the first attempt failed with `error`.
    async fn retry_after_failure<T, F, Fut>(
        &self,
        mut error: ResilienceError<E>,
        mut attempt: F,
        deadline: Option<Instant>,
    ) -> Result<T, ResilienceError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ResilienceError<E>>>,
        E: fmt::Display,
    {
        let mut attempts = 1_u32;
        let mut first_failure = None;
        let mut previous_delay = self.backoff.initial;
        loop {
            error.set_attempts(attempts);
            if let Some(budget) = &self.budget
                && !error.is_rejection()
            {
                budget.on_failure();
            }
            let retryable = self.retry_if.as_ref().map_or_else(|| error.is_transient(), |retry_if| retry_if(&error));
            if attempts >= self.max_attempts || !retryable {
                return Err(error);
            }
            let now = Instant::now();
            let first_failure = *first_failure.get_or_insert(now);
            let mut delay = self.backoff.delay(attempts, previous_delay);
            previous_delay = delay;
            if let (Some(hint), Some(inner)) = (&self.retry_after, error.inner())
                && let Some(wait) = hint(inner)
            {
                delay = delay.max(wait.min(self.max_retry_after));
            }
            let resume = now + delay;
            if self.max_elapsed.is_some_and(|max| resume.duration_since(first_failure) > max)
                || deadline.is_some_and(|deadline| resume >= deadline)
            {
                tracing::debug!(target: "infra_resilience", attempts, "giving up: no time left for another attempt");
                return Err(error);
            }
            if let Some(budget) = &self.budget
                && !budget.can_retry()
            {
                tracing::warn!(target: "infra_resilience", attempts, tokens = budget.tokens(), "giving up: retry budget exhausted");
                return Err(error);
            }
            if let Some(hook) = &self.on_retry {
                hook(&RetryEvent { attempt: attempts, delay, error: &error });
            }
            match error.inner() {
                Some(cause) => {
                    tracing::info!(target: "infra_resilience", attempt = attempts, delay_ms = delay.as_millis() as u64, error = %error, cause = %cause, "retrying")
                }
                None => {
                    tracing::info!(target: "infra_resilience", attempt = attempts, delay_ms = delay.as_millis() as u64, error = %error, "retrying")
                }
            }
            tokio::time::sleep_until(resume).await;
            attempts += 1;
            error = match attempt().await {
                Ok(value) => return Ok(self.succeeded(value)),
                Err(error) => error,
            };
        }
    }
}
