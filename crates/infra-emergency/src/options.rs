//! Options of a controller beyond `EmergencyConfig`, and the clock it stamps records with.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::EmergencyError;

/// How a controller runs: timings, the channel it publishes on, what its heartbeat says.
///
/// ```
/// use std::time::Duration;
/// use infra_emergency::ControllerOptions;
///
/// let options = ControllerOptions::default()
///     .resume_cooldown(Duration::from_secs(300))
///     .resync_interval(Duration::from_millis(500))
///     .version("arb-bot 2.3.1");
/// assert_eq!(options.channel, "emergency");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ControllerOptions {
    /// How often the controller re-reads the store (and writes its heartbeat) even when no
    /// message arrived. Default 1 s.
    pub resync_interval: Duration,
    /// Time to live of the heartbeat: a bot whose heartbeat is older has gone from
    /// [`fleet`](crate::EmergencyController::fleet). Default 10 s; more than `resync_interval`.
    pub heartbeat_ttl: Duration,
    /// Minimum time between a halt and the resume that lifts it. Default none.
    pub resume_cooldown: Duration,
    /// The bus channel transitions are published on (under the bus's namespace). Default
    /// `emergency`.
    pub channel: String,
    /// The host named in records and heartbeats. Default: this machine's host name.
    pub host: String,
    /// The version named in the heartbeat (a bot puts its own). Default: this crate's.
    pub version: String,
    /// Whether the controller records its bot's gauges (`infra_emergency_state`, the heartbeat
    /// time, risk-limit utilization; see the crate's "Metrics" section). Default on; an operator
    /// tool whose controller is not a trading bot turns them off (it still counts the
    /// transitions it commits or applies).
    pub bot_gauges: bool,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(1),
            heartbeat_ttl: Duration::from_secs(10),
            resume_cooldown: Duration::ZERO,
            channel: "emergency".to_owned(),
            host: host_name(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            bot_gauges: true,
        }
    }
}

impl ControllerOptions {
    /// Sets [`ControllerOptions::resync_interval`].
    #[must_use]
    pub fn resync_interval(mut self, interval: Duration) -> Self {
        self.resync_interval = interval;
        self
    }

    /// Sets [`ControllerOptions::heartbeat_ttl`].
    #[must_use]
    pub fn heartbeat_ttl(mut self, ttl: Duration) -> Self {
        self.heartbeat_ttl = ttl;
        self
    }

    /// Sets [`ControllerOptions::resume_cooldown`].
    #[must_use]
    pub fn resume_cooldown(mut self, cooldown: Duration) -> Self {
        self.resume_cooldown = cooldown;
        self
    }

    /// Sets [`ControllerOptions::channel`].
    #[must_use]
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// Sets [`ControllerOptions::host`].
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Sets [`ControllerOptions::version`].
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Sets [`ControllerOptions::bot_gauges`].
    #[must_use]
    pub fn bot_gauges(mut self, on: bool) -> Self {
        self.bot_gauges = on;
        self
    }

    /// Checks the values.
    pub(crate) fn validate(&self) -> Result<(), EmergencyError> {
        let invalid = |field, why: String| Err(EmergencyError::InvalidConfig { field, why });
        if self.resync_interval < Duration::from_millis(1) {
            return invalid("resync_interval", format!("must be at least 1 ms, got {:?}", self.resync_interval));
        }
        if self.heartbeat_ttl <= self.resync_interval {
            return invalid(
                "heartbeat_ttl",
                format!(
                    "must be longer than the resync interval ({:?}), got {:?}",
                    self.resync_interval, self.heartbeat_ttl
                ),
            );
        }
        if self.channel.is_empty() {
            return invalid("channel", "must not be empty".to_owned());
        }
        Ok(())
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`, `/etc/hostname`, `$HOSTNAME`), or
/// `unknown`.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Wall-clock milliseconds, advanced by tokio's clock: real time in production, and under a
/// paused test clock it moves only when the test advances it (cooldowns are testable).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    wall_ms: u64,
    start: tokio::time::Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self { wall_ms: wall_ms(), start: tokio::time::Instant::now() }
    }

    /// Milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.wall_ms.saturating_add(elapsed)
    }
}

fn wall_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        let options = ControllerOptions::default();
        assert!(options.validate().is_ok());
        assert!(!options.host.is_empty());
        let error = ControllerOptions::default().heartbeat_ttl(Duration::from_millis(500)).validate().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid emergency configuration `heartbeat_ttl`: must be longer than the resync interval (1s), got 500ms"
        );
        assert!(ControllerOptions::default().resync_interval(Duration::ZERO).validate().is_err());
        assert!(ControllerOptions::default().channel("").validate().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_tokio_time() {
        let clock = Clock::new();
        let before = clock.now_ms();
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(clock.now_ms() - before, 60_000);
    }
}
