//! One policy stacking fallback, retry, circuit breaker, timeout and bulkhead in a fixed order.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use infra_config::ResilienceConfig;
use tokio::time::Instant;

use crate::{
    BreakerSettings, Bulkhead, CircuitBreaker, ResilienceError, Retry,
    breaker::BreakerRegistry,
    instruments::{DEFAULT_NAME, TimeLimiterInstruments},
    timeout::Bounds,
};

type Classify<E> = Arc<dyn Fn(&ResilienceError<E>) -> bool + Send + Sync>;
type Fallback<T, E> = Arc<dyn Fn(ResilienceError<E>) -> Result<T, ResilienceError<E>> + Send + Sync>;

/// Resilience around calls returning `Result<T, E>`, built with [`Policy::builder`].
///
/// The layers always stack in this order, outermost first:
///
/// 1. **fallback**: turns the final error into a value (or another error);
/// 2. **deadline**: bounds the whole call, waits included; no retry starts that could not
///    finish before it, and an attempt it interrupts is [`ResilienceError::DeadlineExceeded`];
/// 3. **retry**: repeats failed attempts with backoff; sees timeouts and rejections as typed
///    errors (by default it retries operation errors and timeouts, not rejections);
/// 4. **circuit breaker**: rejects attempts while open; operation errors and timeouts count as
///    failures (see [`PolicyBuilder::breaker_counts`]), rejections by the bulkhead and
///    deadline cuts count as neither;
/// 5. **timeout**: bounds each attempt, the wait for a bulkhead slot included;
/// 6. **bulkhead**: bounds concurrent attempts.
///
/// Cloning is cheap and clones share the breaker, the bulkhead and the retry budget.
///
/// # Metrics
///
/// Each layer records its own (see [`CircuitBreaker`], [`Retry`], [`Bulkhead`]). The timeout
/// and the deadline count each attempt they bound in `infra_timelimiter_calls_total{name,kind}`
/// (`successful`, `failed`, `timeout`, a deadline cut included) under the policy's
/// [name](PolicyBuilder::name); those handles are resolved by [`PolicyBuilder::build`], so
/// install the recorder first, and build a policy once rather than per call.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use std::time::Duration;
/// use infra_resilience::{Policy, Retry};
///
/// let policy = Policy::<f64, String>::builder()
///     .retry(Retry::new().max_attempts(3))
///     .timeout(Duration::from_secs(2))
///     .fallback_value(0.0)
///     .build();
/// let price = policy.call(|| async { Err::<f64, _>("503 from exchange".to_owned()) }).await;
/// assert_eq!(price.unwrap(), 0.0);
/// # }
/// ```
pub struct Policy<T, E> {
    retry: Option<Retry<E>>,
    breaker: Option<CircuitBreaker>,
    /// `None`: [`ResilienceError::is_transient`].
    breaker_counts: Option<Classify<E>>,
    timeout: Option<Duration>,
    deadline: Option<Duration>,
    bulkhead: Option<Bulkhead>,
    fallback: Option<Fallback<T, E>>,
    name: Option<&'static str>,
    /// Resolved by `build` when there is a timeout or a deadline.
    time_limiter: Option<Arc<TimeLimiterInstruments>>,
}

impl<T, E> Clone for Policy<T, E> {
    fn clone(&self) -> Self {
        Self {
            retry: self.retry.clone(),
            breaker: self.breaker.clone(),
            breaker_counts: self.breaker_counts.clone(),
            timeout: self.timeout,
            deadline: self.deadline,
            bulkhead: self.bulkhead.clone(),
            fallback: self.fallback.clone(),
            name: self.name,
            time_limiter: self.time_limiter.clone(),
        }
    }
}

impl<T, E> fmt::Debug for Policy<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("fallback", &self.fallback.is_some())
            .field("deadline", &self.deadline)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("timeout", &self.timeout)
            .field("bulkhead", &self.bulkhead)
            .finish()
    }
}

/// Builds a [`Policy`]; every layer is optional.
pub struct PolicyBuilder<T, E> {
    policy: Policy<T, E>,
}

impl<T, E> fmt::Debug for PolicyBuilder<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PolicyBuilder").field(&self.policy).finish()
    }
}

impl<T, E> Policy<T, E> {
    /// A builder with no layer at all.
    pub fn builder() -> PolicyBuilder<T, E> {
        PolicyBuilder {
            policy: Policy {
                retry: None,
                breaker: None,
                breaker_counts: None,
                timeout: None,
                deadline: None,
                bulkhead: None,
                fallback: None,
                name: None,
                time_limiter: None,
            },
        }
    }

    /// A policy named `name` from the configuration's defaults: its retry, a breaker named
    /// `name` from the process-wide [`BreakerRegistry`], its per-attempt timeout and overall
    /// deadline.
    ///
    /// Its retry repeats every operation error and timeout; for an operation that is not
    /// idempotent, replace it with
    /// `Retry::from_config(&config.retry).idempotency(Idempotency::NonIdempotent)`
    /// (see [`Retry::idempotency`]).
    pub fn from_config(config: &ResilienceConfig, name: &str) -> PolicyBuilder<T, E> {
        let settings = BreakerSettings::from_config(&config.breaker);
        Self::builder()
            .name(name)
            .retry(Retry::from_config_named(&config.retry, name))
            .breaker(BreakerRegistry::global().get_or_insert_with(name, || settings))
            .timeout(config.timeout.per_attempt)
            .deadline(config.timeout.overall)
    }

    /// Its circuit breaker, if it has one (for metrics and operator actions).
    pub fn circuit_breaker(&self) -> Option<&CircuitBreaker> {
        self.breaker.as_ref()
    }

    /// Its bulkhead, if it has one.
    pub fn bulkhead(&self) -> Option<&Bulkhead> {
        self.bulkhead.as_ref()
    }

    /// Runs `operation` (called once per attempt) through every layer.
    pub async fn call<F, Fut>(&self, mut operation: F) -> Result<T, ResilienceError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let deadline = self.deadline.map(|total| (Instant::now() + total, total));
        let bounds = Bounds { per_attempt: self.timeout, deadline };
        let mut attempt = || {
            // Admission first: a rejected attempt does not even create the operation's future.
            let admission = match &self.breaker {
                Some(breaker) => breaker.admit().map(Some),
                None => Ok(None),
            };
            self.attempt(bounds, admission.map(|permit| (permit, operation())))
        };
        let result = match &self.retry {
            Some(retry) => retry.run(attempt, deadline.map(|(at, _)| at)).await,
            None => attempt().await,
        };
        match (result, &self.fallback) {
            (Err(error), Some(fallback)) => fallback(error),
            (result, _) => result,
        }
    }

    /// One admitted attempt: the operation in a bulkhead slot within the bounds, its outcome
    /// reported to the breaker.
    async fn attempt<'a, Fut>(
        &'a self,
        bounds: Bounds,
        admitted: Result<(Option<crate::Permit<'a>>, Fut), ResilienceError<E>>,
    ) -> Result<T, ResilienceError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let (permit, operation) = admitted?;
        let run = async {
            let _slot = match &self.bulkhead {
                Some(bulkhead) => Some(bulkhead.acquire().await?),
                None => None,
            };
            operation.await.map_err(ResilienceError::failed)
        };
        let result = bounds.run(run).await;
        if let Some(time_limiter) = &self.time_limiter {
            time_limiter.record(&result);
        }
        if let Some(permit) = permit {
            match &result {
                Ok(_) => permit.success(),
                // Not the dependency's doing: recorded as neither.
                Err(ResilienceError::BulkheadFull { .. } | ResilienceError::DeadlineExceeded { .. }) => permit.ignore(),
                Err(error)
                    if self.breaker_counts.as_ref().map_or_else(|| error.is_transient(), |counts| counts(error)) =>
                {
                    permit.failure();
                }
                Err(_) => permit.success(),
            }
        }
        result
    }
}

/// The handles of `infra_timelimiter_calls_total{name}`, resolved once, for
/// [`PolicyBuilder::time_limiter_metrics`]. Clones share them.
#[derive(Clone)]
pub struct TimeLimiterMetrics(Arc<TimeLimiterInstruments>);

impl TimeLimiterMetrics {
    /// The handles of the time limiter named `name`, resolved now from the installed recorder.
    pub fn new(name: &str) -> Self {
        Self(Arc::new(TimeLimiterInstruments::new(crate::names::intern(name))))
    }
}

impl std::fmt::Debug for TimeLimiterMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeLimiterMetrics").finish_non_exhaustive()
    }
}

impl<T, E> PolicyBuilder<T, E> {
    /// Names the policy in metrics: its timeout and deadline record under this name (default:
    /// its breaker's name, or `"default"` without a breaker). Its other layers keep their own
    /// names.
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.policy.name = Some(crate::names::intern(name));
        self
    }

    /// Records its timeout and deadline through `metrics` instead of resolving handles in
    /// [`build`](Self::build): for a policy built per call (its `T` varying by call), resolve
    /// them once and share them.
    #[must_use]
    pub fn time_limiter_metrics(mut self, metrics: TimeLimiterMetrics) -> Self {
        self.policy.time_limiter = Some(metrics.0);
        self
    }

    /// Retries with `retry`.
    #[must_use]
    pub fn retry(mut self, retry: Retry<E>) -> Self {
        self.policy.retry = Some(retry);
        self
    }

    /// Guards attempts with `breaker` (usually from a [`BreakerRegistry`]).
    #[must_use]
    pub fn breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.policy.breaker = Some(breaker);
        self
    }

    /// Which errors the breaker counts as failures (default: operation errors and timeouts;
    /// anything else returned counts as a success of the dependency).
    #[must_use]
    pub fn breaker_counts(mut self, is_failure: impl Fn(&ResilienceError<E>) -> bool + Send + Sync + 'static) -> Self {
        self.policy.breaker_counts = Some(Arc::new(is_failure));
        self
    }

    /// Bounds each attempt.
    #[must_use]
    pub fn timeout(mut self, per_attempt: Duration) -> Self {
        self.policy.timeout = Some(per_attempt);
        self
    }

    /// Bounds the whole call, retries and waits included.
    #[must_use]
    pub fn deadline(mut self, overall: Duration) -> Self {
        self.policy.deadline = Some(overall);
        self
    }

    /// Bounds concurrent attempts with `bulkhead`.
    #[must_use]
    pub fn bulkhead(mut self, bulkhead: Bulkhead) -> Self {
        self.policy.bulkhead = Some(bulkhead);
        self
    }

    /// Turns the final error into a result: a value, or another error.
    #[must_use]
    pub fn fallback(
        mut self,
        fallback: impl Fn(ResilienceError<E>) -> Result<T, ResilienceError<E>> + Send + Sync + 'static,
    ) -> Self {
        self.policy.fallback = Some(Arc::new(fallback));
        self
    }

    /// Returns `value` whatever the final error (logged at WARN first).
    #[must_use]
    pub fn fallback_value(self, value: T) -> Self
    where
        T: Clone + Send + Sync + 'static,
        E: fmt::Display,
    {
        self.fallback(move |error| {
            tracing::warn!(target: "infra_resilience", error = %error, attempts = error.attempts(), "using the fallback value");
            Ok(value.clone())
        })
    }

    /// The policy, its metric handles resolved (see [`Policy`]'s "Metrics").
    pub fn build(mut self) -> Policy<T, E> {
        let policy = &mut self.policy;
        if (policy.timeout.is_some() || policy.deadline.is_some()) && policy.time_limiter.is_none() {
            let name = policy.name.or(policy.breaker.as_ref().map(CircuitBreaker::name)).unwrap_or(DEFAULT_NAME);
            policy.time_limiter = Some(Arc::new(TimeLimiterInstruments::new(name)));
        }
        self.policy
    }
}
