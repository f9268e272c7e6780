//! Logging set up once per process by the first infrastructure, shared by the next ones,
//! flushed by the last `close`, and left alone when the process has its own subscriber. One
//! test: the global subscriber is per process.

mod support;

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use infra_facade::{
    Infrastructure, LogSetup, ResilientStore,
    config::{Config, Environment, LogFormat},
    prelude::*,
    resilience::BreakerRegistry,
};
use support::Flaky;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
    }
}

fn config(bot: &str) -> Config {
    let mut config = Config::for_env(Environment::Development);
    config.logging.format = LogFormat::Json;
    config.logging.level = "info".to_owned();
    config.emergency.bot_id = bot.to_owned();
    config
}

#[tokio::test]
async fn the_first_infrastructure_installs_logging_the_last_close_flushes_it() {
    let buffer = Buffer::default();
    let first = Infrastructure::builder(config("log-a")).log_writer(buffer.clone()).build().await.unwrap();
    let second = Infrastructure::builder(config("log-b")).log_writer(std::io::sink()).build().await.unwrap();
    let (a, b) = (first.health().await.logging, second.health().await.logging);
    assert_eq!((a.setup, a.dropped_lines), (LogSetup::Installed, Some(0)));
    assert_eq!((b.setup, b.dropped_lines), (LogSetup::Shared, Some(0)));

    // A retried state call logs under the caller's correlation ID.
    let mut resilience = config("log-a").resilience;
    resilience.retry.initial_delay = std::time::Duration::from_millis(1);
    let store = ResilientStore::new(
        Arc::new(Flaky::new(1)),
        &resilience,
        BreakerRegistry::default().get("state"),
        "in-process".into(),
    );
    let id = CorrelationId::parse("exec-log-9").unwrap();
    with_correlation_id(id, async { store.get("k").await.unwrap() }).await;

    first.close().await.unwrap();
    second.close().await.unwrap();
    let lines = buffer.lines();
    let messages: Vec<&str> = lines.iter().filter_map(|line| line["msg"].as_str()).collect();
    assert_eq!(messages.iter().filter(|m| **m == "infrastructure ready").count(), 2, "{messages:?}");
    assert_eq!(messages.iter().filter(|m| **m == "infrastructure closed").count(), 2, "{messages:?}");
    let retry = lines
        .iter()
        .find(|line| line["msg"] == "retrying a call that failed and is safe to repeat")
        .expect("the retry is logged");
    assert_eq!(retry["correlation_id"], "exec-log-9", "{retry}");
    assert_eq!(retry["error"], "get `k` timed out after 250ms", "{retry}");

    // Every guard released: the subscriber stays installed, and a new infrastructure leaves it
    // alone.
    let third = Infrastructure::create(config("log-c")).await.unwrap();
    let c = third.health().await.logging;
    assert_eq!((c.setup, c.dropped_lines), (LogSetup::External, None));
    third.close().await.unwrap();
}
