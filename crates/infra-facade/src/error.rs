//! The crate's error type.

use infra_config::ConfigError;
use infra_emergency::EmergencyError;
use infra_events::EventsError;
use infra_log::LogError;
use infra_state::StateError;

/// Everything assembling, checking or closing the [`Infrastructure`](crate::Infrastructure)
/// can fail with. Each component's own error is the [source](std::error::Error::source), so
/// its details (the key, the redacted URL, what the client library said) stay available.
///
/// Calls made through the store and the bus keep their own error types (`StateError`,
/// `EventsError`); a call the circuit breaker refused carries a [`FacadeError::Rejected`] as
/// the source of their `Connection` variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FacadeError {
    /// The configuration could not be loaded, or does not validate.
    #[error("cannot load the configuration")]
    Config(#[source] ConfigError),
    /// The logging configuration cannot be installed (an invalid level or filter).
    #[error("cannot set up logging")]
    Logging(#[source] LogError),
    /// The state store could not be built, connected or closed (`action` says which).
    #[error("cannot {action} the state store")]
    State {
        /// `build`, `connect` or `close`.
        action: &'static str,
        /// What the store said.
        #[source]
        source: StateError,
    },
    /// The event bus could not be built, connected or closed (`action` says which).
    #[error("cannot {action} the event bus")]
    Events {
        /// `build`, `connect` or `close`.
        action: &'static str,
        /// What the bus said.
        #[source]
        source: EventsError,
    },
    /// The emergency controller could not be started or closed (`action` says which).
    #[error("cannot {action} the emergency controller")]
    Emergency {
        /// `start` or `close`.
        action: &'static str,
        /// What the controller said.
        #[source]
        source: EmergencyError,
    },
    /// The Prometheus endpoint of `[metrics] listen` could not be started: the address is taken
    /// or not local, or another metrics recorder is installed in the process.
    #[error("cannot serve metrics{}: {message}", listen.map(|a| format!(" on {a}")).unwrap_or_default())]
    Metrics {
        /// The address it was to listen on, when the failure is about the address.
        listen: Option<std::net::SocketAddr>,
        /// What went wrong.
        message: String,
    },
    /// A call was refused without being made: the circuit breaker of `component` is open (or
    /// half-open with every probe taken). The source of the `Connection` error the store or the
    /// bus returns for it.
    #[error("calls to the {component} were refused: {reason}")]
    Rejected {
        /// `state store` or `event bus`.
        component: &'static str,
        /// Why, as the resilience layer says it (the breaker, when it lets probes through).
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn messages_are_lowercase_and_name_the_part() {
        let error = FacadeError::State { action: "connect", source: StateError::MissingUrl };
        assert_eq!(error.to_string(), "cannot connect the state store");
        assert_eq!(error.source().unwrap().to_string(), "the redis backend needs `state.redis_url`");
        let rejected = FacadeError::Rejected {
            component: "state store",
            reason: "circuit breaker `state` is open (forced open)".into(),
        };
        assert_eq!(
            rejected.to_string(),
            "calls to the state store were refused: circuit breaker `state` is open (forced open)"
        );
    }
}
