//! The global subscriber: installed once, shared by every thread, hundreds of concurrent
//! executions without mixing their correlation IDs.

mod support;

use std::collections::HashMap;

use infra_config::LogFormat;
use infra_log::{LogBuilder, LogContext, LogError, spawn};
use support::{Captured, logging};

const EXECUTIONS: usize = 300;
const STEPS: usize = 5;

#[test]
fn concurrent_executions_never_mix_correlation_ids_and_init_is_once() {
    let captured = Captured::default();
    let guard = LogBuilder::new(&logging(LogFormat::Json, "info"))
        .writer(captured.clone())
        .ignore_rust_log()
        .init()
        .expect("first init");

    let second = LogBuilder::new(&logging(LogFormat::Json, "info")).ignore_rust_log().init();
    assert!(matches!(second, Err(LogError::AlreadyInitialized)), "{second:?}");
    assert_eq!(
        LogError::AlreadyInitialized.to_string(),
        "logging is already initialized in this process; call `init` once, at startup"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for n in 0..EXECUTIONS {
            tasks.push(tokio::spawn(async move {
                LogContext::execution(&format!("exec-{n}"), "bot", "strategy")
                    .run(async move {
                        for step in 0..STEPS {
                            tracing::info!(n, step, "step");
                            tokio::task::yield_now().await;
                        }
                        spawn(async move { tracing::info!(n, "child") }).await.unwrap();
                    })
                    .await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    assert_eq!(guard.dropped_lines(), 0);
    drop(guard);

    let lines = captured.json_lines();
    assert_eq!(lines.len(), EXECUTIONS * (STEPS + 1));
    let mut per_execution: HashMap<u64, usize> = HashMap::new();
    for line in &lines {
        let n = line["n"].as_u64().expect("n");
        assert_eq!(line["correlation_id"], format!("exec-{n}"), "mixed up: {line}");
        assert_eq!(line["execution_id"], format!("exec-{n}"), "mixed up: {line}");
        *per_execution.entry(n).or_default() += 1;
    }
    assert_eq!(per_execution.len(), EXECUTIONS);
    assert!(per_execution.values().all(|&count| count == STEPS + 1));
}
