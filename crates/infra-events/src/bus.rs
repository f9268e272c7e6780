//! The [`EventBus`] trait, handlers, subscriptions and their statistics.

use std::{
    any::Any,
    fmt,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::{FutureExt, Stream, future::BoxFuture};
use infra_log::CorrelationId;
use tokio::{sync::mpsc, task::JoinHandle};

pub use crate::stats::SubscriptionStats;
use crate::{BoxError, Envelope, EventId, EventsError, Handler, Pattern, PublishFuture, Published, Result};

/// What a subscription listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// One channel, by exact name.
    Channel(String),
    /// Every channel matching a Redis glob pattern.
    Pattern(Pattern),
}

impl fmt::Display for Topic {
    /// The channel name or the pattern, as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Channel(name) => f.write_str(name),
            Self::Pattern(pattern) => fmt::Display::fmt(pattern, f),
        }
    }
}

impl Topic {
    /// Whether an event on `channel` belongs to this topic.
    pub fn matches(&self, channel: &str) -> bool {
        match self {
            Self::Channel(name) => name == channel,
            Self::Pattern(pattern) => pattern.matches(channel),
        }
    }
}

/// What happens when a subscriber's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// The publisher waits for room: nothing is lost, a slow subscriber slows publishers.
    Block,
    /// The new event is dropped for this subscriber, counted in
    /// [`SubscriptionStats::dropped`] and reported by a WARN line; publishers never wait.
    #[default]
    DropNewest,
}

/// Options of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Events queued for this subscriber before [`Overflow`] applies. At least 1.
    pub capacity: usize,
    /// What a full queue does.
    pub overflow: Overflow,
    /// Durable mode only: the consumer group to join. Subscriptions of one group share its
    /// events (each event goes to one of them) and the group resumes where it left off after a
    /// restart. `None`: a private group for this subscription alone, removed when it ends, so it
    /// receives every event like a pub/sub subscriber. Other buses reject it.
    pub group: Option<String>,
    /// Durable mode only: where a new group starts reading (ignored when the group exists).
    /// Other buses accept only [`Start::Latest`].
    pub start: Start,
}

/// Queue size by default: a burst of 50,000 events fits while the subscriber catches up.
pub const DEFAULT_CAPACITY: usize = 65_536;

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self { capacity: DEFAULT_CAPACITY, overflow: Overflow::DropNewest, group: None, start: Start::Latest }
    }
}

impl SubscribeOptions {
    /// Joins the durable consumer group `group` (see [`SubscribeOptions::group`]).
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Starts a new durable group at `start` (see [`SubscribeOptions::start`]).
    #[must_use]
    pub fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// Checks the options shared by every backend, and rejects the durable-only ones on a bus
    /// named `backend` that has no durable mode.
    #[cfg_attr(not(feature = "memory"), allow(dead_code, reason = "no backend compiled in"))]
    pub(crate) fn check(&self, backend: &'static str, durable: bool) -> Result<()> {
        if self.capacity == 0 {
            return Err(EventsError::InvalidOption("capacity must be at least 1"));
        }
        if !durable {
            if self.group.is_some() {
                return Err(EventsError::Unsupported { option: "group", backend });
            }
            if self.start != Start::Latest {
                return Err(EventsError::Unsupported { option: "start", backend });
            }
        }
        Ok(())
    }
}

/// Where a durable subscription starts reading.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Start {
    /// Events published from now on.
    #[default]
    Latest,
    /// Every event still in the stream.
    Beginning,
    /// Events after `position` (a replay from a known point, e.g. the last one handled).
    After(Position),
}

/// A position in a durable stream: the Redis stream entry ID (`1764320000000-0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position(String);

impl Position {
    /// Parses `<milliseconds>-<sequence>` or `<milliseconds>`, as Redis writes stream IDs.
    pub fn parse(text: &str) -> Result<Self> {
        let digits = |part: &str| !part.is_empty() && part.len() <= 20 && part.bytes().all(|b| b.is_ascii_digit());
        let valid = match text.split_once('-') {
            Some((ms, seq)) => digits(ms) && digits(seq),
            None => digits(text),
        };
        if valid { Ok(Self(text.to_owned())) } else { Err(EventsError::InvalidPosition(text.to_owned())) }
    }

    /// The stream ID text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "only the durable bus reads positions"))]
    pub(crate) fn from_redis(id: String) -> Self {
        Self(id)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Removes a subscription from its bus.
pub(crate) type Detach = Box<dyn FnOnce() + Send + Sync>;

/// A new subscriber's end of its queue, as a backend attaches it; every backend turns it into a
/// [`Subscription`] or an [`EventStream`] the same way. Dropped unused (a backend failed to
/// finish subscribing), it detaches: otherwise its closed queue would count every later event on
/// its topic as dropped.
pub(crate) struct Attached {
    receiver: Option<mpsc::Receiver<Envelope>>,
    pub(crate) stats: Arc<SubscriptionStats>,
    pub(crate) detach: Detach,
}

#[cfg_attr(not(feature = "memory"), allow(dead_code, reason = "backend plumbing; memory is the only backend so far"))]
impl Attached {
    /// A subscriber reading `receiver`, removed from its bus by `detach`.
    pub(crate) fn new(receiver: mpsc::Receiver<Envelope>, stats: Arc<SubscriptionStats>, detach: Detach) -> Self {
        Self { receiver: Some(receiver), stats, detach }
    }

    /// Takes the queue and the detach switch, leaving nothing for `drop` to do.
    fn take(&mut self) -> Option<(mpsc::Receiver<Envelope>, Detach)> {
        let receiver = self.receiver.take()?;
        Some((receiver, std::mem::replace(&mut self.detach, Box::new(|| {}))))
    }

    /// Runs `handler` for every queued event of `topic`.
    pub(crate) fn into_subscription(mut self, topic: &Topic, handler: Arc<dyn Handler>) -> Subscription {
        let (receiver, detach) = self.take().expect("an attached queue is taken once");
        let task = run_handler(receiver, handler, self.stats.clone(), topic.to_string());
        Subscription { stats: self.stats.clone(), detach: Some(detach), task: Some(task) }
    }

    /// Hands the queue to the caller as a stream.
    pub(crate) fn into_stream(mut self) -> EventStream {
        let (queue, detach) = self.take().expect("an attached queue is taken once");
        EventStream { queue, stats: self.stats.clone(), detach: Some(detach) }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some((_, detach)) = self.take() {
            detach();
        }
    }
}

/// A running subscription. Unsubscribe with [`Subscription::unsubscribe`] (waits until the
/// queued events are handled) or by dropping it (they are still handled, in the background).
#[must_use = "dropping a subscription unsubscribes"]
pub struct Subscription {
    stats: Arc<SubscriptionStats>,
    detach: Option<Detach>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl Subscription {
    /// A subscription whose events `task` handles until `detach` tells it to stop.
    #[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "only the durable bus runs its own task"))]
    pub(crate) fn from_task(stats: Arc<SubscriptionStats>, detach: Detach, task: JoinHandle<()>) -> Self {
        Self { stats, detach: Some(detach), task: Some(task) }
    }

    /// Live counters.
    pub fn stats(&self) -> &SubscriptionStats {
        &self.stats
    }

    /// Stops receiving new events, waits until the queued ones are handled, and returns the
    /// final counters.
    pub async fn unsubscribe(mut self) -> Arc<SubscriptionStats> {
        if let Some(detach) = self.detach.take() {
            detach();
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        Arc::clone(&self.stats)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(detach) = self.detach.take() {
            detach();
        }
    }
}

/// Runs `handler` for each queued event until the queue is closed and drained.
fn run_handler(
    queue: mpsc::Receiver<Envelope>,
    handler: Arc<dyn Handler>,
    stats: Arc<SubscriptionStats>,
    topic: String,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut worker = Worker { queue, stats, topic, in_flight: false, finished: false };
        while let Some(event) = worker.queue.recv().await {
            worker.in_flight = true;
            // `handle_event` spelled out: its future would hold the event, and moving it copies it.
            let (handler, stats, topic, id) = (handler.as_ref(), &worker.stats, worker.topic.as_str(), event.id);
            match event.correlation_id.clone() {
                None => finish(call(handler, event), stats, topic, id).await,
                Some(correlation) => in_scope(correlation, handler, event, stats, topic).await,
            };
            worker.in_flight = false;
        }
        worker.finished = true;
    })
}

/// The state of a subscription's task, which reports the task stopping abnormally when dropped
/// before its queue ended: a panic escaping the loop unwinds through it, and an aborted task (a
/// runtime shutting down) drops it.
struct Worker {
    queue: mpsc::Receiver<Envelope>,
    stats: Arc<SubscriptionStats>,
    topic: String,
    /// An event is being handled.
    in_flight: bool,
    /// The queue was closed and drained: the normal end.
    finished: bool,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Closed before this: the subscription had ended, its task just did not reach its end.
        let detached = self.queue.is_closed();
        // Later events meet a closed queue, which the bus counts as dropped.
        self.queue.close();
        let mut lost = u64::from(self.in_flight);
        while self.queue.try_recv().is_ok() {
            lost += 1;
        }
        if detached && lost == 0 {
            return;
        }
        self.stats.add_dropped_many(lost);
        let task_failures = self.stats.add_task_failure();
        let cause = if std::thread::panicking() { "a panic outside the handler" } else { "the task was aborted" };
        tracing::error!(
            target: "infra_events",
            topic = %self.topic,
            cause,
            lost,
            task_failures,
            "subscription task stopped: its queued events and every later one are dropped"
        );
    }
}

/// Runs `handler` on `event` with the publisher's correlation ID, isolating an error or a
/// panic (logged and counted); says whether it succeeded. The durable consumer's way in (the
/// in-process loop above inlines it).
#[cfg(feature = "redis")]
pub(crate) async fn handle_event(
    handler: &dyn Handler,
    event: Envelope,
    stats: &SubscriptionStats,
    topic: &str,
) -> bool {
    let id = event.id;
    match event.correlation_id.clone() {
        // No scope to enter: called at once, the event moves into no future (each copies it).
        None => finish(call(handler, event), stats, topic, id).await,
        Some(correlation) => in_scope(correlation, handler, event, stats, topic).await,
    }
}

/// [`handle_event`] under `correlation`, which the handler's synchronous part runs under too.
async fn in_scope(
    correlation: CorrelationId,
    handler: &dyn Handler,
    event: Envelope,
    stats: &SubscriptionStats,
    topic: &str,
) -> bool {
    let id = event.id;
    infra_log::with_correlation_id(correlation, async move { finish(call(handler, event), stats, topic, id).await })
        .await
}

/// What calling a handler returned: its future, or the panic of its synchronous part.
type Called = std::thread::Result<BoxFuture<'static, std::result::Result<(), BoxError>>>;

/// Calls `handler`, isolating a panic before any future exists (a closure handler's synchronous
/// part).
fn call(handler: &dyn Handler, event: Envelope) -> Called {
    std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(event)))
}

/// Runs what `call` returned and reports the outcome, isolating the rest of the handler's code:
/// its future, dropping that future, and formatting and dropping its error.
async fn finish(called: Called, stats: &SubscriptionStats, topic: &str, id: EventId) -> bool {
    let outcome = match called {
        Ok(mut future) => {
            let outcome = AssertUnwindSafe(future.as_mut()).catch_unwind().await;
            // A future that panicked still holds what it was using: dropping that runs its code.
            match (outcome, std::panic::catch_unwind(AssertUnwindSafe(move || drop(future)))) {
                (outcome, Ok(())) => outcome,
                (Ok(_), Err(payload)) => Err(payload),
                (Err(payload), Err(nested)) => {
                    discard(nested);
                    Err(payload)
                }
            }
        }
        Err(payload) => Err(payload),
    };
    let reported = std::panic::catch_unwind(AssertUnwindSafe(|| match outcome {
        Ok(Ok(())) => {
            stats.add_handled();
            true
        }
        Ok(Err(error)) => {
            let message = error.to_string();
            let errors = stats.add_error_message(message.clone());
            tracing::warn!(target: "infra_events", topic, event_id = %id, errors, error = %message, "event handler failed");
            false
        }
        Err(payload) => {
            let panics = stats.add_panic();
            tracing::error!(target: "infra_events", topic, event_id = %id, panics, "event handler panicked");
            discard(payload);
            false
        }
    }));
    // The error's `Display` or `Drop` panicked.
    reported.unwrap_or_else(|payload| {
        let panics = stats.add_panic();
        tracing::error!(target: "infra_events", topic, event_id = %id, panics, "event handler panicked");
        discard(payload);
        false
    })
}

/// Drops a panic payload; one whose own drop panics (handler code too) is leaked instead.
fn discard(payload: Box<dyn Any + Send>) {
    if let Err(nested) = std::panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(nested);
    }
}

/// A subscription as a stream of events, for callers who prefer pulling. Dropping it
/// unsubscribes.
pub struct EventStream {
    queue: mpsc::Receiver<Envelope>,
    stats: Arc<SubscriptionStats>,
    detach: Option<Detach>,
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl EventStream {
    /// A stream of the events `queue` receives; `detach` runs when it is dropped.
    #[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "only the durable bus feeds its own queue"))]
    pub(crate) fn from_queue(queue: mpsc::Receiver<Envelope>, stats: Arc<SubscriptionStats>, detach: Detach) -> Self {
        Self { queue, stats, detach: Some(detach) }
    }

    /// Live counters.
    pub fn stats(&self) -> &SubscriptionStats {
        &self.stats
    }
}

impl Stream for EventStream {
    type Item = Envelope;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let next = this.queue.poll_recv(cx);
        if let Poll::Ready(Some(_)) = &next {
            this.stats.add_handled();
        }
        next
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if let Some(detach) = self.detach.take() {
            detach();
        }
    }
}

/// Publish/subscribe between a bot's tasks (memory) or processes (Redis).
/// [`EventBusExt`](crate::EventBusExt) (typed JSON, default options) comes with every bus.
///
/// Object-safe: hold it as `Arc<dyn EventBus>`. Payloads are JSON; every event travels in an
/// [`Envelope`] carrying the publisher's correlation ID, which is restored around handlers.
pub trait EventBus: fmt::Debug + Send + Sync + 'static {
    // A new method must also be forwarded by `impl EventBus for Arc<B>` (ext.rs).

    /// `memory` or `redis`.
    fn backend(&self) -> &'static str;

    /// Publishes `payload` on `channel`.
    fn publish<'a>(&'a self, channel: &'a str, payload: serde_json::Value) -> PublishFuture<'a>;

    /// Publishes several events (one round trip on Redis); one result per event, in order.
    /// Channel names are borrowed: `vec![("fills", json!(1)), ("fills", json!(2))]`.
    fn publish_batch<'a>(
        &'a self,
        events: Vec<(&'a str, serde_json::Value)>,
    ) -> BoxFuture<'a, Result<Vec<Result<Published>>>>;

    /// Runs `handler` for every event on `topic`, each subscription in its own task.
    fn subscribe<'a>(
        &'a self,
        topic: Topic,
        handler: Arc<dyn Handler>,
        options: SubscribeOptions,
    ) -> BoxFuture<'a, Result<Subscription>>;

    /// The events of `topic` as a [`Stream`].
    fn stream<'a>(&'a self, topic: Topic, options: SubscribeOptions) -> BoxFuture<'a, Result<EventStream>>;

    /// Shuts the bus down: stops its tasks, finishes the work already queued (deliveries,
    /// publishes), closes its connections; afterwards publishing and subscribing fail. The
    /// default has nothing to close (the memory bus). Each bus documents what dropping it
    /// without closing does.
    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Connects now, within the bus's connect timeout, so a bot fails at start-up rather than
    /// on its first publish; the error names the URL with its password redacted. Redis: the
    /// publisher connection (subscriber connections open with the first subscription). The
    /// default has nothing to connect (the memory bus).
    fn connect(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// One round trip to the backend, timed: `PING` on the publisher connection (connecting
    /// first if needed), bounded by the bus timeout. A health check before trading. The default
    /// answers at once with zero (the memory bus).
    fn ping(&self) -> BoxFuture<'_, Result<Duration>> {
        Box::pin(async { Ok(Duration::ZERO) })
    }
}
