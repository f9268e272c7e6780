//! What an error says about trying again: [`RetryClass`], and [`Idempotency`], which turns it
//! into the retry predicate of the [`presets`](crate::presets).

use std::io::{self, ErrorKind as K};

use crate::ResilienceError;

/// What an operation's error says about retrying the operation. The [`presets`](crate::presets)
/// require it of the operation's error type, and [`Retry::idempotency`](crate::Retry::idempotency)
/// builds a retry predicate from it.
///
/// The two questions are independent: a timeout is transient and may have been applied (the
/// request may have reached the server), a refused connection is transient and was not applied,
/// a rejected order is neither. When unsure whether a failed call took effect, answer `true`:
/// that only costs a retry, while a wrong `false` can place an order twice.
///
/// ```
/// use infra_resilience::RetryClass;
///
/// /// What a bot's exchange client fails with.
/// #[derive(Debug)]
/// enum ApiError {
///     /// The exchange answered with this HTTP status.
///     Status(u16),
///     /// The TCP connection could not be opened: nothing was sent.
///     Connect,
///     /// The connection broke after the request was written.
///     Disconnected,
/// }
///
/// impl RetryClass for ApiError {
///     fn is_transient(&self) -> bool {
///         matches!(self, Self::Status(429 | 500..) | Self::Connect | Self::Disconnected)
///     }
///
///     fn may_have_been_applied(&self) -> bool {
///         // A 4xx is a refusal; a 5xx from a gateway says nothing of what happened behind it.
///         !matches!(self, Self::Status(400..=499) | Self::Connect)
///     }
/// }
///
/// assert!(ApiError::Connect.is_transient() && !ApiError::Connect.may_have_been_applied());
/// assert!(ApiError::Disconnected.is_transient() && ApiError::Disconnected.may_have_been_applied());
/// assert!(!ApiError::Status(400).is_transient());
/// ```
pub trait RetryClass {
    /// Whether another attempt may succeed: a dropped connection, a timeout, a 503 or a 429,
    /// but not a rejected order or a value that does not decode.
    fn is_transient(&self) -> bool;

    /// Whether the failed call may have taken effect anyway: `false` only when it certainly did
    /// not (the connection was refused, the server refused the request).
    fn may_have_been_applied(&self) -> bool;
}

/// By the kind of the error: failures to connect (refused, no address, not connected) are
/// transient and were not applied; a connection reset, aborted, broken or timed out, an
/// interrupted or would-block call and an unexpected end of file are transient and may have
/// been applied; anything else (not found, permission denied, invalid data) is not transient.
impl RetryClass for io::Error {
    fn is_transient(&self) -> bool {
        matches!(
            self.kind(),
            K::ConnectionRefused
                | K::NotConnected
                | K::AddrNotAvailable
                | K::ConnectionReset
                | K::ConnectionAborted
                | K::BrokenPipe
                | K::TimedOut
                | K::Interrupted
                | K::WouldBlock
                | K::UnexpectedEof
        )
    }

    fn may_have_been_applied(&self) -> bool {
        // Raised before anything was sent; every other kind may come after a write.
        !matches!(
            self.kind(),
            K::ConnectionRefused | K::NotConnected | K::AddrNotAvailable | K::AddrInUse | K::InvalidInput
        )
    }
}

/// Whether doing an operation twice has the same effect as doing it once. It decides which
/// failures the [`presets`](crate::presets) retry: repeating a non-idempotent call after it may
/// have been applied would do it twice (two orders, a counter incremented twice, an event
/// published twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Idempotency {
    /// Repeating it is harmless: a read, a `SET` to a fixed value, a cancel by order ID, an
    /// order whose client order ID the exchange deduplicates.
    Idempotent,
    /// Repeating it may do it twice: an order without a deduplicated client order ID, an
    /// increment, a publish, a webhook whose receiver does not deduplicate.
    NonIdempotent,
}

impl Idempotency {
    /// Whether `error` may be retried:
    ///
    /// - an operation error ([`ResilienceError::Failed`]) if it [is
    ///   transient](RetryClass::is_transient) and, for a non-idempotent operation, [was certainly
    ///   not applied](RetryClass::may_have_been_applied);
    /// - a per-attempt [`ResilienceError::Timeout`] only for an idempotent operation: the
    ///   cancelled attempt may have been applied;
    /// - never a rejection (breaker open, bulkhead full: the dependency is saturated or failing,
    ///   and another attempt within the same call would not change that) nor a passed deadline.
    pub fn allows_retry<E: RetryClass>(self, error: &ResilienceError<E>) -> bool {
        match error {
            ResilienceError::Failed { source, .. } => {
                source.is_transient() && (self == Self::Idempotent || !source.may_have_been_applied())
            }
            ResilienceError::Timeout { .. } => self == Self::Idempotent,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn failed(kind: io::ErrorKind) -> ResilienceError<io::Error> {
        ResilienceError::failed(io::Error::from(kind))
    }

    #[test]
    fn io_errors_say_whether_they_came_before_sending() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(refused.is_transient() && !refused.may_have_been_applied());
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(reset.is_transient() && reset.may_have_been_applied());
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(!denied.is_transient());
    }

    #[test]
    fn a_non_idempotent_operation_retries_only_what_was_not_applied() {
        use Idempotency::{Idempotent, NonIdempotent};
        let timeout: ResilienceError<io::Error> =
            ResilienceError::Timeout { timeout: Duration::from_secs(1), attempts: 1 };
        assert!(Idempotent.allows_retry(&timeout));
        assert!(!NonIdempotent.allows_retry(&timeout));

        assert!(Idempotent.allows_retry(&failed(io::ErrorKind::ConnectionReset)));
        assert!(!NonIdempotent.allows_retry(&failed(io::ErrorKind::ConnectionReset)));
        assert!(NonIdempotent.allows_retry(&failed(io::ErrorKind::ConnectionRefused)));
        // Not transient: retrying would fail the same way, idempotent or not.
        assert!(!Idempotent.allows_retry(&failed(io::ErrorKind::PermissionDenied)));

        let open: ResilienceError<io::Error> =
            ResilienceError::CircuitOpen { breaker: "exchange", reopens: None, attempts: 1 };
        let deadline: ResilienceError<io::Error> =
            ResilienceError::DeadlineExceeded { deadline: Duration::from_secs(1), attempts: 1 };
        for idempotency in [Idempotent, NonIdempotent] {
            assert!(!idempotency.allows_retry(&open) && !idempotency.allows_retry(&deadline));
        }
    }
}
