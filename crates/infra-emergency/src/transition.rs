//! How a transition is decided, committed, applied and published.

use std::sync::{Arc, PoisonError, atomic::Ordering};

use crate::{
    Action, AuditRecord, EmergencyError, EmergencyState, Scope,
    controller::{Inner, Outcome, Request},
    notify::EmergencyEvent,
    table::{self, Current, Decision},
};

/// When a read of the store started: the bus epoch, and the sequence of the scope known here.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadAt {
    pub(crate) epoch: u64,
    pub(crate) hint: u64,
}

/// Attempts of one request when other writers keep claiming the next sequence first.
const MAX_ATTEMPTS: u32 = 32;

impl Inner {
    /// Decides `request` against the scope's latest state, commits it to the store (claiming
    /// the next sequence of the scope's log), applies it here, then publishes it.
    pub(crate) async fn transition(self: &Arc<Self>, request: Request) -> Result<Outcome, EmergencyError> {
        request.validate()?;
        if self.closed.load(Ordering::SeqCst) {
            return Err(EmergencyError::Closed);
        }
        let scope = request.scope.clone();
        let tracked = self.tracks(&scope);
        let _writer = match tracked {
            Some(index) => Some(self.writers[index].lock().await),
            None => None,
        };
        let mut must_read = false;
        for _ in 0..MAX_ATTEMPTS {
            let known = tracked.is_some() && !must_read && self.gate.read(|l| l.view(&scope).known);
            let current = if known {
                self.gate.read(|l| l.view(&scope).confirmed.clone())
            } else {
                match self.read_scope(&scope, tracked.is_some()).await {
                    Ok(current) => current,
                    Err(error) => return Err(self.failed(request, error)),
                }
            };
            let now_ms = self.clock.now_ms();
            let state = current.as_ref().map_or(EmergencyState::Normal, |r| r.to);
            let facts = Current {
                state,
                source: current.as_ref().map(|r| r.source),
                at_ms: current.as_ref().map_or(0, |r| r.at_ms),
            };
            let cooldown = self.options.resume_cooldown;
            let to = match table::decide(facts, request.action, request.source, now_ms, cooldown) {
                Decision::Move(to) => to,
                Decision::Unchanged(why) => return Ok(Outcome::Unchanged { scope, state, why }),
                Decision::Refused(why) => {
                    return Err(EmergencyError::TransitionRefused { scope, from: state, action: request.action, why });
                }
                Decision::SourceNotAllowed => {
                    return Err(EmergencyError::SourceNotAllowed {
                        scope,
                        from: state,
                        action: request.action,
                        origin: request.source,
                    });
                }
                Decision::Cooldown(remaining) => {
                    return Err(EmergencyError::CooldownActive { scope, cooldown, remaining });
                }
            };
            let record = AuditRecord {
                seq: current.as_ref().map_or(0, |r| r.seq) + 1,
                scope: scope.clone(),
                from: state,
                to,
                action: request.action,
                source: request.source,
                actor: request.actor.clone(),
                reason: request.reason.clone(),
                metrics: request.metrics.clone(),
                at_ms: now_ms,
                by_bot: self.bot_id().to_owned(),
                host: self.options.host.clone(),
            };
            match self.log.claim(&record).await {
                Ok(true) => {
                    self.committed(&record).await;
                    return Ok(Outcome::Applied(record));
                }
                // Another writer holds that sequence: our view was stale; read and decide anew.
                Ok(false) => must_read = true,
                Err(error) => return Err(self.failed(request, error)),
            }
        }
        Err(EmergencyError::Contended { scope, attempts: MAX_ATTEMPTS })
    }

    /// The latest record of `scope` from the store, applied here when `tracked` (the view then
    /// answers, so a store that lost records does not roll this controller back).
    async fn read_scope(&self, scope: &Scope, tracked: bool) -> Result<Option<AuditRecord>, EmergencyError> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let hint = if tracked { self.gate.read(|l| l.view(scope).seq()) } else { 0 };
        let record = self.log.read(&[(scope, hint)]).await?.pop().flatten();
        if !tracked {
            return Ok(record);
        }
        if let Some(lost) = self.apply(scope, record, Some(ReadAt { epoch, hint })) {
            self.heal(&lost).await;
        }
        Ok(self.gate.read(|l| l.view(scope).confirmed.clone()))
    }

    /// After the commit: apply here, publish, then leave the pointer and the heartbeat to the
    /// background task.
    async fn committed(&self, record: &AuditRecord) {
        if self.tracks(&record.scope).is_some() {
            self.apply(&record.scope, Some(record.clone()), None);
        } else {
            // Not applied here (another bot's scope): counted as committed; `apply` counts the rest.
            self.metrics.transition(record);
        }
        let payload = serde_json::to_value(record).unwrap_or(serde_json::Value::Null);
        if let Err(error) = self.bus.publish(&self.options.channel, payload).await {
            tracing::warn!(target: "infra_emergency", scope = %record.scope, seq = record.seq, %error,
                "transition committed but not published: other controllers apply it at their next resync");
        }
        // Off the propagation path: the background task advances the pointer (so readers stay
        // at one round trip) and writes the heartbeat on its next tick.
        self.housekeeping.store(true, Ordering::SeqCst);
    }

    /// Applies `record` (the latest of `scope`: read from the store, `read` telling the epoch
    /// and the sequence this controller knew when the read started, or committed here when
    /// `None`) and emits its event when it is new. Returns this controller's own latest record
    /// when the store is behind what it knew before reading (the store lost data); a commit
    /// made here while the read was in flight is not mistaken for that.
    pub(crate) fn apply(
        &self,
        scope: &Scope,
        record: Option<AuditRecord>,
        read: Option<ReadAt>,
    ) -> Option<AuditRecord> {
        let ((new, lost, baseline), before, after) = self.gate.update(|layers| {
            let view = layers.view_mut(scope);
            // The first read of a scope restores what was committed before this controller ran.
            let baseline = read.is_some() && !view.known;
            let (current, seq) = (view.seq(), record.as_ref().map_or(0, |r| r.seq));
            if let Some((provisional, epoch)) = &view.provisional
                && (seq >= provisional.seq || read.is_some_and(|r| r.epoch >= *epoch))
            {
                view.provisional = None;
            }
            let mut outcome = (None, None);
            if seq > current {
                view.confirmed = record;
                outcome.0 = view.confirmed.clone();
            } else if read.is_some_and(|r| seq < r.hint) && view.known {
                outcome.1 = view.confirmed.clone();
            }
            if read.is_some() {
                view.known = true;
            }
            (outcome.0, outcome.1, baseline)
        });
        if let Some(record) = new {
            // Each record of a tracked scope becomes new here once (sequences only grow), whether
            // committed here, read from the store or confirmed after a bus message; a restored
            // one is not a transition of this run.
            if !baseline {
                self.metrics.transition(&record);
            }
            let _ = self.events.send(EmergencyEvent::Transition { record, previous: before, effective: after });
        }
        lost
    }

    /// Writes back `record`, this controller's latest of its scope, to a store that no longer
    /// has it (a Redis restarted without persistence): a lost store never lifts a halt.
    pub(crate) async fn heal(&self, record: &AuditRecord) {
        tracing::warn!(target: "infra_emergency", scope = %record.scope, seq = record.seq,
            "the store lost emergency records: writing back the latest one this controller applied");
        let healed = match self.log.claim(record).await {
            Ok(_) => self.log.advance_pointer(record).await,
            Err(error) => Err(error),
        };
        if let Err(error) = healed {
            tracing::warn!(target: "infra_emergency", scope = %record.scope, %error, "writing back a lost record failed");
        }
    }

    /// A request the store failed: an escalation of a scope this controller applies is applied
    /// here anyway and queued for commit; the error is returned either way.
    fn failed(&self, request: Request, error: EmergencyError) -> EmergencyError {
        let escalation = matches!(request.action, Action::Halt | Action::Shutdown);
        if escalation && self.tracks(&request.scope).is_some() && !self.closed.load(Ordering::SeqCst) {
            tracing::error!(target: "infra_emergency", scope = %request.scope, action = %request.action, %error,
                "the store failed to commit an escalation: applied here now, committed once the store answers");
            let record = AuditRecord {
                seq: 0,
                scope: request.scope.clone(),
                from: EmergencyState::Normal,
                to: request.action.target(),
                action: request.action,
                source: request.source,
                actor: request.actor.clone(),
                reason: format!("{} (not committed yet: the store failed)", request.reason),
                metrics: request.metrics.clone(),
                at_ms: self.clock.now_ms(),
                by_bot: self.bot_id().to_owned(),
                host: self.options.host.clone(),
            };
            self.gate.update(|layers| {
                if layers.pending.as_ref().is_none_or(|p| record.to > p.to) {
                    layers.pending = Some(record);
                }
            });
            self.pending.lock().unwrap_or_else(PoisonError::into_inner).push(request);
        }
        error
    }

    /// Commits the escalations the store failed earlier; clears the local stand-in once none
    /// is left.
    pub(crate) async fn retry_pending(self: &Arc<Self>) {
        let requests = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        for request in requests {
            let (scope, action) = (request.scope.clone(), request.action);
            match self.transition(request).await {
                Ok(_) | Err(EmergencyError::Store { .. }) => {}
                Err(error) => {
                    tracing::warn!(target: "infra_emergency", %scope, %action, %error, "a queued escalation was dropped");
                }
            }
        }
        if self.pending.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
            self.gate.update(|layers| layers.pending = None);
        }
    }
}
