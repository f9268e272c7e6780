//! [`ResilientBus`]: any [`EventBus`] behind the configured retry, circuit breaker and
//! timeouts, implementing the same trait.

use std::{fmt, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use infra_config::ResilienceConfig;
use infra_events::{
    EventBus, EventStream, EventsError, Handler, PublishFuture, Published, SubscribeOptions, Subscription, Topic,
};
use infra_resilience::{CircuitBreaker, Idempotency::*};

use crate::{
    FacadeError,
    layers::{CallStats, LayerError, Layers},
};

impl LayerError for EventsError {
    fn timed_out(operation: &'static str, target: &str, timeout: Duration) -> Self {
        EventsError::Timeout { operation, target: target.to_owned(), timeout }
    }

    fn rejected(component: &'static str, _backend: &'static str, url: &str, reason: String) -> Self {
        EventsError::Connection { url: url.to_owned(), source: Box::new(FacadeError::Rejected { component, reason }) }
    }
}

/// An [`EventBus`] whose calls go through the configured resilience policy: the retry of
/// `resilience.retry`, the `"events"` circuit breaker of the infrastructure's registry, the
/// per-attempt timeout and the overall deadline of `resilience.timeout`.
///
/// A publish is not idempotent (subscribers would see the event twice): `publish` and
/// `publish_batch` are retried only after a transient error that certainly was not applied
/// ([`EventsError::may_have_been_applied`]: a connection that timed out, never a publish that
/// timed out). `subscribe`, `stream`, `connect` and `ping` are retried after any transient
/// error (a failed subscribe leaves nothing behind). `close` goes straight to the inner bus;
/// after it, calls are made once, without the policy (the closed bus refuses them). A call the
/// open breaker refuses fails at once with [`EventsError::Connection`] whose source is
/// [`FacadeError::Rejected`].
///
/// Events carry the publisher's correlation ID: every attempt runs in the caller's task, so
/// the envelope gets the ID of the execution that published it.
pub struct ResilientBus {
    inner: Arc<dyn EventBus>,
    layers: Layers<EventsError>,
}

impl fmt::Debug for ResilientBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResilientBus").field("inner", &self.inner).field("layers", &self.layers).finish()
    }
}

impl ResilientBus {
    /// Wraps `inner` in the policy `config` describes, guarded by `breaker`. `url` names the
    /// backend in errors (give it redacted: `RedisUrl`'s `Display` is).
    pub fn new(inner: Arc<dyn EventBus>, config: &ResilienceConfig, breaker: CircuitBreaker, url: String) -> Self {
        Self { layers: Layers::new(config, breaker, "event bus", inner.backend(), url), inner }
    }

    /// The bus without the policy (for calls that must bypass the breaker, such as health
    /// checks).
    pub fn inner(&self) -> &Arc<dyn EventBus> {
        &self.inner
    }

    /// The circuit breaker guarding the bus.
    pub fn breaker(&self) -> &CircuitBreaker {
        self.layers.breaker()
    }

    /// Calls, retries, refusals and failures so far.
    pub fn stats(&self) -> CallStats {
        self.layers.stats()
    }
}

impl EventBus for ResilientBus {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn publish<'a>(&'a self, channel: &'a str, payload: serde_json::Value) -> PublishFuture<'a> {
        PublishFuture::new(
            self.layers.call("publish", channel, NonIdempotent, move || self.inner.publish(channel, payload.clone())),
        )
    }

    fn publish_batch<'a>(
        &'a self,
        events: Vec<(&'a str, serde_json::Value)>,
    ) -> BoxFuture<'a, infra_events::Result<Vec<infra_events::Result<Published>>>> {
        let first = events.first().map(|(channel, _)| *channel).unwrap_or_default();
        Box::pin(
            self.layers.call("publish_batch", first, NonIdempotent, move || self.inner.publish_batch(events.clone())),
        )
    }

    fn subscribe<'a>(
        &'a self,
        topic: Topic,
        handler: Arc<dyn Handler>,
        options: SubscribeOptions,
    ) -> BoxFuture<'a, infra_events::Result<Subscription>> {
        Box::pin(async move {
            let target = topic.to_string();
            self.layers
                .call("subscribe", &target, Idempotent, || {
                    self.inner.subscribe(topic.clone(), Arc::clone(&handler), options.clone())
                })
                .await
        })
    }

    fn stream<'a>(
        &'a self,
        topic: Topic,
        options: SubscribeOptions,
    ) -> BoxFuture<'a, infra_events::Result<EventStream>> {
        Box::pin(async move {
            let target = topic.to_string();
            self.layers.call("stream", &target, Idempotent, || self.inner.stream(topic.clone(), options.clone())).await
        })
    }

    fn close(&self) -> BoxFuture<'_, infra_events::Result<()>> {
        self.layers.close();
        self.inner.close()
    }

    fn connect(&self) -> BoxFuture<'_, infra_events::Result<()>> {
        Box::pin(self.layers.call("connect", "", Idempotent, move || self.inner.connect()))
    }

    fn ping(&self) -> BoxFuture<'_, infra_events::Result<Duration>> {
        Box::pin(self.layers.call("ping", "", Idempotent, move || self.inner.ping()))
    }
}
