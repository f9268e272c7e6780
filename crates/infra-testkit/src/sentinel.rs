//! A throwaway Sentinel deployment: a master, a replica and three sentinels on loopback ports.

use std::{
    io,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    RedisServer,
    error::{Result, TestkitError, io_error},
    process::{REDIS_SENTINEL_ENV, REDIS_SERVER_ENV, ScratchDir, executable, free_port, tail},
    resp::{Connection, Reply},
};

/// The name the sentinels monitor the master under.
const SERVICE: &str = "mymaster";
/// Sentinels that must agree the master is down before a failover starts.
const QUORUM: &str = "2";
/// How many sentinels run: three, so a majority survives one of them.
const SENTINELS: usize = 3;
/// Silence after which a sentinel considers the master down: low, so failovers take seconds.
const DOWN_AFTER_MS: &str = "1000";
/// How long a sentinel waits before retrying a failover that stalled.
const FAILOVER_TIMEOUT_MS: &str = "3000";
/// How long a sentinel may take to answer after being spawned.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the replica and the sentinels may take to find each other.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a failover may take, from the master's death to the replica's promotion.
const FAILOVER_WAIT: Duration = Duration::from_secs(30);
/// Read/write timeout of the kit's own probe connections.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Attempts at finding a port that stays free until the sentinel binds it.
const PORT_ATTEMPTS: usize = 10;

/// A master, a replica (`replicaof`) and three sentinels monitoring the master as
/// [`RedisSentinel::service_name`], all on free loopback ports with no persistence.
///
/// [`RedisSentinel::failover`] kills the master and waits until the sentinels have promoted the
/// replica. Dropping the deployment kills every process.
///
/// ```no_run
/// use infra_testkit::RedisSentinel;
///
/// let mut sentinel = RedisSentinel::start()?;
/// let url = sentinel.url(); // redis-sentinel://127.0.0.1:<s0>?sentinelServiceName=mymaster&node=…
/// let elapsed = sentinel.failover()?;
/// assert_eq!(sentinel.master_port()?, sentinel.master().port());
/// # drop((url, elapsed));
/// # Ok::<(), infra_testkit::TestkitError>(())
/// ```
#[derive(Debug)]
pub struct RedisSentinel {
    // Declared first so they are dropped (killed) before the servers they watch.
    sentinels: Vec<SentinelProcess>,
    servers: [RedisServer; 2],
    master: usize,
}

impl RedisSentinel {
    /// Starts the master, the replica and the sentinels, and waits until the replica is in sync
    /// and every sentinel knows the replica and the two other sentinels (so a failover can be
    /// voted at once).
    pub fn start() -> Result<Self> {
        // Debian's `redis-sentinel` (the server binary started under that name); without the
        // package, `redis-server --sentinel` is the same program in the same mode.
        let binary = executable("redis-sentinel", REDIS_SENTINEL_ENV)
            .or_else(|_| executable("redis-server", REDIS_SERVER_ENV))?;
        let master = RedisServer::builder().label("sentinel-master").start()?;
        let master_port = master.port().to_string();
        let replica = RedisServer::builder()
            .label("sentinel-replica")
            .args(["--replicaof", "127.0.0.1", &master_port])
            .start()?;
        let mut sentinels = Vec::with_capacity(SENTINELS);
        for _ in 0..SENTINELS {
            sentinels.push(SentinelProcess::start(&binary, master.port())?);
        }
        let deployment = Self { sentinels, servers: [master, replica], master: 0 };
        deployment.wait_until_settled()?;
        Ok(deployment)
    }

    /// The service name the sentinels monitor (`mymaster`).
    pub fn service_name(&self) -> &str {
        SERVICE
    }

    /// The sentinels' loopback ports.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// A URL naming every sentinel, in the form `fred` reads:
    /// `redis-sentinel://127.0.0.1:<s0>?sentinelServiceName=mymaster&node=127.0.0.1:<s1>&node=127.0.0.1:<s2>`.
    pub fn url(&self) -> String {
        let mut ports = self.sentinels.iter().map(|s| s.port);
        let first = ports.next().unwrap_or_default();
        let mut url = format!("redis-sentinel://127.0.0.1:{first}?sentinelServiceName={SERVICE}");
        for port in ports {
            url.push_str(&format!("&node=127.0.0.1:{port}"));
        }
        url
    }

    /// The server that is master now: the first one started, or the replica after
    /// [`Self::failover`].
    pub fn master(&self) -> &RedisServer {
        &self.servers[self.master]
    }

    /// The server that is not master now (after a failover, the killed former master).
    pub fn replica(&self) -> &RedisServer {
        &self.servers[1 - self.master]
    }

    /// The master's port as the first sentinel reports it (`SENTINEL get-master-addr-by-name`).
    pub fn master_port(&self) -> Result<u16> {
        self.sentinels[0].master_port()
    }

    /// Waits until the replica has applied everything the master wrote (Redis replicates
    /// asynchronously: a write acknowledged just before the master dies can be lost).
    pub fn wait_for_replica_sync(&self) -> Result<()> {
        let offset = |server: &RedisServer| -> Option<u64> {
            let text = info(server, "replication")?;
            text.lines().find_map(|l| l.strip_prefix("master_repl_offset:")).and_then(|n| n.trim().parse().ok())
        };
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let (master, replica) = (offset(self.master()), offset(self.replica()));
            if master.is_some() && replica >= master {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestkitError::Io {
                    action: "waiting for the replica to catch up".to_owned(),
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("master offset {master:?}, replica offset {replica:?}"),
                    ),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits for the replica to catch up ([`Self::wait_for_replica_sync`]), kills the master
    /// (SIGKILL) and waits until every sentinel names the replica as master and the replica
    /// reports `role:master`. Returns how long that took from the kill. The former master stays
    /// down.
    pub fn failover(&mut self) -> Result<Duration> {
        self.wait_for_replica_sync()?;
        let started = Instant::now();
        self.servers[self.master].kill()?;
        let promoted = 1 - self.master;
        let port = self.servers[promoted].port();
        let deadline = started + FAILOVER_WAIT;
        loop {
            let sentinels_agree = self.sentinels.iter().all(|s| s.master_port().ok() == Some(port));
            let role = info(&self.servers[promoted], "replication").unwrap_or_default();
            if sentinels_agree && role.contains("role:master") {
                self.master = promoted;
                return Ok(started.elapsed());
            }
            if Instant::now() > deadline {
                let logs: Vec<String> =
                    self.sentinels.iter().map(|s| tail(&s.dir.path().join("sentinel.log"), 8)).collect();
                return Err(TestkitError::Io {
                    action: "waiting for the sentinels to promote the replica".to_owned(),
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "no failover to port {port} within {FAILOVER_WAIT:?}; sentinel logs:\n{}",
                            logs.join("\n--\n")
                        ),
                    ),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn wait_until_settled(&self) -> Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let expected = format!("slaves=1,sentinels={SENTINELS}");
        loop {
            let replica = info(&self.servers[1], "replication").unwrap_or_default();
            let mut last =
                format!("replica: {}", replica.lines().find(|l| l.starts_with("master_link_status")).unwrap_or("?"));
            let mut settled = replica.contains("master_link_status:up");
            for sentinel in &self.sentinels {
                let text = sentinel.command(&["INFO", "sentinel"]).ok().and_then(|r| r.as_text()).unwrap_or_default();
                if !text.contains(&expected) {
                    settled = false;
                    last = format!("sentinel on port {}: {}", sentinel.port, text.lines().last().unwrap_or_default());
                }
            }
            if settled {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestkitError::StartFailed {
                    port: self.sentinels.first().map_or(0, |s| s.port),
                    reason: format!("the sentinel deployment did not settle within {SETTLE_TIMEOUT:?}: {last}"),
                    log: self
                        .sentinels
                        .first()
                        .map(|s| tail(&s.dir.path().join("sentinel.log"), 10))
                        .unwrap_or_default(),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// `INFO <section>` of a server, if it answers.
fn info(server: &RedisServer, section: &str) -> Option<String> {
    server.command(&["INFO", section]).ok().and_then(|r| r.as_text())
}

/// One `redis-server <conf> --sentinel` process, killed on drop.
#[derive(Debug)]
struct SentinelProcess {
    port: u16,
    child: Option<Child>,
    dir: ScratchDir,
}

impl SentinelProcess {
    fn start(binary: &Path, master_port: u16) -> Result<Self> {
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let dir = ScratchDir::new("sentinel")?;
            let port = free_port()?;
            // Sentinel rewrites its configuration file as it learns the deployment: it must be
            // a writable file of its own.
            let conf = format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile sentinel.log\ndir {dir}\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {master_port} {QUORUM}\n\
                 sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n\
                 sentinel parallel-syncs {SERVICE} 1\n",
                dir = dir.path().display()
            );
            let conf_path = dir.path().join("sentinel.conf");
            std::fs::write(&conf_path, conf).map_err(io_error(format!("writing {}", conf_path.display())))?;
            let child = Command::new(binary)
                .arg(&conf_path)
                .arg("--sentinel")
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(io_error(format!("spawning {} --sentinel", binary.display())))?;
            let mut sentinel = Self { port, child: Some(child), dir };
            match sentinel.wait_until_ready() {
                Ok(()) => return Ok(sentinel),
                Err(TestkitError::StartFailed { log, .. }) if log.contains("Address already in use") => last_log = log,
                Err(other) => return Err(other),
            }
        }
        Err(TestkitError::StartFailed {
            port: 0,
            reason: format!("no free port for a sentinel after {PORT_ATTEMPTS} attempts"),
            log: last_log,
        })
    }

    fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let log = self.dir.path().join("sentinel.log");
        loop {
            let exited = match &mut self.child {
                Some(child) => child.try_wait().map_err(io_error("waiting for redis-sentinel"))?,
                None => None,
            };
            if let Some(status) = exited {
                self.child = None;
                return Err(TestkitError::StartFailed {
                    port: self.port,
                    reason: format!("the sentinel exited with {status}"),
                    log: tail(&log, 10),
                });
            }
            if matches!(self.command(&["PING"]), Ok(Reply::Status(_))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(TestkitError::StartFailed {
                    port: self.port,
                    reason: format!("the sentinel did not answer within {START_TIMEOUT:?}"),
                    log: tail(&log, 10),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn command(&self, args: &[&str]) -> Result<Reply> {
        Connection::open(self.port, None, PROBE_TIMEOUT)?.command_ok(args)
    }

    fn master_port(&self) -> Result<u16> {
        let reply = self.command(&["SENTINEL", "get-master-addr-by-name", SERVICE])?;
        let port = match &reply {
            Reply::Array(Some(fields)) => fields.get(1).and_then(Reply::as_text).and_then(|p| p.parse().ok()),
            _ => None,
        };
        port.ok_or_else(|| TestkitError::Reply {
            command: format!("SENTINEL get-master-addr-by-name {SERVICE}"),
            message: format!("unexpected reply {reply:?}"),
        })
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
