//! `cargo xtask ci`: the README's one test command.

use std::time::Instant;

use crate::{cargo, project_root};

struct Step {
    name: &'static str,
    args: &'static [&'static str],
    envs: &'static [(&'static str, &'static str)],
    hint: &'static str,
}

const STEPS: &[Step] = &[
    Step { name: "fmt", args: &["fmt", "--all", "--", "--check"], envs: &[], hint: "run `cargo fmt --all`" },
    Step {
        name: "clippy",
        args: &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"],
        envs: &[],
        hint: "fix the clippy findings above",
    },
    Step {
        name: "features-memory-only",
        args: &[
            "clippy",
            "-p",
            "infra-state",
            "--no-default-features",
            "--features",
            "memory",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        envs: &[],
        hint: "a feature-gated item is used outside its feature",
    },
    Step {
        name: "features-redis-only",
        args: &[
            "clippy",
            "-p",
            "infra-state",
            "--no-default-features",
            "--features",
            "redis",
            "--lib",
            "--",
            "-D",
            "warnings",
        ],
        envs: &[],
        hint: "a feature-gated item is used outside its feature",
    },
    Step {
        name: "features-events-bare",
        args: &["clippy", "-p", "infra-events", "--no-default-features", "--lib", "--", "-D", "warnings"],
        envs: &[],
        hint: "a feature-gated item is used outside its feature",
    },
    Step {
        name: "features-resilience-without-tower",
        args: &["clippy", "-p", "infra-resilience", "--all-targets", "--", "-D", "warnings"],
        envs: &[],
        hint: "a feature-gated item is used outside its feature",
    },
    Step {
        name: "features-events-memory-only",
        args: &["clippy", "-p", "infra-events", "--all-targets", "--", "-D", "warnings"],
        envs: &[],
        hint: "a feature-gated item is used outside its feature",
    },
    Step {
        name: "features-facade-memory-only",
        args: &["clippy", "-p", "infra-facade", "--no-default-features", "--lib", "--", "-D", "warnings"],
        envs: &[],
        hint: "a feature-gated item is used outside its feature (a memory-only user compiles no Redis client)",
    },
    Step {
        name: "test",
        args: &["test", "--workspace", "--all-features"],
        envs: &[],
        hint: "Redis tests need `redis-server` and `redis-cli` on PATH",
    },
    Step {
        name: "chaos-short",
        // After `test`, whose build it reuses; its table goes to <target>/chaos-short.md.
        args: &["xtask", "chaos", "--short"],
        envs: &[],
        hint: "a chaos check failed: its table above says which (see docs/reliability.md, \"Chaos suite\")",
    },
    Step {
        name: "test-memory-only",
        args: &["test", "-p", "infra-state", "--no-default-features", "--features", "memory", "--lib"],
        envs: &[],
        hint: "the memory-only build must report the missing redis backend clearly",
    },
    Step {
        name: "package",
        // Every published crate (new crates included) as crates.io would get it: packaged, then
        // built from its `.crate` alone (workspace crates it depends on come from a local
        // registry of the just-packaged crates). All features, like `test`, so the dependencies
        // that step built are reused from the shared target directory. `--allow-dirty` so a
        // developer's uncommitted work is checked too; CI runs on a clean clone anyway.
        args: &[
            "package",
            "--workspace",
            "--exclude",
            "infra-testkit",
            "--exclude",
            "xtask",
            "--all-features",
            "--allow-dirty",
        ],
        envs: &[],
        hint: "a published crate does not build from its package: a file outside the crate, \
               or a missing `[package]` field",
    },
    Step {
        name: "doc",
        args: &["doc", "--workspace", "--all-features", "--no-deps"],
        envs: &[("RUSTDOCFLAGS", "-D warnings")],
        hint: "fix the rustdoc warnings above",
    },
    Step {
        name: "deny",
        // Advisories need the RustSec database from the network, which CI lacks.
        args: &["deny", "--all-features", "check", "--hide-inclusion-graph", "bans", "licenses", "sources"],
        envs: &[],
        hint: "install it with `cargo install --locked cargo-deny` if it is missing",
    },
];

/// `promtool` steps (Debian's `prometheus` package; `.ci/run` installs it), run before the cargo
/// steps: they take a second. `$PROMTOOL` names another binary.
const PROMTOOL_STEPS: &[(&str, &[&str])] = &[
    ("alert-rules-check", &["check", "rules", "docs/observability/alerts.yml"]),
    ("alert-rules-test", &["test", "rules", "docs/observability/alerts_test.yml"]),
];

/// The arguments of the step called `name` (for the tidy tests).
#[cfg(test)]
pub(crate) fn step_args(name: &str) -> &'static [&'static str] {
    STEPS.iter().find(|step| step.name == name).map_or(&[], |step| step.args)
}

pub(crate) fn run() -> Result<(), String> {
    let started = Instant::now();
    for (name, args) in PROMTOOL_STEPS {
        eprintln!("==> ci step `{name}`: promtool {}", args.join(" "));
        let step_started = Instant::now();
        promtool(args).map_err(|e| format!("ci step `{name}` failed: {e}"))?;
        eprintln!("==> ci step `{name}` passed in {:.1?}", step_started.elapsed());
    }
    for step in STEPS {
        eprintln!("==> ci step `{}`: cargo {}", step.name, step.args.join(" "));
        let step_started = Instant::now();
        if step.name == "package" {
            clear_packaged_sources()?;
        }
        cargo(step.args, step.envs).map_err(|e| format!("ci step `{}` failed: {e} ({})", step.name, step.hint))?;
        eprintln!("==> ci step `{}` passed in {:.1?}", step.name, step_started.elapsed());
    }
    eprintln!("==> ci passed in {:.1?}", started.elapsed());
    Ok(())
}

/// Runs `promtool <args>` from the workspace root.
fn promtool(args: &[&str]) -> Result<(), String> {
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    let status =
        std::process::Command::new(&promtool).args(args).current_dir(project_root()).status().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "`{promtool}` not found: install Debian's `prometheus` package \
                 (`apt-get install --no-install-recommends prometheus`, as `.ci/run` does) or set PROMTOOL"
                )
            } else {
                format!("cannot run `{promtool}`: {e}")
            }
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{promtool} {}` failed with {status} (see its report above)", args.join(" ")))
    }
}

/// Removes cargo's extracted copies of previously packaged workspace crates.
///
/// `cargo package` verifies each crate against a local registry of the crates it just
/// packaged, and cargo extracts those under `$CARGO_HOME/registry/src/-<hash>/` (the leading
/// `-`: a registry without a name). Our versions stay at 0.1.0 between changes, so cargo would
/// reuse an extraction of an older package and verify against stale code. Named registries
/// (crates.io's `index.crates.io-…`) are never touched.
fn clear_packaged_sources() -> Result<(), String> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    for kind in ["src", "cache"] {
        let Ok(entries) = std::fs::read_dir(cargo_home.join("registry").join(kind)) else { continue };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with('-') {
                let path = entry.path();
                std::fs::remove_dir_all(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}
