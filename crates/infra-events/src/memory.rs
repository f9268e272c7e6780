//! The in-process bus: every subscription has its own bounded queue and task.

use std::{
    fmt,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use futures::future::BoxFuture;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::{
    Envelope, EventStream, Handler, PublishFuture, Published, Result, SubscribeOptions, Subscription,
    SubscriptionStats, Topic,
    bus::{Attached, EventBus, Overflow},
    metrics::{MEMORY, PublishMetrics},
};

/// An in-process [`EventBus`]: the embedded default for development and tests.
///
/// Delivery follows publish order per publisher and subscription. A slow handler only fills
/// its own queue; what happens when that queue is full is the subscription's [`Overflow`]
/// policy, and every dropped event is counted. Each bus is its own namespace.
///
/// Differences from the Redis buses, by nature: it has no connection, so
/// [`EventBus::connect`] and [`EventBus::ping`] answer at once (`ping` with zero), and
/// [`EventBus::close`] has nothing to release: unlike a Redis bus, it keeps working afterwards
/// (publishing and subscribing still succeed, and its subscriptions run until they are
/// unsubscribed or dropped), like the memory state store.
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

struct Inner {
    source: String,
    /// The `backend` label of its metrics: `memory`, or the Redis bus it routes for.
    backend: &'static str,
    published: PublishMetrics,
    subscribers: RwLock<Vec<Arc<Subscriber>>>,
    next_id: AtomicU64,
    lost_upstream: AtomicU64,
}

/// Which subscriptions an event may reach. Redis delivers a message once per channel
/// subscription (`message`) and once per pattern subscription (`pmessage`); each copy must only
/// reach its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "only the redis backend routes by kind"))]
pub(crate) enum Route {
    /// Every matching subscription (a local publish).
    All,
    /// Channel subscriptions only.
    Channels,
    /// Pattern subscriptions only.
    Patterns,
}

impl Route {
    fn admits(self, topic: &Topic) -> bool {
        matches!(
            (self, topic),
            (Self::All, _) | (Self::Channels, Topic::Channel(_)) | (Self::Patterns, Topic::Pattern(_))
        )
    }
}

struct Subscriber {
    id: u64,
    topic: Topic,
    queue: mpsc::Sender<Envelope>,
    overflow: Overflow,
    stats: Arc<SubscriptionStats>,
}

impl fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subscribers = self.inner.subscribers.read().map(|s| s.len()).unwrap_or_default();
        f.debug_struct("MemoryBus").field("source", &self.inner.source).field("subscribers", &subscribers).finish()
    }
}

impl MemoryBus {
    /// A bus whose events name `source` as their publisher (a bot ID, a service name).
    ///
    /// Its metrics (`backend="memory"`, see the crate's "Metrics" section) go to the recorder
    /// installed when it is built (publishing) and when each subscription is made: install it
    /// first.
    pub fn new(source: impl Into<String>) -> Self {
        Self::labelled(source.into(), MEMORY)
    }

    /// A bus whose metrics carry `backend` as their label (the Redis bus routes through one).
    pub(crate) fn labelled(source: String, backend: &'static str) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                backend,
                published: PublishMetrics::new(backend),
                subscribers: RwLock::new(Vec::new()),
                next_id: AtomicU64::new(0),
                lost_upstream: AtomicU64::new(0),
            }),
        }
    }

    /// Marks a possible gap on every subscription (used by backends that can lose messages
    /// upstream).
    #[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "only the redis backend has upstream gaps"))]
    pub(crate) fn note_gap(&self) {
        for subscriber in self.inner.subscribers.read().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            subscriber.stats.add_gap();
        }
    }

    /// Counts `lost` messages lost upstream, before they could be routed, and marks a gap.
    #[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "only the redis backend loses upstream"))]
    pub(crate) fn note_lost(&self, lost: u64) {
        self.inner.lost_upstream.fetch_add(lost, Ordering::Relaxed);
        self.note_gap();
    }

    /// Messages lost before they could be routed to any subscription (Redis: fred's buffer
    /// overflowed). Always 0 for a purely local bus.
    pub fn lost_upstream(&self) -> u64 {
        self.inner.lost_upstream.load(Ordering::Relaxed)
    }

    /// Detaches every subscription: its queue closes, so it handles what it holds and ends
    /// (the Redis bus closing).
    #[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "only the redis backend closes its local bus"))]
    pub(crate) fn detach_all(&self) {
        self.inner.subscribers.write().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// Subscriptions currently attached.
    pub fn subscriber_count(&self) -> usize {
        self.inner.subscribers.read().map(|s| s.len()).unwrap_or_default()
    }

    pub(crate) fn attach(&self, topic: Topic, options: SubscribeOptions) -> Result<Attached> {
        options.check("memory", false)?;
        let (sender, receiver) = mpsc::channel(options.capacity);
        let stats = Arc::new(SubscriptionStats::new(&topic, self.inner.backend));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let subscriber =
            Arc::new(Subscriber { id, topic, queue: sender, overflow: options.overflow, stats: stats.clone() });
        self.inner.subscribers.write().unwrap_or_else(std::sync::PoisonError::into_inner).push(subscriber);
        let inner = Arc::downgrade(&self.inner);
        let detach = Box::new(move || {
            if let Some(inner) = inner.upgrade() {
                inner.subscribers.write().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|s| s.id != id);
            }
        });
        Ok(Attached::new(receiver, stats, detach))
    }

    /// Hands `event` to the matching subscriptions of the given kind.
    pub(crate) async fn route(&self, event: Envelope, route: Route) -> Published {
        let (published, waiting) = self.offer_all(event, route);
        finish(published, waiting).await
    }

    /// Queues `event` for every matching subscription that has room; returns the blocking
    /// subscriptions whose queue was full, with their copy, for [`finish`] to wait on.
    fn offer_all(&self, event: Envelope, route: Route) -> (Published, Vec<(Arc<Subscriber>, Envelope)>) {
        let id = event.id;
        let mut receivers = 0;
        // Most deliveries complete under the read lock; only full queues of blocking
        // subscribers are awaited, after it is released.
        let mut waiting = Vec::new();
        let subscribers = self.inner.subscribers.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut matching =
            subscribers.iter().filter(|s| route.admits(&s.topic) && s.topic.matches(&event.channel)).peekable();
        while let Some(subscriber) = matching.next() {
            // The last matching subscriber gets the event itself; the others get copies.
            if matching.peek().is_some() {
                if offer(subscriber, event.clone(), &mut waiting) {
                    receivers += 1;
                }
            } else {
                if offer(subscriber, event, &mut waiting) {
                    receivers += 1;
                }
                break;
            }
        }
        let mut published = Published::new(id);
        published.delivered_to = Some(receivers);
        (published, waiting)
    }
}

/// A memory publish, made when first polled so it carries the correlation ID of the awaiting
/// context.
pub(crate) struct Publish<'a> {
    bus: &'a MemoryBus,
    channel: &'a str,
    payload: Option<serde_json::Value>,
}

impl Publish<'_> {
    /// Queues the event everywhere there is room; the rest is a future waiting for room (rare,
    /// so boxed).
    pub(crate) fn poll_publish(&mut self) -> std::result::Result<Published, BoxFuture<'static, Result<Published>>> {
        let payload = self.payload.take().expect("PublishFuture polled after completion");
        let event = Envelope::new(self.channel, self.bus.inner.source.as_str(), payload);
        // Counted once offered: a memory publish is never refused.
        self.bus.inner.published.ok();
        match self.bus.offer_all(event, Route::All) {
            (published, waiting) if waiting.is_empty() => Ok(published),
            (published, waiting) => Err(Box::pin(async move { Ok(finish(published, waiting).await) })),
        }
    }
}

/// Waits for room in the queues of blocking subscriptions that were full.
async fn finish(mut published: Published, waiting: Vec<(Arc<Subscriber>, Envelope)>) -> Published {
    let channel = waiting.first().map(|(_, event)| event.channel.clone()).unwrap_or_default();
    let (subscribers, events): (Vec<_>, Vec<_>) = waiting.into_iter().unzip();
    let mut unserved = Unserved { subscribers, served: 0, channel };
    for event in events {
        let subscriber = Arc::clone(&unserved.subscribers[unserved.served]);
        match subscriber.queue.send(event).await {
            Ok(()) => {
                subscriber.stats.add_received();
                *published.delivered_to.get_or_insert(0) += 1;
            }
            Err(mpsc::error::SendError(event)) => stopped(&subscriber, &event),
        }
        unserved.served += 1;
    }
    published
}

/// The blocking subscribers a publish still waits on. A publisher that stops waiting (its
/// future dropped, e.g. by a timeout) leaves them without the event the others received: each
/// counts it as dropped, never a silent loss.
struct Unserved {
    subscribers: Vec<Arc<Subscriber>>,
    served: usize,
    channel: String,
}

impl Drop for Unserved {
    fn drop(&mut self) {
        for subscriber in self.subscribers.get(self.served..).unwrap_or_default() {
            let dropped = subscriber.stats.add_dropped();
            if dropped.is_power_of_two() {
                tracing::warn!(
                    target: "infra_events",
                    channel = self.channel,
                    dropped,
                    "publisher stopped waiting for room: events dropped for this subscription"
                );
            }
        }
    }
}

/// Queues `event` for `subscriber` without waiting; says whether it was queued. A full queue
/// either hands the event back in `waiting` (blocking subscribers, awaited after the lock is
/// released) or drops it and counts the drop; so does a closed one.
fn offer(subscriber: &Arc<Subscriber>, event: Envelope, waiting: &mut Vec<(Arc<Subscriber>, Envelope)>) -> bool {
    match subscriber.queue.try_send(event) {
        Ok(()) => {
            subscriber.stats.add_received();
            true
        }
        Err(TrySendError::Full(event)) if subscriber.overflow == Overflow::Block => {
            waiting.push((Arc::clone(subscriber), event));
            false
        }
        Err(TrySendError::Full(event)) => {
            let dropped = subscriber.stats.add_dropped();
            // One line per power of two keeps a flood of drops from flooding the log.
            if dropped.is_power_of_two() {
                tracing::warn!(
                    target: "infra_events",
                    channel = event.channel,
                    dropped,
                    "subscriber queue full: events dropped for this subscription"
                );
            }
            false
        }
        Err(TrySendError::Closed(event)) => {
            stopped(subscriber, &event);
            false
        }
    }
}

/// Counts `event` as dropped for a subscriber whose queue is closed although it is still
/// attached: its task stopped abnormally (counted and logged there), or its stream was dropped
/// while this publisher waited for room.
#[cold]
fn stopped(subscriber: &Subscriber, event: &Envelope) {
    let dropped = subscriber.stats.add_dropped();
    if dropped.is_power_of_two() {
        tracing::warn!(
            target: "infra_events",
            channel = event.channel,
            dropped,
            "subscription stopped: events dropped for this subscription"
        );
    }
}

impl EventBus for MemoryBus {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn publish<'a>(&'a self, channel: &'a str, payload: serde_json::Value) -> PublishFuture<'a> {
        PublishFuture::memory(Publish { bus: self, channel, payload: Some(payload) })
    }

    fn publish_batch<'a>(
        &'a self,
        events: Vec<(&'a str, serde_json::Value)>,
    ) -> BoxFuture<'a, Result<Vec<Result<Published>>>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(events.len());
            for (channel, payload) in events {
                let event = Envelope::new(channel, self.inner.source.as_str(), payload);
                self.inner.published.ok();
                results.push(Ok(self.route(event, Route::All).await));
            }
            Ok(results)
        })
    }

    fn subscribe<'a>(
        &'a self,
        topic: Topic,
        handler: Arc<dyn Handler>,
        options: SubscribeOptions,
    ) -> BoxFuture<'a, Result<Subscription>> {
        Box::pin(async move {
            let attached = self.attach(topic.clone(), options)?;
            Ok(attached.into_subscription(&topic, handler))
        })
    }

    fn stream<'a>(&'a self, topic: Topic, options: SubscribeOptions) -> BoxFuture<'a, Result<EventStream>> {
        Box::pin(async move { Ok(self.attach(topic, options)?.into_stream()) })
    }
}
