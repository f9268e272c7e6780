//! [`SubscriptionStats`]: the counters of one subscription.

use std::{
    fmt,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use metrics::Counter;

use crate::{Topic, metrics::SubscriptionMetrics};

/// Counters of one subscription, readable while it runs.
///
/// A subscription made by a bus also records each counter as a metric (see the crate's
/// "Metrics" section), through handles resolved when it subscribed: install the recorder before
/// subscribing. `task_failures` has no metric (each one is an ERROR line).
#[derive(Debug)]
pub struct SubscriptionStats {
    received: OwnLine,
    handled: Counted,
    errors: Counted,
    panics: Counted,
    dropped: Counted,
    gaps: Counted,
    redelivered: Counted,
    dead_lettered: Counted,
    trimmed: Counted,
    task_failures: Counted,
    last_error: Mutex<Option<String>>,
}

impl Default for SubscriptionStats {
    /// Counters that record no metric.
    fn default() -> Self {
        Self::with_metrics(SubscriptionMetrics::noop())
    }
}

/// A count and its metric, moved together by [`Counted::add`], the only way either moves.
struct Counted {
    count: AtomicU64,
    metric: Counter,
}

impl Counted {
    fn new(metric: Counter) -> Self {
        Self { count: AtomicU64::new(0), metric }
    }

    /// Adds `n`; returns the new count.
    #[inline]
    fn add(&self, n: u64) -> u64 {
        self.metric.increment(n);
        self.count.fetch_add(n, Ordering::Relaxed) + n
    }

    fn load(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Counted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.count, f)
    }
}

/// A counter alone on its cache line (with its metric handle, which publishers read with it):
/// publishers write `received` for every event while the subscription's task writes `handled`,
/// and sharing a line would move it between their cores twice per event.
#[repr(align(64))]
struct OwnLine(Counted);

impl std::ops::Deref for OwnLine {
    type Target = Counted;

    fn deref(&self) -> &Counted {
        &self.0
    }
}

impl fmt::Debug for OwnLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

macro_rules! counter {
    ($($(#[$doc:meta])* $name:ident, $add:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(&self) -> u64 {
            self.$name.load()
        }

        #[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "some counters only move on redis"))]
        pub(crate) fn $add(&self) -> u64 {
            self.$name.add(1)
        }
    )*};
}

impl SubscriptionStats {
    /// The counters of a subscription to `topic` on a `backend` bus, each also recorded as its
    /// metric (handles resolved now, from the recorder current here).
    #[cfg_attr(not(feature = "memory"), allow(dead_code, reason = "no backend compiled in"))]
    pub(crate) fn new(topic: &Topic, backend: &'static str) -> Self {
        Self::with_metrics(SubscriptionMetrics::new(topic, backend))
    }

    fn with_metrics(metrics: SubscriptionMetrics) -> Self {
        let SubscriptionMetrics {
            received,
            handled,
            errors,
            panics,
            dropped,
            gaps,
            redelivered,
            dead_lettered,
            trimmed,
        } = metrics;
        Self {
            received: OwnLine(Counted::new(received)),
            handled: Counted::new(handled),
            errors: Counted::new(errors),
            panics: Counted::new(panics),
            dropped: Counted::new(dropped),
            gaps: Counted::new(gaps),
            redelivered: Counted::new(redelivered),
            dead_lettered: Counted::new(dead_lettered),
            trimmed: Counted::new(trimmed),
            task_failures: Counted::new(Counter::noop()),
            last_error: Mutex::new(None),
        }
    }

    counter! {
        /// Events queued for this subscriber.
        received, add_received;
        /// Events whose handler returned `Ok` (or that a stream yielded).
        handled, add_handled;
        /// Events whose handler returned an error.
        errors, add_error;
        /// Events whose handler panicked.
        panics, add_panic;
        /// Events lost: the queue was full ([`Overflow::DropNewest`](crate::Overflow::DropNewest)), or the subscription's
        /// task had stopped (see [`SubscriptionStats::task_failures`]).
        dropped, add_dropped;
        /// Times events may have been missed upstream (Redis: a reconnection, or fred's buffer
        /// overflowing); resynchronise state after one.
        gaps, add_gap;
        /// Durable mode: events delivered again because an earlier delivery was not
        /// acknowledged in time (a failed handler, a crashed consumer). Included in `received`.
        redelivered, add_redelivered;
        /// Durable mode: events moved to the dead-letter stream after too many deliveries.
        dead_lettered, add_dead_lettered;
        /// Durable mode: entries trimmed from the stream (`MAXLEN`) before they were
        /// acknowledged, read or not: lost, never handled, and logged at ERROR (with their
        /// IDs, or the range they were in when the group had not read them). Not dead letters.
        trimmed, add_trimmed;
        /// Times the task handling this subscription's events stopped abnormally, each reported
        /// by an ERROR line: a panic outside the handler, or the task aborted (its runtime shut
        /// down) while the subscription was live. The events it still held, and every later one,
        /// count as [`dropped`](SubscriptionStats::dropped). Durable mode: times the consumer
        /// panicked and was restarted (its unacknowledged events are delivered again).
        task_failures, add_task_failure;
    }

    /// Counts `lost` more events as [`dropped`](SubscriptionStats::dropped).
    pub(crate) fn add_dropped_many(&self, lost: u64) {
        self.dropped.add(lost);
    }

    /// The message of the last error a handler returned, as logged (for a
    /// [`subscribe_json`](crate::EventBusExt::subscribe_json) handler, a payload that did not
    /// decode is one); `None` before the first.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Counts a handler error and keeps its message; returns the count.
    pub(crate) fn add_error_message(&self, message: String) -> u64 {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
        self.add_error()
    }
}
