//! Project automation, run as `cargo xtask <command>`.
//!
//! - `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.
//! - `cargo xtask bench [--quick] [--runs N] [FILTER]`: every criterion comparison, printed as
//!   `name | ours | baseline | ratio | difference` and written to `<target>/bench-summary.json`;
//!   with `--runs N`, the median of N runs with the lowest and highest run's ratio.
//! - `cargo xtask chaos [--short] [--bots N] [--seconds S]`: a fleet of bots against a Redis
//!   that is killed, paused and frozen, with a halt in between; checks and writes the results
//!   into docs/reliability.md (`--short`: into `<target>/chaos-short.md`, for CI).

#![allow(clippy::print_stdout, reason = "the bench table is this tool's output")]

mod bench;
mod chaos;
mod ci;
#[cfg(test)]
mod observability;
#[cfg(test)]
mod tidy;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci                       fmt, clippy, tests (real Redis included), packaging, docs, cargo-deny,
                           the alert rules' promtool tests
  bench [--quick] [--runs N] [FILTER]
                           run the benchmarks and write <target>/bench-summary.json
      --quick              shorter measurements, for a smoke run
      --runs N             run them N times; report each figure's median, min and max
      FILTER               only the benchmarks whose ID matches this criterion filter
                           (it must select both sides of a comparison)
  chaos [--short] [--bots N] [--seconds S]
                           the chaos suite: N bots (default 4) on a Redis killed, paused and
                           frozen for about S seconds (default 150), with a global halt; writes
                           its table into docs/reliability.md
      --short              3 bots, about 30 s; the table goes to <target>/chaos-short.md";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") if args.len() == 1 => ci::run(),
        Some("bench") => bench::Options::parse(&args[1..]).and_then(bench::run),
        Some("chaos") => chaos::Options::parse(&args[1..]).and_then(chaos::run),
        Some("-h" | "--help" | "help") => {
            eprintln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(format!("unknown arguments {args:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root, whatever the current directory.
fn project_root() -> std::path::PathBuf {
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_owned()
}

/// Runs `cargo <args>` from the workspace root with extra environment variables.
fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(&cargo)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(project_root())
        .status()
        .map_err(|e| format!("cannot run `{cargo} {}`: {e}", args.join(" ")))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed with {status}", args.join(" "))) }
}
