//! The same pieces as `tower` middleware: layers for the circuit breaker, the timeout and the
//! bulkhead, with named futures (no allocation per call), and a `tower::retry::Policy`.
//!
//! Errors follow tower's convention: services return [`BoxError`]. The inner service's errors
//! pass through unchanged; the ones these layers make are a boxed [`LayerError`] (downcast to
//! tell a timeout or a rejection from the inner service's own errors).
//!
//! The layers record the same metrics as the types they wrap (see the crate's "Metrics"): the
//! breaker and bulkhead layers through the [`CircuitBreaker`] and [`Bulkhead`] they share,
//! [`TimeoutLayer`] and [`RetryPolicy`] under a name of their own (`"default"` unless set).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use infra_resilience::{BreakerSettings, CircuitBreaker, tower_layers::{CircuitBreakerLayer, TimeoutLayer}};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! let breaker = CircuitBreaker::new("quotes", BreakerSettings::default());
//! let service = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(breaker))
//!     .layer(TimeoutLayer::new(Duration::from_secs(1)))
//!     .service(service_fn(|symbol: &'static str| async move { Ok::<_, std::io::Error>(symbol.len()) }));
//! assert_eq!(service.oneshot("BTC").await.unwrap(), 3);
//! # }
//! ```

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    Backoff, Bulkhead, CircuitBreaker, OwnedPermit, ResilienceError, RetryBudget,
    bulkhead::OwnedBulkheadSlot,
    instruments::{DEFAULT_NAME, RetryInstruments, TimeLimiterInstruments},
};

/// tower's boxed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the layers themselves fail with (timeouts and rejections), boxed into [`BoxError`].
pub type LayerError = ResilienceError<Infallible>;

/// Adds a [`CircuitBreaker`]: calls are admitted in `call` (a rejection is a ready error, never
/// a `poll_ready` error, which would poison a `Buffer`). Any inner error counts as a failure,
/// except a bulkhead rejection from a layer below, which counts as neither.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    breaker: CircuitBreaker,
}

impl CircuitBreakerLayer {
    /// A layer sharing `breaker` (its state lives outside the layer, so every service it
    /// makes, and every clone, shares it).
    pub fn new(breaker: CircuitBreaker) -> Self {
        Self { breaker }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService { inner, breaker: self.breaker.clone() }
    }
}

/// The service [`CircuitBreakerLayer`] makes.
#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breaker: CircuitBreaker,
}

impl<S, Request> Service<Request> for CircuitBreakerService<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BreakerFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.breaker.admit_owned::<Infallible>() {
            Ok(permit) => {
                BreakerFuture { state: BreakerCall::Running { future: self.inner.call(request), permit: Some(permit) } }
            }
            Err(error) => BreakerFuture { state: BreakerCall::Rejected { error: Some(error) } },
        }
    }
}

pin_project! {
    /// The future of a [`CircuitBreakerService`] call.
    pub struct BreakerFuture<F> {
        #[pin]
        state: BreakerCall<F>,
    }
}

pin_project! {
    #[project = BreakerProjection]
    enum BreakerCall<F> {
        Running { #[pin] future: F, permit: Option<OwnedPermit> },
        Rejected { error: Option<LayerError> },
    }
}

impl<F> fmt::Debug for BreakerFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            BreakerCall::Running { .. } => "BreakerFuture::Running",
            BreakerCall::Rejected { .. } => "BreakerFuture::Rejected",
        })
    }
}

impl<F, T, E> Future for BreakerFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            BreakerProjection::Rejected { error } => Poll::Ready(Err(error
                .take()
                .map_or_else(|| "polled after completion".into(), |e| Box::new(e) as BoxError))),
            BreakerProjection::Running { future, permit } => {
                let result = std::task::ready!(future.poll(cx)).map_err(Into::into);
                if let Some(permit) = permit.take() {
                    match &result {
                        Ok(_) => permit.success(),
                        Err(error)
                            if error
                                .downcast_ref::<LayerError>()
                                .is_some_and(|e| matches!(e, ResilienceError::BulkheadFull { .. })) =>
                        {
                            permit.ignore();
                        }
                        Err(_) => permit.failure(),
                    }
                }
                Poll::Ready(result)
            }
        }
    }
}

/// Bounds each call; an expired call is dropped and fails with [`ResilienceError::Timeout`].
///
/// Counts each call in `infra_timelimiter_calls_total{name,kind}` (`successful`, `failed`,
/// `timeout`) under its [name](TimeoutLayer::name); the handles are resolved when it makes a
/// service (install the recorder first), and the service's clones share them.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeout: Duration,
    name: &'static str,
}

impl TimeoutLayer {
    /// Calls last at most `timeout`; named `"default"`.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout, name: DEFAULT_NAME }
    }

    /// Names it in metrics (`name` label): the dependency it bounds.
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = crate::names::intern(name);
        self
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService { inner, timeout: self.timeout, instruments: Arc::new(TimeLimiterInstruments::new(self.name)) }
    }
}

/// The service [`TimeoutLayer`] makes.
#[derive(Clone)]
pub struct TimeoutService<S> {
    inner: S,
    timeout: Duration,
    instruments: Arc<TimeLimiterInstruments>,
}

impl<S: fmt::Debug> fmt::Debug for TimeoutService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutService").field("inner", &self.inner).field("timeout", &self.timeout).finish()
    }
}

impl<S, Request> Service<Request> for TimeoutService<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        TimeoutFuture {
            future: self.inner.call(request),
            sleep: tokio::time::sleep(self.timeout),
            timeout: self.timeout,
            instruments: Arc::clone(&self.instruments),
        }
    }
}

pin_project! {
    /// The future of a [`TimeoutService`] call.
    pub struct TimeoutFuture<F> {
        #[pin]
        future: F,
        #[pin]
        sleep: tokio::time::Sleep,
        timeout: Duration,
        instruments: Arc<TimeLimiterInstruments>,
    }
}

impl<F> fmt::Debug for TimeoutFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeoutFuture").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl<F, T, E> Future for TimeoutFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.future.poll(cx) {
            match &result {
                Ok(_) => this.instruments.succeeded(),
                Err(_) => this.instruments.failed(),
            }
            return Poll::Ready(result.map_err(Into::into));
        }
        std::task::ready!(this.sleep.poll(cx));
        this.instruments.timed_out();
        Poll::Ready(Err(Box::new(LayerError::Timeout { timeout: *this.timeout, attempts: 1 })))
    }
}

/// Bounds concurrent calls with a [`Bulkhead`]. The layer rejects at once when no slot is free
/// (its `max_wait` does not apply); to queue instead, put tower's `ConcurrencyLimitLayer` or a
/// `Buffer` in front.
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// A layer sharing `bulkhead`'s slots.
    pub fn new(bulkhead: Bulkhead) -> Self {
        Self { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService { inner, bulkhead: self.bulkhead.clone() }
    }
}

/// The service [`BulkheadLayer`] makes.
#[derive(Debug, Clone)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S, Request> Service<Request> for BulkheadService<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BulkheadFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.bulkhead.try_acquire_owned() {
            Some(slot) => BulkheadFuture { state: BulkheadCall::Running { future: self.inner.call(request), slot } },
            None => BulkheadFuture { state: BulkheadCall::Rejected { error: Some(self.bulkhead.full()) } },
        }
    }
}

pin_project! {
    /// The future of a [`BulkheadService`] call.
    pub struct BulkheadFuture<F> {
        #[pin]
        state: BulkheadCall<F>,
    }
}

pin_project! {
    #[project = BulkheadProjection]
    enum BulkheadCall<F> {
        // The slot is freed when the future is dropped.
        Running { #[pin] future: F, slot: OwnedBulkheadSlot },
        Rejected { error: Option<LayerError> },
    }
}

impl<F> fmt::Debug for BulkheadFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.state {
            BulkheadCall::Running { .. } => "BulkheadFuture::Running",
            BulkheadCall::Rejected { .. } => "BulkheadFuture::Rejected",
        })
    }
}

impl<F, T, E> Future for BulkheadFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            BulkheadProjection::Running { future, .. } => future.poll(cx).map_err(Into::into),
            BulkheadProjection::Rejected { error } => Poll::Ready(Err(error
                .take()
                .map_or_else(|| "polled after completion".into(), |e| Box::new(e) as BoxError))),
        }
    }
}

type RetryIf<E> = Arc<dyn Fn(&E) -> bool + Send + Sync>;

/// A `tower::retry::Policy` with this crate's backoff, attempts cap and [`RetryBudget`], for
/// `tower::retry::RetryLayer`. Requests must be `Clone` to be sent again.
///
/// Counts each request once in `infra_retry_calls_total{name,kind}`, as [`Retry`](crate::Retry)
/// does; the handles are resolved when it is built or renamed (install the recorder first).
pub struct RetryPolicy<E> {
    max_attempts: u32,
    backoff: Backoff,
    budget: Option<RetryBudget>,
    retry_if: Option<RetryIf<E>>,
    attempts: u32,
    previous: Duration,
    name: &'static str,
    instruments: Arc<RetryInstruments>,
}

impl<E> Clone for RetryPolicy<E> {
    fn clone(&self) -> Self {
        Self {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            budget: self.budget.clone(),
            retry_if: self.retry_if.clone(),
            attempts: self.attempts,
            previous: self.previous,
            name: self.name,
            instruments: Arc::clone(&self.instruments),
        }
    }
}

impl<E> fmt::Debug for RetryPolicy<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("name", &self.name)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<E> RetryPolicy<E> {
    /// Up to `max_attempts` attempts in all, waiting by `backoff`; every error is retried.
    /// Named `"default"`.
    pub fn new(max_attempts: u32, backoff: Backoff) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            backoff,
            budget: None,
            retry_if: None,
            attempts: 0,
            previous: backoff.initial,
            name: DEFAULT_NAME,
            instruments: Arc::new(RetryInstruments::new(DEFAULT_NAME)),
        }
    }

    /// Names it in metrics (`name` label), resolving its handles again under that name.
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = crate::names::intern(name);
        self.instruments = Arc::new(RetryInstruments::new(self.name));
        self
    }

    /// Retries only errors `predicate` selects.
    #[must_use]
    pub fn retry_if(mut self, predicate: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        self.retry_if = Some(Arc::new(predicate));
        self
    }

    /// Spends retries from `budget`.
    #[must_use]
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }
}

impl<Request: Clone, Response, E> tower::retry::Policy<Request, Response, E> for RetryPolicy<E> {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, _request: &mut Request, result: &mut Result<Response, E>) -> Option<Self::Future> {
        let Err(error) = result else {
            if let Some(budget) = &self.budget {
                budget.on_success();
            }
            self.instruments.finished(true, self.attempts + 1);
            return None;
        };
        self.attempts += 1;
        if let Some(budget) = &self.budget {
            budget.on_failure();
        }
        let retryable = self.retry_if.as_ref().is_none_or(|retry_if| retry_if(error));
        if self.attempts >= self.max_attempts || !retryable || self.budget.as_ref().is_some_and(|b| !b.can_retry()) {
            self.instruments.finished(false, self.attempts);
            return None;
        }
        let delay = self.backoff.delay(self.attempts, self.previous);
        self.previous = delay;
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, request: &Request) -> Option<Request> {
        Some(request.clone())
    }
}
