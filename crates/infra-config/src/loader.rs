//! Layered loading: preset → `infra.toml` → `INFRA_...` variables → overrides, then validation.

use std::path::{Path, PathBuf};

use figment::{
    Figment, Profile, Provider,
    providers::{Env, Format, Serialized, Toml},
    value::{Dict, Map, Value},
};
use serde::Serialize;

use crate::{
    Config, ConfigError, Environment, Origin, Problem, ProblemKind, Problems,
    diagnose::{self, Shape},
    sources::{ENV_PREFIX, ENV_SPLIT, Labeled, origin_from_metadata, origin_of},
    validate,
};

/// Variable that selects the environment.
pub const ENV_VAR_ENVIRONMENT: &str = "INFRA_ENV";
/// Variable that names the config file (instead of `./infra.toml`).
pub const ENV_VAR_CONFIG_FILE: &str = "INFRA_CONFIG";
/// The file read from the working directory when no other is named.
pub const DEFAULT_CONFIG_FILE: &str = "infra.toml";

/// Top-level tables allowed in a config file: shared defaults and one per environment.
const FILE_TABLES: [&str; 4] = ["default", "development", "staging", "production"];

/// Builds a [`Config`] from layers, lowest precedence first:
///
/// 1. the environment's preset ([`Config::for_env`]);
/// 2. a TOML file: `infra.toml` in the working directory if present, or the file named by
///    `INFRA_CONFIG` or [`ConfigLoader::file`] (which must then exist). Its top-level tables are
///    `[default]`, for every environment, and `[development]`, `[staging]`, `[production]`;
///    the selected environment's table wins over `[default]`;
/// 3. environment variables `INFRA_<SECTION>__<KEY>`, `__` separating nested keys
///    (`INFRA_STATE__REDIS_URL`, `INFRA_RESILIENCE__RETRY__MAX_ATTEMPTS`). Every `INFRA_`
///    variable is read as configuration except `INFRA_ENV` and `INFRA_CONFIG`, so a misspelt
///    one is reported instead of being ignored;
/// 4. overrides made in code with [`ConfigLoader::set`].
///
/// `INFRA_ENV` selects the environment unless [`ConfigLoader::environment`] does.
///
/// Loading then validates the merged result and reports every problem at once, each naming its
/// key and where its value came from.
///
/// ```
/// use infra_config::{Backend, Config, Environment};
///
/// let config = Config::loader()
///     .environment(Environment::Production)
///     .without_file()
///     .without_env_vars()
///     .set("state.redis_url", "redis://:secret@cache:6379")
///     .set("events.redis_url", "redis://:secret@cache:6379")
///     .set("emergency.bot_id", "arb-btc-1")
///     .load()?;
/// assert_eq!(config.state.backend, Backend::Redis);
/// assert_eq!(config.emergency.bot_id, "arb-btc-1");
/// assert!(!format!("{config:?}").contains("secret"));
/// # Ok::<(), infra_config::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConfigLoader {
    environment: Option<Environment>,
    file: FileChoice,
    env_vars: bool,
    overrides: Vec<(String, Result<Value, String>)>,
}

#[derive(Debug, Clone, Default)]
enum FileChoice {
    /// `INFRA_CONFIG` if set, else `./infra.toml` if present.
    #[default]
    Default,
    Path(PathBuf),
    None,
}

struct ChosenFile {
    path: PathBuf,
    /// Who named it; `None` for the implicit `./infra.toml`.
    named_by: Option<String>,
}

impl ConfigLoader {
    /// A loader with every layer enabled.
    pub fn new() -> Self {
        Self { env_vars: true, ..Self::default() }
    }

    /// Loads this environment, whatever `INFRA_ENV` says.
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// Reads this TOML file instead of `INFRA_CONFIG` or `./infra.toml`; it must exist.
    pub fn file(mut self, path: impl AsRef<Path>) -> Self {
        self.file = FileChoice::Path(path.as_ref().to_owned());
        self
    }

    /// Reads no file at all.
    pub fn without_file(mut self) -> Self {
        self.file = FileChoice::None;
        self
    }

    /// Ignores every `INFRA_` environment variable, `INFRA_ENV` and `INFRA_CONFIG` included.
    pub fn without_env_vars(mut self) -> Self {
        self.env_vars = false;
        self
    }

    /// Sets `key` (dotted, as in the file: `state.redis_url`) to `value`, above every other layer.
    ///
    /// Pass plain values (strings, numbers, booleans). A [`crate::RedisUrl`] serializes in its
    /// redacted form, so pass a URL as a string.
    pub fn set(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let value = Value::serialize(value).map_err(|e| e.to_string());
        self.overrides.push((key.into(), value));
        self
    }

    /// Merges the layers and validates the result.
    pub fn load(self) -> Result<Config, ConfigError> {
        self.merge().map(|merged| merged.config)
    }

    /// Like [`load`](Self::load), and says where each value came from: every key that holds a
    /// value (dotted, as in the file: `state.redis_url`), in key order, with the layer that set
    /// it. This is what a `config show` prints next to the (redacted) values.
    ///
    /// ```
    /// use infra_config::{Config, Environment, Origin};
    ///
    /// let (config, origins) = Config::loader()
    ///     .environment(Environment::Staging)
    ///     .without_file()
    ///     .without_env_vars()
    ///     .set("state.namespace", "eu")
    ///     .load_with_origins()?;
    /// assert_eq!(config.state.namespace, "eu");
    /// let origin = |key: &str| origins.iter().find(|(k, _)| k == key).map(|(_, o)| o.clone());
    /// assert_eq!(origin("state.namespace"), Some(Origin::Override));
    /// assert_eq!(origin("events.namespace"), Some(Origin::Preset(Environment::Staging)));
    /// # Ok::<(), infra_config::ConfigError>(())
    /// ```
    pub fn load_with_origins(self) -> Result<(Config, Vec<(String, Origin)>), ConfigError> {
        let merged = self.merge()?;
        let mut origins: Vec<(String, Origin)> = merged
            .leaves
            .into_iter()
            .filter_map(|key| origin_of(&merged.figment, &key).map(|origin| (key, origin)))
            .collect();
        origins.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((merged.config, origins))
    }

    /// Merges the layers and validates the result, keeping what [`load_with_origins`](Self::load_with_origins) needs.
    fn merge(self) -> Result<Merged, ConfigError> {
        let environment = self.resolve_environment()?;
        let file = self.resolve_file()?;
        let preset = Config::for_env(environment);
        let mut problems = Vec::new();

        let mut figment = Figment::from(Labeled::preset(Serialized::defaults(&preset), environment));
        if let Some(file) = &file {
            // Parsed once, then handed to figment as is.
            let tables = Toml::file_exact(&file.path)
                .nested()
                .data()
                .map_err(|error| invalid(environment, unreadable(error, &file.path)))?;
            for table in tables.keys().filter(|t| !FILE_TABLES.contains(&t.as_str().as_str())) {
                problems.push(unknown_table(&file.path, table));
            }
            figment = figment.merge(Labeled::file(Parsed(tables), &file.path));
        }
        if self.env_vars {
            let env = Env::prefixed(ENV_PREFIX).ignore(&["ENV", "CONFIG"]).split(ENV_SPLIT).global();
            figment = figment.merge(Labeled::env(env));
        }
        for (key, value) in self.overrides {
            match value {
                Ok(value) => figment = figment.merge(Labeled::override_(Serialized::global(&key, value))),
                Err(error) => problems.push(Problem::new(
                    key,
                    ProblemKind::WrongType,
                    format!("override cannot be represented: {error}"),
                )),
            }
        }
        let figment = figment.select(environment.as_str());

        let merged = match figment.find_value("") {
            Ok(merged) => merged,
            Err(error) => return Err(invalid(environment, figment_problems(error))),
        };
        let schema = Value::serialize(&preset).map_err(|e| {
            invalid(environment, vec![Problem::new("", ProblemKind::Unreadable, format!("preset: {e}"))])
        })?;
        let shape = diagnose::shape(&merged, &schema);
        problems.extend(shape.unknown.iter().map(|unknown| {
            let message = match &unknown.suggestion {
                Some(suggestion) => format!("unknown key; did you mean `{suggestion}`?"),
                None => "unknown key".to_owned(),
            };
            Problem::new(&unknown.key, ProblemKind::UnknownKey, message)
        }));

        let (config, bad_keys) = match figment.extract::<Config>() {
            Ok(config) => (config, Vec::new()),
            Err(_) => {
                let (config, mut type_problems) = recover(&preset, environment, &merged, &shape)?;
                let bad = type_problems.iter().map(|p| p.key.clone()).collect();
                problems.append(&mut type_problems);
                (config, bad)
            }
        };
        let mut config = config;
        config.environment = environment;
        problems.extend(
            validate::problems(&config)
                .into_iter()
                .filter(|p| !bad_keys.contains(&p.key) && !bad_keys.contains(&p.origin_key)),
        );

        if problems.is_empty() {
            return Ok(Merged { config, figment, leaves: shape.leaves });
        }
        for problem in &mut problems {
            if problem.origin.is_none() && !problem.origin_key.is_empty() {
                problem.origin = origin_of(&figment, &problem.origin_key);
            }
        }
        problems.sort_by(|a, b| a.key.cmp(&b.key));
        Err(invalid(environment, problems))
    }

    fn resolve_environment(&self) -> Result<Environment, ConfigError> {
        if let Some(environment) = self.environment {
            return Ok(environment);
        }
        if !self.env_vars {
            return Ok(Environment::default());
        }
        match std::env::var(ENV_VAR_ENVIRONMENT) {
            Ok(name) => parse_environment(&name, &format!("environment variable `{ENV_VAR_ENVIRONMENT}`")),
            Err(_) => Ok(Environment::default()),
        }
    }

    fn resolve_file(&self) -> Result<Option<ChosenFile>, ConfigError> {
        let chosen = match &self.file {
            FileChoice::None => return Ok(None),
            FileChoice::Path(path) => {
                ChosenFile { path: path.clone(), named_by: Some("ConfigLoader::file".to_owned()) }
            }
            FileChoice::Default => match std::env::var_os(ENV_VAR_CONFIG_FILE).filter(|_| self.env_vars) {
                Some(path) => ChosenFile {
                    path: PathBuf::from(path),
                    named_by: Some(format!("environment variable `{ENV_VAR_CONFIG_FILE}`")),
                },
                None => ChosenFile { path: PathBuf::from(DEFAULT_CONFIG_FILE), named_by: None },
            },
        };
        if chosen.path.is_file() {
            return Ok(Some(chosen));
        }
        match chosen.named_by {
            Some(origin) => Err(ConfigError::MissingFile { path: chosen.path, origin }),
            None => Ok(None),
        }
    }
}

/// A loaded configuration with the merged layers and the keys that hold a value.
struct Merged {
    config: Config,
    figment: Figment,
    leaves: Vec<String>,
}

/// Parses an environment's name given by `origin` (a variable, an argument), for the error.
pub(crate) fn parse_environment(name: &str, origin: &str) -> Result<Environment, ConfigError> {
    name.parse().map_err(|_| ConfigError::UnknownEnvironment { name: name.to_owned(), origin: origin.to_owned() })
}

/// Finds which leaves fail to deserialize, each on its own over the preset, so that every type
/// problem is reported rather than only serde's first; then extracts the rest so semantic checks
/// still run on the values that are fine.
fn recover(
    preset: &Config,
    environment: Environment,
    merged: &Value,
    shape: &Shape,
) -> Result<(Config, Vec<Problem>), ConfigError> {
    let base = || Figment::from(Serialized::defaults(preset)).select(environment.as_str());
    let mut problems = Vec::new();
    let mut good = merged.clone();
    for key in &shape.leaves {
        let Some(value) = merged.find_ref(key) else { continue };
        if let Err(error) = base().merge(Serialized::global(key, value)).extract::<Config>() {
            problems.push(Problem::new(key, ProblemKind::WrongType, error.kind.to_string()));
            diagnose::remove(&mut good, key);
        }
    }
    for unknown in &shape.unknown {
        diagnose::remove(&mut good, &unknown.key);
    }
    match base().merge(Serialized::globals(&good)).extract::<Config>() {
        Ok(config) => Ok((config, problems)),
        // Each leaf passed alone but not together: report serde's own words rather than guess.
        Err(error) => {
            problems.extend(figment_problems(error));
            Err(invalid(environment, problems))
        }
    }
}

/// Values already read from a source.
struct Parsed(Map<Profile, Dict>);

impl Provider for Parsed {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("parsed")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(self.0.clone())
    }
}

fn invalid(environment: Environment, mut problems: Vec<Problem>) -> ConfigError {
    problems.sort_by(|a, b| a.key.cmp(&b.key));
    ConfigError::Invalid { environment, problems: Problems(problems) }
}

fn unknown_table(path: &Path, table: &Profile) -> Problem {
    let mut problem = Problem::new(
        table.as_str().as_str(),
        ProblemKind::UnknownKey,
        format!(
            "unknown top-level table; the tables of a config file are {}, with sections inside them \
             (e.g. `[production.state]`)",
            FILE_TABLES.join(", ")
        ),
    );
    problem.origin = Some(Origin::File { path: path.to_owned(), key: table.as_str().to_string() });
    problem
}

fn unreadable(error: figment::Error, path: &Path) -> Vec<Problem> {
    error
        .into_iter()
        .map(|e| {
            let mut problem =
                Problem::new("", ProblemKind::Unreadable, format!("cannot read `{}`: {}", path.display(), e.kind));
            problem.origin_key = String::new();
            problem
        })
        .collect()
}

/// Converts figment's own errors, keeping their key and source.
fn figment_problems(error: figment::Error) -> Vec<Problem> {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let mut problem = Problem::new(&key, ProblemKind::WrongType, e.kind.to_string());
            if let Some(metadata) = &e.metadata {
                problem.origin = origin_from_metadata(metadata, e.profile.clone().unwrap_or_default(), &key);
            }
            problem
        })
        .collect()
}
