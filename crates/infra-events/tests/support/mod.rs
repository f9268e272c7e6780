//! Fixtures for the conformance suite: a publishing and a subscribing bus (the same bus in
//! memory; two buses, like two processes, on Redis).

#![allow(dead_code, unreachable_pub, reason = "each test file uses a part of the helpers")]

pub mod suite;

use std::{sync::Arc, time::Duration};

use infra_config::RedisUrl;
use infra_events::{EventBus, memory::MemoryBus, redis::RedisBus};
use infra_testkit::RedisServer;

pub struct Fixture {
    pub publisher: Arc<dyn EventBus>,
    pub subscriber: Arc<dyn EventBus>,
    _server: Option<RedisServer>,
}

impl Fixture {
    pub fn memory() -> Self {
        let bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new("pub"));
        Self { publisher: bus.clone(), subscriber: bus, _server: None }
    }

    pub fn redis() -> Self {
        let server = RedisServer::start().expect("redis-server must be installed");
        let url = RedisUrl::parse(&server.url()).unwrap();
        let timeout = Duration::from_secs(5);
        Self {
            publisher: Arc::new(RedisBus::new(&url, "conformance", "pub", timeout).unwrap()),
            subscriber: Arc::new(RedisBus::new(&url, "conformance", "sub", timeout).unwrap()),
            _server: Some(server),
        }
    }
}
