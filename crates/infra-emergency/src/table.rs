//! The transition table, as data: for each current state and requested [`Action`], whether
//! the scope moves (and who may move it), stays as it is, or the request is refused.
//!
//! | from | action | verdict | allowed sources | condition |
//! |---|---|---|---|---|
//! | `NORMAL` | alert | → `ALERT` | rule, manual | |
//! | `NORMAL` | clear_alert | unchanged | | nothing to clear |
//! | `NORMAL` | halt | → `HALT` | rule, manual, system | |
//! | `NORMAL` | resume | unchanged | | already trading |
//! | `NORMAL` | shutdown | → `SHUTDOWN` | manual, system | |
//! | `NORMAL` | rearm | refused | | only a shutdown is re-armed |
//! | `ALERT` | alert | unchanged | | already alerting |
//! | `ALERT` | clear_alert | → `NORMAL` | rule, manual | a rule clears only an alert a rule raised |
//! | `ALERT` | halt | → `HALT` | rule, manual, system | |
//! | `ALERT` | resume | → `NORMAL` | manual | |
//! | `ALERT` | shutdown | → `SHUTDOWN` | manual, system | |
//! | `ALERT` | rearm | refused | | only a shutdown is re-armed |
//! | `HALT` | alert | unchanged | | already stricter |
//! | `HALT` | clear_alert | unchanged | | clearing an alert never lifts a halt |
//! | `HALT` | halt | unchanged | | already halted |
//! | `HALT` | resume | → `NORMAL` | manual | the resume cooldown has passed since the halt |
//! | `HALT` | shutdown | → `SHUTDOWN` | manual, system | |
//! | `HALT` | rearm | refused | | only a shutdown is re-armed |
//! | `SHUTDOWN` | alert | unchanged | | already stricter |
//! | `SHUTDOWN` | clear_alert | unchanged | | clearing an alert never lifts a shutdown |
//! | `SHUTDOWN` | halt | unchanged | | already stricter |
//! | `SHUTDOWN` | resume | refused | | a shutdown must be re-armed first |
//! | `SHUTDOWN` | shutdown | unchanged | | already shut down |
//! | `SHUTDOWN` | rearm | → `HALT` | manual | |
//!
//! So any state moves to a stricter one, nothing but a person makes a scope less strict (a rule
//! may only clear its own alert), a halt (automatic or not) is lifted only by a manual resume,
//! and a shutdown only by a re-arm followed by a resume. A request from a source the row does
//! not allow is refused. "Unchanged" is not an error: a thousand concurrent breaches give one
//! halt and 999 unchanged answers.

use std::time::Duration;

use crate::{Action, EmergencyState, Source};

/// What the table says about one (state, action) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The scope moves to `to` when the request comes from one of `sources` and `condition`
    /// holds.
    Moves {
        /// The new state.
        to: EmergencyState,
        /// Who may ask.
        sources: &'static [Source],
        /// What must hold besides.
        condition: Condition,
    },
    /// The scope stays as it is; the request is answered, not refused.
    Unchanged {
        /// Why nothing changes.
        why: &'static str,
    },
    /// The request is refused with an error.
    Refused {
        /// Why.
        why: &'static str,
    },
}

/// An extra condition of a [`Verdict::Moves`] row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Condition {
    /// None.
    Always,
    /// A rule clears only an alert that a rule raised (otherwise: unchanged); a person clears
    /// any.
    RuleClearsOnlyRuleAlerts,
    /// At least the configured resume cooldown has passed since the scope was halted.
    CooldownPassed,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// The scope's current state.
    pub from: EmergencyState,
    /// The requested action.
    pub action: Action,
    /// What happens.
    pub verdict: Verdict,
}

const RULE_MANUAL: &[Source] = &[Source::Rule, Source::Manual];
const ANY: &[Source] = &[Source::Rule, Source::Manual, Source::System];
const MANUAL: &[Source] = &[Source::Manual];
const MANUAL_SYSTEM: &[Source] = &[Source::Manual, Source::System];

const fn moves(from: EmergencyState, action: Action, sources: &'static [Source], condition: Condition) -> Row {
    Row { from, action, verdict: Verdict::Moves { to: action.target(), sources, condition } }
}

const fn unchanged(from: EmergencyState, action: Action, why: &'static str) -> Row {
    Row { from, action, verdict: Verdict::Unchanged { why } }
}

const fn refused(from: EmergencyState, action: Action, why: &'static str) -> Row {
    Row { from, action, verdict: Verdict::Refused { why } }
}

use Action::{Alert, ClearAlert, Halt as HaltAction, Rearm, Resume, Shutdown as ShutdownAction};
use Condition::{Always, CooldownPassed, RuleClearsOnlyRuleAlerts};
use EmergencyState::{Alert as ALERT, Halt as HALT, Normal as NORMAL, Shutdown as SHUTDOWN};

const REARM_ONLY_SHUTDOWN: &str = "only a shutdown is re-armed";

/// The whole table, one row per (state, action), in the order of the module documentation.
pub static TRANSITIONS: [Row; 24] = [
    moves(NORMAL, Alert, RULE_MANUAL, Always),
    unchanged(NORMAL, ClearAlert, "nothing to clear"),
    moves(NORMAL, HaltAction, ANY, Always),
    unchanged(NORMAL, Resume, "already trading"),
    moves(NORMAL, ShutdownAction, MANUAL_SYSTEM, Always),
    refused(NORMAL, Rearm, REARM_ONLY_SHUTDOWN),
    unchanged(ALERT, Alert, "already alerting"),
    moves(ALERT, ClearAlert, RULE_MANUAL, RuleClearsOnlyRuleAlerts),
    moves(ALERT, HaltAction, ANY, Always),
    moves(ALERT, Resume, MANUAL, Always),
    moves(ALERT, ShutdownAction, MANUAL_SYSTEM, Always),
    refused(ALERT, Rearm, REARM_ONLY_SHUTDOWN),
    unchanged(HALT, Alert, "already stricter"),
    unchanged(HALT, ClearAlert, "clearing an alert never lifts a halt"),
    unchanged(HALT, HaltAction, "already halted"),
    moves(HALT, Resume, MANUAL, CooldownPassed),
    moves(HALT, ShutdownAction, MANUAL_SYSTEM, Always),
    refused(HALT, Rearm, REARM_ONLY_SHUTDOWN),
    unchanged(SHUTDOWN, Alert, "already stricter"),
    unchanged(SHUTDOWN, ClearAlert, "clearing an alert never lifts a shutdown"),
    unchanged(SHUTDOWN, HaltAction, "already stricter"),
    refused(SHUTDOWN, Resume, "a shutdown must be re-armed first"),
    unchanged(SHUTDOWN, ShutdownAction, "already shut down"),
    moves(SHUTDOWN, Rearm, MANUAL, Always),
];

/// The row for `from` and `action`.
pub fn row(from: EmergencyState, action: Action) -> &'static Row {
    let index = from as usize * Action::ALL.len() + Action::ALL.iter().position(|a| *a == action).unwrap_or(0);
    &TRANSITIONS[index]
}

/// What the scope's last transition says, for the table's conditions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Current {
    pub(crate) state: EmergencyState,
    /// Who made the last transition (`None`: the scope never moved).
    pub(crate) source: Option<Source>,
    /// When (milliseconds since the Unix epoch; 0 when it never moved).
    pub(crate) at_ms: u64,
}

/// The table's decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Move to this state.
    Move(EmergencyState),
    /// Nothing to do.
    Unchanged(&'static str),
    /// Refused by the row itself.
    Refused(&'static str),
    /// Refused: the source may not ask for this.
    SourceNotAllowed,
    /// Refused: the resume cooldown is not over; this much is left.
    Cooldown(Duration),
}

/// Decides `action` from `source` on a scope in `current`, at `now_ms`, with this resume
/// cooldown.
pub(crate) fn decide(current: Current, action: Action, source: Source, now_ms: u64, cooldown: Duration) -> Decision {
    match row(current.state, action).verdict {
        Verdict::Unchanged { why } => Decision::Unchanged(why),
        Verdict::Refused { why } => Decision::Refused(why),
        Verdict::Moves { to, sources, condition } => {
            if !sources.contains(&source) {
                return Decision::SourceNotAllowed;
            }
            match condition {
                Condition::Always => Decision::Move(to),
                Condition::RuleClearsOnlyRuleAlerts => {
                    if source == Source::Rule && current.source != Some(Source::Rule) {
                        Decision::Unchanged("a rule clears only an alert a rule raised")
                    } else {
                        Decision::Move(to)
                    }
                }
                Condition::CooldownPassed => {
                    let elapsed = Duration::from_millis(now_ms.saturating_sub(current.at_ms));
                    if elapsed >= cooldown { Decision::Move(to) } else { Decision::Cooldown(cooldown - elapsed) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_has_its_row_in_order() {
        for (i, state) in EmergencyState::ALL.into_iter().enumerate() {
            for (j, action) in Action::ALL.into_iter().enumerate() {
                let row = row(state, action);
                assert_eq!((row.from, row.action), (state, action));
                assert!(std::ptr::eq(row, &TRANSITIONS[i * 6 + j]));
            }
        }
    }

    #[test]
    fn moves_go_to_the_action_target_and_only_people_loosen() {
        for row in TRANSITIONS {
            if let Verdict::Moves { to, sources, .. } = row.verdict {
                assert_eq!(to, row.action.target());
                if to < row.from {
                    assert!(!sources.contains(&Source::System), "{row:?}");
                    assert!(row.action == ClearAlert || sources == MANUAL, "{row:?}");
                }
            }
        }
    }
    const COOLDOWN: Duration = Duration::from_secs(60);

    /// Decides `action` from `source` in `from`, the last transition made by `last` 10 s ago.
    fn at(from: EmergencyState, action: Action, source: Source, last: Source) -> Decision {
        let current = Current { state: from, source: Some(last), at_ms: 1_000_000 };
        decide(current, action, source, 1_010_000, COOLDOWN)
    }

    /// One test per row: what every source gets, and the condition when there is one.
    macro_rules! rows {
        ($($name:ident: $from:ident $action:ident => rule $rule:expr, manual $manual:expr, system $system:expr;)*) => {$(
            #[test]
            fn $name() {
                let got = [Source::Rule, Source::Manual, Source::System].map(|s| at($from, $action, s, Source::Rule));
                assert_eq!(got, [$rule, $manual, $system]);
            }
        )*};
    }

    use Decision::{Move, Refused as No, SourceNotAllowed as Denied, Unchanged as Same};

    rows! {
        normal_alert: NORMAL Alert => rule Move(ALERT), manual Move(ALERT), system Denied;
        normal_clear_alert: NORMAL ClearAlert => rule Same("nothing to clear"), manual Same("nothing to clear"), system Same("nothing to clear");
        normal_halt: NORMAL HaltAction => rule Move(HALT), manual Move(HALT), system Move(HALT);
        normal_resume: NORMAL Resume => rule Same("already trading"), manual Same("already trading"), system Same("already trading");
        normal_shutdown: NORMAL ShutdownAction => rule Denied, manual Move(SHUTDOWN), system Move(SHUTDOWN);
        normal_rearm: NORMAL Rearm => rule No(REARM_ONLY_SHUTDOWN), manual No(REARM_ONLY_SHUTDOWN), system No(REARM_ONLY_SHUTDOWN);
        alert_alert: ALERT Alert => rule Same("already alerting"), manual Same("already alerting"), system Same("already alerting");
        alert_clear_alert: ALERT ClearAlert => rule Move(NORMAL), manual Move(NORMAL), system Denied;
        alert_halt: ALERT HaltAction => rule Move(HALT), manual Move(HALT), system Move(HALT);
        alert_resume: ALERT Resume => rule Denied, manual Move(NORMAL), system Denied;
        alert_shutdown: ALERT ShutdownAction => rule Denied, manual Move(SHUTDOWN), system Move(SHUTDOWN);
        alert_rearm: ALERT Rearm => rule No(REARM_ONLY_SHUTDOWN), manual No(REARM_ONLY_SHUTDOWN), system No(REARM_ONLY_SHUTDOWN);
        halt_alert: HALT Alert => rule Same("already stricter"), manual Same("already stricter"), system Same("already stricter");
        halt_clear_alert: HALT ClearAlert => rule Same("clearing an alert never lifts a halt"), manual Same("clearing an alert never lifts a halt"), system Same("clearing an alert never lifts a halt");
        halt_halt: HALT HaltAction => rule Same("already halted"), manual Same("already halted"), system Same("already halted");
        halt_resume: HALT Resume => rule Denied, manual Decision::Cooldown(Duration::from_secs(50)), system Denied;
        halt_shutdown: HALT ShutdownAction => rule Denied, manual Move(SHUTDOWN), system Move(SHUTDOWN);
        halt_rearm: HALT Rearm => rule No(REARM_ONLY_SHUTDOWN), manual No(REARM_ONLY_SHUTDOWN), system No(REARM_ONLY_SHUTDOWN);
        shutdown_alert: SHUTDOWN Alert => rule Same("already stricter"), manual Same("already stricter"), system Same("already stricter");
        shutdown_clear_alert: SHUTDOWN ClearAlert => rule Same("clearing an alert never lifts a shutdown"), manual Same("clearing an alert never lifts a shutdown"), system Same("clearing an alert never lifts a shutdown");
        shutdown_halt: SHUTDOWN HaltAction => rule Same("already stricter"), manual Same("already stricter"), system Same("already stricter");
        shutdown_resume: SHUTDOWN Resume => rule No("a shutdown must be re-armed first"), manual No("a shutdown must be re-armed first"), system No("a shutdown must be re-armed first");
        shutdown_shutdown: SHUTDOWN ShutdownAction => rule Same("already shut down"), manual Same("already shut down"), system Same("already shut down");
        shutdown_rearm: SHUTDOWN Rearm => rule Denied, manual Move(HALT), system Denied;
    }

    #[test]
    fn a_rule_clears_only_a_rule_alert_and_resume_waits_for_the_cooldown() {
        let manual_alert = Current { state: ALERT, source: Some(Source::Manual), at_ms: 0 };
        let cleared = |source| decide(manual_alert, ClearAlert, source, 0, COOLDOWN);
        assert_eq!(cleared(Source::Rule), Same("a rule clears only an alert a rule raised"));
        assert_eq!(cleared(Source::Manual), Move(NORMAL));
        let halted = Current { state: HALT, source: Some(Source::Rule), at_ms: 1_000 };
        assert_eq!(decide(halted, Resume, Source::Manual, 61_000, COOLDOWN), Move(NORMAL));
        assert_eq!(
            decide(halted, Resume, Source::Manual, 60_999, COOLDOWN),
            Decision::Cooldown(Duration::from_millis(1))
        );
        assert_eq!(
            decide(halted, Resume, Source::Manual, 0, Duration::ZERO),
            Move(NORMAL),
            "a clock behind the record"
        );
    }
}
