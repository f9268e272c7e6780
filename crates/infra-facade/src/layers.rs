//! The resilience the decorators put around each call: the configured retry (told whether the
//! operation is idempotent), a circuit breaker from the infrastructure's registry, the
//! per-attempt timeout and the overall deadline; and the counters they report.

use std::{
    fmt,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use infra_config::ResilienceConfig;
use infra_resilience::{CircuitBreaker, Idempotency, Policy, ResilienceError, Retry, RetryClass, TimeLimiterMetrics};
use serde::Serialize;

/// Counters of one decorator, readable while it runs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    calls: AtomicU64,
    retries: AtomicU64,
    rejections: AtomicU64,
    failures: AtomicU64,
}

/// A snapshot of a decorator's counters (in [`HealthReport`](crate::HealthReport), and from
/// `stats()` on [`ResilientStore`](crate::ResilientStore) and
/// [`ResilientBus`](crate::ResilientBus)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct CallStats {
    /// Calls made through the decorator (each counted once, however many attempts it took).
    pub calls: u64,
    /// Attempts repeated after a failure the retry policy judged safe to repeat.
    pub retries: u64,
    /// Calls refused without being made because the circuit breaker was open.
    pub rejections: u64,
    /// Calls that failed in the end (refusals included).
    pub failures: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CallStats {
        CallStats {
            calls: self.calls.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rejections: self.rejections.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

/// What a call needs to report a failure the resilience layer produced (a timeout, a refusal)
/// as the operation's own error type.
pub(crate) trait LayerError: RetryClass + fmt::Display + Send + Sync + Sized + 'static {
    /// The attempt (or the whole call) took longer than `timeout`.
    fn timed_out(operation: &'static str, target: &str, timeout: Duration) -> Self;
    /// The breaker refused the call: `reason` says why; `backend` and `url` (redacted) name the
    /// backend.
    fn rejected(component: &'static str, backend: &'static str, url: &str, reason: String) -> Self;
}

/// The resilience around every call of one decorator.
pub(crate) struct Layers<E> {
    idempotent: Retry<E>,
    non_idempotent: Retry<E>,
    breaker: CircuitBreaker,
    timeout: Duration,
    deadline: Duration,
    /// Resolved once: the policy is built per call (its `T` varies).
    time_limiter: TimeLimiterMetrics,
    counters: Arc<Counters>,
    /// Set by `close`: later calls go once to the inner backend, which refuses them.
    closed: AtomicBool,
    /// `state store` or `event bus`.
    component: &'static str,
    /// `memory` or `redis`.
    backend: &'static str,
    /// The backend's URL, password redacted (`in-process` for memory backends).
    url: String,
}

impl<E> fmt::Debug for Layers<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layers")
            .field("breaker", &self.breaker.name())
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .field("stats", &self.counters.snapshot())
            .finish_non_exhaustive()
    }
}

impl<E: LayerError> Layers<E> {
    pub(crate) fn new(
        config: &ResilienceConfig,
        breaker: CircuitBreaker,
        component: &'static str,
        backend: &'static str,
        url: String,
    ) -> Self {
        let counters = Arc::new(Counters::default());
        let retry = |idempotency: Idempotency| {
            let counters = Arc::clone(&counters);
            Retry::from_config(&config.retry).name(breaker.name()).idempotency(idempotency).on_retry(move |event| {
                counters.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target: "infra_facade",
                    component,
                    attempt = event.attempt,
                    delay_ms = u64::try_from(event.delay.as_millis()).unwrap_or(u64::MAX),
                    error = %event.error.inner().map_or_else(|| event.error.to_string(), ToString::to_string),
                    "retrying a call that failed and is safe to repeat"
                );
            })
        };
        Self {
            idempotent: retry(Idempotency::Idempotent),
            non_idempotent: retry(Idempotency::NonIdempotent),
            time_limiter: TimeLimiterMetrics::new(breaker.name()),
            breaker,
            timeout: config.timeout.per_attempt,
            deadline: config.timeout.overall,
            counters,
            closed: AtomicBool::new(false),
            component,
            backend,
            url,
        }
    }

    pub(crate) fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    pub(crate) fn stats(&self) -> CallStats {
        self.counters.snapshot()
    }

    /// After this, calls are no longer retried: the backend was closed on purpose, and its
    /// refusals repeat.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Runs `attempt` (once per attempt) through the layers; `operation` and `target` name the
    /// call in the errors the layers produce themselves.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        target: &str,
        idempotency: Idempotency,
        mut attempt: F,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        if self.closed.load(Ordering::SeqCst) {
            let result = attempt().await;
            if result.is_err() {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
            }
            return result;
        }
        let retry = match idempotency {
            Idempotency::Idempotent => self.idempotent.clone(),
            Idempotency::NonIdempotent => self.non_idempotent.clone(),
        };
        let policy: Policy<T, E> = Policy::builder()
            .retry(retry)
            .breaker(self.breaker.clone())
            // Only what says the dependency is unwell opens the breaker: a bad key or a value
            // that does not decode is the caller's doing.
            .breaker_counts(|error| match error {
                ResilienceError::Failed { source, .. } => source.is_transient(),
                ResilienceError::Timeout { .. } => true,
                _ => false,
            })
            .timeout(self.timeout)
            .deadline(self.deadline)
            .time_limiter_metrics(self.time_limiter.clone())
            .build();
        let result = policy.call(attempt).await;
        result.map_err(|error| {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
            match error {
                ResilienceError::Failed { source, .. } => source,
                ResilienceError::Timeout { timeout, .. } => E::timed_out(operation, target, timeout),
                ResilienceError::DeadlineExceeded { deadline, .. } => E::timed_out(operation, target, deadline),
                refused => {
                    self.counters.rejections.fetch_add(1, Ordering::Relaxed);
                    E::rejected(self.component, self.backend, &self.url, refused.to_string())
                }
            }
        })
    }
}
