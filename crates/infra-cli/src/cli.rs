//! The command line, as clap reads it.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use infra_facade::config::Environment;

use crate::{duration::parse_duration, output::Format};

/// The operator's command line for the infra stack: state, events, the emergency kill switch,
/// the effective configuration and health.
///
/// Configuration comes from the environment's preset, `infra.toml` (or `--config`/`INFRA_CONFIG`),
/// the `INFRA_...` variables, then these options. Exit codes: 0 ok, 1 runtime failure, 2 usage
/// error.
#[derive(Debug, Parser)]
#[command(name = "infractl", version)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// The environment: development, staging or production (default: `INFRA_ENV`, else
    /// development).
    #[arg(long, global = true, value_name = "NAME", value_parser = parse_environment)]
    pub(crate) env: Option<Environment>,
    /// The TOML config file (default: `INFRA_CONFIG`, else `./infra.toml` if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Use Redis at URL for both state and events (sets their backend and `redis_url`).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) redis_url: Option<String>,
    /// The namespace of state keys and event channels.
    #[arg(long, global = true, value_name = "NS")]
    pub(crate) namespace: Option<String>,
    /// Output: text (default on a terminal) or json (JSON lines, the default otherwise).
    #[arg(short, long, global = true, value_enum, value_name = "FORMAT")]
    pub(crate) output: Option<Format>,
    /// Log at the configured level on stderr (default: warnings and errors only).
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Read and write the state store.
    #[command(subcommand)]
    State(StateCommand),
    /// Publish and subscribe on the event bus.
    #[command(subcommand)]
    Events(EventsCommand),
    /// The kill switch: status, halt, resume, shutdown, rearm, watch, history.
    #[command(subcommand)]
    Emergency(EmergencyCommand),
    /// The configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Checks every part (Redis, breakers, emergency state); exit code 1 when unhealthy.
    Health,
    /// Serves the fleet's emergency states, heartbeats and risk-limit use, and Redis health, as
    /// Prometheus metrics on http://ADDR/metrics until interrupted (Ctrl-C).
    Metrics {
        /// Where to listen (default: the configuration's `metrics.listen`, else
        /// 127.0.0.1:9465).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Serves the live operator dashboard (the fleet, its emergency state, a halt button) on
    /// http://ADDR/ until interrupted (Ctrl-C). Actions need `dashboard.token`.
    Dashboard {
        /// Where to listen (default: the configuration's `dashboard.listen`, 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
}

/// `infractl state ...`
#[derive(Debug, Subcommand)]
pub(crate) enum StateCommand {
    /// Prints the JSON value of KEY (`null` when missing).
    Get {
        /// The key (without the namespace).
        key: String,
    },
    /// Stores a JSON value (quote strings: '"text"').
    Set {
        /// The key.
        key: String,
        /// The value, as JSON.
        json: String,
        /// Expire the key after this long (`30s`, `500ms`, `2m`, `1h`).
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        ttl: Option<Duration>,
        /// Only if the key does not exist.
        #[arg(long)]
        nx: bool,
    },
    /// Adds to a number and prints the new value (a missing key starts at 0).
    Incr {
        /// The key.
        key: String,
        /// What to add: an integer, or a decimal number.
        #[arg(long, default_value = "1", value_parser = parse_number, allow_negative_numbers = true)]
        by: serde_json::Number,
    },
    /// Deletes KEY.
    Del {
        /// The key.
        key: String,
    },
    /// Lists the keys starting with PREFIX (all keys without it), sorted.
    Keys {
        /// The prefix.
        #[arg(default_value = "")]
        prefix: String,
    },
}

/// `infractl events ...`
#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// Publishes a JSON payload on CHANNEL.
    Publish {
        /// The channel (without the namespace).
        channel: String,
        /// The payload, as JSON.
        json: String,
        /// The correlation ID the event carries (subscribers' handlers run under it).
        #[arg(long, value_name = "ID")]
        correlation_id: Option<String>,
    },
    /// Prints every event on the channels matching PATTERN (a Redis glob: `orders:*`).
    Subscribe {
        /// A channel name or a glob pattern.
        pattern: String,
        /// Exit after this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Stop after this long: exit 0 without `--count`, 1 if fewer than N events came.
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        timeout: Option<Duration>,
    },
}

/// Which scope a transition moves.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct ScopeArgs {
    /// One bot.
    #[arg(long, value_name = "ID")]
    pub(crate) bot: Option<String>,
    /// Every bot of the namespace.
    #[arg(long)]
    pub(crate) global: bool,
}

/// A manual transition.
#[derive(Debug, Args)]
pub(crate) struct TransitionArgs {
    #[command(flatten)]
    pub(crate) scope: ScopeArgs,
    /// Why (recorded in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: String,
    /// Who asks (default: `$USER`).
    #[arg(long, alias = "actor", value_name = "NAME")]
    pub(crate) operator: Option<String>,
}

/// `infractl emergency ...`
#[derive(Debug, Subcommand)]
pub(crate) enum EmergencyCommand {
    /// The effective state of a bot (default: `emergency.bot_id`), or of every bot with `--all`.
    Status {
        /// The bot.
        #[arg(long, value_name = "ID", conflicts_with = "all")]
        bot: Option<String>,
        /// Every bot with a live heartbeat (the fleet view).
        #[arg(long)]
        all: bool,
    },
    /// No new orders until a manual resume.
    Halt(TransitionArgs),
    /// Lifts a halt or an alert.
    Resume(TransitionArgs),
    /// Nothing at all until a rearm.
    Shutdown(TransitionArgs),
    /// Acknowledges a shutdown: the scope becomes halted (trading then needs a resume).
    Rearm(TransitionArgs),
    /// Prints a record per transition as it happens.
    Watch {
        /// Only the transitions that apply to this bot (its own and the global ones).
        #[arg(long, value_name = "ID")]
        bot: Option<String>,
        /// Exit after this many transitions.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Stop after this long: exit 0 without `--count`, 1 if fewer than N came.
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        timeout: Option<Duration>,
    },
    /// The audit log, newest first (default: the global scope and `emergency.bot_id`'s).
    History {
        /// Only this bot's scope.
        #[arg(long, value_name = "ID", conflicts_with = "global")]
        bot: Option<String>,
        /// Only the global scope.
        #[arg(long)]
        global: bool,
        /// At most this many records.
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
    },
}

/// `infractl config ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// The effective configuration as TOML, secrets redacted, each value with its source.
    Show,
}

/// Reads an environment's name; an unknown one is a usage error listing the valid names.
fn parse_environment(name: &str) -> Result<Environment, String> {
    name.parse().map_err(|error: infra_facade::config::UnknownEnvironment| error.to_string())
}

/// Reads a JSON number (`1`, `-5`, `0.25`).
fn parse_number(text: &str) -> Result<serde_json::Number, String> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Number(number)) => Ok(number),
        _ => Err(format!("`{text}` is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn an_unknown_environment_lists_the_valid_names() {
        let error = Cli::try_parse_from(["infractl", "--env", "prodution", "health"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("valid environments: development, staging, production"), "{error}");
    }

    #[test]
    fn a_transition_needs_exactly_one_scope() {
        for args in [
            &["infractl", "emergency", "halt", "--reason", "x"][..],
            &["infractl", "emergency", "halt", "--global", "--bot", "b", "--reason", "x"],
        ] {
            assert_eq!(Cli::try_parse_from(args).unwrap_err().exit_code(), 2, "{args:?}");
        }
        let cli =
            Cli::try_parse_from(["infractl", "emergency", "halt", "--bot", "b1", "--reason", "x", "--actor", "al"])
                .unwrap();
        let Command::Emergency(EmergencyCommand::Halt(args)) = cli.command else { panic!("{cli:?}") };
        assert_eq!((args.scope.bot.as_deref(), args.operator.as_deref()), (Some("b1"), Some("al")));
    }

    #[test]
    fn durations_and_numbers_are_typed() {
        let error = Cli::try_parse_from(["infractl", "state", "set", "k", "1", "--ttl", "30"]).unwrap_err();
        assert!(error.to_string().contains("has no unit"), "{error}");
        let cli = Cli::try_parse_from(["infractl", "state", "incr", "k", "--by", "-2"]).unwrap();
        let Command::State(StateCommand::Incr { by, .. }) = cli.command else { panic!("{cli:?}") };
        assert_eq!(by.as_i64(), Some(-2));
    }
}
