//! Exponential backoff with jitter: the delay before each retry.

use std::{cell::Cell, time::Duration};

pub use infra_config::Jitter;

/// Delays growing from `initial` by `multiplier` per retry up to `max`, spread by [`Jitter`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub initial: Duration,
    /// Cap on any delay.
    pub max: Duration,
    /// Growth per retry; 1.0 keeps the delay constant.
    pub multiplier: f64,
    /// How delays are spread.
    pub jitter: Jitter,
}

impl Default for Backoff {
    /// 100 ms doubling up to 10 s, full jitter.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: Jitter::Full,
        }
    }
}

impl Backoff {
    /// The exponential delay before retry `retry` (1 for the first), before jitter, capped.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let factor = self.multiplier.max(1.0).powi(i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX));
        let seconds = self.initial.as_secs_f64() * factor;
        if !seconds.is_finite() || seconds >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(seconds)
        }
    }

    /// The delay before retry `retry`, jittered. `previous` is the delay before the previous
    /// retry (decorrelated jitter grows from it); pass [`Backoff::initial`] for the first.
    pub fn delay(&self, retry: u32, previous: Duration) -> Duration {
        let base = self.base_delay(retry);
        match self.jitter {
            Jitter::None => base,
            Jitter::Full => uniform(Duration::ZERO, base),
            Jitter::Equal => base / 2 + uniform(Duration::ZERO, base - base / 2),
            Jitter::Decorrelated => {
                let high = previous.saturating_mul(3).max(self.initial);
                uniform(self.initial, high).min(self.max)
            }
        }
    }
}

/// A uniformly random duration in `[low, high]`, from a per-thread generator.
fn uniform(low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    let span = (high - low).as_nanos().min(u128::from(u64::MAX)) as u64;
    let offset = if span == u64::MAX { next_random() } else { next_random() % (span + 1) };
    low + Duration::from_nanos(offset)
}

/// splitmix64 over a per-thread state seeded from the standard library's random hasher keys:
/// jitter needs spread, not cryptographic quality, and this keeps `rand` out of the tree.
fn next_random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64));
            hasher.finish()
        });
    }
    STATE.with(|state| {
        let mut z = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn backoff(jitter: Jitter) -> Backoff {
        Backoff { initial: MS(100), max: MS(1_000), multiplier: 2.0, jitter }
    }

    #[test]
    fn no_jitter_is_the_exact_exponential_schedule() {
        let b = backoff(Jitter::None);
        let delays: Vec<_> = (1..=6).map(|n| b.delay(n, MS(0))).collect();
        assert_eq!(delays, [MS(100), MS(200), MS(400), MS(800), MS(1_000), MS(1_000)]);
        assert_eq!(Backoff { multiplier: 1.0, ..b }.delay(5, MS(0)), MS(100));
        assert_eq!(b.base_delay(u32::MAX), MS(1_000), "huge exponents saturate at the cap");
    }

    #[test]
    fn jitter_stays_within_its_bounds_and_spreads() {
        for retry in 1..=5 {
            let base = backoff(Jitter::None).delay(retry, MS(0));
            let full: Vec<_> = (0..2_000).map(|_| backoff(Jitter::Full).delay(retry, MS(0))).collect();
            assert!(full.iter().all(|d| *d <= base), "full jitter within [0, {base:?}]");
            assert!(full.iter().any(|d| *d < base / 4) && full.iter().any(|d| *d > base * 3 / 4), "spread");
            let equal: Vec<_> = (0..2_000).map(|_| backoff(Jitter::Equal).delay(retry, MS(0))).collect();
            assert!(
                equal.iter().all(|d| *d >= base / 2 && *d <= base),
                "equal jitter within [{:?}, {base:?}]",
                base / 2
            );
        }
        let mut previous = MS(100);
        for retry in 1..=50 {
            let d = backoff(Jitter::Decorrelated).delay(retry, previous);
            assert!(d >= MS(100) && d <= MS(1_000) && d <= (previous * 3).max(MS(100)), "{d:?} after {previous:?}");
            previous = d;
        }
    }
}
