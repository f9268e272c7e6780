//! The controller on the in-process store and bus (tokio's paused clock for time).

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use infra_emergency::{
    Action, ControllerOptions, EmergencyController, EmergencyError, EmergencyEvent, EmergencyState, LimitOptions,
    LimitStatus, Outcome, Request, STATE_UNAVAILABLE, Scope, Source,
};
use infra_events::{EventBus, memory::MemoryBus};
use infra_state::{StateStore, StateStoreExt};
use support::{Switchable, audit_keys, config, controller, shared_memory, wait_status};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(start_paused = true)]
async fn a_halt_is_persisted_before_it_acts_and_a_restart_restores_it() {
    let (store, bus) = shared_memory();
    let first = controller("b1", &store, &bus, ControllerOptions::default()).await;
    let mut events = first.events();
    let outcome = first.halt(first.bot_scope().clone(), "alice", "exchange outage").await.unwrap();
    let record = outcome.record().expect("applied").clone();
    assert_eq!(
        (record.seq, record.from, record.to, record.source),
        (1, EmergencyState::Normal, EmergencyState::Halt, Source::Manual)
    );
    // Persisted: the audit log holds it (the commit); the pointer follows in the background.
    assert_eq!(audit_keys(store.as_ref(), "bot:b1").await, ["emergency:audit:bot:b1:00000000000000000001"]);
    first.refresh().await.unwrap();
    let pointer: serde_json::Value = store.get_json("emergency:state:bot:b1").await.unwrap().expect("pointer");
    assert_eq!(pointer["to"], "HALT");
    let Ok(EmergencyEvent::Transition { record: notified, previous, effective }) = events.recv().await else {
        panic!("an event")
    };
    assert_eq!((notified, previous, effective), (record.clone(), EmergencyState::Normal, EmergencyState::Halt));
    first.close().await.unwrap();
    drop(first);

    let second = controller("b1", &store, &bus, ControllerOptions::default()).await;
    assert!(!second.can_trade() && second.can_reduce());
    let Err(EmergencyError::TradingRefused { state, scope, reason }) = second.assert_can_trade() else {
        panic!("refused")
    };
    assert_eq!((state, scope, reason.as_str()), (EmergencyState::Halt, Scope::Bot("b1".into()), "exchange outage"));
    assert_eq!(second.history(second.bot_scope(), 10).await.unwrap(), [record]);
    second.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_breaches_give_one_halt_event_and_one_audit_record() {
    let (store, bus) = shared_memory();
    let emergency = controller("b1", &store, &bus, ControllerOptions::default()).await;
    let halts = Arc::new(AtomicUsize::new(0));
    let counted = halts.clone();
    let _callback = emergency.subscribe(move |event| {
        if event.record().is_some_and(|r| r.to == EmergencyState::Halt) {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut events = emergency.events();
    let checks = (0..1000).map(|i| {
        let emergency = emergency.clone();
        tokio::spawn(async move { emergency.check_daily_loss(-500.0 - f64::from(i)).await })
    });
    let results = futures::future::join_all(checks).await;
    let applied = results
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .filter(|c| c.outcome.as_ref().is_some_and(Outcome::is_applied))
        .count();
    assert_eq!(applied, 1);
    assert_eq!(audit_keys(store.as_ref(), "bot:b1").await.len(), 1);
    let event = events.recv().await.unwrap();
    assert_eq!(event.record().map(|r| (r.to, r.source)), Some((EmergencyState::Halt, Source::Rule)));
    emergency.refresh().await.unwrap();
    assert!(events.try_recv().is_err(), "one event only");
    wait_until(|| halts.load(Ordering::SeqCst) == 1).await;
    emergency.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn four_controllers_racing_on_the_global_scope_commit_one_halt() {
    let (store, bus) = shared_memory();
    let mut controllers = Vec::new();
    for i in 0..4 {
        controllers.push(controller(&format!("b{i}"), &store, &bus, ControllerOptions::default()).await);
    }
    let halts = controllers.iter().flat_map(|c| {
        (0..250).map(move |i| {
            let c = c.clone();
            tokio::spawn(async move { c.halt(Scope::Global, format!("op{i}"), "venue down").await })
        })
    });
    let results = futures::future::join_all(halts.collect::<Vec<_>>()).await;
    let applied = results.into_iter().filter(|r| r.as_ref().unwrap().as_ref().unwrap().is_applied()).count();
    assert_eq!(applied, 1);
    assert_eq!(audit_keys(store.as_ref(), "global").await.len(), 1);
    for c in &controllers {
        wait_status(c, WAIT, |s| s.state == EmergencyState::Halt && s.global_seq == 1).await;
        c.close().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn limits_alert_then_halt_and_only_a_person_resumes() {
    let (store, bus) = shared_memory();
    let emergency = controller("b1", &store, &bus, ControllerOptions::default()).await;
    let calm = emergency.check_daily_loss(-100.0).await.unwrap();
    assert_eq!((calm.status, calm.outcome, calm.state), (LimitStatus::Within, None, EmergencyState::Normal));
    let near = emergency.check_daily_loss(-400.0).await.unwrap();
    assert_eq!((near.status, near.state), (LimitStatus::Alert, EmergencyState::Alert));
    assert!(emergency.can_trade());
    let breached = emergency.check_daily_loss(-520.0).await.unwrap();
    assert_eq!((breached.status, breached.state), (LimitStatus::Breached, EmergencyState::Halt));
    let record = breached.outcome.unwrap().record().unwrap().clone();
    assert_eq!(record.actor, "rule:daily_loss");
    assert_eq!(record.metrics.get("daily_loss"), Some(&-520.0));
    assert_eq!(record.metrics.get("daily_loss.limit"), Some(&-500.0));
    assert_eq!(record.reason, "risk limit `daily_loss` breached: -520 reached the limit -500");
    // Back within: the halt stays; a rule cannot resume.
    let back = emergency.check_daily_loss(-10.0).await.unwrap();
    assert_eq!((back.status, back.state), (LimitStatus::Within, EmergencyState::Halt));
    let rule_resume = Request::new(emergency.bot_scope().clone(), Action::Resume, Source::Rule, "rule:x", "calm");
    let refused = emergency.request(rule_resume).await.unwrap_err();
    assert_eq!(refused.to_string(), "resume refused on the bot:b1 scope in HALT: a rule request may not do it");
    emergency.resume(emergency.bot_scope().clone(), "alice", "reviewed").await.unwrap();
    assert_eq!(emergency.state(), EmergencyState::Normal);
    let actions: Vec<Action> =
        emergency.history(emergency.bot_scope(), 10).await.unwrap().iter().map(|r| r.action).collect();
    assert_eq!(actions, [Action::Resume, Action::Halt, Action::Alert]);
    emergency.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn positive_limits_several_names_and_consecutive_confirmations() {
    let (store, bus) = shared_memory();
    let emergency = controller("b1", &store, &bus, ControllerOptions::default()).await;
    emergency.set_limit_options("spread", LimitOptions::confirmations(3));
    // Exposure (positive limit) alerts; spread near too; exposure back within: alert stays while spread alerts.
    assert_eq!(
        emergency.check_risk_limit("exposure", 9_000.0, 10_000.0, true).await.unwrap().status,
        LimitStatus::Alert
    );
    assert_eq!(emergency.check_risk_limit("spread", 0.9, 1.0, true).await.unwrap().status, LimitStatus::Alert);
    assert_eq!(
        emergency.check_risk_limit("exposure", 1_000.0, 10_000.0, true).await.unwrap().state,
        EmergencyState::Alert
    );
    // Spread breaches twice, recovers (the count restarts), then breaches three times in a row.
    for expected in [1, 2] {
        let check = emergency.check_risk_limit("spread", 1.5, 1.0, true).await.unwrap();
        assert_eq!(
            (check.status, check.state),
            (LimitStatus::Pending { breaches: expected, needed: 3 }, EmergencyState::Alert)
        );
    }
    let calm = emergency.check_risk_limit("spread", 0.1, 1.0, true).await.unwrap();
    assert_eq!(
        (calm.status, calm.state),
        (LimitStatus::Within, EmergencyState::Normal),
        "every limit calm: alert cleared"
    );
    for _ in 0..2 {
        assert_eq!(emergency.check_risk_limit("spread", 1.5, 1.0, true).await.unwrap().state, EmergencyState::Alert);
    }
    let third = emergency.check_risk_limit("spread", 1.5, 1.0, true).await.unwrap();
    assert_eq!((third.status, third.state), (LimitStatus::Breached, EmergencyState::Halt));
    // Without auto-halt a breach only alerts.
    let other = controller("b2", &store, &bus, ControllerOptions::default()).await;
    let check = other.check_risk_limit("exposure", 20_000.0, 10_000.0, false).await.unwrap();
    assert_eq!((check.status, check.state), (LimitStatus::Breached, EmergencyState::Alert));
    for (current, limit, why) in [
        (f64::NAN, -500.0, "the value must be finite, got NaN"),
        (1.0, 0.0, "the limit must be finite and not zero, got 0"),
        (1.0, f64::INFINITY, "the limit must be finite and not zero, got inf"),
    ] {
        let error = other.check_risk_limit("x", current, limit, true).await.unwrap_err();
        assert_eq!(error.to_string(), format!("invalid risk limit `x`: {why}"));
    }
    assert!(matches!(other.check_risk_limit(" ", 1.0, 2.0, true).await, Err(EmergencyError::InvalidLimit { .. })));
    emergency.close().await.unwrap();
    other.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn resume_waits_for_the_cooldown_and_shutdown_needs_a_rearm() {
    let (store, bus) = shared_memory();
    let options = ControllerOptions::default().resume_cooldown(Duration::from_secs(300));
    let emergency = controller("b1", &store, &bus, options).await;
    let bot = emergency.bot_scope().clone();
    emergency.check_daily_loss(-900.0).await.unwrap();
    tokio::time::advance(Duration::from_secs(100)).await;
    let early = emergency.resume(bot.clone(), "alice", "too early").await.unwrap_err();
    assert!(
        matches!(early, EmergencyError::CooldownActive { remaining, .. } if remaining == Duration::from_secs(200)),
        "{early}"
    );
    tokio::time::advance(Duration::from_secs(200)).await;
    emergency.resume(bot.clone(), "alice", "cooled down").await.unwrap();
    assert!(emergency.can_trade());

    emergency.shutdown(bot.clone(), "bob", "kill it").await.unwrap();
    assert!(!emergency.can_reduce());
    assert!(emergency.assert_can_reduce().unwrap_err().to_string().starts_with("reducing refused: SHUTDOWN"));
    let resume = emergency.resume(bot.clone(), "alice", "go").await.unwrap_err();
    assert_eq!(resume.to_string(), "resume refused on the bot:b1 scope in SHUTDOWN: a shutdown must be re-armed first");
    emergency.rearm(bot.clone(), "bob", "fixed").await.unwrap();
    assert_eq!(emergency.state(), EmergencyState::Halt);
    tokio::time::advance(Duration::from_secs(300)).await;
    emergency.resume(bot, "alice", "go").await.unwrap();
    assert!(emergency.can_trade());
    emergency.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_global_halt_reaches_every_bot_and_shows_in_the_fleet() {
    let (store, bus) = shared_memory();
    let a = controller("a", &store, &bus, ControllerOptions::default()).await;
    let b = controller("b", &store, &bus, ControllerOptions::default()).await;
    a.halt(Scope::Global, "alice", "venue incident").await.unwrap();
    let status = wait_status(&b, WAIT, |s| s.global_seq == 1).await;
    assert_eq!(
        (status.state, status.scope, status.reason.as_str()),
        (EmergencyState::Halt, Scope::Global, "venue incident")
    );
    // A scope of another bot, set from an operator's controller.
    a.halt(Scope::Bot("b".into()), "alice", "b misbehaves").await.unwrap();
    wait_status(&b, WAIT, |s| s.bot_seq == 1).await;
    let fleet = support::eventually(WAIT, "both heartbeats applied", || async {
        let fleet = a.fleet().await.unwrap();
        (fleet.len() == 2 && fleet.iter().all(|m| m.applied_latest_global && m.heartbeat.bot_seq <= 1)).then_some(fleet)
    })
    .await;
    assert_eq!(fleet.iter().map(|m| m.heartbeat.bot.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(fleet.iter().all(|m| m.heartbeat.state == EmergencyState::Halt && m.heartbeat.pid == std::process::id()));
    a.resume(Scope::Global, "alice", "venue back").await.unwrap();
    wait_status(&b, WAIT, |s| s.global_seq == 2 && s.scope == Scope::Bot("b".into())).await;
    assert!(!b.can_trade(), "its own halt remains");
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_missed_message_is_caught_by_the_periodic_reread() {
    let (store, bus) = shared_memory();
    let deaf_bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new("elsewhere"));
    let options = ControllerOptions::default().resync_interval(Duration::from_secs(1));
    let a = controller("a", &store, &bus, options.clone()).await;
    let deaf = controller("deaf", &store, &deaf_bus, options).await;
    a.halt(Scope::Global, "alice", "incident").await.unwrap();
    let started = tokio::time::Instant::now();
    wait_status(&deaf, WAIT, |s| s.state == EmergencyState::Halt).await;
    assert!(started.elapsed() <= Duration::from_millis(1100), "within one resync: {:?}", started.elapsed());
    a.close().await.unwrap();
    deaf.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn fail_closed_start_halts_until_the_store_answers_and_then_applies_it() {
    let store = Switchable::new(false);
    let shared: Arc<dyn StateStore> = Arc::new(store.clone());
    let bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new("test"));
    let writer = controller("b1", &shared, &bus, ControllerOptions::default()).await;
    writer.halt(Scope::Global, "alice", "persisted halt").await.unwrap();
    writer.close().await.unwrap();
    store.set_down(true);

    let emergency =
        EmergencyController::start(&config("b2", true), shared.clone(), bus.clone(), ControllerOptions::default())
            .await
            .unwrap();
    let mut events = emergency.events();
    let status = emergency.status();
    assert_eq!(
        (status.state, status.reason.as_str(), status.store_unavailable),
        (EmergencyState::Halt, STATE_UNAVAILABLE, true)
    );
    let refused = emergency.assert_can_trade().unwrap_err();
    assert_eq!(refused.to_string(), "trading refused: HALT imposed by the bot:b2 scope: state unavailable");
    assert!(matches!(emergency.resume(Scope::Global, "alice", "go").await, Err(EmergencyError::Store { .. })));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(emergency.status().reason, STATE_UNAVAILABLE, "still halted while the store is down");

    store.set_down(false);
    let status = wait_status(&emergency, WAIT, |s| !s.store_unavailable).await;
    assert_eq!(
        (status.state, status.scope, status.reason.as_str()),
        (EmergencyState::Halt, Scope::Global, "persisted halt")
    );
    let Ok(EmergencyEvent::Transition { record, .. }) = events.recv().await else { panic!("the halt applied") };
    assert_eq!(record.reason, "persisted halt");
    let Ok(EmergencyEvent::StoreRecovered { effective, .. }) = events.recv().await else { panic!("recovered") };
    assert_eq!(effective, EmergencyState::Halt);
    emergency.close().await.unwrap();

    // Fail-open: trades on NORMAL while the store is down.
    store.set_down(true);
    let open =
        EmergencyController::start(&config("b3", false), shared, bus, ControllerOptions::default()).await.unwrap();
    assert!(open.can_trade() && open.status().store_unavailable);
    store.set_down(false);
    wait_status(&open, WAIT, |s| s.state == EmergencyState::Halt).await;
    open.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_escalation_the_store_fails_applies_at_once_and_is_committed_later() {
    let store = Switchable::new(false);
    let shared: Arc<dyn StateStore> = Arc::new(store.clone());
    let bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new("test"));
    let emergency = controller("b1", &shared, &bus, ControllerOptions::default()).await;
    store.set_down(true);
    let error = emergency.check_daily_loss(-800.0).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("the emergency state store failed while committing transition 1 of the bot:b1 scope"),
        "{error}"
    );
    assert!(!emergency.can_trade(), "applied at once");
    assert!(emergency.status().reason.ends_with("(not committed yet: the store failed)"));
    store.set_down(false);
    let status = wait_status(&emergency, WAIT, |s| s.bot_seq == 1).await;
    assert_eq!(status.reason, "risk limit `daily_loss` breached: -800 reached the limit -500");
    assert_eq!(audit_keys(store.inner(), "bot:b1").await.len(), 1);
    emergency.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_store_that_lost_its_records_gets_them_back_and_never_resumes() {
    let (store, bus) = shared_memory();
    let emergency = controller("b1", &store, &bus, ControllerOptions::default()).await;
    emergency.halt(Scope::Global, "alice", "incident").await.unwrap();
    for key in store.keys("emergency:").await.unwrap() {
        store.delete(&key).await.unwrap();
    }
    support::eventually(WAIT, "the record written back", || async {
        store.exists("emergency:audit:global:00000000000000000001").await.unwrap().then_some(())
    })
    .await;
    assert!(!emergency.can_trade());
    let fresh = controller("b2", &store, &bus, ControllerOptions::default()).await;
    assert_eq!(fresh.status().reason, "incident");
    emergency.close().await.unwrap();
    fresh.close().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn close_and_drop_stop_the_background_work() {
    let store: Arc<dyn StateStore> = Arc::new(infra_state::memory::MemoryStore::new("test"));
    let bus = Arc::new(MemoryBus::new("test"));
    let dyn_bus: Arc<dyn EventBus> = bus.clone();
    let emergency = controller("b1", &store, &dyn_bus, ControllerOptions::default()).await;
    assert_eq!(bus.subscriber_count(), 1);
    assert!(store.exists("emergency:heartbeat:b1").await.unwrap());
    emergency.close().await.unwrap();
    emergency.close().await.unwrap();
    assert_eq!(bus.subscriber_count(), 0);
    assert!(!store.exists("emergency:heartbeat:b1").await.unwrap());
    assert!(matches!(emergency.halt(Scope::Global, "a", "b").await, Err(EmergencyError::Closed)));

    let dropped = controller("b2", &store, &dyn_bus, ControllerOptions::default()).await;
    let clone = dropped.clone();
    drop(dropped);
    assert_eq!(bus.subscriber_count(), 1, "a clone keeps it alive");
    drop(clone);
    assert_eq!(bus.subscriber_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn bad_input_is_a_typed_error() {
    let (store, bus) = shared_memory();
    let emergency = controller("b1", &store, &bus, ControllerOptions::default()).await;
    let empty = emergency.halt(Scope::Global, " ", "why").await.unwrap_err();
    assert_eq!(empty.to_string(), "invalid actor: it is empty");
    let nan = Request::new(Scope::Global, Action::Halt, Source::Manual, "a", "b").metric("x", f64::NAN);
    assert!(matches!(emergency.request(nan).await, Err(EmergencyError::InvalidArgument { what: "metrics", .. })));
    let bad_scope = emergency.halt(Scope::Bot("a b".into()), "alice", "why").await.unwrap_err();
    assert_eq!(bad_scope.to_string(), "invalid bot id `a b`: only letters, digits, `_`, `-` and `.` are allowed");
    let rearm = emergency.rearm(Scope::Global, "a", "b").await.unwrap_err();
    assert_eq!(rearm.to_string(), "rearm refused on the global scope in NORMAL: only a shutdown is re-armed");
    assert!(emergency.history(&Scope::Global, 0).await.unwrap().is_empty());
    let mut bad = config("b1", true);
    bad.alert_fraction = 1.5;
    let error =
        EmergencyController::start(&bad, store.clone(), bus.clone(), ControllerOptions::default()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid emergency configuration `emergency.alert_fraction`: must be strictly between 0 and 1, got 1.5"
    );
    bad = config("bad id", true);
    assert!(matches!(
        EmergencyController::start(&bad, store, bus, ControllerOptions::default()).await,
        Err(EmergencyError::InvalidConfig { .. })
    ));
    emergency.close().await.unwrap();
}

/// Waits (on tokio's clock) until `condition` holds.
async fn wait_until(condition: impl Fn() -> bool) {
    support::eventually(WAIT, "condition", || async { condition().then_some(()) }).await;
}

#[test]
fn starting_outside_a_tokio_runtime_is_a_typed_error() {
    use std::{
        future::Future,
        pin::pin,
        task::{Context, Poll, Waker},
    };
    let (store, bus) = shared_memory();
    let config = config("b1", true);
    let mut start = pin!(EmergencyController::start(&config, store, bus, ControllerOptions::default()));
    let Poll::Ready(Err(error)) = start.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("refused at once")
    };
    assert_eq!(error.to_string(), "the emergency controller needs a tokio runtime: start it from inside one");
}
