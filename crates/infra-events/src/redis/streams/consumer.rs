//! A durable subscription's consumer task: reads, claims, delivers, acknowledges and buries.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use infra_redis::{
    Connection,
    fred::{
        prelude::{Error as FredError, LuaInterface, StreamsInterface},
        types::Value,
    },
};
use tokio::sync::{mpsc, watch};

use super::{
    DurableOptions,
    entries::{Entry, Item, StreamId, envelope, into_array, item},
    registry::Registered,
    scripts::{CLAIM_OR_BURY, READ_NEW, REMOVE_IDLE_CONSUMER},
};
use crate::{Envelope, Handler, Position, Result, SubscriptionStats, bus::handle_event, redis::command_error};

/// Entries read or claimed per round trip.
const BATCH: u64 = 256;
/// IDs of trimmed entries a log line lists at most.
const LOGGED_IDS: usize = 32;
/// Longest a read blocks before the consumer looks at its stop signal and pending entries: also
/// the longest `unsubscribe` waits for an idle subscription.
pub(super) const MAX_BLOCK: Duration = Duration::from_millis(250);

/// Where a consumer hands its events.
pub(super) enum Sink {
    /// A handler; the event is acknowledged when it succeeds.
    Handler(Arc<dyn Handler>),
    /// An [`EventStream`](crate::EventStream)'s queue; the event is acknowledged once queued.
    Queue(mpsc::Sender<Envelope>),
}

/// One subscription's reader: its group, its connection, its counters.
pub(super) struct Consumer {
    pub(super) reader: Connection,
    pub(super) timeout: Duration,
    pub(super) channel: String,
    pub(super) key: String,
    pub(super) dead_key: String,
    pub(super) group: String,
    pub(super) name: String,
    pub(super) private: bool,
    pub(super) block: Duration,
    pub(super) options: DurableOptions,
    pub(super) sink: Sink,
    pub(super) stats: Arc<SubscriptionStats>,
}

/// Runs `consumer` and starts it again if it panics, so a bug there cannot silently end the
/// subscription. Nothing is lost: what it had read but not acknowledged stays pending in the
/// group and is claimed again after `claim_after`. A restart that panics again waits longer
/// each time (up to 1.6 s), as failed reads do. Holds the consumer's place in its bus's registry
/// until it ends.
pub(super) async fn supervise(consumer: Arc<Consumer>, stop: watch::Receiver<bool>, _registered: Registered) {
    let mut panics = 0_u32;
    while let Err(error) = tokio::spawn(Arc::clone(&consumer).run(stop.clone())).await {
        if !error.is_panic() {
            return;
        }
        panics = panics.saturating_add(1);
        consumer.stats.add_task_failure();
        tracing::error!(target: "infra_events", stream = %consumer.key, group = %consumer.group, panics, "durable consumer panicked: restarted, its unacknowledged events will be claimed again");
        tokio::time::sleep(Duration::from_millis(50 << panics.min(5))).await;
    }
}

impl Consumer {
    pub(super) async fn create_group(&self, start: &str) -> Result<()> {
        let created =
            self.reader.client().xgroup_create::<Value, _, _, _>(self.key.as_str(), self.group.as_str(), start, true);
        match created.await {
            Ok(_) => Ok(()),
            Err(error) if error.details().contains("BUSYGROUP") => Ok(()),
            Err(error) => Err(command_error(self.reader.url(), self.timeout, "subscribe", || self.key.clone(), error)),
        }
    }

    /// Reads, claims and delivers until stopped (or until its stream is dropped). Once stopped,
    /// it drains the stream up to the last entry it held when the stop was seen (so events
    /// published before `unsubscribe` are handled, as on the other buses, while a publisher that
    /// never pauses cannot keep it running), then removes what it created and leaves.
    pub(super) async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut next_claim = Instant::now();
        let mut failures = 0_u32;
        // Set once stopping: the last entry to deliver.
        let mut drain_to = None;
        loop {
            if drain_to.is_none() && *stop.borrow() {
                match self.last_entry().await {
                    Ok(Some(last)) => drain_to = Some(last),
                    // An empty stream holds nothing to drain; an unreadable one leaves what is
                    // pending to the group.
                    Ok(None) | Err(_) => break,
                }
            }
            let stopping = drain_to.is_some();
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
                    let last = entries.last().and_then(|(id, _)| StreamId::parse(id));
                    if !self.deliver(entries, claiming).await {
                        break;
                    }
                    // Past the bound: what was read with it is delivered, the rest is left.
                    if let (Some(bound), Some(last)) = (drain_to, last)
                        && last >= bound
                    {
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
                        tracing::warn!(target: "infra_events", stream = %self.key, group = %self.group, failures, error = %infra_redis::Failure::from(error), "durable subscription cannot read; retrying");
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
        self.remove_from_group().await;
        self.reader.close().await;
    }

    /// The ID of the stream's last entry; `None` if it is empty.
    async fn last_entry(&self) -> std::result::Result<Option<StreamId>, FredError> {
        let reply: Value = self.reader.client().xrevrange(self.key.as_str(), "+", "-", Some(1)).await?;
        let id = into_array(reply).into_iter().next().and_then(|entry| into_array(entry).into_iter().next());
        Ok(id.and_then(|id| id.into_string()).and_then(|id| StreamId::parse(&id)))
    }

    /// Removes what the subscription created: its private group, or its consumer in a named
    /// group unless entries are still pending for it (they stay for the group to claim). A
    /// failure is logged: the leftover is harmless but visible in `XINFO`.
    async fn remove_from_group(&self) {
        let (key, group) = (self.key.as_str(), self.group.as_str());
        let client = self.reader.client();
        if self.private {
            if let Err(error) = client.xgroup_destroy::<Value, _, _>(key, group).await {
                tracing::warn!(target: "infra_events", stream = %key, group = %group, error = %infra_redis::Failure::from(error), "cannot remove the subscription's private consumer group");
            }
            return;
        }
        let args = vec![group, self.name.as_str()];
        match client.eval::<i64, _, _, _>(REMOVE_IDLE_CONSUMER, vec![key], args).await {
            Ok(1) => {}
            Ok(_) => {
                tracing::info!(target: "infra_events", stream = %key, group = %group, consumer = %self.name, "consumer kept in its group: entries are still pending for it, the group claims them after claim_after");
            }
            // The group is gone already: nothing left to remove.
            Err(error) if error.details().contains("NOGROUP") => {}
            Err(error) => {
                tracing::warn!(target: "infra_events", stream = %key, group = %group, consumer = %self.name, error = %infra_redis::Failure::from(error), "cannot remove the subscription's consumer from its group");
            }
        }
    }

    /// New entries for this consumer, waiting up to `block` for some if `wait`.
    async fn read(&self, wait: bool) -> std::result::Result<Vec<Entry>, FredError> {
        let (entries, last) = self.read_now().await?;
        if !entries.is_empty() || !wait {
            return Ok(entries);
        }
        // Nothing new: wait for an entry after the stream's last one without reading it for
        // the group (a blocking read cannot run in the script that counts trimmed entries).
        let block = u64::try_from(self.block.as_millis()).unwrap_or(250);
        let woken: Value = self.reader.client().xread(Some(1), Some(block), self.key.as_str(), last.as_str()).await?;
        if woken.is_null() {
            return Ok(Vec::new());
        }
        Ok(self.read_now().await?.0)
    }

    /// New entries for this consumer (without waiting), and the ID of the stream's last entry.
    async fn read_now(&self) -> std::result::Result<(Vec<Entry>, String), FredError> {
        let args = vec![self.group.clone(), self.name.clone(), BATCH.to_string()];
        let reply: Value = self.reader.client().eval(READ_NEW, vec![self.key.as_str()], args).await?;
        let mut reply = into_array(reply).into_iter();
        let lost = reply.next().and_then(|v| v.as_u64()).unwrap_or_default();
        let mut items = Vec::new();
        for stream in reply.next().map(into_array).unwrap_or_default() {
            // [key, entries]
            if let Some(list) = into_array(stream).into_iter().nth(1) {
                items.extend(into_array(list).into_iter().filter_map(item));
            }
        }
        let mut text = || reply.next().and_then(Value::into_string).unwrap_or_default();
        let (position, first, last) = (text(), text(), text());
        if lost > 0 {
            for _ in 0..lost {
                self.stats.add_trimmed();
            }
            tracing::error!(target: "infra_events", stream = %self.key, group = %self.group, trimmed = lost, total = self.stats.trimmed(), after = %position, before = %first, "entries trimmed from the stream before the group read them: lost (raise stream_max_len)");
        }
        let last = if last.is_empty() { "$".to_owned() } else { last };
        Ok((self.split_trimmed(items, Vec::new()).await, last))
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
        let items = reply.next().map(into_array).unwrap_or_default().into_iter().filter_map(item).collect();
        let trimmed = reply.next().map(into_array).unwrap_or_default().into_iter().filter_map(Value::into_string);
        Ok(self.split_trimmed(items, trimmed.collect()).await)
    }

    /// The entries of `items`. The deleted ones, and `trimmed` (already no longer pending),
    /// were trimmed from the stream before they were acknowledged: they are counted and logged
    /// as lost, and the deleted ones acknowledged so they stop being pending.
    async fn split_trimmed(&self, items: Vec<Item>, mut trimmed: Vec<String>) -> Vec<Entry> {
        let mut entries = Vec::with_capacity(items.len());
        let mut deleted = Vec::new();
        for item in items {
            match item {
                Item::Entry(entry) => entries.push(entry),
                Item::Deleted(id) => deleted.push(id),
            }
        }
        if !deleted.is_empty() {
            let acknowledged =
                self.reader.client().xack::<Value, _, _, _>(self.key.as_str(), self.group.as_str(), deleted.clone());
            if let Err(error) = acknowledged.await {
                // Reported again by the next claim, and counted again.
                tracing::warn!(target: "infra_events", stream = %self.key, group = %self.group, error = %infra_redis::Failure::from(error), "cannot acknowledge trimmed entries");
            }
            trimmed.append(&mut deleted);
        }
        if !trimmed.is_empty() {
            for _ in &trimmed {
                self.stats.add_trimmed();
            }
            let shown = trimmed.iter().take(LOGGED_IDS).map(String::as_str).collect::<Vec<_>>().join(",");
            tracing::error!(target: "infra_events", stream = %self.key, group = %self.group, trimmed = trimmed.len(), total = self.stats.trimmed(), ids = %shown, "entries trimmed from the stream before they were acknowledged: lost (raise stream_max_len)");
        }
        entries
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
            tracing::warn!(target: "infra_events", stream = %self.key, group = %self.group, error = %infra_redis::Failure::from(error), "cannot acknowledge events; they will be delivered again");
        }
        open
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicBool, Ordering},
        time::Duration,
    };

    use futures::StreamExt;
    use infra_config::RedisUrl;
    use infra_testkit::RedisServer;

    use crate::{
        EventBus, SubscribeOptions, Topic,
        redis::{DurableBus, DurableOptions},
    };

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
}
