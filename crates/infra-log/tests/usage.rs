//! A bot author's first program with JSON logs: `msg` is exactly what the call site wrote,
//! whatever spans surround it (the program's own, and the context spans infra-log creates for
//! executions, nodes, bound fields and correlation IDs); span names are a field.

mod support;

use infra_config::LogFormat;
use infra_log::{CorrelationId, LogBuilder, LogContext, bind, spawn, with_correlation_id};
use serde_json::Value;
use support::{Captured, logging};
use tracing::Instrument;

/// Runs `body` under a scoped JSON subscriber writing into a buffer; returns the lines.
fn json_lines_of<Fut: Future<Output = ()>>(body: impl FnOnce() -> Fut) -> Vec<Value> {
    let captured = Captured::default();
    let (dispatch, guard) = LogBuilder::new(&logging(LogFormat::Json, "debug"))
        .name("arb-bot")
        .writer(captured.clone())
        .ignore_rust_log()
        .build()
        .expect("valid logging config");
    tracing::dispatcher::with_default(&dispatch, || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(body());
    });
    assert_eq!(guard.dropped_lines(), 0);
    drop(guard); // flushes
    captured.json_lines()
}

#[test]
fn msg_is_the_call_site_message_inside_nested_spans() {
    let lines = json_lines_of(|| async {
        tracing::info!("bot started");
        LogContext::execution("exec-9", "bot-1", "arb-btc")
            .run(async {
                // A span takes its parent's fields when created, so each is made inside the last.
                LogContext::node("place_order")
                    .run(async {
                        let submit = tracing::info_span!("submit", symbol = "BTC");
                        async {
                            bind!(venue = "binance").run(async { tracing::info!(qty = 2_u64, "order placed") }).await
                        }
                        .instrument(submit)
                        .await;
                    })
                    .await;
                spawn(async { tracing::warn!("child task") }).await.unwrap();
            })
            .await;
        let id = CorrelationId::parse("corr-7").unwrap();
        with_correlation_id(id, async { tracing::error!(code = 7_u64, "rejected: [SUBMIT - EVENT] is text") }).await;
    });
    let messages: Vec<_> = lines.iter().map(|line| line["msg"].as_str().unwrap()).collect();
    assert_eq!(messages, ["bot started", "order placed", "child task", "rejected: [SUBMIT - EVENT] is text"]);

    // The innermost span of the program is a field; infra-log's context spans give theirs.
    let placed = &lines[1];
    assert_eq!(placed["span"], "submit");
    for (key, value) in [
        ("symbol", Value::from("BTC")),
        ("venue", Value::from("binance")),
        ("node_id", Value::from("place_order")),
        ("execution_id", Value::from("exec-9")),
        ("correlation_id", Value::from("exec-9")),
        ("qty", Value::from(2)),
    ] {
        assert_eq!(placed[key], value, "{key} in {placed}");
    }
    assert!(lines[0].get("span").is_none(), "outside any span: {}", lines[0]);
    assert!(lines[2].get("span").is_none(), "only context spans: {}", lines[2]);
    assert_eq!(lines[2]["correlation_id"], "exec-9");
    assert_eq!(lines[3]["correlation_id"], "corr-7");
}

#[test]
fn an_explicit_parent_and_fields_named_like_the_span_field_are_kept() {
    let lines = json_lines_of(|| async {
        let order = tracing::info_span!("order", order_id = 42_u64);
        tracing::info!(parent: &order, "filled");
        tracing::info_span!("leg", span = "user-value").in_scope(|| tracing::info!(side = "buy", "sent"));
        tracing::info_span!("leg", side = "sell").in_scope(|| tracing::info!(side = "buy", "overridden"));
    });
    assert_eq!((lines[0]["msg"].as_str(), lines[0]["span"].as_str()), (Some("filled"), Some("order")));
    assert_eq!(lines[0]["order_id"], 42);
    assert_eq!((lines[1]["msg"].as_str(), lines[1]["span"].as_str()), (Some("sent"), Some("user-value")));
    // One key per name, the event's own value first: `side` appears once, as the event said.
    assert_eq!(lines[2]["side"], "buy");
    let raw = serde_json::to_string(&lines[2]).unwrap();
    assert_eq!(raw.matches("\"side\"").count(), 1, "{raw}");
}
