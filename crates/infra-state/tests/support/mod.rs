//! Fixtures shared by the integration tests: a store plus the clock that drives its TTLs.

#![allow(dead_code, unreachable_pub, reason = "each test file uses a part of the helpers")]

pub mod suite;

/// Calls `$run!` with every case of the conformance [`suite`], so each backend and topology
/// (`conformance.rs`, `redis_cluster.rs`) runs the same list: a new case cannot be left out.
#[allow(unused_macros, reason = "only the suites' test files run every case")]
macro_rules! every_case {
    ($run:ident) => {
        $run!(
            basics,
            ttl_and_expiry,
            invalid_ttls_are_rejected_the_same_way,
            set_if_not_exists,
            one_winner_among_100_concurrent_set_if_not_exists,
            many_concurrent_gets_and_sets,
            increments,
            exact_total_after_1000_concurrent_increments,
            bulk_operations,
            list_keys_by_prefix,
            compare_and_swap,
            optimistic_updates_from_many_tasks_lose_nothing,
            unicode_binary_looking_and_large_values,
            odd_keys,
            compare_and_delete,
            locks_belong_to_their_owner,
            updates_can_refuse,
            typed_bulk_with_owned_keys,
            connect_and_ping,
        );
    };
}
#[allow(unused_imports, reason = "only the suites' test files run every case")]
pub(crate) use every_case;

use std::{sync::Arc, time::Duration};

use infra_config::RedisUrl;
use infra_state::{DynStateStore, memory::MemoryStore, redis::RedisStore};
use infra_testkit::RedisServer;

/// A store under test and how time passes for it.
pub struct Fixture {
    pub store: Arc<DynStateStore>,
    clock: Clock,
}

enum Clock {
    /// tokio's paused clock: `advance` is instant and exact.
    Paused,
    /// Redis expires keys by its own clock: waiting is real.
    Real,
}

impl Fixture {
    pub fn memory() -> Self {
        Self { store: Arc::new(MemoryStore::new("test")), clock: Clock::Paused }
    }

    pub fn redis(server: &RedisServer) -> Self {
        Self::redis_with(server, "test", Duration::from_secs(5))
    }

    pub fn redis_with(server: &RedisServer, namespace: &str, timeout: Duration) -> Self {
        let url = RedisUrl::parse(&server.url()).expect("testkit url");
        let store = RedisStore::with_url(&url, namespace, timeout, timeout).expect("store");
        Self { store: Arc::new(store), clock: Clock::Real }
    }

    /// Any store whose TTLs run on a real clock (a Redis cluster, say).
    pub fn from_store(store: Arc<DynStateStore>) -> Self {
        Self { store, clock: Clock::Real }
    }

    /// Lets `duration` pass for the store's TTLs.
    pub async fn advance(&self, duration: Duration) {
        match self.clock {
            Clock::Paused => tokio::time::advance(duration).await,
            Clock::Real => tokio::time::sleep(duration).await,
        }
    }

    pub fn is_exact_clock(&self) -> bool {
        matches!(self.clock, Clock::Paused)
    }
}

pub fn start_redis() -> RedisServer {
    RedisServer::start().expect("redis-server must be installed for these tests")
}
