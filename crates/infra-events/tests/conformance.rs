//! One conformance suite, run on every bus backend and mode: memory, Redis pub/sub and Redis
//! streams (durable) on throwaway servers (two buses each, like two processes).

mod support;

use support::{Fixture, suite};

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
                    suite::$name(&Fixture::redis()).await;
                }
            )*
        }

        mod durable {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    suite::$name(&Fixture::durable()).await;
                }
            )*
        }
    };
}

conformance!(
    order_and_fan_out,
    pattern_table,
    unsubscribe_and_drop_stop_delivery,
    handler_errors_and_panics_are_isolated,
    handlers_run_with_the_publishers_correlation_id,
    batch_publish,
    payloads_of_plain_redis_clients_are_delivered,
);
