//! The test kit's error type.

use std::{io, path::PathBuf};

/// Everything that can go wrong while running throwaway Redis servers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// A Redis executable is not installed. Redis tests fail with this instead of skipping.
    #[error(
        "`{program}` was not found on PATH: install Redis (`apt-get install redis-server` on Debian/Ubuntu, \
         `brew install redis` on macOS) or set {env_var} to the executable's path"
    )]
    ExecutableNotFound {
        /// `redis-server` or `redis-cli`.
        program: &'static str,
        /// The variable that can point at it.
        env_var: &'static str,
    },
    /// Spawning, signalling or talking to a process failed.
    #[error("{action} failed")]
    Io {
        /// What was being done.
        action: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server exited or never answered while starting.
    #[error("redis-server on port {port} did not start: {reason}; last log lines:\n{log}")]
    StartFailed {
        /// The port it was given.
        port: u16,
        /// Why we gave up.
        reason: String,
        /// The tail of its log file.
        log: String,
    },
    /// The server answered a command with an error.
    #[error("redis replied with an error to `{command}`: {message}")]
    Reply {
        /// The command sent.
        command: String,
        /// Redis's error text.
        message: String,
    },
    /// A tool other than Redis that a test needs is not installed.
    #[error("`{program}` was not found on PATH: {install}, or set {env_var} to the executable's path")]
    ToolNotFound {
        /// The executable, such as `prometheus`.
        program: &'static str,
        /// How to install it.
        install: &'static str,
        /// The variable that can point at it.
        env_var: &'static str,
    },
    /// A Prometheus server did not start, or did not answer as expected.
    #[error("prometheus on port {port}: {reason}; last log lines:\n{log}")]
    Prometheus {
        /// Its port.
        port: u16,
        /// What went wrong.
        reason: String,
        /// The tail of its log file.
        log: String,
    },
    /// A cluster did not reach the expected state in time.
    #[error("redis cluster not ready: {0}")]
    Cluster(String),
    /// The temporary directory of a server could not be created.
    #[error("cannot create directory `{}`", path.display())]
    TempDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_error(action: impl Into<String>) -> impl FnOnce(io::Error) -> TestkitError {
    let action = action.into();
    move |source| TestkitError::Io { action, source }
}

/// The test kit's result type.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;
