//! What an optimistic update may return, and how hard it tries.

use std::{
    cell::Cell,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::BoxError;

/// What an update closure returns (see [`StateStoreExt::update_json`](crate::StateStoreExt::update_json)):
/// the new value, or a refusal that leaves the stored value untouched.
///
/// - `T`: always the new value;
/// - `Option<T>`: `None` refuses;
/// - `Result<T, E>`: `Err(e)` refuses, and `e` becomes the source of
///   [`StateError::UpdateRefused`](crate::StateError::UpdateRefused).
pub trait UpdateResult<T> {
    /// The new value, or the reason for refusing (`None` when no reason was given).
    fn into_update(self) -> Result<T, Option<BoxError>>;
}

impl<T> UpdateResult<T> for T {
    fn into_update(self) -> Result<T, Option<BoxError>> {
        Ok(self)
    }
}

impl<T> UpdateResult<T> for Option<T> {
    fn into_update(self) -> Result<T, Option<BoxError>> {
        self.ok_or(None)
    }
}

impl<T, E: Into<BoxError>> UpdateResult<T> for Result<T, E> {
    fn into_update(self) -> Result<T, Option<BoxError>> {
        self.map_err(|error| Some(error.into()))
    }
}

/// How an optimistic update runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpdateOptions {
    /// The time to live of the written value (`None`: none).
    pub ttl: Option<Duration>,
    /// Reads and compare-and-swaps tried in all before
    /// [`StateError::TooManyConflicts`](crate::StateError::TooManyConflicts). At least 1.
    pub max_attempts: u32,
}

impl UpdateOptions {
    /// Attempts by default: enough for heavy contention between a few writers, and a bound
    /// that turns a livelock into an error.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 16;

    /// No TTL, [`UpdateOptions::DEFAULT_MAX_ATTEMPTS`] attempts.
    pub fn new() -> Self {
        Self { ttl: None, max_attempts: Self::DEFAULT_MAX_ATTEMPTS }
    }

    /// Sets the TTL of the written value.
    #[must_use]
    pub fn ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the attempts in all (0 counts as 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }
}

impl Default for UpdateOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The pause after the `attempt`-th conflict: uniformly random up to 1 ms doubling per
/// attempt, capped at 50 ms, so contending writers spread out instead of colliding again.
pub(crate) fn conflict_pause(attempt: u32) -> Duration {
    let cap_us = (1_000u64 << attempt.min(6)).min(50_000);
    Duration::from_micros(random_u64() % (cap_us + 1))
}

/// A per-thread splitmix64 generator seeded from the clock and the thread: jitter, not secrets.
pub(crate) fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
            let here = &nanos as *const u64 as u64;
            nanos ^ here.rotate_left(32) ^ u64::from(std::process::id())
        });
    }
    STATE.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_and_stay_bounded() {
        for attempt in 1..40 {
            assert!(conflict_pause(attempt) <= Duration::from_millis(50));
        }
        assert!(conflict_pause(1) <= Duration::from_millis(2));
        assert_ne!(random_u64(), random_u64());
    }

    #[test]
    fn closures_refuse_with_none_or_err() {
        assert_eq!(UpdateResult::<i32>::into_update(3).ok(), Some(3));
        assert!(UpdateResult::<i32>::into_update(None::<i32>).unwrap_err().is_none());
        let refused = UpdateResult::<i32>::into_update(Err::<i32, _>("too big")).unwrap_err();
        assert_eq!(refused.unwrap().to_string(), "too big");
    }
}
