//! One module per command group; each parses nothing and decides nothing: it calls the facade
//! and prints what it returns.

mod config;
mod dashboard;
mod emergency;
mod events;
mod health;
mod metrics;
mod state;

use infra_facade::{Infrastructure, config::Backend};

use crate::{
    cli::{Cli, Command, ConfigCommand},
    error::CliError,
    output::{Format, Printer},
    setup::{self, Connect, Loaded},
};

/// What a command needs: the loaded configuration and the printer.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) loaded: Loaded,
    pub(crate) printer: Printer,
    verbose: bool,
}

impl Context {
    /// Whether `--verbose` was given.
    pub(crate) fn verbose(&self) -> bool {
        self.verbose
    }

    /// Builds the infrastructure, runs `body` with it, then closes it (also when `body` failed).
    pub(crate) async fn with_infrastructure(
        &self,
        connect: Connect,
        body: impl AsyncFnOnce(&Infrastructure) -> Result<(), CliError>,
    ) -> Result<(), CliError> {
        let config = &self.loaded.config;
        if config.state.backend == Backend::Memory || config.events.backend == Backend::Memory {
            eprintln!(
                "infractl: note: the {} environment uses in-process memory backends, which this command alone \
                 sees; use `--env staging`, `--redis-url URL` or the INFRA_ variables to reach a Redis",
                config.environment
            );
        }
        let infrastructure = setup::build(config, connect, self.verbose).await?;
        let result = body(&infrastructure).await;
        setup::close(infrastructure).await;
        result
    }
}

/// Runs the parsed command line.
pub(crate) async fn run(cli: Cli) -> Result<(), CliError> {
    let printer = Printer::new(Format::resolve(cli.global.output));
    let loaded = setup::load_config(&cli.global)?;
    let context = Context { loaded, printer, verbose: cli.global.verbose };
    match cli.command {
        Command::State(command) => state::run(&context, command).await,
        Command::Events(command) => events::run(&context, command).await,
        Command::Emergency(command) => emergency::run(&context, command).await,
        Command::Config(ConfigCommand::Show) => config::show(&context),
        Command::Health => health::run(&context).await,
        Command::Metrics { listen } => metrics::run(&context, listen).await,
        Command::Dashboard { listen } => dashboard::run(&context, listen).await,
    }
}
