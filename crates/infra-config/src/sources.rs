//! The layers a configuration is merged from, labelled so that every value can say where it came
//! from.

use std::path::{Path, PathBuf};

use figment::{
    Figment, Metadata, Profile, Provider, Source,
    value::{Dict, Map},
};

use crate::{Environment, Origin};

/// Prefix of every environment variable read as configuration.
pub(crate) const ENV_PREFIX: &str = "INFRA_";
/// Separator of nested keys in environment variable names.
pub(crate) const ENV_SPLIT: &str = "__";

const PRESET: &str = "infra preset ";
const FILE: &str = "infra config file";
const ENV: &str = "infra environment variable";
const OVERRIDE: &str = "infra override in code";

/// A provider whose metadata we control, so that [`origin_of`] can tell the layers apart and
/// name environment variables exactly as they were written.
pub(crate) struct Labeled<P> {
    inner: P,
    metadata: fn(&Self) -> Metadata,
    path: Option<PathBuf>,
    environment: Environment,
}

impl<P: Provider> Labeled<P> {
    pub(crate) fn preset(inner: P, environment: Environment) -> Self {
        Self {
            inner,
            metadata: |this| Metadata::named(format!("{PRESET}{}", this.environment)),
            path: None,
            environment,
        }
    }

    pub(crate) fn file(inner: P, path: &Path) -> Self {
        Self {
            inner,
            metadata: |this| {
                let path = this.path.clone().unwrap_or_default();
                Metadata::from(FILE, Source::File(path))
                    .interpolater(|profile: &Profile, keys: &[&str]| format!("{}.{}", profile.as_str(), keys.join(".")))
            },
            path: Some(path.to_owned()),
            environment: Environment::Development,
        }
    }

    pub(crate) fn env(inner: P) -> Self {
        Self {
            inner,
            metadata: |_| {
                Metadata::named(ENV).interpolater(|_: &Profile, keys: &[&str]| {
                    let upper: Vec<String> = keys.iter().map(|k| k.to_ascii_uppercase()).collect();
                    format!("{ENV_PREFIX}{}", upper.join(ENV_SPLIT))
                })
            },
            path: None,
            environment: Environment::Development,
        }
    }

    pub(crate) fn override_(inner: P) -> Self {
        Self { inner, metadata: |_| Metadata::named(OVERRIDE), path: None, environment: Environment::Development }
    }
}

impl<P: Provider> Provider for Labeled<P> {
    fn metadata(&self) -> Metadata {
        (self.metadata)(self)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.inner.data()
    }

    fn profile(&self) -> Option<Profile> {
        self.inner.profile()
    }
}

/// Where the value at `key` (dotted) of the merged configuration came from.
pub(crate) fn origin_of(figment: &Figment, key: &str) -> Option<Origin> {
    let value = figment.find_value(key).ok()?;
    let metadata = figment.get_metadata(value.tag())?;
    // A tag only knows "default", "global" or "custom"; the one custom profile in a merged
    // figment is the selected one.
    let profile = value.tag().profile().unwrap_or_else(|| figment.profile().clone());
    origin_from_metadata(metadata, profile, key)
}

/// Turns a layer's metadata back into an [`Origin`] for the value at `key`.
pub(crate) fn origin_from_metadata(metadata: &Metadata, profile: Profile, key: &str) -> Option<Origin> {
    let keys: Vec<&str> = if key.is_empty() { Vec::new() } else { key.split('.').collect() };
    let name = metadata.name.as_ref();
    if let Some(environment) = name.strip_prefix(PRESET) {
        return environment.parse().ok().map(Origin::Preset);
    }
    match name {
        FILE => {
            let path = match &metadata.source {
                Some(Source::File(path)) => path.clone(),
                _ => PathBuf::new(),
            };
            let key =
                if keys.is_empty() { profile.as_str().to_string() } else { metadata.interpolate(&profile, &keys) };
            Some(Origin::File { path, key })
        }
        ENV => Some(Origin::EnvVar(metadata.interpolate(&profile, &keys))),
        OVERRIDE => Some(Origin::Override),
        _ => None,
    }
}
