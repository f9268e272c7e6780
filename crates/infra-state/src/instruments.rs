//! The store's metric handles, resolved once when a store is built (see the crate docs'
//! "Metrics" section): a hot path indexes a fixed table by a constant and adds one.

#[cfg(feature = "redis")]
use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

#[cfg(feature = "redis")]
use futures::Stream;
#[cfg(feature = "redis")]
use metrics::Histogram;
use metrics::{Counter, Unit};

#[cfg(feature = "redis")]
use crate::Result;

/// Calls by operation, backend and outcome.
pub(crate) const OPERATIONS: &str = "infra_state_operations_total";
#[cfg(feature = "redis")]
/// Latency of each Redis-backed call.
pub(crate) const DURATION: &str = "infra_state_operation_duration_seconds";
#[cfg(feature = "redis")]
/// Times the Redis connection was re-established.
pub(crate) const RECONNECTS: &str = "infra_state_reconnects_total";

/// A [`StateStore`](crate::StateStore) operation, as the `op` label names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Op {
    Get,
    Set,
    Delete,
    Exists,
    Ttl,
    Expire,
    Increment,
    SetIfAbsent,
    CompareAndSwap,
    CompareAndDelete,
    GetVersioned,
    GetMany,
    SetMany,
    Scan,
    Ping,
}

impl Op {
    const ALL: [Op; 15] = [
        Op::Get,
        Op::Set,
        Op::Delete,
        Op::Exists,
        Op::Ttl,
        Op::Expire,
        Op::Increment,
        Op::SetIfAbsent,
        Op::CompareAndSwap,
        Op::CompareAndDelete,
        Op::GetVersioned,
        Op::GetMany,
        Op::SetMany,
        Op::Scan,
        Op::Ping,
    ];

    /// The `op` label (the catalog's names, docs/observability/metrics.md).
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Delete => "delete",
            Op::Exists => "exists",
            Op::Ttl => "ttl",
            Op::Expire => "expire",
            Op::Increment => "increment",
            Op::SetIfAbsent => "set_if_absent",
            Op::CompareAndSwap => "compare_and_swap",
            Op::CompareAndDelete => "compare_and_delete",
            Op::GetVersioned => "get_versioned",
            Op::GetMany => "get_many",
            Op::SetMany => "set_many",
            Op::Scan => "scan",
            Op::Ping => "ping",
        }
    }
}

const OPS: usize = Op::ALL.len();

/// `infra_state_operations_total` for one backend: `[op][0]` is `ok`, `[op][1]` is `error`.
pub(crate) struct OpCounters([[Counter; 2]; OPS]);

impl OpCounters {
    pub(crate) fn new(backend: &'static str) -> Self {
        metrics::describe_counter!(OPERATIONS, Unit::Count, "State store calls by operation, backend and outcome");
        Self(Op::ALL.map(|op| {
            ["ok", "error"].map(
                |outcome| metrics::counter!(OPERATIONS, "op" => op.label(), "backend" => backend, "outcome" => outcome),
            )
        }))
    }

    /// Counts one call of `op`, failed or not.
    #[inline(always)]
    pub(crate) fn count_outcome(&self, op: Op, failed: bool) {
        self.0[op as usize][usize::from(failed)].increment(1);
    }
}

/// What the Redis backend records: the counters, a latency histogram per operation, reconnects.
#[cfg(feature = "redis")]
pub(crate) struct RedisMetrics {
    pub(crate) counters: OpCounters,
    durations: [Histogram; OPS],
    pub(crate) reconnects: Counter,
}

#[cfg(feature = "redis")]
impl RedisMetrics {
    pub(crate) fn new() -> Self {
        metrics::describe_histogram!(DURATION, Unit::Seconds, "Latency of each Redis-backed state call");
        metrics::describe_counter!(
            RECONNECTS,
            Unit::Count,
            "Times a state store's Redis connection was re-established"
        );
        Self {
            counters: OpCounters::new("redis"),
            durations: Op::ALL.map(|op| metrics::histogram!(DURATION, "op" => op.label(), "backend" => "redis")),
            reconnects: metrics::counter!(RECONNECTS, "backend" => "redis"),
        }
    }

    /// Records a call of `op` started at `started`, failed or not.
    pub(crate) fn record(&self, op: Op, started: Instant, failed: bool) {
        self.durations[op as usize].record(started.elapsed());
        self.counters.count_outcome(op, failed);
    }

    /// Awaits `call` and records it as `op`.
    pub(crate) async fn timed<T>(&self, op: Op, call: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        self.record(op, started, result.is_err());
        result
    }
}

/// A `scan` stream that records itself once: `error` at its first error, `ok` when it ends
/// without one. A stream dropped before either is not counted.
#[cfg(feature = "redis")]
pub(crate) struct CountedScan<'a, S> {
    pub(crate) stream: S,
    pub(crate) metrics: &'a RedisMetrics,
    pub(crate) started: Instant,
    pub(crate) recorded: bool,
}

#[cfg(feature = "redis")]
impl<S: Stream<Item = Result<String>> + Unpin> Stream for CountedScan<'_, S> {
    type Item = Result<String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.stream).poll_next(cx);
        if !self.recorded {
            let failed = match &polled {
                Poll::Ready(Some(Err(_))) => Some(true),
                Poll::Ready(None) => Some(false),
                _ => None,
            };
            if let Some(failed) = failed {
                self.recorded = true;
                self.metrics.record(Op::Scan, self.started, failed);
            }
        }
        polled
    }
}
