//! Fixtures for the conformance suite: a publishing and a subscribing bus (the same bus in
//! memory; two buses, like two processes, on Redis).

#![allow(dead_code, unreachable_pub, reason = "each test file uses a part of the helpers")]

pub mod suite;

use std::{sync::Arc, time::Duration};

use infra_config::RedisUrl;
use infra_events::{
    EventBus,
    memory::MemoryBus,
    redis::{DurableBus, DurableOptions, RedisBus},
};
use infra_testkit::RedisServer;

/// How the bus under test stores events, for the few checks that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Memory,
    Ephemeral,
    Durable,
}

pub struct Fixture {
    pub publisher: Arc<dyn EventBus>,
    pub subscriber: Arc<dyn EventBus>,
    pub mode: Mode,
    pub server: Option<RedisServer>,
}

impl Fixture {
    pub fn memory() -> Self {
        let bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new("pub"));
        Self { publisher: bus.clone(), subscriber: bus, mode: Mode::Memory, server: None }
    }

    pub fn redis() -> Self {
        let server = RedisServer::start().expect("redis-server must be installed");
        let url = RedisUrl::parse(&server.url()).unwrap();
        let timeout = Duration::from_secs(5);
        Self {
            publisher: Arc::new(RedisBus::new(&url, "conformance", "pub", timeout).unwrap()),
            subscriber: Arc::new(RedisBus::new(&url, "conformance", "sub", timeout).unwrap()),
            mode: Mode::Ephemeral,
            server: Some(server),
        }
    }

    pub fn durable() -> Self {
        let server = RedisServer::start().expect("redis-server must be installed");
        let url = RedisUrl::parse(&server.url()).unwrap();
        let timeout = Duration::from_secs(5);
        let bus = |source| DurableBus::new(&url, "conformance", source, timeout, DurableOptions::default()).unwrap();
        Self {
            publisher: Arc::new(bus("pub")),
            subscriber: Arc::new(bus("sub")),
            mode: Mode::Durable,
            server: Some(server),
        }
    }

    /// Publishes `body` on `channel` as a plain Redis client would (`PUBLISH`, or `XADD` with a
    /// field of its own in durable mode); `None` on the memory bus, which has no wire.
    pub fn publish_foreign(&self, channel: &str, body: &str) -> Option<()> {
        let server = self.server.as_ref()?;
        match self.mode {
            Mode::Durable => server.command(&["XADD", &format!("conformance:stream:{channel}"), "*", "body", body]),
            _ => server.command(&["PUBLISH", &format!("conformance:{channel}"), body]),
        }
        .map(drop)
        .unwrap();
        Some(())
    }
}
