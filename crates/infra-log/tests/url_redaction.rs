//! A URL logged as plain text shows its secrets exactly as a `RedisUrl` does: hidden.

mod support;

use infra_config::{LogFormat, RedisUrl};
use infra_log::LogBuilder;
use support::{Captured, logging};

const SENTINEL_URL: &str =
    "redis-sentinel://bot:pw-1@sentinel:26379/0?sentinelServiceName=mymaster&sentinelPassword=pw-2&node=s2:26380";
const TOKEN_URL: &str = "rediss://t0ken-3@cache:6380";

/// Logs the URLs in a message, in fields and in a span field; returns the captured output.
fn capture(format: LogFormat) -> String {
    let captured = Captured::default();
    let (dispatch, guard) =
        LogBuilder::new(&logging(format, "info")).writer(captured.clone()).ignore_rust_log().build().expect("valid");
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info_span!("connect", target_url = TOKEN_URL).in_scope(|| {
            tracing::warn!(url = SENTINEL_URL, debug = ?SENTINEL_URL, "sentinel {SENTINEL_URL} unreachable");
        });
    });
    drop(guard);
    captured.text()
}

#[test]
fn json_lines_hide_url_secrets_like_redis_url_does() {
    let text = capture(LogFormat::Json);
    for secret in ["pw-1", "pw-2", "t0ken-3"] {
        assert!(!text.contains(secret), "{text}");
    }
    let line: serde_json::Value = serde_json::from_str(text.lines().next().expect("one line")).unwrap();
    let shown = RedisUrl::parse(SENTINEL_URL).unwrap().to_string();
    assert_eq!(
        shown,
        "redis-sentinel://bot:***@sentinel:26379/0?sentinelServiceName=mymaster&sentinelPassword=***&node=s2:26380"
    );
    assert_eq!(line["url"], shown.as_str());
    assert_eq!(line["debug"], format!("{shown:?}"));
    assert_eq!(line["msg"], format!("sentinel {shown} unreachable"), "{line}");
    assert_eq!(line["target_url"], RedisUrl::parse(TOKEN_URL).unwrap().to_string());
    assert_eq!(line["target_url"], "rediss://***@cache:6380");
}

#[test]
fn console_lines_hide_url_secrets_like_redis_url_does() {
    let text = capture(LogFormat::Console);
    for secret in ["pw-1", "pw-2", "t0ken-3"] {
        assert!(!text.contains(secret), "{text}");
    }
    let shown = RedisUrl::parse(SENTINEL_URL).unwrap().to_string();
    assert!(text.contains("connect{target_url=\"rediss://***@cache:6380\"}"), "{text}");
    assert!(text.contains(&format!("sentinel {shown} unreachable url=\"{shown}\" debug=\"{shown}\"")), "{text}");
}
