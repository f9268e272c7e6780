//! Durable mode: Redis Streams read through consumer groups (layout and guarantees in the
//! [module docs](super)).

mod consumer;
mod entries;
mod registry;
mod replicas;
mod scripts;

use std::{fmt, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use infra_config::{EventsConfig, RedisUrl};
use infra_redis::{
    ClientOptions, Connection,
    fred::{
        prelude::{ClientLike, Error as FredError, StreamsInterface},
        types::{
            Value,
            streams::{XCapKind, XCapTrim},
        },
    },
};
use tokio::sync::{mpsc, watch};

use self::{
    consumer::{Consumer, MAX_BLOCK, Sink, supervise},
    registry::Registry,
};
use super::{closed_error, command_error, connect_error};
use crate::{
    Envelope, EventBus, EventId, EventStream, EventsError, Handler, Position, PublishFuture, Published, Result, Start,
    SubscribeOptions, Subscription, SubscriptionStats, Topic,
    bus::Detach,
    metrics::{DURABLE, PublishMetrics},
};

/// Tuning of the durable mode; [`DurableOptions::from_config`] reads it from [`EventsConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DurableOptions {
    /// Entries kept per stream, approximately (`XADD MAXLEN ~`); also bounds dead-letter streams.
    pub stream_max_len: u64,
    /// An unacknowledged event idle this long is delivered again.
    pub claim_after: Duration,
    /// Deliveries of one event before it moves to the dead-letter stream.
    pub max_deliveries: u32,
    /// How long [`DurableBus::close`] waits for its subscriptions to drain before it gives up
    /// on the ones still running (a handler that never returns, a stream whose queue is never
    /// read): their unacknowledged events stay pending in the group and are delivered again.
    pub close_timeout: Duration,
    /// Replicas that must acknowledge each published event (Redis `WAIT` on the stream's node)
    /// before the publish returns `Ok`, so that an accepted event survives a failover to a
    /// replica; 0 (the default) does not wait. Fewer in time fail the publish with
    /// [`EventsError::NotReplicated`] (the event is stored on the master).
    pub replica_acks: u32,
    /// How long a publish waits for [`DurableOptions::replica_acks`].
    pub replica_ack_timeout: Duration,
}

impl Default for DurableOptions {
    /// The presets' values: 1,000,000 entries, 30 s, 5 deliveries; `close` waits 30 s.
    fn default() -> Self {
        Self {
            stream_max_len: 1_000_000,
            claim_after: Duration::from_secs(30),
            max_deliveries: 5,
            close_timeout: Duration::from_secs(30),
            replica_acks: 0,
            replica_ack_timeout: Duration::from_secs(1),
        }
    }
}

impl DurableOptions {
    /// The durable settings of `config`.
    pub fn from_config(config: &EventsConfig) -> Self {
        Self {
            stream_max_len: config.stream_max_len,
            claim_after: config.claim_after,
            max_deliveries: config.max_deliveries,
            close_timeout: Self::default().close_timeout,
            replica_acks: config.replica_acks,
            replica_ack_timeout: config.replica_ack_timeout,
        }
    }

    /// Sets [`DurableOptions::close_timeout`].
    #[must_use]
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`DurableOptions::stream_max_len`].
    #[must_use]
    pub fn stream_max_len(mut self, entries: u64) -> Self {
        self.stream_max_len = entries;
        self
    }

    /// Sets [`DurableOptions::claim_after`].
    #[must_use]
    pub fn claim_after(mut self, idle: Duration) -> Self {
        self.claim_after = idle;
        self
    }

    /// Sets [`DurableOptions::replica_acks`] and [`DurableOptions::replica_ack_timeout`].
    #[must_use]
    pub fn replica_acks(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replica_acks = replicas;
        self.replica_ack_timeout = timeout;
        self
    }

    /// Sets [`DurableOptions::max_deliveries`].
    #[must_use]
    pub fn max_deliveries(mut self, deliveries: u32) -> Self {
        self.max_deliveries = deliveries;
        self
    }

    fn check(&self) -> Result<()> {
        if self.stream_max_len == 0 {
            return Err(EventsError::InvalidOption("stream_max_len must be at least 1"));
        }
        if self.claim_after.is_zero() {
            return Err(EventsError::InvalidOption("claim_after must be greater than 0"));
        }
        if self.max_deliveries == 0 {
            return Err(EventsError::InvalidOption("max_deliveries must be at least 1"));
        }
        if self.replica_acks > 0 && self.replica_ack_timeout.is_zero() {
            return Err(EventsError::InvalidOption("replica_ack_timeout must be greater than 0"));
        }
        Ok(())
    }
}

/// An [`EventBus`] on Redis Streams: stored events, at-least-once delivery through consumer
/// groups, redelivery and dead letters. See the [module docs](super) for the key layout.
///
/// Each subscription reads on its own connection (reads block), opened when it subscribes and
/// closed when it ends. [`DurableBus::close`] (or [`EventBus::close`]) ends every subscription
/// (each drains like `unsubscribe`) and closes the publisher. Dropping the last clone without
/// closing sends `QUIT` on the publisher connection in the background, on the runtime it
/// connected from even when dropped outside it (if that runtime is gone, its tasks are gone
/// too), so nothing keeps reconnecting; subscriptions still running go on until they are
/// dropped or unsubscribed, then close their own connections the same way.
///
/// Metrics (`backend="redis_streams"`, see the crate's "Metrics" section) go to the recorder
/// installed when the bus is built (publishing) and when each subscription is made: install it
/// first.
#[derive(Clone)]
pub struct DurableBus {
    inner: Arc<Inner>,
}

struct Inner {
    url: RedisUrl,
    publisher: Connection,
    source: String,
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    options: DurableOptions,
    consumers: Arc<Registry>,
    published: PublishMetrics,
    /// A Redis Cluster: stream keys carry a hash tag (see [`DurableBus::stream_key`]).
    clustered: bool,
}

impl fmt::Debug for DurableBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableBus")
            .field("url", &self.inner.url)
            .field("prefix", &self.inner.prefix)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl DurableBus {
    /// A bus on `url` under `namespace`; events name `source` as their publisher, and private
    /// groups are named after it. Connects on first use.
    pub fn new(
        url: &RedisUrl,
        namespace: &str,
        source: &str,
        timeout: Duration,
        options: DurableOptions,
    ) -> Result<Self> {
        Self::with_timeouts(url, namespace, source, timeout, timeout, options)
    }

    /// [`DurableBus::new`] with its own bound on connecting (`events.connect_timeout`, which
    /// [`from_config`](crate::from_config) passes): `timeout` bounds commands,
    /// `connect_timeout` each wait for a connection ([`EventBus::connect`] and each
    /// subscription's own connection included).
    pub fn with_timeouts(
        url: &RedisUrl,
        namespace: &str,
        source: &str,
        timeout: Duration,
        connect_timeout: Duration,
        options: DurableOptions,
    ) -> Result<Self> {
        options.check()?;
        let clustered = infra_redis::is_clustered(url).map_err(|e| connect_error(&url.redacted(), e))?;
        let publisher = infra_redis::client(url, &ClientOptions::new(connect_timeout, timeout))
            .map_err(|e| connect_error(&url.redacted(), e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                url: url.clone(),
                publisher: Connection::new(publisher, url, connect_timeout),
                source: source.to_owned(),
                prefix: format!("{namespace}:"),
                timeout,
                connect_timeout,
                options,
                consumers: Registry::new(),
                published: PublishMetrics::new(DURABLE),
                clustered,
            }),
        })
    }

    /// The Redis key of `channel`'s stream: `ns:stream:<channel>`, or on a Redis Cluster
    /// `ns:stream:{ns:<channel>}`, whose hash tag puts it in the same slot as its dead-letter
    /// stream (the script that buries entries writes both) while keeping the `ns:` prefix
    /// that ACL key patterns (`~ns:*`) match.
    pub fn stream_key(&self, channel: &str) -> String {
        self.key("stream", channel)
    }

    /// The Redis key of `channel`'s dead-letter stream: `ns:dead:<channel>`, or on a Redis
    /// Cluster `ns:dead:{ns:<channel>}` (same slot as the stream).
    pub fn dead_letter_key(&self, channel: &str) -> String {
        self.key("dead", channel)
    }

    fn key(&self, kind: &str, channel: &str) -> String {
        let prefix = &self.inner.prefix;
        if self.inner.clustered {
            // The tag is never empty (an empty tag would hash the whole key), and a `}` in the
            // channel ends it at the same place in both keys.
            format!("{prefix}{kind}:{{{prefix}{channel}}}")
        } else {
            format!("{prefix}{kind}:{channel}")
        }
    }

    /// Shuts the bus down: stops every subscription, waits until each has delivered what the
    /// stream held for it (as `unsubscribe` does; a stream's consumer waits for room in its
    /// queue), removed its private group or consumer and closed its connection, then `QUIT`s
    /// the publisher once the publishes already sent are answered. Afterwards publishing and
    /// subscribing fail with [`EventsError::Connection`], whose source says the client was
    /// closed. Closing twice is harmless.
    ///
    /// Never hangs: subscriptions still running after [`DurableOptions::close_timeout`] are
    /// left behind (their unacknowledged events stay pending in their group, delivered again
    /// later: nothing is lost), an ERROR line says how many, the publisher is closed all the
    /// same, and the result is [`EventsError::Timeout`].
    pub async fn close(&self) -> Result<()> {
        let timeout = self.inner.options.close_timeout;
        let running = self.inner.consumers.close(timeout).await;
        self.inner.publisher.close().await;
        if running == 0 {
            return Ok(());
        }
        tracing::error!(
            target: "infra_events",
            running,
            ?timeout,
            "durable subscriptions still draining when close gave up: their unacknowledged events stay pending"
        );
        Err(EventsError::Timeout {
            operation: "close",
            target: format!("{running} durable subscriptions still draining"),
            timeout,
        })
    }

    /// [`EventBus::connect`] without boxing: connects the publisher connection now, within the
    /// connect timeout (each subscription opens its own connection when it subscribes).
    pub async fn connect(&self) -> Result<()> {
        self.start().await
    }

    /// [`EventBus::ping`] without boxing: one `PING` on the publisher connection (connecting
    /// first if needed), timed, bounded by the bus timeout.
    pub async fn ping(&self) -> Result<Duration> {
        self.start().await?;
        let publisher = &self.inner.publisher;
        let started = std::time::Instant::now();
        let _: Value = publisher.client().ping(None).await.map_err(|e| self.error("ping", publisher.url(), e))?;
        Ok(started.elapsed())
    }

    /// Connects the publisher (the first time; afterwards one atomic load).
    async fn start(&self) -> Result<()> {
        let publisher = &self.inner.publisher;
        if publisher.is_ready() {
            return Ok(());
        }
        publisher.connect().await.map_err(|e| connect_error(publisher.url(), e))
    }

    fn error(&self, operation: &'static str, key: &str, error: FredError) -> EventsError {
        command_error(self.inner.publisher.url(), self.inner.timeout, operation, || key.to_owned(), error)
    }

    fn xadd_cap(&self) -> (XCapKind, XCapTrim, i64) {
        (XCapKind::MaxLen, XCapTrim::AlmostExact, i64::try_from(self.inner.options.stream_max_len).unwrap_or(i64::MAX))
    }

    /// Starts a consumer for `topic` feeding `sink`; returns its counters, its stop switch and
    /// its task.
    async fn consume(
        &self,
        topic: Topic,
        sink: Sink,
        options: SubscribeOptions,
    ) -> Result<(Arc<SubscriptionStats>, Detach, tokio::task::JoinHandle<()>)> {
        let channel = match topic {
            Topic::Channel(channel) => channel,
            Topic::Pattern(pattern) => return Err(EventsError::PatternNotDurable { pattern: pattern.to_string() }),
        };
        options.check("redis", true)?;
        let inner = &self.inner;
        let (group, private) = match options.group {
            Some(group) if group.is_empty() => return Err(EventsError::InvalidOption("group must not be empty")),
            Some(group) => (group, false),
            None => (format!("{}.{}", inner.source, EventId::new()), true),
        };
        let start = match &options.start {
            Start::Latest => "$".to_owned(),
            Start::Beginning => "0".to_owned(),
            Start::After(position) => position.as_str().to_owned(),
        };
        // Registered first, so that a `close` meanwhile either refuses it or waits for it.
        let stop = Arc::new(watch::Sender::new(false));
        let registered =
            inner.consumers.register(Arc::clone(&stop)).ok_or_else(|| closed_error(inner.publisher.url()))?;
        let key = self.stream_key(&channel);
        let block = (inner.options.claim_after / 2).clamp(Duration::from_millis(10), MAX_BLOCK);
        // Reads block for up to `block`: their timeout covers it.
        let options = ClientOptions::new(inner.connect_timeout, inner.timeout + block);
        let reader = infra_redis::client(&inner.url, &options).map_err(|e| connect_error(inner.publisher.url(), e))?;
        let reader = Connection::new(reader, &inner.url, inner.connect_timeout);
        reader.connect().await.map_err(|e| connect_error(reader.url(), e))?;
        // Resolved now, from the recorder current where it subscribes.
        let stats = Arc::new(SubscriptionStats::new(&Topic::Channel(channel.clone()), DURABLE));
        let consumer = Consumer {
            reader,
            timeout: inner.timeout,
            dead_key: self.dead_letter_key(&channel),
            channel,
            key,
            group,
            name: format!("{}.{}", inner.source, EventId::new()),
            private,
            block,
            options: inner.options.clone(),
            sink,
            stats,
        };
        if let Err(error) = consumer.create_group(&start).await {
            consumer.reader.close().await;
            return Err(error);
        }
        let stats = Arc::clone(&consumer.stats);
        let task = tokio::spawn(supervise(Arc::new(consumer), stop.subscribe(), registered));
        let detach: Detach = Box::new(move || {
            stop.send_replace(true);
        });
        Ok((stats, detach, task))
    }
}

impl EventBus for DurableBus {
    fn backend(&self) -> &'static str {
        "redis"
    }

    /// Appends the event to its stream; [`Published::position`] is its entry.
    fn publish<'a>(&'a self, channel: &'a str, payload: serde_json::Value) -> PublishFuture<'a> {
        PublishFuture::new(async move {
            let result = async {
                self.start().await?;
                let event = Envelope::new(channel, self.inner.source.as_str(), payload);
                let key = self.stream_key(channel);
                let wire = event.to_wire_bounded()?;
                let entry: Value = self
                    .inner
                    .publisher
                    .client()
                    .xadd(key.as_str(), false, self.xadd_cap(), "*", vec![("event", wire)])
                    .await
                    .map_err(|e| self.error("publish", &key, e))?;
                self.replicated("publish", &key).await?;
                Ok(stored(event.id, entry))
            }
            .await;
            self.inner.published.outcome(&result);
            result
        })
    }

    fn publish_batch<'a>(
        &'a self,
        events: Vec<(&'a str, serde_json::Value)>,
    ) -> BoxFuture<'a, Result<Vec<Result<Published>>>> {
        let count = events.len();
        Box::pin(async move {
            let result = self.append_batch(events).await;
            self.inner.published.batch(count, &result);
            result
        })
    }

    fn subscribe<'a>(
        &'a self,
        topic: Topic,
        handler: Arc<dyn Handler>,
        options: SubscribeOptions,
    ) -> BoxFuture<'a, Result<Subscription>> {
        Box::pin(async move {
            let (stats, detach, task) = self.consume(topic, Sink::Handler(handler), options).await?;
            Ok(Subscription::from_task(stats, detach, task))
        })
    }

    /// [`DurableBus::close`].
    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(DurableBus::close(self))
    }

    /// [`DurableBus::connect`].
    fn connect(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(DurableBus::connect(self))
    }

    /// [`DurableBus::ping`].
    fn ping(&self) -> BoxFuture<'_, Result<Duration>> {
        Box::pin(DurableBus::ping(self))
    }

    /// Events are acknowledged once queued for the stream (a crash loses at most the queued
    /// ones); the queue never drops, whatever [`SubscribeOptions::overflow`] says. Use
    /// [`EventBus::subscribe`] to acknowledge after processing.
    fn stream<'a>(&'a self, topic: Topic, options: SubscribeOptions) -> BoxFuture<'a, Result<EventStream>> {
        Box::pin(async move {
            // A capacity of 0 is refused by `consume`; the channel just must not panic first.
            let (queue, receiver) = mpsc::channel(options.capacity.max(1));
            let (stats, detach, _task) = self.consume(topic, Sink::Queue(queue), options).await?;
            Ok(EventStream::from_queue(receiver, stats, detach))
        })
    }
}

impl DurableBus {
    /// Appends `events` in one pipeline (uncounted: [`EventBus::publish_batch`] counts).
    async fn append_batch(&self, events: Vec<(&str, serde_json::Value)>) -> Result<Vec<Result<Published>>> {
        self.start().await?;
        let pipeline = self.inner.publisher.client().pipeline();
        let mut sent = Vec::with_capacity(events.len());
        for (channel, payload) in events {
            let event = Envelope::new(channel, self.inner.source.as_str(), payload);
            let key = self.stream_key(channel);
            let wire = event.to_wire_bounded()?;
            let () = pipeline
                .xadd(key.as_str(), false, self.xadd_cap(), "*", vec![("event", wire)])
                .await
                .map_err(|e| self.error("publish_batch", &key, e))?;
            sent.push((event.id, key));
        }
        let replies: Vec<std::result::Result<Value, FredError>> = pipeline.try_all().await;
        let results = sent
            .into_iter()
            .zip(replies)
            .map(|((id, key), reply)| {
                (reply.map(|entry| stored(id, entry)).map_err(|e| self.error("publish_batch", &key, e)), key)
            })
            .collect();
        Ok(self.replicated_batch(results).await)
    }
}

/// The report of event `id`, stored as the stream entry `XADD` answered.
fn stored(id: EventId, entry: Value) -> Published {
    let mut published = Published::new(id);
    published.position = entry.into_string().map(Position::from_redis);
    published
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_out_of_range_are_rejected() {
        let error = DurableOptions::default().max_deliveries(0).check().unwrap_err();
        assert_eq!(error.to_string(), "invalid subscription option: max_deliveries must be at least 1");
        assert!(DurableOptions::default().claim_after(Duration::ZERO).check().is_err());
        assert!(DurableOptions::default().stream_max_len(0).check().is_err());
    }
}
