//! Records of the `log` crate (fred reports reconnections and protocol errors that way) reach
//! the log after `init`: filtered by the configured level and targets, under their own target,
//! with URL secrets redacted. Its own test binary, since `init` installs process-wide state.

mod support;

use infra_config::LogFormat;
use infra_log::{LogBuilder, LogContext, LogError};
use serde_json::Value;
use support::{Captured, logging};
use tracing_log::log;

const SENTINEL_URL: &str =
    "redis-sentinel://sentinel:26379/mymaster?sentinelServiceName=mymaster&sentinelPassword=s3ntinel-pw";

/// One test function: the bridge and subscriber are global, and the console check relies on
/// the bridge the JSON check installed.
#[test]
fn log_records_are_bridged_filtered_and_redacted() {
    let captured = Captured::default();
    let guard = LogBuilder::new(&logging(LogFormat::Json, "info,noisy_dep=error"))
        .name("bridge-test")
        .writer(captured.clone())
        .ignore_rust_log()
        .init()
        .expect("first init");
    // The configured level is `log`'s maximum too, so disabled records cost one comparison.
    assert_eq!(log::max_level(), log::LevelFilter::Info);

    log::warn!(target: "fred::something", "reconnecting to redis://u:pw@host:6379 after error: connection reset");
    LogContext::execution("exec-5", "bot-1", "arb").in_scope(|| {
        log::error!(target: "fred::router", "sentinel {SENTINEL_URL} unreachable");
    });
    log::debug!(target: "fred::something", "below the level");
    log::warn!(target: "noisy_dep::pool", "below this target's level");
    log::error!(target: "noisy_dep::pool", "at this target's level");

    // A second init fails with a typed error, whether it would bridge `log` or not.
    for bridge in [true, false] {
        let second = LogBuilder::new(&logging(LogFormat::Json, "info")).ignore_rust_log().bridge_log(bridge).init();
        assert!(matches!(second, Err(LogError::AlreadyInitialized)), "{second:?}");
    }

    assert_eq!(guard.dropped_lines(), 0);
    drop(guard);
    let text = captured.text();
    for secret in ["pw@", "s3ntinel-pw"] {
        assert!(!text.contains(secret), "{text}");
    }
    let lines = captured.json_lines();
    let messages: Vec<&str> = lines.iter().map(|line| line["msg"].as_str().expect("msg")).collect();
    assert_eq!(lines.len(), 3, "{messages:#?}");

    let reconnect = &lines[0];
    assert_eq!(reconnect["msg"], "reconnecting to redis://u:***@host:6379 after error: connection reset");
    assert_eq!(reconnect["level"], 40);
    assert_eq!(reconnect["target"], "fred::something");
    assert_eq!(reconnect["name"], "bridge-test");
    assert!(reconnect["file"].as_str().is_some_and(|file| file.ends_with("log_bridge.rs")), "{reconnect}");
    assert!(reconnect["line"].is_u64(), "{reconnect}");
    let keys = reconnect.as_object().expect("object").keys();
    assert!(keys.into_iter().all(|key| !key.starts_with("log.")), "{reconnect}");

    // Inside an execution, a bridged record carries its context like any other line.
    let sentinel = &lines[1];
    assert_eq!(
        sentinel["msg"],
        "sentinel redis-sentinel://sentinel:26379/mymaster?sentinelServiceName=mymaster&sentinelPassword=*** unreachable",
        "{sentinel}"
    );
    assert_eq!(sentinel["level"], 50);
    assert_eq!(sentinel["target"], "fred::router");
    assert_eq!(sentinel["correlation_id"], "exec-5");

    assert_eq!(lines[2]["msg"], "at this target's level");
    assert_eq!(lines[2]["target"], "noisy_dep::pool");
    assert!(lines.iter().all(|line: &Value| line["level"].as_u64() >= Some(40)));

    // Console output: the bridge feeds the current subscriber, here a scoped one.
    let console = Captured::default();
    let (dispatch, guard) = LogBuilder::new(&logging(LogFormat::Console, "info"))
        .writer(console.clone())
        .ignore_rust_log()
        .build()
        .expect("valid config");
    tracing::dispatcher::with_default(&dispatch, || {
        log::warn!(target: "fred::something", "reconnecting to {SENTINEL_URL}");
    });
    drop(guard);
    let text = console.text();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(
            " WARN fred::something: reconnecting to redis-sentinel://sentinel:26379/mymaster?sentinelServiceName=mymaster&sentinelPassword=***"
        ),
        "{text}"
    );
    assert!(!text.contains("s3ntinel-pw") && !text.contains("log."), "{text}");
}
