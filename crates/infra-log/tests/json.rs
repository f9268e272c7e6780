//! Bunyan JSON output, captured into a buffer and parsed.

mod support;

use std::time::Duration;

use infra_config::LogFormat;
use infra_log::{CorrelationId, LogBuilder, LogContext, LogGuard, bind, spawn, timed, with_correlation_id};
use serde_json::Value;
use support::{Captured, logging};

/// Runs `body` on a current-thread runtime with a scoped JSON subscriber; returns the lines.
fn capture_json<F, Fut>(level: &str, body: F) -> Vec<Value>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let captured = Captured::default();
    let (dispatch, guard) = LogBuilder::new(&logging(LogFormat::Json, level))
        .name("test-bot")
        .writer(captured.clone())
        .ignore_rust_log()
        .build()
        .expect("valid config");
    {
        let _scope = tracing::dispatcher::set_default(&dispatch);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        runtime.block_on(body());
    }
    flush(guard);
    captured.json_lines()
}

fn flush(guard: LogGuard) {
    assert_eq!(guard.dropped_lines(), 0);
    drop(guard);
}

/// The line whose `msg` is exactly `message`: span names never enter it.
fn find<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines.iter().find(|l| l["msg"] == message).unwrap_or_else(|| panic!("no line {message:?} in {lines:#?}"))
}

#[test]
fn a_line_has_the_bunyan_core_fields_and_its_own_fields() {
    let lines = capture_json("info", || async {
        tracing::info!(symbol = "BTC", price = 50234.56, qty = 3_u64, filled = true, "order placed");
    });
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    assert_eq!(line["v"], 0);
    assert_eq!(line["name"], "test-bot");
    assert_eq!(line["msg"], "order placed");
    assert_eq!(line["level"], 30);
    assert_eq!(line["pid"], std::process::id());
    assert!(line["hostname"].is_string());
    assert!(line["time"].as_str().is_some_and(|t| t.contains('T') && t.ends_with('Z')), "{line}");
    assert_eq!(line["symbol"], "BTC");
    assert_eq!(line["price"], 50234.56);
    assert_eq!(line["qty"], 3);
    assert_eq!(line["filled"], true);
    assert_eq!(line["target"], "json");
}

#[test]
fn lines_carry_every_field_of_the_enclosing_contexts() {
    let lines = capture_json("debug", || async {
        LogContext::execution("exec-7", "bot-1", "arb-btc")
            .run(async {
                tracing::info!("execution started");
                LogContext::node("price_check")
                    .run(async {
                        bind!(venue = "binance", account = 7_u64)
                            .run(async { tracing::debug!(spread = 0.5, "node ran") })
                            .await;
                    })
                    .await;
            })
            .await;
        LogContext::bot("bot-2").in_scope(|| tracing::warn!("bot-level warning"));
        LogContext::strategy("mean-revert").in_scope(|| tracing::error!("strategy-level error"));
    });
    let started = find(&lines, "execution started");
    assert_eq!(started["execution_id"], "exec-7");
    assert_eq!(started["bot_id"], "bot-1");
    assert_eq!(started["strategy_id"], "arb-btc");
    assert_eq!(started["correlation_id"], "exec-7", "an execution ID is the correlation ID");

    let node = find(&lines, "node ran");
    assert_eq!(node["level"], 20);
    for (key, value) in [
        ("node_id", Value::from("price_check")),
        ("venue", Value::from("binance")),
        ("account", Value::from(7)),
        ("execution_id", Value::from("exec-7")),
        ("correlation_id", Value::from("exec-7")),
        ("bot_id", Value::from("bot-1")),
        ("spread", Value::from(0.5)),
    ] {
        assert_eq!(node[key], value, "{key} in {node}");
    }

    let warning = find(&lines, "bot-level warning");
    assert_eq!((warning["level"].as_u64(), warning["bot_id"].as_str()), (Some(40), Some("bot-2")));
    assert!(warning.get("correlation_id").is_none(), "outside the execution: {warning}");
    let error = find(&lines, "strategy-level error");
    assert_eq!((error["level"].as_u64(), error["strategy_id"].as_str()), (Some(50), Some("mean-revert")));
    assert_eq!(lines.len(), 4, "context spans write no records of their own: {lines:#?}");
}

#[test]
fn correlation_follows_spawned_tasks_and_nested_scopes() {
    let lines = capture_json("info", || async {
        let id = CorrelationId::parse("corr-1").unwrap();
        with_correlation_id(id, async {
            tracing::info!("parent");
            spawn(async { tracing::info!("child task") }).await.unwrap();
            let inner = CorrelationId::parse("corr-2").unwrap();
            with_correlation_id(inner, async { tracing::info!("inner scope") }).await;
            tracing::info!("parent again");
        })
        .await;
        tracing::info!("outside");
    });
    assert_eq!(find(&lines, "parent")["correlation_id"], "corr-1");
    assert_eq!(find(&lines, "child task")["correlation_id"], "corr-1");
    assert_eq!(find(&lines, "inner scope")["correlation_id"], "corr-2");
    assert_eq!(find(&lines, "parent again")["correlation_id"], "corr-1");
    assert!(find(&lines, "outside").get("correlation_id").is_none());
}

#[test]
fn sensitive_fields_are_redacted_in_events_and_spans() {
    let lines = capture_json("info", || async {
        bind!(api_key = "k-live-123", user = "ana")
            .run(async { tracing::info!(password = "hunter2", Authorization = "Bearer t0k", symbol = "ETH", "login") })
            .await;
    });
    let line = find(&lines, "login");
    assert_eq!(line["password"], "[REDACTED]");
    assert_eq!(line["Authorization"], "[REDACTED]");
    assert_eq!(line["api_key"], "[REDACTED]");
    assert_eq!(line["user"], "ana");
    assert_eq!(line["symbol"], "ETH");
    let raw = serde_json::to_string(&lines).unwrap();
    for secret in ["hunter2", "t0k", "k-live-123"] {
        assert!(!raw.contains(secret), "{secret} leaked: {raw}");
    }
}

/// The console output redacts these names (`is_sensitive` ignores case): JSON lines must too.
#[test]
fn sensitive_fields_are_redacted_whatever_the_case_of_their_names() {
    let lines = capture_json("info", || async {
        tracing::info!(apiKey = "k-live-456", AUTHORIZATION = "Bearer up", DB_PASSWORD = "hunter3", "connect");
    });
    let line = find(&lines, "connect");
    for name in ["apiKey", "AUTHORIZATION", "DB_PASSWORD"] {
        assert_eq!(line[name], "[REDACTED]", "{name}: {line}");
    }
}

/// A program's fields named like the record's own `target`, `line` and `file` (a file loaded, a
/// line of it) must not make a key appear twice: log stores such as Elasticsearch reject
/// such a record. The program's field wins, as it does for `span`.
#[test]
fn fields_named_like_the_records_metadata_appear_once() {
    let captured = Captured::default();
    let (dispatch, guard) = LogBuilder::new(&logging(LogFormat::Json, "info"))
        .writer(captured.clone())
        .ignore_rust_log()
        .build()
        .expect("valid config");
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info_span!("import", target = "BTC", line = 3_u64).in_scope(|| {
            tracing::info!(file = "orders.csv", line = 7_u64, "loaded");
        });
    });
    flush(guard);
    let text = captured.text();
    for key in ["\"target\":", "\"line\":", "\"file\":"] {
        assert_eq!(text.matches(key).count(), 1, "{key} in {text}");
    }
    let line: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!((line["file"].as_str(), line["line"].as_u64()), (Some("orders.csv"), Some(7)), "{line}");
    assert_eq!(line["target"], "BTC", "{line}");
}

#[test]
fn levels_below_the_configured_one_are_not_written() {
    let lines = capture_json("warn", || async {
        tracing::info!("too chatty");
        tracing::debug!("far too chatty");
        LogContext::execution("exec-1", "b", "s").run(async { tracing::warn!("kept") }).await;
    });
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["correlation_id"], "exec-1", "context survives a restrictive level");
}

#[test]
fn timing_logs_duration_outcome_and_slowness_on_the_paused_clock() {
    let lines = capture_json("info", || async {
        let fast: Result<u32, std::io::Error> = timed("fetch_price")
            .slow_after(Duration::from_millis(500))
            .run(async {
                tokio::time::sleep(Duration::from_millis(120)).await;
                Ok(7)
            })
            .await;
        assert_eq!(fast.unwrap(), 7);
        let _slow: Result<(), std::io::Error> = timed("place_order")
            .slow_after(Duration::from_millis(500))
            .run(async {
                tokio::time::sleep(Duration::from_millis(750)).await;
                Ok(())
            })
            .await;
        let failed: Result<(), std::io::Error> =
            timed("cancel_order").run(async { Err(std::io::Error::other("exchange said no")) }).await;
        assert!(failed.is_err());
        timed("sum").run_blocking(|| ());
    });
    let fast = find(&lines, "fetch_price took 120.000 ms");
    assert_eq!((fast["level"].as_u64(), fast["duration_ms"].as_f64()), (Some(30), Some(120.0)));
    assert_eq!((fast["operation"].as_str(), fast["outcome"].as_str()), (Some("fetch_price"), Some("ok")));
    assert_eq!(fast["target"], "infra_log::timing");

    let slow = find(&lines, "place_order was slow: 750.000 ms");
    assert_eq!(slow["level"], 40);
    assert_eq!((slow["slow"].as_bool(), slow["threshold_ms"].as_f64()), (Some(true), Some(500.0)));

    let failed = find(&lines, "cancel_order failed after 0.000 ms");
    assert_eq!((failed["level"].as_u64(), failed["outcome"].as_str()), (Some(40), Some("error")));
    assert_eq!(failed["error"], "exchange said no");

    assert_eq!(find(&lines, "sum took 0.000 ms")["outcome"], "ok");
}
