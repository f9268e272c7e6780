//! The events metrics of docs/observability/metrics.md: their names, descriptions and the
//! handles a bus or a subscription resolves once, when it is built.

#![cfg_attr(not(feature = "memory"), allow(dead_code, reason = "no backend compiled in"))]

use metrics::{Counter, Unit, counter, describe_counter};

use crate::{Published, Result, Topic};

const PUBLISHED: &str = "infra_events_published_total";
const RECEIVED: &str = "infra_events_received_total";
const HANDLED: &str = "infra_events_handled_total";
const DROPPED: &str = "infra_events_dropped_total";
const GAPS: &str = "infra_events_gaps_total";
const REDELIVERED: &str = "infra_events_redelivered_total";
const DEAD_LETTERED: &str = "infra_events_dead_lettered_total";
const TRIMMED: &str = "infra_events_trimmed_total";

/// The `backend` label of the memory bus.
pub(crate) const MEMORY: &str = "memory";
/// The `backend` label of Redis pub/sub.
#[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "a redis label"))]
pub(crate) const REDIS: &str = "redis";
/// The `backend` label of the durable bus (Redis Streams).
pub(crate) const DURABLE: &str = "redis_streams";

/// Describes every events metric to the installed recorder (cheap, and only when a bus or a
/// subscription is built: a recorder may be installed, or thread-local, at any time).
fn describe() {
    describe_counter!(PUBLISHED, Unit::Count, "Events published (outcome=ok) or refused (outcome=error)");
    describe_counter!(RECEIVED, Unit::Count, "Events that reached a subscription");
    describe_counter!(HANDLED, Unit::Count, "Handler runs by outcome: ok, error, panic");
    describe_counter!(DROPPED, Unit::Count, "Events a subscription lost because it fell behind");
    describe_counter!(GAPS, Unit::Count, "Gaps detected upstream of a subscription (events may have been lost)");
    describe_counter!(REDELIVERED, Unit::Count, "Durable events delivered again");
    describe_counter!(DEAD_LETTERED, Unit::Count, "Durable events moved to the dead-letter stream");
    describe_counter!(
        TRIMMED,
        Unit::Count,
        "Durable events trimmed from the stream before this subscription read them"
    );
}

/// `infra_events_published_total` of one bus, by outcome.
#[derive(Debug, Clone)]
pub(crate) struct PublishMetrics {
    ok: Counter,
    error: Counter,
}

impl PublishMetrics {
    /// The handles of a bus whose `backend` label is `backend`.
    pub(crate) fn new(backend: &'static str) -> Self {
        describe();
        Self {
            ok: counter!(PUBLISHED, "backend" => backend, "outcome" => "ok"),
            error: counter!(PUBLISHED, "backend" => backend, "outcome" => "error"),
        }
    }

    /// Counts one event published.
    #[inline]
    pub(crate) fn ok(&self) {
        self.ok.increment(1);
    }

    /// Counts one publish by its result.
    #[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "the memory bus never refuses"))]
    pub(crate) fn outcome<T>(&self, result: &Result<T>) {
        match result {
            Ok(_) => self.ok.increment(1),
            Err(_) => self.error.increment(1),
        }
    }

    /// Counts a batch of `events`: each by its own result, or all refused when the batch failed
    /// as a whole.
    #[cfg_attr(not(feature = "redis"), allow(dead_code, reason = "the memory bus never refuses"))]
    pub(crate) fn batch(&self, events: usize, result: &Result<Vec<Result<Published>>>) {
        match result {
            Ok(results) => results.iter().for_each(|result| self.outcome(result)),
            Err(_) => self.error.increment(u64::try_from(events).unwrap_or(u64::MAX)),
        }
    }
}

/// The counters of one subscription, labelled with its topic as subscribed and its bus's
/// backend. Only [`SubscriptionStats`](crate::SubscriptionStats) holds them, next to its
/// atomics, so the two never diverge.
#[derive(Debug)]
pub(crate) struct SubscriptionMetrics {
    pub(crate) received: Counter,
    pub(crate) handled: Counter,
    pub(crate) errors: Counter,
    pub(crate) panics: Counter,
    pub(crate) dropped: Counter,
    pub(crate) gaps: Counter,
    pub(crate) redelivered: Counter,
    pub(crate) dead_lettered: Counter,
    pub(crate) trimmed: Counter,
}

impl SubscriptionMetrics {
    /// The handles of a subscription to `topic` on a `backend` bus. The durable-only counters
    /// exist only for a durable subscription, so the other backends export no series that
    /// could never move.
    pub(crate) fn new(topic: &Topic, backend: &'static str) -> Self {
        describe();
        let durable = backend == DURABLE;
        let topic = topic.to_string();
        let labelled = |name: &'static str| counter!(name, "topic" => topic.clone(), "backend" => backend);
        let handled = |outcome: &'static str| counter!(HANDLED, "topic" => topic.clone(), "backend" => backend, "outcome" => outcome);
        Self {
            received: labelled(RECEIVED),
            handled: handled("ok"),
            errors: handled("error"),
            panics: handled("panic"),
            dropped: labelled(DROPPED),
            gaps: labelled(GAPS),
            redelivered: if durable { labelled(REDELIVERED) } else { Counter::noop() },
            dead_lettered: if durable { labelled(DEAD_LETTERED) } else { Counter::noop() },
            trimmed: if durable { labelled(TRIMMED) } else { Counter::noop() },
        }
    }

    /// Handles that record nothing (stats built without a bus).
    pub(crate) fn noop() -> Self {
        Self {
            received: Counter::noop(),
            handled: Counter::noop(),
            errors: Counter::noop(),
            panics: Counter::noop(),
            dropped: Counter::noop(),
            gaps: Counter::noop(),
            redelivered: Counter::noop(),
            dead_lettered: Counter::noop(),
            trimmed: Counter::noop(),
        }
    }
}
