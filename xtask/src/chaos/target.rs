//! The Redis a chaos phase runs against: one server, or a cluster whose commands go to the node
//! that holds their key.

use infra_testkit::{RedisCluster, RedisServer, Reply};

pub(super) enum Target {
    Server(RedisServer),
    Cluster(RedisCluster),
}

impl Target {
    pub(super) fn url(&self) -> String {
        match self {
            Self::Server(server) => server.url(),
            Self::Cluster(cluster) => cluster.url(),
        }
    }

    /// Runs `args` (whose key is `key`) on the server, or on the cluster node serving `key`,
    /// through the kit's own client (not the code under test).
    pub(super) fn command(&mut self, key: &str, args: &[&str]) -> Result<Reply, String> {
        match self {
            Self::Server(server) => server.command(args).map_err(|e| e.to_string()),
            Self::Cluster(cluster) => {
                let node = cluster.node_for_key(key).map_err(|e| e.to_string())?;
                cluster.nodes()[node].command(args).map_err(|e| e.to_string())
            }
        }
    }

    pub(super) fn server(&mut self) -> Result<&mut RedisServer, String> {
        match self {
            Self::Server(server) => Ok(server),
            Self::Cluster(_) => Err("this fault needs a single server".to_owned()),
        }
    }

    pub(super) fn cluster(&mut self) -> Result<&mut RedisCluster, String> {
        match self {
            Self::Cluster(cluster) => Ok(cluster),
            Self::Server(_) => Err("this fault needs a cluster".to_owned()),
        }
    }
}
