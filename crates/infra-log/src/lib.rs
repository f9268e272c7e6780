//! Structured JSON (bunyan) or console logs with correlation IDs that follow one bot execution
//! across tasks and processes.
//!
//! - [`init`] installs a [`tracing`] subscriber from [`LoggingConfig`](infra_config::LoggingConfig):
//!   `json` writes one bunyan object per line (`name`, `level`, `time`, `msg`, the event's
//!   fields and every field of the enclosing spans); `msg` is exactly the call site's message,
//!   and the name of the innermost span of the program (infra-log's own context spans aside)
//!   is the `span` field, never a prefix of `msg`. `console` writes readable
//!   text, coloured on a terminal. Lines go through a non-blocking writer so a slow sink never
//!   blocks a trading task; a line that cannot be buffered is dropped, counted
//!   ([`LogGuard::dropped_lines`]) and reported by a WARN line in the log.
//! - Correlation IDs: [`with_correlation_id`] runs a future with an ID carried by every line
//!   logged inside, also in tasks started with [`spawn`] or wrapped with [`propagate`].
//!   [`current_correlation_id`] reads it, so other crates can capture it and restore it later
//!   (infra-events puts it in event envelopes and restores it around handlers).
//!   Tasks inherit neither the ID nor the span by themselves: a raw
//!   `tokio::spawn(fut.in_current_span())` (with [`tracing::Instrument`]) keeps the field on
//!   the log lines but not [`current_correlation_id`]; [`spawn`] and [`propagate`] keep both.
//! - Context binding: [`LogContext`] binds `bot_id`, `strategy_id`, `execution_id` (which also
//!   sets the correlation ID) or `node_id`; [`bind!`] binds any key-values.
//! - Timing: [`timed`] logs an operation's `duration_ms` and outcome, as WARN when slow.
//! - Redaction: fields named like `password`, `token`, `secret`, `api_key` or
//!   `authorization` are written as `[REDACTED]`, in JSON and console output and in span fields;
//!   the secrets of URLs anywhere in a line (passwords, lone user-info tokens, `sentinelPassword`
//!   and other secret query parameters) as `***`, exactly as [`infra_config::RedisUrl`] shows
//!   them.
//! - The `log` crate: [`init`] also makes the subscriber the `log` crate's logger, so records
//!   of libraries that log through `log` (fred reports reconnections and protocol errors that
//!   way) are filtered by the same level and targets, redacted and written like any other line,
//!   under their own target.
//!
//! # Metrics
//!
//! Through the [`metrics`](https://docs.rs/metrics) facade (catalog:
//! docs/observability/metrics.md), while a [`LogGuard`] lives:
//!
//! | name | type | labels |
//! |---|---|---|
//! | `infra_log_lines_dropped_total` | counter | none |
//!
//! It follows [`LogGuard::dropped_lines`] within a second (a thread of the guard's updates it
//! once a second; logging a line costs nothing for it) and is exact once the guard is dropped.
//! It is looked up in the global recorder at each update, so the recorder may be installed
//! before or after logging.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | none | | this crate has no optional parts |
//!
//! # Example
//!
//! ```
//! use infra_config::{Config, Environment, LogFormat};
//! use infra_log::{LogBuilder, LogContext, current_correlation_id};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), infra_log::LogError> {
//! let mut logging = Config::for_env(Environment::Production).logging;
//! logging.format = LogFormat::Json;
//! // `infra_log::init(&logging)?` installs it globally and writes to stdout; here we keep it
//! // scoped and write into a buffer.
//! let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
//! # struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
//! # impl std::io::Write for Shared {
//! #     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().extend_from_slice(b); Ok(b.len()) }
//! #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! # }
//! let (dispatch, guard) = LogBuilder::new(&logging).name("arb-bot").writer(Shared(buffer.clone())).build()?;
//! let _scope = tracing::dispatcher::set_default(&dispatch);
//!
//! LogContext::execution("exec-42", "bot-1", "arb-btc")
//!     .run(async {
//!         assert_eq!(current_correlation_id().unwrap().as_str(), "exec-42");
//!         tracing::info!(symbol = "BTC", api_key = "k-123", "order placed");
//!     })
//!     .await;
//!
//! drop(guard); // flushes
//! let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
//! let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
//! assert_eq!(line["msg"], "order placed");
//! assert_eq!(line["correlation_id"], "exec-42");
//! assert_eq!(line["bot_id"], "bot-1");
//! assert_eq!(line["api_key"], "[REDACTED]");
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod bridge;
mod bunyan;
mod context;
mod correlation;
mod error;
mod init;
mod redact;
mod timing;

pub use context::LogContext;
pub use correlation::{
    CorrelationId, MAX_CORRELATION_ID_LEN, current_correlation_id, propagate, spawn, with_correlation_id,
};
pub use error::LogError;
pub use init::{DEFAULT_BUFFERED_LINES, LogBuilder, LogGuard, RUST_LOG, init, init_with_writer};
pub use redact::{REDACTED, SENSITIVE_NAMES, is_sensitive};
pub use timing::{Outcome, Timed, timed};
