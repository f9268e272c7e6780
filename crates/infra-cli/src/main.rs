//! `infractl`: see the `infra-cli` crate documentation.

fn main() -> std::process::ExitCode {
    infra_cli::run(std::env::args_os())
}
