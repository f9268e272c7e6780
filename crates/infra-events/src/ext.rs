//! [`EventBusExt`]: typed JSON and default-option helpers for every [`EventBus`], and the
//! forwarding impl that makes `Arc<dyn EventBus>` a bus.

use std::{future::Future, marker::PhantomData, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    BoxError, Envelope, EventBus, EventMeta, EventStream, EventsError, Handler, IntoHandlerResult, Pattern, Payload,
    PublishFuture, Published, Result, SubscribeOptions, Subscription, Topic,
};

/// A channel name is the topic of that one channel: `bus.subscribe_json("fills", ..)`.
impl From<&str> for Topic {
    fn from(channel: &str) -> Self {
        Self::Channel(channel.to_owned())
    }
}

/// A channel name is the topic of that one channel.
impl From<String> for Topic {
    fn from(channel: String) -> Self {
        Self::Channel(channel)
    }
}

/// A pattern is the topic of every channel it matches.
impl From<Pattern> for Topic {
    fn from(pattern: Pattern) -> Self {
        Self::Pattern(pattern)
    }
}

/// Helpers for every [`EventBus`]: `dyn EventBus`, `Arc<dyn EventBus>` and each backend.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), infra_events::EventsError> {
/// use infra_events::{EventBusExt, EventMeta, memory::MemoryBus};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct Fill {
///     order: u64,
///     qty: f64,
/// }
///
/// let bus = MemoryBus::new("bot-1");
/// let fills = bus
///     .subscribe_json("fills", |fill: Fill, meta: EventMeta| async move {
///         println!("{} filled {} (event {} from {})", fill.order, fill.qty, meta.id, meta.source);
///     })
///     .await?;
/// bus.publish_json("fills", &Fill { order: 981_234, qty: 0.5 }).await?;
/// assert_eq!(fills.unsubscribe().await.handled(), 1);
/// # Ok(()) }
/// ```
pub trait EventBusExt: EventBus {
    /// Encodes `value` as JSON and publishes it on `channel`. A value that does not encode is
    /// [`EventsError::Encode`] naming the channel, and nothing is published.
    fn publish_json<'a, T: Serialize + ?Sized>(
        &'a self,
        channel: &'a str,
        value: &T,
    ) -> impl Future<Output = Result<Published>> + Send + 'a {
        // Encoded now, so the future holds no reference to `value`.
        let payload = encode(channel, value);
        async move { self.publish(channel, payload?).await }
    }

    /// Encodes each value as JSON and publishes them in one batch
    /// ([`EventBus::publish_batch`]); channel names of any string type. A value that does not
    /// encode fails the whole batch with [`EventsError::Encode`] before anything is published.
    fn publish_batch_json<'a, C: AsRef<str>, T: Serialize>(
        &'a self,
        events: &'a [(C, T)],
    ) -> impl Future<Output = Result<Vec<Result<Published>>>> + Send + 'a {
        let encoded: Result<Vec<(&'a str, serde_json::Value)>> =
            events.iter().map(|(channel, value)| Ok((channel.as_ref(), encode(channel.as_ref(), value)?))).collect();
        async move { self.publish_batch(encoded?).await }
    }

    /// Runs `handler` for every event on `channel`, with [`SubscribeOptions::default`].
    fn subscribe_channel<H: Handler>(
        &self,
        channel: impl Into<String>,
        handler: H,
    ) -> impl Future<Output = Result<Subscription>> + Send + '_ {
        self.subscribe(Topic::Channel(channel.into()), Arc::new(handler), SubscribeOptions::default())
    }

    /// Runs `handler` for every event on a channel matching `glob` (Redis glob syntax, checked
    /// by [`Pattern::parse`]: a likely mistake is [`EventsError::InvalidPattern`]), with
    /// [`SubscribeOptions::default`]. The durable bus offers no patterns
    /// ([`EventsError::PatternNotDurable`]).
    fn subscribe_pattern<H: Handler>(
        &self,
        glob: &str,
        handler: H,
    ) -> impl Future<Output = Result<Subscription>> + Send + '_ {
        let pattern = Pattern::parse(glob);
        async move { self.subscribe(Topic::Pattern(pattern?), Arc::new(handler), SubscribeOptions::default()).await }
    }

    /// Runs `handler` for every event on `topic` (a channel name, or a [`Pattern`]) with its
    /// payload decoded as `T` and its [`EventMeta`], with [`SubscribeOptions::default`].
    ///
    /// A payload that does not decode as `T` never reaches `handler`: it counts as a handler
    /// error ([`SubscriptionStats::errors`](crate::SubscriptionStats::errors)), logged with an
    /// [`EventsError::Decode`] naming the event, the type and what serde said. On the durable
    /// bus such an event is therefore not acknowledged: it is delivered again, then moved to the
    /// dead-letter stream after `max_deliveries`. The handler returns `()` or
    /// `Result<(), E>` like any [`Handler`].
    fn subscribe_json<T, H>(
        &self,
        topic: impl Into<Topic>,
        handler: H,
    ) -> impl Future<Output = Result<Subscription>> + Send + '_
    where
        T: DeserializeOwned + Send + 'static,
        H: JsonHandler<T>,
    {
        let decoding = Decoding { handler, payload: PhantomData };
        self.subscribe(topic.into(), Arc::new(decoding), SubscribeOptions::default())
    }
}

impl<B: EventBus + ?Sized> EventBusExt for B {}

/// The JSON of `value`, or the error naming `channel`.
fn encode<T: Serialize + ?Sized>(channel: &str, value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(|source| EventsError::Encode { channel: channel.to_owned(), source })
}

/// A handler of decoded events for [`EventBusExt::subscribe_json`]: implemented by every
/// closure (or `async fn`) `Fn(T, EventMeta) -> impl Future` whose future is `Send + 'static`
/// and returns `()` or `Result<(), E>` with `E: Into<BoxError>`. Not meant to be implemented
/// by hand.
pub trait JsonHandler<T>: Fn(T, EventMeta) -> <Self as JsonHandler<T>>::Future + Send + Sync + 'static {
    /// The future the closure returns.
    type Future: Future<Output = Self::Outcome> + Send + 'static;
    /// What that future returns.
    type Outcome: IntoHandlerResult;
}

impl<T, F, Fut> JsonHandler<T> for F
where
    F: Fn(T, EventMeta) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoHandlerResult,
{
    type Future = Fut;
    type Outcome = Fut::Output;
}

/// Decodes each payload as `T` before calling the handler.
struct Decoding<T, H> {
    handler: H,
    payload: PhantomData<fn() -> T>,
}

impl<T, H> Handler for Decoding<T, H>
where
    T: DeserializeOwned + Send + 'static,
    H: JsonHandler<T>,
{
    fn handle(&self, event: Envelope) -> BoxFuture<'static, std::result::Result<(), BoxError>> {
        let (payload, meta) = event.into_parts();
        let decoded = match payload {
            Payload::Json(value) => serde_json::from_value::<T>(value),
            Payload::Raw(bytes) => serde_json::from_slice::<T>(&bytes),
        };
        match decoded {
            Ok(value) => {
                let future = (self.handler)(value, meta);
                Box::pin(async move { future.await.into_handler_result() })
            }
            Err(error) => {
                let error = EventsError::Decode {
                    channel: meta.channel,
                    event_id: meta.id,
                    type_name: std::any::type_name::<T>(),
                    reason: error.to_string(),
                };
                Box::pin(std::future::ready(Err(error.into())))
            }
        }
    }
}

/// A shared bus is a bus: `Arc<dyn EventBus>` (or `Arc<MemoryBus>`) goes wherever an
/// `impl EventBus` is expected. Every method forwards, the provided ones included.
impl<B: EventBus + ?Sized> EventBus for Arc<B> {
    fn backend(&self) -> &'static str {
        (**self).backend()
    }

    fn publish<'a>(&'a self, channel: &'a str, payload: serde_json::Value) -> PublishFuture<'a> {
        (**self).publish(channel, payload)
    }

    fn publish_batch<'a>(
        &'a self,
        events: Vec<(&'a str, serde_json::Value)>,
    ) -> BoxFuture<'a, Result<Vec<Result<Published>>>> {
        (**self).publish_batch(events)
    }

    fn subscribe<'a>(
        &'a self,
        topic: Topic,
        handler: Arc<dyn Handler>,
        options: SubscribeOptions,
    ) -> BoxFuture<'a, Result<Subscription>> {
        (**self).subscribe(topic, handler, options)
    }

    fn stream<'a>(&'a self, topic: Topic, options: SubscribeOptions) -> BoxFuture<'a, Result<EventStream>> {
        (**self).stream(topic, options)
    }

    fn close(&self) -> BoxFuture<'_, Result<()>> {
        (**self).close()
    }

    fn connect(&self) -> BoxFuture<'_, Result<()>> {
        (**self).connect()
    }

    fn ping(&self) -> BoxFuture<'_, Result<Duration>> {
        (**self).ping()
    }
}
