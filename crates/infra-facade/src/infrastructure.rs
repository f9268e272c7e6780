//! [`Infrastructure`]: the stack assembled from one [`Config`], its health and its shutdown.

use std::{
    collections::HashSet,
    fmt,
    io::Write,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use infra_config::{Config, RedisUrl};
use infra_emergency::{ControllerOptions, EmergencyController};
use infra_events::EventBus;
use infra_resilience::{
    BreakerRegistry, BreakerSettings, CircuitBreaker, Idempotency, PolicyBuilder, Retry, RetryClass,
};
use infra_state::StateStore;
use tokio::{runtime::Handle, sync::broadcast::error::RecvError, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    BackendHealth, BeforeScrape, BreakerHealth, EmergencyHealth, FacadeError, HealthReport, LoggingHealth,
    MetricsEndpoint, PrometheusRecorder, ResilientBus, ResilientStore,
    logging::{Logging, SharedWriter},
    metrics::recorded_ping,
};

/// The breaker of the state store's decorator.
pub const STATE_BREAKER: &str = "state";
/// The breaker of the event bus's decorator.
pub const EVENTS_BREAKER: &str = "events";
/// The bus channel every state change of a breaker handed out by
/// [`Infrastructure::breaker`] is published on: `{"breaker", "from", "to", "bot_id"}`, states
/// named as `BreakerState::as_str` names them (`closed`, `open`, `half_open`, ...); each
/// breaker's current state is also reported every 5 s (`from` = `to`, with `"report": true`).
pub const BREAKER_CHANNEL: &str = "breakers";

/// How long `close` waits for the emergency controller's last write before going on.
const CLOSE_STEP_LIMIT: Duration = Duration::from_secs(5);

/// Loads the environment named `environment` (`development`, `staging` or `production`, or
/// `dev`, `stage`, `prod`) with [`Config::load_env`] (its preset, `infra.toml`, `INFRA_...`
/// variables) and assembles it with [`Infrastructure::create`]. An unknown name is a
/// [`FacadeError::Config`] whose source lists the valid names.
pub async fn create_infrastructure(environment: &str) -> Result<Infrastructure, FacadeError> {
    let config = Config::load_env(environment).map_err(FacadeError::Config)?;
    Infrastructure::create(config).await
}

/// Options of [`Infrastructure::builder`] beyond the [`Config`].
#[must_use = "call `build().await` to assemble the infrastructure"]
pub struct InfrastructureBuilder {
    config: Config,
    options: ControllerOptions,
    log_writer: Option<SharedWriter>,
    logging: bool,
    connect: bool,
}

impl fmt::Debug for InfrastructureBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfrastructureBuilder")
            .field("config", &self.config)
            .field("options", &self.options)
            .field("logging", &self.logging)
            .field("connect", &self.connect)
            .finish_non_exhaustive()
    }
}

impl InfrastructureBuilder {
    /// Options of the emergency controller (resync interval, heartbeat, cooldown, channel).
    pub fn controller_options(mut self, options: ControllerOptions) -> Self {
        self.options = options;
        self
    }

    /// Writes the logs into `writer` instead of stdout (a CLI whose stdout is its output, a
    /// file), if this infrastructure is the one that sets up the process's logging.
    pub fn log_writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.log_writer = Some(SharedWriter::new(writer));
        self
    }

    /// Leaves the process's logging alone (the caller installs its own subscriber).
    pub fn skip_logging(mut self) -> Self {
        self.logging = false;
        self
    }

    /// Does not connect the store and the bus at start: they connect on first use, and a
    /// Redis that is down shows in [`Infrastructure::health`] instead of failing `build`.
    pub fn lazy_connect(mut self) -> Self {
        self.connect = false;
        self
    }

    /// Assembles the infrastructure; see [`Infrastructure::create`].
    pub async fn build(self) -> Result<Infrastructure, FacadeError> {
        let config = self.config;
        config.validate().map_err(FacadeError::Config)?;
        let logging =
            if self.logging { Logging::set_up(&config.logging, self.log_writer)? } else { Logging::skipped() };
        // Before any component is built: they resolve their metric handles when built.
        let recorder = config.metrics.listen.map(|_| PrometheusRecorder::install()).transpose()?;

        let raw_store =
            infra_state::from_config(&config.state).map_err(|source| FacadeError::State { action: "build", source })?;
        let raw_bus = infra_events::from_config(&config.events, &config.emergency.bot_id)
            .map_err(|source| FacadeError::Events { action: "build", source })?;
        if self.connect {
            raw_store.connect().await.map_err(|source| FacadeError::State { action: "connect", source })?;
            raw_bus.connect().await.map_err(|source| FacadeError::Events { action: "connect", source })?;
        }

        let breakers = Arc::new(BreakerRegistry::new(BreakerSettings::from_config(&config.resilience.breaker)));
        let url = |url: &Option<RedisUrl>| url.as_ref().map_or_else(|| "in-process".to_owned(), ToString::to_string);
        let store = Arc::new(ResilientStore::new(
            Arc::clone(&raw_store),
            &config.resilience,
            breakers.get(STATE_BREAKER),
            url(&config.state.redis_url),
        ));
        let bus = Arc::new(ResilientBus::new(
            Arc::clone(&raw_bus),
            &config.resilience,
            breakers.get(EVENTS_BREAKER),
            url(&config.events.redis_url),
        ));

        // The controller gets the store and bus without the policy: it has its own fail-safe
        // handling (fail-closed start, escalations retried in the background), and an open
        // breaker must never delay a halt.
        let emergency = EmergencyController::start(&config.emergency, raw_store, Arc::clone(&raw_bus), self.options)
            .await
            .map_err(|source| FacadeError::Emergency { action: "start", source })?;

        let metrics = match (config.metrics.listen, recorder) {
            (Some(listen), Some(recorder)) => {
                let refresh = redis_pings(&config, Arc::clone(store.inner()), Arc::clone(bus.inner()));
                Some(MetricsEndpoint::start_with(listen, recorder, Some(refresh)).await?)
            }
            _ => None,
        };

        let infrastructure = Infrastructure {
            metrics,
            store,
            bus,
            breakers,
            emergency,
            logging,
            raw_bus,
            runtime: Handle::current(),
            cancel: CancellationToken::new(),
            tasks: Mutex::default(),
            watched: Mutex::default(),
            closed: AtomicBool::new(false),
            config,
        };
        infrastructure.breaker(STATE_BREAKER);
        infrastructure.breaker(EVENTS_BREAKER);
        let (config, store, bus, emergency) =
            (&infrastructure.config, &infrastructure.store, &infrastructure.bus, &infrastructure.emergency);
        tracing::info!(
            target: "infra_facade",
            environment = %config.environment,
            state = store.backend(),
            events = bus.backend(),
            bot_id = %config.emergency.bot_id,
            emergency = %emergency.state(),
            "infrastructure ready"
        );
        Ok(infrastructure)
    }
}

/// Before each scrape: pings the Redis of the store and of the bus (bypassing their breakers,
/// bounded by their timeouts) so `infra_redis_up` and `infra_redis_ping_latency_seconds` are
/// current. Memory backends have no Redis to report.
fn redis_pings(config: &Config, store: Arc<dyn StateStore>, bus: Arc<dyn EventBus>) -> BeforeScrape {
    let state_limit = config.state.operation_timeout + config.state.connect_timeout;
    let events_limit = config.events.operation_timeout + config.events.connect_timeout;
    Arc::new(move || {
        let (store, bus) = (Arc::clone(&store), Arc::clone(&bus));
        Box::pin(async move {
            let _ = tokio::join!(
                recorded_ping("state", store.backend() == "redis", state_limit, store.ping()),
                recorded_ping("events", bus.backend() != "memory", events_limit, bus.ping()),
            );
        })
    })
}

/// How often each watched breaker's current state is published even when it does not change,
/// so a dashboard started later learns every breaker of every bot.
const BREAKER_REPORT_EVERY: Duration = Duration::from_secs(5);

/// Publishes every state change of `breaker` on [`BREAKER_CHANNEL`] of `bus`, and its current
/// state at once and every [`BREAKER_REPORT_EVERY`] (`from` = `to`, `"report": true`), until
/// `cancel`.
fn watch_breaker(
    runtime: &Handle,
    breaker: CircuitBreaker,
    bus: Arc<dyn EventBus>,
    bot_id: String,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let mut changes = breaker.subscribe();
    runtime.spawn(async move {
        let mut report = tokio::time::interval(BREAKER_REPORT_EVERY);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let payload = tokio::select! {
                () = cancel.cancelled() => return,
                _ = report.tick() => {
                    let state = breaker.state().as_str();
                    serde_json::json!({"breaker": breaker.name(), "from": state, "to": state, "bot_id": bot_id, "report": true})
                }
                change = changes.recv() => match change {
                    Ok(change) => serde_json::json!({
                        "breaker": change.breaker,
                        "from": change.from.as_str(),
                        "to": change.to.as_str(),
                        "bot_id": bot_id,
                    }),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(target: "infra_facade", breaker = breaker.name(), missed, "breaker state changes missed");
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                },
            };
            // The bus without the policy: the `events` breaker's own changes must go out too.
            if let Err(error) = bus.publish(BREAKER_CHANNEL, payload).await {
                tracing::debug!(target: "infra_facade", breaker = breaker.name(), %error, "cannot publish a breaker state");
            }
        }
    })
}

/// The whole stack of a bot, assembled from one [`Config`]: a state store and an event bus
/// behind the configured resilience policy, the emergency controller, circuit breakers by
/// name, and logging.
///
/// Built by [`Infrastructure::create`] (or [`create_infrastructure`] from an environment's
/// name, or [`Infrastructure::builder`] for options). [`health`](Self::health) reports each
/// part; [`close`](Self::close) shuts it down in order. Dropping it without `close` never
/// blocks on the network: background tasks are cancelled and connections are released in
/// the background (the log sink, if this was its last user, flushes for at most about a
/// second).
pub struct Infrastructure {
    config: Config,
    metrics: Option<MetricsEndpoint>,
    store: Arc<ResilientStore>,
    bus: Arc<ResilientBus>,
    breakers: Arc<BreakerRegistry>,
    emergency: EmergencyController,
    logging: Logging,
    /// The bus without the policy, for the facade's own announcements.
    raw_bus: Arc<dyn EventBus>,
    runtime: Handle,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Names of the breakers whose changes are published.
    watched: Mutex<HashSet<String>>,
    closed: AtomicBool,
}

impl fmt::Debug for Infrastructure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Infrastructure")
            .field("environment", &self.config.environment)
            .field("state", &self.store)
            .field("events", &self.bus)
            .field("emergency", &self.emergency)
            .field("logging", &self.logging.setup)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Infrastructure {
    /// Assembles the stack `config` describes (validated first):
    ///
    /// 1. logging from `config.logging`, unless the process already has a subscriber;
    /// 2. the state store and the event bus of `config.state` and `config.events`, connected
    ///    now so that an unreachable Redis fails here (see
    ///    [`InfrastructureBuilder::lazy_connect`]);
    /// 3. both wrapped in the policy of `config.resilience` ([`ResilientStore`],
    ///    [`ResilientBus`]), guarded by the breakers `"state"` and `"events"` of a registry of
    ///    its own;
    /// 4. the emergency controller of `config.emergency`, restored from the store, its
    ///    transitions published on the bus.
    ///
    /// Needs a tokio runtime (background tasks start on the current one).
    pub async fn create(config: Config) -> Result<Self, FacadeError> {
        Self::builder(config).build().await
    }

    /// A builder, for options beyond the configuration.
    pub fn builder(config: Config) -> InfrastructureBuilder {
        InfrastructureBuilder {
            config,
            options: ControllerOptions::default(),
            log_writer: None,
            logging: true,
            connect: true,
        }
    }

    /// The configuration it was built from (secrets redacted in its `Debug` and `to_toml`).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The state store, behind the resilience policy. Clone the `Arc` to share it; it is an
    /// `impl StateStore`, so every `StateStoreExt` helper works on it.
    pub fn state(&self) -> &Arc<ResilientStore> {
        &self.store
    }

    /// The event bus, behind the resilience policy; every `EventBusExt` helper works on it.
    pub fn events(&self) -> &Arc<ResilientBus> {
        &self.bus
    }

    /// The emergency controller (clones share it).
    pub fn emergency(&self) -> &EmergencyController {
        &self.emergency
    }

    /// The address of the Prometheus endpoint (`GET /metrics`), when `[metrics] listen` is set.
    /// With port 0 in the configuration, this is the port actually chosen.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics.as_ref().map(MetricsEndpoint::local_addr)
    }

    /// The circuit breaker named `name`, made with `config.resilience.breaker` if new. Every
    /// caller asking for one name shares one breaker; `"state"` and `"events"` are those of
    /// the store and the bus. Its state changes are published on [`BREAKER_CHANNEL`] until
    /// [`close`](Self::close).
    pub fn breaker(&self, name: &str) -> CircuitBreaker {
        let breaker = self.breakers.get(name);
        let new = self.watched.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned());
        if new && !self.cancel.is_cancelled() {
            let task = watch_breaker(
                &self.runtime,
                breaker.clone(),
                Arc::clone(&self.raw_bus),
                self.config.emergency.bot_id.clone(),
                self.cancel.clone(),
            );
            self.tasks.lock().unwrap_or_else(PoisonError::into_inner).push(task);
        }
        breaker
    }

    /// The registry behind [`breaker`](Self::breaker).
    pub fn breakers(&self) -> &BreakerRegistry {
        &self.breakers
    }

    /// A policy from `config.resilience` for calls to the dependency `name` (an exchange, a
    /// webhook) failing with `E`: its retry, told whether the operation is idempotent (a
    /// non-idempotent one is never repeated after it may have been applied), the breaker
    /// [`breaker(name)`](Self::breaker), the per-attempt timeout and the overall deadline.
    /// Change what you need, then `build()`.
    pub fn policy<T, E: RetryClass + 'static>(&self, name: &str, idempotency: Idempotency) -> PolicyBuilder<T, E> {
        let resilience = &self.config.resilience;
        infra_resilience::Policy::builder()
            .retry(Retry::from_config(&resilience.retry).idempotency(idempotency))
            .breaker(self.breaker(name))
            .timeout(resilience.timeout.per_attempt)
            .deadline(resilience.timeout.overall)
    }

    /// Checks every part: pings the store and the bus (bypassing their breakers, bounded by
    /// their timeouts), reads every breaker and the emergency state, and the log sink's
    /// dropped lines.
    pub async fn health(&self) -> HealthReport {
        let (state_ping, events_ping) = tokio::join!(
            recorded_ping(
                "state",
                self.store.backend() == "redis",
                self.config.state.operation_timeout + self.config.state.connect_timeout,
                self.store.inner().ping(),
            ),
            recorded_ping(
                "events",
                self.bus.backend() != "memory",
                self.config.events.operation_timeout + self.config.events.connect_timeout,
                self.bus.inner().ping(),
            ),
        );
        let state = BackendHealth::new(
            self.store.backend(),
            self.config.state.namespace.clone(),
            state_ping,
            self.store.stats(),
        );
        let events =
            BackendHealth::new(self.bus.backend(), self.config.events.namespace.clone(), events_ping, self.bus.stats());
        let breakers: Vec<BreakerHealth> = self.breakers.metrics().into_iter().map(BreakerHealth::from).collect();
        let status = self.emergency.status();
        let emergency = EmergencyHealth {
            bot_id: self.emergency.bot_id().to_owned(),
            state: status.state,
            scope: status.scope.to_string(),
            reason: status.reason,
            can_trade: status.state.can_trade(),
            store_unavailable: status.store_unavailable,
        };
        let logging = LoggingHealth { setup: self.logging.setup, dropped_lines: self.logging.dropped_lines() };
        let healthy = state.reachable
            && events.reachable
            && !breakers.iter().any(BreakerHealth::is_open)
            && !emergency.store_unavailable;
        HealthReport {
            healthy,
            environment: self.config.environment.to_string(),
            state,
            events,
            breakers,
            emergency,
            logging,
        }
    }

    /// Shuts down in order: stops the facade's background tasks, lets the emergency controller
    /// commit what it still holds (escalations the store had refused, the heartbeat) and
    /// close (its task stops, its heartbeat is removed), closes the bus and the store (their
    /// queued work finishes first), then flushes the logs if this was the last user of the
    /// sink the facade installed.
    ///
    /// Every step runs even if an earlier one failed; the first failure is returned. Closing
    /// twice is harmless. The controller's `can_trade` keeps answering from memory afterwards.
    pub async fn close(&self) -> Result<(), FacadeError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.cancel.cancel();
        if let Some(metrics) = &self.metrics {
            metrics.close().await;
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            let _ = task.await;
        }
        let mut first: Option<FacadeError> = None;
        let mut keep = |result: Result<(), FacadeError>| {
            if let Err(error) = result {
                tracing::warn!(target: "infra_facade", error = %error_chain(&error), "closing the infrastructure");
                first.get_or_insert(error);
            }
        };
        // A failure to persist is logged by the controller; its background task retries it
        // while it runs, and a fleet re-reads the store, so this is best effort.
        let _ = tokio::time::timeout(CLOSE_STEP_LIMIT, self.emergency.refresh()).await;
        keep(self.emergency.close().await.map_err(|source| FacadeError::Emergency { action: "close", source }));
        keep(self.bus.close().await.map_err(|source| FacadeError::Events { action: "close", source }));
        keep(self.store.close().await.map_err(|source| FacadeError::State { action: "close", source }));
        tracing::info!(target: "infra_facade", "infrastructure closed");
        self.logging.release();
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Infrastructure {
    fn drop(&mut self) {
        // The tasks end at their next poll; the controller, store and bus release their
        // connections in the background when their last reference goes.
        self.cancel.cancel();
    }
}

/// An error and its sources, `: `-separated (each renders secrets redacted).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
