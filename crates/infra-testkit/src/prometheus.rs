//! A throwaway Prometheus server scraping given targets every second, and its query API.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    error::{Result, TestkitError, io_error},
    process::{ScratchDir, executable, free_port, tail},
};

/// Variable that can name the `prometheus` executable.
pub const PROMETHEUS_ENV: &str = "TESTKIT_PROMETHEUS";

/// How long Prometheus may take to become ready.
const READY_LIMIT: Duration = Duration::from_secs(30);
/// How long one HTTP exchange with it may take.
const HTTP_LIMIT: Duration = Duration::from_secs(10);

/// One series of a query's answer: its labels (`__name__` included) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// The value at the query's time.
    pub value: f64,
}

/// A `prometheus` process on a free loopback port, with its data in a scratch directory,
/// scraping `targets` (`job="infra"`) every second and evaluating `rule_files` every second.
/// Dropping it kills the process and removes the directory.
#[derive(Debug)]
pub struct PrometheusServer {
    port: u16,
    child: Child,
    dir: ScratchDir,
}

impl PrometheusServer {
    /// Starts Prometheus (Debian's `prometheus` package, or `TESTKIT_PROMETHEUS`) and waits
    /// until it is ready. Rule files are loaded by absolute path.
    pub fn start(targets: &[SocketAddr], rule_files: &[PathBuf]) -> Result<Self> {
        let binary = executable("prometheus", PROMETHEUS_ENV).map_err(|_| TestkitError::ToolNotFound {
            program: "prometheus",
            install: "install it (`apt-get install prometheus` on Debian/Ubuntu)",
            env_var: PROMETHEUS_ENV,
        })?;
        let dir = ScratchDir::new("prometheus")?;
        let config = dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let rules: Vec<String> = rule_files.iter().map(|r| format!("  - '{}'\n", r.display())).collect();
        let text = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             rule_files:\n{}\
             scrape_configs:\n  - job_name: infra\n    static_configs:\n      - targets: [{}]\n",
            if rules.is_empty() { "  []\n".to_owned() } else { rules.concat() },
            targets.join(", ")
        );
        std::fs::write(&config, text).map_err(io_error("writing prometheus.yml"))?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("prometheus.log")).map_err(io_error("creating the log"))?;
        let err = log.try_clone().map_err(io_error("cloning the log file"))?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(io_error("spawning prometheus"))?;
        let mut server = Self { port, child, dir };
        server.wait_ready()?;
        Ok(server)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory holding its configuration, data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An instant query through `/api/v1/query`: the series of the resulting vector.
    pub fn query(&self, expression: &str) -> Result<Vec<Sample>> {
        let body = self.get(&format!("/api/v1/query?query={}", percent_encode(expression)))?;
        let answer: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| self.failure(format!("{e}: {body}")))?;
        if answer["status"] != "success" {
            return Err(self.failure(format!("query `{expression}` failed: {body}")));
        }
        let result = answer["data"]["result"].as_array().cloned().unwrap_or_default();
        Ok(result
            .iter()
            .filter_map(|series| {
                let labels = series["metric"]
                    .as_object()?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let value = series["value"][1].as_str()?.parse().ok()?;
                Some(Sample { labels, value })
            })
            .collect())
    }

    /// Runs `query` until `accept` returns true for its answer, for at most `limit`; returns
    /// the accepted answer, or the last one in the error.
    pub fn wait_for(
        &self,
        expression: &str,
        limit: Duration,
        mut accept: impl FnMut(&[Sample]) -> bool,
    ) -> Result<Vec<Sample>> {
        let deadline = Instant::now() + limit;
        loop {
            let answer = self.query(expression)?;
            if accept(&answer) {
                return Ok(answer);
            }
            if Instant::now() >= deadline {
                return Err(self.failure(format!("`{expression}` not as expected within {limit:?}: {answer:?}")));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failure(format!("prometheus exited with {status}")));
            }
            if self.get("/-/ready").is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.failure(format!("not ready within {READY_LIMIT:?}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET `path` over HTTP/1.0 (no chunked encoding); the body of a 200 answer.
    fn get(&self, path: &str) -> Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(io_error("connecting to prometheus"))?;
        stream.set_read_timeout(Some(HTTP_LIMIT)).map_err(io_error("setting a read timeout"))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(io_error("sending a request"))?;
        let mut response = String::new();
        stream.read_to_string(&mut response).map_err(io_error("reading prometheus's answer"))?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        if head.split(' ').nth(1) == Some("200") {
            Ok(body.to_owned())
        } else {
            Err(self.failure(format!("GET {path}: {head} {body}")))
        }
    }

    fn failure(&self, reason: String) -> TestkitError {
        TestkitError::Prometheus { port: self.port, reason, log: tail(&self.dir.path().join("prometheus.log"), 20) }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` with everything but unreserved characters percent-encoded, for a query string.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_promql_expression() {
        assert_eq!(percent_encode("up{job=\"infra\"} == 1"), "up%7Bjob%3D%22infra%22%7D%20%3D%3D%201");
    }
}
