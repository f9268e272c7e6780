//! Risk limits: alert near a limit, halt once it is breached.

use std::sync::PoisonError;

use crate::{Action, EmergencyController, EmergencyError, EmergencyState, LimitUse, Outcome, Request, Source};

/// How a named limit is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitOptions {
    /// Consecutive breaching checks needed before the limit counts as breached (for noisy
    /// metrics); 1 (the default) acts on the first.
    pub confirmations: u32,
}

impl Default for LimitOptions {
    fn default() -> Self {
        Self { confirmations: 1 }
    }
}

impl LimitOptions {
    /// Needs `confirmations` consecutive breaching checks (at least 1).
    pub fn confirmations(confirmations: u32) -> Self {
        Self { confirmations: confirmations.max(1) }
    }
}

/// Where a value stands against its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitStatus {
    /// Below the alert threshold.
    Within,
    /// Past the alert threshold (`alert_fraction` of the limit), not breached.
    Alert,
    /// Breached, but not yet on enough consecutive checks.
    Pending {
        /// Consecutive breaching checks so far.
        breaches: u32,
        /// Needed.
        needed: u32,
    },
    /// Breached (and confirmed).
    Breached,
}

impl LimitStatus {
    fn alerting(self) -> bool {
        !matches!(self, Self::Within)
    }
}

/// The result of [`check_risk_limit`](EmergencyController::check_risk_limit).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LimitCheck {
    /// The limit's name.
    pub name: String,
    /// Where the value stands.
    pub status: LimitStatus,
    /// The transition asked of the bot's scope, if any (alert, halt, clear).
    pub outcome: Option<Outcome>,
    /// The effective state afterwards.
    pub state: EmergencyState,
}

/// What a controller remembers of one limit.
#[derive(Debug, Clone)]
pub(crate) struct Track {
    options: LimitOptions,
    consecutive: u32,
    status: LimitStatus,
    /// Used / limit at the last check (`None`: never checked), carried by the heartbeat.
    pub(crate) utilization: Option<f64>,
    /// The value and the limit at the last check, carried by the heartbeat.
    pub(crate) last: Option<LimitUse>,
    /// `infra_risk_limit_utilization_ratio{bot,limit}`, resolved at the first check.
    gauge: Option<metrics::Gauge>,
}

impl Default for Track {
    fn default() -> Self {
        Self {
            options: LimitOptions::default(),
            consecutive: 0,
            status: LimitStatus::Within,
            utilization: None,
            last: None,
            gauge: None,
        }
    }
}

/// Whether `value` has reached `threshold`, moving away from zero in the sign of `limit`.
fn reached(value: f64, threshold: f64, limit: f64) -> bool {
    if limit < 0.0 { value <= threshold } else { value >= threshold }
}

impl EmergencyController {
    /// Sets how limit `name` is judged (consecutive confirmations); applies from its next check.
    pub fn set_limit_options(&self, name: &str, options: LimitOptions) {
        let mut limits = self.inner.limits.lock().unwrap_or_else(PoisonError::into_inner);
        limits.entry(name.to_owned()).or_default().options = options;
    }

    /// Checks `current` against limit `name` of this bot, as in the original design:
    ///
    /// - a limit is a threshold moving away from zero: negative for losses (`-500`: breached
    ///   at a P&L of -500 or less), positive for exposures (`10_000`: breached at 10,000 or
    ///   more);
    /// - past `alert_fraction` of it (from `EmergencyConfig`), the bot's scope goes to `ALERT`;
    /// - once breached (on the configured number of consecutive checks), to `HALT` when
    ///   `auto_halt` is set (`ALERT` otherwise), recorded with source `rule`, actor
    ///   `rule:<name>` and both numbers;
    /// - back within every limit's alert threshold, a rule's alert is cleared (a halt never is:
    ///   only a person resumes).
    ///
    /// Every check sets `infra_risk_limit_utilization_ratio{bot,limit=name}` to
    /// `current / limit` (0 when `current` is on the other side of zero).
    ///
    /// Several named limits are tracked independently. A check that changes nothing does no
    /// I/O. A NaN or infinite value, a zero or non-finite limit, or an empty name is
    /// [`EmergencyError::InvalidLimit`].
    pub async fn check_risk_limit(
        &self,
        name: &str,
        current: f64,
        limit: f64,
        auto_halt: bool,
    ) -> Result<LimitCheck, EmergencyError> {
        let invalid = |why: String| Err(EmergencyError::InvalidLimit { name: name.chars().take(80).collect(), why });
        if name.trim().is_empty() || name.len() > 128 {
            return invalid("a limit name must have 1 to 128 bytes".to_owned());
        }
        if !current.is_finite() {
            return invalid(format!("the value must be finite, got {current}"));
        }
        if !limit.is_finite() || limit == 0.0 {
            return invalid(format!("the limit must be finite and not zero, got {limit}"));
        }
        let fraction = self.inner.config.alert_fraction;
        let (status, others_alerting) = {
            let mut limits = self.inner.limits.lock().unwrap_or_else(PoisonError::into_inner);
            let track = limits.entry(name.to_owned()).or_default();
            let utilization = crate::metrics::utilization(current, limit);
            track.utilization = Some(utilization);
            track.last = Some(LimitUse::new(current, limit));
            track.gauge.get_or_insert_with(|| self.inner.metrics.risk_limit(name)).set(utilization);
            let breached = reached(current, limit, limit);
            track.consecutive = if breached { track.consecutive.saturating_add(1) } else { 0 };
            let needed = track.options.confirmations;
            track.status = match (breached, track.consecutive >= needed) {
                (true, true) => LimitStatus::Breached,
                (true, false) => LimitStatus::Pending { breaches: track.consecutive, needed },
                (false, _) if reached(current, limit * fraction, limit) => LimitStatus::Alert,
                (false, _) => LimitStatus::Within,
            };
            let status = track.status;
            let others = limits.iter().any(|(other, track)| other != name && track.status.alerting());
            (status, others)
        };
        let bot = self.bot_scope().clone();
        let percent = (current / limit * 100.0).round();
        let request = match status {
            LimitStatus::Breached => {
                let action = if auto_halt { Action::Halt } else { Action::Alert };
                let suffix = if auto_halt { "" } else { " (auto-halt off)" };
                Some((action, format!("risk limit `{name}` breached: {current} reached the limit {limit}{suffix}")))
            }
            LimitStatus::Pending { breaches, needed } => Some((
                Action::Alert,
                format!(
                    "risk limit `{name}` breached on {breaches} of {needed} consecutive checks: {current} against {limit}"
                ),
            )),
            LimitStatus::Alert => {
                Some((Action::Alert, format!("risk limit `{name}` near: {current} is {percent}% of the limit {limit}")))
            }
            LimitStatus::Within => (!others_alerting).then(|| {
                (Action::ClearAlert, format!("risk limit `{name}` back within its alert threshold: {current}"))
            }),
        };
        // Skip requests the bot's applied state already answers, so a calm check does no I/O.
        let applied = self.inner.gate.read(|l| (l.bot.known, l.bot.confirmed_state()));
        let needless = |action: Action| match action {
            Action::Alert => applied.0 && applied.1 >= EmergencyState::Alert,
            Action::ClearAlert => !applied.0 || applied.1 != EmergencyState::Alert,
            _ => false,
        };
        let outcome = match request {
            Some((action, reason)) if !needless(action) => {
                let request = Request::new(bot, action, Source::Rule, format!("rule:{name}"), reason)
                    .metric(name, current)
                    .metric(format!("{name}.limit"), limit);
                Some(self.request(request).await?)
            }
            _ => None,
        };
        Ok(LimitCheck { name: name.to_owned(), status, outcome, state: self.state() })
    }

    /// [`check_risk_limit`](Self::check_risk_limit) of the day's P&L against
    /// `emergency.daily_loss_limit`, halting when `emergency.auto_halt_on_limit` is set; the
    /// limit is named `daily_loss`.
    pub async fn check_daily_loss(&self, daily_pnl: f64) -> Result<LimitCheck, EmergencyError> {
        let config = &self.inner.config;
        self.check_risk_limit("daily_loss", daily_pnl, config.daily_loss_limit, config.auto_halt_on_limit).await
    }
}
