//! The crate's error type: the operation's own error, or why resilience stopped the call.

use std::time::Duration;

use tokio::time::Instant;

/// Why a protected call failed. `E` is the operation's own error type.
///
/// Every variant says how many attempts were made (1 without retries). Timeouts and
/// rejections are values of this type, so retry predicates and breakers can tell them apart
/// from the operation's errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResilienceError<E> {
    /// The operation returned an error (the last one, when retried).
    #[error("the operation failed after {attempts} attempt(s)")]
    Failed {
        /// The operation's error.
        #[source]
        source: E,
        /// Attempts made.
        attempts: u32,
    },
    /// An attempt took longer than the per-attempt timeout and was cancelled.
    #[error("attempt {attempts} timed out after {timeout:?}")]
    Timeout {
        /// The per-attempt bound.
        timeout: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// The overall deadline passed during an attempt, which was cancelled.
    #[error("the deadline of {deadline:?} passed during attempt {attempts}")]
    DeadlineExceeded {
        /// The overall bound.
        deadline: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// The circuit breaker is open (or half-open with all probes taken): the call was not made.
    #[error("circuit breaker `{breaker}` is open{}", retry_hint(*.reopens))]
    CircuitOpen {
        /// The breaker's name.
        breaker: &'static str,
        /// When it lets probe calls through again; `None` while forced open.
        reopens: Option<ReopensAt>,
        /// Attempts made.
        attempts: u32,
    },
    /// The bulkhead had no free slot (in time): the call was not made.
    #[error("bulkhead `{bulkhead}` is full ({max_concurrent} concurrent calls)")]
    BulkheadFull {
        /// The bulkhead's name.
        bulkhead: &'static str,
        /// Its limit.
        max_concurrent: usize,
        /// Attempts made.
        attempts: u32,
    },
}

fn retry_hint(reopens: Option<ReopensAt>) -> String {
    match reopens {
        None => " (forced open)".to_owned(),
        Some(at) => format!("; probes allowed in {:?}", at.remaining()),
    }
}

/// When an open breaker lets probes through: kept as the breaker's clock origin and an offset,
/// so that a rejection copies two words instead of doing time arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReopensAt {
    origin: Instant,
    offset_nanos: u64,
}

impl ReopensAt {
    pub(crate) fn new(origin: Instant, offset_nanos: u64) -> Self {
        Self { origin, offset_nanos }
    }

    /// The instant.
    pub fn instant(&self) -> Instant {
        self.origin + Duration::from_nanos(self.offset_nanos)
    }

    /// The time left until then (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.instant().saturating_duration_since(Instant::now())
    }
}

impl<E> ResilienceError<E> {
    /// Wraps an operation's error (one attempt).
    pub fn failed(source: E) -> Self {
        Self::Failed { source, attempts: 1 }
    }

    /// Attempts made before this error.
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Failed { attempts, .. }
            | Self::Timeout { attempts, .. }
            | Self::DeadlineExceeded { attempts, .. }
            | Self::CircuitOpen { attempts, .. }
            | Self::BulkheadFull { attempts, .. } => *attempts,
        }
    }

    pub(crate) fn set_attempts(&mut self, n: u32) {
        match self {
            Self::Failed { attempts, .. }
            | Self::Timeout { attempts, .. }
            | Self::DeadlineExceeded { attempts, .. }
            | Self::CircuitOpen { attempts, .. }
            | Self::BulkheadFull { attempts, .. } => *attempts = n,
        }
    }

    /// The operation's own error, if that is what failed.
    pub fn inner(&self) -> Option<&E> {
        match self {
            Self::Failed { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The operation's own error, if that is what failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Failed { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether the call was refused without running (breaker open, bulkhead full).
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::CircuitOpen { .. } | Self::BulkheadFull { .. })
    }

    /// Whether trying again may help: an operation error or a per-attempt timeout. The default
    /// retry predicate.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Failed { .. } | Self::Timeout { .. })
    }

    /// How long until the breaker lets calls through again, for [`ResilienceError::CircuitOpen`].
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            Self::CircuitOpen { reopens: Some(at), .. } => Some(at.remaining()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_went_wrong() {
        let failed: ResilienceError<std::io::Error> = ResilienceError::Failed {
            source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"),
            attempts: 3,
        };
        assert_eq!(failed.to_string(), "the operation failed after 3 attempt(s)");
        assert_eq!(std::error::Error::source(&failed).unwrap().to_string(), "refused");
        let timeout: ResilienceError<std::io::Error> =
            ResilienceError::Timeout { timeout: Duration::from_millis(250), attempts: 2 };
        assert_eq!(timeout.to_string(), "attempt 2 timed out after 250ms");
        let forced: ResilienceError<std::io::Error> =
            ResilienceError::CircuitOpen { breaker: "binance", reopens: None, attempts: 1 };
        assert_eq!(forced.to_string(), "circuit breaker `binance` is open (forced open)");
        let full: ResilienceError<std::io::Error> =
            ResilienceError::BulkheadFull { bulkhead: "orders", max_concurrent: 4, attempts: 1 };
        assert_eq!(full.to_string(), "bulkhead `orders` is full (4 concurrent calls)");
        assert!(full.is_rejection() && !full.is_transient());
    }
}
