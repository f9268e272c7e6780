//! The one Redis connection layer of `infra`: fred clients built from a [`RedisUrl`](infra_config::RedisUrl), connected
//! on first use within a bound, closable, with errors that never quote a secret.
//!
//! `infra-state` and `infra-events` build their Redis backends on it, so the URL handling,
//! timeouts, reconnection policy, connect discipline, error classification and glob escaping
//! exist once. This is the only crate whose API mentions `fred` (re-exported as
//! [`fred`], so every user compiles the same version); the component crates keep fred out of
//! theirs.
//!
//! | item | what it is |
//! |---|---|
//! | [`ClientOptions`], [`client`], [`builder`] | fred configuration from a URL: timeouts, buffers, reconnection (100 ms doubling to 2 s) |
//! | [`Connection`] | connect on first use within the connect timeout, `close()`, and a drop that never leaves a task reconnecting |
//! | [`RedisError`], [`Failure`], [`FailureKind`] | setup and connection errors; fred's errors redacted and classified |
//! | [`glob_escape`], [`glob_prefix`] | literal matching in `SCAN` and `PSUBSCRIBE` patterns |
//! | [`ReplicaAcks`], [`wait_for_replicas`] | `WAIT` on the node that holds a key, so an acknowledged write survives a failover |
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | `pubsub` | | fred's pub/sub commands and [`subscriber_client`] |
//! | `streams` | | fred's Redis Streams commands |
//! | `tls` | | `rediss://` URLs through rustls (ring), with `tls_ca`, `tls_cert`, `tls_key` and `tls_server_name` query parameters |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use infra_config::RedisUrl;
//! use infra_redis::{ClientOptions, Connection, RedisError};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let url: RedisUrl = "redis://bot:hunter2@127.0.0.1:1".parse()?;
//! let options = ClientOptions::new(Duration::from_millis(200), Duration::from_millis(500));
//! let connection = Connection::new(infra_redis::client(&url, &options)?, &url, options.connect_timeout);
//!
//! // Nothing listens on port 1: the first connect fails within the connect timeout, and the
//! // error names the URL without its password.
//! let error = connection.connect().await.unwrap_err();
//! assert!(matches!(error, RedisError::Connect { .. } | RedisError::ConnectTimeout { .. }));
//! assert!(error.to_string().contains("redis://bot:***@127.0.0.1:1"));
//! connection.close().await;
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod client;
mod connection;
mod error;
mod glob;
mod replicas;
mod tls;
mod urls;

pub use fred;

#[cfg(feature = "pubsub")]
pub use client::subscriber_client;
pub use client::{ClientOptions, DEFAULT_MAX_BUFFERED_COMMANDS, builder, client, fred_config, is_clustered};
pub use connection::{Connection, RedisClient};
pub use error::{Failure, FailureKind, RedisError};
pub use glob::{glob_escape, glob_prefix};
pub use replicas::{ReplicaAcks, wait_for_replicas};
