//! The `trading_bot` example as a real process, in a short mode: it runs to its summary (the
//! last line on stdout, JSON), a breached daily-loss limit halts it, and bad arguments exit 2
//! with the usage.
//!
//! The example is built once per test binary by the cargo that runs the tests (`--offline`,
//! with this test's features), then run with a deadline. With the `redis` feature, a global
//! halt issued by another process on a real Redis (infra-testkit) stops it.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;

/// How long one run of the bot may take, startup included (it simulates one second).
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The built `trading_bot` executable.
fn bot() -> &'static Path {
    static BOT: OnceLock<PathBuf> = OnceLock::new();
    BOT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("the workspace root");
        let features: Vec<&str> =
            [cfg!(feature = "redis").then_some("redis"), cfg!(feature = "tower").then_some("tower")]
                .into_iter()
                .flatten()
                .collect();
        let all = cfg!(all(feature = "redis", feature = "tower"));
        infra_testkit::cargo_example(root, "infra-facade", "trading_bot", &features, all).expect("the example builds")
    })
}

/// What one run printed.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The last line on stdout, as JSON.
    fn summary(&self) -> Value {
        assert_eq!(self.code, Some(0), "the bot failed; stderr:\n{}", self.stderr);
        let last = self.stdout.lines().last().unwrap_or_else(|| panic!("no stdout; stderr:\n{}", self.stderr));
        serde_json::from_str(last).unwrap_or_else(|e| panic!("the last line is not JSON ({e}): {last}"))
    }
}

/// A bot process and the threads draining its pipes.
struct Running {
    child: std::process::Child,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
}

/// Starts the bot with `args` and `env` (no other `INFRA_` variable; `INFRA_ENV` defaults to
/// development, so memory backends).
fn spawn(args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut command = Command::new(bot());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("INFRA_") {
            command.env_remove(name);
        }
    }
    command.env("INFRA_ENV", "development").env("INFRA_LOGGING__LEVEL", "info");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command
        .args(args)
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bot starts");
    // Both pipes are drained while it runs, so a chatty log never blocks it.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    Running { child, stdout, stderr }
}

impl Running {
    /// Waits for the bot to exit, killing it after [`RUN_LIMIT`].
    fn wait(mut self) -> Run {
        let deadline = Instant::now() + RUN_LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("the bot's status") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the bot did not finish within {RUN_LIMIT:?}; stderr:\n{}",
                    self.stderr.join().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Run {
            code: status.code(),
            stdout: self.stdout.join().expect("stdout read"),
            stderr: self.stderr.join().expect("stderr read"),
        }
    }
}

/// Runs the bot with `args` on memory backends.
fn run(args: &[&str]) -> Run {
    spawn(args, &[]).wait()
}

fn count(summary: &Value, field: &str) -> u64 {
    summary[field].as_u64().unwrap_or_else(|| panic!("`{field}` is not a count: {summary}"))
}

#[test]
fn a_short_run_ends_with_its_json_summary_on_stdout() {
    let run = run(&["--seconds", "1", "--seed", "7"]);
    let summary = run.summary();
    let executions = count(&summary, "executions");
    assert!((1..=20).contains(&executions), "one execution per 50 ms tick at most: {summary}");
    let (trades, sent) = (count(&summary, "trades"), count(&summary, "orders_sent"));
    assert!(trades <= sent + count(&summary, "reconciled_fills"), "{summary}");
    assert!(sent <= executions, "at most one order per execution: {summary}");
    for field in ["rejected_by_emergency", "breaker_rejections", "retries"] {
        count(&summary, field);
    }
    let state = summary["final_state"].as_str().expect("final_state");
    assert!(["NORMAL", "ALERT", "HALT", "SHUTDOWN"].contains(&state), "{summary}");
    assert_eq!((summary["seed"].as_u64(), summary["seconds"].as_u64()), (Some(7), Some(1)));
    assert_eq!(summary["environment"], "development");
    assert_eq!(summary["state_backend"], "memory");
    assert!(summary["pnl"].is_f64(), "{summary}");

    // The logs went to stderr, each execution's lines under its correlation ID.
    assert_eq!(run.stdout.lines().count(), 1, "stdout holds only the summary: {}", run.stdout);
    assert!(run.stderr.contains("infrastructure ready"), "{}", run.stderr);
    assert!(run.stderr.contains("infrastructure closed"), "{}", run.stderr);
    if trades > 0 {
        assert!(run.stderr.contains("correlation_id=exec-"), "{}", run.stderr);
    }
}

#[test]
fn a_breached_daily_loss_limit_halts_the_bot_and_refuses_later_orders() {
    // Fees and the spread put the first fill's P&L below -0.1 at once.
    let summary = run(&["--seconds", "1", "--seed", "7", "--loss-limit", "0.1"]).summary();
    assert_eq!(summary["final_state"], "HALT", "{summary}");
    assert_eq!(summary["daily_loss_limit"], -0.1);
    assert!(count(&summary, "trades") >= 1, "{summary}");
    assert!(count(&summary, "rejected_by_emergency") > 0, "signals after the halt are refused: {summary}");
    let halted_at = summary["halted_at_execution"].as_u64().expect("halted_at_execution");
    assert!(halted_at <= count(&summary, "executions"), "{summary}");
}

#[test]
fn bad_arguments_and_an_unknown_environment_exit_2() {
    for args in [&["--seconds", "0"][..], &["--bogus"], &["--seed"], &["--loss-limit", "-5"], &["--seconds", "ten"]] {
        let run = run(args);
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(run.stderr.contains("usage: trading_bot"), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    let unknown = spawn(&[], &[("INFRA_ENV", "prodution")]).wait();
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
    assert!(unknown.stderr.contains("development, staging, production"), "{}", unknown.stderr);
    if !cfg!(feature = "redis") {
        let staging = spawn(&[], &[("INFRA_ENV", "staging")]).wait();
        assert_eq!(staging.code, Some(2), "{staging:?}");
        assert!(staging.stderr.contains("--features redis --example trading_bot"), "{}", staging.stderr);
    }
    let help = run(&["--help"]);
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.starts_with("usage: trading_bot"), "{}", help.stdout);
}

/// A halt issued by another process (here, the test's own infrastructure on the same Redis, as
/// `infractl emergency halt --global` would) stops the bot's trading: it ends halted, and the
/// signals after the halt are refused. Every execution is published on
/// `trading_bot.executions.<bot>`, the refused ones as `rejected` with an `emergency:` reason.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_halt_from_another_process_stops_the_bot_on_redis() {
    use futures::StreamExt;
    use infra_facade::{
        Infrastructure,
        config::{Config, Environment, RedisUrl},
        prelude::*,
    };

    let server = infra_testkit::RedisServer::start().expect("redis-server must be installed");
    let url = server.url();
    let mut config = Config::for_env(Environment::Staging);
    config.state.redis_url = Some(RedisUrl::parse(&url).unwrap());
    config.events.redis_url = Some(RedisUrl::parse(&url).unwrap());
    config.emergency.bot_id = "operator".to_owned();
    let operator = Infrastructure::builder(config).skip_logging().build().await.unwrap();
    let mut prices = operator
        .events()
        .stream(Topic::from("trading_bot.prices.tb-redis"), SubscribeOptions::default())
        .await
        .unwrap();
    let mut executions = operator
        .events()
        .stream(Topic::from("trading_bot.executions.tb-redis"), SubscribeOptions::default())
        .await
        .unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let collector = tokio::spawn(async move {
        while let Some(event) = executions.next().await {
            if seen_tx.send(event.decode::<Value>().expect("an execution is JSON")).is_err() {
                return;
            }
        }
    });

    let env = [
        ("INFRA_ENV", "staging"),
        ("INFRA_STATE__REDIS_URL", url.as_str()),
        ("INFRA_EVENTS__REDIS_URL", url.as_str()),
        ("INFRA_EMERGENCY__BOT_ID", "tb-redis"),
    ];
    let bot = spawn(&["--seconds", "4", "--seed", "3"], &env);
    // Trading for half a second (ten ticks) before the halt.
    let ten_ticks = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = prices.next().await {
            if event.decode::<Value>().is_ok_and(|tick| tick["seq"].as_u64() >= Some(10)) {
                return;
            }
        }
    });
    ten_ticks.await.expect("the bot's price feed runs on the shared bus");
    operator.emergency().halt(Scope::Global, "ops", "drill from another process").await.unwrap();

    let run = tokio::task::spawn_blocking(move || bot.wait()).await.unwrap();
    let summary = run.summary();
    assert_eq!(summary["final_state"], "HALT", "{summary}");
    assert_eq!((summary["environment"].as_str(), summary["state_backend"].as_str()), (Some("staging"), Some("redis")));
    let halted_at = summary["halted_at_execution"].as_u64().expect("the bot saw the halt");
    assert!((10..count(&summary, "executions")).contains(&halted_at), "{summary}");
    assert!(count(&summary, "rejected_by_emergency") > 0, "{summary}");
    assert!(run.stderr.contains("drill from another process"), "the bot logs why it stopped: {}", run.stderr);

    // One event per execution, in order; the bot has exited, so the rest are in flight.
    let total = count(&summary, "executions");
    let mut events = Vec::new();
    let all = tokio::time::timeout(Duration::from_secs(10), async {
        while (events.len() as u64) < total {
            events.push(seen.recv().await.expect("the collector runs"));
        }
    });
    all.await.unwrap_or_else(|_| panic!("{} of {total} executions published: {events:?}", events.len()));
    collector.abort();
    let outcomes = ["filled", "rejected", "failed", "unknown", "skipped"];
    for event in &events {
        assert_eq!(event["bot"], "tb-redis", "{event}");
        assert!(event["execution_id"].as_str().is_some_and(|id| id.starts_with("exec-")), "{event}");
        assert!(event["at_ms"].as_u64().is_some_and(|at| at > 0), "{event}");
        assert!(outcomes.contains(&event["outcome"].as_str().unwrap_or_default()), "{event}");
        assert!(event["price"].is_f64() && event["qty"].is_f64(), "{event}");
        if event["outcome"] == "skipped" {
            assert_eq!((&event["reason"], &event["side"]), (&Value::from("no signal"), &Value::Null), "{event}");
        } else {
            assert!(["buy", "sell"].contains(&event["side"].as_str().unwrap_or_default()), "{event}");
        }
    }
    let filled = events.iter().filter(|e| e["outcome"] == "filled").count() as u64;
    assert_eq!(filled, count(&summary, "trades") - count(&summary, "reconciled_fills"), "{summary}");
    let halted: Vec<&Value> =
        events.iter().filter(|e| e["outcome"] == "rejected" && e["reason"] == "emergency: HALT").collect();
    assert_eq!(halted.len() as u64, count(&summary, "rejected_by_emergency"), "{events:?}");
    let after_halt = &events[usize::try_from(halted_at).unwrap()..];
    assert!(after_halt.iter().all(|e| e["outcome"] != "filled"), "no fill after the halt: {after_halt:?}");
    operator.close().await.unwrap();
}
