//! A simulated trading bot on the whole stack, assembled by the facade.
//!
//! - a random-walk price feed publishes one tick per 50 ms on the bus (`trading_bot.prices.<bot>`);
//! - a mean-reversion strategy reads the ticks; each tick is one *execution*, with its own
//!   correlation ID on every log line, state call and event of it;
//! - orders go to a flaky simulated exchange (rate limits, maintenance windows, dropped
//!   connections, hung calls, rejections) through retry + circuit breaker + timeout. Placing an
//!   order is `Idempotency::NonIdempotent`: it is retried only after an error that says it was
//!   certainly not applied, never after a timeout; an order whose outcome is unknown is
//!   reconciled with an idempotent status query instead;
//! - `can_trade()` is checked before every order (and every retry), so a halt from anywhere
//!   (the daily-loss limit, or `infractl emergency halt --global` from another terminal)
//!   stops trading within one tick;
//! - the day's P&L is checked against `emergency.daily_loss_limit` every tick, which halts the
//!   bot automatically once breached;
//! - every execution's outcome is published on `trading_bot.executions.<bot>` (JSON: `bot`,
//!   `execution_id`, `at_ms`, `outcome`, `reason`, `side`, `qty`, `price`), with `outcome`
//!   `filled`, `rejected` (reason `emergency: <STATE>` or `breaker: <name> open`), `failed`
//!   (reason: the error), `unknown` (timed out or disconnected: reconciling) or `skipped` (reason
//!   `no signal`), so a halted bot visibly keeps executing and rejecting (the dashboard's feed).
//!
//! ```sh
//! cargo run --example trading_bot                                  # memory backends, ~10 s
//! cargo run --example trading_bot -- --seconds 3 --seed 42 --loss-limit 0.5
//! INFRA_ENV=staging INFRA_STATE__REDIS_URL=redis://127.0.0.1:6379 \
//!   INFRA_EVENTS__REDIS_URL=redis://127.0.0.1:6379 \
//!   cargo run -p infra-facade --features redis --example trading_bot
//! ```
//!
//! Logs go to stderr; the last line on stdout is a JSON summary. The price path, the
//! strategy's signals and the exchange's faults depend only on `--seed` and the tick number;
//! how long the breaker stays open is wall-clock time. Ctrl-C ends the run early, with its
//! summary. Exit codes: 0 done, 1 runtime failure (Redis unreachable...), 2 bad arguments or
//! configuration (an environment on Redis in a build without the `redis` feature included).

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "the summary and the usage are the example's output")]

#[path = "trading_bot/sim.rs"]
mod sim;

use std::{process::ExitCode, sync::Arc, time::Duration};

use futures::StreamExt;
use infra_facade::{
    config::{Backend, ConfigError},
    prelude::*,
    resilience::BreakerSettings,
};
use serde::Serialize;
use sim::{Exchange, ExchangeError, Fill, Order, PriceTick, Side, Strategy};

const USAGE: &str = "usage: trading_bot [--seconds N] [--seed S] [--loss-limit AMOUNT] [--metrics ADDR]

  --seconds N          how long the simulation runs, 1 to 86400 (default 10)
  --seed S             seed of the price path and the exchange's faults (default 1)
  --loss-limit AMOUNT  halt once the day's loss reaches AMOUNT (positive; default: the
                       configuration's emergency.daily_loss_limit)
  --metrics ADDR       serve Prometheus metrics on http://ADDR/metrics (for example
                       127.0.0.1:9464; default: the configuration's metrics.listen)

Environment: INFRA_ENV (development, staging, production; default development) and the
INFRA_* variables or infra.toml of infra-config.";

const TICK: Duration = Duration::from_millis(50);
/// The bus channels, followed by `.<bot ID>` (bots sharing a Redis do not mix their feeds).
const PRICES: &str = "trading_bot.prices";
const FILLS: &str = "trading_bot.fills";
const EXECUTIONS: &str = "trading_bot.executions";
const STRATEGY: &str = "mean-revert";
const EXCHANGE: &str = "exchange";

/// The command line.
#[derive(Debug, Clone, PartialEq)]
struct Args {
    seconds: u64,
    seed: u64,
    loss_limit: Option<f64>,
    metrics: Option<std::net::SocketAddr>,
}

/// Why the command line was refused.
#[derive(Debug, PartialEq)]
enum ArgsError {
    Help,
    Unknown(String),
    MissingValue(&'static str),
    Invalid { flag: &'static str, value: String, why: &'static str },
}

impl std::fmt::Display for ArgsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Help => f.write_str("help requested"),
            Self::Unknown(arg) => write!(f, "unexpected argument `{arg}`"),
            Self::MissingValue(flag) => write!(f, "`{flag}` needs a value"),
            Self::Invalid { flag, value, why } => write!(f, "invalid value `{value}` for `{flag}`: {why}"),
        }
    }
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, ArgsError> {
    let mut parsed = Args { seconds: 10, seed: 1, loss_limit: None, metrics: None };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
            _ => (arg.clone(), None),
        };
        let flag: &'static str = match flag.as_str() {
            "-h" | "--help" => return Err(ArgsError::Help),
            "--seconds" => "--seconds",
            "--seed" => "--seed",
            "--loss-limit" => "--loss-limit",
            "--metrics" => "--metrics",
            _ => return Err(ArgsError::Unknown(arg)),
        };
        let value = inline.or_else(|| args.next()).ok_or(ArgsError::MissingValue(flag))?;
        let invalid = |why| ArgsError::Invalid { flag, value: value.clone(), why };
        match flag {
            "--seconds" => {
                parsed.seconds = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=86_400).contains(s))
                    .ok_or_else(|| invalid("expected a whole number of seconds from 1 to 86400"))?;
            }
            "--seed" => parsed.seed = value.parse().map_err(|_| invalid("expected an unsigned 64-bit integer"))?,
            "--metrics" => {
                parsed.metrics =
                    Some(value.parse().map_err(|_| invalid("expected an address such as 127.0.0.1:9464"))?);
            }
            _ => {
                let limit: f64 = value.parse().map_err(|_| invalid("expected a number"))?;
                if !(limit.is_finite() && limit > 0.0) {
                    return Err(invalid("expected a positive amount (the loss, not a negative P&L)"));
                }
                parsed.loss_limit = Some(limit);
            }
        }
    }
    Ok(parsed)
}

/// Why the bot could not run.
#[derive(Debug)]
enum BotError {
    Config(ConfigError),
    /// The environment uses Redis, but the example was built without the `redis` feature.
    NeedsRedis(String),
    Setup(FacadeError),
    Events(EventsError),
}

impl std::fmt::Display for BotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (what, error): (&str, &dyn std::error::Error) = match self {
            Self::NeedsRedis(environment) => {
                return write!(
                    f,
                    "`{environment}` uses Redis, which this build does not include; run \
                     `cargo run -p infra-facade --features redis --example trading_bot`"
                );
            }
            Self::Config(e) => ("cannot load the configuration", e),
            Self::Setup(e) => ("cannot assemble the infrastructure", e),
            Self::Events(e) => ("cannot subscribe to the price feed", e),
        };
        write!(f, "{what}: {error}")?;
        let mut source = error.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The last line on stdout.
#[derive(Debug, Default, Serialize)]
struct Summary {
    /// Price ticks handled, one execution (and correlation ID) each.
    executions: u64,
    /// Fills booked, reconciled ones included.
    trades: u64,
    /// Signals not sent, or attempts stopped, because the emergency controller refused trading.
    rejected_by_emergency: u64,
    /// Orders refused by the exchange's open circuit breaker (not sent).
    breaker_rejections: u64,
    /// Order attempts repeated (only after errors that say the order was not applied).
    retries: u64,
    /// The emergency state at the end: NORMAL, ALERT, HALT or SHUTDOWN.
    final_state: String,
    /// Orders handed to the exchange's policy (those its open breaker refused included).
    orders_sent: u64,
    orders_rejected: u64,
    /// Orders that failed and were certainly not applied.
    orders_failed: u64,
    /// Orders that timed out or lost their connection: never retried, reconciled instead.
    unknown_outcomes: u64,
    reconciled_fills: u64,
    position: f64,
    /// Cash plus the position at the last price, fees and spread included.
    pnl: f64,
    daily_loss_limit: f64,
    /// The execution after which trading first stopped, if it did (0: it started halted).
    halted_at_execution: Option<u64>,
    /// Whether Ctrl-C ended the run before `--seconds`.
    interrupted: bool,
    seed: u64,
    seconds: u64,
    environment: String,
    bot_id: String,
    state_backend: &'static str,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(ArgsError::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("trading_bot: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(summary) => match serde_json::to_string(&summary) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("trading_bot: cannot encode the summary: {error}");
                ExitCode::FAILURE
            }
        },
        Err(error @ (BotError::Config(_) | BotError::NeedsRedis(_))) => {
            eprintln!("trading_bot: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("trading_bot: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<Summary, BotError> {
    let environment = std::env::var("INFRA_ENV").unwrap_or_else(|_| "development".to_owned());
    let mut config = Config::load_env(&environment).map_err(BotError::Config)?;
    let redis = [config.state.backend, config.events.backend].contains(&Backend::Redis);
    if redis && !cfg!(feature = "redis") {
        return Err(BotError::NeedsRedis(config.environment.to_string()));
    }
    if let Some(limit) = args.loss_limit {
        config.emergency.daily_loss_limit = -limit;
    }
    if let Some(listen) = args.metrics {
        config.metrics.listen = Some(listen);
    }
    // The demo's point: a breached daily-loss limit halts (the development preset only alerts).
    config.emergency.auto_halt_on_limit = true;
    // Logs on stderr, so that the summary is the last line on stdout.
    let infra = Infrastructure::builder(config).log_writer(std::io::stderr()).build().await.map_err(BotError::Setup)?;
    let result = Bot::new(&infra, args).run().await;
    if let Err(error) = infra.close().await {
        tracing::warn!(%error, "closing the infrastructure");
    }
    result
}

/// What became of one execution: the body of its event on `trading_bot.executions.<bot>`,
/// without the bot, the execution ID and the time.
#[derive(Debug)]
struct Outcome {
    /// `filled`, `rejected`, `failed`, `unknown` or `skipped`.
    outcome: &'static str,
    /// Why it was not filled (empty when it was).
    reason: String,
    /// The signal's side; `None` when there was no signal.
    side: Option<Side>,
    /// Units ordered or filled (unsigned; 0 without a signal).
    qty: f64,
    /// The fill's price, or the tick's when nothing was filled.
    price: f64,
}

impl Outcome {
    fn new(outcome: &'static str, reason: impl Into<String>, side: Option<Side>, qty: f64, price: f64) -> Self {
        Self { outcome, reason: reason.into(), side, qty, price }
    }
}

/// An error and its causes, `: `-separated (a `Failed` says only how many attempts it took).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

/// What the bot holds while it runs.
struct Bot<'a> {
    infra: &'a Infrastructure,
    args: &'a Args,
    exchange: Arc<Exchange>,
    orders: Policy<Fill, ExchangeError>,
    queries: Policy<Option<Fill>, ExchangeError>,
    strategy: Strategy,
    retries: Arc<std::sync::atomic::AtomicU64>,
    /// Orders whose outcome is unknown (a timeout, a dropped connection), by client order ID.
    pending: Vec<String>,
    cash: f64,
    position: f64,
    last_price: f64,
    summary: Summary,
}

impl<'a> Bot<'a> {
    fn new(infra: &'a Infrastructure, args: &'a Args) -> Self {
        let config = infra.config();
        // The exchange's breaker: the configured thresholds, but open for 1 s (the preset's 30 s
        // would outlast the demo). Created in the facade's registry, so `health()` reports it
        // and its state changes go on the bus.
        let settings = BreakerSettings::from_config(&config.resilience.breaker).open_duration(Duration::from_secs(1));
        infra.breakers().get_or_insert_with(EXCHANGE, || settings);
        let retries = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = Arc::clone(&retries);
        let retry = Retry::from_config(&config.resilience.retry)
            .backoff(infra_facade::resilience::Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(40),
                multiplier: 2.0,
                jitter: infra_facade::config::Jitter::Full,
            })
            .on_retry(move |event| {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(attempt = event.attempt, error = %event.error, "order retried: it was certainly not applied");
            });
        // Placing an order is not idempotent: never repeated after a timeout or a dropped
        // connection (`Idempotency::NonIdempotent` over `ExchangeError`'s `RetryClass`).
        let orders = infra
            .policy(EXCHANGE, Idempotency::NonIdempotent)
            .retry(retry.clone().idempotency(Idempotency::NonIdempotent))
            .timeout(Duration::from_millis(150))
            .deadline(Duration::from_millis(400))
            .build();
        // An order's status, by client order ID, is safe to ask again.
        let queries = infra
            .policy(EXCHANGE, Idempotency::Idempotent)
            .retry(Retry::from_config(&config.resilience.retry).idempotency(Idempotency::Idempotent).max_attempts(2))
            .timeout(Duration::from_millis(150))
            .deadline(Duration::from_millis(400))
            .build();
        Self {
            infra,
            args,
            exchange: Arc::new(Exchange::new(args.seed)),
            orders,
            queries,
            strategy: Strategy::new(),
            retries,
            pending: Vec::new(),
            cash: 0.0,
            position: 0.0,
            last_price: sim::START_PRICE,
            summary: Summary::default(),
        }
    }

    async fn run(mut self) -> Result<Summary, BotError> {
        let infra = self.infra;
        let bot_id = infra.emergency().bot_id().to_owned();
        let ticks = self.args.seconds * 1000 / TICK.as_millis() as u64;
        let status = infra.emergency().status();
        tracing::info!(
            bot_id,
            seed = self.args.seed,
            ticks,
            daily_loss_limit = infra.config().emergency.daily_loss_limit,
            state = infra.state().backend(),
            emergency = %status.state,
            metrics = infra.metrics_addr().map(|a| format!("http://{a}/metrics")),
            "trading bot starting (halt it with `infractl emergency halt --global --reason ...`)"
        );
        if !status.state.can_trade() {
            // A halt persisted in the store (Redis) outlives the process: a person resumes it.
            tracing::warn!(scope = %status.scope, reason = status.reason, "starting halted: no order will be sent");
            self.summary.halted_at_execution = Some(0);
        }
        let channel = format!("{PRICES}.{bot_id}");
        let mut prices = infra
            .events()
            .stream(Topic::from(channel.as_str()), SubscribeOptions::default())
            .await
            .map_err(BotError::Events)?;
        let feed = tokio::spawn(sim::price_feed(Arc::clone(infra.events()), channel, self.args.seed, ticks, TICK));
        let run_id: String = CorrelationId::new().as_str().chars().take(8).collect();
        let mut last_state = status.state;
        // Ctrl-C ends the run early, with its summary and an orderly close.
        let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
        loop {
            let next = tokio::select! {
                biased;
                _ = &mut interrupted => {
                    tracing::warn!("interrupted: stopping");
                    self.summary.interrupted = true;
                    break;
                }
                next = tokio::time::timeout(TICK * 20, prices.next()) => next,
            };
            let event = match next {
                Ok(Some(event)) => event,
                Ok(None) => break,
                // A quiet feed: it ended (an event lost on a Redis reconnect), or it is late.
                Err(_) if feed.is_finished() => break,
                Err(_) => continue,
            };
            let Ok(tick) = event.decode::<PriceTick>() else { continue };
            let execution = format!("exec-{run_id}-{:05}", tick.seq);
            LogContext::execution(&execution, &bot_id, STRATEGY)
                .run(async {
                    let outcome = self.execute(tick).await;
                    self.publish_execution(&bot_id, &execution, outcome).await;
                })
                .await;
            let state = infra.emergency().state();
            if state != last_state {
                let status = infra.emergency().status();
                tracing::warn!(from = %last_state, to = %state, scope = %status.scope, reason = status.reason, "emergency state changed");
                if !state.can_trade() && self.summary.halted_at_execution.is_none() {
                    self.summary.halted_at_execution = Some(self.summary.executions);
                }
                last_state = state;
            }
            if tick.last {
                break;
            }
        }
        feed.abort();
        Ok(self.finish(&bot_id))
    }

    /// One execution: mark to market, reconcile, check the loss limit, maybe trade.
    async fn execute(&mut self, tick: PriceTick) -> Outcome {
        self.summary.executions += 1;
        self.last_price = tick.price;
        self.exchange.advance(tick.seq, tick.price);
        self.reconcile().await;
        self.check_loss().await;
        let Some(side) = self.strategy.signal(tick.price, self.position) else {
            return Outcome::new("skipped", "no signal", None, 0.0, tick.price);
        };
        let emergency = self.infra.emergency();
        let qty = 1.0;
        if !emergency.can_trade() {
            self.summary.rejected_by_emergency += 1;
            let state = emergency.state();
            tracing::debug!(?side, %state, "signal not traded: trading is halted");
            return Outcome::new("rejected", format!("emergency: {state}"), Some(side), qty, tick.price);
        }
        let order = Order { client_id: format!("{}-{}", self.args.seed, tick.seq), side, qty };
        self.summary.orders_sent += 1;
        let attempt = std::sync::atomic::AtomicU32::new(0);
        let result = self
            .orders
            .call(|| {
                let n = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Checked again before every attempt: a retry is an order too.
                let allowed = emergency.can_trade();
                let (exchange, order) = (Arc::clone(&self.exchange), order.clone());
                async move { if allowed { exchange.place(&order, n).await } else { Err(ExchangeError::Halted) } }
            })
            .await;
        let not_filled = |outcome, reason: String| Outcome::new(outcome, reason, Some(side), qty, tick.price);
        let outcome = match result {
            Ok(fill) => {
                self.book(&order.client_id, fill, false).await;
                Outcome::new("filled", "", Some(side), fill.qty.abs(), fill.price)
            }
            Err(ResilienceError::Failed { source: ExchangeError::Halted, .. }) => {
                self.summary.rejected_by_emergency += 1;
                not_filled("rejected", format!("emergency: {}", emergency.state()))
            }
            Err(ResilienceError::Failed { source: error @ ExchangeError::Rejected(why), .. }) => {
                // The exchange's refusal is a failed order; `rejected` means the bot's own gates.
                self.summary.orders_rejected += 1;
                tracing::info!(why, "order rejected by the exchange");
                not_filled("failed", error.to_string())
            }
            Err(ResilienceError::CircuitOpen { breaker, .. }) => {
                self.summary.breaker_rejections += 1;
                tracing::info!("order not sent: the exchange's circuit breaker is open");
                not_filled("rejected", format!("breaker: {breaker} open"))
            }
            Err(error) if may_have_been_applied(&error) => {
                self.summary.unknown_outcomes += 1;
                tracing::warn!(%error, client_id = order.client_id, "order outcome unknown: not retried, will reconcile");
                self.pending.push(order.client_id);
                not_filled("unknown", error_chain(&error))
            }
            Err(error) => {
                self.summary.orders_failed += 1;
                tracing::warn!(%error, "order failed (certainly not applied)");
                not_filled("failed", error_chain(&error))
            }
        };
        self.check_loss().await;
        outcome
    }

    /// Publishes what became of an execution on `trading_bot.executions.<bot>` (a lost event
    /// is logged, never a reason to stop trading).
    async fn publish_execution(&self, bot_id: &str, execution_id: &str, outcome: Outcome) {
        let Outcome { outcome, reason, side, qty, price } = outcome;
        let event = serde_json::json!({
            "bot": bot_id,
            "execution_id": execution_id,
            "at_ms": now_ms(),
            "outcome": outcome,
            "reason": reason,
            "side": side,
            "qty": qty,
            "price": price,
        });
        let channel = format!("{EXECUTIONS}.{bot_id}");
        if let Err(error) = self.infra.events().publish_json(&channel, &event).await {
            tracing::warn!(%error, "cannot publish the execution");
        }
    }

    /// Asks the exchange about orders whose outcome is unknown (an idempotent query).
    async fn reconcile(&mut self) {
        for client_id in std::mem::take(&mut self.pending) {
            let exchange = Arc::clone(&self.exchange);
            match self.queries.call(|| exchange.order_status(client_id.clone())).await {
                Ok(Some(fill)) => self.book(&client_id, fill, true).await,
                Ok(None) => tracing::info!(client_id, "reconciled: the order was not applied"),
                Err(_) => self.pending.push(client_id),
            }
        }
    }

    /// Books a fill: position and cash, the state store, an event on the bus.
    async fn book(&mut self, client_id: &str, fill: Fill, reconciled: bool) {
        self.summary.trades += 1;
        self.summary.reconciled_fills += u64::from(reconciled);
        self.position += fill.qty;
        self.cash -= fill.qty * fill.price + fill.fee;
        let state = self.infra.state();
        let key = format!("trading_bot:{}:position", self.infra.emergency().bot_id());
        if let Err(error) = state.set_json(&key, &self.position, None).await {
            tracing::warn!(%error, "cannot record the position");
        }
        if let Err(error) = state.incr("trading_bot:trades", 1).await {
            tracing::warn!(%error, "cannot count the trade");
        }
        let event = serde_json::json!({"client_id": client_id, "fill": fill, "reconciled": reconciled});
        let channel = format!("{FILLS}.{}", self.infra.emergency().bot_id());
        if let Err(error) = self.infra.events().publish_json(&channel, &event).await {
            tracing::warn!(%error, "cannot publish the fill");
        }
        tracing::info!(client_id, qty = fill.qty, price = fill.price, position = self.position, reconciled, "filled");
    }

    fn pnl(&self) -> f64 {
        self.cash + self.position * self.last_price
    }

    async fn check_loss(&self) {
        // No I/O unless the limit's status changes (alert, halt).
        if let Err(error) = self.infra.emergency().check_daily_loss(self.pnl()).await {
            tracing::warn!(%error, "cannot check the daily loss limit");
        }
    }

    fn finish(mut self, bot_id: &str) -> Summary {
        let config = self.infra.config();
        let breaker = self.infra.breaker(EXCHANGE).metrics();
        tracing::info!(state = %breaker.state, failures = breaker.failures, rejections = breaker.rejections, "exchange breaker");
        let summary = &mut self.summary;
        summary.retries = self.retries.load(std::sync::atomic::Ordering::Relaxed);
        summary.final_state = self.infra.emergency().state().to_string();
        summary.position = self.position;
        summary.pnl = ((self.cash + self.position * self.last_price) * 1e4).round() / 1e4;
        summary.daily_loss_limit = config.emergency.daily_loss_limit;
        summary.seed = self.args.seed;
        summary.seconds = self.args.seconds;
        summary.environment = config.environment.to_string();
        summary.bot_id = bot_id.to_owned();
        summary.state_backend = self.infra.state().backend();
        self.summary
    }
}

/// Whether a failed order may have reached the exchange (then it is reconciled, not retried).
fn may_have_been_applied(error: &ResilienceError<ExchangeError>) -> bool {
    match error {
        ResilienceError::Failed { source, .. } => source.may_have_been_applied(),
        ResilienceError::Timeout { .. } | ResilienceError::DeadlineExceeded { .. } => true,
        _ => false,
    }
}
