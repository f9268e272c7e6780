//! The vocabulary: states, scopes, sources and actions.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::EmergencyError;

/// How far trading is restricted, from least to most strict (the order is `Ord`).
///
/// | state | new orders ([`can_trade`](EmergencyState::can_trade)) | cancels and risk-reducing exits ([`can_reduce`](EmergencyState::can_reduce)) |
/// |---|---|---|
/// | `NORMAL` | yes | yes |
/// | `ALERT` | yes (a limit is close: watch it) | yes |
/// | `HALT` | no | yes |
/// | `SHUTDOWN` | no | no |
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[repr(u8)]
pub enum EmergencyState {
    /// Trading as usual.
    Normal = 0,
    /// Trading, but a limit is near (or an operator raised an alert).
    Alert = 1,
    /// No new risk: only cancels and risk-reducing exits. Lifted only by a manual resume.
    Halt = 2,
    /// Nothing at all. Lifted only by an explicit re-arm (which leaves the scope halted).
    Shutdown = 3,
}

impl EmergencyState {
    /// Every state, least strict first.
    pub const ALL: [Self; 4] = [Self::Normal, Self::Alert, Self::Halt, Self::Shutdown];

    /// Whether new orders may be sent: `NORMAL` and `ALERT`.
    pub const fn can_trade(self) -> bool {
        matches!(self, Self::Normal | Self::Alert)
    }

    /// Whether cancels and risk-reducing exits may be sent: every state but `SHUTDOWN`.
    pub const fn can_reduce(self) -> bool {
        !matches!(self, Self::Shutdown)
    }

    /// The name as written in records: `NORMAL`, `ALERT`, `HALT`, `SHUTDOWN`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Alert => "ALERT",
            Self::Halt => "HALT",
            Self::Shutdown => "SHUTDOWN",
        }
    }

    /// The state stored as `value` in the controller's atomic (anything above 3 is SHUTDOWN,
    /// the strictest answer).
    pub(crate) const fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Normal,
            1 => Self::Alert,
            2 => Self::Halt,
            _ => Self::Shutdown,
        }
    }
}

impl fmt::Display for EmergencyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a state applies: the whole namespace, or one bot. A bot's effective state is the
/// stricter of its own and the global one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every bot of the namespace.
    Global,
    /// One bot, by its `bot_id`.
    Bot(String),
}

impl Scope {
    /// The scope of bot `id`, checked like `emergency.bot_id` in the configuration: letters,
    /// digits, `_`, `-` and `.`, 1 to 64 characters.
    pub fn bot(id: impl Into<String>) -> Result<Self, EmergencyError> {
        let id = id.into();
        check_bot_id(&id)?;
        Ok(Self::Bot(id))
    }

    /// The scope as written in keys and records: `global` or `bot:<id>`.
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// Whether this is [`Scope::Global`].
    pub fn is_global(&self) -> bool {
        matches!(self, Self::Global)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Global => f.write_str("global"),
            Self::Bot(id) => write!(f, "bot:{id}"),
        }
    }
}

impl FromStr for Scope {
    type Err = EmergencyError;

    /// Reads `global` or `bot:<id>`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "global" => Ok(Self::Global),
            _ => match text.strip_prefix("bot:") {
                Some(id) => Self::bot(id),
                None => Err(EmergencyError::InvalidScope { scope: text.chars().take(80).collect() }),
            },
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Checks a bot ID: letters, digits, `_`, `-` and `.`, 1 to 64 characters.
pub(crate) fn check_bot_id(id: &str) -> Result<(), EmergencyError> {
    let why = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > 64 {
        Some("it is longer than 64 characters")
    } else if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        Some("only letters, digits, `_`, `-` and `.` are allowed")
    } else {
        None
    };
    match why {
        Some(why) => Err(EmergencyError::InvalidBotId { id: id.chars().take(80).collect(), why }),
        None => Ok(()),
    }
}

/// Who or what asked for a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A risk rule ([`check_risk_limit`](crate::EmergencyController::check_risk_limit)).
    Rule,
    /// A person (an operator, through an API, a CLI, a chat command).
    Manual,
    /// The controller itself (for instance a corrupt record replaced by a halt).
    System,
}

impl Source {
    /// `rule`, `manual` or `system`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rule => "rule",
            Self::Manual => "manual",
            Self::System => "system",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a transition request asks for; the [transition table](crate::table) decides, from the
/// current state, whether it moves the scope, leaves it as it is, or is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Raise an alert (→ `ALERT`).
    Alert,
    /// Clear an alert (→ `NORMAL`).
    ClearAlert,
    /// Stop new risk (→ `HALT`).
    Halt,
    /// Lift an alert or a halt (→ `NORMAL`): manual only.
    Resume,
    /// Stop everything (→ `SHUTDOWN`).
    Shutdown,
    /// Acknowledge a shutdown (→ `HALT`): manual only; trading then needs a resume.
    Rearm,
}

impl Action {
    /// Every action, in table order.
    pub const ALL: [Self; 6] = [Self::Alert, Self::ClearAlert, Self::Halt, Self::Resume, Self::Shutdown, Self::Rearm];

    /// The state this action moves a scope to when the table allows it.
    pub const fn target(self) -> EmergencyState {
        match self {
            Self::Alert => EmergencyState::Alert,
            Self::ClearAlert | Self::Resume => EmergencyState::Normal,
            Self::Halt | Self::Rearm => EmergencyState::Halt,
            Self::Shutdown => EmergencyState::Shutdown,
        }
    }

    /// The name as written in records: `alert`, `clear_alert`, `halt`, `resume`, `shutdown`,
    /// `rearm`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Alert => "alert",
            Self::ClearAlert => "clear_alert",
            Self::Halt => "halt",
            Self::Resume => "resume",
            Self::Shutdown => "shutdown",
            Self::Rearm => "rearm",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_ordered_by_strictness_and_gate_trading() {
        assert!(EmergencyState::Normal < EmergencyState::Alert);
        assert!(EmergencyState::Halt < EmergencyState::Shutdown);
        let gates: Vec<(bool, bool)> = EmergencyState::ALL.iter().map(|s| (s.can_trade(), s.can_reduce())).collect();
        assert_eq!(gates, [(true, true), (true, true), (false, true), (false, false)]);
        for state in EmergencyState::ALL {
            assert_eq!(EmergencyState::from_u8(state as u8), state);
        }
        assert_eq!(EmergencyState::from_u8(200), EmergencyState::Shutdown);
        assert_eq!(serde_json::to_string(&EmergencyState::Halt).unwrap(), "\"HALT\"");
    }

    #[test]
    fn scopes_round_trip_and_reject_bad_ids() {
        for scope in [Scope::Global, Scope::bot("arb-btc.1_x").unwrap()] {
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
            assert_eq!(scope.key().parse::<Scope>().unwrap(), scope);
        }
        assert_eq!(Scope::bot("").unwrap_err().to_string(), "invalid bot id ``: it is empty");
        assert_eq!(
            Scope::bot("a b").unwrap_err().to_string(),
            "invalid bot id `a b`: only letters, digits, `_`, `-` and `.` are allowed"
        );
        assert!(Scope::bot("x".repeat(65)).is_err());
        assert_eq!(
            "desk".parse::<Scope>().unwrap_err().to_string(),
            "invalid scope `desk`: expected `global` or `bot:<id>`"
        );
        assert!(serde_json::from_str::<Scope>("\"bot:\"").is_err());
    }

    #[test]
    fn actions_name_their_target() {
        let targets: Vec<&str> = Action::ALL.iter().map(|a| a.target().as_str()).collect();
        assert_eq!(targets, ["ALERT", "NORMAL", "HALT", "NORMAL", "SHUTDOWN", "HALT"]);
        assert_eq!(serde_json::to_string(&Action::ClearAlert).unwrap(), "\"clear_alert\"");
        assert_eq!(Source::Manual.to_string(), "manual");
    }
}
