//! Console output, captured into a buffer.

mod support;

use infra_config::LogFormat;
use infra_log::{LogBuilder, LogContext, bind};
use support::{Captured, logging};

fn capture_console(body: impl FnOnce()) -> String {
    let captured = Captured::default();
    let (dispatch, guard) = LogBuilder::new(&logging(LogFormat::Console, "info"))
        .writer(captured.clone())
        .ignore_rust_log()
        .build()
        .expect("valid config");
    tracing::dispatcher::with_default(&dispatch, body);
    drop(guard);
    captured.text()
}

#[test]
fn readable_lines_with_level_target_contexts_and_fields() {
    let text = capture_console(|| {
        LogContext::execution("exec-9", "bot-1", "arb").in_scope(|| {
            tracing::info!(symbol = "BTC", price = 1.5, "order placed");
        });
        tracing::debug!("hidden below the level");
    });
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let line = lines[0];
    assert!(line.contains(" INFO "), "{line}");
    assert!(
        line.contains(
            "execution{execution_id=exec-9 bot_id=bot-1 strategy_id=arb correlation_id=exec-9}: console: order placed symbol=\"BTC\" price=1.5"
        ),
        "{line}"
    );
    assert!(!line.contains('\u{1b}'), "no colour codes outside a terminal: {line:?}");
}

#[test]
fn sensitive_fields_are_redacted_in_console_output() {
    let text = capture_console(|| {
        bind!(token = "abc123").in_scope(|| tracing::warn!(db_password = "hunter2", user = "ana", "connecting"));
    });
    assert!(text.contains("context{token=[REDACTED]}"), "{text}");
    assert!(text.contains("connecting db_password=[REDACTED] user=\"ana\""), "{text}");
    assert!(!text.contains("hunter2") && !text.contains("abc123"), "{text}");
}
