//! `cargo xtask bench`: run every criterion comparison and summarise it.
//!
//! A comparison is a criterion group named after it (`config/load_vs_figment_extract`) with two
//! functions, `ours` and `baseline`, measured in the same run. Each function's time is per
//! operation: benches whose iteration does several operations divide it themselves.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use crate::cargo;

/// What `cargo xtask bench` was asked to do.
#[derive(Debug, Default)]
pub(crate) struct Options {
    quick: bool,
    filter: Option<String>,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self::default();
        for arg in args {
            match arg.as_str() {
                "--quick" => options.quick = true,
                flag if flag.starts_with('-') => return Err(format!("unknown bench option `{flag}`")),
                filter if options.filter.is_none() => options.filter = Some(filter.to_owned()),
                extra => return Err(format!("unexpected bench argument `{extra}`")),
            }
        }
        Ok(options)
    }
}

/// One line of the summary.
#[derive(Debug, Clone, PartialEq)]
struct Comparison {
    name: String,
    ours_ns: f64,
    baseline_ns: f64,
}

pub(crate) fn run(options: Options) -> Result<(), String> {
    let target = target_dir()?;
    let criterion_dir = target.join("criterion");
    let extra_dir = target.join(EXTRA_DIR);
    // Only this run's results may reach the summary.
    for dir in [&criterion_dir, &extra_dir] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
        }
    }

    let mut args = vec!["bench", "--workspace", "--all-features", "--bench", "*", "--", "--noplot"];
    if options.quick {
        args.extend(["--warm-up-time", "0.5", "--measurement-time", "1", "--sample-size", "10"]);
    }
    if let Some(filter) = &options.filter {
        args.push(filter);
    }
    cargo(&args, &[])?;

    let mut comparisons = collect(&criterion_dir)?;
    comparisons.extend(collect_extra(&extra_dir)?);
    comparisons.sort_by(|a, b| a.name.cmp(&b.name));
    if comparisons.is_empty() {
        return Err(format!("no `ours`/`baseline` pairs found under {}", criterion_dir.display()));
    }
    println!("{}", table(&comparisons));
    let summary = target.join("bench-summary.json");
    let json = Value::Array(
        comparisons
            .iter()
            .map(|c| {
                json!({"name": c.name, "ours_ns": c.ours_ns, "baseline_ns": c.baseline_ns, "ratio": c.ratio(),
                       "difference_ns": c.ours_ns - c.baseline_ns})
            })
            .collect(),
    );
    let text = serde_json::to_string_pretty(&json).map_err(|e| format!("cannot render the summary: {e}"))?;
    std::fs::write(&summary, text + "\n").map_err(|e| format!("cannot write {}: {e}", summary.display()))?;
    println!("wrote {}", summary.display());
    Ok(())
}

impl Comparison {
    fn ratio(&self) -> f64 {
        self.ours_ns / self.baseline_ns
    }
}

/// The target directory cargo uses here (honours `CARGO_TARGET_DIR` and cargo config).
fn target_dir() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(crate::project_root())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("cannot parse cargo metadata: {e}"))?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata has no target_directory".to_owned())
}

/// Where benches that measure something criterion cannot (latency percentiles) write their
/// comparisons: one `{"name", "ours_ns", "baseline_ns"}` JSON file each.
const EXTRA_DIR: &str = "criterion-extra";

fn collect_extra(dir: &Path) -> Result<Vec<Comparison>, String> {
    let mut found = Vec::new();
    for path in find_files(dir, "").into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let value = read_json(&path)?;
        let (Some(name), Some(ours_ns), Some(baseline_ns)) =
            (value["name"].as_str(), value["ours_ns"].as_f64(), value["baseline_ns"].as_f64())
        else {
            return Err(format!("{} is not a comparison", path.display()));
        };
        found.push(Comparison { name: name.to_owned(), ours_ns, baseline_ns });
    }
    Ok(found)
}

/// Pairs every `<group>/ours` with its `<group>/baseline` from criterion's output files.
fn collect(criterion_dir: &Path) -> Result<Vec<Comparison>, String> {
    let mut medians: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for benchmark in find_files(criterion_dir, "benchmark.json") {
        // Only `<id>/new/benchmark.json` is this run's; `base/` and `change/` are comparisons.
        let Some(dir) = benchmark.parent().filter(|d| d.ends_with("new")) else { continue };
        let meta = read_json(&benchmark)?;
        let estimates = read_json(&dir.join("estimates.json"))?;
        let (Some(group), Some(function), Some(median)) =
            (meta["group_id"].as_str(), meta["function_id"].as_str(), estimates["median"]["point_estimate"].as_f64())
        else {
            continue;
        };
        medians.entry(group.to_owned()).or_default().insert(function.to_owned(), median);
    }
    Ok(medians
        .into_iter()
        .filter_map(|(name, functions)| {
            Some(Comparison { ours_ns: *functions.get("ours")?, baseline_ns: *functions.get("baseline")?, name })
        })
        .collect())
}

fn find_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(find_files(&path, name));
        } else if name.is_empty() || path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))
}

fn table(comparisons: &[Comparison]) -> String {
    let width = comparisons.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
    // Some goals are a difference (nanoseconds added), not a ratio: both are shown.
    let mut out =
        format!("{:<width$} | {:>12} | {:>12} | {:>7} | {:>12}", "name", "ours", "baseline", "ratio", "difference");
    for c in comparisons {
        out.push_str(&format!(
            "\n{:<width$} | {:>12} | {:>12} | {:>7.3} | {:>12}",
            c.name,
            format_ns(c.ours_ns),
            format_ns(c.baseline_ns),
            c.ratio(),
            format_signed_ns(c.ours_ns - c.baseline_ns)
        ));
    }
    out
}

fn format_signed_ns(ns: f64) -> String {
    if ns < 0.0 { format!("-{}", format_ns(-ns)) } else { format!("+{}", format_ns(ns)) }
}

fn format_ns(ns: f64) -> String {
    match ns {
        ns if ns >= 1_000_000.0 => format!("{:.2} ms", ns / 1_000_000.0),
        ns if ns >= 1_000.0 => format!("{:.2} µs", ns / 1_000.0),
        ns => format!("{ns:.1} ns"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_extra_comparisons() {
        let root = std::env::temp_dir().join(format!("xtask-extra-test-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let entry = json!({"name": "x/p99", "ours_ns": 3.0, "baseline_ns": 2.0});
        std::fs::write(root.join("x.json"), entry.to_string()).unwrap();
        let found = collect_extra(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(found, [Comparison { name: "x/p99".into(), ours_ns: 3.0, baseline_ns: 2.0 }]);
        assert!(collect_extra(Path::new("/nonexistent")).unwrap().is_empty());
    }

    #[test]
    fn parses_options() {
        let options = Options::parse(&["--quick".to_owned(), "config".to_owned()]).unwrap();
        assert!(options.quick);
        assert_eq!(options.filter.as_deref(), Some("config"));
        assert_eq!(Options::parse(&["--slow".to_owned()]).unwrap_err(), "unknown bench option `--slow`");
    }

    #[test]
    fn pairs_ours_with_baseline_from_criterion_files() {
        let root = std::env::temp_dir().join(format!("xtask-bench-test-{}", std::process::id()));
        let write = |dir: &str, group: &str, function: &str, median: f64| {
            let dir = root.join(dir).join("new");
            std::fs::create_dir_all(&dir).unwrap();
            let meta = json!({"group_id": group, "function_id": function});
            std::fs::write(dir.join("benchmark.json"), meta.to_string()).unwrap();
            let estimates = json!({"median": {"point_estimate": median}});
            std::fs::write(dir.join("estimates.json"), estimates.to_string()).unwrap();
        };
        write("a_x/ours", "a/x", "ours", 30.0);
        write("a_x/baseline", "a/x", "baseline", 20.0);
        write("lonely/ours", "lonely", "ours", 1.0);
        let comparisons = collect(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(comparisons, [Comparison { name: "a/x".into(), ours_ns: 30.0, baseline_ns: 20.0 }]);
        assert_eq!(comparisons[0].ratio(), 1.5);
        assert_eq!(
            table(&comparisons),
            "name |         ours |     baseline |   ratio |   difference\n\
             a/x  |      30.0 ns |      20.0 ns |   1.500 |     +10.0 ns"
        );
    }
}
