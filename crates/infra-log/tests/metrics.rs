//! `infra_log_lines_dropped_total`: the lines a stuck sink dropped reach the metric within a
//! second, without anyone asking, and exactly once the guard is dropped.
//!
//! The metric is updated on a thread of its own, where only a global recorder is seen: this
//! binary installs metrics-util's debugging recorder and holds a single test.

mod support;

use std::{
    io::Write,
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

use infra_config::LogFormat;
use infra_log::LogBuilder;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::{Captured, logging};

/// A writer that blocks until the test opens the gate.
#[derive(Clone)]
struct GatedWriter {
    gate: Arc<(Mutex<bool>, Condvar)>,
    out: Captured,
}

impl Write for GatedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (open, changed) = &*self.gate;
        let mut open = open.lock().unwrap();
        while !*open {
            open = changed.wait(open).unwrap();
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The exported count of dropped lines, if the counter exists; it must have no labels.
fn exported(snapshotter: &Snapshotter) -> Option<u64> {
    snapshotter.snapshot().into_vec().into_iter().find_map(|(key, unit, description, value)| {
        let key = key.key();
        if key.name() != "infra_log_lines_dropped_total" {
            return None;
        }
        assert_eq!(key.labels().count(), 0, "no labels");
        assert_eq!(unit, Some(metrics::Unit::Count));
        assert!(description.is_some(), "described");
        match value {
            DebugValue::Counter(value) => Some(value),
            other => panic!("a counter, not {other:?}"),
        }
    })
}

/// Waits (bounded) until the exported count is `expected`.
fn until_exported(snapshotter: &Snapshotter, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while exported(snapshotter) != Some(expected) {
        assert!(Instant::now() < deadline, "exported {:?}, expected {expected}", exported(snapshotter));
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn dropped_lines_reach_the_metric_within_a_second_and_exactly_at_the_end() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("the only recorder of this test binary");

    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let out = Captured::default();
    let writer = GatedWriter { gate: gate.clone(), out: out.clone() };
    let (dispatch, guard) = LogBuilder::new(&logging(LogFormat::Json, "info"))
        .writer(writer)
        .buffered_lines_limit(2)
        .ignore_rust_log()
        .build()
        .unwrap();
    // Exported from the first update on, at zero while nothing was dropped.
    until_exported(&snapshotter, 0);

    tracing::dispatcher::with_default(&dispatch, || {
        // The sink is stuck: at most one line in the writer and two in the buffer survive.
        for i in 0..10 {
            tracing::info!(i, "burst");
        }
    });
    let dropped = guard.dropped_lines();
    assert!((7..=9).contains(&dropped), "dropped {dropped}");
    // Nobody logs meanwhile: the periodic update alone brings it.
    let started = Instant::now();
    until_exported(&snapshotter, dropped as u64);
    eprintln!("exported {dropped} dropped lines after {:?}", started.elapsed());

    // The sink catches up; the report line about the drops is not counted as a drop.
    let (open, changed) = &*gate;
    *open.lock().unwrap() = true;
    changed.notify_all();
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.text().lines().count() < 10 - dropped {
        assert!(Instant::now() < deadline, "the writer never drained");
        std::thread::yield_now();
    }
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("after the burst"));
    drop(guard);

    assert_eq!(exported(&snapshotter), Some(dropped as u64), "final and exact once the guard is dropped");
    let lines = out.json_lines();
    let bursts = lines.iter().filter(|l| l["msg"] == "burst").count();
    assert_eq!(bursts + dropped, 10, "every line is either written or counted");
    assert!(lines.iter().any(|l| l["dropped_lines_total"] == dropped), "reported in the log too");
}
