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
//! `INFRA_ENV` (`development`, `staging`, `production`) selects the environment.
//! Loading validates the merged result and reports **every** problem at once, each naming its
//! key and where the value came from (file and key, or variable name). Secrets, such as the
//! password of a Redis URL, are redacted in `Debug`, `Display`, errors and dumps ([`RedisUrl`]).
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
//! use infra_config::{Backend, Config, Environment, LogFormat};
//!
//! // The development preset needs nothing installed: memory backends, console logs.
//! let config = Config::loader()
//!     .environment(Environment::Development)
//!     .without_file()
//!     .set("emergency.daily_loss_limit", -250.0)
//!     .load()?;
//! assert_eq!(config.state.backend, Backend::Memory);
//! assert_eq!(config.logging.format, LogFormat::Console);
//! assert_eq!(config.emergency.daily_loss_limit, -250.0);
//!
//! // Wrong values are reported together, each with its key and source.
//! let err = Config::loader()
//!     .environment(Environment::Production)
//!     .without_file()
//!     .without_env_vars()
//!     .set("emergency.daily_loss_limit", 500.0)
//!     .load()
//!     .unwrap_err();
//! assert_eq!(err.problems().len(), 3); // two missing Redis URLs and the sign of the limit
//! println!("{err}");
//! # Ok::<(), infra_config::ConfigError>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod config;
mod diagnose;
mod duration_ms;
mod environment;
mod error;
mod loader;
mod secret;
mod sections;
mod sources;
mod validate;

pub use config::Config;
pub use environment::{Environment, UnknownEnvironment};
pub use error::{ConfigError, Origin, Problem, ProblemKind, Problems};
pub use loader::{ConfigLoader, DEFAULT_CONFIG_FILE, ENV_VAR_CONFIG_FILE, ENV_VAR_ENVIRONMENT};
pub use secret::{InvalidRedisUrl, REDACTED, REDIS_SCHEMES, RedisUrl, redact_urls_in};
pub use sections::{
    Backend, BreakerConfig, EmergencyConfig, EventsConfig, EventsMode, Jitter, LogFormat, LoggingConfig,
    ResilienceConfig, RetryConfig, StateConfig, TimeoutConfig,
};
