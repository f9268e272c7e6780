//! The checks over the bots' reports and progress, and the table written into
//! docs/reliability.md.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::Path,
    time::Duration,
};

use serde_json::Value;

use super::{Bot, Ended, Fault, Halt, Options, Sample, lock};

pub(super) const BEGIN: &str = "<!-- chaos:begin -->";
pub(super) const END: &str = "<!-- chaos:end -->";
const WORKLOADS: [&str; 3] = ["increments", "ephemeral events", "durable events"];

/// One row of the checks table.
#[derive(Debug)]
struct Check {
    name: &'static str,
    passed: bool,
    figures: String,
}

/// Ephemeral losses attributed to one fault (or to steady running).
#[derive(Debug, Default, Clone, Copy)]
struct Losses {
    lost: u64,
    /// Lost events whose hole the subscription's counters (gaps, dropped) had reported by the
    /// time the event after it arrived.
    reported_at_once: u64,
    /// ... or by the end of the run.
    reported_eventually: u64,
}

/// Everything one phase of the run showed.
#[derive(Debug)]
pub(super) struct Outcome {
    /// The phase's heading and what Redis was.
    title: &'static str,
    setup: String,
    bots: usize,
    faults: Vec<(Fault, Option<u64>, Losses)>,
    steady: Losses,
    checks: Vec<Check>,
}

impl Outcome {
    pub(super) fn evaluate(
        title: &'static str,
        setup: String,
        bots: &[Bot],
        ended: &[Ended],
        faults: &[Fault],
        halt: &Halt,
        counter: Option<i64>,
    ) -> Self {
        let reports: Vec<(String, Value)> =
            bots.iter().map(|bot| (bot.id.clone(), lock(&bot.output).report.clone().unwrap_or(Value::Null))).collect();
        let samples: Vec<Vec<Sample>> = bots.iter().map(|bot| lock(&bot.output).samples.clone()).collect();
        let mut checks = vec![no_panic(ended, &reports), no_hung_task(ended, &reports)];
        checks.push(durable(&reports));
        checks.push(counter_bounds(&reports, counter));
        let (per_fault, steady, ephemeral_check) = ephemeral(&reports, faults);
        checks.push(ephemeral_check);
        checks.extend(halt_checks(&reports, &samples, halt));
        let recoveries: Vec<Option<u64>> = faults.iter().map(|fault| recovery(&samples, fault)).collect();
        let last = faults.iter().zip(&recoveries).max_by_key(|(f, _)| f.ended_ms).and_then(|(_, r)| *r);
        checks.push(Check {
            name: "every bot resumed work after the last fault",
            passed: last.is_some() && recoveries.iter().all(Option::is_some),
            figures: match last {
                Some(ms) => {
                    let workloads = WORKLOADS.join(", ");
                    format!("every bot made progress on {workloads} within {ms} ms of the resume's audit record")
                }
                None => "some bot made no progress after a fault".to_owned(),
            },
        });
        let faults = faults.iter().cloned().zip(recoveries).zip(per_fault).map(|((f, r), l)| (f, r, l)).collect();
        Self { title, setup, bots: bots.len(), faults, steady, checks }
    }

    /// The checks that failed, named.
    pub(super) fn failures(&self) -> Vec<String> {
        self.checks.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.name, c.figures)).collect()
    }

    /// This phase's part of the section: its heading, its faults and its checks.
    pub(super) fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {}\n\n{}\n", self.title, self.setup);
        out.push_str(
            "| fault (in order) | held | recovery: every bot progressing again | ephemeral events lost \
             (reported by the subscription's counters) | notes |\n|---|---|---|---|---|\n",
        );
        for (fault, recovery, losses) in &self.faults {
            let workloads: Vec<&str> =
                WORKLOADS.iter().zip(fault.workloads).filter(|(_, on)| *on).map(|(name, _)| *name).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} ({}) | {} | {} |",
                fault.name,
                seconds(fault.ended_ms.saturating_sub(fault.injected_ms)),
                recovery.map_or_else(|| "**never**".to_owned(), short_time),
                workloads.join(", "),
                losses_text(losses),
                if fault.note.is_empty() { "" } else { &fault.note },
            );
        }
        let _ = writeln!(out, "| none (steady running) | | | {} | |\n", losses_text(&self.steady));
        out.push_str("| check | result | figures |\n|---|---|---|\n");
        for check in &self.checks {
            let result = if check.passed { "pass" } else { "**FAIL**" };
            let _ = writeln!(out, "| {} | {result} | {} |", check.name, check.figures);
        }
        let _ = write!(out, "\n{} bots; figures from their reports (the last line each prints).", self.bots);
        out
    }
}

/// The section's first line: how the whole run was scheduled.
pub(super) fn schedule(options: &Options, took: Duration) -> String {
    format!(
        "Last run: `cargo xtask chaos`, {} bots per phase, {} of steady running between faults, each fault held \
         {}{}; {} in all (building excluded).",
        options.bots,
        seconds(millis(options.gap)),
        seconds(millis(options.hold)),
        if options.short { " (`--short`)" } else { "" },
        seconds(millis(took))
    )
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Milliseconds below a second, else seconds.
pub(super) fn short_time(ms: u64) -> String {
    if ms < 1000 { format!("{ms} ms") } else { seconds(ms) }
}

fn losses_text(losses: &Losses) -> String {
    if losses.lost == 0 {
        return "0".to_owned();
    }
    format!(
        "{} ({} reported when the next event arrived, {} by the end)",
        losses.lost, losses.reported_at_once, losses.reported_eventually
    )
}

fn u64_at(value: &Value, path: &[&str]) -> u64 {
    path.iter().fold(value, |v, key| &v[*key]).as_u64().unwrap_or_default()
}

fn seqs(value: &Value) -> BTreeSet<u64> {
    value.as_array().map(|items| items.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
}

fn no_panic(ended: &[Ended], reports: &[(String, Value)]) -> Check {
    let mut problems = Vec::new();
    for (end, (_, report)) in ended.iter().zip(reports) {
        if end.panicked {
            problems.push(format!("{} printed a panic: {}", end.id, end.stderr_tail));
        }
        if let Some(status) = end.status
            && !status.success()
        {
            problems.push(format!("{} exited with {status}: {}", end.id, end.stderr_tail));
        }
        for part in ["ephemeral", "durable"] {
            let panics = u64_at(report, &[part, "stats", "panics"]) + u64_at(report, &[part, "stats", "task_failures"]);
            if panics > 0 {
                problems.push(format!("{}: {panics} handler panics or task failures ({part})", end.id));
            }
        }
    }
    Check {
        name: "no panic",
        passed: problems.is_empty(),
        figures: if problems.is_empty() {
            format!("{} bots exited 0; no `panicked` on stderr; no handler panic or task failure", ended.len())
        } else {
            problems.join("; ")
        },
    }
}

fn no_hung_task(ended: &[Ended], reports: &[(String, Value)]) -> Check {
    let mut problems = Vec::new();
    for (end, (_, report)) in ended.iter().zip(reports) {
        if end.status.is_none() {
            problems.push(format!("{} did not exit within {:?} and was killed", end.id, super::EXIT_LIMIT));
        } else if report.is_null() {
            problems.push(format!("{} printed no report", end.id));
        }
        if let Some(hung) = report["hung"].as_array().filter(|h| !h.is_empty()) {
            problems.push(format!("{}: {hung:?} did not finish in time", end.id));
        }
        if let Some(errors) = report["close_errors"].as_array().filter(|e| !e.is_empty()) {
            problems.push(format!("{}: close failed: {errors:?}", end.id));
        }
    }
    let slowest = ended.iter().map(|e| e.exit_ms).max().unwrap_or_default();
    let shutdown = reports.iter().map(|(_, r)| u64_at(r, &["shutdown_ms"])).max().unwrap_or_default();
    Check {
        name: "no hung task",
        passed: problems.is_empty(),
        figures: if problems.is_empty() {
            format!(
                "every worker stopped, every bot unsubscribed and closed; slowest exit {} after the exit \
                 key (unsubscribe + close {})",
                seconds(slowest),
                seconds(shutdown)
            )
        } else {
            problems.join("; ")
        },
    }
}

fn durable(reports: &[(String, Value)]) -> Check {
    let (mut lost, mut duplicates, mut despite_error, mut published_ok, mut handled) = (0, 0, 0, 0, 0);
    let mut counters = [0u64; 3];
    for (publisher, report) in reports {
        let attempts = u64_at(report, &["durable", "published", "attempts"]);
        published_ok += u64_at(report, &["durable", "published", "ok"]);
        let failed = seqs(&report["durable"]["published"]["failed"]);
        let mut seen = BTreeSet::new();
        for (_, handler) in reports {
            let got = handler["durable"]["handled"][publisher.as_str()].as_array().cloned().unwrap_or_default();
            for seq in got.iter().filter_map(Value::as_u64) {
                handled += 1;
                if !seen.insert(seq) {
                    duplicates += 1;
                }
            }
        }
        lost += (0..attempts).filter(|seq| !failed.contains(seq) && !seen.contains(seq)).count() as u64;
        despite_error += failed.iter().filter(|seq| seen.contains(seq)).count() as u64;
    }
    for (_, report) in reports {
        for (i, name) in ["redelivered", "dead_lettered", "trimmed"].iter().enumerate() {
            counters[i] += u64_at(report, &["durable", "stats", name]);
        }
    }
    Check {
        name: "durable events: none lost",
        passed: lost == 0,
        figures: format!(
            "lost {lost} of {published_ok} published with Ok; {duplicates} handled twice (counted apart); \
             {despite_error} delivered although their publish returned an error; {handled} handlings; \
             redelivered {}, dead-lettered {}, trimmed {}",
            counters[0], counters[1], counters[2]
        ),
    }
}

fn counter_bounds(reports: &[(String, Value)], counter: Option<i64>) -> Check {
    let sum = |field: &str| reports.iter().map(|(_, r)| u64_at(r, &["counter", field])).sum::<u64>();
    let (ok, maybe, refused, not_applied, attempts) =
        (sum("ok"), sum("maybe"), sum("refused"), sum("not_applied"), sum("attempts"));
    let value = counter.and_then(|v| u64::try_from(v).ok());
    // A refusal of the breaker was never sent, so it cannot have been applied.
    let passed = value.is_some_and(|v| ok <= v && v <= ok + maybe - refused);
    Check {
        name: "counter exact within its bounds",
        passed,
        figures: format!(
            "value {} within [Ok {ok}, Ok + may-have-been-applied {}]: {} of the {} uncertain increments \
             were applied; {maybe} errors said \"may have been applied\", {refused} of them refusals of the \
             breaker (never sent, so left out of the bound); {not_applied} certainly not applied; {attempts} \
             attempts",
            value.map_or_else(|| "unreadable".to_owned(), |v| v.to_string()),
            ok + maybe - refused,
            value.map_or(0, |v| v.saturating_sub(ok)),
            maybe - refused,
        ),
    }
}

/// Ephemeral losses by fault (a hole belongs to the fault in whose window, up to the next
/// fault, it was seen), in steady running, and the check.
fn ephemeral(reports: &[(String, Value)], faults: &[Fault]) -> (Vec<Losses>, Losses, Check) {
    let mut per_fault = vec![Losses::default(); faults.len()];
    let mut steady = Losses::default();
    let (mut published_ok, mut received, mut unfinished) = (0, 0, Vec::new());
    let failed: BTreeMap<&str, BTreeSet<u64>> =
        reports.iter().map(|(id, r)| (id.as_str(), seqs(&r["ephemeral"]["published"]["failed"]))).collect();
    for (receiver, report) in reports {
        let final_losses =
            u64_at(report, &["ephemeral", "stats", "gaps"]) + u64_at(report, &["ephemeral", "stats", "dropped"]);
        for (publisher, failed) in &failed {
            let from = &report["ephemeral"]["from"][*publisher];
            received += u64_at(from, &["received"]);
            if from["finished"] != true {
                unfinished.push(format!("{receiver} missed {publisher}'s final marker"));
            }
            for hole in from["holes"].as_array().cloned().unwrap_or_default() {
                let (first, last) = (u64_at(&hole, &["first"]), u64_at(&hole, &["last"]));
                let lost = (first..=last).filter(|seq| !failed.contains(seq)).count() as u64;
                let before = u64_at(&hole, &["losses_before"]);
                let seen = u64_at(&hole, &["seen_ms"]);
                let index = faults.iter().rposition(|f| f.injected_ms <= seen);
                let losses = index.map_or(&mut steady, |i| &mut per_fault[i]);
                losses.lost += lost;
                if u64_at(&hole, &["losses_at"]) > before {
                    losses.reported_at_once += lost;
                }
                if final_losses > before {
                    losses.reported_eventually += lost;
                }
            }
        }
    }
    for (_, report) in reports {
        published_ok += u64_at(report, &["ephemeral", "published", "ok"]) * reports.len() as u64;
    }
    let total: Losses = per_fault.iter().chain([&steady]).fold(Losses::default(), |a, b| Losses {
        lost: a.lost + b.lost,
        reported_at_once: a.reported_at_once + b.reported_at_once,
        reported_eventually: a.reported_eventually + b.reported_eventually,
    });
    let unreported = total.lost - total.reported_eventually;
    let check = Check {
        name: "ephemeral events: every loss reported",
        passed: unreported == 0 && unfinished.is_empty(),
        figures: format!(
            "{} lost of {published_ok} deliveries due (every bot receives every bot's events published with \
             Ok; {received} received, those whose publish failed but went through included); {} reported by a gap or drop count \
             when the next event arrived, {} by the end, {unreported} never{}",
            total.lost,
            total.reported_at_once,
            total.reported_eventually,
            if unfinished.is_empty() { String::new() } else { format!("; {}", unfinished.join(", ")) }
        ),
    };
    (per_fault, steady, check)
}

fn halt_checks(reports: &[(String, Value)], samples: &[Vec<Sample>], halt: &Halt) -> Vec<Check> {
    let mut slowest = 0;
    let mut missing = Vec::new();
    let mut worked_while_halted = Vec::new();
    let mut resumed = 0;
    for ((id, report), samples) in reports.iter().zip(samples) {
        let applied = report["emergency"]["halt_applied_ms"].as_u64();
        let resume = report["emergency"]["resume_applied_ms"].as_u64();
        match applied {
            Some(at) => slowest = slowest.max(at.saturating_sub(halt.at_ms)),
            None => missing.push(id.clone()),
        }
        resumed += usize::from(resume.is_some());
        // An increment in flight when the halt was applied may still finish: look from 200 ms on.
        if let (Some(applied), Some(resume)) = (applied, resume) {
            let (a, b) = (value_at(samples, applied + 200, 0), value_at(samples, resume, 0));
            if b > a {
                worked_while_halted.push(format!("{id}: {} increments", b - a));
            }
        }
    }
    let fleet = halt.fleet_confirmed_ms.map(|at| at.saturating_sub(halt.at_ms));
    vec![
        Check {
            name: "the halt reached every bot",
            passed: missing.is_empty() && fleet.is_some(),
            figures: format!(
                "issued through `infractl emergency halt --global` {}; applied by {}/{} bots, the slowest {slowest} ms after its audit record; the fleet view (`infractl emergency status \
                 --all`) showed every bot applying it {}{}",
                halt.issued_when,
                reports.len() - missing.len(),
                reports.len(),
                fleet.map_or_else(|| "**never**".to_owned(), |ms| format!("{} after", seconds(ms))),
                if missing.is_empty() { String::new() } else { format!("; not applied by {}", missing.join(", ")) }
            ),
        },
        Check {
            name: "halted bots did no work; the resume reached every bot",
            passed: worked_while_halted.is_empty() && resumed == reports.len(),
            figures: format!(
                "no increment from 200 ms after a bot applied the halt until it applied the resume{}; the resume \
                 reached {resumed}/{} bots{}",
                if worked_while_halted.is_empty() { String::new() } else { format!(" except {worked_while_halted:?}") },
                reports.len(),
                halt.held_through
            ),
        },
    ]
}

/// The count of `workload` at the last sample at or before `t`.
fn value_at(samples: &[Sample], t: u64, workload: usize) -> u64 {
    samples.iter().take_while(|s| s.t <= t).last().map_or(0, |s| s.counts[workload])
}

/// From the end of `fault` until every bot made progress on each of its workloads, in ms.
fn recovery(samples: &[Vec<Sample>], fault: &Fault) -> Option<u64> {
    let mut slowest = 0;
    for bot in samples {
        for (workload, _) in fault.workloads.iter().enumerate().filter(|(_, on)| **on) {
            let baseline = value_at(bot, fault.ended_ms, workload);
            let first = bot.iter().find(|s| s.t > fault.ended_ms && s.counts[workload] > baseline)?;
            slowest = slowest.max(first.t - fault.ended_ms);
        }
    }
    Some(slowest)
}

/// Replaces what lies between the chaos markers of `path` with `table`.
pub(super) fn write_into_docs(path: &Path, table: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        return Err(format!("{} has no `{BEGIN}` … `{END}` markers", path.display()));
    };
    if end < begin {
        return Err(format!("{}: `{END}` comes before `{BEGIN}`", path.display()));
    }
    let updated = format!("{}{BEGIN}\n{table}\n{}", &text[..begin], &text[end..]);
    std::fs::write(path, updated).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
