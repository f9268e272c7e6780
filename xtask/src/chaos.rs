//! `cargo xtask chaos [--short] [--bots N] [--seconds S] [--no-cluster]`: a fleet of
//! `chaos_bot` processes (crates/infra-facade/examples/chaos_bot.rs) doing state, ephemeral and
//! durable event work, in two phases. On one throwaway Redis, it is killed and restarted,
//! paused with `CLIENT PAUSE`, frozen with SIGSTOP, then, with the fleet halted through
//! `infractl`, killed again; then the fleet is resumed. On a Redis Cluster (3 masters with a
//! replica each), the master holding the durable stream is killed so that its replica takes
//! over, then the fleet is halted and resumed. After each phase it checks the bots' reports;
//! the results go into docs/reliability.md, between the chaos markers.
//!
//! The single server runs with `appendonly yes` and `appendfsync always`: a write Redis
//! acknowledged survives the kill, so the counter and the durable stream can be checked exactly
//! (without persistence a kill loses data by design, and nothing could be checked). On the
//! cluster the bots make every write wait for one replica (`replica_acks = 1`): a write
//! acknowledged that way survives the master's death.

mod report;
mod target;

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, PoisonError},
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use infra_testkit::{RedisCluster, RedisServer, Reply};
use serde_json::Value;

use self::target::Target;
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
    /// Whether the cluster phase runs.
    cluster: bool,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let short = args.iter().any(|a| a == "--short");
        let cluster = !args.iter().any(|a| a == "--no-cluster");
        let (mut bots, mut seconds) = if short { (3, 30) } else { (4, 150) };
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let mut number = |what: &str| -> Result<u64, String> {
                let value = iter.next().ok_or_else(|| format!("`{what}` needs a value"))?;
                value.parse().map_err(|_| format!("`{what}` expects a whole number, not `{value}`"))
            };
            match arg.as_str() {
                "--short" | "--no-cluster" => {}
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
        Ok(Self { short, bots, gap: Duration::from_secs(gap), hold: Duration::from_secs(hold), cluster })
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
    /// When it was issued, in words (for the report).
    pub(crate) issued_when: &'static str,
    /// What it held through, in words, if anything.
    pub(crate) held_through: &'static str,
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
    let mut outcomes = vec![run_phase(&options, &binaries, Phase::Server)?];
    if options.cluster {
        outcomes.push(run_phase(&options, &binaries, Phase::Cluster)?);
    }
    let mut table = report::schedule(&options, started.elapsed());
    for outcome in &outcomes {
        table.push_str("\n\n");
        table.push_str(&outcome.markdown());
    }
    eprintln!("{table}");
    if options.short {
        // CI's short run leaves the committed figures alone.
        let target = binaries.bot.ancestors().nth(3).unwrap_or(&binaries.bot).join("chaos-short.md");
        std::fs::write(&target, &table).map_err(|e| format!("cannot write {}: {e}", target.display()))?;
        eprintln!("==> chaos: results written to {} ({:.0?})", target.display(), started.elapsed());
    } else {
        report::write_into_docs(&project_root().join("docs/reliability.md"), &table)?;
        eprintln!("==> chaos: results written to docs/reliability.md ({:.0?})", started.elapsed());
    }
    let failures: Vec<String> = outcomes.iter().flat_map(report::Outcome::failures).collect();
    if failures.is_empty() { Ok(()) } else { Err(format!("chaos checks failed: {}", failures.join("; "))) }
}

/// What a phase runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Server,
    Cluster,
}

/// Runs the fleet through one phase's faults and checks what it reported.
fn run_phase(options: &Options, binaries: &Binaries, phase: Phase) -> Result<report::Outcome, String> {
    let (target, replica_acks) = match phase {
        Phase::Server => {
            let server = RedisServer::builder()
                .label("chaos")
                .args(["--appendonly", "yes", "--appendfsync", "always"])
                .start()
                .map_err(|e| format!("cannot start redis-server: {e}"))?;
            (Target::Server(server), 0)
        }
        Phase::Cluster => {
            let cluster = RedisCluster::with_replicas(3, 1).map_err(|e| format!("cannot start the cluster: {e}"))?;
            (Target::Cluster(cluster), 1)
        }
    };
    let started = Instant::now();
    let mut chaos = Chaos { target, binaries, replica_acks, faults: Vec::new(), halt: Halt::default() };
    let ids: Vec<String> = (0..options.bots).map(|i| format!("bot-{i}")).collect();
    eprintln!("==> chaos: {phase:?} phase, {} bots on {} ({options:?})", ids.len(), chaos.target.url());
    let mut bots = Vec::new();
    for id in &ids {
        bots.push(chaos.spawn_bot(id, &ids)?);
    }
    let result = chaos.drive(phase, options, &bots);
    // Whatever happened, tell the bots to finish and collect them.
    let _ = chaos.set("ctl:stop");
    if result.is_ok() {
        chaos.wait_until_stopped(&bots);
        chaos.wait_until_drained();
    }
    let _ = chaos.set("ctl:exit");
    let ended: Vec<Ended> = bots.iter_mut().map(Bot::wait).collect();
    result?;
    let key = format!("{NAMESPACE}:counter");
    let counter = chaos.target.command(&key, &["GET", &key]).ok().and_then(|r| r.as_text()?.parse().ok());
    let (title, setup) = match phase {
        Phase::Server => ("One server", "Redis 7 with `appendonly yes`, `appendfsync always`; no replica.".to_owned()),
        Phase::Cluster => (
            "Redis Cluster",
            "3 masters with one replica each (node timeout 1 s); the bots' state writes and durable \
             publishes wait for one replica (`replica_acks = 1`, 500 ms)."
                .to_owned(),
        ),
    };
    let setup = format!("{setup} This phase took {:.1} s.", started.elapsed().as_secs_f64());
    Ok(report::Outcome::evaluate(title, setup, &bots, &ended, &chaos.faults, &chaos.halt, counter))
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

struct Chaos<'a> {
    target: Target,
    binaries: &'a Binaries,
    /// Replicas each write of the bots waits for.
    replica_acks: u32,
    faults: Vec<Fault>,
    halt: Halt,
}

impl Chaos<'_> {
    fn spawn_bot(&self, id: &str, fleet: &[String]) -> Result<Bot, String> {
        let mut command = Command::new(&self.binaries.bot);
        clear_infra_env(&mut command);
        let url = self.target.url();
        let acks = self.replica_acks.to_string();
        let mut child = command
            .args(["--url", &url, "--namespace", NAMESPACE, "--bot", id, "--fleet", &fleet.join(",")])
            .args(["--replica-acks", &acks])
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
    fn set(&mut self, key: &str) -> Result<(), String> {
        let key = format!("{NAMESPACE}:{key}");
        let deadline = Instant::now() + DRAIN_LIMIT;
        loop {
            match self.target.command(&key, &["SET", &key, "1"]) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(format!("cannot set {key}: {e}")),
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// Waits for the fleet, says go, lets it run steadily, then injects the phase's faults.
    fn drive(&mut self, phase: Phase, options: &Options, bots: &[Bot]) -> Result<(), String> {
        self.wait_until_ready(bots)?;
        self.set("ctl:go")?;
        std::thread::sleep(options.gap);
        match phase {
            Phase::Server => self.drive_server(options, bots),
            Phase::Cluster => self.drive_cluster(options, bots),
        }
    }

    /// The single-server faults, after the first steady period.
    fn drive_server(&mut self, options: &Options, bots: &[Bot]) -> Result<(), String> {
        let (gap, hold) = (options.gap, options.hold);

        eprintln!("==> chaos: kill -9 redis-server, restart after {hold:?}");
        let injected_ms = now_ms();
        self.target.server()?.kill().map_err(|e| e.to_string())?;
        std::thread::sleep(hold);
        self.target.server()?.restart().map_err(|e| format!("cannot restart redis-server: {e}"))?;
        self.fault("kill -9, restart on the same port", injected_ms, [true; 3], "AOF `appendfsync always`");
        std::thread::sleep(gap);

        eprintln!("==> chaos: CLIENT PAUSE {hold:?} ALL");
        let injected_ms = now_ms();
        self.target.server()?.pause_clients(hold).map_err(|e| e.to_string())?;
        std::thread::sleep(hold);
        self.fault("`CLIENT PAUSE ALL`", injected_ms, [true; 3], "");
        std::thread::sleep(gap);

        eprintln!("==> chaos: SIGSTOP redis-server for {hold:?}, then a global halt through infractl");
        let injected_ms = now_ms();
        self.target.server()?.pause().map_err(|e| e.to_string())?;
        std::thread::sleep(hold);
        self.target.server()?.resume().map_err(|e| e.to_string())?;
        // Increments stop with the halt issued right after: they are not waited for.
        self.fault("SIGSTOP, SIGCONT", injected_ms, [false, true, true], "the halt follows at once");

        // The halt is issued while the fleet is still recovering from the freeze.
        let name = "global HALT (infractl) right after SIGCONT; resume after the next fault";
        let halt_fault = self.halt(bots, name, "right after the SIGCONT")?;
        self.halt.held_through = " (the halt held through a kill -9 and restart)";
        std::thread::sleep(hold);

        eprintln!("==> chaos: kill -9 redis-server while halted, restart after {hold:?}");
        let injected_ms = now_ms();
        self.target.server()?.kill().map_err(|e| e.to_string())?;
        std::thread::sleep(hold);
        self.target.server()?.restart().map_err(|e| format!("cannot restart redis-server: {e}"))?;
        self.fault("kill -9 while halted, restart", injected_ms, [false, true, true], "the halt holds");
        std::thread::sleep(gap);

        self.resume(halt_fault)?;
        std::thread::sleep(gap);
        Ok(())
    }

    /// The cluster phase, after the first steady period: the master holding the durable stream killed (its
    /// replica takes over; the old master comes back as the new one's replica), a global halt
    /// and its resume.
    fn drive_cluster(&mut self, options: &Options, bots: &[Bot]) -> Result<(), String> {
        let (gap, hold) = (options.gap, options.hold);
        let (stream, counter) = (stream_key(true), format!("{NAMESPACE}:counter"));
        let cluster = self.target.cluster()?;
        let master = cluster.node_for_key(&stream).map_err(|e| e.to_string())?;
        let holds_counter = cluster.node_for_key(&counter).map_err(|e| e.to_string())? == master;
        eprintln!("==> chaos: kill -9 the cluster master of {stream} (node {master}); its replica takes over");
        let injected_ms = now_ms();
        cluster.kill_master(master).map_err(|e| format!("the failover did not complete: {e}"))?;
        let promoted_ms = now_ms();
        // Writes wait for one replica: the new master has none until the old one is back.
        cluster.restart_node(master).map_err(|e| format!("the old master did not rejoin: {e}"))?;
        let note = format!(
            "the master of the durable stream{}; replica promoted {} after the kill; the old master back as its \
             replica {} after",
            if holds_counter { " and the counter" } else { " (the counter is on another master)" },
            report::short_time(promoted_ms.saturating_sub(injected_ms)),
            report::short_time(now_ms().saturating_sub(injected_ms)),
        );
        self.fault("cluster: kill -9 a master; its replica takes over", injected_ms, [true; 3], &note);
        std::thread::sleep(gap);

        let halt_fault = self.halt(bots, "global HALT (infractl) on the cluster", "during steady running")?;
        std::thread::sleep(hold);
        self.resume(halt_fault)?;
        std::thread::sleep(gap);
        Ok(())
    }

    /// Issues a global halt through infractl and waits until the fleet view shows every bot
    /// applying it; the index of its fault record.
    fn halt(&mut self, bots: &[Bot], name: &'static str, issued_when: &'static str) -> Result<usize, String> {
        eprintln!("==> chaos: global halt through infractl");
        self.halt.issued_ms = now_ms();
        self.halt.issued_when = issued_when;
        let record =
            self.infractl(&["emergency", "halt", "--global", "--reason", "chaos suite", "--operator", "chaos"])?;
        let record = record.first().ok_or("infractl printed no record for the halt")?;
        self.halt.at_ms = record["at_ms"].as_u64().unwrap_or(self.halt.issued_ms);
        self.halt.seq = record["seq"].as_u64().unwrap_or_default();
        self.halt.fleet_confirmed_ms = self.wait_for_fleet(bots.len());
        self.fault(name, self.halt.issued_ms, [true; 3], "no increment while halted");
        Ok(self.faults.len() - 1)
    }

    /// Resumes the fleet through infractl; the halt's window (fault `halt_fault`) ends then.
    fn resume(&mut self, halt_fault: usize) -> Result<(), String> {
        eprintln!("==> chaos: global resume through infractl");
        let issued_ms = now_ms();
        let record =
            self.infractl(&["emergency", "resume", "--global", "--reason", "chaos suite over", "--operator", "chaos"])?;
        // From the resume's audit record: the bots apply it before infractl has exited.
        self.halt.resumed_ms = record.first().and_then(|r| r["at_ms"].as_u64()).unwrap_or(issued_ms);
        // Recovery is measured from the resume.
        self.faults[halt_fault].ended_ms = self.halt.resumed_ms;
        Ok(())
    }

    fn fault(&mut self, name: &'static str, injected_ms: u64, workloads: [bool; 3], note: &str) {
        self.faults.push(Fault { name, injected_ms, ended_ms: now_ms(), workloads, note: note.to_owned() });
    }

    fn wait_until_ready(&mut self, bots: &[Bot]) -> Result<(), String> {
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            let ready = bots.iter().all(|bot| {
                let key = format!("{NAMESPACE}:ctl:ready:{}", bot.id);
                matches!(self.target.command(&key, &["EXISTS", &key]), Ok(Reply::Integer(1)))
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
        let url = self.target.url();
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
    fn wait_until_drained(&mut self) {
        let key = stream_key(matches!(self.target, Target::Cluster(_)));
        let deadline = Instant::now() + DRAIN_LIMIT;
        while Instant::now() < deadline {
            // Not `lag`: Redis 7.0 forgets `entries-read` across a restart, and `lag` turns nil.
            let last = self
                .target
                .command(&key, &["XINFO", "STREAM", &key])
                .map(|s| fields(&s).get("last-generated-id").cloned());
            if let (Ok(Some(last)), Ok(Reply::Array(Some(groups)))) =
                (last, self.target.command(&key, &["XINFO", "GROUPS", &key]))
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

/// The durable channel's stream key, as `DurableBus::stream_key` names it (with a hash tag on a
/// cluster).
fn stream_key(clustered: bool) -> String {
    let channel = format!("{NAMESPACE}:chaos.durable");
    if clustered { format!("{NAMESPACE}:stream:{{{channel}}}") } else { format!("{NAMESPACE}:stream:chaos.durable") }
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
        assert!(short.cluster);
        assert!(!Options::parse(&["--no-cluster".into()]).unwrap().cluster);
        let long = Options::parse(&["--bots".into(), "5".into(), "--seconds".into(), "200".into()]).unwrap();
        assert_eq!((long.bots, long.gap), (5, Duration::from_secs(35)));
        assert!(Options::parse(&["--bots".into(), "1".into()]).is_err());
        assert!(Options::parse(&["--what".into()]).is_err());
    }
}
