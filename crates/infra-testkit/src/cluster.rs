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

/// Three (or more) master nodes, optionally with replicas, all 16384 slots assigned.
///
/// `cluster-require-full-coverage` is off, so when a node fails the other masters keep serving
/// their slots, and only keys of the failed node's slots error: the realistic partial outage.
/// With replicas ([`RedisCluster::with_replicas`]), [`RedisCluster::fail_over_master`] kills a
/// master and waits until one of its replicas took over its slots.
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
        Self::with_replicas(masters, 0)
    }

    /// Starts `masters` masters with `replicas` replicas each, and waits until the cluster is
    /// healthy and every replica is in sync with its master. `redis-cli --cluster create`
    /// decides which nodes are masters; [`RedisCluster::masters`] says which.
    pub fn with_replicas(masters: usize, replicas: usize) -> Result<Self> {
        let cli = executable("redis-cli", REDIS_CLI_ENV)?;
        let total = masters * (1 + replicas);
        let mut nodes = Vec::with_capacity(total);
        for _ in 0..total {
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
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
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
        cluster.wait_for_replicas()?;
        Ok(cluster)
    }

    /// Indices of the running nodes that are masters now.
    pub fn masters(&mut self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].is_running() && self.replication(i).role_is_master()).collect()
    }

    /// Fails master `index` over to one of its replicas: waits until a replica has every write
    /// the master acknowledged (so the test measures the clients, not Redis's asynchronous
    /// replication), kills the master (SIGKILL), and waits until a replica was promoted (after
    /// the node timeout, 1 s, and an election) and every running node sees all slots served.
    /// Returns the promoted node's index. The killed node stays down; [`restart_node`] brings
    /// it back (it rejoins as a replica of the new master).
    ///
    /// [`restart_node`]: RedisCluster::restart_node
    pub fn fail_over_master(&mut self, index: usize) -> Result<usize> {
        let replicas = self.replicas_of_master(index)?;
        let deadline = Instant::now() + HEALTHY_TIMEOUT;
        loop {
            let offset = self.replication(index).field("master_repl_offset");
            let synced = replicas.iter().any(|&r| {
                let replica = self.replication(r);
                replica.field("master_link_status").as_deref() == Some("up")
                    && replica.field("slave_repl_offset") == offset
            });
            if synced {
                break;
            }
            if Instant::now() > deadline {
                return Err(TestkitError::Cluster(format!("no replica of master {index} caught up")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.promote_after_kill(index, &replicas, deadline)
    }

    /// Kills master `index` (SIGKILL) at once, with writes possibly still replicating (what a
    /// crash does), and waits until one of its replicas was promoted and every running node
    /// routes its slots there. Returns the promoted node's index. Writes the master answered
    /// but had not yet sent to that replica are lost, unless the writer waited for replicas
    /// (`WAIT`).
    pub fn kill_master(&mut self, index: usize) -> Result<usize> {
        let replicas = self.replicas_of_master(index)?;
        self.promote_after_kill(index, &replicas, Instant::now() + HEALTHY_TIMEOUT)
    }

    /// The replicas of master `index`; an error if it is not a master or has none.
    fn replicas_of_master(&self, index: usize) -> Result<Vec<usize>> {
        let port = self.nodes[index].port();
        if !self.replication(index).role_is_master() {
            return Err(TestkitError::Cluster(format!("node {index} (port {port}) is not a master")));
        }
        let replicas: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| i != index && self.replication(i).field("master_port").as_deref() == Some(&port.to_string()))
            .collect();
        if replicas.is_empty() {
            return Err(TestkitError::Cluster(format!("master {index} (port {port}) has no replica to fail over to")));
        }
        Ok(replicas)
    }

    fn promote_after_kill(&mut self, index: usize, replicas: &[usize], deadline: Instant) -> Result<usize> {
        let port = self.nodes[index].port();
        self.nodes[index].kill()?;
        loop {
            let promoted = replicas.iter().copied().find(|&r| self.replication(r).role_is_master());
            // Every running node must also route the slots to the new master (gossip lags the
            // promotion; with full coverage off a node says `cluster_state:ok` meanwhile).
            if let Some(promoted) = promoted.filter(|_| !self.any_node_routes_to(port)) {
                self.wait_until_healthy()?;
                return Ok(promoted);
            }
            if Instant::now() > deadline {
                return Err(TestkitError::Cluster(format!("no replica of master {index} was promoted")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether a running node's `CLUSTER SLOTS` still names the master on `port`.
    fn any_node_routes_to(&mut self, port: u16) -> bool {
        (0..self.nodes.len()).any(|i| {
            if !self.nodes[i].is_running() {
                return false;
            }
            let Ok(Reply::Array(Some(ranges))) = self.nodes[i].command(&["CLUSTER", "SLOTS"]) else { return true };
            ranges.iter().any(|range| {
                let Reply::Array(Some(fields)) = range else { return false };
                matches!(fields.get(2), Some(Reply::Array(Some(master)))
                    if matches!(master.get(1), Some(Reply::Integer(p)) if *p == i64::from(port)))
            })
        })
    }

    /// `INFO replication` of node `index` (empty if it does not answer).
    fn replication(&self, index: usize) -> Replication {
        Replication(
            self.nodes[index].command(&["INFO", "replication"]).ok().and_then(|r| r.as_text()).unwrap_or_default(),
        )
    }

    /// Waits until every running replica's link to its master is up.
    fn wait_for_replicas(&mut self) -> Result<()> {
        let deadline = Instant::now() + HEALTHY_TIMEOUT;
        loop {
            let lagging = (0..self.nodes.len()).find(|&i| {
                let info = self.replication(i);
                self.nodes[i].is_running()
                    && !info.role_is_master()
                    && info.field("master_link_status").as_deref() != Some("up")
            });
            let Some(lagging) = lagging else { return Ok(()) };
            if Instant::now() > deadline {
                return Err(TestkitError::Cluster(format!("replica {lagging} never synced with its master")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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
    /// its `nodes.conf`) but without data, or, if a replica took its slots over meanwhile, as
    /// that replica's replica. Waits until the cluster is healthy again.
    pub fn restart_node(&mut self, index: usize) -> Result<()> {
        self.nodes[index].restart()?;
        self.wait_until_healthy()?;
        self.wait_for_replicas()
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

/// The text of `INFO replication`.
struct Replication(String);

impl Replication {
    /// The value of `name:` in the reply.
    fn field(&self, name: &str) -> Option<String> {
        self.0.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_owned()))
    }

    fn role_is_master(&self) -> bool {
        self.field("role").as_deref() == Some("master")
    }
}
