//! What a chaos bot counts: sequences received from each publisher (holes, and whether the
//! subscription reported them), outcomes of increments and publishes.

use std::collections::BTreeMap;

use serde::Serialize;

/// Holes in one publisher's sequence as this bot received it.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Sequence {
    /// The next sequence number expected (one past the highest received).
    pub(crate) next: u64,
    /// Distinct numbers received.
    pub(crate) received: u64,
    /// Numbers received twice or more.
    pub(crate) duplicates: u64,
    /// Numbers received after a later one (they fill a hole).
    pub(crate) late: u64,
    /// Holes still open: `[first, last]`, each with the subscription's loss count (gaps plus
    /// dropped) when the event before it arrived, and when the hole was seen.
    pub(crate) holes: Vec<Hole>,
    /// The publisher's final marker arrived (its sequence ends at `next`).
    pub(crate) finished: bool,
}

/// Numbers `first..=last` not received.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Hole {
    /// First missing number.
    pub(crate) first: u64,
    /// Last missing number.
    pub(crate) last: u64,
    /// Loss count (gaps + dropped) when the event before the hole was received.
    pub(crate) losses_before: u64,
    /// Loss count when the event after the hole was received.
    pub(crate) losses_at: u64,
    /// When the hole was seen (the event after it arrived), in ms since the Unix epoch.
    pub(crate) seen_ms: u64,
}

impl Sequence {
    /// Notes number `seq`, received while the subscription's loss count was `losses`, after
    /// `previous_losses` at the previous event.
    pub(crate) fn receive(&mut self, seq: u64, losses: u64, previous_losses: u64, seen_ms: u64) {
        if seq == self.next {
            self.next += 1;
            self.received += 1;
        } else if seq > self.next {
            self.holes.push(Hole {
                first: self.next,
                last: seq - 1,
                losses_before: previous_losses,
                losses_at: losses,
                seen_ms,
            });
            self.next = seq + 1;
            self.received += 1;
        } else if let Some(index) = self.holes.iter().position(|h| h.first <= seq && seq <= h.last) {
            // A late arrival: split the hole it fills.
            self.late += 1;
            self.received += 1;
            let hole = self.holes.remove(index);
            if hole.first < seq {
                self.holes.insert(index, Hole { last: seq - 1, ..hole.clone() });
            }
            if seq < hole.last {
                let at = if hole.first < seq { index + 1 } else { index };
                self.holes.insert(at, Hole { first: seq + 1, ..hole });
            }
        } else {
            self.duplicates += 1;
        }
    }

    /// The publisher's final marker: it published `count` numbers (`0..count`).
    pub(crate) fn finish(&mut self, count: u64, losses: u64, previous_losses: u64, seen_ms: u64) {
        if count > self.next {
            self.holes.push(Hole {
                first: self.next,
                last: count - 1,
                losses_before: previous_losses,
                losses_at: losses,
                seen_ms,
            });
            self.next = count;
        }
        self.finished = true;
    }
}

/// What one subscriber knows of every publisher, plus the subscription's loss count at the
/// last event (to tell whether a hole was reported).
#[derive(Debug, Default)]
pub(crate) struct Receiver {
    /// By publisher.
    pub(crate) sequences: BTreeMap<String, Sequence>,
    /// Loss count at the previous event, by publisher.
    pub(crate) last_losses: BTreeMap<String, u64>,
}

impl Receiver {
    /// Notes event `seq` (or the final marker with `count`) from `bot`.
    pub(crate) fn note(&mut self, bot: &str, seq: u64, fin: bool, losses: u64, seen_ms: u64) {
        let previous = self.last_losses.insert(bot.to_owned(), losses).unwrap_or(0);
        let sequence = self.sequences.entry(bot.to_owned()).or_default();
        if fin {
            sequence.finish(seq, losses, previous, seen_ms);
        } else {
            sequence.receive(seq, losses, previous, seen_ms);
        }
    }
}

/// Outcomes of calls that are not repeated after an error that may have been applied.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Outcomes {
    /// Calls attempted.
    pub(crate) attempts: u64,
    /// Calls that returned `Ok`.
    pub(crate) ok: u64,
    /// Errors that say the call may have been applied (`may_have_been_applied()`), refusals of
    /// the facade's circuit breaker included (the facade reports those as "may have been
    /// applied", the safe answer).
    pub(crate) maybe: u64,
    /// Of `maybe`: refusals of the circuit breaker (nothing was sent).
    pub(crate) refused: u64,
    /// Errors that say the call was certainly not applied.
    pub(crate) not_applied: u64,
    /// Sequence numbers of the calls that failed (publishes only).
    pub(crate) failed: Vec<u64>,
    /// The first distinct error messages (at most 8).
    pub(crate) errors: Vec<String>,
}

impl Outcomes {
    /// Notes a failed call `seq`.
    pub(crate) fn fail(&mut self, seq: Option<u64>, maybe: bool, refused: bool, message: String) {
        if maybe {
            self.maybe += 1;
        } else {
            self.not_applied += 1;
        }
        self.refused += u64::from(refused);
        self.failed.extend(seq);
        if self.errors.len() < 8 && !self.errors.contains(&message) {
            self.errors.push(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_split_when_late_events_fill_them() {
        let mut s = Sequence::default();
        for seq in [0, 1, 5, 3, 6] {
            s.receive(seq, 0, 0, 1);
        }
        s.finish(9, 1, 0, 2);
        let holes: Vec<_> = s.holes.iter().map(|h| (h.first, h.last)).collect();
        assert_eq!(holes, [(2, 2), (4, 4), (7, 8)]);
        assert_eq!((s.received, s.late, s.next, s.finished), (5, 1, 9, true));
    }
}
