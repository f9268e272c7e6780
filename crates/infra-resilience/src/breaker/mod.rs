//! The circuit breaker: stop calling a dependency that keeps failing, probe it, resume.

mod registry;
mod window;

use std::{
    fmt,
    future::Future,
    sync::{
        Arc, Weak,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use infra_config::BreakerConfig;
pub use registry::BreakerRegistry;
use tokio::{sync::broadcast, time::Instant};
use window::Window;

use crate::{ReopensAt, ResilienceError, counter::StripedCounter};

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go through; outcomes are counted.
    Closed,
    /// Calls are rejected until the open duration has passed.
    Open,
    /// A limited number of probe calls go through; the others are rejected.
    HalfOpen,
    /// An operator opened it: every call is rejected until it is reset.
    ForcedOpen,
    /// An operator closed it: every call goes through and nothing is counted until it is reset.
    ForcedClosed,
}

impl BreakerState {
    const ALL: [Self; 5] = [Self::Closed, Self::Open, Self::HalfOpen, Self::ForcedOpen, Self::ForcedClosed];

    fn from_u8(value: u8) -> Self {
        Self::ALL.get(usize::from(value)).copied().unwrap_or(Self::Closed)
    }

    /// Lowercase name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::ForcedClosed => "forced_closed",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a breaker opens and how it recovers. [`BreakerSettings::from_config`] reads
/// [`BreakerConfig`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerSettings {
    /// Consecutive failures that open it.
    pub failure_threshold: u32,
    /// Failure rate over the window that opens it, in `(0, 1]`.
    pub failure_rate_threshold: f64,
    /// The window: the last this many calls.
    pub window_size: u32,
    /// Calls the window must hold before the rate counts.
    pub minimum_calls: u32,
    /// How long it stays open before letting probes through.
    pub open_duration: Duration,
    /// Probe calls let through while half-open; all must succeed to close it.
    pub half_open_max_calls: u32,
    /// A successful call slower than this counts as a failure (`None`: duration is ignored).
    pub slow_call_threshold: Option<Duration>,
}

impl Default for BreakerSettings {
    /// 5 consecutive failures, or 50% of the last 20 calls once 10 were seen; open for 30 s;
    /// 1 probe; no slow-call rule.
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            failure_rate_threshold: 0.5,
            window_size: 20,
            minimum_calls: 10,
            open_duration: Duration::from_secs(30),
            half_open_max_calls: 1,
            slow_call_threshold: None,
        }
    }
}

impl BreakerSettings {
    /// The settings of `config`.
    pub fn from_config(config: &BreakerConfig) -> Self {
        Self {
            failure_threshold: config.failure_threshold,
            failure_rate_threshold: config.failure_rate_threshold,
            window_size: config.window_size,
            minimum_calls: config.minimum_calls,
            open_duration: config.open_duration,
            half_open_max_calls: config.half_open_max_calls,
            slow_call_threshold: None,
        }
    }

    /// Sets [`BreakerSettings::failure_threshold`].
    #[must_use]
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// Sets the failure-rate rule: `rate` of the last `window_size` calls, once `minimum_calls`
    /// were seen.
    #[must_use]
    pub fn failure_rate(mut self, rate: f64, window_size: u32, minimum_calls: u32) -> Self {
        self.failure_rate_threshold = rate;
        self.window_size = window_size;
        self.minimum_calls = minimum_calls;
        self
    }

    /// Sets [`BreakerSettings::open_duration`].
    #[must_use]
    pub fn open_duration(mut self, duration: Duration) -> Self {
        self.open_duration = duration;
        self
    }

    /// Sets [`BreakerSettings::half_open_max_calls`].
    #[must_use]
    pub fn half_open_max_calls(mut self, calls: u32) -> Self {
        self.half_open_max_calls = calls;
        self
    }

    /// Sets [`BreakerSettings::slow_call_threshold`].
    #[must_use]
    pub fn slow_call_threshold(mut self, threshold: Duration) -> Self {
        self.slow_call_threshold = Some(threshold);
        self
    }
}

/// A state change, as [`CircuitBreaker::subscribe`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// The breaker's name.
    pub breaker: &'static str,
    /// The state it left.
    pub from: BreakerState,
    /// The state it entered.
    pub to: BreakerState,
}

/// A snapshot of a breaker's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerMetrics {
    /// The breaker's name.
    pub name: &'static str,
    /// Its state now.
    pub state: BreakerState,
    /// Failed calls (slow calls included) since it was made.
    pub failures: u64,
    /// Calls rejected without running.
    pub rejections: u64,
    /// Calls whose future was dropped before finishing (counted as neither).
    pub cancelled: u64,
    /// Failures among the calls in the window.
    pub window_failures: u32,
    /// Calls in the window (its successes are `window_calls - window_failures`). Successes are
    /// not counted in total: that would cost every call a shared write.
    pub window_calls: u32,
    /// `window_failures / window_calls` (0 for an empty window).
    pub failure_rate: f64,
    /// Failures in a row right now.
    pub consecutive_failures: u32,
}

/// A named circuit breaker; clones share it.
///
/// The closed path takes no lock, allocates nothing and, while calls succeed, writes nothing
/// shared. Open → half-open happens on a tokio timer when opened inside a runtime (so a
/// rejection reads no clock), otherwise at the first call after the open duration. A call whose future is dropped before
/// it finishes counts as neither success nor failure and frees its probe slot.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use infra_resilience::{BreakerSettings, CircuitBreaker, ResilienceError};
///
/// let breaker = CircuitBreaker::new("exchange", BreakerSettings::default().failure_threshold(2));
/// for _ in 0..2 {
///     let _ = breaker.call(async { Err::<(), _>("503") }).await;
/// }
/// let rejected = breaker.call(async { Ok::<_, &str>(1) }).await;
/// assert!(matches!(rejected, Err(ResilienceError::CircuitOpen { .. })));
/// # }
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

struct Inner {
    name: &'static str,
    settings: BreakerSettings,
    /// The state (low 8 bits) and a generation bumped on every transition (the rest), in one
    /// word so that a transition is one compare-and-swap and a call reads one atomic.
    /// Outcomes of calls admitted in an earlier generation are ignored.
    word: AtomicU64,
    consecutive: AtomicU32,
    window: Window,
    /// Nanoseconds after `epoch` when the open state ends.
    open_until: AtomicU64,
    /// The generation of the open state whose timer is armed: its rejections need no clock.
    timer_armed: AtomicU64,
    /// Half-open bookkeeping, each tagged with the low 32 bits of its generation (high half):
    /// probe slots left, and probes that succeeded.
    probes_left: AtomicU64,
    probe_successes: AtomicU64,
    epoch: Instant,
    failures: AtomicU64,
    rejections: StripedCounter,
    cancelled: AtomicU64,
    changes: broadcast::Sender<StateChange>,
    this: Weak<Inner>,
}

fn pack(generation: u64, state: BreakerState) -> u64 {
    (generation << 8) | state as u64
}

fn unpack(word: u64) -> (u64, BreakerState) {
    (word >> 8, BreakerState::from_u8((word & 0xff) as u8))
}

/// A generation-tagged count: `(tag, count)` in one word.
fn tagged(generation: u64, count: u32) -> u64 {
    ((generation & 0xffff_ffff) << 32) | u64::from(count)
}

fn untag(word: u64) -> (u64, u32) {
    (word >> 32, (word & 0xffff_ffff) as u32)
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.inner.name)
            .field("state", &self.state())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// The right to make one call, from [`CircuitBreaker::admit`]. Report the outcome with
/// [`Permit::success`] or [`Permit::failure`]; dropping it reports nothing (a cancelled call)
/// and frees a probe slot.
#[must_use = "report the outcome, or drop the permit for a cancelled call"]
pub struct Permit<'a> {
    inner: &'a Inner,
    ticket: Ticket,
}

/// A [`Permit`] that owns a handle to its breaker, for futures that outlive a borrow (tower
/// services); from [`CircuitBreaker::admit_owned`].
#[must_use = "report the outcome, or drop the permit for a cancelled call"]
pub struct OwnedPermit {
    breaker: CircuitBreaker,
    ticket: Ticket,
}

/// What a permit remembers of its admission.
#[derive(Debug)]
struct Ticket {
    generation: u64,
    kind: PermitKind,
    /// When the call started, in nanoseconds after the breaker's epoch plus one; 0 when its
    /// duration does not matter (no slow-call rule). A plain word: an `Option<Instant>` here
    /// cost the closed path a store-forwarding stall.
    started: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PermitKind {
    Closed,
    Probe,
    Untracked,
    Done,
}

impl Ticket {
    #[inline]
    fn finish(&mut self, inner: &Inner, success: bool) {
        let slow = success
            && match (self.started, inner.settings.slow_call_threshold) {
                (1.., Some(threshold)) => {
                    inner.nanos_since_epoch().saturating_sub(self.started - 1) > threshold.as_nanos() as u64
                }
                _ => false,
            };
        let kind = std::mem::replace(&mut self.kind, PermitKind::Done);
        inner.record(kind, self.generation, success && !slow);
    }

    /// The call was cancelled: counted as neither, its probe slot freed.
    fn abandon(&mut self, inner: &Inner) {
        match std::mem::replace(&mut self.kind, PermitKind::Done) {
            PermitKind::Done | PermitKind::Untracked => {}
            PermitKind::Closed => {
                inner.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            PermitKind::Probe => {
                inner.cancelled.fetch_add(1, Ordering::Relaxed);
                let tag = self.generation & 0xffff_ffff;
                let _ = inner.probes_left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                    let (owner, left) = untag(word);
                    (owner == tag).then(|| tagged(self.generation, left + 1))
                });
            }
        }
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("breaker", &self.inner.name).field("kind", &self.ticket.kind).finish()
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("breaker", &self.breaker.inner.name)
            .field("kind", &self.ticket.kind)
            .finish()
    }
}

impl Permit<'_> {
    /// Records a success (a failure instead if it was slower than the slow-call threshold).
    #[inline]
    pub fn success(mut self) {
        self.ticket.finish(self.inner, true);
    }

    /// Records a failure.
    pub fn failure(mut self) {
        self.ticket.finish(self.inner, false);
    }

    #[inline]
    fn finish(&mut self, success: bool) {
        self.ticket.finish(self.inner, success);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.ticket.abandon(self.inner);
    }
}

impl OwnedPermit {
    /// Records a success (a failure instead if it was slower than the slow-call threshold).
    pub fn success(mut self) {
        self.ticket.finish(&self.breaker.inner, true);
    }

    /// Records a failure.
    pub fn failure(mut self) {
        self.ticket.finish(&self.breaker.inner, false);
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        self.ticket.abandon(&self.breaker.inner);
    }
}

impl CircuitBreaker {
    /// A closed breaker named `name` (the dependency it protects: `binance-rest`, `redis`).
    pub fn new(name: &str, settings: BreakerSettings) -> Self {
        let (changes, _) = broadcast::channel(64);
        Self {
            inner: Arc::new_cyclic(|this| Inner {
                name: crate::names::intern(name),
                window: Window::new(settings.window_size),
                settings,
                word: AtomicU64::new(pack(0, BreakerState::Closed)),
                consecutive: AtomicU32::new(0),
                open_until: AtomicU64::new(0),
                timer_armed: AtomicU64::new(u64::MAX),
                probes_left: AtomicU64::new(tagged(u64::MAX, 0)),
                probe_successes: AtomicU64::new(tagged(u64::MAX, 0)),
                epoch: Instant::now(),
                failures: AtomicU64::new(0),
                rejections: StripedCounter::default(),
                cancelled: AtomicU64::new(0),
                changes,
                this: this.clone(),
            }),
        }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.inner.name
    }

    /// Its settings.
    pub fn settings(&self) -> &BreakerSettings {
        &self.inner.settings
    }

    /// Its state now.
    pub fn state(&self) -> BreakerState {
        let (generation, state) = unpack(self.inner.word.load(Ordering::Acquire));
        // Without a timer, the open state ends at the next call after its duration.
        if state == BreakerState::Open
            && self.inner.timer_armed.load(Ordering::Acquire) != generation
            && self.inner.open_elapsed()
        {
            BreakerState::HalfOpen
        } else {
            state
        }
    }

    /// Asks to make one call: a [`Permit`], or [`ResilienceError::CircuitOpen`].
    #[inline(always)]
    pub fn admit<E>(&self) -> Result<Permit<'_>, ResilienceError<E>> {
        Ok(Permit { inner: &self.inner, ticket: self.ticket()? })
    }

    #[inline(always)]
    fn ticket<E>(&self) -> Result<Ticket, ResilienceError<E>> {
        let inner = &*self.inner;
        match unpack(inner.word.load(Ordering::Acquire)) {
            (generation, BreakerState::Closed) => Ok(inner.ticket(PermitKind::Closed, generation)),
            (generation, BreakerState::ForcedClosed) => Ok(inner.ticket(PermitKind::Untracked, generation)),
            // Open with its timer armed: rejected without reading a clock.
            (generation, BreakerState::Open) if inner.timer_armed.load(Ordering::Relaxed) == generation => {
                Err(inner.reject(Some(inner.reopens_at())))
            }
            _ => inner.admit_slow(),
        }
    }

    /// [`CircuitBreaker::admit`], for a permit that must outlive this borrow.
    pub fn admit_owned<E>(&self) -> Result<OwnedPermit, ResilienceError<E>> {
        let ticket = self.ticket()?;
        Ok(OwnedPermit { breaker: self.clone(), ticket })
    }

    /// Runs `call` if admitted; any `Err` counts as a failure.
    pub async fn call<T, E, Fut>(&self, call: Fut) -> Result<T, ResilienceError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_with(call, |_| true).await
    }

    /// Runs `call` if admitted; an `Err` counts as a failure when `is_failure` says so (a
    /// "not found" may be a healthy answer) and as a success otherwise.
    pub async fn call_with<T, E, Fut>(
        &self,
        call: Fut,
        is_failure: impl Fn(&E) -> bool,
    ) -> Result<T, ResilienceError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let mut permit = self.admit()?;
        let result = call.await;
        // Reported in place: moving the permit out of this future's state into a by-value
        // call cost the closed path a store-forwarding stall.
        permit.finish(result.as_ref().map_or_else(|error| !is_failure(error), |_| true));
        result.map_err(ResilienceError::failed)
    }

    /// Opens it until [`CircuitBreaker::reset`]: every call is rejected.
    pub fn force_open(&self) {
        self.inner.transition_any(BreakerState::ForcedOpen);
    }

    /// Closes it until [`CircuitBreaker::reset`]: every call goes through, nothing is counted.
    pub fn force_closed(&self) {
        self.inner.transition_any(BreakerState::ForcedClosed);
    }

    /// Back to closed with empty counts (totals in the metrics are kept).
    pub fn reset(&self) {
        self.inner.window.clear();
        self.inner.consecutive.store(0, Ordering::Release);
        self.inner.transition_any(BreakerState::Closed);
    }

    /// State changes from now on. A slow receiver may miss some (it sees
    /// `RecvError::Lagged`); [`CircuitBreaker::state`] is always current.
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.inner.changes.subscribe()
    }

    /// A snapshot of its counters.
    pub fn metrics(&self) -> BreakerMetrics {
        let inner = &*self.inner;
        let (window_failures, window_calls) = (inner.window.failures(), inner.window.calls());
        BreakerMetrics {
            name: inner.name,
            state: self.state(),
            failures: inner.failures.load(Ordering::Relaxed),
            rejections: inner.rejections.get(),
            cancelled: inner.cancelled.load(Ordering::Relaxed),
            window_failures,
            window_calls,
            failure_rate: if window_calls == 0 { 0.0 } else { f64::from(window_failures) / f64::from(window_calls) },
            consecutive_failures: inner.consecutive.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    fn generation(&self) -> u64 {
        unpack(self.word.load(Ordering::Acquire)).0
    }

    #[inline(always)]
    fn ticket(&self, kind: PermitKind, generation: u64) -> Ticket {
        let started = match (kind, self.settings.slow_call_threshold) {
            (PermitKind::Closed | PermitKind::Probe, Some(_)) => self.nanos_since_epoch() + 1,
            _ => 0,
        };
        Ticket { generation, kind, started }
    }

    fn nanos_since_epoch(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    fn reopens_at(&self) -> ReopensAt {
        ReopensAt::new(self.epoch, self.open_until.load(Ordering::Acquire))
    }

    fn open_elapsed(&self) -> bool {
        Instant::now() >= self.reopens_at().instant()
    }

    /// Open, half-open or forced open.
    #[cold]
    fn admit_slow<E>(&self) -> Result<Ticket, ResilienceError<E>> {
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
    fn reject<E>(&self, reopens: Option<ReopensAt>) -> ResilienceError<E> {
        self.rejections.add();
        ResilienceError::CircuitOpen { breaker: self.name, reopens, attempts: 1 }
    }

    #[inline]
    fn record(&self, kind: PermitKind, generation: u64, success: bool) {
        match kind {
            PermitKind::Closed if success => {
                // Nothing is written while healthy (see `Window`).
                if self.consecutive.load(Ordering::Relaxed) != 0 {
                    self.consecutive.store(0, Ordering::Relaxed);
                }
                self.window.record(false);
            }
            PermitKind::Closed => self.closed_failure(generation),
            PermitKind::Probe => self.probe_outcome(generation, success),
            PermitKind::Untracked | PermitKind::Done => {}
        }
    }

    #[cold]
    fn closed_failure(&self, generation: u64) {
        self.failures.fetch_add(1, Ordering::Relaxed);
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
        if !success {
            self.failures.fetch_add(1, Ordering::Relaxed);
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
    fn transition_any(&self, to: BreakerState) {
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
        let _ = self.changes.send(StateChange { breaker: self.name, from, to });
    }
}
