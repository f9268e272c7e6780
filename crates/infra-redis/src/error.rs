//! The crate's error type, and fred's errors made safe to show.

use std::{fmt, time::Duration};

use fred::error::{Error as FredError, ErrorKind};
use infra_config::redact_urls_in;

/// Everything setting up, connecting or closing a Redis client can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// fred cannot use the URL or the options (a URL that parses but names no usable server).
    #[error("the redis url `{url}` is not usable: {reason}")]
    InvalidConfig {
        /// The URL, redacted.
        url: String,
        /// Why, with any URL in it redacted.
        reason: String,
    },
    /// A connection attempt was refused or rejected (wrong password, unreachable host).
    #[error("cannot connect to redis at `{url}`")]
    Connect {
        /// The URL, redacted.
        url: String,
        /// What the server or the network said.
        #[source]
        source: Failure,
    },
    /// No connection within the connect timeout, and no reason was reported.
    #[error("connecting to redis at `{url}` timed out after {timeout:?}")]
    ConnectTimeout {
        /// The URL, redacted.
        url: String,
        /// The connect timeout.
        timeout: Duration,
    },
    /// The client was closed with `close()`; it does not connect again.
    #[error("the redis client for `{url}` was closed")]
    Closed {
        /// The URL, redacted.
        url: String,
    },
}

/// What kind of failure a [`Failure`] is, for callers that map it to their own errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// No answer in time. The command may have been applied.
    Timeout,
    /// The connection failed or was lost (I/O, cancelled). A command in flight may have been
    /// applied.
    Connection,
    /// Authentication or authorisation (`WRONGPASS`, `NOAUTH`, `NOPERM`).
    Auth,
    /// The client's command buffer is full: the command was not sent.
    Backpressure,
    /// Redis answered with an error (wrong type, bad argument, a script's error reply).
    Server,
    /// Anything else the client reports (configuration, protocol, routing).
    Client,
}

impl FailureKind {
    fn of(error: &FredError) -> Self {
        match error.kind() {
            ErrorKind::Timeout => Self::Timeout,
            ErrorKind::IO | ErrorKind::Canceled => Self::Connection,
            ErrorKind::Auth => Self::Auth,
            ErrorKind::Backpressure => Self::Backpressure,
            // fred maps every other server reply (`ERR`, `NOPERM`, `WRONGTYPE`, script errors)
            // to these kinds.
            ErrorKind::Unknown | ErrorKind::InvalidArgument | ErrorKind::InvalidCommand
                if error.details().starts_with("NOPERM") =>
            {
                Self::Auth
            }
            ErrorKind::Unknown | ErrorKind::InvalidArgument | ErrorKind::InvalidCommand => Self::Server,
            _ => Self::Client,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connection => "connection error",
            Self::Auth => "authentication error",
            Self::Backpressure => "backpressure",
            Self::Server => "server error",
            Self::Client => "client error",
        }
    }
}

/// A failure reported by the Redis client, with every URL in its text redacted, so it can be
/// kept as an error's source without leaking a secret or a fred type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    kind: FailureKind,
    message: String,
}

impl Failure {
    /// A failure of `kind` described by `message` (redacted here).
    pub fn new(kind: FailureKind, message: &str) -> Self {
        Self { kind, message: redact_urls_in(message) }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The client's or server's text, redacted (for a server error, the reply: `ERR …`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<FredError> for Failure {
    fn from(error: FredError) -> Self {
        Self::from(&error)
    }
}

impl From<&FredError> for Failure {
    fn from(error: &FredError) -> Self {
        let details = error.details();
        // Only transport errors (rustls's arrive as I/O errors): a server reply (a script's
        // error) may contain any word.
        let transport = *error.kind() == ErrorKind::IO;
        match explain_tls(details).filter(|_| transport) {
            Some(explanation) => Self::new(FailureKind::of(error), &format!("tls: {explanation} ({details})")),
            None => Self::new(FailureKind::of(error), details),
        }
    }
}

/// What to do about a TLS failure, read from rustls's error as fred reports it (its `Debug`
/// text inside an I/O error), which names the cause but not the remedy.
fn explain_tls(details: &str) -> Option<&'static str> {
    const CAUSES: &[(&str, &str)] = &[
        ("CertificateRequired", "the server requires a client certificate: give tls_cert and tls_key"),
        (
            "NotValidForName",
            "the server's certificate does not name the host connected to: connect by a name it holds or set tls_server_name",
        ),
        ("UnknownIssuer", "the server's certificate is not signed by a trusted authority: give its CA with tls_ca"),
        ("Expired", "the server's certificate has expired"),
        ("AlertReceived(BadCertificate)", "the server refused the client certificate"),
        ("AlertReceived(UnknownCA)", "the server does not trust the client certificate's authority"),
        ("CorruptMessage", "the server did not answer in TLS: is it a plain-text port?"),
        ("InvalidContentType", "the server did not answer in TLS: is it a plain-text port?"),
    ];
    CAUSES.iter().find(|(marker, _)| details.contains(marker)).map(|(_, explanation)| *explanation)
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_fred_and_server_replies() {
        let kind = |kind, details: &str| Failure::from(FredError::new(kind, details.to_owned())).kind();
        assert_eq!(kind(ErrorKind::Timeout, "Request timed out."), FailureKind::Timeout);
        assert_eq!(kind(ErrorKind::IO, "broken pipe"), FailureKind::Connection);
        assert_eq!(kind(ErrorKind::Canceled, "Canceled."), FailureKind::Connection);
        assert_eq!(kind(ErrorKind::Auth, "WRONGPASS invalid username-password pair"), FailureKind::Auth);
        assert_eq!(kind(ErrorKind::Unknown, "NOPERM this user has no permissions"), FailureKind::Auth);
        assert_eq!(kind(ErrorKind::InvalidArgument, "WRONGTYPE Operation against a key"), FailureKind::Server);
        assert_eq!(kind(ErrorKind::Backpressure, "max buffer"), FailureKind::Backpressure);
        assert_eq!(kind(ErrorKind::Config, "bad"), FailureKind::Client);
    }

    #[test]
    fn tls_failures_say_what_to_do() {
        let details = "Custom { kind: InvalidData, error: AlertReceived(CertificateRequired) }";
        let failure = Failure::from(FredError::new(ErrorKind::IO, details));
        assert_eq!(failure.kind(), FailureKind::Connection);
        assert_eq!(
            failure.message(),
            format!("tls: the server requires a client certificate: give tls_cert and tls_key ({details})")
        );
    }

    #[test]
    fn messages_never_quote_a_password() {
        let error = FredError::new(ErrorKind::IO, "cannot reach redis://bot:hunter2@cache:6379/0");
        let failure = Failure::from(error);
        assert_eq!(failure.to_string(), "connection error: cannot reach redis://bot:***@cache:6379/0");
    }
}
