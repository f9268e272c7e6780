//! What keeps a controller in sync: the bus subscription, the re-read of the store, the
//! heartbeat, the fleet view.

use std::{
    sync::{Arc, PoisonError, atomic::Ordering},
    time::Duration,
};

use infra_events::{BoxError, Envelope, SubscribeOptions, Topic};
use tokio::{task::JoinHandle, time::Instant};

use crate::{
    AuditRecord, EmergencyError, Scope,
    controller::Inner,
    fleet::{FleetMember, Heartbeat},
    notify::EmergencyEvent,
    transition::ReadAt,
};

/// How often the task looks at the subscription's gap and loss counters.
const GAP_POLL: Duration = Duration::from_millis(100);

/// Starts the background task of `inner`: it holds only a weak reference, so dropping the
/// last controller (or cancelling) ends it.
pub(crate) fn spawn(inner: &Arc<Inner>) -> JoinHandle<()> {
    let weak = Arc::downgrade(inner);
    let cancel = inner.cancel.clone();
    let wake = inner.wake.clone();
    let period = inner.options.resync_interval;
    inner.runtime.spawn(async move {
        let mut next_resync = Instant::now() + period;
        let mut losses_seen = 0;
        loop {
            let woken = tokio::select! {
                () = cancel.cancelled() => return,
                () = wake.notified() => true,
                () = tokio::time::sleep(GAP_POLL.min(period)) => false,
            };
            let Some(inner) = weak.upgrade() else { return };
            let losses = inner.losses();
            let lost = losses != losses_seen;
            losses_seen = losses;
            let due = Instant::now() >= next_resync;
            if due {
                next_resync = Instant::now() + period;
                inner.ensure_subscribed(true).await;
            }
            let housekeeping = inner.housekeeping.swap(false, Ordering::SeqCst);
            if woken || lost || due || housekeeping {
                if lost {
                    tracing::info!(target: "infra_emergency", "the bus reported a gap: reading the emergency state again");
                }
                if woken {
                    // A stricter message is already applied; let the tasks it woke (an order
                    // path waiting on the watch) run before this confirming read.
                    tokio::task::yield_now().await;
                }
                // Failures are logged by `refresh`; the next round tries again.
                let _ = inner.refresh().await;
            }
        }
    })
}

impl Inner {
    /// Gaps and losses of the bus subscription so far: any change means a message may have
    /// been missed.
    fn losses(&self) -> u64 {
        let subscription = self.subscription.lock().unwrap_or_else(PoisonError::into_inner);
        subscription.as_ref().map_or(0, |s| s.stats().gaps() + s.stats().dropped() + s.stats().task_failures())
    }

    /// Subscribes to the transition channel unless subscribed; with `resync`, then reads the
    /// store at once (what was published before the subscription took effect).
    pub(crate) async fn ensure_subscribed(self: &Arc<Self>, resync: bool) {
        if self.subscription.lock().unwrap_or_else(PoisonError::into_inner).is_some() {
            return;
        }
        let weak = Arc::downgrade(self);
        let handler = move |event: Envelope| {
            if let Some(inner) = weak.upgrade() {
                inner.on_message(&event);
            }
            async { Ok::<(), BoxError>(()) }
        };
        let topic = Topic::Channel(self.options.channel.clone());
        match self.bus.subscribe(topic, Arc::new(handler), SubscribeOptions::default()).await {
            Ok(subscription) => {
                *self.subscription.lock().unwrap_or_else(PoisonError::into_inner) = Some(subscription);
                if resync {
                    self.wake.notify_one();
                }
            }
            Err(error) => {
                tracing::warn!(target: "infra_emergency", %error,
                    "cannot subscribe to emergency transitions yet: relying on the periodic re-read");
            }
        }
    }

    /// A transition announced on the bus: a stricter one of a scope this controller applies
    /// takes effect at once (provisionally); the store is read again either way, and decides.
    fn on_message(&self, event: &Envelope) {
        let Ok(record) = event.decode::<AuditRecord>() else {
            tracing::debug!(target: "infra_emergency", source = %event.source, "ignoring a message that is not a transition");
            return;
        };
        if self.tracks(&record.scope).is_none() {
            return;
        }
        // Already applied (this controller's own transitions come back too): nothing to do.
        if record.seq <= self.gate.read(|layers| layers.view(&record.scope).seq()) {
            return;
        }
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.gate.update(|layers| {
            let view = layers.view_mut(&record.scope);
            let newer = record.seq > view.seq() && view.provisional.as_ref().is_none_or(|(p, _)| record.seq > p.seq);
            if newer && record.to > view.confirmed_state() {
                view.provisional = Some((record, epoch));
            }
        });
        self.wake.notify_one();
    }

    /// Reads both scopes, applies them, writes back what a store lost, advances pointers that
    /// lag behind their log, commits queued escalations and writes the heartbeat.
    pub(crate) async fn refresh(self: &Arc<Self>) -> Result<(), EmergencyError> {
        // This does the housekeeping a commit left (a later commit sets the flag again).
        self.housekeeping.store(false, Ordering::SeqCst);
        let epoch = self.epoch.load(Ordering::SeqCst);
        let (global_seq, bot_seq) = self.gate.read(|l| (l.global.seq(), l.bot.seq()));
        let records = match self.log.read_with_pointers(&[(&Scope::Global, global_seq), (&self.bot, bot_seq)]).await {
            Ok(records) => records,
            Err(error) => {
                tracing::debug!(target: "infra_emergency", %error, "reading the emergency state failed");
                return Err(error);
            }
        };
        let scopes = [Scope::Global, self.bot.clone()];
        let mut lost = Vec::new();
        let mut lagging = Vec::new();
        for ((scope, hint), (record, pointer)) in scopes.iter().zip([global_seq, bot_seq]).zip(records) {
            if let Some(record) = record.as_ref().filter(|r| r.seq > pointer) {
                lagging.push(record.clone());
            }
            lost.extend(self.apply(scope, record, Some(ReadAt { epoch, hint })));
        }
        let (_, previous, effective) = self.gate.update(|layers| {
            layers.unavailable = false;
            layers.never_read = false;
        });
        if self.unavailable_reported.swap(false, Ordering::SeqCst) {
            tracing::info!(target: "infra_emergency", state = %effective, "the emergency state store answers again");
            let _ = self.events.send(EmergencyEvent::StoreRecovered { previous, effective });
        }
        for record in &lost {
            self.heal(record).await;
        }
        for record in &lagging {
            if let Err(error) = self.log.advance_pointer(record).await {
                tracing::debug!(target: "infra_emergency", scope = %record.scope, %error, "advancing a lagging state pointer failed");
            }
        }
        self.retry_pending().await;
        self.beat().await;
        Ok(())
    }

    /// The store could not be read at start.
    pub(crate) fn report_unavailable(&self, error: &EmergencyError) {
        let effective = self.gate.state();
        if self.config.fail_closed {
            tracing::error!(target: "infra_emergency", %error, "the emergency state store cannot be read: halted until it answers (fail-closed)");
        } else {
            tracing::warn!(target: "infra_emergency", %error, "the emergency state store cannot be read: trading on NORMAL until it answers (fail-open)");
        }
        self.unavailable_reported.store(true, Ordering::SeqCst);
        let _ = self.events.send(EmergencyEvent::StoreUnavailable { effective });
    }

    /// Writes this controller's heartbeat.
    pub(crate) async fn beat(&self) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let status = self.gate.status();
        let (limits, limit_use) = {
            let tracks = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
            let limits = tracks.iter().filter_map(|(name, track)| Some((name.clone(), track.utilization?))).collect();
            let limit_use = tracks.iter().filter_map(|(name, track)| Some((name.clone(), track.last?))).collect();
            (limits, limit_use)
        };
        let heartbeat = Heartbeat {
            bot: self.bot_id().to_owned(),
            state: status.state,
            global_seq: status.global_seq,
            bot_seq: status.bot_seq,
            store_unavailable: status.store_unavailable,
            host: self.options.host.clone(),
            pid: std::process::id(),
            version: self.options.version.clone(),
            at_ms: self.clock.now_ms(),
            limits,
            started_ms: crate::fleet::process_started_ms(),
            limit_use,
        };
        match self.log.beat(&heartbeat, self.options.heartbeat_ttl).await {
            Ok(()) => self.metrics.heartbeat.set(crate::metrics::seconds(heartbeat.at_ms)),
            Err(error) => tracing::debug!(target: "infra_emergency", %error, "writing the heartbeat failed"),
        }
    }

    /// The fleet as the store shows it.
    pub(crate) async fn fleet(&self) -> Result<Vec<FleetMember>, EmergencyError> {
        let hint = self.gate.read(|l| l.global.seq());
        let latest_global = self.log.read(&[(&Scope::Global, hint)]).await?.pop().flatten().map_or(0, |r| r.seq);
        let heartbeats = self.log.heartbeats().await?;
        let now_ms = self.clock.now_ms();
        let mut fleet: Vec<FleetMember> = heartbeats
            .into_iter()
            .map(|heartbeat| FleetMember {
                age: Duration::from_millis(now_ms.saturating_sub(heartbeat.at_ms)),
                applied_latest_global: heartbeat.global_seq >= latest_global,
                heartbeat,
            })
            .collect();
        fleet.sort_by(|a, b| a.heartbeat.bot.cmp(&b.heartbeat.bot));
        Ok(fleet)
    }
}
