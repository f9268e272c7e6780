//! The shared state behind a breaker: the state word (state and generation, so a transition is
//! one compare-and-swap), admission while not closed, outcome recording, transitions and the
//! open → half-open timer.

use std::sync::{
    Weak,
    atomic::{AtomicU32, AtomicU64, Ordering},
};

use tokio::{sync::broadcast, time::Instant};

use super::{
    BreakerSettings, BreakerState, StateChange,
    permit::{PermitKind, Ticket},
    window::Window,
};
use crate::{ReopensAt, ResilienceError, counter::StripedCounter, instruments::BreakerInstruments};

/// What clones of one breaker share.
pub(super) struct Inner {
    pub(super) name: &'static str,
    pub(super) settings: BreakerSettings,
    /// The state (low 8 bits) and a generation bumped on every transition (the rest), in one
    /// word so that a transition is one compare-and-swap and a call reads one atomic.
    /// Outcomes of calls admitted in an earlier generation are ignored.
    pub(super) word: AtomicU64,
    pub(super) consecutive: AtomicU32,
    pub(super) window: Window,
    /// Nanoseconds after `epoch` when the open state ends.
    pub(super) open_until: AtomicU64,
    /// The generation of the open state whose timer is armed: its rejections need no clock.
    pub(super) timer_armed: AtomicU64,
    /// Half-open bookkeeping, each tagged with the low 32 bits of its generation (high half):
    /// probe slots left, and probes that succeeded.
    pub(super) probes_left: AtomicU64,
    pub(super) probe_successes: AtomicU64,
    pub(super) epoch: Instant,
    pub(super) failures: AtomicU64,
    pub(super) rejections: StripedCounter,
    pub(super) cancelled: AtomicU64,
    pub(super) changes: broadcast::Sender<StateChange>,
    pub(super) instruments: BreakerInstruments,
    pub(super) this: Weak<Inner>,
}

#[inline]
pub(super) fn pack(generation: u64, state: BreakerState) -> u64 {
    (generation << 8) | state as u64
}

#[inline]
pub(super) fn unpack(word: u64) -> (u64, BreakerState) {
    (word >> 8, BreakerState::from_u8((word & 0xff) as u8))
}

/// A generation-tagged count: `(tag, count)` in one word.
#[inline]
pub(super) fn tagged(generation: u64, count: u32) -> u64 {
    ((generation & 0xffff_ffff) << 32) | u64::from(count)
}

#[inline]
pub(super) fn untag(word: u64) -> (u64, u32) {
    (word >> 32, (word & 0xffff_ffff) as u32)
}

impl Inner {
    pub(super) fn generation(&self) -> u64 {
        unpack(self.word.load(Ordering::Acquire)).0
    }

    #[inline(always)]
    pub(super) fn ticket(&self, kind: PermitKind, generation: u64) -> Ticket {
        let started = match (kind, self.settings.slow_call_threshold) {
            (PermitKind::Closed | PermitKind::Probe, Some(_)) => self.nanos_since_epoch() + 1,
            _ => 0,
        };
        Ticket { generation, kind, started }
    }

    #[inline]
    pub(super) fn nanos_since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    #[inline]
    pub(super) fn reopens_at(&self) -> ReopensAt {
        ReopensAt::new(self.epoch, self.open_until.load(Ordering::Acquire))
    }

    pub(super) fn open_elapsed(&self) -> bool {
        Instant::now() >= self.reopens_at().instant()
    }

    /// Open, half-open or forced open.
    #[cold]
    pub(super) fn admit_slow<E>(&self) -> Result<Ticket, ResilienceError<E>> {
        loop {
            let (generation, state) = unpack(self.word.load(Ordering::Acquire));
            match state {
                BreakerState::Closed => return Ok(self.ticket(PermitKind::Closed, generation)),
                BreakerState::ForcedClosed => return Ok(self.ticket(PermitKind::Untracked, generation)),
                BreakerState::ForcedOpen => return Err(self.reject(None)),
                BreakerState::Open => {
                    // Normally a timer moves it to half-open, so a rejection reads no clock;
                    // without a runtime, the first call after the open duration does.
                    if self.timer_armed.load(Ordering::Acquire) == generation || !self.open_elapsed() {
                        return Err(self.reject(Some(self.reopens_at())));
                    }
                    self.transition(generation, BreakerState::Open, BreakerState::HalfOpen);
                }
                BreakerState::HalfOpen => {
                    let tag = generation & 0xffff_ffff;
                    let quota = self.settings.half_open_max_calls.max(1);
                    let taken = self.probes_left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                        match untag(word) {
                            // The first probe of this half-open period finds the slots unset.
                            (owner, _) if owner != tag => Some(tagged(generation, quota - 1)),
                            (_, 0) => None,
                            (_, left) => Some(tagged(generation, left - 1)),
                        }
                    });
                    if taken.is_err() {
                        return Err(self.reject(Some(self.reopens_at())));
                    }
                    if self.generation() == generation {
                        return Ok(self.ticket(PermitKind::Probe, generation));
                    }
                    // The breaker moved on meanwhile; that slot belongs to a finished period.
                }
            }
        }
    }

    #[inline]
    pub(super) fn reject<E>(&self, reopens: Option<ReopensAt>) -> ResilienceError<E> {
        self.rejections.add();
        self.instruments.not_permitted.increment(1);
        ResilienceError::CircuitOpen { breaker: self.name, reopens, attempts: 1 }
    }

    #[inline]
    pub(super) fn record(&self, kind: PermitKind, generation: u64, success: bool) {
        match kind {
            PermitKind::Closed if success => {
                self.instruments.successful.increment(1);
                // Nothing else is written while healthy (see `Window`).
                if self.consecutive.load(Ordering::Relaxed) != 0 {
                    self.consecutive.store(0, Ordering::Relaxed);
                }
                self.window.record(false);
            }
            PermitKind::Closed => self.closed_failure(generation),
            PermitKind::Probe => self.probe_outcome(generation, success),
            // Forced closed: the breaker counts nothing, but the calls are still calls.
            PermitKind::Untracked if success => self.instruments.successful.increment(1),
            PermitKind::Untracked => self.instruments.failed.increment(1),
            PermitKind::Done => {}
        }
    }

    #[cold]
    fn closed_failure(&self, generation: u64) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.instruments.failed.increment(1);
        if self.generation() != generation {
            return;
        }
        let consecutive = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
        let (failures, calls) = self.window.record(true);
        let settings = &self.settings;
        let rate_tripped = calls >= settings.minimum_calls.max(1)
            && f64::from(failures) / f64::from(calls.max(1)) >= settings.failure_rate_threshold;
        if consecutive >= settings.failure_threshold.max(1) || rate_tripped {
            self.open(generation, BreakerState::Closed);
        }
    }

    #[cold]
    fn probe_outcome(&self, generation: u64, success: bool) {
        if success {
            self.instruments.successful.increment(1);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
            self.instruments.failed.increment(1);
        }
        if self.generation() != generation {
            return;
        }
        if !success {
            self.open(generation, BreakerState::HalfOpen);
            return;
        }
        let tag = generation & 0xffff_ffff;
        let before = self.probe_successes.fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| match untag(word) {
            (owner, count) if owner == tag => Some(tagged(generation, count + 1)),
            _ => Some(tagged(generation, 1)),
        });
        let succeeded = match before.map(untag) {
            Ok((owner, count)) if owner == tag => count + 1,
            _ => 1,
        };
        if succeeded >= self.settings.half_open_max_calls.max(1) {
            // Counts restart empty; a probe success is not history of the closed state.
            self.window.clear();
            self.consecutive.store(0, Ordering::Release);
            self.transition(generation, BreakerState::HalfOpen, BreakerState::Closed);
        }
    }

    /// `from` → open, for the open duration; arms the timer that lets probes through.
    fn open(&self, generation: u64, from: BreakerState) {
        let until = Instant::now() + self.settings.open_duration;
        let nanos = u64::try_from(until.duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        // Written before the transition publishes the state, so rejections see the new time.
        self.open_until.store(nanos, Ordering::Release);
        let Some(opened) = self.transition(generation, from, BreakerState::Open) else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.timer_armed.store(opened, Ordering::Release);
            let this = self.this.clone();
            runtime.spawn(async move {
                tokio::time::sleep_until(until).await;
                if let Some(inner) = this.upgrade() {
                    inner.transition(opened, BreakerState::Open, BreakerState::HalfOpen);
                }
            });
        }
    }

    /// `from` → `to` if the breaker is still in `from` at `generation`; returns the new
    /// generation if it moved.
    fn transition(&self, generation: u64, from: BreakerState, to: BreakerState) -> Option<u64> {
        let next = generation + 1;
        self.word.compare_exchange(pack(generation, from), pack(next, to), Ordering::AcqRel, Ordering::Acquire).ok()?;
        self.entered(from, to);
        Some(next)
    }

    /// Moves to `to` whatever the state (operator actions).
    pub(super) fn transition_any(&self, to: BreakerState) {
        let before = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| Some(pack(unpack(word).0 + 1, to)))
            .unwrap_or_else(|word| word);
        self.entered(unpack(before).1, to);
    }

    fn entered(&self, from: BreakerState, to: BreakerState) {
        match to {
            BreakerState::Open | BreakerState::ForcedOpen => {
                tracing::warn!(target: "infra_resilience", breaker = %self.name, from = %from, to = %to, "circuit breaker opened");
            }
            _ => {
                tracing::info!(target: "infra_resilience", breaker = %self.name, from = %from, to = %to, "circuit breaker state changed");
            }
        }
        self.instruments.transitioned(from, to, || unpack(self.word.load(Ordering::Acquire)).1);
        let _ = self.changes.send(StateChange { breaker: self.name, from, to });
    }
}
