//! Running the real `infractl` binary as a process, with a deadline.

#![allow(dead_code, reason = "each test file uses a part of the support module")]

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// How long one infractl invocation may take before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// `infractl` with `args`, in a scratch working directory (no `infra.toml` is picked up) and
/// without any `INFRA_` variable of the test's own environment.
pub(crate) fn infractl(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_infractl"));
    command.args(args).current_dir(std::env::temp_dir()).stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("INFRA_") {
            command.env_remove(name);
        }
    }
    command
}

/// What a finished process printed.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Finished {
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Every stdout line as JSON (the output is JSON lines when stdout is not a terminal).
    pub(crate) fn records(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{self:?}"))
            })
            .collect()
    }

    /// The single record printed.
    pub(crate) fn record(&self) -> Value {
        let records = self.records();
        assert_eq!(records.len(), 1, "{self:?}");
        records.into_iter().next().unwrap()
    }

    /// Asserts exit code 0 and returns itself.
    pub(crate) fn ok(self) -> Self {
        assert_eq!(self.code(), Some(0), "{self:?}");
        self
    }
}

/// Runs `command` to completion within [`DEADLINE`].
pub(crate) fn run(command: Command) -> Finished {
    Running::spawn(command).finish()
}

/// Runs `infractl args` to completion within [`DEADLINE`].
pub(crate) fn run_args(args: &[&str]) -> Finished {
    run(infractl(args))
}

/// A process running in the background: its stderr lines arrive as they are written.
pub(crate) struct Running {
    child: Child,
    stdout: thread::JoinHandle<String>,
    stderr_lines: mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
}

impl Running {
    pub(crate) fn spawn(mut command: Command) -> Self {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("infractl starts");
        let mut out = child.stdout.take().expect("stdout is piped");
        let stdout = thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        let err = child.stderr.take().expect("stderr is piped");
        let (sender, stderr_lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, stdout, stderr_lines, stderr_seen: Vec::new() }
    }

    /// Waits until a stderr line contains `needle` (the process says it is ready).
    pub(crate) fn wait_for_stderr(&mut self, needle: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.stderr_seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(error) => {
                    let _ = self.child.kill();
                    panic!("no stderr line with `{needle}` ({error:?}); stderr so far: {:?}", self.stderr_seen);
                }
            }
        }
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    pub(crate) fn interrupt(&self) {
        let sent = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(sent.success(), "cannot signal infractl");
    }

    /// Waits for the exit within [`DEADLINE`] (killing it and failing the test after that).
    pub(crate) fn finish(mut self) -> Finished {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("infractl did not exit within {DEADLINE:?}; stderr: {:?}", self.stderr_seen);
            }
            // Polling the child's exit: nothing else to wait on without a process API.
            thread::sleep(Duration::from_millis(10));
        };
        let stdout = self.stdout.join().expect("stdout reader");
        let mut stderr = self.stderr_seen;
        stderr.extend(self.stderr_lines.iter());
        Finished { status, stdout, stderr: stderr.join("\n") }
    }
}

/// Polls `condition` every 20 ms until it holds, failing the test after `limit`.
pub(crate) fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(20));
    }
}
