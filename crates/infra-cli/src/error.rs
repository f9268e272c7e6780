//! What ends a command early, and the exit code each case gives.

use std::process::ExitCode;

/// Exit code of a runtime failure (Redis unreachable, a refused transition, an unhealthy stack).
pub(crate) const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage error (bad arguments, an unknown environment, an invalid configuration).
pub(crate) const EXIT_USAGE: u8 = 2;

/// Why a command stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The command line or the configuration it names is wrong: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// Something failed while running: exit code 1.
    #[error("{0}")]
    Runtime(String),
    /// The outcome was printed already and says what is wrong (an unhealthy report): exit code
    /// 1 without another message.
    #[error("{0}")]
    Reported(String),
    /// Whoever read stdout went away (`infractl events subscribe | head -1`): stop quietly.
    #[error("stdout closed")]
    StdoutClosed,
}

impl CliError {
    /// A runtime failure: `what` failed, because of `error` and its sources.
    pub(crate) fn runtime(what: impl std::fmt::Display, error: &dyn std::error::Error) -> Self {
        Self::Runtime(format!("{what}: {}", chain(error)))
    }

    /// The process's exit code.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(EXIT_USAGE),
            Self::Runtime(_) | Self::Reported(_) => ExitCode::from(EXIT_FAILURE),
            Self::StdoutClosed => ExitCode::SUCCESS,
        }
    }
}

/// An error and its sources, `: `-separated, with every URL's secrets redacted (the components
/// redact theirs already; this is the belt to their braces).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's message in their own; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    infra_facade::config::redact_urls_in(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect the state store")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused at redis://:hunter2@127.0.0.1:1")]
    struct Inner;

    #[test]
    fn chains_sources_redacted_and_maps_exit_codes() {
        let error = CliError::runtime("state get", &Outer(Inner));
        let text = error.to_string();
        assert_eq!(text, "state get: cannot connect the state store: connection refused at redis://:***@127.0.0.1:1");
        assert_eq!(error.exit_code(), ExitCode::from(1));
        assert_eq!(CliError::Usage("x".into()).exit_code(), ExitCode::from(2));
        assert_eq!(CliError::StdoutClosed.exit_code(), ExitCode::SUCCESS);
    }
}
