//! Typed, layered, validated configuration for the `infra` stack.
//!
//! One [`Config`] holds a section per component ([`StateConfig`], [`EventsConfig`],
//! [`LoggingConfig`], [`EmergencyConfig`], [`ResilienceConfig`]). It is merged from layers,
//! lowest precedence first:
//!
//! | layer | example |
//! |---|---|
//! | the environment's preset | [`Config::for_env(Environment::Production)`](Config::for_env) |
//! | `infra.toml` (or `INFRA_CONFIG`), a table per environment | `[production.state]` `redis_url = "redis://cache:6379"` |
//! | environment variables, `__` for nesting | `INFRA_STATE__REDIS_URL=redis://cache:6379` |
//! | overrides in code | [`ConfigLoader::set("state.namespace", "eu")`](ConfigLoader::set) |
//!
//! `INFRA_ENV` (`development`, `staging`, `production`) selects the environment for
//! [`Config::load`]; [`Config::load_env`] takes it as an argument instead.
//! Loading validates the merged result and reports **every** problem at once, each naming its
//! key and where the value came from (file and key, or variable name). Secrets, such as the
//! password of a Redis URL, are redacted in `Debug`, `Display`, errors and dumps ([`RedisUrl`]).
//!
//! The state and events sections can also be built in code, without a preset:
//! [`StateConfig::memory`], [`StateConfig::redis`], [`EventsConfig::memory`] and
//! [`EventsConfig::redis`] (which takes a [`RedisUrl`] or a string), then builder-style setters.
//! Setters take any value; `validate()` on the section (or [`Config::validate`]) checks it with
//! the rules of a loaded configuration.
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | none | | this crate has no optional parts |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use infra_config::{Backend, Config, EventsConfig, LogFormat, StateConfig};
//!
//! // The usual start-up: an environment's preset, plus `infra.toml` and `INFRA_...` variables,
//! // validated, in one call. Development needs nothing installed: memory backends, console logs.
//! let config = Config::load_env("development")?;
//! assert_eq!(config.state.backend, Backend::Memory);
//! assert_eq!(config.logging.format, LogFormat::Console);
//!
//! // A misspelt environment is an error that lists the valid names.
//! let err = Config::load_env("prodution").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "unknown environment `prodution` in the argument of `Config::load_env`; \
//!      valid environments: development, staging, production"
//! );
//!
//! // Sections built in code, without a preset; `validate` applies the rules of a loaded config.
//! let state = StateConfig::redis("redis://:hunter2@cache.internal:6379")?
//!     .namespace("arb-eu")
//!     .operation_timeout(Duration::from_millis(500));
//! let events = EventsConfig::memory().namespace("arb-eu");
//! state.validate()?;
//! events.validate()?;
//! assert!(!format!("{state:?}").contains("hunter2"));
//!
//! // Wrong values are reported together, each with its key and source.
//! let err = Config::loader()
//!     .environment(infra_config::Environment::Production)
//!     .without_file()
//!     .without_env_vars()
//!     .set("emergency.daily_loss_limit", 500.0)
//!     .load()
//!     .unwrap_err();
//! assert_eq!(err.problems().len(), 3); // two missing Redis URLs and the sign of the limit
//! println!("{err}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod builders;
mod config;
mod diagnose;
mod duration_ms;
mod environment;
mod error;
mod loader;
mod secret;
mod sections;
mod sources;
mod token;
mod validate;

pub use builders::DEFAULT_NAMESPACE;
pub use config::Config;
pub use environment::{Environment, UnknownEnvironment};
pub use error::{ConfigError, Origin, Problem, ProblemKind, Problems};
pub use loader::{ConfigLoader, DEFAULT_CONFIG_FILE, ENV_VAR_CONFIG_FILE, ENV_VAR_ENVIRONMENT};
pub use secret::{InvalidRedisUrl, REDACTED, REDIS_SCHEMES, RedisUrl, redact_urls_in};
pub use sections::{
    Backend, BreakerConfig, DashboardConfig, EmergencyConfig, EventsConfig, EventsMode, Jitter, LogFormat,
    LoggingConfig, MetricsConfig, ResilienceConfig, RetryConfig, StateConfig, TimeoutConfig,
};
pub use token::{SECRET_REDACTED, Secret};
