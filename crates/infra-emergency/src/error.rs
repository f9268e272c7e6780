//! The crate's error type.

use std::time::Duration;

use crate::{Action, EmergencyState, Scope, Source};

/// Everything the emergency controller can refuse or fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmergencyError {
    /// [`assert_can_trade`](crate::EmergencyController::assert_can_trade): new orders are not
    /// allowed now.
    #[error("trading refused: {state} imposed by the {scope} scope: {reason}")]
    TradingRefused {
        /// The effective state.
        state: EmergencyState,
        /// The scope that imposes it (global wins a tie).
        scope: Scope,
        /// Why (the reason of the transition, or `state unavailable`).
        reason: String,
    },
    /// [`assert_can_reduce`](crate::EmergencyController::assert_can_reduce): not even cancels
    /// and risk-reducing exits are allowed (SHUTDOWN).
    #[error("reducing refused: {state} imposed by the {scope} scope: {reason}")]
    ReduceRefused {
        /// The effective state.
        state: EmergencyState,
        /// The scope that imposes it.
        scope: Scope,
        /// Why.
        reason: String,
    },
    /// The transition table refuses this action in this state.
    #[error("{action} refused on the {scope} scope in {from}: {why}")]
    TransitionRefused {
        /// The scope.
        scope: Scope,
        /// Its current state.
        from: EmergencyState,
        /// The requested action.
        action: Action,
        /// The table's reason.
        why: &'static str,
    },
    /// The table allows this action, but not from this source (a rule cannot resume).
    #[error("{action} refused on the {scope} scope in {from}: a {origin} request may not do it")]
    SourceNotAllowed {
        /// The scope.
        scope: Scope,
        /// Its current state.
        from: EmergencyState,
        /// The requested action.
        action: Action,
        /// Who asked.
        origin: Source,
    },
    /// A resume before the configured cooldown has passed since the halt.
    #[error("resume refused on the {scope} scope: the cooldown of {cooldown:?} since the halt has {remaining:?} left")]
    CooldownActive {
        /// The scope.
        scope: Scope,
        /// The configured cooldown.
        cooldown: Duration,
        /// Time left.
        remaining: Duration,
    },
    /// A bot ID that is not usable.
    #[error("invalid bot id `{id}`: {why}")]
    InvalidBotId {
        /// The ID as given (cut to 80 characters).
        id: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A scope text that is neither `global` nor `bot:<id>`.
    #[error("invalid scope `{scope}`: expected `global` or `bot:<id>`")]
    InvalidScope {
        /// The text (cut to 80 characters).
        scope: String,
    },
    /// A risk limit check with unusable numbers or name.
    #[error("invalid risk limit `{name}`: {why}")]
    InvalidLimit {
        /// The limit's name (cut to 80 characters).
        name: String,
        /// What is wrong.
        why: String,
    },
    /// An argument that is not usable (an empty actor or reason).
    #[error("invalid {what}: {why}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// A configuration value the controller cannot work with.
    #[error("invalid emergency configuration `{field}`: {why}")]
    InvalidConfig {
        /// The configuration key.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The state store failed; for a transition, nothing was persisted unless stated otherwise.
    #[error("the emergency state store failed while {doing}")]
    Store {
        /// What the controller was doing.
        doing: String,
        /// The store's error.
        #[source]
        source: infra_state::StateError,
    },
    /// A stored record does not decode.
    #[error("the emergency record `{key}` is corrupt")]
    Corrupt {
        /// Its key (under the store's namespace).
        key: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Too many conflicting transitions on one scope in a row.
    #[error("too many conflicting transitions on the {scope} scope ({attempts} attempts)")]
    Contended {
        /// The scope.
        scope: Scope,
        /// Attempts made.
        attempts: u32,
    },
    /// Building the configured store or bus failed.
    #[error("cannot build the emergency controller's {what} from the configuration")]
    Backend {
        /// `state store` or `event bus`.
        what: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// [`EmergencyController::start`](crate::EmergencyController::start) was called outside a
    /// tokio runtime, which its background task needs.
    #[error("the emergency controller needs a tokio runtime: start it from inside one")]
    NoRuntime,
    /// The controller was closed.
    #[error("the emergency controller is closed")]
    Closed,
}

impl EmergencyError {
    /// A store error while doing `doing`.
    pub(crate) fn store(doing: impl Into<String>, source: infra_state::StateError) -> Self {
        Self::Store { doing: doing.into(), source }
    }
}
