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
    entries::{Entry, entry, envelope, into_array},
};
use crate::{Envelope, Handler, Position, Result, SubscriptionStats, bus::handle_event, redis::command_error};

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
/// each time (up to 1.6 s), as failed reads do.
pub(super) async fn supervise(consumer: Arc<Consumer>, stop: watch::Receiver<bool>) {
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
