//! A throwaway Redis Cluster of masters on loopback ports.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use crate::{
    RedisServer,
    error::{Result, TestkitError, io_error},
    process::{REDIS_CLI_ENV, executable, free_port},
    resp::Reply,
};

/// How long a cluster may take to agree on its slots.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(30);
/// Node timeout: how long before peers declare a silent node failed.
const NODE_TIMEOUT_MS: &str = "1000";

/// Three (or more) master nodes, no replicas, all 16384 slots assigned.
///
/// `cluster-require-full-coverage` is off, so when a node fails the other masters keep serving
/// their slots, and only keys of the failed node's slots error: the realistic partial outage.
/// Dropping the cluster kills every node.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts a 3-master cluster and waits until every node reports `cluster_state:ok`.
    pub fn start() -> Result<Self> {
        Self::with_masters(3)
    }

    /// Starts a cluster of `masters` nodes (at least 3, as `redis-cli --cluster create` requires).
    pub fn with_masters(masters: usize) -> Result<Self> {
        let cli = executable("redis-cli", REDIS_CLI_ENV)?;
        let mut nodes = Vec::with_capacity(masters);
        for _ in 0..masters {
            let bus_port = free_port()?.to_string();
            let node = RedisServer::builder()
                .label("cluster")
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    NODE_TIMEOUT_MS,
                    "--cluster-port",
                    &bus_port,
                    "--cluster-require-full-coverage",
                    "no",
                ])
                .start()?;
            nodes.push(node);
        }
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
        let output = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .map_err(io_error(format!("running {} --cluster create", cli.display())))?;
        if !output.status.success() {
            return Err(TestkitError::Cluster(format!(
                "`redis-cli --cluster create` exited with {}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let mut cluster = Self { nodes };
        cluster.wait_until_healthy()?;
        Ok(cluster)
    }

    /// The nodes, in start order.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// One node, to stop, pause or query it.
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    /// A URL naming every node, in the form `fred` reads:
    /// `redis-cluster://127.0.0.1:<p0>?node=127.0.0.1:<p1>&node=127.0.0.1:<p2>`.
    pub fn url(&self) -> String {
        let mut ports = self.nodes.iter().map(RedisServer::port);
        let first = ports.next().unwrap_or_default();
        let rest: Vec<String> = ports.map(|p| format!("node=127.0.0.1:{p}")).collect();
        if rest.is_empty() {
            format!("redis-cluster://127.0.0.1:{first}")
        } else {
            format!("redis-cluster://127.0.0.1:{first}?{}", rest.join("&"))
        }
    }

    /// Kills node `index` (SIGKILL). Its slots fail; the others keep serving.
    pub fn fail_node(&mut self, index: usize) -> Result<()> {
        self.nodes[index].kill()
    }

    /// Restarts node `index` on its port; it rejoins with its old identity and slots (kept in
    /// its `nodes.conf`) but without data. Waits until the cluster is healthy again.
    pub fn restart_node(&mut self, index: usize) -> Result<()> {
        self.nodes[index].restart()?;
        self.wait_until_healthy()
    }

    /// Index of the node that serves `key`.
    pub fn node_for_key(&mut self, key: &str) -> Result<usize> {
        let node = self
            .nodes
            .iter_mut()
            .position(RedisServer::is_running)
            .ok_or_else(|| TestkitError::Cluster("no node is running".to_owned()))?;
        let slot = match self.nodes[node].command(&["CLUSTER", "KEYSLOT", key])? {
            Reply::Integer(slot) => slot,
            other => return Err(TestkitError::Cluster(format!("unexpected CLUSTER KEYSLOT reply {other:?}"))),
        };
        let Reply::Array(Some(ranges)) = self.nodes[node].command(&["CLUSTER", "SLOTS"])? else {
            return Err(TestkitError::Cluster("unexpected CLUSTER SLOTS reply".to_owned()));
        };
        for range in ranges {
            let Reply::Array(Some(fields)) = range else { continue };
            let (Some(Reply::Integer(from)), Some(Reply::Integer(to)), Some(Reply::Array(Some(master)))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            if (*from..=*to).contains(&slot) {
                let Some(Reply::Integer(port)) = master.get(1) else { continue };
                if let Some(index) = self.nodes.iter().position(|n| i64::from(n.port()) == *port) {
                    return Ok(index);
                }
            }
        }
        Err(TestkitError::Cluster(format!("no node serves slot {slot} of `{key}`")))
    }

    /// Waits until every running node sees all slots assigned and `cluster_state:ok`.
    pub fn wait_until_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + HEALTHY_TIMEOUT;
        let expected_nodes = format!("cluster_known_nodes:{}", self.nodes.len());
        loop {
            let mut last = String::new();
            let mut healthy = true;
            for node in self.nodes.iter_mut() {
                if !node.is_running() {
                    continue;
                }
                let info = node.command(&["CLUSTER", "INFO"]).ok().and_then(|r| r.as_text()).unwrap_or_default();
                if !(info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_assigned:16384")
                    && info.contains(&expected_nodes))
                {
                    healthy = false;
                    last = format!(
                        "node on port {}: {}",
                        node.port(),
                        info.lines().take(6).collect::<Vec<_>>().join(", ")
                    );
                    break;
                }
            }
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestkitError::Cluster(format!("not healthy after {HEALTHY_TIMEOUT:?}; {last}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
