//! The deployment environments and their names.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Where the stack runs. Each environment has a preset (see [`crate::Config::for_env`]) and a
/// table of its own in `infra.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Memory backends and console logs: nothing to install.
    Development,
    /// A local Redis, JSON logs, a fail-closed emergency controller that halts on its limits.
    Staging,
    /// Redis, JSON logs, a fail-closed emergency controller that halts on its limits.
    Production,
}

impl Environment {
    /// Every environment, in promotion order.
    pub const ALL: [Self; 3] = [Self::Development, Self::Staging, Self::Production];

    /// The canonical lowercase name, also the name of its table in `infra.toml`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Staging => "staging",
            Self::Production => "production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The canonical names, comma-separated, for error messages.
pub(crate) fn valid_names() -> String {
    Environment::ALL.map(Environment::as_str).join(", ")
}

/// A string that names no environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown environment `{name}`; valid environments: {}", valid_names())]
pub struct UnknownEnvironment {
    /// What was given.
    pub name: String,
}

impl FromStr for Environment {
    type Err = UnknownEnvironment;

    /// Accepts the canonical names and the usual short forms (`dev`, `stage`, `prod`), in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Self::Development),
            "staging" | "stage" => Ok(Self::Staging),
            "production" | "prod" => Ok(Self::Production),
            _ => Err(UnknownEnvironment { name: s.to_owned() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_short_forms_in_any_case() {
        assert_eq!("production".parse(), Ok(Environment::Production));
        assert_eq!(" PROD ".parse(), Ok(Environment::Production));
        assert_eq!("Staging".parse(), Ok(Environment::Staging));
        assert_eq!("dev".parse(), Ok(Environment::Development));
        for env in Environment::ALL {
            assert_eq!(env.as_str().parse(), Ok(env));
            assert_eq!(env.to_string(), env.as_str());
        }
    }

    #[test]
    fn rejects_unknown_names_listing_the_valid_ones() {
        let err = "prodution".parse::<Environment>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown environment `prodution`; valid environments: development, staging, production"
        );
    }
}
