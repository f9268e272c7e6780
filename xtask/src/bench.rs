//! `cargo xtask bench`: run every criterion comparison and summarise it.
//!
//! A comparison is a criterion group named after it (`config/load_vs_figment_extract`) with two
//! functions, `ours` and `baseline`, measured in the same run. Each function's time is per
//! operation: benches whose iteration does several operations divide it themselves. Every group
//! is a comparison: a group or an extra comparison missing one of its sides fails the command.
//!
//! With `--runs N` the benches run N times and each figure (ours, baseline, ratio, difference)
//! is reported as the median of the N runs' figures, with its minimum and maximum.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use crate::cargo;

/// What `cargo xtask bench` was asked to do.
#[derive(Debug)]
pub(crate) struct Options {
    quick: bool,
    filter: Option<String>,
    runs: usize,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self { quick: false, filter: None, runs: 1 };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--runs" => {
                    let value = args.next().ok_or("`--runs` needs a number of runs")?;
                    options.runs = parse_runs(value)?;
                }
                flag if flag.starts_with("--runs=") => options.runs = parse_runs(&flag["--runs=".len()..])?,
                flag if flag.starts_with('-') => return Err(format!("unknown bench option `{flag}`")),
                filter if options.filter.is_none() => options.filter = Some(filter.to_owned()),
                extra => return Err(format!("unexpected bench argument `{extra}`")),
            }
        }
        Ok(options)
    }
}

fn parse_runs(value: &str) -> Result<usize, String> {
    match value.parse() {
        Ok(runs) if runs >= 1 => Ok(runs),
        _ => Err(format!("`--runs` takes a number of runs (1 or more), not `{value}`")),
    }
}

/// One comparison measured in one run.
#[derive(Debug, Clone, PartialEq)]
struct Comparison {
    name: String,
    ours_ns: f64,
    baseline_ns: f64,
}

impl Comparison {
    fn ratio(&self) -> f64 {
        self.ours_ns / self.baseline_ns
    }

    fn difference_ns(&self) -> f64 {
        self.ours_ns - self.baseline_ns
    }
}

/// The median, minimum and maximum of one figure over the runs.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    /// `values` must not be empty.
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let middle = values.len() / 2;
        let median = if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 };
        Self { median, min: values[0], max: values[values.len() - 1] }
    }
}

/// One line of the summary: a comparison over every run.
#[derive(Debug, Clone, PartialEq)]
struct Summary {
    name: String,
    runs: usize,
    ours_ns: Spread,
    baseline_ns: Spread,
    ratio: Spread,
    difference_ns: Spread,
}

impl Summary {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "runs": self.runs,
            "ours_ns": self.ours_ns.median,
            "ours_min_ns": self.ours_ns.min,
            "ours_max_ns": self.ours_ns.max,
            "baseline_ns": self.baseline_ns.median,
            "baseline_min_ns": self.baseline_ns.min,
            "baseline_max_ns": self.baseline_ns.max,
            "ratio": self.ratio.median,
            "ratio_min": self.ratio.min,
            "ratio_max": self.ratio.max,
            "difference_ns": self.difference_ns.median,
            "difference_min_ns": self.difference_ns.min,
            "difference_max_ns": self.difference_ns.max,
        })
    }
}

/// Each comparison's figures over `runs` (one list of comparisons per run): the median of the
/// runs' figures with their minimum and maximum. The ratio and the difference are taken per run
/// first, so the median ratio is the median of the runs' ratios. Every run must hold every
/// comparison exactly once.
fn aggregate(runs: &[Vec<Comparison>]) -> Result<Vec<Summary>, String> {
    let mut by_name: BTreeMap<&str, Vec<&Comparison>> = BTreeMap::new();
    for (index, run) in runs.iter().enumerate() {
        for comparison in run {
            let seen = by_name.entry(&comparison.name).or_default();
            if seen.len() > index {
                return Err(format!("comparison `{}` appears twice in run {}", comparison.name, index + 1));
            }
            seen.push(comparison);
        }
    }
    by_name
        .into_iter()
        .map(|(name, measured)| {
            if measured.len() != runs.len() {
                return Err(format!(
                    "comparison `{name}` was measured in {} of {} runs; every run must measure the same \
                     comparisons (is another `cargo bench` writing to this target directory?)",
                    measured.len(),
                    runs.len()
                ));
            }
            let spread = |figure: fn(&Comparison) -> f64| Spread::of(measured.iter().map(|c| figure(c)).collect());
            Ok(Summary {
                name: name.to_owned(),
                runs: runs.len(),
                ours_ns: spread(|c| c.ours_ns),
                baseline_ns: spread(|c| c.baseline_ns),
                ratio: spread(Comparison::ratio),
                difference_ns: spread(Comparison::difference_ns),
            })
        })
        .collect()
}

pub(crate) fn run(options: Options) -> Result<(), String> {
    let target = target_dir()?;
    let mut runs = Vec::with_capacity(options.runs);
    for run in 1..=options.runs {
        if options.runs > 1 {
            eprintln!("==> bench run {run} of {}", options.runs);
        }
        runs.push(measure(&options, &target)?);
    }
    let summaries = aggregate(&runs)?;
    if options.runs > 1 {
        println!("median of {} runs (ratio min and max: the lowest and highest run)", options.runs);
    }
    println!("{}", table(&summaries));
    let summary = target.join("bench-summary.json");
    let json = Value::Array(summaries.iter().map(Summary::to_json).collect());
    let text = serde_json::to_string_pretty(&json).map_err(|e| format!("cannot render the summary: {e}"))?;
    std::fs::write(&summary, text + "\n").map_err(|e| format!("cannot write {}: {e}", summary.display()))?;
    println!("wrote {}", summary.display());
    Ok(())
}

/// Runs the benches once and returns this run's comparisons, sorted by name.
fn measure(options: &Options, target: &Path) -> Result<Vec<Comparison>, String> {
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

    let mut comparisons = collect(&criterion_dir).map_err(|e| match &options.filter {
        Some(filter) => format!("{e} (does the filter `{filter}` select only one side?)"),
        None => e,
    })?;
    comparisons.extend(collect_extra(&extra_dir)?);
    comparisons.sort_by(|a, b| a.name.cmp(&b.name));
    if comparisons.is_empty() {
        return Err(format!("no `ours`/`baseline` pairs found under {}", criterion_dir.display()));
    }
    Ok(comparisons)
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
        let Some(name) = value["name"].as_str() else {
            return Err(format!("{} is not a comparison: it has no `name`", path.display()));
        };
        let side = |side: &str| {
            value[format!("{side}_ns")].as_f64().ok_or_else(|| {
                format!("extra comparison `{name}` ({}) lacks its `{side}` side (`{side}_ns`)", path.display())
            })
        };
        found.push(Comparison { name: name.to_owned(), ours_ns: side("ours")?, baseline_ns: side("baseline")? });
    }
    Ok(found)
}

/// Pairs every `<group>/ours` with its `<group>/baseline` from criterion's output files. Every
/// group is a comparison: a group missing a side, or holding anything else, is an error.
fn collect(criterion_dir: &Path) -> Result<Vec<Comparison>, String> {
    let mut medians: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for benchmark in find_files(criterion_dir, "benchmark.json") {
        // Only `<id>/new/benchmark.json` is this run's; `base/` and `change/` are comparisons.
        let Some(dir) = benchmark.parent().filter(|d| d.ends_with("new")) else { continue };
        let meta = read_json(&benchmark)?;
        let estimates = read_json(&dir.join("estimates.json"))?;
        let Some(group) = meta["group_id"].as_str() else {
            return Err(format!("{} has no `group_id`", benchmark.display()));
        };
        let Some(function) = meta["function_id"].as_str() else {
            return Err(format!(
                "criterion benchmark `{group}` is not a comparison: put it in a group with `ours` and `baseline`"
            ));
        };
        if !matches!(function, "ours" | "baseline") || !meta["value_str"].is_null() {
            return Err(format!(
                "criterion group `{group}` holds `{}`: a group holds only `ours` and `baseline`",
                meta["full_id"].as_str().unwrap_or(function)
            ));
        }
        let Some(median) = estimates["median"]["point_estimate"].as_f64() else {
            return Err(format!("{} has no median", dir.join("estimates.json").display()));
        };
        medians.entry(group.to_owned()).or_default().insert(function.to_owned(), median);
    }
    medians
        .into_iter()
        .map(|(name, functions)| {
            let side = |side: &str| {
                functions.get(side).copied().ok_or_else(|| format!("criterion group `{name}` lacks its `{side}` side"))
            };
            Ok(Comparison { ours_ns: side("ours")?, baseline_ns: side("baseline")?, name })
        })
        .collect()
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

/// The printed summary. With more than one run it adds the lowest and highest run's ratio.
fn table(summaries: &[Summary]) -> String {
    let width = summaries.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
    let spread = summaries.iter().any(|s| s.runs > 1);
    // Some goals are a difference (nanoseconds added), not a ratio: both are shown.
    let mut out = format!("{:<width$} | {:>12} | {:>12} | {:>7}", "name", "ours", "baseline", "ratio");
    if spread {
        out.push_str(&format!(" | {:>9} | {:>9}", "ratio min", "ratio max"));
    }
    out.push_str(&format!(" | {:>12}", "difference"));
    for s in summaries {
        out.push_str(&format!(
            "\n{:<width$} | {:>12} | {:>12} | {:>7.3}",
            s.name,
            format_ns(s.ours_ns.median),
            format_ns(s.baseline_ns.median),
            s.ratio.median
        ));
        if spread {
            out.push_str(&format!(" | {:>9.3} | {:>9.3}", s.ratio.min, s.ratio.max));
        }
        out.push_str(&format!(" | {:>12}", format_signed_ns(s.difference_ns.median)));
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

    /// A scratch directory unique to this process and test.
    fn scratch(test: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("xtask-{test}-{}", std::process::id()));
        if root.exists() {
            std::fs::remove_dir_all(&root).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    fn comparison(name: &str, ours_ns: f64, baseline_ns: f64) -> Comparison {
        Comparison { name: name.into(), ours_ns, baseline_ns }
    }

    #[test]
    fn reads_extra_comparisons() {
        let root = scratch("extra");
        let entry = json!({"name": "x/p99", "ours_ns": 3.0, "baseline_ns": 2.0});
        std::fs::write(root.join("x.json"), entry.to_string()).unwrap();
        let found = collect_extra(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(found, [comparison("x/p99", 3.0, 2.0)]);
        assert!(collect_extra(Path::new("/nonexistent")).unwrap().is_empty());
    }

    #[test]
    fn an_extra_comparison_missing_a_side_is_an_error() {
        let root = scratch("extra-one-sided");
        let entry = json!({"name": "x/p50", "ours_ns": 3.0});
        std::fs::write(root.join("x.json"), entry.to_string()).unwrap();
        let error = collect_extra(&root).unwrap_err();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(error.starts_with("extra comparison `x/p50` ("), "{error}");
        assert!(error.ends_with(") lacks its `baseline` side (`baseline_ns`)"), "{error}");
    }

    #[test]
    fn parses_options() {
        let options = Options::parse(&["--quick".to_owned(), "config".to_owned()]).unwrap();
        assert!(options.quick);
        assert_eq!(options.filter.as_deref(), Some("config"));
        assert_eq!(options.runs, 1);
        assert_eq!(Options::parse(&["--slow".to_owned()]).unwrap_err(), "unknown bench option `--slow`");

        let args = ["state", "--runs", "5", "--quick"].map(String::from);
        let options = Options::parse(&args).unwrap();
        assert!(options.quick);
        assert_eq!(options.filter.as_deref(), Some("state"));
        assert_eq!(options.runs, 5);
        assert_eq!(Options::parse(&["--runs=3".to_owned()]).unwrap().runs, 3);
        for bad in [&["--runs", "0"][..], &["--runs", "many"], &["--runs=-1"]] {
            let args: Vec<String> = bad.iter().map(|a| (*a).to_owned()).collect();
            assert!(Options::parse(&args).unwrap_err().starts_with("`--runs` takes a number of runs"), "{bad:?}");
        }
        assert_eq!(Options::parse(&["--runs".to_owned()]).unwrap_err(), "`--runs` needs a number of runs");
    }

    /// Writes one criterion result the way criterion lays it out.
    fn write_criterion(root: &Path, dir: &str, meta: Value, median: f64) {
        let dir = root.join(dir).join("new");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("benchmark.json"), meta.to_string()).unwrap();
        let estimates = json!({"median": {"point_estimate": median}});
        std::fs::write(dir.join("estimates.json"), estimates.to_string()).unwrap();
    }

    #[test]
    fn pairs_ours_with_baseline_from_criterion_files() {
        let root = scratch("criterion-pairs");
        write_criterion(&root, "a_x/ours", json!({"group_id": "a/x", "function_id": "ours"}), 30.0);
        write_criterion(&root, "a_x/baseline", json!({"group_id": "a/x", "function_id": "baseline"}), 20.0);
        // A previous run's results are not this run's.
        let old = root.join("a_x/ours/base");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("benchmark.json"), json!({"group_id": "old"}).to_string()).unwrap();
        let comparisons = collect(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(comparisons, [comparison("a/x", 30.0, 20.0)]);
        assert_eq!(comparisons[0].ratio(), 1.5);
        assert_eq!(
            table(&aggregate(&[comparisons]).unwrap()),
            "name |         ours |     baseline |   ratio |   difference\n\
             a/x  |      30.0 ns |      20.0 ns |   1.500 |     +10.0 ns"
        );
    }

    #[test]
    fn a_criterion_group_that_is_not_a_comparison_is_an_error() {
        let cases = [
            (
                json!({"group_id": "lonely", "function_id": "ours"}),
                "criterion group `lonely` lacks its `baseline` side",
            ),
            (
                json!({"group_id": "lonely", "function_id": "baseline"}),
                "criterion group `lonely` lacks its `ours` side",
            ),
            (
                json!({"group_id": "g", "function_id": "fast", "full_id": "g/fast"}),
                "criterion group `g` holds `g/fast`: a group holds only `ours` and `baseline`",
            ),
            (
                json!({"group_id": "g", "function_id": "ours", "value_str": "10", "full_id": "g/ours/10"}),
                "criterion group `g` holds `g/ours/10`: a group holds only `ours` and `baseline`",
            ),
            (
                json!({"group_id": "alone", "function_id": null}),
                "criterion benchmark `alone` is not a comparison: put it in a group with `ours` and `baseline`",
            ),
        ];
        for (index, (meta, expected)) in cases.into_iter().enumerate() {
            let root = scratch(&format!("criterion-bad-{index}"));
            write_criterion(&root, "ok/ours", json!({"group_id": "ok", "function_id": "ours"}), 2.0);
            write_criterion(&root, "ok/baseline", json!({"group_id": "ok", "function_id": "baseline"}), 1.0);
            write_criterion(&root, "bad", meta, 1.0);
            let error = collect(&root).unwrap_err();
            std::fs::remove_dir_all(&root).unwrap();
            assert_eq!(error, expected);
        }
    }

    #[test]
    fn aggregates_runs_into_medians_with_min_and_max() {
        let runs = [
            vec![comparison("a", 30.0, 20.0), comparison("b", 1.0, 1.0)],
            vec![comparison("a", 10.0, 10.0), comparison("b", 3.0, 1.0)],
            vec![comparison("b", 2.0, 1.0), comparison("a", 20.0, 40.0)],
        ];
        let summaries = aggregate(&runs).unwrap();
        assert_eq!(summaries.len(), 2);
        let a = &summaries[0];
        assert_eq!((a.name.as_str(), a.runs), ("a", 3));
        assert_eq!(a.ours_ns, Spread { median: 20.0, min: 10.0, max: 30.0 });
        assert_eq!(a.baseline_ns, Spread { median: 20.0, min: 10.0, max: 40.0 });
        // The median of the runs' ratios (1.5, 1.0, 0.5), not the ratio of the medians.
        assert_eq!(a.ratio, Spread { median: 1.0, min: 0.5, max: 1.5 });
        assert_eq!(a.difference_ns, Spread { median: 0.0, min: -20.0, max: 10.0 });
        let b = &summaries[1];
        assert_eq!(b.ratio, Spread { median: 2.0, min: 1.0, max: 3.0 });
        assert_eq!(b.to_json()["ratio_max"], 3.0);
        assert_eq!(b.to_json()["baseline_ns"], 1.0);
        assert_eq!(
            table(&summaries),
            "name |         ours |     baseline |   ratio | ratio min | ratio max |   difference\n\
             a    |      20.0 ns |      20.0 ns |   1.000 |     0.500 |     1.500 |      +0.0 ns\n\
             b    |       2.0 ns |       1.0 ns |   2.000 |     1.000 |     3.000 |      +1.0 ns"
        );
    }

    #[test]
    fn an_even_number_of_runs_takes_the_mean_of_the_middle_two() {
        let runs = [4.0, 1.0, 3.0, 2.0].map(|ours| vec![comparison("a", ours, 1.0)]);
        let summaries = aggregate(&runs).unwrap();
        assert_eq!(summaries[0].ratio, Spread { median: 2.5, min: 1.0, max: 4.0 });
        assert_eq!(summaries[0].to_json()["runs"], 4);
    }

    #[test]
    fn every_run_must_measure_the_same_comparisons() {
        let runs = [vec![comparison("a", 1.0, 1.0), comparison("b", 1.0, 1.0)], vec![comparison("a", 1.0, 1.0)]];
        assert_eq!(
            aggregate(&runs).unwrap_err(),
            "comparison `b` was measured in 1 of 2 runs; every run must measure the same comparisons \
             (is another `cargo bench` writing to this target directory?)"
        );
        let runs = [vec![comparison("a", 1.0, 1.0), comparison("a", 2.0, 1.0)]];
        assert_eq!(aggregate(&runs).unwrap_err(), "comparison `a` appears twice in run 1");
    }
}
