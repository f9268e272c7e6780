//! One throwaway `redis-server` that a test can stop, kill, restart and pause.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

use crate::{
    error::{Result, TestkitError, io_error},
    process::{REDIS_SERVER_ENV, ScratchDir, executable, free_port, tail},
    resp::{Connection, Reply},
};

/// How long a server may take to answer after being spawned.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a graceful stop may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Read/write timeout of the kit's own probe connections.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Attempts at finding a port that stays free until the server binds it.
const PORT_ATTEMPTS: usize = 10;

/// Options for [`RedisServer::builder`].
#[derive(Debug, Clone, Default)]
pub struct RedisServerBuilder {
    password: Option<String>,
    users: Vec<(String, String)>,
    args: Vec<String>,
    label: Option<String>,
    binary: Option<PathBuf>,
}

impl RedisServerBuilder {
    /// Requires this password for the `default` user (`requirepass`).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Adds an ACL user with every permission. Unless [`Self::password`] is also set, the
    /// `default` user is switched off, so every client must log in as a named user.
    pub fn acl_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((user.into(), password.into()));
        self
    }

    /// Passes extra `redis-server` arguments, e.g. `["--maxmemory", "10mb"]`.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Names the scratch directory, for easier debugging.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Uses this `redis-server` executable instead of looking it up.
    pub fn executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Starts the server on a free loopback port and waits until it answers.
    pub fn start(self) -> Result<RedisServer> {
        let binary = match &self.binary {
            Some(path) if path.is_file() => path.clone(),
            Some(_) => {
                return Err(TestkitError::ExecutableNotFound { program: "redis-server", env_var: REDIS_SERVER_ENV });
            }
            None => executable("redis-server", REDIS_SERVER_ENV)?,
        };
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let dir = ScratchDir::new(self.label.as_deref().unwrap_or("redis"))?;
            let port = free_port()?;
            let mut server =
                RedisServer { binary: binary.clone(), options: self.clone(), port, child: None, paused: false, dir };
            match server.spawn() {
                Ok(()) => return Ok(server),
                // Another process took the port between our probe and the server's bind.
                Err(TestkitError::StartFailed { log, .. }) if log.contains("Address already in use") => {
                    last_error = Some(log);
                }
                Err(other) => return Err(other),
            }
        }
        Err(TestkitError::StartFailed {
            port: 0,
            reason: format!("no free port after {PORT_ATTEMPTS} attempts"),
            log: last_error.unwrap_or_default(),
        })
    }
}

/// A `redis-server` process on a free loopback port, with no persistence, in its own scratch
/// directory. Dropping it kills the process (also when the test panics) and removes the
/// directory.
///
/// ```no_run
/// use infra_testkit::RedisServer;
///
/// let mut server = RedisServer::start()?;
/// let url = server.url(); // redis://127.0.0.1:<port>
/// server.kill()?;          // SIGKILL: clients see the connection drop
/// server.restart()?;       // same port, empty data
/// # drop(url);
/// # Ok::<(), infra_testkit::TestkitError>(())
/// ```
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    options: RedisServerBuilder,
    port: u16,
    child: Option<Child>,
    paused: bool,
    dir: ScratchDir,
}

impl RedisServer {
    /// Starts a server with default options: no password, no persistence.
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// Options for a server with a password, ACL users or extra arguments.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The loopback port the server listens on; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL with the server's credentials, if any: `redis://[user:password@]127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        match self.credentials() {
            Some((user, password)) => self.url_with(user, password),
            None => self.url_without_credentials(),
        }
    }

    /// A URL with no credentials, to test authentication failures.
    pub fn url_without_credentials(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A URL with the given credentials (an empty user means the `default` user).
    pub fn url_with(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// The directory holding the server's log (`redis.log`) and, in cluster mode, `nodes.conf`.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Whether the process is alive (a paused process is alive).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Opens a fresh connection of the kit's own client, authenticated if needed.
    pub fn connect(&self) -> Result<Connection> {
        Connection::open(self.port, self.credentials(), PROBE_TIMEOUT)
    }

    /// Runs one command on a fresh connection and returns its reply; an error reply is an error.
    /// Handy to act as a "foreign" client, independent of the code under test.
    pub fn command(&self, args: &[&str]) -> Result<Reply> {
        self.connect()?.command_ok(args)
    }

    /// [`command`](Self::command) with binary arguments, as a foreign client writing bytes
    /// that are not UTF-8 would send them; an error reply is returned as [`Reply::Error`].
    pub fn command_bytes(&self, args: &[&[u8]]) -> Result<Reply> {
        self.connect()?.command_bytes(args)
    }

    /// Adds the ACL user `user` allowed every command but only the keys and channels of
    /// `namespace` (`~ns:*`, `&ns:*`): what a production bot's user looks like. Give the server
    /// an [`acl_user`](RedisServerBuilder::acl_user) first, so the kit's own probes keep a
    /// user that may do anything.
    pub fn add_namespace_user(&self, user: &str, password: &str, namespace: &str) -> Result<()> {
        let (password, keys, channels) = (format!(">{password}"), format!("~{namespace}:*"), format!("&{namespace}:*"));
        let args = ["ACL", "SETUSER", user, "on", &password, "resetkeys", &keys, "resetchannels", &channels, "+@all"];
        self.command(&args).map(drop)
    }

    /// Stops the server gracefully (SIGTERM; nothing is saved) and waits for it to exit.
    pub fn stop(&mut self) -> Result<()> {
        self.signal(Signal::SIGCONT)?;
        self.signal(Signal::SIGTERM)?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while let Some(child) = &mut self.child {
            if child.try_wait().map_err(io_error("waiting for redis-server"))?.is_some() {
                self.child = None;
                return Ok(());
            }
            if Instant::now() > deadline {
                return self.kill();
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        Ok(())
    }

    /// Kills the server at once (SIGKILL), like a crash, and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        self.paused = false;
        if let Some(mut child) = self.child.take() {
            child.kill().map_err(io_error("killing redis-server"))?;
            child.wait().map_err(io_error("reaping redis-server"))?;
        }
        Ok(())
    }

    /// Starts the server again on the same port and directory, stopping it first if it runs.
    /// Its data is gone (there is no persistence), as after a real crash with persistence off.
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.stop()?;
        }
        self.spawn()
    }

    /// Freezes the process (SIGSTOP): connections stay open but nothing is answered, like a
    /// server stuck in a long fork or a network partition.
    pub fn pause(&mut self) -> Result<()> {
        self.signal(Signal::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    /// Thaws a process frozen by [`Self::pause`] (SIGCONT).
    pub fn resume(&mut self) -> Result<()> {
        self.signal(Signal::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    /// Makes the server hold every client command for `duration` (`CLIENT PAUSE <ms> ALL`),
    /// the gentler way to simulate a slow server. On Redis 7.0 the pause cannot be lifted early:
    /// `CLIENT UNPAUSE` is held like every other command.
    pub fn pause_clients(&self, duration: Duration) -> Result<()> {
        let millis = duration.as_millis().to_string();
        self.command(&["CLIENT", "PAUSE", &millis, "ALL"]).map(drop)
    }

    /// Starts a replica of this server (`--replicaof`, no persistence, the same password if
    /// any) and waits until its link to this master is up and it holds everything written so
    /// far. Dropping it kills it.
    pub fn start_replica(&self) -> Result<RedisServer> {
        let port = self.port.to_string();
        let mut builder = RedisServer::builder().label("replica").args(["--replicaof", "127.0.0.1", &port]);
        if let Some(password) = &self.options.password {
            builder = builder.password(password.clone()).args(["--masterauth", password.as_str()]);
        }
        let replica = builder.start()?;
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let info = replica.command(&["INFO", "replication"])?.as_text().unwrap_or_default();
            if info.contains("master_link_status:up") {
                return Ok(replica);
            }
            if std::time::Instant::now() > deadline {
                return Err(TestkitError::Io {
                    action: format!("waiting for a replica of 127.0.0.1:{port} to sync"),
                    source: std::io::Error::new(std::io::ErrorKind::TimedOut, info),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Clients connected to the server, not counting the connection this call opens to ask.
    pub fn clients(&self) -> Result<usize> {
        let list = self.command(&["CLIENT", "LIST"])?.as_text().unwrap_or_default();
        Ok(list.lines().count().saturating_sub(1))
    }

    /// Polls [`RedisServer::clients`] until it is `expected`, for at most `within`; says
    /// whether it got there (so a test asserts it, naming what it waited for).
    pub fn wait_for_clients(&self, expected: usize, within: Duration) -> Result<bool> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if self.clients()? == expected {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn credentials(&self) -> Option<(&str, &str)> {
        match (&self.options.password, self.options.users.first()) {
            (Some(password), _) => Some(("default", password)),
            (None, Some((user, password))) => Some((user, password)),
            (None, None) => None,
        }
    }

    fn signal(&self, signal: Signal) -> Result<()> {
        let Some(child) = &self.child else { return Ok(()) };
        let pid = i32::try_from(child.id()).map_err(|_| TestkitError::Io {
            action: format!("sending {signal}"),
            source: std::io::Error::other("pid out of range"),
        })?;
        kill(Pid::from_raw(pid), signal).map_err(|errno| TestkitError::Io {
            action: format!("sending {signal} to redis-server"),
            source: errno.into(),
        })
    }

    fn arguments(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "redis.log",
            "--dir",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.push(self.dir.path().display().to_string());
        if let Some(password) = &self.options.password {
            args.extend(["--requirepass".to_owned(), password.clone()]);
        }
        for (user, password) in &self.options.users {
            args.extend(["--user", user, "on", &format!(">{password}"), "~*", "&*", "+@all"].map(str::to_owned));
        }
        if self.options.password.is_none() && !self.options.users.is_empty() {
            args.extend(["--user", "default", "off"].map(str::to_owned));
        }
        args.extend(self.options.args.iter().cloned());
        args
    }

    fn spawn(&mut self) -> Result<()> {
        let child = Command::new(&self.binary)
            .args(self.arguments())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_error(format!("spawning {}", self.binary.display())))?;
        self.child = Some(child);
        self.paused = false;
        self.wait_until_ready()
    }

    fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let log = self.dir.path().join("redis.log");
        loop {
            let exited = match &mut self.child {
                Some(child) => child.try_wait().map_err(io_error("waiting for redis-server"))?,
                None => None,
            };
            if let Some(status) = exited {
                self.child = None;
                return Err(self.start_failed(format!("it exited with {status}"), &log));
            }
            // Any reply, even NOAUTH, proves the server accepts commands; LOADING does not.
            if let Ok(mut probe) = Connection::open(self.port, None, PROBE_TIMEOUT) {
                match probe.command(&["PING"]) {
                    Ok(Reply::Error(message)) if message.starts_with("LOADING") => {}
                    Ok(_) => return Ok(()),
                    Err(_) => {}
                }
            }
            if Instant::now() > deadline {
                let _ = self.kill();
                return Err(self.start_failed(format!("no answer within {START_TIMEOUT:?}"), &log));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn start_failed(&self, reason: String, log: &std::path::Path) -> TestkitError {
        TestkitError::StartFailed { port: self.port, reason, log: tail(log, 10) }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL works on a stopped (paused) process too.
        let _ = self.kill();
    }
}
