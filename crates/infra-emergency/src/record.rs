//! The audit record of a transition, and the keys records live under.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Action, EmergencyState, Scope, Source};

/// One transition of one scope, exactly as stored (JSON) and published.
///
/// `seq` numbers the transitions of a scope from 1 without gaps: the record with sequence `n`
/// is written once, by the transition that claimed `n` (see the crate documentation), so there
/// is exactly one record per real transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditRecord {
    /// Position in the scope's log, from 1.
    pub seq: u64,
    /// The scope that moved.
    pub scope: Scope,
    /// Its state before.
    pub from: EmergencyState,
    /// Its state after.
    pub to: EmergencyState,
    /// What was asked.
    pub action: Action,
    /// Who asked: a rule, a person, the controller itself.
    pub source: Source,
    /// The person or rule (`rule:<limit name>`).
    pub actor: String,
    /// Why, in words.
    pub reason: String,
    /// Metric values behind a rule's decision (value and limit), empty otherwise.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The bot whose controller wrote it.
    pub by_bot: String,
    /// The host it ran on.
    pub host: String,
}

impl AuditRecord {
    /// The state this record leaves its scope in.
    pub fn state(&self) -> EmergencyState {
        self.to
    }
}

/// Every key of this crate starts with this, under the store's namespace.
pub(crate) const PREFIX: &str = "emergency";

/// `emergency:state:<scope>`: a copy of the scope's latest record, a pointer into its log.
pub(crate) fn state_key(scope: &Scope) -> String {
    format!("{PREFIX}:state:{scope}")
}

/// `emergency:audit:<scope>:<seq, 20 digits>`: the log entry `seq` of `scope` (zero-padded so
/// keys sort by sequence).
pub(crate) fn audit_key(scope: &Scope, seq: u64) -> String {
    format!("{PREFIX}:audit:{scope}:{seq:020}")
}

/// `emergency:heartbeat:<bot>`.
pub(crate) fn heartbeat_key(bot: &str) -> String {
    format!("{PREFIX}:heartbeat:{bot}")
}

/// The prefix of every heartbeat key.
pub(crate) fn heartbeat_prefix() -> String {
    format!("{PREFIX}:heartbeat:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_sequence_and_records_round_trip() {
        let scope = Scope::bot("b1").unwrap();
        assert_eq!(state_key(&scope), "emergency:state:bot:b1");
        assert_eq!(audit_key(&Scope::Global, 7), "emergency:audit:global:00000000000000000007");
        assert!(audit_key(&scope, 9) < audit_key(&scope, 10));
        assert_eq!(heartbeat_key("b1"), format!("{}b1", heartbeat_prefix()));
        let record = AuditRecord {
            seq: 1,
            scope,
            from: EmergencyState::Normal,
            to: EmergencyState::Halt,
            action: Action::Halt,
            source: Source::Rule,
            actor: "rule:daily_loss".into(),
            reason: "breached".into(),
            metrics: BTreeMap::from([("daily_loss".to_owned(), -520.0)]),
            at_ms: 1,
            by_bot: "b1".into(),
            host: "h".into(),
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains(r#""to":"HALT""#) && json.contains(r#""source":"rule""#), "{json}");
        assert_eq!(serde_json::from_str::<AuditRecord>(&json).unwrap(), record);
        assert_eq!(record.state(), EmergencyState::Halt);
    }
}
