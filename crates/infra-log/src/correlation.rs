//! Correlation IDs: one ID per execution, carried by every log line logged inside it, across
//! tasks and (through event envelopes) across processes.
//!
//! The ID lives in two places at once:
//! - a tokio task-local, so code can read it ([`current_correlation_id`]) and hand it on
//!   (infra-events puts it in envelopes and restores it around handlers);
//! - a `correlation` span with a `correlation_id` field, so every log line inside carries it.
//!
//! [`with_correlation_id`] sets both. Tasks do not inherit either: spawn through [`spawn`], or
//! wrap the future with [`propagate`] before handing it to `tokio::spawn`. A raw
//! `tokio::spawn(fut.in_current_span())` (from [`tracing::Instrument`]) keeps the field on the
//! log lines but not [`current_correlation_id`].

use std::{
    fmt,
    future::Future,
    hash::{BuildHasher, Hasher},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::task::JoinHandle;
use tracing::{Instrument, Span};

use crate::LogError;

tokio::task_local! {
    static CURRENT: CorrelationId;
}

/// Longest accepted correlation ID, in bytes.
pub const MAX_CORRELATION_ID_LEN: usize = 128;

/// An ID shared by every log line of one execution. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CorrelationId(Arc<str>);

impl CorrelationId {
    /// A new random ID: 32 lowercase hex digits (128 bits), unique across processes.
    pub fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        // RandomState is seeded randomly per process (and per instance); hashing a counter with
        // two of them gives 128 unpredictable, non-repeating bits without a rand dependency.
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let halves = [std::collections::hash_map::RandomState::new(), std::collections::hash_map::RandomState::new()]
            .map(|state| {
                let mut hasher = state.build_hasher();
                hasher.write_u64(n);
                hasher.write_u32(std::process::id());
                hasher.finish()
            });
        Self(format!("{:016x}{:016x}", halves[0], halves[1]).into())
    }

    /// Uses an existing ID, such as an execution ID or one received from another process.
    /// It must be 1 to 128 bytes of printable ASCII without spaces.
    pub fn parse(id: &str) -> Result<Self, LogError> {
        let reason = if id.is_empty() {
            Some("it is empty".to_owned())
        } else if id.len() > MAX_CORRELATION_ID_LEN {
            Some(format!("it is {} bytes long, the limit is {MAX_CORRELATION_ID_LEN}", id.len()))
        } else {
            id.chars()
                .find(|c| !c.is_ascii_graphic())
                .map(|c| format!("it contains {c:?}; only printable ASCII without spaces is allowed"))
        };
        match reason {
            None => Ok(Self(id.into())),
            Some(reason) => {
                Err(LogError::InvalidCorrelationId { id: id.chars().take(MAX_CORRELATION_ID_LEN).collect(), reason })
            }
        }
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for CorrelationId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CorrelationId").field(&&*self.0).finish()
    }
}

impl std::str::FromStr for CorrelationId {
    type Err = LogError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The correlation ID of the running execution, if there is one.
pub fn current_correlation_id() -> Option<CorrelationId> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `future` with `id` as its correlation ID: [`current_correlation_id`] returns it and
/// every line logged inside carries `correlation_id`.
///
/// This is also how to restore an ID captured elsewhere (for example from an event envelope).
pub fn with_correlation_id<F: Future>(id: CorrelationId, future: F) -> impl Future<Output = F::Output> {
    let span = correlation_span(&id);
    CURRENT.scope(id, future.instrument(span))
}

/// Sets the task-local ID while `future` runs, without a span (the caller's span carries it).
pub(crate) fn scope<F: Future>(id: CorrelationId, future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(id, future)
}

/// The span that puts `correlation_id` on log lines. ERROR level, so it is enabled whatever
/// level is configured; it produces no log line of its own.
pub(crate) fn correlation_span(id: &CorrelationId) -> Span {
    tracing::error_span!(target: "infra_log", "correlation", correlation_id = %id)
}

/// Wraps `future` so that it keeps the current correlation ID and span when it runs elsewhere
/// (another task, a `JoinSet`, a `select!` branch polled later).
pub fn propagate<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let id = current_correlation_id();
    let future = future.in_current_span();
    async move {
        match id {
            Some(id) => CURRENT.scope(id, future).await,
            None => future.await,
        }
    }
}

/// `tokio::spawn` that keeps the current correlation ID and span in the new task.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(propagate(future))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_distinct_hex() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| CorrelationId::new()).collect();
        assert_eq!(ids.len(), 10_000);
        let id = CorrelationId::new();
        assert_eq!(id.as_str().len(), 32);
        assert!(id.as_str().chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn parse_rejects_what_would_break_a_log_line() {
        assert_eq!(CorrelationId::parse("exec_123").unwrap().as_str(), "exec_123");
        assert_eq!(CorrelationId::parse("").unwrap_err().to_string(), "invalid correlation id ``: it is empty");
        assert_eq!(
            CorrelationId::parse("a b").unwrap_err().to_string(),
            "invalid correlation id `a b`: it contains ' '; only printable ASCII without spaces is allowed"
        );
        assert_eq!(
            CorrelationId::parse(&"x".repeat(129)).unwrap_err().to_string(),
            format!("invalid correlation id `{}`: it is 129 bytes long, the limit is 128", "x".repeat(128))
        );
    }

    #[tokio::test]
    async fn scoped_and_propagated_to_spawned_tasks() {
        assert_eq!(current_correlation_id(), None);
        let id = CorrelationId::parse("exec-1").unwrap();
        let seen = with_correlation_id(id.clone(), async {
            let inner = current_correlation_id();
            let spawned = spawn(async { current_correlation_id() }).await.unwrap();
            let raw = tokio::spawn(async { current_correlation_id() }).await.unwrap();
            (inner, spawned, raw)
        })
        .await;
        assert_eq!(seen, (Some(id.clone()), Some(id), None));
        assert_eq!(current_correlation_id(), None, "the scope ends with the future");
    }

    #[tokio::test]
    async fn nested_scopes_restore_the_outer_id() {
        let outer = CorrelationId::parse("outer").unwrap();
        let inner = CorrelationId::parse("inner").unwrap();
        let seen = with_correlation_id(outer.clone(), async {
            let a = with_correlation_id(inner.clone(), async { current_correlation_id() }).await;
            (a, current_correlation_id())
        })
        .await;
        assert_eq!(seen, (Some(inner), Some(outer)));
    }
}
