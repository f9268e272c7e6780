//! [`EmergencyController`]: the public handle.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use infra_config::EmergencyConfig;
use infra_events::{EventBus, Subscription};
use infra_state::StateStore;
use tokio::{
    sync::{Notify, broadcast, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use crate::{
    Action, AuditRecord, ControllerOptions, EmergencyError, EmergencyState, Scope, Source, Status,
    fleet::FleetMember,
    gate::Gate,
    limits::Track,
    log::Log,
    metrics::ControllerMetrics,
    notify::{CallbackSubscription, EVENT_CAPACITY, EmergencyEvent, spawn_callback},
    options::Clock,
    state::check_bot_id,
};

/// A transition request: which scope, what, who and why.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Request {
    /// The scope to move.
    pub scope: Scope,
    /// What to do.
    pub action: Action,
    /// Who asks.
    pub source: Source,
    /// The person or rule asking (not empty).
    pub actor: String,
    /// Why (not empty).
    pub reason: String,
    /// Metric values to record with it (finite).
    pub metrics: BTreeMap<String, f64>,
}

impl Request {
    /// A request without metrics.
    pub fn new(
        scope: Scope,
        action: Action,
        source: Source,
        actor: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self { scope, action, source, actor: actor.into(), reason: reason.into(), metrics: BTreeMap::new() }
    }

    /// Records `value` of metric `name` with the transition.
    #[must_use]
    pub fn metric(mut self, name: impl Into<String>, value: f64) -> Self {
        self.metrics.insert(name.into(), value);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), EmergencyError> {
        let invalid = |what, why| Err(EmergencyError::InvalidArgument { what, why });
        for (what, text, max) in [("actor", &self.actor, 256), ("reason", &self.reason, 4096)] {
            if text.trim().is_empty() {
                return invalid(what, "it is empty");
            }
            if text.len() > max {
                return invalid(
                    what,
                    if max == 256 { "it is longer than 256 bytes" } else { "it is longer than 4096 bytes" },
                );
            }
        }
        if let Scope::Bot(id) = &self.scope {
            check_bot_id(id)?;
        }
        if self.metrics.iter().any(|(name, value)| name.is_empty() || !value.is_finite()) {
            return invalid("metrics", "names must not be empty and values must be finite");
        }
        Ok(())
    }
}

/// What a transition request did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// The scope moved; this is its audit record, committed to the store.
    Applied(AuditRecord),
    /// The scope stays as it is (the table's "unchanged" rows).
    Unchanged {
        /// The scope.
        scope: Scope,
        /// Its state.
        state: EmergencyState,
        /// Why nothing changed.
        why: &'static str,
    },
}

impl Outcome {
    /// The scope's state after the request.
    pub fn state(&self) -> EmergencyState {
        match self {
            Self::Applied(record) => record.to,
            Self::Unchanged { state, .. } => *state,
        }
    }

    /// The committed record, when the scope moved.
    pub fn record(&self) -> Option<&AuditRecord> {
        match self {
            Self::Applied(record) => Some(record),
            Self::Unchanged { .. } => None,
        }
    }

    /// Whether the scope moved.
    pub fn is_applied(&self) -> bool {
        matches!(self, Self::Applied(_))
    }
}

/// The shared state of a controller and its clones.
pub(crate) struct Inner {
    pub(crate) config: EmergencyConfig,
    pub(crate) bot: Scope,
    pub(crate) options: ControllerOptions,
    pub(crate) gate: Gate,
    pub(crate) log: Log,
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) clock: Clock,
    /// Serialises this process's transitions per tracked scope (global, bot).
    pub(crate) writers: [tokio::sync::Mutex<()>; 2],
    pub(crate) events: broadcast::Sender<EmergencyEvent>,
    pub(crate) limits: Mutex<HashMap<String, Track>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) wake: Arc<Notify>,
    /// Counts bus messages; a read of the store started at epoch `e` overrides provisional
    /// records of epochs up to `e`.
    pub(crate) epoch: AtomicU64,
    /// Escalations the store failed to commit, retried by the background task.
    pub(crate) pending: Mutex<Vec<Request>>,
    pub(crate) subscription: Mutex<Option<Subscription>>,
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) unavailable_reported: AtomicBool,
    /// A commit left the pointer and the heartbeat for the background task.
    pub(crate) housekeeping: AtomicBool,
    pub(crate) closed: AtomicBool,
    /// Metric handles, resolved at start.
    pub(crate) metrics: ControllerMetrics,
}

impl Inner {
    /// Index of the writer lock and gate view of `scope`, when this controller applies it.
    pub(crate) fn tracks(&self, scope: &Scope) -> Option<usize> {
        match scope {
            Scope::Global => Some(0),
            bot if *bot == self.bot => Some(1),
            Scope::Bot(_) => None,
        }
    }

    pub(crate) fn bot_id(&self) -> &str {
        &self.config.bot_id
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The kill switch of one bot: applies the global scope and the bot's own scope, persists
/// every transition before acting on it, shares it with the fleet through the bus, and answers
/// [`can_trade`](EmergencyController::can_trade) from memory.
///
/// Clones share one controller; its background task stops on [`close`](Self::close) or when
/// the last clone is dropped.
#[derive(Clone)]
pub struct EmergencyController {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for EmergencyController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmergencyController")
            .field("bot", &self.inner.config.bot_id)
            .field("state", &self.inner.gate.state())
            .field("store", &self.inner.log.store().backend())
            .field("bus", &self.inner.bus.backend())
            .finish_non_exhaustive()
    }
}

fn check_config(config: &EmergencyConfig) -> Result<(), EmergencyError> {
    check_bot_id(&config.bot_id)
        .map_err(|error| EmergencyError::InvalidConfig { field: "emergency.bot_id", why: error.to_string() })?;
    if !(config.daily_loss_limit.is_finite() && config.daily_loss_limit < 0.0) {
        return Err(EmergencyError::InvalidConfig {
            field: "emergency.daily_loss_limit",
            why: format!("must be a finite negative number, got {}", config.daily_loss_limit),
        });
    }
    let fraction = config.alert_fraction;
    if !(fraction.is_finite() && fraction > 0.0 && fraction < 1.0) {
        return Err(EmergencyError::InvalidConfig {
            field: "emergency.alert_fraction",
            why: format!("must be strictly between 0 and 1, got {fraction}"),
        });
    }
    Ok(())
}

impl EmergencyController {
    /// Starts the controller of `config.bot_id` on `store` and `bus`: subscribes to the
    /// transition channel, restores both scopes from the store, then keeps them in sync in a
    /// background task (on the current tokio runtime: outside one this is
    /// [`EmergencyError::NoRuntime`]).
    ///
    /// If the store cannot be read now, the controller still starts: with
    /// `config.fail_closed` it applies `HALT` with the reason
    /// [`STATE_UNAVAILABLE`](crate::STATE_UNAVAILABLE) until the store answers; without it,
    /// it trades on `NORMAL` and logs a warning. Only a configuration that cannot work is an
    /// error.
    pub async fn start(
        config: &EmergencyConfig,
        store: Arc<dyn StateStore>,
        bus: Arc<dyn EventBus>,
        options: ControllerOptions,
    ) -> Result<Self, EmergencyError> {
        check_config(config)?;
        options.validate()?;
        // Uptime counts from the first controller of the process.
        crate::fleet::process_started_ms();
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| EmergencyError::NoRuntime)?;
        let bot = Scope::Bot(config.bot_id.clone());
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (metrics, gauges) = ControllerMetrics::new(&config.bot_id, options.bot_gauges, &store);
        let inner = Arc::new(Inner {
            gate: Gate::new(bot.clone(), config.fail_closed, gauges),
            config: config.clone(),
            bot,
            options,
            log: Log::new(store),
            bus,
            clock: Clock::new(),
            writers: [tokio::sync::Mutex::new(()), tokio::sync::Mutex::new(())],
            events,
            limits: Mutex::default(),
            cancel: CancellationToken::new(),
            wake: Arc::new(Notify::new()),
            epoch: AtomicU64::new(0),
            pending: Mutex::default(),
            subscription: Mutex::default(),
            task: Mutex::default(),
            runtime,
            unavailable_reported: AtomicBool::new(false),
            housekeeping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            metrics,
        });
        // Subscribe first, so nothing committed after the read below goes unnoticed.
        inner.ensure_subscribed(false).await;
        if let Err(error) = inner.refresh().await {
            inner.report_unavailable(&error);
        }
        let task = crate::background::spawn(&inner);
        *inner.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        Ok(Self { inner })
    }

    /// A controller on a fresh in-process store and bus (development, tests, examples).
    #[cfg(feature = "memory")]
    #[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
    pub async fn in_memory(config: &EmergencyConfig, options: ControllerOptions) -> Result<Self, EmergencyError> {
        let store = Arc::new(infra_state::memory::MemoryStore::new("emergency"));
        let bus = Arc::new(infra_events::memory::MemoryBus::new(config.bot_id.clone()));
        Self::start(config, store, bus, options).await
    }

    /// A controller on the store and bus `config` names (`state`, `events`, `emergency`).
    pub async fn from_config(
        config: &infra_config::Config,
        options: ControllerOptions,
    ) -> Result<Self, EmergencyError> {
        let store = infra_state::from_config(&config.state)
            .map_err(|e| EmergencyError::Backend { what: "state store", source: Box::new(e) })?;
        let bus = infra_events::from_config(&config.events, &config.emergency.bot_id)
            .map_err(|e| EmergencyError::Backend { what: "event bus", source: Box::new(e) })?;
        Self::start(&config.emergency, store, bus, options).await
    }

    /// The bot this controller serves.
    pub fn bot_id(&self) -> &str {
        self.inner.bot_id()
    }

    /// The bot's scope.
    pub fn bot_scope(&self) -> &Scope {
        &self.inner.bot
    }

    /// Whether new orders may be sent now (effective state `NORMAL` or `ALERT`). One atomic
    /// load: no lock, no I/O.
    #[inline]
    pub fn can_trade(&self) -> bool {
        self.inner.gate.can_trade()
    }

    /// Whether cancels and risk-reducing exits may be sent now (anything but `SHUTDOWN`). One
    /// atomic load.
    #[inline]
    pub fn can_reduce(&self) -> bool {
        self.inner.gate.can_reduce()
    }

    /// The effective state: the stricter of the global scope and the bot's. One atomic load.
    #[inline]
    pub fn state(&self) -> EmergencyState {
        self.inner.gate.state()
    }

    /// The effective state with the scope and reason behind it.
    pub fn status(&self) -> Status {
        self.inner.gate.status()
    }

    /// `Ok` when new orders may be sent, otherwise [`EmergencyError::TradingRefused`] with the
    /// state, the scope that imposes it and its reason. No I/O.
    pub fn assert_can_trade(&self) -> Result<(), EmergencyError> {
        if self.can_trade() {
            return Ok(());
        }
        let status = self.status();
        Err(EmergencyError::TradingRefused { state: status.state, scope: status.scope, reason: status.reason })
    }

    /// `Ok` when cancels and exits may be sent, otherwise [`EmergencyError::ReduceRefused`].
    pub fn assert_can_reduce(&self) -> Result<(), EmergencyError> {
        if self.can_reduce() {
            return Ok(());
        }
        let status = self.status();
        Err(EmergencyError::ReduceRefused { state: status.state, scope: status.scope, reason: status.reason })
    }

    /// A receiver of the current [`Status`], updated whenever it changes.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.inner.gate.subscribe()
    }

    /// A receiver of every [`EmergencyEvent`] from now on.
    pub fn events(&self) -> broadcast::Receiver<EmergencyEvent> {
        self.inner.events.subscribe()
    }

    /// Runs `callback` (in its own task) for every [`EmergencyEvent`] from now on, until the
    /// returned handle is dropped or the controller closed. A panicking callback is logged and
    /// keeps receiving.
    pub fn subscribe<F>(&self, callback: F) -> CallbackSubscription
    where
        F: Fn(&EmergencyEvent) + Send + Sync + 'static,
    {
        spawn_callback(&self.inner.runtime, self.events(), self.inner.cancel.clone(), callback)
    }

    /// Asks for a transition, decided by the [transition table](crate::table) against the
    /// scope's state in the store, committed there before it is applied here and published to
    /// the fleet.
    ///
    /// A halt or shutdown the store fails to commit is still applied here at once, returned as
    /// [`EmergencyError::Store`], and committed by the background task once the store answers:
    /// an outage never delays stopping.
    pub async fn request(&self, request: Request) -> Result<Outcome, EmergencyError> {
        self.inner.transition(request).await
    }

    /// Halts `scope` (a person asking): no new orders until a manual resume.
    pub async fn halt(
        &self,
        scope: Scope,
        actor: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<Outcome, EmergencyError> {
        self.request(Request::new(scope, Action::Halt, Source::Manual, actor, reason)).await
    }

    /// Lifts a halt or an alert of `scope` (a person asking), once the resume cooldown has
    /// passed since the halt.
    pub async fn resume(
        &self,
        scope: Scope,
        actor: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<Outcome, EmergencyError> {
        self.request(Request::new(scope, Action::Resume, Source::Manual, actor, reason)).await
    }

    /// Shuts `scope` down (a person asking): nothing at all until a re-arm.
    pub async fn shutdown(
        &self,
        scope: Scope,
        actor: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<Outcome, EmergencyError> {
        self.request(Request::new(scope, Action::Shutdown, Source::Manual, actor, reason)).await
    }

    /// Re-arms a shut-down `scope` (a person asking): it becomes halted, and trading needs a
    /// resume.
    pub async fn rearm(
        &self,
        scope: Scope,
        actor: impl Into<String>,
        reason: impl Into<String>,
    ) -> Result<Outcome, EmergencyError> {
        self.request(Request::new(scope, Action::Rearm, Source::Manual, actor, reason)).await
    }

    /// The last `limit` audit records of `scope`, newest first, read from the store.
    pub async fn history(&self, scope: &Scope, limit: usize) -> Result<Vec<AuditRecord>, EmergencyError> {
        self.inner.log.history(scope, limit).await
    }

    /// Every bot with a live heartbeat in the store, sorted by bot, with the heartbeat's age and
    /// whether it has applied the latest global transition.
    pub async fn fleet(&self) -> Result<Vec<FleetMember>, EmergencyError> {
        self.inner.fleet().await
    }

    /// Reads the [`fleet`](Self::fleet) and records it with
    /// [`record_fleet_metrics`](crate::record_fleet_metrics), leaving out this controller's own
    /// bot (its own gauges are fresher than its heartbeat, and an operator tool's controller is
    /// not a bot of the fleet); returns the fleet. Meant to run on each scrape of a process
    /// that exports the fleet: one listing of the heartbeats in the store.
    pub async fn record_fleet_metrics(&self) -> Result<Vec<FleetMember>, EmergencyError> {
        let mut fleet = self.fleet().await?;
        fleet.retain(|member| member.heartbeat.bot != self.bot_id());
        crate::metrics::record_fleet_metrics(&fleet);
        Ok(fleet)
    }

    /// Reads both scopes from the store now (the background task does it every resync
    /// interval, after every message and after every gap of the bus).
    pub async fn refresh(&self) -> Result<(), EmergencyError> {
        self.inner.refresh().await
    }

    /// Stops the background task, unsubscribes from the bus and removes the heartbeat. The
    /// last applied state still answers `can_trade`; transitions fail with
    /// [`EmergencyError::Closed`]. Closing twice is harmless.
    pub async fn close(&self) -> Result<(), EmergencyError> {
        let inner = &self.inner;
        if inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        inner.cancel.cancel();
        let task = inner.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let subscription = inner.subscription.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(subscription) = subscription {
            subscription.unsubscribe().await;
        }
        inner.log.leave(inner.bot_id()).await
    }

    /// How long the resume cooldown is.
    pub fn resume_cooldown(&self) -> Duration {
        self.inner.options.resume_cooldown
    }
}
