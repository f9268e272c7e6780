//! [`SubscriptionStats`]: the counters of one subscription.

use std::{
    fmt,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

/// Counters of one subscription, readable while it runs.
#[derive(Debug, Default)]
pub struct SubscriptionStats {
    received: OwnLine,
    handled: AtomicU64,
    errors: AtomicU64,
    panics: AtomicU64,
    dropped: AtomicU64,
    gaps: AtomicU64,
    redelivered: AtomicU64,
    dead_lettered: AtomicU64,
    trimmed: AtomicU64,
    task_failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A counter alone on its cache line: publishers write `received` for every event while the
/// subscription's task writes `handled`, and sharing a line would move it between their cores
/// twice per event.
#[derive(Default)]
#[repr(align(64))]
struct OwnLine(AtomicU64);

impl std::ops::Deref for OwnLine {
    type Target = AtomicU64;

    fn deref(&self) -> &AtomicU64 {
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
            self.$name.load(Ordering::Relaxed)
        }

        #[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "some counters only move on redis"))]
        pub(crate) fn $add(&self) -> u64 {
            self.$name.fetch_add(1, Ordering::Relaxed) + 1
        }
    )*};
}

impl SubscriptionStats {
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
        self.dropped.fetch_add(lost, Ordering::Relaxed);
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
