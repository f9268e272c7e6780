//! Throwaway TLS: a certificate authority made by the `openssl` command line, and a
//! `redis-server` that speaks only TLS.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    error::{Result, TestkitError, io_error},
    process::{REDIS_CLI_ENV, REDIS_SERVER_ENV, ScratchDir, executable, free_port, tail},
};

/// Variable that can name the `openssl` executable.
pub const OPENSSL_ENV: &str = "TESTKIT_OPENSSL";
/// How long a server may take to accept connections after being spawned.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Attempts at finding a port that stays free until the server binds it.
const PORT_ATTEMPTS: usize = 10;
/// Validity of every certificate: the tests last minutes.
const DAYS: &str = "2";

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedKey {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8, unencrypted).
    pub key: PathBuf,
}

/// What a certificate issued by [`TestCa::issue`] may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A server's certificate (`extendedKeyUsage=serverAuth`).
    Server,
    /// A client's certificate (`extendedKeyUsage=clientAuth`).
    Client,
    /// Both: a cluster node's, which it also presents to the other nodes on the cluster bus.
    ServerAndClient,
}

/// A throwaway certificate authority (ECDSA P-256) in its own scratch directory, removed on
/// drop. Needs the `openssl` command line (or [`OPENSSL_ENV`]).
#[derive(Debug)]
pub struct TestCa {
    openssl: PathBuf,
    dir: ScratchDir,
    issued: usize,
}

impl TestCa {
    /// Makes a new CA: `ca.pem` and its key.
    pub fn new() -> Result<Self> {
        let openssl = executable("openssl", OPENSSL_ENV).map_err(|_| TestkitError::ToolNotFound {
            program: "openssl",
            install: "install it (`apt-get install openssl` on Debian/Ubuntu)",
            env_var: OPENSSL_ENV,
        })?;
        let ca = Self { openssl, dir: ScratchDir::new("tls-ca")?, issued: 0 };
        ca.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            DAYS,
            "-subj",
            "/CN=infra-testkit CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
        Ok(ca)
    }

    /// The CA's certificate (PEM): what clients and servers trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues a certificate for `usage`, valid for the DNS names and IP addresses given (its
    /// subject alternative names; rustls checks nothing else).
    pub fn issue(&mut self, usage: Usage, dns_names: &[&str], ips: &[&str]) -> Result<CertifiedKey> {
        self.issued += 1;
        let name = format!("{}-{}", if usage == Usage::Client { "client" } else { "server" }, self.issued);
        let (key, csr, cert, ext) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
        let mut names: Vec<String> = dns_names.iter().map(|d| format!("DNS:{d}")).collect();
        names.extend(ips.iter().map(|ip| format!("IP:{ip}")));
        let mut extensions = String::from("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n");
        extensions.push_str(match usage {
            Usage::Server => "extendedKeyUsage=serverAuth\n",
            Usage::Client => "extendedKeyUsage=clientAuth\n",
            Usage::ServerAndClient => "extendedKeyUsage=serverAuth,clientAuth\n",
        });
        if !names.is_empty() {
            extensions.push_str(&format!("subjectAltName={}\n", names.join(",")));
        }
        let ext_path = self.dir.path().join(&ext);
        std::fs::write(&ext_path, extensions).map_err(io_error(format!("writing {}", ext_path.display())))?;
        let subject = format!("/CN={}", dns_names.first().or(ips.first()).copied().unwrap_or(&name));
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ])?;
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            DAYS,
            "-extfile",
            &ext,
        ])?;
        Ok(CertifiedKey { cert: self.dir.path().join(cert), key: self.dir.path().join(key) })
    }

    fn openssl(&self, args: &[&str]) -> Result<()> {
        let output = Command::new(&self.openssl)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .map_err(io_error(format!("running {}", self.openssl.display())))?;
        if output.status.success() {
            return Ok(());
        }
        Err(TestkitError::Io {
            action: format!("openssl {}", args.first().copied().unwrap_or_default()),
            source: std::io::Error::other(format!(
                "exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )),
        })
    }
}

/// Whether a [`TlsRedisServer`] asks clients for a certificate (`--tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// A client certificate is refused unless the CA signed it, but none is required.
    #[default]
    Optional,
    /// Every client must present a certificate the CA signed.
    Required,
}

/// Options for [`TlsRedisServer::builder`].
#[derive(Debug, Clone)]
pub struct TlsRedisServerBuilder {
    client_auth: ClientAuth,
    dns_names: Vec<String>,
    ips: Vec<String>,
}

impl Default for TlsRedisServerBuilder {
    fn default() -> Self {
        Self {
            client_auth: ClientAuth::Optional,
            dns_names: vec!["localhost".to_owned()],
            ips: vec!["127.0.0.1".to_owned()],
        }
    }
}

impl TlsRedisServerBuilder {
    /// Sets `--tls-auth-clients` (optional by default).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// Names the server's certificate holds instead of `localhost` and `127.0.0.1`; with no IP,
    /// a client connecting to `127.0.0.1` must be told which name to check.
    pub fn certificate_names(mut self, dns_names: &[&str], ips: &[&str]) -> Self {
        self.dns_names = dns_names.iter().map(|s| (*s).to_owned()).collect();
        self.ips = ips.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Makes a CA, a server and a client certificate, starts the server with TLS only
    /// (`--port 0 --tls-port <free port>`) and waits until it accepts connections.
    pub fn start(self) -> Result<TlsRedisServer> {
        let binary = executable("redis-server", REDIS_SERVER_ENV)?;
        let mut ca = TestCa::new()?;
        let dns: Vec<&str> = self.dns_names.iter().map(String::as_str).collect();
        let ips: Vec<&str> = self.ips.iter().map(String::as_str).collect();
        let server_cert = ca.issue(Usage::Server, &dns, &ips)?;
        let client_cert = ca.issue(Usage::Client, &["infra-client"], &[])?;
        let mut server =
            TlsRedisServer::launch(&binary, &ca.ca_file(), server_cert, client_cert, self.client_auth, Vec::new())?;
        server._ca = Some(ca);
        Ok(server)
    }
}

/// A `redis-server` on a free loopback port that speaks only TLS (`--port 0`), with a
/// throwaway CA, a server certificate and a client certificate. Killed on drop.
///
/// ```no_run
/// use infra_testkit::{ClientAuth, TlsRedisServer};
///
/// let server = TlsRedisServer::builder().client_auth(ClientAuth::Required).start()?;
/// let url = server.url_with_client_cert(); // rediss://127.0.0.1:<port>?tls_ca=…&tls_cert=…&tls_key=…
/// assert_eq!(server.cli(&["PING"])?, "PONG");
/// # drop(url);
/// # Ok::<(), infra_testkit::TestkitError>(())
/// ```
#[derive(Debug)]
pub struct TlsRedisServer {
    port: u16,
    child: Option<Child>,
    dir: ScratchDir,
    server_cert: CertifiedKey,
    client_cert: CertifiedKey,
    client_auth: ClientAuth,
    ca_file: PathBuf,
    extra_args: Vec<String>,
    // Kept so its files live as long as the server (`None` for a cluster's nodes: the cluster
    // keeps it).
    _ca: Option<TestCa>,
}

impl TlsRedisServer {
    /// Starts a server with default options: client certificates optional, a server
    /// certificate for `localhost` and `127.0.0.1`.
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// Options: client authentication, the names in the server's certificate.
    pub fn builder() -> TlsRedisServerBuilder {
        TlsRedisServerBuilder::default()
    }

    /// The TLS port, on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA's certificate (PEM).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A client certificate and key the CA signed.
    pub fn client_cert(&self) -> &CertifiedKey {
        &self.client_cert
    }

    /// `rediss://127.0.0.1:<port>?tls_ca=<ca.pem>`: trusts the test CA, no client certificate.
    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}?tls_ca={}", self.port, self.ca_file.display())
    }

    /// [`Self::url`] with the client certificate and key (`&tls_cert=…&tls_key=…`).
    pub fn url_with_client_cert(&self) -> String {
        format!(
            "{}&tls_cert={}&tls_key={}",
            self.url(),
            self.client_cert.cert.display(),
            self.client_cert.key.display()
        )
    }

    /// Runs one command through `redis-cli --tls` with the client certificate and returns its
    /// output (`--no-raw` off: plain text, trimmed). A foreign client, independent of the code
    /// under test.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let cli = executable("redis-cli", REDIS_CLI_ENV)?;
        let output = Command::new(&cli)
            .args(["--tls", "--cacert"])
            .arg(&self.ca_file)
            .arg("--cert")
            .arg(&self.client_cert.cert)
            .arg("--key")
            .arg(&self.client_cert.key)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--raw"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io_error(format!("running {}", cli.display())))?;
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if output.status.success() && !stdout.starts_with("ERR") {
            return Ok(stdout);
        }
        Err(TestkitError::Reply {
            command: args.join(" "),
            message: format!("{stdout} {}", String::from_utf8_lossy(&output.stderr).trim()),
        })
    }

    /// Kills the server at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().map_err(io_error("killing redis-server"))?;
            child.wait().map_err(io_error("reaping redis-server"))?;
        }
        Ok(())
    }

    /// Starts a server on a free port with these certificates and extra arguments.
    pub(crate) fn launch(
        binary: &Path,
        ca_file: &Path,
        server_cert: CertifiedKey,
        client_cert: CertifiedKey,
        client_auth: ClientAuth,
        extra_args: Vec<String>,
    ) -> Result<Self> {
        let mut last_log = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let mut server = TlsRedisServer {
                port: free_port()?,
                child: None,
                dir: ScratchDir::new("tls-redis")?,
                client_cert: client_cert.clone(),
                server_cert: server_cert.clone(),
                client_auth,
                ca_file: ca_file.to_path_buf(),
                extra_args: extra_args.clone(),
                _ca: None,
            };
            match server.spawn(binary) {
                Ok(()) => return Ok(server),
                Err(TestkitError::StartFailed { log, .. }) if log.contains("Address already in use") => last_log = log,
                Err(other) => return Err(other),
            }
        }
        Err(TestkitError::StartFailed {
            port: 0,
            reason: format!("no free port after {PORT_ATTEMPTS} attempts"),
            log: last_log,
        })
    }

    fn spawn(&mut self, binary: &Path) -> Result<()> {
        let mut command = Command::new(binary);
        command
            .args(["--port", "0", "--tls-port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "redis.log"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--tls-cert-file")
            .arg(&self.server_cert.cert)
            .arg("--tls-key-file")
            .arg(&self.server_cert.key)
            .arg("--tls-ca-cert-file")
            .arg(&self.ca_file)
            .args([
                "--tls-auth-clients",
                match self.client_auth {
                    ClientAuth::Optional => "optional",
                    ClientAuth::Required => "yes",
                },
            ])
            .args(&self.extra_args);
        let child = command
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_error(format!("spawning {}", binary.display())))?;
        self.child = Some(child);
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
                return Err(TestkitError::StartFailed {
                    port: self.port,
                    reason: format!("it exited with {status}"),
                    log: tail(&log, 10),
                });
            }
            // The kit's own client speaks no TLS: the log says when the server listens.
            if std::fs::read_to_string(&log).is_ok_and(|text| text.contains("Ready to accept connections")) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.kill();
                return Err(TestkitError::StartFailed {
                    port: self.port,
                    reason: format!("not ready within {START_TIMEOUT:?}"),
                    log: tail(&log, 10),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for TlsRedisServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Three TLS-only masters forming a Redis Cluster (TLS on the cluster bus too), whose one
/// certificate names only a DNS name, never the loopback address the nodes announce in
/// `CLUSTER SLOTS`: a client must be told the name to check (`tls_server_name`), as with
/// managed clusters whose nodes are reached by address. Dropping it kills every node.
#[derive(Debug)]
pub struct TlsRedisCluster {
    nodes: Vec<TlsRedisServer>,
    ca: TestCa,
}

impl TlsRedisCluster {
    /// Starts three nodes whose certificate names `certificate_name` only, joins them with
    /// `redis-cli --cluster create --tls` and waits until every node reports
    /// `cluster_state:ok`.
    pub fn start(certificate_name: &str) -> Result<Self> {
        let binary = executable("redis-server", REDIS_SERVER_ENV)?;
        let cli = executable("redis-cli", REDIS_CLI_ENV)?;
        let mut ca = TestCa::new()?;
        let node_cert = ca.issue(Usage::ServerAndClient, &[certificate_name], &[])?;
        let client_cert = ca.issue(Usage::Client, &["infra-client"], &[])?;
        let mut nodes = Vec::with_capacity(3);
        for _ in 0..3 {
            let bus_port = free_port()?.to_string();
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
                "--cluster-port",
                &bus_port,
                "--cluster-require-full-coverage",
                "no",
                "--tls-cluster",
                "yes",
            ];
            let args = args.iter().map(|a| (*a).to_owned()).collect();
            let node = TlsRedisServer::launch(
                &binary,
                &ca.ca_file(),
                node_cert.clone(),
                client_cert.clone(),
                ClientAuth::Optional,
                args,
            )?;
            nodes.push(node);
        }
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let output = Command::new(&cli)
            .args(["--tls", "--cacert"])
            .arg(ca.ca_file())
            .arg("--cert")
            .arg(&client_cert.cert)
            .arg("--key")
            .arg(&client_cert.key)
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(io_error(format!("running {} --cluster create --tls", cli.display())))?;
        if !output.status.success() {
            return Err(TestkitError::Cluster(format!(
                "`redis-cli --cluster create --tls` exited with {}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let cluster = Self { nodes, ca };
        cluster.wait_until_healthy()?;
        Ok(cluster)
    }

    /// The nodes, in start order.
    pub fn nodes(&self) -> &[TlsRedisServer] {
        &self.nodes
    }

    /// The CA's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.ca.ca_file()
    }

    /// `rediss-cluster://127.0.0.1:<p0>?node=127.0.0.1:<p1>&node=127.0.0.1:<p2>&tls_ca=<ca.pem>`:
    /// trusts the test CA, checks certificates against the address (which they do not name).
    pub fn url(&self) -> String {
        let mut ports = self.nodes.iter().map(|n| n.port);
        let mut url = format!("rediss-cluster://127.0.0.1:{}?", ports.next().unwrap_or_default());
        for port in ports {
            url.push_str(&format!("node=127.0.0.1:{port}&"));
        }
        url.push_str(&format!("tls_ca={}", self.ca.ca_file().display()));
        url
    }

    fn wait_until_healthy(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut last = String::new();
            let healthy = self.nodes.iter().all(|node| {
                let info = node.cli(&["CLUSTER", "INFO"]).unwrap_or_default();
                last = format!("node on port {}: {}", node.port, info.lines().take(6).collect::<Vec<_>>().join(", "));
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_assigned:16384")
                    && info.contains("cluster_known_nodes:3")
            });
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestkitError::Cluster(format!("the TLS cluster is not healthy after 30s; {last}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
