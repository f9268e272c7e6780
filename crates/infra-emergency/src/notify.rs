//! Notifications: the events a controller emits, and callbacks run for them.

use std::panic::AssertUnwindSafe;

use tokio::{
    sync::broadcast::{self, error::RecvError},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use crate::{AuditRecord, EmergencyState};

/// Events kept for a slow receiver before it misses some (and is told how many).
pub(crate) const EVENT_CAPACITY: usize = 1024;

/// What a controller tells its subscribers, after the store has it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EmergencyEvent {
    /// A transition of the global scope or of this bot's scope was applied here (committed by
    /// this controller, or read from the store after a message or a resync).
    Transition {
        /// The transition (the latest one, when several were applied at once).
        record: AuditRecord,
        /// The effective state before.
        previous: EmergencyState,
        /// The effective state after.
        effective: EmergencyState,
    },
    /// The store could not be read at start; with `fail_closed` the controller halts.
    StoreUnavailable {
        /// The effective state now.
        effective: EmergencyState,
    },
    /// The store answered for the first time since the controller started.
    StoreRecovered {
        /// The effective state before.
        previous: EmergencyState,
        /// The effective state now.
        effective: EmergencyState,
    },
}

impl EmergencyEvent {
    /// The effective state after this event.
    pub fn effective(&self) -> EmergencyState {
        match self {
            Self::Transition { effective, .. }
            | Self::StoreUnavailable { effective }
            | Self::StoreRecovered { effective, .. } => *effective,
        }
    }

    /// The transition, for [`EmergencyEvent::Transition`].
    pub fn record(&self) -> Option<&AuditRecord> {
        match self {
            Self::Transition { record, .. } => Some(record),
            _ => None,
        }
    }
}

/// A callback registered with [`subscribe`](crate::EmergencyController::subscribe). Dropping
/// it (or closing the controller) stops it.
#[derive(Debug)]
#[must_use = "dropping the subscription stops the callback"]
pub struct CallbackSubscription {
    task: JoinHandle<()>,
}

impl CallbackSubscription {
    /// Stops the callback.
    pub fn unsubscribe(self) {}
}

impl Drop for CallbackSubscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `callback` for every event of `events` until `cancel`, on `runtime`. A panicking
/// callback is logged; later events still reach it.
pub(crate) fn spawn_callback<F>(
    runtime: &tokio::runtime::Handle,
    mut events: broadcast::Receiver<EmergencyEvent>,
    cancel: CancellationToken,
    callback: F,
) -> CallbackSubscription
where
    F: Fn(&EmergencyEvent) + Send + Sync + 'static,
{
    let task = runtime.spawn(async move {
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(event) => {
                    if std::panic::catch_unwind(AssertUnwindSafe(|| callback(&event))).is_err() {
                        tracing::error!(target: "infra_emergency", "an emergency event callback panicked");
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(target: "infra_emergency", missed, "an emergency event callback fell behind and missed events");
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    CallbackSubscription { task }
}
