//! `cargo xtask chaos [--short] [--bots N] [--seconds S]`: a fleet of `chaos_bot` processes
//! (crates/infra-facade/examples/chaos_bot.rs) doing state, ephemeral and durable event work on
//! one throwaway Redis while it is killed and restarted, paused with `CLIENT PAUSE`, frozen with
//! SIGSTOP, then, with the fleet halted through `infractl`, killed again; then the fleet is
//! resumed. Afterwards it checks the
//! bots' reports and writes the results into docs/reliability.md, between the chaos markers.
//!
//! Redis runs with `appendonly yes` and `appendfsync always`: a write Redis acknowledged
//! survives the kill, so the counter and the durable stream can be checked exactly (without
//! persistence a kill loses data by design, and nothing could be checked).

mod report;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, PoisonError},
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use infra_testkit::{RedisServer, Reply};
use serde_json::Value;

use crate::project_root;

const NAMESPACE: &str = "chaos";
/// How long the bots may take to connect and subscribe.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// How long the durable group may take to drain after the stop, and the fleet view to show
/// the halt.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// How long a bot may take to exit once told to: longer is a hung task.
const EXIT_LIMIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// The command line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    short: bool,
    bots: usize,
    /// Time between two faults (steady running, in which recovery is measured).
    gap: Duration,
    /// How long each fault lasts.
    hold: Duration,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let short = args.iter().any(|a| a == "--short");
        let (mut bots, mut seconds) = if short { (3, 30) } else { (4, 150) };
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let mut number = |what: &str| -> Result<u64, String> {
                let value = iter.next().ok_or_else(|| format!("`{what}` needs a value"))?;
                value.parse().map_err(|_| format!("`{what}` expects a whole number, not `{value}`"))
            };
            match arg.as_str() {
                "--short" => {}
                "--bots" => bots = usize::try_from(number("--bots")?).map_err(|e| e.to_string())?,
                "--seconds" => seconds = number("--seconds")?,
                other => return Err(format!("unexpected argument `{other}`")),
            }
        }
        if !(2..=16).contains(&bots) {
            return Err("--bots must be from 2 to 16".to_owned());
        }
        if seconds < 20 {
            return Err("--seconds must be at least 20".to_owned());
        }
        let hold = if short { 2 } else { 5 };
        // Five steady periods around four faults and the halt's own hold.
        let gap = (seconds.saturating_sub(hold * 5) / 5).max(3);
        Ok(Self { short, bots, gap: Duration::from_secs(gap), hold: Duration::from_secs(hold) })
    }
}

/// A progress sample of one bot: time (ms since the epoch) and its counts of Ok increments,
/// ephemeral events received and durable events handled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) t: u64,
    pub(crate) counts: [u64; 3],
}

/// What one bot printed, gathered while it runs.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) samples: Vec<Sample>,
    pub(crate) stopped: bool,
    pub(crate) report: Option<Value>,
    pub(crate) other_lines: Vec<String>,
}

/// A running bot.
pub(crate) struct Bot {
    pub(crate) id: String,
    child: Child,
    pub(crate) output: Arc<Mutex<Output>>,
    stdout: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
}

/// How a bot ended.
#[derive(Debug)]
pub(crate) struct Ended {
    pub(crate) id: String,
    pub(crate) status: Option<std::process::ExitStatus>,
    pub(crate) exit_ms: u64,
    pub(crate) panicked: bool,
    pub(crate) stderr_tail: String,
}

/// One fault as injected.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub(crate) name: &'static str,
    pub(crate) injected_ms: u64,
    pub(crate) ended_ms: u64,
    /// Which workloads must progress again after it (increments, ephemeral, durable).
    pub(crate) workloads: [bool; 3],
    pub(crate) note: String,
}

/// The halt issued during the chaos.
#[derive(Debug, Clone, Default)]
pub(crate) struct Halt {
    pub(crate) issued_ms: u64,
    /// The audit record's time and sequence.
    pub(crate) at_ms: u64,
    pub(crate) seq: u64,
    /// When `infractl emergency status --all` first showed every bot applying it.
    pub(crate) fleet_confirmed_ms: Option<u64>,
    pub(crate) resumed_ms: u64,
}

pub(crate) fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn run(options: Options) -> Result<(), String> {
    eprintln!("==> chaos: building chaos_bot and infractl");
    let binaries = build()?;
    let started = Instant::now();
    let server = RedisServer::builder()
        .label("chaos")
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .start()
        .map_err(|e| format!("cannot start redis-server: {e}"))?;
    let mut chaos = Chaos { server, binaries, faults: Vec::new(), halt: Halt::default() };
    let ids: Vec<String> = (0..options.bots).map(|i| format!("bot-{i}")).collect();
    eprintln!("==> chaos: {} bots on {} ({options:?})", ids.len(), chaos.server.url());
    let mut bots = Vec::new();
    for id in &ids {
        bots.push(chaos.spawn_bot(id, &ids)?);
    }
    let result = chaos.drive(&options, &bots);
    // Whatever happened, tell the bots to finish and collect them.
    let _ = chaos.set("ctl:stop");
    if result.is_ok() {
        chaos.wait_until_stopped(&bots);
        chaos.wait_until_drained();
    }
    let _ = chaos.set("ctl:exit");
    let ended: Vec<Ended> = bots.iter_mut().map(Bot::wait).collect();
    result?;
    let counter = match chaos.server.command(&["GET", &format!("{NAMESPACE}:counter")]) {
        Ok(reply) => reply.as_text().and_then(|text| text.parse().ok()),
        Err(_) => None,
    };
    let outcome = report::Outcome::evaluate(&options, &bots, &ended, &chaos.faults, &chaos.halt, counter);
    let table = outcome.markdown(started.elapsed());
    eprintln!("{table}");
    if options.short {
        // CI's short run leaves the committed figures alone.
        let target = chaos.binaries.bot.ancestors().nth(3).unwrap_or(&chaos.binaries.bot).join("chaos-short.md");
        std::fs::write(&target, &table).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        eprintln!("==> chaos: results written to {} ({:.0?})", target.display(), started.elapsed());
    } else {
        report::write_into_docs(&project_root().join("docs/reliability.md"), &table)?;
        eprintln!("==> chaos: results written to docs/reliability.md ({:.0?})", started.elapsed());
    }
    match outcome.failures() {
        failures if failures.is_empty() => Ok(()),
        failures => Err(format!("chaos checks failed: {}", failures.join("; "))),
    }
}

/// The executables of `chaos_bot` and `infractl`.
struct Binaries {
    bot: PathBuf,
    infractl: PathBuf,
}

/// Builds both as `cargo test --workspace --all-features` resolves features, so CI reuses what
/// its test step built.
fn build() -> Result<Binaries, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(&cargo)
        .current_dir(project_root())
        .args(["build", "--offline", "--workspace", "--all-features", "--example", "chaos_bot", "--bin", "infractl"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    if !output.status.success() {
        return Err(format!("building chaos_bot and infractl failed with {}", output.status));
    }
    let mut found = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else { continue };
        if message["reason"] == "compiler-artifact"
            && let (Some(name), Some(path)) = (message["target"]["name"].as_str(), message["executable"].as_str())
        {
            found.insert(name.to_owned(), PathBuf::from(path));
        }
    }
    match (found.remove("chaos_bot"), found.remove("infractl")) {
        (Some(bot), Some(infractl)) => Ok(Binaries { bot, infractl }),
        _ => Err("cargo named no chaos_bot or infractl executable".to_owned()),
    }
}

struct Chaos {
    server: RedisServer,
    binaries: Binaries,
    faults: Vec<Fault>,
    halt: Halt,
}

impl Chaos {
    fn spawn_bot(&self, id: &str, fleet: &[String]) -> Result<Bot, String> {
        let mut command = Command::new(&self.binaries.bot);
        clear_infra_env(&mut command);
        let url = self.server.url();
        let mut child = command
            .args(["--url", &url, "--namespace", NAMESPACE, "--bot", id, "--fleet", &fleet.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binaries.bot.display()))?;
        let output = Arc::new(Mutex::new(Output::default()));
        let stdout = child.stdout.take().map(|pipe| {
            let output = Arc::clone(&output);
            std::thread::spawn(move || read_stdout(pipe, &output))
        });
        let stderr = child.stderr.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        });
        Ok(Bot { id: id.to_owned(), child, output, stdout, stderr })
    }

    /// Sets `<ns>:<key>` through the kit's own client (not the code under test).
    fn set(&self, key: &str) -> Result<(), String> {
        let key = format!("{NAMESPACE}:{key}");
        let deadline = Instant::now() + DRAIN_LIMIT;
        loop {
            match self.server.command(&["SET", &key, "1"]) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(format!("cannot set {key}: {e}")),
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    fn drive(&mut self, options: &Options, bots: &[Bot]) -> Result<(), String> {
        self.wait_until_ready(bots)?;
        self.set("ctl:go")?;
        let (gap, hold) = (options.gap, options.hold);
        std::thread::sleep(gap);

        eprintln!("==> chaos: kill -9 redis-server, restart after {hold:?}");
        let injected_ms = now_ms();
        self.server.kill().map_err(|e| e.to_string())?;
        std::thread::sleep(hold);
        self.server.restart().map_err(|e| format!("cannot restart redis-server: {e}"))?;
        self.fault("kill -9, restart on the same port", injected_ms, [true; 3], "AOF `appendfsync always`");
        std::thread::sleep(gap);

        eprintln!("==> chaos: CLIENT PAUSE {hold:?} ALL");
        let injected_ms = now_ms();
        self.server.pause_clients(hold).map_err(|e| e.to_string())?;
        std::thread::sleep(hold);
        self.fault("`CLIENT PAUSE ALL`", injected_ms, [true; 3], "");
        std::thread::sleep(gap);

        eprintln!("==> chaos: SIGSTOP redis-server for {hold:?}, then a global halt through infractl");
        let injected_ms = now_ms();
        self.server.pause().map_err(|e| e.to_string())?;
        std::thread::sleep(hold);
        self.server.resume().map_err(|e| e.to_string())?;
        // Increments stop with the halt issued right after: they are not waited for.
        self.fault("SIGSTOP, SIGCONT", injected_ms, [false, true, true], "the halt follows at once");

        // The halt is issued while the fleet is still recovering from the freeze.
        self.halt.issued_ms = now_ms();
        let record =
            self.infractl(&["emergency", "halt", "--global", "--reason", "chaos suite", "--operator", "chaos"])?;
        let record = record.first().ok_or("infractl printed no record for the halt")?;
        self.halt.at_ms = record["at_ms"].as_u64().unwrap_or(self.halt.issued_ms);
        self.halt.seq = record["seq"].as_u64().unwrap_or_default();
        self.halt.fleet_confirmed_ms = self.wait_for_fleet(bots.len());
        let halt_fault = self.faults.len();
        let name = "global HALT (infractl) right after SIGCONT; resume after the next fault";
        self.fault(name, self.halt.issued_ms, [true; 3], "no increment while halted");
        std::thread::sleep(hold);

        eprintln!("==> chaos: kill -9 redis-server while halted, restart after {hold:?}");
        let injected_ms = now_ms();
        self.server.kill().map_err(|e| e.to_string())?;
        std::thread::sleep(hold);
        self.server.restart().map_err(|e| format!("cannot restart redis-server: {e}"))?;
        self.fault("kill -9 while halted, restart", injected_ms, [false, true, true], "the halt holds");
        std::thread::sleep(gap);

        eprintln!("==> chaos: global resume through infractl");
        let issued_ms = now_ms();
        let record =
            self.infractl(&["emergency", "resume", "--global", "--reason", "chaos suite over", "--operator", "chaos"])?;
        // From the resume's audit record: the bots apply it before infractl has exited.
        self.halt.resumed_ms = record.first().and_then(|r| r["at_ms"].as_u64()).unwrap_or(issued_ms);
        // The halt's window ends with the resume; recovery is measured from there.
        self.faults[halt_fault].ended_ms = self.halt.resumed_ms;
        std::thread::sleep(gap);
        Ok(())
    }

    fn fault(&mut self, name: &'static str, injected_ms: u64, workloads: [bool; 3], note: &str) {
        self.faults.push(Fault { name, injected_ms, ended_ms: now_ms(), workloads, note: note.to_owned() });
    }

    fn wait_until_ready(&self, bots: &[Bot]) -> Result<(), String> {
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            let ready = bots.iter().all(|bot| {
                let key = format!("{NAMESPACE}:ctl:ready:{}", bot.id);
                matches!(self.server.command(&["EXISTS", &key]), Ok(Reply::Integer(1)))
            });
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("the bots were not ready within {READY_LIMIT:?}"));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Polls the fleet view until every bot applies the global halt; when it did.
    fn wait_for_fleet(&self, bots: usize) -> Option<u64> {
        let deadline = Instant::now() + DRAIN_LIMIT;
        while Instant::now() < deadline {
            if let Ok(members) = self.infractl(&["emergency", "status", "--all"]) {
                let applied = members
                    .iter()
                    .filter(|m| m["applied_state"] == "HALT" && m["applied_latest_global"] == true)
                    .count();
                if applied == bots {
                    return Some(now_ms());
                }
            }
            std::thread::sleep(POLL);
        }
        None
    }

    /// Runs `infractl` on the chaos namespace; its JSON lines.
    fn infractl(&self, args: &[&str]) -> Result<Vec<Value>, String> {
        let mut command = Command::new(&self.binaries.infractl);
        clear_infra_env(&mut command);
        let url = self.server.url();
        let output = command
            .args(["--redis-url", &url, "--namespace", NAMESPACE, "-o", "json"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run infractl: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "`infractl {}` failed with {}: {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }

    fn wait_until_stopped(&self, bots: &[Bot]) {
        let deadline = Instant::now() + DRAIN_LIMIT;
        while Instant::now() < deadline && !bots.iter().all(|bot| lock(&bot.output).stopped) {
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the durable group has nothing pending and nothing unread.
    fn wait_until_drained(&self) {
        let key = format!("{NAMESPACE}:stream:chaos.durable");
        let deadline = Instant::now() + DRAIN_LIMIT;
        while Instant::now() < deadline {
            // Not `lag`: Redis 7.0 forgets `entries-read` across a restart, and `lag` turns nil.
            let last =
                self.server.command(&["XINFO", "STREAM", &key]).map(|s| fields(&s).get("last-generated-id").cloned());
            if let (Ok(Some(last)), Ok(Reply::Array(Some(groups)))) =
                (last, self.server.command(&["XINFO", "GROUPS", &key]))
            {
                let drained = groups.iter().all(|group| {
                    let fields = fields(group);
                    fields.get("pending") == Some(&Reply::Integer(0)) && fields.get("last-delivered-id") == Some(&last)
                });
                if drained {
                    return;
                }
            }
            std::thread::sleep(POLL);
        }
        eprintln!("==> chaos: the durable group did not drain within {DRAIN_LIMIT:?}");
    }
}

/// A flat `[name, value, ...]` reply as a map.
fn fields(reply: &Reply) -> BTreeMap<String, Reply> {
    let Reply::Array(Some(items)) = reply else { return BTreeMap::new() };
    items.chunks(2).filter_map(|pair| Some((pair.first()?.as_text()?, pair.get(1)?.clone()))).collect()
}

/// Children get no `INFRA_` variable of the caller: only their arguments configure them.
fn clear_infra_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("INFRA_") {
            command.env_remove(name);
        }
    }
}

fn read_stdout(pipe: impl Read, output: &Mutex<Output>) {
    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
        let Ok(value) = serde_json::from_str::<Value>(&line) else {
            lock(output).other_lines.push(line);
            continue;
        };
        let mut output = lock(output);
        if let Some(progress) = value.get("progress") {
            let count = |name: &str| progress[name].as_u64().unwrap_or_default();
            let t = count("t");
            output.samples.push(Sample { t, counts: [count("inc"), count("eph"), count("dur")] });
        } else if value.get("stopped").is_some() {
            output.stopped = true;
        } else if let Some(report) = value.get("report") {
            output.report = Some(report.clone());
        } else {
            output.other_lines.push(line);
        }
    }
}

impl Bot {
    /// Waits up to [`EXIT_LIMIT`] for the bot to exit (killing it after that), then collects
    /// its output.
    fn wait(&mut self) -> Ended {
        let started = Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() < EXIT_LIMIT => std::thread::sleep(POLL),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        let exit_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(reader) = self.stdout.take() {
            let _ = reader.join();
        }
        let stderr = self.stderr.take().and_then(|reader| reader.join().ok()).unwrap_or_default();
        let panicked = stderr.contains("panicked");
        // The bot's own last words (its logs are JSON lines).
        let stderr_tail = stderr.lines().rev().find(|line| !line.starts_with('{')).unwrap_or_default().to_owned();
        Ended { id: self.id.clone(), status, exit_ms, panicked, stderr_tail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_scale_the_schedule() {
        let short = Options::parse(&["--short".to_owned()]).unwrap();
        assert_eq!((short.bots, short.hold, short.gap), (3, Duration::from_secs(2), Duration::from_secs(4)));
        let long = Options::parse(&["--bots".into(), "5".into(), "--seconds".into(), "200".into()]).unwrap();
        assert_eq!((long.bots, long.gap), (5, Duration::from_secs(35)));
        assert!(Options::parse(&["--bots".into(), "1".into()]).is_err());
        assert!(Options::parse(&["--what".into()]).is_err());
    }
}
