//! The chaos bot: arguments, the stack, the workers, the stop sequence and the report.

use std::{
    collections::BTreeMap,
    process::ExitCode,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use infra_facade::{
    config::{EventsConfig, EventsMode, StateConfig},
    events::{Start, SubscriptionStats},
    prelude::*,
};
use serde_json::{Value, json};

use crate::tally::{Outcomes, Receiver};

const USAGE: &str = "usage: chaos_bot --url URL --namespace NS --bot ID --fleet ID,ID,... [--replica-acks N]";
const COUNTER: &str = "counter";
const EPHEMERAL: &str = "chaos.eph";
const DURABLE: &str = "chaos.durable";
const GROUP: &str = "chaos";
const INCREMENT_EVERY: Duration = Duration::from_millis(10);
const EPHEMERAL_EVERY: Duration = Duration::from_millis(20);
const DURABLE_EVERY: Duration = Duration::from_millis(50);
const PROGRESS_EVERY: Duration = Duration::from_millis(50);
const CONTROL_EVERY: Duration = Duration::from_millis(50);
/// How long the driver may take to say go, and to say exit after the stop (the stop itself
/// comes when the run is over: the bot waits for it as long as its driver lives).
const CONTROL_LIMIT: Duration = Duration::from_secs(120);
/// How long the final markers may take.
const FINISH_LIMIT: Duration = Duration::from_secs(20);
/// Bound of each step of the shutdown (unsubscribe, close): a longer one is a hung task.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(15);

struct Args {
    url: String,
    namespace: String,
    bot: String,
    fleet: Vec<String>,
    /// Replicas that must acknowledge each state write and durable publish (0: none).
    replica_acks: u32,
}

/// How long a write waits for its replica acknowledgements.
const REPLICA_ACK_TIMEOUT: Duration = Duration::from_millis(500);

fn parse_args() -> Result<Args, String> {
    let (mut url, mut namespace, mut bot, mut fleet) = (None, None, None, None);
    let mut replica_acks = 0;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("`{flag}` needs a value"))?;
        match flag.as_str() {
            "--url" => url = Some(value),
            "--namespace" => namespace = Some(value),
            "--bot" => bot = Some(value),
            "--fleet" => fleet = Some(value.split(',').map(str::to_owned).collect()),
            "--replica-acks" => {
                replica_acks = value.parse().map_err(|_| format!("`--replica-acks` expects a count, not `{value}`"))?;
            }
            _ => return Err(format!("unexpected argument `{flag}`")),
        }
    }
    match (url, namespace, bot, fleet) {
        (Some(url), Some(namespace), Some(bot), Some(fleet)) => Ok(Args { url, namespace, bot, fleet, replica_acks }),
        _ => Err("--url, --namespace, --bot and --fleet are required".to_owned()),
    }
}

/// Milliseconds since the Unix epoch (the driver runs on the same machine).
fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether `error`'s chain holds the facade's breaker refusal.
fn refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(cause) = source {
        if matches!(cause.downcast_ref::<FacadeError>(), Some(FacadeError::Rejected { .. })) {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Counters the progress lines print and the workers move.
#[derive(Default)]
struct Progress {
    increments: AtomicU64,
    ephemeral: AtomicU64,
    durable: AtomicU64,
}

/// Shared by the workers and the handlers.
#[derive(Default)]
struct Shared {
    progress: Progress,
    stop: AtomicBool,
    counter: Mutex<Outcomes>,
    ephemeral_published: Mutex<Outcomes>,
    durable_published: Mutex<Outcomes>,
    ephemeral: Mutex<Receiver>,
    /// Durable events handled here: sequence numbers by publisher, in order of handling.
    durable: Mutex<BTreeMap<String, Vec<u64>>>,
    /// The ephemeral subscription, once subscribed (its handler reads its loss counters).
    ephemeral_sub: Mutex<Option<Subscription>>,
    halt_applied_ms: Mutex<Option<(u64, u64)>>,
    resume_applied_ms: Mutex<Option<(u64, u64)>>,
}

pub(crate) fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("chaos_bot: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chaos_bot: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(report) => {
            println!("{}", json!({ "report": report }));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("chaos_bot: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration: staging on `url`, with timeouts and a breaker tuned to notice a fault
/// within half a second and try again a second later.
fn config(args: &Args) -> Result<Config, String> {
    let mut config = Config::for_env(Environment::Staging);
    config.logging.level = "warn".to_owned();
    let timeout = Duration::from_millis(500);
    config.state = StateConfig::redis(args.url.as_str())
        .map_err(|e| e.to_string())?
        .namespace(&args.namespace)
        .operation_timeout(timeout)
        .connect_timeout(Duration::from_secs(1))
        .replica_acks(args.replica_acks, REPLICA_ACK_TIMEOUT);
    config.events = EventsConfig::redis(args.url.as_str())
        .map_err(|e| e.to_string())?
        .namespace(&args.namespace)
        .operation_timeout(timeout)
        .connect_timeout(Duration::from_secs(1));
    config.emergency.bot_id.clone_from(&args.bot);
    config.resilience.retry.initial_delay = Duration::from_millis(20);
    config.resilience.retry.max_delay = Duration::from_millis(200);
    config.resilience.retry.max_elapsed = Duration::from_secs(2);
    config.resilience.breaker.open_duration = Duration::from_secs(1);
    config.resilience.timeout.per_attempt = Duration::from_secs(1);
    config.resilience.timeout.overall = Duration::from_secs(3);
    Ok(config)
}

async fn run(args: Args) -> Result<Value, String> {
    let config = config(&args)?;
    let durable_config = config
        .events
        .clone()
        .mode(EventsMode::Durable)
        .claim_after(Duration::from_secs(2))
        .max_deliveries(1000)
        .stream_max_len(10_000_000)
        .replica_acks(args.replica_acks, REPLICA_ACK_TIMEOUT);
    let options = ControllerOptions::default().resync_interval(Duration::from_millis(250)).version("chaos_bot");
    let infra = Infrastructure::builder(config)
        .controller_options(options)
        .log_writer(std::io::stderr())
        .build()
        .await
        .map_err(|e| format!("cannot assemble the infrastructure: {e}"))?;
    let durable = infra_facade::events::from_config(&durable_config, &args.bot).map_err(|e| e.to_string())?;
    durable.connect().await.map_err(|e| format!("cannot connect the durable bus: {e}"))?;
    let shared = Arc::new(Shared::default());

    let subscription = subscribe_ephemeral(&infra, &shared).await?;
    *lock(&shared.ephemeral_sub) = Some(subscription);
    let durable_sub = subscribe_durable(durable.as_ref(), &shared).await?;
    let watcher = tokio::spawn(watch_emergency(infra.emergency().watch(), Arc::clone(&shared)));

    infra.state().set_json(&format!("ctl:ready:{}", args.bot), &now_ms(), None).await.map_err(|e| e.to_string())?;
    wait_for_key(&infra, "ctl:go", Some(CONTROL_LIMIT)).await?;
    let started = now_ms();
    let printer = tokio::spawn(print_progress(Arc::clone(&shared)));
    let workers = vec![
        tokio::spawn(increment(infra.state().clone(), infra.emergency().clone(), Arc::clone(&shared))),
        tokio::spawn(publish_ephemeral(infra.events().clone(), args.bot.clone(), Arc::clone(&shared))),
        tokio::spawn(publish_durable(Arc::clone(&durable), args.bot.clone(), Arc::clone(&shared))),
    ];
    wait_for_key(&infra, "ctl:stop", None).await?;
    shared.stop.store(true, Ordering::Relaxed);
    let mut hung = Vec::new();
    for (name, worker) in ["increment", "publish_ephemeral", "publish_durable"].into_iter().zip(workers) {
        if tokio::time::timeout(SHUTDOWN_LIMIT, worker).await.is_err() {
            hung.push(name);
        }
    }
    println!("{}", json!({"stopped": {"t": now_ms(), "hung": hung}}));
    let final_marker = publish_final_marker(&infra, &args.bot, &shared).await;
    let all_finished = wait_for_markers(&args.fleet, &shared).await;
    wait_for_key(&infra, "ctl:exit", Some(CONTROL_LIMIT)).await?;
    printer.abort();

    let shutdown_started = Instant::now();
    let ephemeral_sub = lock(&shared.ephemeral_sub).take();
    let unsubscribe = async {
        let ephemeral = match ephemeral_sub {
            Some(subscription) => Some(subscription.unsubscribe().await),
            None => None,
        };
        (ephemeral, Some(durable_sub.unsubscribe().await))
    };
    let (ephemeral_stats, durable_stats) = match tokio::time::timeout(SHUTDOWN_LIMIT, unsubscribe).await {
        Ok(stats) => stats,
        Err(_) => {
            hung.push("unsubscribe");
            (None, None)
        }
    };
    let close_durable = tokio::time::timeout(SHUTDOWN_LIMIT, durable.close()).await;
    let close_infra = tokio::time::timeout(SHUTDOWN_LIMIT, infra.close()).await;
    let closed = |result: Result<Result<(), String>, tokio::time::error::Elapsed>,
                  what: &'static str,
                  hung: &mut Vec<&str>| match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => {
            hung.push(what);
            Some("timed out".to_owned())
        }
    };
    let close_errors = [
        closed(close_durable.map(|r| r.map_err(|e| e.to_string())), "close durable bus", &mut hung),
        closed(close_infra.map(|r| r.map_err(|e| e.to_string())), "close infrastructure", &mut hung),
    ];
    watcher.abort();
    let shutdown_ms = shutdown_started.elapsed().as_millis();

    let ephemeral = lock(&shared.ephemeral);
    let halt = *lock(&shared.halt_applied_ms);
    let resume = *lock(&shared.resume_applied_ms);
    Ok(json!({
        "bot": args.bot,
        "pid": std::process::id(),
        "started_ms": started,
        "counter": *lock(&shared.counter),
        "ephemeral": {
            "published": *lock(&shared.ephemeral_published),
            "final_marker": final_marker,
            "all_markers": all_finished,
            "from": ephemeral.sequences,
            "stats": ephemeral_stats.as_deref().map(stats_json),
        },
        "durable": {
            "published": *lock(&shared.durable_published),
            "handled": *lock(&shared.durable),
            "stats": durable_stats.as_deref().map(stats_json),
        },
        "emergency": {
            "halt_applied_ms": halt.map(|(at, _)| at),
            "halt_seq": halt.map(|(_, seq)| seq),
            "resume_applied_ms": resume.map(|(at, _)| at),
            "resume_seq": resume.map(|(_, seq)| seq),
        },
        "hung": hung,
        "close_errors": close_errors.into_iter().flatten().collect::<Vec<_>>(),
        "shutdown_ms": shutdown_ms,
    }))
}

fn stats_json(stats: &SubscriptionStats) -> Value {
    json!({
        "received": stats.received(), "handled": stats.handled(), "errors": stats.errors(),
        "panics": stats.panics(), "dropped": stats.dropped(), "gaps": stats.gaps(),
        "redelivered": stats.redelivered(), "dead_lettered": stats.dead_lettered(),
        "trimmed": stats.trimmed(), "task_failures": stats.task_failures(),
    })
}

/// Polls the store for `key` until it exists (errors while Redis is away are expected), for at
/// most `limit`, and never longer than the driver that started this bot lives.
async fn wait_for_key(infra: &Infrastructure, key: &str, limit: Option<Duration>) -> Result<(), String> {
    let started = Instant::now();
    let parent = std::os::unix::process::parent_id();
    loop {
        if let Ok(Some(_)) = infra.state().get(key).await {
            return Ok(());
        }
        if let Some(limit) = limit.filter(|limit| started.elapsed() > *limit) {
            return Err(format!("`{key}` did not appear within {limit:?}"));
        }
        if std::os::unix::process::parent_id() != parent {
            return Err(format!("the driver exited before `{key}` appeared"));
        }
        tokio::time::sleep(CONTROL_EVERY).await;
    }
}

async fn subscribe_ephemeral(infra: &Infrastructure, shared: &Arc<Shared>) -> Result<Subscription, String> {
    let handler_shared = Arc::clone(shared);
    let handler = move |event: Envelope| {
        let shared = &handler_shared;
        if let infra_facade::events::Payload::Json(payload) = &event.payload {
            let (bot, seq) = (payload["bot"].as_str().unwrap_or_default(), payload["seq"].as_u64().unwrap_or_default());
            let fin = payload["fin"].as_bool().unwrap_or(false);
            let losses = lock(&shared.ephemeral_sub).as_ref().map_or(0, |s| s.stats().gaps() + s.stats().dropped());
            lock(&shared.ephemeral).note(bot, seq, fin, losses, now_ms());
            shared.progress.ephemeral.fetch_add(1, Ordering::Relaxed);
        }
        std::future::ready(())
    };
    let pattern = Pattern::parse(format!("{EPHEMERAL}.*")).map_err(|e| e.to_string())?;
    let subscription = infra
        .events()
        .subscribe(Topic::Pattern(pattern), Arc::new(handler), SubscribeOptions::default())
        .await
        .map_err(|e| format!("cannot subscribe to the ephemeral channels: {e}"))?;
    Ok(subscription)
}

async fn subscribe_durable(bus: &dyn EventBus, shared: &Arc<Shared>) -> Result<Subscription, String> {
    let handler_shared = Arc::clone(shared);
    let handler = move |event: Envelope| {
        let shared = &handler_shared;
        if let infra_facade::events::Payload::Json(payload) = &event.payload {
            let (bot, seq) = (payload["bot"].as_str().unwrap_or_default(), payload["seq"].as_u64().unwrap_or_default());
            lock(&shared.durable).entry(bot.to_owned()).or_default().push(seq);
            shared.progress.durable.fetch_add(1, Ordering::Relaxed);
        }
        std::future::ready(())
    };
    let options = SubscribeOptions::default().group(GROUP).start(Start::Beginning);
    bus.subscribe(Topic::Channel(DURABLE.to_owned()), Arc::new(handler), options)
        .await
        .map_err(|e| format!("cannot join the durable group: {e}"))
}

/// Notes when this bot applied a global halt, and the resume that lifted it.
async fn watch_emergency(mut status: tokio::sync::watch::Receiver<Status>, shared: Arc<Shared>) {
    loop {
        let now = status.borrow_and_update().clone();
        if now.global >= EmergencyState::Halt {
            lock(&shared.halt_applied_ms).get_or_insert((now_ms(), now.global_seq));
        } else if now.global == EmergencyState::Normal && lock(&shared.halt_applied_ms).is_some() {
            lock(&shared.resume_applied_ms).get_or_insert((now_ms(), now.global_seq));
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// Prints a progress line every [`PROGRESS_EVERY`].
async fn print_progress(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(PROGRESS_EVERY);
    loop {
        every.tick().await;
        let progress = &shared.progress;
        let line = json!({"progress": {
            "t": now_ms(),
            "inc": progress.increments.load(Ordering::Relaxed),
            "eph": progress.ephemeral.load(Ordering::Relaxed),
            "dur": progress.durable.load(Ordering::Relaxed),
        }});
        println!("{line}");
    }
}

fn ticker(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

/// Increments the shared counter while trading is allowed; an increment is never repeated.
async fn increment(state: Arc<infra_facade::ResilientStore>, emergency: EmergencyController, shared: Arc<Shared>) {
    let mut every = ticker(INCREMENT_EVERY);
    while !shared.stop.load(Ordering::Relaxed) {
        every.tick().await;
        if !emergency.can_trade() {
            continue;
        }
        lock(&shared.counter).attempts += 1;
        match state.incr(COUNTER, 1).await {
            Ok(_) => {
                lock(&shared.counter).ok += 1;
                shared.progress.increments.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => lock(&shared.counter).fail(None, e.may_have_been_applied(), refused(&e), e.to_string()),
        }
    }
}

/// Publishes `{bot, seq}` on `chaos.eph.<bot>` through the facade's bus.
async fn publish_ephemeral(bus: Arc<infra_facade::ResilientBus>, bot: String, shared: Arc<Shared>) {
    let channel = format!("{EPHEMERAL}.{bot}");
    let mut every = ticker(EPHEMERAL_EVERY);
    let mut seq = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        every.tick().await;
        let result = bus.publish_json(&channel, &json!({"bot": bot, "seq": seq})).await;
        let mut outcomes = lock(&shared.ephemeral_published);
        outcomes.attempts += 1;
        match result {
            Ok(_) => outcomes.ok += 1,
            Err(e) => outcomes.fail(Some(seq), e.may_have_been_applied(), refused(&e), e.to_string()),
        }
        seq += 1;
    }
}

/// Publishes `{bot, seq}` on the durable channel.
async fn publish_durable(bus: Arc<dyn EventBus>, bot: String, shared: Arc<Shared>) {
    let mut every = ticker(DURABLE_EVERY);
    let mut seq = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        every.tick().await;
        let result = bus.publish_json(DURABLE, &json!({"bot": bot, "seq": seq})).await;
        let mut outcomes = lock(&shared.durable_published);
        outcomes.attempts += 1;
        match result {
            Ok(_) => outcomes.ok += 1,
            Err(e) => outcomes.fail(Some(seq), e.may_have_been_applied(), refused(&e), e.to_string()),
        }
        seq += 1;
    }
}

/// Publishes the ephemeral marker `{bot, seq: count, fin: true}` until one publish is `Ok`;
/// says whether one was.
async fn publish_final_marker(infra: &Infrastructure, bot: &str, shared: &Shared) -> bool {
    let count = lock(&shared.ephemeral_published).attempts;
    let channel = format!("{EPHEMERAL}.{bot}");
    let deadline = Instant::now() + FINISH_LIMIT;
    while Instant::now() < deadline {
        if infra.events().publish_json(&channel, &json!({"bot": bot, "seq": count, "fin": true})).await.is_ok() {
            return true;
        }
        tokio::time::sleep(CONTROL_EVERY).await;
    }
    false
}

/// Waits until every bot's final marker arrived; says whether all did.
async fn wait_for_markers(fleet: &[String], shared: &Shared) -> bool {
    let deadline = Instant::now() + FINISH_LIMIT;
    loop {
        let all = {
            let receiver = lock(&shared.ephemeral);
            fleet.iter().all(|bot| receiver.sequences.get(bot).is_some_and(|s| s.finished))
        };
        if all || Instant::now() > deadline {
            return all;
        }
        tokio::time::sleep(CONTROL_EVERY).await;
    }
}
