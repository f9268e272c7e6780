//! Redaction: values of fields named like secrets are written as `[REDACTED]`, and the secrets
//! of URLs anywhere in a line (user-info, `sentinelPassword=` and other secret query
//! parameters) as `***`.
//!
//! A field is sensitive when its name, in lowercase, contains one of [`SENSITIVE_NAMES`]. URLs
//! are redacted by [`infra_config::redact_urls_in`], the same function that renders a
//! `RedisUrl`, so a URL logged as a plain string reads exactly like one logged as a `RedisUrl`.
//! JSON lines are checked with a fast byte search first and only parsed when a candidate
//! appears; console lines have their fields redacted while formatted, and their URLs once
//! written.

use std::{borrow::Cow, fmt};

use infra_config::redact_urls_in;
use memchr::memmem;
use serde_json::Value;
use tracing::field::Field;
use tracing_subscriber::field::{MakeVisitor, Visit, VisitFmt, VisitOutput};

/// What a sensitive value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Field names containing any of these (case-insensitive) are redacted.
pub const SENSITIVE_NAMES: &[&str] = &["password", "passwd", "token", "secret", "api_key", "apikey", "authorization"];

/// Whether a field with this name carries a secret.
pub fn is_sensitive(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE_NAMES.iter().any(|needle| lower.contains(needle))
}

/// Whether a line may name a sensitive field: [`SENSITIVE_NAMES`] searched in its lowercased
/// bytes, since [`is_sensitive`] ignores case (`apiKey`, `DB_PASSWORD`). The lowercased copy
/// lives in a buffer reused per thread, so the check allocates nothing.
fn may_name_a_secret(line: &[u8]) -> bool {
    thread_local! {
        static LOWERCASE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    LOWERCASE.with_borrow_mut(|lower| {
        lower.clear();
        lower.extend(line.iter().map(u8::to_ascii_lowercase));
        SENSITIVE_NAMES.iter().any(|name| memmem::find(lower, name.as_bytes()).is_some())
    })
}

/// Whether a line may hold a URL with a secret: one needs a `://`, and an `@` (user-info) or a
/// `?` (query).
fn may_hold_url_secret(line: &[u8]) -> bool {
    memmem::find(line, b"://").is_some() && memchr::memchr2(b'@', b'?', line).is_some()
}

/// Redacts the sensitive fields of one JSON log line (top level and nested objects) and the
/// URLs in its string values. Lines without a candidate, the vast majority, are returned as
/// they are.
pub(crate) fn redact_json_line(line: &[u8]) -> Cow<'_, [u8]> {
    if !may_name_a_secret(line) && !may_hold_url_secret(line) {
        return Cow::Borrowed(line);
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(line) else {
        return Cow::Borrowed(line);
    };
    if !redact_value(&mut value) {
        return Cow::Borrowed(line);
    }
    let mut out = serde_json::to_vec(&value).unwrap_or_else(|_| line.to_vec());
    if line.ends_with(b"\n") {
        out.push(b'\n');
    }
    Cow::Owned(out)
}

/// Replaces sensitive values in place; says whether anything changed.
fn redact_value(value: &mut Value) -> bool {
    match value {
        Value::Object(map) => {
            let mut changed = false;
            for (key, child) in map.iter_mut() {
                if is_sensitive(key) {
                    if child.as_str() != Some(REDACTED) {
                        *child = Value::String(REDACTED.to_owned());
                        changed = true;
                    }
                } else {
                    changed |= redact_value(child);
                }
            }
            changed
        }
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| redact_value(item) | changed),
        Value::String(text) if text.contains("://") => {
            let redacted = redact_urls_in(text);
            let changed = redacted != *text;
            *text = redacted;
            changed
        }
        _ => false,
    }
}

/// Redacts the URLs of one console line; lines without a candidate are returned as they are.
pub(crate) fn redact_text_line(line: &[u8]) -> Cow<'_, [u8]> {
    if !may_hold_url_secret(line) {
        return Cow::Borrowed(line);
    }
    // Lossy: a line that is not UTF-8 is still redacted rather than written as it is.
    let text = String::from_utf8_lossy(line);
    let redacted = redact_urls_in(&text);
    if redacted == text { Cow::Borrowed(line) } else { Cow::Owned(redacted.into_bytes()) }
}

/// Field formatter for console output: like the default one, but sensitive values are
/// replaced. Also used for span fields, so `info_span!("login", password = %p)` is safe too.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RedactingFields;

impl<'a> MakeVisitor<tracing_subscriber::fmt::format::Writer<'a>> for RedactingFields {
    type Visitor = RedactingVisitor<'a>;

    fn make_visitor(&self, target: tracing_subscriber::fmt::format::Writer<'a>) -> Self::Visitor {
        RedactingVisitor { writer: target, first: true, result: Ok(()) }
    }
}

pub(crate) struct RedactingVisitor<'a> {
    writer: tracing_subscriber::fmt::format::Writer<'a>,
    first: bool,
    result: fmt::Result,
}

impl Visit for RedactingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        let name = field.name();
        if name.starts_with("log.") {
            // A bridged `log` record's metadata, already shown as the line's target.
            return;
        }
        self.first = false;
        self.result = if name == "message" {
            write!(self.writer, "{separator}{value:?}")
        } else if is_sensitive(name) {
            write!(self.writer, "{separator}{name}={REDACTED}")
        } else if let Some(raw) = name.strip_prefix("r#") {
            write!(self.writer, "{separator}{raw}={value:?}")
        } else {
            write!(self.writer, "{separator}{name}={value:?}")
        };
    }
}

impl VisitOutput<fmt::Result> for RedactingVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for RedactingVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// Formats any fields through [`RedactingFields`], for tests of the console path.
#[cfg(test)]
fn format_fields(fields: impl tracing_subscriber::field::RecordFields) -> String {
    use tracing_subscriber::fmt::FormatFields;
    let mut out = String::new();
    RedactingFields.format_fields(tracing_subscriber::fmt::format::Writer::new(&mut out), fields).expect("formats");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_secrets_are_sensitive() {
        for name in ["password", "db_password", "Authorization", "api_key", "apiKey", "x_token", "client_secret"] {
            assert!(is_sensitive(name), "{name}");
        }
        for name in ["price", "symbol", "bot_id", "correlation_id"] {
            assert!(!is_sensitive(name), "{name}");
        }
    }

    #[test]
    fn json_lines_without_candidates_are_untouched() {
        let line = br#"{"msg":"order placed","price":1.5}"#;
        assert!(matches!(redact_json_line(line), Cow::Borrowed(_)));
        // A candidate in a value only (not a key) leaves the line as it was.
        let line = br#"{"msg":"broken pipe"}"#;
        assert_eq!(&*redact_json_line(line), line);
    }

    #[test]
    fn json_lines_have_sensitive_values_replaced_at_any_depth() {
        let line = b"{\"msg\":\"login\",\"Password\":\"hunter2\",\"ctx\":{\"api_key\":\"k\"},\"n\":1}\n";
        let out = redact_json_line(line);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("\"k\""), "{text}");
        assert!(text.ends_with("}\n"));
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(value["Password"], REDACTED);
        assert_eq!(value["ctx"]["api_key"], REDACTED);
        assert_eq!(value["n"], 1);
    }

    #[test]
    fn json_lines_have_url_secrets_replaced_in_any_string() {
        let line = concat!(
            r#"{"msg":"reconnecting to redis-sentinel://s:26379/0?sentinelServiceName=m&sentinelPassword=pw1 now","#,
            r#""url":"redis://bot:pw2@h:6379","ctx":{"urls":["redis://tok3n@h"]},"n":1}"#,
            "\n"
        );
        let out = redact_json_line(line.as_bytes());
        let text = std::str::from_utf8(&out).unwrap();
        for secret in ["pw1", "pw2", "tok3n"] {
            assert!(!text.contains(secret), "{text}");
        }
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            value["msg"],
            "reconnecting to redis-sentinel://s:26379/0?sentinelServiceName=m&sentinelPassword=*** now"
        );
        assert_eq!(value["url"], "redis://bot:***@h:6379");
        assert_eq!(value["ctx"]["urls"][0], "redis://***@h");
        // The same text as a `RedisUrl` shows.
        let url = infra_config::RedisUrl::parse("redis://bot:pw2@h:6379").unwrap();
        assert_eq!(value["url"], url.to_string());
        // URLs without secrets leave the line as it was.
        let line = br#"{"msg":"GET https://example.com/a?b=1 and redis://h:6379"}"#;
        assert!(matches!(redact_json_line(line), Cow::Borrowed(_)));
    }

    #[test]
    fn console_lines_have_url_secrets_replaced() {
        let line = b"2024-01-01T00:00:00Z  WARN fred::router: reconnecting to redis://u:pw@host:6379 url=\"redis://h?token=t0k\"\n";
        let out = redact_text_line(line);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "2024-01-01T00:00:00Z  WARN fred::router: reconnecting to redis://u:***@host:6379 url=\"redis://h?token=***\"\n"
        );
        let line = b"INFO bot: order placed price=1.5 at https://x/y\n";
        assert!(matches!(redact_text_line(line), Cow::Borrowed(_)));
    }

    #[test]
    fn console_visitor_writes_message_then_fields() {
        // Build a real event through a callsite and format it.
        struct Capture(std::sync::Mutex<Vec<String>>);
        impl tracing::Subscriber for Capture {
            fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
                tracing::span::Id::from_u64(1)
            }
            fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
            fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
            fn event(&self, event: &tracing::Event<'_>) {
                self.0.lock().unwrap().push(format_fields(event));
            }
            fn enter(&self, _: &tracing::span::Id) {}
            fn exit(&self, _: &tracing::span::Id) {}
        }
        let capture = std::sync::Arc::new(Capture(std::sync::Mutex::new(Vec::new())));
        tracing::subscriber::with_default(capture.clone(), || {
            tracing::info!(password = "hunter2", symbol = "BTC", "logged in");
        });
        assert_eq!(capture.0.lock().unwrap().as_slice(), ["logged in password=[REDACTED] symbol=\"BTC\""]);
    }
}
