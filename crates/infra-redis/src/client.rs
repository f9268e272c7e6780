//! fred client configuration from a [`RedisUrl`] and the product's settings.

use std::time::Duration;

use fred::prelude::{Builder, Client, Config as FredConfig, ReconnectPolicy};
use infra_config::{RedisUrl, redact_urls_in};

use crate::RedisError;

/// Reconnection backoff after a lost connection: from 100 ms doubling up to 2 s, forever.
const RECONNECT_MIN_MS: u32 = 100;
const RECONNECT_MAX_MS: u32 = 2_000;
/// Commands buffered while disconnected before new ones fail at once instead of piling up.
pub const DEFAULT_MAX_BUFFERED_COMMANDS: usize = 100_000;

/// How a client connects and how long it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Bound on one connection attempt, and on a first call waiting for the connection.
    pub connect_timeout: Duration,
    /// Bound on every command (fred's per-command timeout).
    pub command_timeout: Duration,
    /// Commands fred queues while disconnected before it refuses new ones.
    pub max_buffered_commands: usize,
    /// Messages a subscriber client buffers between its socket and its readers (fred's
    /// broadcast channel); `None` keeps fred's default.
    pub message_buffer: Option<usize>,
}

impl ClientOptions {
    /// Options with these timeouts and the default buffers.
    pub fn new(connect_timeout: Duration, command_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            command_timeout,
            max_buffered_commands: DEFAULT_MAX_BUFFERED_COMMANDS,
            message_buffer: None,
        }
    }

    /// Sets [`ClientOptions::message_buffer`].
    #[must_use]
    pub fn message_buffer(mut self, messages: usize) -> Self {
        self.message_buffer = Some(messages);
        self
    }

    /// Sets [`ClientOptions::command_timeout`].
    #[must_use]
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }
}

/// The URL's fred configuration. fred's parse errors may quote the URL: they are redacted.
///
/// Beyond fred's own URL forms, a Sentinel URL's path may name the service
/// (`redis-sentinel://host:26379/mymaster`, the same as `?sentinelServiceName=mymaster`), and a
/// TLS URL (`rediss…://`) takes `tls_ca`, `tls_cert`, `tls_key` and `tls_server_name` query
/// parameters (with the `tls` feature; without it a TLS URL is refused rather than connected in
/// plain text).
pub fn fred_config(url: &RedisUrl) -> Result<FredConfig, RedisError> {
    let parsed = crate::urls::parse(url)?;
    let mut config = FredConfig::from_url(&parsed.fred_url)
        .map_err(|error| RedisError::InvalidConfig { url: url.redacted(), reason: redact_urls_in(error.details()) })?;
    if parsed.tls {
        crate::tls::configure(&mut config, &parsed.tls_params, url)?;
    }
    // A failed first connection ends the connection task at once (instead of retrying behind
    // the caller's back); the next call starts a new attempt. Reconnection after a connection
    // was lost is unaffected.
    config.fail_fast = true;
    Ok(config)
}

/// Whether the URL names a cluster (`redis-cluster://`, `rediss-cluster://`).
pub fn is_clustered(url: &RedisUrl) -> Result<bool, RedisError> {
    Ok(fred_config(url)?.server.is_clustered())
}

/// A fred builder for `url` with the product's timeouts, buffers and reconnection policy
/// (100 ms doubling to 2 s, forever).
pub fn builder(url: &RedisUrl, options: &ClientOptions) -> Result<Builder, RedisError> {
    let mut builder = Builder::from_config(fred_config(url)?);
    builder
        .with_connection_config(|c| {
            c.connection_timeout = options.connect_timeout;
            c.internal_command_timeout = options.command_timeout;
            c.max_command_buffer_len = options.max_buffered_commands;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = options.command_timeout;
            if let Some(messages) = options.message_buffer {
                p.broadcast_channel_capacity = messages;
            }
        })
        .set_policy(ReconnectPolicy::new_exponential(0, RECONNECT_MIN_MS, RECONNECT_MAX_MS, 2));
    Ok(builder)
}

/// A client for `url` (not connected).
pub fn client(url: &RedisUrl, options: &ClientOptions) -> Result<Client, RedisError> {
    builder(url, options)?.build().map_err(|error| rejected(url, &error))
}

/// A subscriber client for `url` (not connected): it re-issues its subscriptions after a
/// reconnection once `manage_subscriptions` runs.
#[cfg(feature = "pubsub")]
pub fn subscriber_client(
    url: &RedisUrl,
    options: &ClientOptions,
) -> Result<fred::clients::SubscriberClient, RedisError> {
    builder(url, options)?.build_subscriber_client().map_err(|error| rejected(url, &error))
}

fn rejected(url: &RedisUrl, error: &fred::error::Error) -> RedisError {
    RedisError::InvalidConfig { url: url.redacted(), reason: redact_urls_in(error.details()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_are_told_from_the_scheme() {
        let url = |text: &str| RedisUrl::parse(text).unwrap();
        assert!(!is_clustered(&url("redis://127.0.0.1:6379")).unwrap());
        assert!(is_clustered(&url("redis-cluster://127.0.0.1:7000")).unwrap());
    }

    #[test]
    fn a_url_fred_rejects_is_reported_redacted() {
        // A sentinel URL without the service name parses as a URL but not for fred.
        let url = RedisUrl::parse("redis-sentinel://bot:hunter2@127.0.0.1:26379").unwrap();
        let error = client(&url, &ClientOptions::new(Duration::from_secs(1), Duration::from_secs(1))).unwrap_err();
        let text = format!("{error} {error:?}");
        assert!(text.contains("redis-sentinel://bot:***@127.0.0.1:26379"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
