//! The whole stack's configuration and the environment presets.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    Backend, ConfigError, ConfigLoader, Environment, Problems, RedisUrl,
    sections::{
        BreakerConfig, DashboardConfig, EmergencyConfig, EventsConfig, Jitter, LogFormat, LoggingConfig, MetricsConfig,
        ResilienceConfig, RetryConfig, StateConfig, TimeoutConfig,
    },
    validate,
};

/// Configuration of every component, as loaded by [`Config::load`] or built from a preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Config {
    /// The environment this configuration was built for. Not a key: it is chosen by
    /// `INFRA_ENV` or [`ConfigLoader::environment`].
    #[serde(skip)]
    pub environment: Environment,
    /// Key/value state.
    pub state: StateConfig,
    /// Publish/subscribe.
    pub events: EventsConfig,
    /// Structured logging.
    pub logging: LoggingConfig,
    /// The kill switch.
    pub emergency: EmergencyConfig,
    /// Defaults for retry, breaker and timeout policies.
    pub resilience: ResilienceConfig,
    /// The Prometheus endpoint (`[metrics] listen`); none unless set.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The live operator dashboard (`[dashboard]`): where it listens, its token, the channels
    /// it shows.
    #[serde(default)]
    pub dashboard: DashboardConfig,
}

impl Default for Environment {
    /// [`Environment::Development`]: the safe default needs nothing installed.
    fn default() -> Self {
        Self::Development
    }
}

impl Config {
    /// Loads the configuration for the environment named by `INFRA_ENV` (default
    /// `development`): preset, then `infra.toml` (or the file named by `INFRA_CONFIG`), then
    /// `INFRA_...` environment variables. See [`ConfigLoader`] for the details and for overrides.
    pub fn load() -> Result<Self, ConfigError> {
        ConfigLoader::new().load()
    }

    /// Loads the environment named `environment` (`development`, `staging` or `production`,
    /// or `dev`, `stage`, `prod`, in any case): its preset, then `infra.toml` (or the file named
    /// by `INFRA_CONFIG`), then `INFRA_...` environment variables, then validation.
    ///
    /// The same load as [`Config::load`], except that the argument names the environment and
    /// `INFRA_ENV` is not read. An unknown name is [`ConfigError::UnknownEnvironment`], whose
    /// message lists the valid names. For overrides in code or another file, use
    /// [`Config::loader`].
    ///
    /// ```
    /// use infra_config::{Config, Environment};
    ///
    /// let config = Config::load_env("development")?;
    /// assert_eq!(config.environment, Environment::Development);
    ///
    /// let err = Config::load_env("prodution").unwrap_err();
    /// assert!(err.to_string().ends_with("valid environments: development, staging, production"));
    /// # Ok::<(), infra_config::ConfigError>(())
    /// ```
    pub fn load_env(environment: &str) -> Result<Self, ConfigError> {
        let environment = crate::loader::parse_environment(environment, "the argument of `Config::load_env`")?;
        ConfigLoader::new().environment(environment).load()
    }

    /// A loader to choose the environment, the file or overrides before loading.
    pub fn loader() -> ConfigLoader {
        ConfigLoader::new()
    }

    /// The built-in preset of `environment`, with no file or variable applied.
    ///
    /// | | development | staging | production |
    /// |---|---|---|---|
    /// | state / events backend | `memory` | `redis` at `redis://127.0.0.1:6379` | `redis`, URL required |
    /// | namespace | `dev` | `staging` | `prod` |
    /// | events mode | `ephemeral` (durable: 1,000,000 entries per stream, claim after 30 s, 5 deliveries) | same | same |
    /// | logging | `debug`, console | `info`, JSON | `info`, JSON |
    /// | emergency | no auto-halt, fail-open | auto-halt, fail-closed | auto-halt, fail-closed |
    ///
    /// The production preset names no Redis URL, so it only validates once one is given.
    pub fn for_env(environment: Environment) -> Self {
        let (backend, url, namespace) = match environment {
            Environment::Development => (Backend::Memory, None, "dev"),
            Environment::Staging => (
                Backend::Redis,
                Some(RedisUrl::parse("redis://127.0.0.1:6379").expect("the staging preset URL is valid")),
                "staging",
            ),
            Environment::Production => (Backend::Redis, None, "prod"),
        };
        let development = environment == Environment::Development;
        Self {
            environment,
            state: StateConfig::with_backend(backend, url.clone(), namespace),
            events: EventsConfig::with_backend(backend, url, namespace),
            logging: LoggingConfig {
                level: if development { "debug" } else { "info" }.to_owned(),
                format: if development { LogFormat::Console } else { LogFormat::Json },
            },
            emergency: EmergencyConfig {
                bot_id: "default".to_owned(),
                daily_loss_limit: -1000.0,
                auto_halt_on_limit: !development,
                // A bot that cannot read its emergency state must not trade on a stale NORMAL
                // anywhere but on a developer's machine (issue #13).
                fail_closed: !development,
                alert_fraction: 0.8,
            },
            resilience: ResilienceConfig {
                retry: RetryConfig {
                    max_attempts: 3,
                    initial_delay: Duration::from_millis(100),
                    max_delay: Duration::from_secs(10),
                    multiplier: 2.0,
                    jitter: Jitter::Full,
                    max_elapsed: Duration::from_secs(30),
                },
                breaker: BreakerConfig {
                    failure_threshold: 5,
                    failure_rate_threshold: 0.5,
                    window_size: 20,
                    minimum_calls: 10,
                    open_duration: Duration::from_secs(30),
                    half_open_max_calls: 1,
                },
                timeout: TimeoutConfig { per_attempt: Duration::from_secs(10), overall: Duration::from_secs(30) },
            },
            metrics: MetricsConfig::default(),
            dashboard: DashboardConfig::default(),
        }
    }

    /// Checks a configuration built in code. Reports every problem at once, like
    /// [`Config::load`], but without origins since there are no sources to point at.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = validate::problems(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { environment: self.environment, problems: Problems(problems) })
        }
    }

    /// The configuration as TOML, in the shape of one environment's table of `infra.toml`.
    /// Secrets are redacted, so the output is safe to log or attach to a bug report.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"));
        format!("# environment: {}\n{body}", self.environment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_their_environment() {
        let dev = Config::for_env(Environment::Development);
        assert_eq!(dev.state.backend, Backend::Memory);
        assert_eq!(dev.logging.format, LogFormat::Console);
        assert!(!dev.emergency.auto_halt_on_limit && !dev.emergency.fail_closed);

        let staging = Config::for_env(Environment::Staging);
        assert_eq!(staging.events.backend, Backend::Redis);
        assert_eq!(staging.state.redis_url.as_ref().map(RedisUrl::expose), Some("redis://127.0.0.1:6379"));
        assert_eq!(staging.logging.format, LogFormat::Json);
        assert!(staging.emergency.fail_closed, "staging fails closed like production");

        let prod = Config::for_env(Environment::Production);
        assert_eq!(prod.environment, Environment::Production);
        assert_eq!(prod.state.backend, Backend::Redis);
        assert!(prod.state.redis_url.is_none());
        assert!(prod.emergency.fail_closed && prod.emergency.auto_halt_on_limit);
        assert_eq!(prod.logging.format, LogFormat::Json);
    }

    #[test]
    fn dump_redacts_and_reads_back() {
        let mut config = Config::for_env(Environment::Staging);
        config.state.redis_url = Some(RedisUrl::parse("redis://bot:hunter2@db:6379").unwrap());
        let dump = config.to_toml();
        assert!(!dump.contains("hunter2"), "{dump}");
        assert!(dump.contains("redis_url = \"redis://bot:***@db:6379\""), "{dump}");
        assert!(dump.starts_with("# environment: staging\n"), "{dump}");
        assert!(dump.contains("operation_timeout_ms = 2000"), "{dump}");
        let back: Config = toml::from_str(&dump).unwrap();
        assert_eq!(back.resilience, config.resilience);
        assert_eq!(back.state.redis_url.unwrap().to_string(), "redis://bot:***@db:6379");
    }

    #[test]
    fn validate_reports_every_problem_without_origins() {
        let mut config = Config::for_env(Environment::Development);
        config.emergency.daily_loss_limit = 500.0;
        config.resilience.breaker.failure_threshold = 0;
        let err = config.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid development configuration (2 problems):\n  \
             - `emergency.daily_loss_limit`: must be negative, got 500: it is the daily P&L at which trading halts, so a loss of 500 is written -500.0\n  \
             - `resilience.breaker.failure_threshold`: must be at least 1, got 0"
        );
    }
}
