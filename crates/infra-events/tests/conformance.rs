//! One conformance suite, run on every bus backend: memory, and Redis pub/sub on a throwaway
//! server (two buses, like two processes).

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
    };
}

conformance!(
    order_and_fan_out,
    pattern_table,
    unsubscribe_and_drop_stop_delivery,
    handler_errors_and_panics_are_isolated,
    handlers_run_with_the_publishers_correlation_id,
    batch_publish,
);
