//! The controller's metrics, read back through metrics-util's debugging recorder (a local
//! recorder: each test builds its runtime and controllers inside it, on one thread).

mod support;

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use infra_emergency::{ControllerOptions, EmergencyController, EmergencyState, Scope, record_fleet_metrics};
use infra_events::EventBus;
use infra_state::{StateStore, StateValue};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::{config, controller, shared_memory, wait_status};

const STATE: &str = "infra_emergency_state";
const TRANSITIONS: &str = "infra_emergency_transitions_total";
const RISK: &str = "infra_risk_limit_utilization_ratio";
const HEARTBEAT: &str = "infra_emergency_heartbeat_timestamp_seconds";
const WAIT: Duration = Duration::from_secs(30);

/// One series: name, sorted labels, value (a counter's or a gauge's as f64).
type Series = (String, Vec<(String, String)>, f64);

/// Runs `test` on a paused current-thread runtime with a local debugging recorder, then returns
/// every series recorded (one snapshot: the debugging recorder resets values it reports).
fn recorded<F, Fut>(test: F) -> Vec<Series>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("runtime");
        runtime.block_on(test());
    });
    series(&snapshotter)
}

/// Polls `future` with `recorder` as the local recorder (another recorder than the test's).
struct Recording<'a, F> {
    recorder: &'a DebuggingRecorder,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Recording<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        metrics::with_local_recorder(this.recorder, || this.future.as_mut().poll(cx))
    }
}

fn series(snapshotter: &Snapshotter) -> Vec<Series> {
    let mut all: Vec<Series> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let mut labels: Vec<(String, String)> =
                key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
            labels.sort();
            let value = match value {
                DebugValue::Counter(count) => count as f64,
                DebugValue::Gauge(gauge) => gauge.into_inner(),
                DebugValue::Histogram(_) => f64::NAN,
            };
            (key.key().name().to_owned(), labels, value)
        })
        .collect();
    all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    all
}

/// The series named `name`, as (labels, value), labels as `k=v` joined by `,`.
fn named(all: &[Series], name: &str) -> Vec<(String, f64)> {
    all.iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, labels, value)| {
            (labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","), *value)
        })
        .collect()
}

/// The four state series of `bot`, with `current` at 1, sorted like `named`.
fn state_of(bot: &str, current: &str) -> Vec<(String, f64)> {
    let mut expected: Vec<(String, f64)> = ["ALERT", "HALT", "NORMAL", "SHUTDOWN"]
        .iter()
        .map(|state| (format!("bot={bot},state={state}"), if *state == current { 1.0 } else { 0.0 }))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    expected
}

fn state_series_of(all: &[Series], bot: &str) -> Vec<(String, f64)> {
    named(all, STATE).into_iter().filter(|(labels, _)| labels.starts_with(&format!("bot={bot},"))).collect()
}

#[test]
fn a_halt_sets_the_state_gauge_and_counts_one_transition_with_exact_labels() {
    let mut heartbeat_ms = 0;
    let written = &mut heartbeat_ms;
    let all = recorded(move || async move {
        let emergency =
            EmergencyController::in_memory(&config("b1", true), ControllerOptions::default()).await.expect("starts");
        emergency.halt(emergency.bot_scope().clone(), "alice", "exchange outage").await.expect("halts");
        // The halt comes back on the bus and from the store: still one transition.
        emergency.refresh().await.expect("refresh");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(emergency.state(), EmergencyState::Halt);
        let fleet = emergency.fleet().await.expect("fleet");
        *written = fleet[0].heartbeat.at_ms;
        emergency.close().await.expect("close");
    });
    assert_eq!(state_series_of(&all, "b1"), state_of("b1", "HALT"));
    assert_eq!(named(&all, TRANSITIONS), [("from=NORMAL,scope=bot:b1,source=manual,to=HALT".to_owned(), 1.0)]);
    assert_eq!(named(&all, HEARTBEAT), [("bot=b1".to_owned(), heartbeat_ms as f64 / 1000.0)]);
    assert!(heartbeat_ms > 0);
}

#[test]
fn risk_limit_checks_set_their_utilization_and_rule_transitions_are_counted() {
    let all = recorded(|| async {
        let emergency =
            EmergencyController::in_memory(&config("b1", true), ControllerOptions::default()).await.expect("starts");
        emergency.check_daily_loss(-420.0).await.expect("alert");
        emergency.check_risk_limit("exposure", 2_500.0, 10_000.0, true).await.expect("within");
        emergency.check_daily_loss(-520.0).await.expect("halt");
        assert_eq!(emergency.state(), EmergencyState::Halt);
        // A profit uses none of a loss limit.
        emergency.check_risk_limit("weekly_loss", 100.0, -2_000.0, true).await.expect("within");
        emergency.close().await.expect("close");
    });
    assert_eq!(
        named(&all, RISK),
        [
            ("bot=b1,limit=daily_loss".to_owned(), 1.04),
            ("bot=b1,limit=exposure".to_owned(), 0.25),
            ("bot=b1,limit=weekly_loss".to_owned(), 0.0),
        ]
    );
    assert_eq!(
        named(&all, TRANSITIONS),
        [
            ("from=ALERT,scope=bot:b1,source=rule,to=HALT".to_owned(), 1.0),
            ("from=NORMAL,scope=bot:b1,source=rule,to=ALERT".to_owned(), 1.0),
        ]
    );
    assert_eq!(state_series_of(&all, "b1"), state_of("b1", "HALT"));
}

#[test]
fn a_restored_state_sets_the_gauge_without_counting_a_transition() {
    let all = recorded(|| async {
        let (store, bus) = shared_memory();
        let record = serde_json::json!({
            "seq": 1, "scope": "global", "from": "NORMAL", "to": "SHUTDOWN", "action": "shutdown",
            "source": "manual", "actor": "alice", "reason": "exchange down", "at_ms": 1, "by_bot": "x", "host": "h"
        });
        let value = StateValue::json(&record).expect("json");
        store.set("emergency:audit:global:00000000000000000001", value, None).await.expect("seed");
        let emergency = controller("b1", &store, &bus, ControllerOptions::default()).await;
        assert_eq!(emergency.state(), EmergencyState::Shutdown);
        emergency.close().await.expect("close");
    });
    assert_eq!(state_series_of(&all, "b1"), state_of("b1", "SHUTDOWN"));
    assert!(named(&all, TRANSITIONS).is_empty());
}

#[test]
fn propagation_sets_the_other_controllers_gauge_and_a_process_counts_each_transition_once() {
    let all = recorded(|| async {
        let (store, bus): (Arc<dyn StateStore>, Arc<dyn EventBus>) = shared_memory();
        let a = controller("a", &store, &bus, ControllerOptions::default()).await;
        let b = controller("b", &store, &bus, ControllerOptions::default()).await;
        a.halt(Scope::Global, "alice", "exchange outage").await.expect("global halt");
        wait_status(&b, WAIT, |s| s.state == EmergencyState::Halt).await;
        // A commits a transition of b's scope, which only b applies.
        a.shutdown(b.bot_scope().clone(), "alice", "runaway").await.expect("shutdown b");
        wait_status(&b, WAIT, |s| s.state == EmergencyState::Shutdown).await;
        // Both re-read the store and see both transitions again: nothing more is counted.
        a.refresh().await.expect("refresh a");
        b.refresh().await.expect("refresh b");
        a.close().await.expect("close a");
        b.close().await.expect("close b");
    });
    assert_eq!(state_series_of(&all, "a"), state_of("a", "HALT"));
    assert_eq!(state_series_of(&all, "b"), state_of("b", "SHUTDOWN"));
    assert_eq!(
        named(&all, TRANSITIONS),
        [
            ("from=NORMAL,scope=bot:b,source=manual,to=SHUTDOWN".to_owned(), 1.0),
            ("from=NORMAL,scope=global,source=manual,to=HALT".to_owned(), 1.0),
        ]
    );
}

#[test]
fn the_fleet_export_covers_every_bot_from_their_heartbeats() {
    let fleet_recorder = DebuggingRecorder::new();
    let fleet_snapshot = fleet_recorder.snapshotter();
    let all = recorded(|| async {
        let (store, bus) = shared_memory();
        let a = controller("a", &store, &bus, ControllerOptions::default()).await;
        let b = controller("b", &store, &bus, ControllerOptions::default()).await;
        b.check_daily_loss(-450.0).await.expect("alert");
        a.halt(a.bot_scope().clone(), "alice", "manual stop").await.expect("halt");
        a.refresh().await.expect("refresh a");
        b.refresh().await.expect("refresh b");
        // An operator tool: its controller records no bot gauges and leaves itself out.
        let ops = controller("ops", &store, &bus, ControllerOptions::default().bot_gauges(false)).await;
        let scrape = Recording { recorder: &fleet_recorder, future: Box::pin(ops.record_fleet_metrics()) };
        let fleet = scrape.await.expect("fleet");
        let bots: Vec<&str> = fleet.iter().map(|m| m.heartbeat.bot.as_str()).collect();
        assert_eq!(bots, ["a", "b"]);
        // Idempotent: a second scrape sets the same values.
        metrics::with_local_recorder(&fleet_recorder, || record_fleet_metrics(&fleet));
        for member in &fleet {
            assert!(member.heartbeat.at_ms > 0);
        }
        for c in [a, b, ops] {
            c.close().await.expect("close");
        }
    });
    assert!(state_series_of(&all, "ops").is_empty(), "{all:?}");
    assert!(named(&all, HEARTBEAT).iter().all(|(labels, _)| labels != "bot=ops"));

    let exported = series(&fleet_snapshot);
    let mut states = state_series_of(&exported, "a");
    states.extend(state_series_of(&exported, "b"));
    let mut expected = state_of("a", "HALT");
    expected.extend(state_of("b", "ALERT"));
    assert_eq!(states, expected);
    let beats = named(&exported, HEARTBEAT);
    assert_eq!(beats.iter().map(|(labels, _)| labels.as_str()).collect::<Vec<_>>(), ["bot=a", "bot=b"]);
    assert!(beats.iter().all(|(_, seconds)| *seconds > 1.0e9), "{beats:?}");
    assert_eq!(named(&exported, RISK), [("bot=b,limit=daily_loss".to_owned(), 0.9)]);
    assert!(named(&exported, TRANSITIONS).is_empty());
}
