//! The in-memory state a controller applies: one record per scope, and the effective state in
//! an atomic that `can_trade()` reads without a lock or any I/O.

use std::sync::{
    Mutex, PoisonError,
    atomic::{AtomicU8, Ordering},
};

use tokio::sync::watch;

use crate::{AuditRecord, EmergencyState, Scope, metrics::StateGauges};

/// The reason given while the store could not be read at start and `fail_closed` is set.
pub const STATE_UNAVAILABLE: &str = "state unavailable";

/// What a controller applies now, as its [`watch`](crate::EmergencyController::watch) receiver
/// and [`status`](crate::EmergencyController::status) report it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Status {
    /// The effective state: the strictest of the global scope, the bot's scope and, while the
    /// store could not be read at a fail-closed start, `HALT`.
    pub state: EmergencyState,
    /// The scope that imposes it (the global scope wins a tie; the bot's scope when nothing
    /// restricts trading).
    pub scope: Scope,
    /// Why: the reason of the transition that imposes it, [`STATE_UNAVAILABLE`], or empty.
    pub reason: String,
    /// The global scope's state as applied here.
    pub global: EmergencyState,
    /// The bot scope's state as applied here.
    pub bot: EmergencyState,
    /// Sequence of the last global transition applied here (0: none).
    pub global_seq: u64,
    /// Sequence of the last transition of the bot's scope applied here (0: none).
    pub bot_seq: u64,
    /// The store has not answered yet since the controller started.
    pub store_unavailable: bool,
}

/// One scope as applied here.
#[derive(Debug, Default)]
pub(crate) struct ScopeView {
    /// The latest record read from the store or committed here (`None`: the scope never moved).
    pub(crate) confirmed: Option<AuditRecord>,
    /// Whether `confirmed` comes from the store (false until the first successful read).
    pub(crate) known: bool,
    /// A stricter record announced on the bus, applied until a read of the store that started
    /// after it arrived (its epoch) or that reaches its sequence.
    pub(crate) provisional: Option<(AuditRecord, u64)>,
}

impl ScopeView {
    pub(crate) fn seq(&self) -> u64 {
        self.confirmed.as_ref().map_or(0, |r| r.seq)
    }

    pub(crate) fn confirmed_state(&self) -> EmergencyState {
        self.confirmed.as_ref().map_or(EmergencyState::Normal, |r| r.to)
    }

    /// The stricter of the confirmed and the provisional record.
    fn strictest(&self) -> Option<&AuditRecord> {
        match (&self.confirmed, self.provisional.as_ref().map(|(record, _)| record)) {
            (Some(c), Some(p)) => Some(if p.to > c.to { p } else { c }),
            (c, p) => c.as_ref().or(p),
        }
    }
}

/// Both scopes and the fail-closed flag.
#[derive(Debug, Default)]
pub(crate) struct Layers {
    pub(crate) global: ScopeView,
    pub(crate) bot: ScopeView,
    /// The store could not be read at start and `fail_closed` is set: HALT until it answers.
    pub(crate) unavailable: bool,
    /// The store has not answered yet (fail-open or fail-closed).
    pub(crate) never_read: bool,
    /// An escalation (halt, shutdown) the store failed to commit: applied here until it is
    /// committed (see `EmergencyController::halt`).
    pub(crate) pending: Option<AuditRecord>,
}

impl Layers {
    pub(crate) fn view(&self, scope: &Scope) -> &ScopeView {
        if scope.is_global() { &self.global } else { &self.bot }
    }

    pub(crate) fn view_mut(&mut self, scope: &Scope) -> &mut ScopeView {
        if scope.is_global() { &mut self.global } else { &mut self.bot }
    }

    fn status(&self, bot: &Scope) -> Status {
        let mut state = EmergencyState::Normal;
        let mut scope = bot.clone();
        let mut reason = String::new();
        let candidates = [
            (Scope::Global, self.global.strictest()),
            (bot.clone(), self.bot.strictest()),
            (self.pending.as_ref().map_or_else(|| bot.clone(), |r| r.scope.clone()), self.pending.as_ref()),
        ];
        for (candidate, record) in candidates {
            if let Some(record) = record
                && record.to > state
            {
                (state, scope, reason) = (record.to, candidate, record.reason.clone());
            }
        }
        if self.unavailable && EmergencyState::Halt > state {
            (state, scope, reason) = (EmergencyState::Halt, bot.clone(), STATE_UNAVAILABLE.to_owned());
        }
        let scope_state = |view: &ScopeView| view.strictest().map_or(EmergencyState::Normal, |r| r.to);
        Status {
            state,
            scope,
            reason,
            global: scope_state(&self.global),
            bot: scope_state(&self.bot),
            global_seq: self.global.seq(),
            bot_seq: self.bot.seq(),
            store_unavailable: self.never_read,
        }
    }
}

/// The layers behind a mutex, the effective state in an atomic, and the watch channel.
#[derive(Debug)]
pub(crate) struct Gate {
    effective: AtomicU8,
    layers: Mutex<Layers>,
    status: watch::Sender<Status>,
    bot: Scope,
    /// `infra_emergency_state{bot,state}`: follows the effective state.
    gauges: StateGauges,
}

impl Gate {
    /// A gate for `bot`; `unavailable`: start halted with [`STATE_UNAVAILABLE`]. `gauges`
    /// follow the effective state from now on.
    pub(crate) fn new(bot: Scope, unavailable: bool, gauges: StateGauges) -> Self {
        let layers = Layers { unavailable, never_read: true, ..Layers::default() };
        let status = layers.status(&bot);
        gauges.set(status.state);
        Self {
            effective: AtomicU8::new(status.state as u8),
            layers: Mutex::new(layers),
            status: watch::Sender::new(status),
            bot,
            gauges,
        }
    }

    /// The effective state: one atomic load.
    #[inline]
    pub(crate) fn state(&self) -> EmergencyState {
        EmergencyState::from_u8(self.effective.load(Ordering::Acquire))
    }

    /// Whether new orders may be sent: one atomic load and a compare.
    #[inline]
    pub(crate) fn can_trade(&self) -> bool {
        self.effective.load(Ordering::Acquire) <= EmergencyState::Alert as u8
    }

    /// Whether cancels and exits may be sent: one atomic load and a compare.
    #[inline]
    pub(crate) fn can_reduce(&self) -> bool {
        self.effective.load(Ordering::Acquire) <= EmergencyState::Halt as u8
    }

    /// The full status (takes the watch channel's read lock).
    pub(crate) fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver of the status.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// Reads the layers.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Layers) -> R) -> R {
        f(&self.layers.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Changes the layers, then publishes the new effective state (atomic and watch) before
    /// the lock is released, so concurrent updates publish in order. Returns `f`'s result and
    /// the effective state before and after.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Layers) -> R) -> (R, EmergencyState, EmergencyState) {
        let mut layers = self.layers.lock().unwrap_or_else(PoisonError::into_inner);
        let before = self.state();
        let result = f(&mut layers);
        let status = layers.status(&self.bot);
        let after = status.state;
        self.effective.store(after as u8, Ordering::Release);
        // Every change of the effective state passes here (commits, reads, bus messages), under
        // the lock, so the gauges change in the same order as the state.
        if after != before {
            self.gauges.set(after);
        }
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
        (result, before, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Source};

    fn record(scope: Scope, seq: u64, to: EmergencyState, reason: &str) -> AuditRecord {
        AuditRecord {
            seq,
            scope,
            from: EmergencyState::Normal,
            to,
            action: Action::Halt,
            source: Source::Manual,
            actor: "op".into(),
            reason: reason.into(),
            metrics: Default::default(),
            at_ms: 0,
            by_bot: "b".into(),
            host: "h".into(),
        }
    }

    #[test]
    fn the_stricter_scope_wins_and_global_wins_ties() {
        let bot = Scope::bot("b").unwrap();
        let gate = Gate::new(bot.clone(), false, StateGauges::noop());
        assert!(gate.can_trade() && gate.can_reduce());
        gate.update(|l| l.bot.confirmed = Some(record(bot.clone(), 1, EmergencyState::Alert, "near")));
        assert_eq!(
            (gate.state(), gate.status().scope, gate.status().reason),
            (EmergencyState::Alert, bot.clone(), "near".into())
        );
        assert!(gate.can_trade());
        gate.update(|l| l.global.confirmed = Some(record(Scope::Global, 1, EmergencyState::Halt, "outage")));
        assert!(!gate.can_trade() && gate.can_reduce());
        gate.update(|l| l.bot.provisional = Some((record(bot.clone(), 2, EmergencyState::Halt, "mine"), 1)));
        let status = gate.status();
        assert_eq!(
            (status.state, status.scope, status.reason.as_str()),
            (EmergencyState::Halt, Scope::Global, "outage")
        );
        assert_eq!(
            (status.global, status.bot, status.global_seq, status.bot_seq),
            (EmergencyState::Halt, EmergencyState::Halt, 1, 1)
        );
        let (_, before, after) =
            gate.update(|l| l.bot.confirmed = Some(record(bot.clone(), 3, EmergencyState::Shutdown, "stop")));
        assert_eq!((before, after), (EmergencyState::Halt, EmergencyState::Shutdown));
        assert!(!gate.can_reduce());
    }

    #[test]
    fn fail_closed_start_halts_with_the_reason_until_cleared() {
        let bot = Scope::bot("b").unwrap();
        let gate = Gate::new(bot.clone(), true, StateGauges::noop());
        let mut watch = gate.subscribe();
        let status = gate.status();
        assert_eq!(
            (status.state, status.scope, status.reason.as_str()),
            (EmergencyState::Halt, bot, STATE_UNAVAILABLE)
        );
        assert!(status.store_unavailable);
        gate.update(|l| (l.unavailable, l.never_read) = (false, false));
        assert!(watch.has_changed().unwrap());
        assert_eq!(watch.borrow_and_update().state, EmergencyState::Normal);
        assert!(gate.can_trade());
    }
}
