//! Durable mode: Redis Streams read through consumer groups (layout and guarantees in the
//! [module docs](super)).

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use infra_config::{EventsConfig, RedisUrl};
use infra_redis::{
    ClientOptions, Connection,
    fred::{
        prelude::{Error as FredError, LuaInterface, StreamsInterface},
        types::{
            Value,
            streams::{XCapKind, XCapTrim},
        },
    },
};
use tokio::sync::{mpsc, watch};

use super::{command_error, connect_error};
use crate::{
    Envelope, EventBus, EventId, EventStream, EventsError, Handler, Position, PublishFuture, Published, Result, Start,
    SubscribeOptions, Subscription, SubscriptionStats, Topic,
    bus::{Detach, handle_event},
};

/// Moves entries delivered too often to the dead-letter stream, then claims the other idle ones
/// (`XAUTOCLAIM`, which also drops entries trimmed away meanwhile). `XPENDING` comes first
/// because only it tells how often an entry was delivered.
/// KEYS: stream, dead-letter stream. ARGV: group, consumer, min idle ms, max deliveries, count,
/// dead-letter max length. Returns {dead-lettered count, claimed entries}.
const CLAIM_OR_BURY: &str = r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', ARGV[5])
local dead = 0
for _, p in ipairs(pending) do
  if p[4] >= tonumber(ARGV[4]) then
    local entry = redis.call('XRANGE', KEYS[1], p[1], p[1])[1]
    if entry then
      local fields = entry[2]
      table.insert(fields, 'stream_id'); table.insert(fields, p[1])
      table.insert(fields, 'group'); table.insert(fields, ARGV[1])
      table.insert(fields, 'deliveries'); table.insert(fields, tostring(p[4]))
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', unpack(fields))
    end
    redis.call('XACK', KEYS[1], ARGV[1], p[1])
    dead = dead + 1
  end
end
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[5])
return {dead, claimed[2]}
";

/// Entries read or claimed per round trip.
const BATCH: u64 = 256;
/// Longest a read blocks before the consumer looks at its stop signal and pending entries: also
/// the longest `unsubscribe` waits for an idle subscription.
const MAX_BLOCK: Duration = Duration::from_millis(250);

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
}

impl Default for DurableOptions {
    /// The presets' values: 1,000,000 entries, 30 s, 5 deliveries.
    fn default() -> Self {
        Self { stream_max_len: 1_000_000, claim_after: Duration::from_secs(30), max_deliveries: 5 }
    }
}

impl DurableOptions {
    /// The durable settings of `config`.
    pub fn from_config(config: &EventsConfig) -> Self {
        Self {
            stream_max_len: config.stream_max_len,
            claim_after: config.claim_after,
            max_deliveries: config.max_deliveries,
        }
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
        Ok(())
    }
}

/// An [`EventBus`] on Redis Streams: stored events, at-least-once delivery through consumer
/// groups, redelivery and dead letters. See the [module docs](super) for the key layout.
///
/// Each subscription reads on its own connection (reads block), opened when it subscribes.
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
    options: DurableOptions,
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
        options.check()?;
        let publisher = infra_redis::client(url, &ClientOptions::new(timeout, timeout))
            .map_err(|e| connect_error(&url.redacted(), e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                url: url.clone(),
                publisher: Connection::new(publisher, url, timeout),
                source: source.to_owned(),
                prefix: format!("{namespace}:"),
                timeout,
                options,
            }),
        })
    }

    /// The Redis key of `channel`'s stream.
    pub fn stream_key(&self, channel: &str) -> String {
        format!("{}stream:{channel}", self.inner.prefix)
    }

    /// The Redis key of `channel`'s dead-letter stream.
    pub fn dead_letter_key(&self, channel: &str) -> String {
        format!("{}dead:{channel}", self.inner.prefix)
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
        let key = self.stream_key(&channel);
        let block = (inner.options.claim_after / 2).clamp(Duration::from_millis(10), MAX_BLOCK);
        // Reads block for up to `block`: their timeout covers it.
        let options = ClientOptions::new(inner.timeout, inner.timeout + block);
        let reader = infra_redis::client(&inner.url, &options).map_err(|e| connect_error(inner.publisher.url(), e))?;
        let reader = Connection::new(reader, &inner.url, inner.timeout);
        reader.connect().await.map_err(|e| connect_error(reader.url(), e))?;
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
            stats: Arc::new(SubscriptionStats::default()),
        };
        if let Err(error) = consumer.create_group(&start).await {
            consumer.reader.close().await;
            return Err(error);
        }
        let stats = Arc::clone(&consumer.stats);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(Arc::new(consumer), stopped));
        let detach: Detach = Box::new(move || {
            let _ = stop.send(true);
        });
        Ok((stats, detach, task))
    }
}

/// Where a consumer hands its events.
enum Sink {
    /// A handler; the event is acknowledged when it succeeds.
    Handler(Arc<dyn Handler>),
    /// An [`EventStream`]'s queue; the event is acknowledged once queued.
    Queue(mpsc::Sender<Envelope>),
}

/// One subscription's reader: its group, its connection, its counters.
struct Consumer {
    reader: Connection,
    timeout: Duration,
    channel: String,
    key: String,
    dead_key: String,
    group: String,
    name: String,
    private: bool,
    block: Duration,
    options: DurableOptions,
    sink: Sink,
    stats: Arc<SubscriptionStats>,
}

/// Runs `consumer` and starts it again if it panics, so a bug there cannot silently end the
/// subscription. Nothing is lost: what it had read but not acknowledged stays pending in the
/// group and is claimed again after `claim_after`. A restart that panics again waits longer
/// each time (up to 1.6 s), as failed reads do.
async fn supervise(consumer: Arc<Consumer>, stop: watch::Receiver<bool>) {
    let mut panics = 0_u32;
    while let Err(error) = tokio::spawn(Arc::clone(&consumer).run(stop.clone())).await {
        if !error.is_panic() {
            return;
        }
        panics = panics.saturating_add(1);
        tracing::error!(target: "infra_events", stream = %consumer.key, group = %consumer.group, panics, "durable consumer panicked: restarted, its unacknowledged events will be claimed again");
        tokio::time::sleep(Duration::from_millis(50 << panics.min(5))).await;
    }
}

/// A stream entry: its ID and its field/value pairs.
type Entry = (String, Vec<(Value, Value)>);

impl Consumer {
    async fn create_group(&self, start: &str) -> Result<()> {
        let created =
            self.reader.client().xgroup_create::<Value, _, _, _>(self.key.as_str(), self.group.as_str(), start, true);
        match created.await {
            Ok(_) => Ok(()),
            Err(error) if error.details().contains("BUSYGROUP") => Ok(()),
            Err(error) => Err(command_error(self.reader.url(), self.timeout, "subscribe", || self.key.clone(), error)),
        }
    }

    /// Reads, claims and delivers until stopped (or until its stream is dropped). Once stopped,
    /// it drains what the stream holds for it (so events published before `unsubscribe` are
    /// handled, as on the other buses), then leaves.
    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut next_claim = Instant::now();
        let mut failures = 0_u32;
        loop {
            let stopping = *stop.borrow();
            let claiming = !stopping && Instant::now() >= next_claim;
            let outcome = if claiming {
                next_claim = Instant::now() + self.block;
                self.claim().await
            } else {
                // Not raced against the stop signal: a read dropped halfway could leave
                // entries delivered to this consumer but never handled.
                self.read(!stopping).await
            };
            match outcome {
                Ok(entries) if stopping && entries.is_empty() => break,
                Ok(entries) => {
                    failures = 0;
                    if !self.deliver(entries, claiming).await {
                        break;
                    }
                }
                Err(_) if stopping => break,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    if error.details().contains("NOGROUP") {
                        // The group (or the stream) vanished: a server restarted without
                        // persistence, or an operator removed it. Start over with what the
                        // stream still holds, and say events may have been missed.
                        self.stats.add_gap();
                        tracing::warn!(target: "infra_events", stream = %self.key, group = %self.group, "consumer group missing: recreated, events may have been missed");
                        let _ = self.create_group("0").await;
                    } else if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(target: "infra_events", stream = %self.key, group = %self.group, failures, error = %error, "durable subscription cannot read; retrying");
                    }
                    let pause = Duration::from_millis(50 << failures.min(5));
                    tokio::select! {
                        biased;
                        _ = stop.changed() => {}
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        if self.private {
            let _ = self.reader.client().xgroup_destroy::<Value, _, _>(self.key.as_str(), self.group.as_str()).await;
        }
        self.reader.close().await;
    }

    /// New entries for this consumer, waiting up to `block` for some if `wait`.
    async fn read(&self, wait: bool) -> std::result::Result<Vec<Entry>, FredError> {
        let block = wait.then(|| u64::try_from(self.block.as_millis()).unwrap_or(250));
        let reply: Value = self
            .reader
            .client()
            .xreadgroup(self.group.as_str(), self.name.as_str(), Some(BATCH), block, false, self.key.as_str(), ">")
            .await?;
        let mut entries = Vec::new();
        for stream in into_array(reply) {
            // [key, entries]
            if let Some(list) = into_array(stream).into_iter().nth(1) {
                entries.extend(into_array(list).into_iter().filter_map(entry));
            }
        }
        Ok(entries)
    }

    /// Dead-letters entries delivered too often and claims the other idle ones for this
    /// consumer.
    async fn claim(&self) -> std::result::Result<Vec<Entry>, FredError> {
        let idle = self.options.claim_after.as_millis().to_string();
        let args = vec![
            self.group.clone(),
            self.name.clone(),
            idle,
            self.options.max_deliveries.to_string(),
            BATCH.to_string(),
            self.options.stream_max_len.to_string(),
        ];
        let reply: Value =
            self.reader.client().eval(CLAIM_OR_BURY, vec![self.key.as_str(), self.dead_key.as_str()], args).await?;
        let mut reply = into_array(reply).into_iter();
        let dead = reply.next().and_then(|v| v.as_u64()).unwrap_or_default();
        if dead > 0 {
            for _ in 0..dead {
                self.stats.add_dead_lettered();
            }
            tracing::warn!(target: "infra_events", stream = %self.key, group = %self.group, dead, dead_letters = %self.dead_key, "events moved to the dead-letter stream after too many deliveries");
        }
        Ok(reply.next().map(into_array).unwrap_or_default().into_iter().filter_map(entry).collect())
    }

    /// Hands `entries` to the sink and acknowledges those it accepted, in one `XACK`. Returns
    /// false once the sink is gone.
    async fn deliver(&self, entries: Vec<Entry>, redelivered: bool) -> bool {
        let mut done = Vec::with_capacity(entries.len());
        let mut open = true;
        for (id, fields) in entries {
            #[cfg(test)]
            if tests::PANIC_IN_CONSUMER.swap(false, std::sync::atomic::Ordering::SeqCst) {
                panic!("consumer panic injected by a test");
            }
            let mut event = envelope(&self.channel, fields);
            event.position = Some(Position::from_redis(id.clone()));
            self.stats.add_received();
            if redelivered {
                self.stats.add_redelivered();
            }
            let accepted = match &self.sink {
                Sink::Handler(handler) => handle_event(handler.as_ref(), event, &self.stats, &self.channel).await,
                Sink::Queue(queue) => {
                    open = queue.send(event).await.is_ok();
                    open
                }
            };
            if accepted {
                done.push(id);
            }
            if !open {
                break;
            }
        }
        if !done.is_empty()
            && let Err(error) =
                self.reader.client().xack::<Value, _, _, _>(self.key.as_str(), self.group.as_str(), done).await
        {
            // Still pending: redelivered after `claim_after`, a duplicate rather than a loss.
            tracing::warn!(target: "infra_events", stream = %self.key, group = %self.group, error = %error, "cannot acknowledge events; they will be delivered again");
        }
        open
    }
}

fn into_array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(values) => values,
        _ => Vec::new(),
    }
}

/// `[id, [field, value, ...]]`; a deleted entry (fields nil) is skipped.
fn entry(value: Value) -> Option<Entry> {
    let mut parts = into_array(value).into_iter();
    let id = parts.next()?.into_string()?;
    let Value::Array(flat) = parts.next()? else { return None };
    let mut fields = Vec::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let (Some(field), Some(value)) = (flat.next(), flat.next()) {
        fields.push((field, value));
    }
    Some((id, fields))
}

fn bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(text) => text.as_bytes().to_vec(),
        Value::Bytes(bytes) => bytes.to_vec(),
        other => other.as_str().map(|text| text.as_bytes().to_vec()).unwrap_or_default(),
    }
}

/// The event of a stream entry: our `event` field, or for entries other clients wrote, their
/// single value or an object of all their fields, as a foreign event.
fn envelope(channel: &str, fields: Vec<(Value, Value)>) -> Envelope {
    if let Some((_, value)) = fields.iter().find(|(field, _)| field.as_str().as_deref() == Some("event")) {
        return Envelope::from_wire(channel, &bytes(value));
    }
    if let [(_, value)] = fields.as_slice() {
        return Envelope::from_wire(channel, &bytes(value));
    }
    let object: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(field, value)| {
            let text = |v: &Value| String::from_utf8_lossy(&bytes(v)).into_owned();
            (text(field), serde_json::Value::String(text(value)))
        })
        .collect();
    Envelope::from_wire(channel, serde_json::Value::Object(object).to_string().as_bytes())
}

impl EventBus for DurableBus {
    fn backend(&self) -> &'static str {
        "redis"
    }

    /// Appends the event to its stream; `receivers` is 1 once it is stored.
    fn publish<'a>(&'a self, channel: &'a str, payload: serde_json::Value) -> PublishFuture<'a> {
        PublishFuture::new(async move {
            self.start().await?;
            let event = Envelope::new(channel, self.inner.source.as_str(), payload);
            let key = self.stream_key(channel);
            let _: Value = self
                .inner
                .publisher
                .client()
                .xadd(key.as_str(), false, self.xadd_cap(), "*", vec![("event", event.to_wire())])
                .await
                .map_err(|e| self.error("publish", &key, e))?;
            Ok(Published { id: event.id, receivers: 1 })
        })
    }

    fn publish_batch<'a>(
        &'a self,
        events: Vec<(String, serde_json::Value)>,
    ) -> BoxFuture<'a, Result<Vec<Result<Published>>>> {
        Box::pin(async move {
            self.start().await?;
            let pipeline = self.inner.publisher.client().pipeline();
            let mut sent = Vec::with_capacity(events.len());
            for (channel, payload) in events {
                let event = Envelope::new(channel.as_str(), self.inner.source.as_str(), payload);
                let key = self.stream_key(&channel);
                let () = pipeline
                    .xadd(key.as_str(), false, self.xadd_cap(), "*", vec![("event", event.to_wire())])
                    .await
                    .map_err(|e| self.error("publish_batch", &key, e))?;
                sent.push((event.id, key));
            }
            let replies: Vec<std::result::Result<Value, FredError>> = pipeline.try_all().await;
            Ok(sent
                .into_iter()
                .zip(replies)
                .map(|((id, key), reply)| {
                    reply.map(|_| Published { id, receivers: 1 }).map_err(|e| self.error("publish_batch", &key, e))
                })
                .collect())
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures::StreamExt;
    use infra_testkit::RedisServer;

    use super::*;

    /// Makes a consumer panic on the next entry it delivers.
    pub(super) static PANIC_IN_CONSUMER: AtomicBool = AtomicBool::new(false);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicked_consumer_is_restarted_and_its_event_delivered_again() {
        let server = RedisServer::start().unwrap();
        let url = RedisUrl::parse(&server.url()).unwrap();
        let timeout = Duration::from_secs(5);
        let options = DurableOptions::default().claim_after(Duration::from_millis(200));
        let bus = DurableBus::new(&url, "t", "bot", timeout, options).unwrap();
        let mut fills = bus.stream(Topic::Channel("fills".into()), SubscribeOptions::default()).await.unwrap();

        PANIC_IN_CONSUMER.store(true, Ordering::SeqCst);
        bus.publish("fills", serde_json::json!(1)).await.unwrap();
        let event = tokio::time::timeout(timeout, fills.next()).await.expect("delivered again in time").unwrap();
        assert!(!PANIC_IN_CONSUMER.load(Ordering::SeqCst), "the injected panic happened");
        assert_eq!(event.decode::<i64>().unwrap(), 1);
        assert_eq!(fills.stats().redelivered(), 1);
    }

    fn text(s: &str) -> Value {
        Value::String(s.into())
    }

    #[test]
    fn entries_of_other_clients_become_foreign_events() {
        let ours = Envelope::new("c", "bot", serde_json::json!({"n": 1}));
        let decoded = envelope("c", vec![(text("event"), text(&ours.to_wire()))]);
        assert_eq!(decoded, ours);

        let single = envelope("c", vec![(text("price"), text("42.5"))]);
        assert!(single.foreign);
        assert_eq!(single.decode::<f64>().unwrap(), 42.5);

        let many = envelope("c", vec![(text("a"), text("1")), (text("b"), text("x y"))]);
        assert!(many.foreign);
        assert_eq!(many.decode::<serde_json::Value>().unwrap(), serde_json::json!({"a": "1", "b": "x y"}));
    }

    #[test]
    fn deleted_entries_are_skipped() {
        assert_eq!(entry(Value::Array(vec![text("1-0"), Value::Null])), None);
        let parsed = entry(Value::Array(vec![text("1-0"), Value::Array(vec![text("event"), text("{}")])]));
        assert_eq!(parsed.map(|(id, fields)| (id, fields.len())), Some(("1-0".to_owned(), 1)));
    }

    #[test]
    fn options_out_of_range_are_rejected() {
        let error = DurableOptions::default().max_deliveries(0).check().unwrap_err();
        assert_eq!(error.to_string(), "invalid subscription option: max_deliveries must be at least 1");
        assert!(DurableOptions::default().claim_after(Duration::ZERO).check().is_err());
        assert!(DurableOptions::default().stream_max_len(0).check().is_err());
    }
}
