//! Throwaway real Redis servers and clusters for the `infra` test suites.
//!
//! Tests never touch the machine's shared Redis on port 6379. Each [`RedisServer`] is a
//! `redis-server` process on a free loopback port with no persistence, in its own scratch
//! directory; it is killed when its handle drops, also when the test panics. Tests can stop,
//! kill, restart (same port) and pause it, start it with a password or ACL users, or start a
//! 3-master [`RedisCluster`] and fail one node.
//!
//! If `redis-server` (or `redis-cli`, for clusters) is not installed, starting returns
//! [`TestkitError::ExecutableNotFound`], whose message says how to install it: Redis tests fail
//! loudly instead of skipping. `TESTKIT_REDIS_SERVER` and `TESTKIT_REDIS_CLI` can point at
//! executables outside `PATH`.
//!
//! The API is blocking, since it manages processes; from async tests, call it directly (it only
//! blocks while a server starts or stops) or through `tokio::task::spawn_blocking`.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | none | | this crate has no optional parts |
//!
//! # Example
//!
//! ```no_run
//! use infra_testkit::{RedisServer, Reply};
//!
//! let mut server = RedisServer::builder().password("s3cret").start()?;
//! server.command(&["SET", "k", "v"])?;
//! assert_eq!(server.command(&["GET", "k"])?, Reply::Bulk(Some(b"v".to_vec())));
//! server.kill()?;
//! server.restart()?; // same port, nothing persisted
//! assert_eq!(server.command(&["GET", "k"])?, Reply::Bulk(None));
//! # Ok::<(), infra_testkit::TestkitError>(())
//! ```

pub mod bench;
mod cluster;
mod error;
mod example;
mod process;
mod prometheus;
mod resp;
mod sentinel;
mod server;
mod tls;

pub use cluster::RedisCluster;
pub use error::{Result, TestkitError};
pub use example::cargo_example;
pub use process::{REDIS_CLI_ENV, REDIS_SENTINEL_ENV, REDIS_SERVER_ENV};
pub use prometheus::{PROMETHEUS_ENV, PrometheusServer, Sample};
pub use resp::{Connection, Reply};
pub use sentinel::RedisSentinel;
pub use server::{RedisServer, RedisServerBuilder};
pub use tls::{
    CertifiedKey, ClientAuth, OPENSSL_ENV, TestCa, TlsRedisCluster, TlsRedisServer, TlsRedisServerBuilder, Usage,
};
