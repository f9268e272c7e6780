//! When another `log` logger is installed first, `init` says so with a typed error and
//! installs nothing, so the program can keep that logger. Its own test binary, since loggers
//! and subscribers are process-wide.

mod support;

use std::sync::Mutex;

use infra_config::LogFormat;
use infra_log::{LogBuilder, LogError};
use support::{Captured, logging};
use tracing_log::log;

/// A logger installed by some other library, keeping what it receives.
struct Foreign(Mutex<Vec<String>>);

impl log::Log for Foreign {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push(format!("{} {}", record.target(), record.args()));
    }

    fn flush(&self) {}
}

static FOREIGN: Foreign = Foreign(Mutex::new(Vec::new()));

#[test]
fn a_foreign_logger_is_reported_and_left_in_place() {
    log::set_logger(&FOREIGN).expect("first logger");
    log::set_max_level(log::LevelFilter::Info);

    let captured = Captured::default();
    let err = LogBuilder::new(&logging(LogFormat::Json, "info"))
        .writer(captured.clone())
        .ignore_rust_log()
        .init()
        .expect_err("a logger is already installed");
    assert!(matches!(err, LogError::LoggerAlreadySet), "{err:?}");
    assert_eq!(
        err.to_string(),
        "a `log` logger is already installed in this process; remove it or keep it with `LogBuilder::bridge_log(false)`"
    );

    // The failed init installed no subscriber: one can still be, next to the foreign logger.
    let guard = LogBuilder::new(&logging(LogFormat::Json, "info"))
        .writer(captured.clone())
        .ignore_rust_log()
        .bridge_log(false)
        .init()
        .expect("nothing was installed by the failed init");
    log::warn!(target: "fred::router", "to the foreign logger");
    tracing::warn!("to infra-log");
    drop(guard);

    assert_eq!(FOREIGN.0.lock().unwrap().as_slice(), ["fred::router to the foreign logger"]);
    let lines = captured.json_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["msg"], "to infra-log");
}
