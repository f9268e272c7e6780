//! The crate's error type.

/// Everything that can go wrong in `infra-log`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// A global subscriber is already installed (by an earlier `init` or another library).
    #[error("logging is already initialized in this process; call `init` once, at startup")]
    AlreadyInitialized,
    /// Another `log` logger is installed (by another library, e.g. `env_logger`), so records of
    /// the `log` crate cannot be bridged into this log. Nothing was installed: keep that logger
    /// with [`LogBuilder::bridge_log(false)`](crate::LogBuilder::bridge_log), or remove it.
    #[error(
        "a `log` logger is already installed in this process; remove it or keep it with `LogBuilder::bridge_log(false)`"
    )]
    LoggerAlreadySet,
    /// The level or filter directives do not parse.
    #[error("invalid log filter `{directives}` from {origin}: {reason}")]
    InvalidFilter {
        /// The directives as given.
        directives: String,
        /// Where they came from: the config key or the `RUST_LOG` variable.
        origin: &'static str,
        /// What is wrong with them.
        reason: String,
    },
    /// A string cannot be used as a correlation ID.
    #[error("invalid correlation id `{id}`: {reason}")]
    InvalidCorrelationId {
        /// The rejected ID (cut to 128 characters).
        id: String,
        /// Why it was rejected.
        reason: String,
    },
}
