//! One conformance suite, run on every backend: memory (on tokio's paused clock) and Redis (a
//! throwaway real server per test).

mod support;

use support::{Fixture, start_redis, suite};

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(start_paused = true)]
                async fn $name() {
                    suite::$name(&Fixture::memory()).await;
                }
            )*
        }

        mod redis {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = start_redis();
                    suite::$name(&Fixture::redis(&server)).await;
                }
            )*
        }
    };
}

support::every_case!(conformance);

#[tokio::test(start_paused = true)]
async fn memory_expiry_is_millisecond_exact() {
    suite::millisecond_exact_expiry_for_readers(&Fixture::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_concurrency_on_real_threads() {
    // The paused-clock runs above are single-threaded; these two need real parallelism too.
    suite::one_winner_among_100_concurrent_set_if_not_exists(&Fixture::memory()).await;
    suite::exact_total_after_1000_concurrent_increments(&Fixture::memory()).await;
    suite::optimistic_updates_from_many_tasks_lose_nothing(&Fixture::memory()).await;
    suite::many_concurrent_gets_and_sets(&Fixture::memory()).await;
}
