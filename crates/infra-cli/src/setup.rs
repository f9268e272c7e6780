//! From the global options to a loaded configuration and an assembled infrastructure.

use std::collections::BTreeMap;

use infra_facade::{
    Infrastructure,
    config::{Backend, Config, ConfigError, ConfigLoader, LogFormat, Origin},
    emergency::ControllerOptions,
};

use crate::{cli::Global, error::CliError};

/// Prefix of the heartbeat version of infractl's own controller, so that the fleet view can
/// leave it out.
pub(crate) const CONTROLLER_VERSION_PREFIX: &str = "infractl ";

/// The configuration with where each value came from.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) config: Config,
    /// Every key holding a value, with its source in words (`--redis-url`, a variable, a file).
    pub(crate) origins: BTreeMap<String, String>,
}

/// Loads the configuration the global options describe: the environment's preset, the file,
/// the `INFRA_...` variables, then the options themselves. Any problem is a usage error (the
/// message names the key and where its value came from).
pub(crate) fn load_config(global: &Global) -> Result<Loaded, CliError> {
    let mut loader = ConfigLoader::new();
    if let Some(environment) = global.env {
        loader = loader.environment(environment);
    }
    if let Some(path) = &global.config {
        loader = loader.file(path);
    }
    let mut flags: Vec<(&str, &str)> = Vec::new();
    if let Some(url) = &global.redis_url {
        for section in ["state", "events"] {
            loader = loader.set(format!("{section}.backend"), Backend::Redis.as_str());
            loader = loader.set(format!("{section}.redis_url"), url.as_str());
        }
        flags.extend([
            ("state.backend", "--redis-url"),
            ("state.redis_url", "--redis-url"),
            ("events.backend", "--redis-url"),
            ("events.redis_url", "--redis-url"),
        ]);
    }
    if let Some(namespace) = &global.namespace {
        for section in ["state", "events"] {
            loader = loader.set(format!("{section}.namespace"), namespace.as_str());
        }
        flags.extend([("state.namespace", "--namespace"), ("events.namespace", "--namespace")]);
    }
    let (config, origins) = loader.load_with_origins().map_err(config_error)?;
    let origins = origins
        .into_iter()
        .map(|(key, origin)| {
            let text = match (&origin, flags.iter().find(|(k, _)| *k == key)) {
                (Origin::Override, Some((_, flag))) => format!("command-line option `{flag}`"),
                _ => origin.to_string(),
            };
            (key, text)
        })
        .collect();
    Ok(Loaded { config, origins })
}

/// A configuration that cannot be loaded is a usage error: the invocation (its options, its
/// variables, its file) has to change.
fn config_error(error: ConfigError) -> CliError {
    CliError::Usage(format!("cannot load the configuration: {}", crate::error::chain(&error)))
}

/// How the infrastructure of a command is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Connect {
    /// Connect at start: an unreachable Redis fails the command (exit code 1).
    Now,
    /// Connect on first use (health reports an unreachable Redis instead of failing).
    Lazily,
}

/// Assembles the stack of `config` for one command.
///
/// infractl is not a bot: its emergency controller (which makes transitions and reads the
/// audit log) serves a bot ID of its own, `infractl-<pid>`, so that its heartbeat never
/// replaces a real bot's; the bot a command looks at by default stays `emergency.bot_id`. Logs
/// go to stderr (stdout is the output) as console text, warnings and errors only unless
/// `verbose` (then at the configured level).
pub(crate) async fn build(config: &Config, connect: Connect, verbose: bool) -> Result<Infrastructure, CliError> {
    let mut config = config.clone();
    config.emergency.bot_id = format!("infractl-{}", std::process::id());
    // A bot's `metrics.listen` is the bot's: a command sharing its configuration must not take
    // the port (`infractl metrics` serves on its own).
    config.metrics.listen = None;
    config.logging.format = LogFormat::Console;
    if !verbose {
        "warn".clone_into(&mut config.logging.level);
    }
    let options = ControllerOptions::default()
        .version(format!("{CONTROLLER_VERSION_PREFIX}{}", env!("CARGO_PKG_VERSION")))
        // Not a bot: no `infra_emergency_state` series of its own.
        .bot_gauges(false);
    let mut builder = Infrastructure::builder(config.clone()).controller_options(options).log_writer(std::io::stderr());
    if connect == Connect::Lazily {
        builder = builder.lazy_connect();
    }
    builder.build().await.map_err(|error| {
        let urls = redis_urls(&config);
        let at = if urls.is_empty() { String::new() } else { format!(" (redis at {urls})") };
        CliError::runtime(format!("cannot start{at}"), &error)
    })
}

/// The Redis URLs of `config`, redacted, for error messages.
fn redis_urls(config: &Config) -> String {
    let mut urls: Vec<String> =
        [&config.state.redis_url, &config.events.redis_url].into_iter().flatten().map(ToString::to_string).collect();
    urls.dedup();
    urls.join(", ")
}

/// Closes the infrastructure after a command. A failure to close does not change an outcome
/// already printed; the facade logs it (a warning, on stderr).
pub(crate) async fn close(infrastructure: Infrastructure) {
    let _ = infrastructure.close().await;
}
