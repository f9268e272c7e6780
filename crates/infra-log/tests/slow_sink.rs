//! A sink slower than the program: lines are dropped, never block the caller, and every drop
//! is counted and reported in the log.

mod support;

use std::{
    io::Write,
    sync::{Arc, Condvar, Mutex},
};

use infra_config::LogFormat;
use infra_log::LogBuilder;
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

#[test]
fn dropped_lines_are_counted_and_reported() {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let out = Captured::default();
    let writer = GatedWriter { gate: gate.clone(), out: out.clone() };
    let (dispatch, guard) = LogBuilder::new(&logging(LogFormat::Json, "info"))
        .writer(writer)
        .buffered_lines_limit(2)
        .ignore_rust_log()
        .build()
        .unwrap();

    tracing::dispatcher::with_default(&dispatch, || {
        // The sink is stuck: at most one line in the writer and two in the buffer survive.
        for i in 0..10 {
            tracing::info!(i, "burst");
        }
    });
    let dropped = guard.dropped_lines();
    // At most the line in the writer and the two buffered survive; the writer thread may not
    // have taken one yet, or may have taken the first before the buffer filled.
    assert!((7..=9).contains(&dropped), "dropped {dropped}");

    let (open, changed) = &*gate;
    *open.lock().unwrap() = true;
    changed.notify_all();
    // Wait (on the condition, not a timer) until the survivors are written and the buffer is empty.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while out.text().lines().count() < 10 - dropped {
        assert!(std::time::Instant::now() < deadline, "the writer never drained");
        std::thread::yield_now();
    }
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("after the burst"));
    drop(guard);

    let lines = out.json_lines();
    let bursts = lines.iter().filter(|l| l["msg"] == "burst").count();
    assert_eq!(bursts + dropped, 10, "every line is either written or counted");
    let report = lines.iter().find(|l| l["dropped_lines"].is_u64()).expect("a report line");
    assert_eq!(report["level"], 40);
    assert_eq!(report["dropped_lines"], dropped);
    assert_eq!(report["dropped_lines_total"], dropped);
    assert_eq!(report["msg"], format!("{dropped} log lines dropped: the log sink is slower than the program"));
    assert!(lines.iter().any(|l| l["msg"] == "after the burst"));
}
