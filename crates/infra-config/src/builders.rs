//! Building the state and events sections in code, without a preset: `StateConfig::memory()`,
//! `EventsConfig::redis(url)?`, then builder-style setters.

use std::time::Duration;

use crate::{
    Backend, ConfigError, EventsConfig, EventsMode, InvalidRedisUrl, Problems, RedisUrl, StateConfig,
    sections::default_replica_ack_timeout, validate,
};

/// The namespace of a section built in code until [`StateConfig::namespace`](fn@StateConfig::namespace)
/// or [`EventsConfig::namespace`](fn@EventsConfig::namespace) sets another.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Every preset's upper bound on one call.
pub(crate) const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(2);
/// Every preset's upper bound on establishing a connection.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl StateConfig {
    /// The in-memory store: nothing to install, lost on exit, not shared between processes.
    ///
    /// Namespace [`DEFAULT_NAMESPACE`], and the presets' timeouts (2 s per operation, 5 s to
    /// connect). Setters take any value; [`validate`](Self::validate) checks the result with the
    /// rules of a loaded configuration.
    ///
    /// ```
    /// use std::time::Duration;
    /// use infra_config::{Backend, StateConfig};
    ///
    /// let state = StateConfig::memory().namespace("paper-trading").operation_timeout(Duration::from_millis(500));
    /// state.validate()?;
    /// assert_eq!(state.backend, Backend::Memory);
    /// assert_eq!(state.namespace, "paper-trading");
    /// # Ok::<(), infra_config::ConfigError>(())
    /// ```
    pub fn memory() -> Self {
        Self::with_backend(Backend::Memory, None, DEFAULT_NAMESPACE)
    }

    /// A Redis store at `url`: a [`RedisUrl`], or a string (`&str`, `String`) parsed into one.
    ///
    /// Fails only when a string is not a usable Redis URL; the error never shows its password.
    /// The other values are those of [`memory`](Self::memory).
    ///
    /// ```
    /// use infra_config::{Backend, StateConfig};
    ///
    /// let state = StateConfig::redis("redis://:hunter2@cache.internal:6379")?.namespace("arb-eu");
    /// assert_eq!(state.backend, Backend::Redis);
    /// assert_eq!(state.redis_url.as_ref().map(|url| url.host()), Some("cache.internal"));
    ///
    /// let err = StateConfig::redis("http://:hunter2@cache.internal").unwrap_err();
    /// assert!(!err.to_string().contains("hunter2"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn redis<U>(url: U) -> Result<Self, InvalidRedisUrl>
    where
        U: TryInto<RedisUrl>,
        InvalidRedisUrl: From<U::Error>,
    {
        Ok(Self::with_backend(Backend::Redis, Some(url.try_into()?), DEFAULT_NAMESPACE))
    }

    /// Every field but the backend's at the presets' values.
    pub(crate) fn with_backend(backend: Backend, redis_url: Option<RedisUrl>, namespace: &str) -> Self {
        Self {
            backend,
            redis_url,
            namespace: namespace.to_owned(),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            replica_acks: 0,
            replica_ack_timeout: default_replica_ack_timeout(),
        }
    }

    /// Sets the prefix of every key: ASCII letters, digits, `_`, `-` and `.`, at most 64
    /// characters (checked by [`validate`](Self::validate)).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the upper bound on one call, waiting for a connection included. Must not be zero.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets the upper bound on establishing a connection. Must not be zero.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Makes every write wait until `replicas` Redis replicas acknowledged it, for at most
    /// `timeout` (see [`StateConfig::replica_acks`](field@StateConfig::replica_acks)); 0 does not wait.
    pub fn replica_acks(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replica_acks = replicas;
        self.replica_ack_timeout = timeout;
        self
    }

    /// Checks the section with the rules [`Config::load`](crate::Config::load) applies to
    /// `state`, reporting every problem at once ([`ConfigError::InvalidSection`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        section_result("state", validate::state_problems(self))
    }
}

impl EventsConfig {
    /// The in-process bus: nothing to install, events reach only this process.
    ///
    /// Namespace [`DEFAULT_NAMESPACE`], the presets' timeouts (2 s per publish, 5 s to connect),
    /// ephemeral mode, and the presets' durable settings (1,000,000 entries per stream, claim
    /// after 30 s, 5 deliveries) should the mode change. Setters take any value;
    /// [`validate`](Self::validate) checks the result with the rules of a loaded configuration.
    ///
    /// ```
    /// use infra_config::{EventsConfig, EventsMode};
    ///
    /// let events = EventsConfig::memory().namespace("paper-trading");
    /// events.validate()?;
    ///
    /// // Durable events live in Redis streams: the memory bus cannot have them.
    /// let err = EventsConfig::memory().mode(EventsMode::Durable).validate().unwrap_err();
    /// assert_eq!(err.problems()[0].key, "events.mode");
    /// # Ok::<(), infra_config::ConfigError>(())
    /// ```
    pub fn memory() -> Self {
        Self::with_backend(Backend::Memory, None, DEFAULT_NAMESPACE)
    }

    /// A Redis bus at `url`: a [`RedisUrl`], or a string (`&str`, `String`) parsed into one.
    ///
    /// Fails only when a string is not a usable Redis URL; the error never shows its password.
    /// The other values are those of [`memory`](Self::memory).
    ///
    /// ```
    /// use std::time::Duration;
    /// use infra_config::{EventsConfig, EventsMode};
    ///
    /// let events = EventsConfig::redis("redis://bus.internal:6379")?
    ///     .namespace("arb-eu")
    ///     .mode(EventsMode::Durable)
    ///     .max_deliveries(3)
    ///     .claim_after(Duration::from_secs(10));
    /// events.validate()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn redis<U>(url: U) -> Result<Self, InvalidRedisUrl>
    where
        U: TryInto<RedisUrl>,
        InvalidRedisUrl: From<U::Error>,
    {
        Ok(Self::with_backend(Backend::Redis, Some(url.try_into()?), DEFAULT_NAMESPACE))
    }

    /// Every field but the backend's at the presets' values.
    pub(crate) fn with_backend(backend: Backend, redis_url: Option<RedisUrl>, namespace: &str) -> Self {
        Self {
            backend,
            redis_url,
            namespace: namespace.to_owned(),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            mode: EventsMode::Ephemeral,
            stream_max_len: 1_000_000,
            claim_after: Duration::from_secs(30),
            max_deliveries: 5,
            replica_acks: 0,
            replica_ack_timeout: default_replica_ack_timeout(),
        }
    }

    /// Sets the prefix of every channel: ASCII letters, digits, `_`, `-` and `.`, at most 64
    /// characters (checked by [`validate`](Self::validate)).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets the upper bound on one publish. Must not be zero.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Sets the upper bound on establishing a connection. Must not be zero.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how events travel. [`EventsMode::Durable`] needs a Redis bus.
    pub fn mode(mut self, mode: EventsMode) -> Self {
        self.mode = mode;
        self
    }

    /// Durable mode: sets the entries kept per stream, approximately. At least 1.
    pub fn stream_max_len(mut self, entries: u64) -> Self {
        self.stream_max_len = entries;
        self
    }

    /// Durable mode: sets how long an event may stay unacknowledged before it is delivered
    /// again. Must not be zero.
    pub fn claim_after(mut self, idle: Duration) -> Self {
        self.claim_after = idle;
        self
    }

    /// Durable mode: sets the deliveries of one event before it moves to the dead-letter
    /// stream. At least 1.
    pub fn max_deliveries(mut self, deliveries: u32) -> Self {
        self.max_deliveries = deliveries;
        self
    }

    /// Durable mode: makes every publish wait until `replicas` Redis replicas acknowledged the
    /// event, for at most `timeout` (see
    /// [`EventsConfig::replica_acks`](field@EventsConfig::replica_acks)); 0 does not wait.
    pub fn replica_acks(mut self, replicas: u32, timeout: Duration) -> Self {
        self.replica_acks = replicas;
        self.replica_ack_timeout = timeout;
        self
    }

    /// Checks the section with the rules [`Config::load`](crate::Config::load) applies to
    /// `events`, reporting every problem at once ([`ConfigError::InvalidSection`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        section_result("events", validate::events_problems(self))
    }
}

fn section_result(section: &'static str, problems: Vec<crate::Problem>) -> Result<(), ConfigError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::InvalidSection { section, problems: Problems(problems) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Environment};

    #[test]
    fn constructors_share_the_presets_values() {
        let development = Config::for_env(Environment::Development);
        assert_eq!(StateConfig::memory().namespace("dev"), development.state);
        assert_eq!(EventsConfig::memory().namespace("dev"), development.events);
        let staging = Config::for_env(Environment::Staging);
        assert_eq!(StateConfig::redis("redis://127.0.0.1:6379").unwrap().namespace("staging"), staging.state);
        assert_eq!(EventsConfig::redis("redis://127.0.0.1:6379").unwrap().namespace("staging"), staging.events);
    }

    #[test]
    fn redis_takes_a_parsed_url_or_any_string() {
        let url = RedisUrl::parse("redis://cache:6379").unwrap();
        let from_url = StateConfig::redis(url.clone()).unwrap();
        assert_eq!(from_url.redis_url, Some(url));
        let owned = String::from("redis://cache:6379");
        assert_eq!(StateConfig::redis(&owned).unwrap(), from_url);
        assert_eq!(StateConfig::redis(owned).unwrap(), from_url);
        assert_eq!(
            EventsConfig::redis("tcp://cache").unwrap_err().reason(),
            "unsupported scheme `tcp`, expected one of: redis, rediss, redis-cluster, rediss-cluster, redis-sentinel, \
             rediss-sentinel"
        );
    }

    #[test]
    fn validate_reports_every_problem_of_the_section() {
        let err = StateConfig::memory().namespace("a b").operation_timeout(Duration::ZERO).validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `state` section (2 problems):\n  \
             - `state.namespace`: `a b` contains ` `; only ASCII letters, digits, `_`, `-` and `.` are allowed\n  \
             - `state.operation_timeout_ms`: must be greater than 0 ms"
        );
        let err = EventsConfig::redis("redis://bus").unwrap().mode(EventsMode::Durable).max_deliveries(0).validate();
        let keys: Vec<_> = err.unwrap_err().problems().iter().map(|p| p.key.clone()).collect();
        assert_eq!(keys, ["events.max_deliveries"]);
    }
}
