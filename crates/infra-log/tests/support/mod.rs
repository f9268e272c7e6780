//! Shared helpers: a writer whose output the test can read back.

#![allow(dead_code, unreachable_pub, reason = "each test file uses a part of the helpers")]

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use infra_config::{Config, Environment, LogFormat, LoggingConfig};

/// An `io::Write` into a shared buffer.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("utf-8 output")
    }

    /// Every line parsed as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn logging(format: LogFormat, level: &str) -> LoggingConfig {
    let mut config = Config::for_env(Environment::Development).logging;
    config.format = format;
    config.level = level.to_owned();
    config
}
