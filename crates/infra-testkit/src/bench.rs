//! Helpers for benchmarks that measure what criterion cannot: latency percentiles, or two
//! sides sampled alternately so that drift on a shared machine hits both alike.
//!
//! Such a bench writes each comparison with [`write_comparison`]; `cargo xtask bench` merges
//! the files (`<target>/criterion-extra/*.json`) into its summary next to criterion's groups.

use std::time::Duration;

/// The value at quantile `q` (0.0-1.0) of `sorted`, in nanoseconds; 0 when it is empty.
pub fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * q.clamp(0.0, 1.0)).round() as usize;
    sorted[index].as_nanos() as f64
}

/// Records one comparison for `cargo xtask bench` and prints it. The bench binary runs from
/// `<target>/release/deps`; if that layout is not found, it only prints.
pub fn write_comparison(name: &str, ours_ns: f64, baseline_ns: f64) {
    eprintln!("{name}: ours {:.1} µs, baseline {:.1} µs", ours_ns / 1000.0, baseline_ns / 1000.0);
    let Some(target) = std::env::current_exe().ok().and_then(|exe| exe.ancestors().nth(3).map(ToOwned::to_owned))
    else {
        return;
    };
    let dir = target.join("criterion-extra");
    let file = dir.join(format!("{}.json", name.replace('/', "_")));
    // Names are ours (`group/comparison`), so only quotes and backslashes need escaping.
    let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
    let entry = format!(r#"{{"name":"{escaped}","ours_ns":{ours_ns},"baseline_ns":{baseline_ns}}}"#);
    if let Err(error) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, entry)) {
        panic!("cannot write {}: {error}", file.display());
    }
}

/// Whether this bench run should measure a comparison named `name`: criterion was given no
/// filter, or the filter is part of the name (flags with values are skipped).
pub fn selected(name: &str) -> bool {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if matches!(
            arg.as_str(),
            "--warm-up-time" | "--measurement-time" | "--sample-size" | "--save-baseline" | "--baseline"
        ) {
            args.next();
        } else if !arg.starts_with('-') {
            return name.contains(arg.as_str());
        }
    }
    true
}

/// Whether `cargo xtask bench --quick` started this run (it shortens criterion's warm-up to
/// half a second): such benches take fewer samples.
pub fn quick() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).any(|pair| pair[0] == "--warm-up-time" && pair[1] == "0.5")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_nanos).collect();
        assert_eq!(percentile(&samples, 0.5), 51.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&samples, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
