//! The crate's error type and the problems it reports.

use std::{fmt, path::PathBuf};

use crate::Environment;

/// Everything that can go wrong while loading or validating a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The environment's name (from `INFRA_ENV` or code) is not one of the known ones.
    #[error("unknown environment `{name}` in {origin}; valid environments: {}", crate::environment::valid_names())]
    UnknownEnvironment {
        /// What was given.
        name: String,
        /// Where it was given, e.g. "environment variable `INFRA_ENV`".
        origin: String,
    },
    /// A config file was asked for explicitly (in code or with `INFRA_CONFIG`) but does not exist.
    #[error("config file `{}` does not exist (named by {origin})", path.display())]
    MissingFile {
        /// The path that was looked at.
        path: PathBuf,
        /// Who asked for it.
        origin: String,
    },
    /// The merged configuration has problems; every one of them is listed.
    #[error("invalid {environment} configuration ({} problem{}):\n{problems}", problems.len(), if problems.len() == 1 { "" } else { "s" })]
    Invalid {
        /// The environment being loaded.
        environment: Environment,
        /// Every problem found, in key order.
        problems: Problems,
    },
    /// A section built in code ([`StateConfig::validate`](crate::StateConfig::validate),
    /// [`EventsConfig::validate`](crate::EventsConfig::validate)) has problems; every one of them
    /// is listed, keys prefixed with the section's name as in a file.
    #[error("invalid `{section}` section ({} problem{}):\n{problems}", problems.len(), if problems.len() == 1 { "" } else { "s" })]
    InvalidSection {
        /// The section's name: `state` or `events`.
        section: &'static str,
        /// Every problem found.
        problems: Problems,
    },
}

impl ConfigError {
    /// The individual problems of an [`ConfigError::Invalid`] or [`ConfigError::InvalidSection`]
    /// error (empty for the others).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid { problems, .. } | Self::InvalidSection { problems, .. } => &problems.0,
            _ => &[],
        }
    }
}

/// The list of problems carried by [`ConfigError::Invalid`] and [`ConfigError::InvalidSection`];
/// displays one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

/// What kind of problem a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A key that no section has (often a typo).
    UnknownKey,
    /// A value of the wrong type (a string where a number belongs).
    WrongType,
    /// A required value is absent.
    Missing,
    /// A value of the right type but unusable shape (a bad URL, a bad namespace).
    Malformed,
    /// A number outside its allowed range, or with the wrong sign.
    OutOfRange,
    /// A source could not be read at all (a TOML syntax error).
    Unreadable,
    /// A value that is valid alone but not with another one (durable events on the memory
    /// backend).
    Conflict,
}

/// Where a value came from, so that a problem can be fixed where it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The built-in preset of an environment.
    Preset(Environment),
    /// A TOML file; `key` is the full dotted path in the file (`production.state.redis_url`).
    File {
        /// The file.
        path: PathBuf,
        /// The key inside it.
        key: String,
    },
    /// An environment variable, e.g. `INFRA_STATE__REDIS_URL`.
    EnvVar(String),
    /// An explicit override made in code.
    Override,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Preset(env) => write!(f, "the {env} preset"),
            Self::File { path, key } if key.is_empty() => write!(f, "file `{}`", path.display()),
            Self::File { path, key } => write!(f, "file `{}`, key `{key}`", path.display()),
            Self::EnvVar(name) => write!(f, "environment variable `{name}`"),
            Self::Override => f.write_str("an override in code"),
        }
    }
}

/// One thing wrong with a configuration: which key, what is wrong, and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key in the merged configuration (`state.redis_url`).
    pub key: String,
    /// The kind of problem.
    pub kind: ProblemKind,
    /// What is wrong, in words. Never contains a secret.
    pub message: String,
    /// The key whose origin explains the problem; usually `key` itself, but for a missing
    /// value it is the key that made it required (`state.backend` for `state.redis_url`).
    pub origin_key: String,
    /// Where `origin_key`'s value came from, when known.
    pub origin: Option<Origin>,
}

impl Problem {
    pub(crate) fn new(key: impl Into<String>, kind: ProblemKind, message: impl Into<String>) -> Self {
        let key = key.into();
        Self {
            origin_key: key.clone(),
            key,
            kind,
            message: crate::secret::redact_urls_in(&message.into()),
            origin: None,
        }
    }

    pub(crate) fn caused_by(mut self, origin_key: impl Into<String>) -> Self {
        self.origin_key = origin_key.into();
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)?;
        } else {
            write!(f, "`{}`: {}", self.key, self.message)?;
        }
        match &self.origin {
            Some(origin) if self.origin_key == self.key => write!(f, " (set by {origin})"),
            Some(origin) => write!(f, " (`{}` set by {origin})", self.origin_key),
            None => Ok(()),
        }
    }
}
