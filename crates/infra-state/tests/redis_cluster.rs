//! The Redis backend on a real 3-master Redis Cluster: the paths that differ from a single
//! server (bulk operations pipelined per key, SCAN on every node) and the shared suite.

mod support;

use std::{sync::Arc, time::Duration};

use infra_config::RedisUrl;
use infra_state::{DynStateStore, redis::RedisStore};
use infra_testkit::RedisCluster;
use support::{Fixture, suite};

fn cluster_fixture(cluster: &RedisCluster) -> Fixture {
    let url = RedisUrl::parse(&cluster.url()).expect("cluster url");
    let store: Arc<DynStateStore> =
        Arc::new(RedisStore::with_url(&url, "cluster", Duration::from_secs(5), Duration::from_secs(5)).unwrap());
    Fixture::from_store(store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_suite_passes_on_a_cluster() {
    let cluster = RedisCluster::start().expect("redis-server and redis-cli must be installed");
    let f = cluster_fixture(&cluster);
    suite::basics(&f).await;
    suite::bulk_operations(&f).await;
    suite::increments(&f).await;
    suite::compare_and_swap(&f).await;
    suite::exact_total_after_1000_concurrent_increments(&f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_listed_from_every_node() {
    let cluster = RedisCluster::start().unwrap();
    let f = cluster_fixture(&cluster);
    suite::list_keys_by_prefix(&f).await;
}
