//! `infractl`: the operator's command line for the infra stack, a thin shell over
//! `infra-facade`: it parses arguments, calls the facade, and prints.
//!
//! ```text
//! infractl [--env NAME] [--config FILE] [--redis-url URL] [--namespace NS] [-o text|json] <command>
//!
//! state get KEY | set KEY JSON [--ttl 30s] [--nx] | incr KEY [--by N] | del KEY | keys [PREFIX]
//! events publish CHANNEL JSON | subscribe PATTERN [--count N] [--timeout DURATION]
//! emergency status [--bot ID | --all]
//! emergency halt|resume|shutdown|rearm (--bot ID | --global) --reason TEXT [--operator NAME]
//! emergency watch [--bot ID] [--count N] [--timeout DURATION] | history [--bot ID | --global] [--limit N]
//! config show
//! health
//! ```
//!
//! The configuration is infra-config's: the environment's preset, `infra.toml` (or `--config`,
//! `INFRA_CONFIG`), the `INFRA_...` variables, then the options (`--redis-url` sets the backend
//! and URL of both state and events; `--namespace` both namespaces). Output is text on a
//! terminal and JSON lines (one object per line) otherwise, or as `-o` says. Exit codes: 0 ok;
//! 1 a runtime failure, named on stderr with URL passwords redacted (Redis unreachable, a
//! refused transition, an unhealthy `health`); 2 a usage error (bad arguments, an unknown
//! environment, whose message lists the valid names, or a configuration that does not load).
//!
//! # Feature flags
//!
//! | feature | default | enables |
//! |---|---|---|
//! | none | | this crate has no optional parts (the Redis backends are always built) |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! // The binary is `infractl`; `run` is its whole main.
//! let code = infra_cli::run(["infractl", "--env", "prodution", "health"]);
//! assert_eq!(code, std::process::ExitCode::from(2)); // the message lists the valid names
//! assert_eq!(infra_cli::parse_duration("30s")?, Duration::from_secs(30));
//! # Ok::<(), infra_cli::DurationError>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod cli;
mod commands;
mod duration;
mod error;
mod output;
mod setup;

use std::{ffi::OsString, process::ExitCode};

use clap::Parser;

pub use duration::{DurationError, parse_duration};

/// Runs infractl with `args` (the program's name first) and returns its exit code: 0 ok, 1 a
/// runtime failure, 2 a usage error. Messages go to stderr, results to stdout.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with code 0; usage errors to stderr with code 2.
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(error::EXIT_USAGE));
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("infractl: cannot start the async runtime: {error}");
            return ExitCode::from(error::EXIT_FAILURE);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            match &error {
                error::CliError::Usage(message) => eprintln!("infractl: usage error: {message}"),
                error::CliError::Runtime(message) => eprintln!("infractl: error: {message}"),
                error::CliError::Reported(message) => eprintln!("infractl: {message}"),
                error::CliError::StdoutClosed => {}
            }
            error.exit_code()
        }
    }
}
