//! Ephemeral mode: `PUBLISH` / `SUBSCRIBE` / `PSUBSCRIBE` through `fred`; on a Redis Cluster,
//! `SPUBLISH` / `SSUBSCRIBE` for channels (see [`crate::redis`]).

mod listener;
mod subscriptions;

use std::{
    fmt,
    sync::{Arc, PoisonError},
    time::Duration,
};

use futures::future::BoxFuture;
use infra_config::RedisUrl;
use infra_redis::{
    ClientOptions, Connection,
    fred::{
        clients::{SubscriberClient, WithOptions},
        error::Error as FredError,
        prelude::{Client, ClientLike, EventInterface, Options, PubsubInterface},
        types::Value,
    },
};
use tokio::{runtime::Handle, sync::watch, task::JoinHandle};

use self::{listener::supervise, subscriptions::Refs};
use crate::{
    Envelope, EventBus, EventId, EventStream, EventsError, Handler, PublishFuture, Published, Result, SubscribeOptions,
    Subscription, Topic,
    memory::MemoryBus,
    metrics::{PublishMetrics, REDIS},
    redis::{command_error, connect_error},
};

/// Messages fred buffers between its socket reader and our listener: large enough that a burst
/// never outruns a listener that keeps up on average (fred's default of 32 lost part of a
/// 20,000-message burst; figures in docs/benchmarks.md).
const SUBSCRIBER_BUFFER: usize = 1 << 17;

/// An [`EventBus`] on Redis pub/sub.
///
/// Two connections (publisher and subscriber), each opened on first use. [`RedisBus::close`]
/// (or [`EventBus::close`]) shuts it down in order; dropping the last clone without closing
/// sends `QUIT` on both connections in the background, on the runtime they connected from even
/// when dropped outside it (if that runtime is gone, its tasks are gone too), so nothing keeps
/// reconnecting. Subscriptions outlive neither: once the bus is closed or dropped they receive
/// nothing more.
///
/// Metrics (`backend="redis"`, see the crate's "Metrics" section) go to the recorder installed
/// when the bus is built (publishing) and when each subscription is made: install it first.
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<Inner>,
}

struct Inner {
    /// Commands get fred's own timeout (queued while disconnected, skipped once timed out).
    publisher: Connection,
    /// The same connection for publishing while it is up: no fred timer, fail fast (see
    /// [`Inner::publish`]).
    connected_publisher: WithOptions<Client>,
    subscriber: Connection<SubscriberClient>,
    local: MemoryBus,
    published: PublishMetrics,
    source: String,
    prefix: String,
    url: String,
    timeout: Duration,
    /// A Redis Cluster: channels are sharded (`SPUBLISH`/`SSUBSCRIBE`), and each publish also
    /// goes out as a classic `PUBLISH` for pattern subscriptions.
    clustered: bool,
    /// The Redis subscriptions held for local ones. An async lock, held across the
    /// SUBSCRIBE/UNSUBSCRIBE it decides.
    refs: tokio::sync::Mutex<Refs>,
    /// Set once the listener task runs: the runtime it runs on.
    listening: tokio::sync::OnceCell<Handle>,
    /// The listener's supervisor, for `close` to wait for.
    listener: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Tells the listener to route what it has received and end.
    stop_listener: watch::Sender<bool>,
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBus")
            .field("url", &self.inner.url)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// A bus on `url` under `namespace`; events name `source` as their publisher. Connects on
    /// first use. `timeout` bounds connecting and every command: a publish that is not answered
    /// in time fails with [`EventsError::Timeout`] (while the connection is down it waits that
    /// long for the reconnection). A publish that timed out on a live but frozen connection
    /// was already written, so Redis may still deliver it once it answers again.
    pub fn new(url: &RedisUrl, namespace: &str, source: &str, timeout: Duration) -> Result<Self> {
        Self::with_timeouts(url, namespace, source, timeout, timeout)
    }

    /// [`RedisBus::new`] with its own bound on connecting (`events.connect_timeout`, which
    /// [`from_config`](crate::from_config) passes): `timeout` bounds commands,
    /// `connect_timeout` each wait for a connection ([`EventBus::connect`] included).
    pub fn with_timeouts(
        url: &RedisUrl,
        namespace: &str,
        source: &str,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self> {
        let options = ClientOptions::new(connect_timeout, timeout);
        let clustered = infra_redis::is_clustered(url).map_err(|e| connect_error(&url.redacted(), e))?;
        let publisher = infra_redis::client(url, &options).map_err(|e| connect_error(&url.redacted(), e))?;
        let subscriber = infra_redis::subscriber_client(url, &options.message_buffer(SUBSCRIBER_BUFFER))
            .map_err(|e| connect_error(&url.redacted(), e))?;
        let connected_publisher =
            publisher.with_options(&Options { timeout: Some(Duration::ZERO), fail_fast: true, ..Options::default() });
        Ok(Self {
            inner: Arc::new(Inner {
                publisher: Connection::new(publisher, url, connect_timeout),
                connected_publisher,
                subscriber: Connection::new(subscriber, url, connect_timeout),
                local: MemoryBus::labelled(source.to_owned(), REDIS),
                published: PublishMetrics::new(REDIS),
                source: source.to_owned(),
                prefix: format!("{namespace}:"),
                url: url.redacted(),
                timeout,
                clustered,
                refs: tokio::sync::Mutex::default(),
                listening: tokio::sync::OnceCell::new(),
                listener: std::sync::Mutex::default(),
                stop_listener: watch::Sender::new(false),
            }),
        })
    }

    /// Messages lost between Redis and the subscriptions (fred's buffer overflowed); each loss
    /// also marks a gap on every subscription.
    pub fn lost_upstream(&self) -> u64 {
        self.inner.local.lost_upstream()
    }

    /// Shuts the bus down: `QUIT` on the subscriber connection (after the commands already
    /// queued), routes what it had received to the subscriptions and stops the listener, ends
    /// every subscription (each handles what it had queued, then its stream ends), then `QUIT`
    /// on the publisher once the publishes already sent are answered. Afterwards publishing and
    /// subscribing fail with [`EventsError::Connection`], whose source says the client was
    /// closed. Closing twice is harmless.
    pub async fn close(&self) -> Result<()> {
        let inner = &self.inner;
        inner.subscriber.close().await;
        inner.stop_listener.send_replace(true);
        let listener = inner.listener.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(listener) = listener {
            let _ = listener.await;
        }
        inner.local.detach_all();
        inner.publisher.close().await;
        Ok(())
    }

    /// [`EventBus::connect`] without boxing: connects the publisher connection now, within the
    /// connect timeout (the subscriber connection opens with the first subscription).
    pub async fn connect(&self) -> Result<()> {
        self.start_publisher().await
    }

    /// [`EventBus::ping`] without boxing: one `PING` on the publisher connection (connecting
    /// first if needed), timed, bounded by the bus timeout.
    pub async fn ping(&self) -> Result<Duration> {
        self.start_publisher().await?;
        let inner = &self.inner;
        let started = std::time::Instant::now();
        let _: Value = inner
            .publisher
            .client()
            .ping(None)
            .await
            .map_err(|e| command_error(&inner.url, inner.timeout, "ping", || inner.url.clone(), e))?;
        Ok(started.elapsed())
    }

    /// Connects the publisher (the first time; afterwards one atomic load).
    async fn start_publisher(&self) -> Result<()> {
        let publisher = &self.inner.publisher;
        if publisher.is_ready() {
            return Ok(());
        }
        publisher.connect().await.map_err(|e| connect_error(&self.inner.url, e))
    }

    /// Connects the subscriber and starts the listener, once.
    async fn start_subscriber(&self) -> Result<()> {
        let inner = &self.inner;
        inner.subscriber.connect().await.map_err(|e| connect_error(&inner.url, e))?;
        inner
            .listening
            .get_or_init(|| async {
                let subscriber = inner.subscriber.client();
                // fred re-issues SUBSCRIBE/PSUBSCRIBE after a reconnection; the task ends when
                // the client quits.
                drop(subscriber.manage_subscriptions());
                // Receivers are created here, before any SUBSCRIBE, so no message can arrive
                // before the listener listens.
                let receivers = (subscriber.message_rx(), subscriber.reconnect_rx());
                let task = tokio::spawn(supervise(Arc::downgrade(inner), receivers, inner.stop_listener.subscribe()));
                *inner.listener.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
                Handle::current()
            })
            .await;
        Ok(())
    }
}

impl Inner {
    /// The Redis channel of the bus channel `channel`: under the namespace.
    fn redis_channel(&self, channel: &str) -> String {
        format!("{}{channel}", self.prefix)
    }

    /// The Redis pattern matching every channel of the namespace.
    fn all_channels(&self) -> String {
        infra_redis::glob_prefix(&self.prefix)
    }

    /// The error of a failed SUBSCRIBE, PSUBSCRIBE or confirming PING for `topic`.
    fn subscribe_error(&self, topic: &Topic, error: infra_redis::fred::error::Error) -> EventsError {
        let target = || match topic {
            Topic::Channel(channel) => self.redis_channel(channel),
            Topic::Pattern(_) => self.all_channels(),
        };
        command_error(&self.url, self.timeout, "subscribe", target, error)
    }

    /// One `PUBLISH`, bounded by the bus timeout. While the connection is up the command
    /// bypasses fred's per-command timer (registered after the write, it added measurable
    /// round-trip latency per publish: docs/benchmarks.md) and is bounded by one outer
    /// timeout instead; with fail-fast, a connection that drops meanwhile fails it at once
    /// instead of queueing it for a retry after the reconnection (which could send it after the
    /// caller was told it timed out). While disconnected it waits in fred's queue for the
    /// reconnection, under fred's own timeout (which drops it unsent when it expires).
    async fn publish(&self, channel: &str, text: String) -> Result<i64> {
        // Named again only on failure, so the hot path hands its string to fred without a copy.
        let timed_out = || EventsError::Timeout {
            operation: "publish",
            target: self.redis_channel(channel),
            timeout: self.timeout,
        };
        let redis_channel = self.redis_channel(channel);
        let sent = if self.publisher.client().is_connected() {
            let publish = self.send(&self.connected_publisher, redis_channel, text);
            match tokio::time::timeout(self.timeout, publish).await {
                Ok(sent) => sent,
                Err(_) => return Err(timed_out()),
            }
        } else {
            self.send(self.publisher.client(), redis_channel, text).await
        };
        sent.map_err(|e| command_error(&self.url, self.timeout, "publish", || self.redis_channel(channel), e))
    }

    /// `PUBLISH` on one server. On a cluster, `SPUBLISH` (to the channel's shard, whose reply
    /// counts its channel subscribers exactly) and a classic `PUBLISH` of the same message for
    /// pattern subscriptions (broadcast over the cluster bus; its reply, which counts only the
    /// receiving node's subscribers, is not reported). Both go to the channel's node.
    async fn send<C: PubsubInterface + Sync>(
        &self,
        client: &C,
        redis_channel: String,
        text: String,
    ) -> std::result::Result<i64, FredError> {
        if !self.clustered {
            return client.publish(redis_channel, text).await;
        }
        // Shared buffers: the two copies clone reference counts, not the message.
        let (redis_channel, text) = (infra_redis::fred::bytes_utils::Str::from(redis_channel), Value::from(text));
        let (sharded, broadcast) = tokio::join!(
            client.spublish::<i64, _, _>(redis_channel.clone(), text.clone()),
            client.publish::<i64, _, _>(redis_channel, text)
        );
        broadcast?;
        sharded
    }
}

impl EventBus for RedisBus {
    fn backend(&self) -> &'static str {
        "redis"
    }

    fn publish<'a>(&'a self, channel: &'a str, payload: serde_json::Value) -> PublishFuture<'a> {
        PublishFuture::new(async move {
            let result = async {
                self.start_publisher().await?;
                let event = Envelope::new(channel, self.inner.source.as_str(), payload);
                let receivers = self.inner.publish(channel, event.to_wire_bounded()?).await?;
                Ok(published(event.id, receivers))
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
            let result = self.pipeline(events).await;
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
            let attached = self.attach(topic.clone(), options).await?;
            Ok(attached.into_subscription(&topic, handler))
        })
    }

    fn stream<'a>(&'a self, topic: Topic, options: SubscribeOptions) -> BoxFuture<'a, Result<EventStream>> {
        Box::pin(async move { Ok(self.attach(topic, options).await?.into_stream()) })
    }

    /// [`RedisBus::close`].
    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(RedisBus::close(self))
    }

    /// [`RedisBus::connect`].
    fn connect(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(RedisBus::connect(self))
    }

    /// [`RedisBus::ping`].
    fn ping(&self) -> BoxFuture<'_, Result<Duration>> {
        Box::pin(RedisBus::ping(self))
    }
}

impl RedisBus {
    /// Publishes `events` in one pipeline (uncounted: [`EventBus::publish_batch`] counts).
    async fn pipeline(&self, events: Vec<(&str, serde_json::Value)>) -> Result<Vec<Result<Published>>> {
        self.start_publisher().await?;
        let pipeline = self.inner.publisher.client().pipeline();
        let mut ids = Vec::with_capacity(events.len());
        let inner = &self.inner;
        let error =
            |channel: &str, e| command_error(&inner.url, inner.timeout, "publish", || inner.redis_channel(channel), e);
        let mut channels = Vec::with_capacity(events.len());
        for (channel, payload) in events {
            let event = Envelope::new(channel, inner.source.as_str(), payload);
            ids.push(event.id);
            let wire = event.to_wire_bounded()?;
            if inner.clustered {
                // As in `Inner::send`: the sharded copy, whose reply is reported, then the
                // copy for pattern subscriptions.
                let () = pipeline
                    .spublish(inner.redis_channel(channel), wire.clone())
                    .await
                    .map_err(|e| error(channel, e))?;
            }
            let () = pipeline.publish(inner.redis_channel(channel), wire).await.map_err(|e| error(channel, e))?;
            channels.push(channel);
        }
        let mut replies: Vec<std::result::Result<i64, FredError>> = pipeline.try_all().await;
        if inner.clustered {
            // Pairs (sharded, broadcast): the sharded reply unless the broadcast failed.
            let mut pairs = std::mem::take(&mut replies).into_iter();
            while let (Some(sharded), Some(broadcast)) = (pairs.next(), pairs.next()) {
                replies.push(broadcast.and(sharded));
            }
        }
        Ok(ids
            .into_iter()
            .zip(channels)
            .zip(replies)
            .map(|((id, channel), reply)| reply.map(|n| published(id, n)).map_err(|e| error(channel, e)))
            .collect())
    }
}

/// The report of a `PUBLISH` of event `id` that Redis sent to `receivers` subscribers.
fn published(id: EventId, receivers: i64) -> Published {
    let mut published = Published::new(id);
    published.redis_receivers = Some(usize::try_from(receivers).unwrap_or_default());
    published
}
