//! The right to make one call: a [`Permit`] (or [`OwnedPermit`]) carrying the ticket of its
//! admission, and how its outcome, or its cancellation, reaches the breaker.

use std::{fmt, sync::atomic::Ordering};

use super::{
    CircuitBreaker,
    state::{Inner, tagged, untag},
};

/// The right to make one call, from [`CircuitBreaker::admit`]. Report the outcome with
/// [`Permit::success`], [`Permit::failure`] or [`Permit::ignore`]; dropping it reports nothing
/// (a cancelled call) and frees a probe slot.
#[must_use = "report the outcome, or drop the permit for a cancelled call"]
pub struct Permit<'a> {
    pub(super) inner: &'a Inner,
    pub(super) ticket: Ticket,
}

/// A [`Permit`] that owns a handle to its breaker, for futures that outlive a borrow (tower
/// services); from [`CircuitBreaker::admit_owned`].
#[must_use = "report the outcome, or drop the permit for a cancelled call"]
pub struct OwnedPermit {
    pub(super) breaker: CircuitBreaker,
    pub(super) ticket: Ticket,
}

/// What a permit remembers of its admission.
#[derive(Debug)]
pub(super) struct Ticket {
    pub(super) generation: u64,
    pub(super) kind: PermitKind,
    /// When the call started, in nanoseconds after the breaker's epoch plus one; 0 when its
    /// duration does not matter (no slow-call rule). A plain word: an `Option<Instant>` here
    /// cost the closed path a store-forwarding stall.
    pub(super) started: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PermitKind {
    Closed,
    Probe,
    Untracked,
    Done,
}

impl Ticket {
    #[inline]
    fn finish(&mut self, inner: &Inner, success: bool) {
        let slow = success
            && match (self.started, inner.settings.slow_call_threshold) {
                (1.., Some(threshold)) => {
                    inner.nanos_since_epoch().saturating_sub(self.started - 1) > threshold.as_nanos() as u64
                }
                _ => false,
            };
        let kind = std::mem::replace(&mut self.kind, PermitKind::Done);
        inner.record(kind, self.generation, success && !slow);
    }

    /// The call was cancelled (`ignored: false`) or its outcome says nothing about the
    /// dependency (`ignored: true`): counted as neither, its probe slot freed.
    fn release(&mut self, inner: &Inner, ignored: bool) {
        let kind = std::mem::replace(&mut self.kind, PermitKind::Done);
        match kind {
            PermitKind::Done => return,
            _ if ignored => inner.instruments.ignored.increment(1),
            PermitKind::Untracked => {}
            PermitKind::Closed | PermitKind::Probe => {
                inner.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
        if kind == PermitKind::Probe {
            let tag = self.generation & 0xffff_ffff;
            let _ = inner.probes_left.fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                let (owner, left) = untag(word);
                (owner == tag).then(|| tagged(self.generation, left + 1))
            });
        }
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("breaker", &self.inner.name).field("kind", &self.ticket.kind).finish()
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("breaker", &self.breaker.inner.name)
            .field("kind", &self.ticket.kind)
            .finish()
    }
}

impl Permit<'_> {
    /// Records a success (a failure instead if it was slower than the slow-call threshold).
    #[inline]
    pub fn success(mut self) {
        self.ticket.finish(self.inner, true);
    }

    /// Records a failure.
    pub fn failure(mut self) {
        self.ticket.finish(self.inner, false);
    }

    /// Records neither: the call ran, or was attempted, but its outcome says nothing about the
    /// dependency (a bulkhead below rejected it, the caller's deadline cut it). Frees a probe
    /// slot like a dropped permit, and counts as `ignored` in `infra_circuitbreaker_calls_total`.
    pub fn ignore(mut self) {
        self.ticket.release(self.inner, true);
    }

    #[inline]
    pub(super) fn finish(&mut self, success: bool) {
        self.ticket.finish(self.inner, success);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.ticket.release(self.inner, false);
    }
}

impl OwnedPermit {
    /// Records a success (a failure instead if it was slower than the slow-call threshold).
    pub fn success(mut self) {
        self.ticket.finish(&self.breaker.inner, true);
    }

    /// Records a failure.
    pub fn failure(mut self) {
        self.ticket.finish(&self.breaker.inner, false);
    }

    /// Records neither, counted as `ignored` (see [`Permit::ignore`]).
    pub fn ignore(mut self) {
        self.ticket.release(&self.breaker.inner, true);
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        self.ticket.release(&self.breaker.inner, false);
    }
}
