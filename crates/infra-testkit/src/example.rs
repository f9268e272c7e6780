//! Building a workspace example once per test binary, to run it as a real process.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use crate::error::{Result, TestkitError, io_error};

/// Builds example `example` of package `package` with `cargo build --offline` (the cargo that
/// runs the tests, from `CARGO`) and returns its executable's path.
///
/// With `workspace_all_features`, builds as `cargo test --workspace --all-features` resolves
/// features (as CI runs), so the artifacts the tests were built with are reused instead of
/// rebuilding the dependency tree; otherwise `-p package` with `features`.
pub fn cargo_example(
    workspace_root: &std::path::Path,
    package: &str,
    example: &str,
    features: &[&str],
    workspace_all_features: bool,
) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(workspace_root).args([
        "build",
        "--offline",
        "--example",
        example,
        "--message-format=json-render-diagnostics",
    ]);
    if workspace_all_features {
        build.args(["--workspace", "--all-features"]);
    } else {
        build.args(["-p", package]);
        if !features.is_empty() {
            build.args(["--features", &features.join(",")]);
        }
    }
    let output = build.stderr(Stdio::inherit()).output().map_err(io_error("running cargo build"))?;
    let failed = |reason: String| TestkitError::Io {
        action: format!("building example `{example}` of `{package}`"),
        source: std::io::Error::other(reason),
    };
    if !output.status.success() {
        return Err(failed(format!("cargo exited with {}", output.status)));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact" && message["target"]["name"] == example)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| failed("cargo named no executable".to_owned()))
}
