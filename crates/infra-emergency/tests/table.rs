//! The transition table through a real controller: one test per row, each source tried on a
//! fresh controller, checking the answer, the applied state and the audit log.

mod support;

use infra_emergency::{
    Action, ControllerOptions, EmergencyController, EmergencyError, EmergencyState, Outcome, Request, Source,
};
use support::{audit_keys, shared_memory};

/// What a request should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Applied: the scope moves to this state, one more audit record.
    To(EmergencyState),
    /// Answered unchanged.
    Same,
    /// Refused by the row.
    Refused,
    /// Refused: that source may not.
    Denied,
}
use EmergencyState::{Alert as ALERT, Halt as HALT, Normal as NORMAL, Shutdown as SHUTDOWN};
use Expect::{Denied, Refused, Same, To};

/// Brings the bot's scope to `state` the way it usually gets there (an alert and a halt by a
/// rule, a shutdown by a person).
async fn bring_to(controller: &EmergencyController, state: EmergencyState) {
    let bot = controller.bot_scope().clone();
    let step = |action, source| Request::new(bot.clone(), action, source, "setup", "setting up the row");
    match state {
        NORMAL => {}
        ALERT => drop(controller.request(step(Action::Alert, Source::Rule)).await.unwrap()),
        HALT => drop(controller.request(step(Action::Halt, Source::Rule)).await.unwrap()),
        SHUTDOWN => drop(controller.request(step(Action::Shutdown, Source::Manual)).await.unwrap()),
    }
    assert_eq!(controller.state(), state);
}

async fn check_row(from: EmergencyState, action: Action, expected: [Expect; 3]) {
    for (source, expect) in [Source::Rule, Source::Manual, Source::System].into_iter().zip(expected) {
        let (store, bus) = shared_memory();
        let controller = support::controller("row", &store, &bus, ControllerOptions::default()).await;
        bring_to(&controller, from).await;
        let before = audit_keys(store.as_ref(), "bot:row").await.len();
        let request = Request::new(controller.bot_scope().clone(), action, source, "tester", "row under test");
        let answer = controller.request(request).await;
        let after = audit_keys(store.as_ref(), "bot:row").await.len();
        let context = format!("{from} {action} by {source}: {answer:?}");
        match expect {
            To(state) => {
                let Ok(Outcome::Applied(record)) = &answer else { panic!("{context}") };
                assert_eq!(
                    (record.from, record.to, record.source, record.action),
                    (from, state, source, action),
                    "{context}"
                );
                assert_eq!((controller.state(), after), (state, before + 1), "{context}");
            }
            Same => {
                assert!(matches!(answer, Ok(Outcome::Unchanged { state, .. }) if state == from), "{context}");
                assert_eq!((controller.state(), after), (from, before), "{context}");
            }
            Refused => {
                assert!(matches!(answer, Err(EmergencyError::TransitionRefused { .. })), "{context}");
                assert_eq!((controller.state(), after), (from, before), "{context}");
            }
            Denied => {
                assert!(
                    matches!(answer, Err(EmergencyError::SourceNotAllowed { origin, .. }) if origin == source),
                    "{context}"
                );
                assert_eq!((controller.state(), after), (from, before), "{context}");
            }
        }
        controller.close().await.unwrap();
    }
}

macro_rules! rows {
    ($($name:ident: $from:ident $action:ident => $rule:expr, $manual:expr, $system:expr;)*) => {$(
        #[tokio::test(start_paused = true)]
        async fn $name() {
            check_row($from, Action::$action, [$rule, $manual, $system]).await;
        }
    )*};
}

rows! {
    normal_alert: NORMAL Alert => To(ALERT), To(ALERT), Denied;
    normal_clear_alert: NORMAL ClearAlert => Same, Same, Same;
    normal_halt: NORMAL Halt => To(HALT), To(HALT), To(HALT);
    normal_resume: NORMAL Resume => Same, Same, Same;
    normal_shutdown: NORMAL Shutdown => Denied, To(SHUTDOWN), To(SHUTDOWN);
    normal_rearm: NORMAL Rearm => Refused, Refused, Refused;
    alert_alert: ALERT Alert => Same, Same, Same;
    alert_clear_alert: ALERT ClearAlert => To(NORMAL), To(NORMAL), Denied;
    alert_halt: ALERT Halt => To(HALT), To(HALT), To(HALT);
    alert_resume: ALERT Resume => Denied, To(NORMAL), Denied;
    alert_shutdown: ALERT Shutdown => Denied, To(SHUTDOWN), To(SHUTDOWN);
    alert_rearm: ALERT Rearm => Refused, Refused, Refused;
    halt_alert: HALT Alert => Same, Same, Same;
    halt_clear_alert: HALT ClearAlert => Same, Same, Same;
    halt_halt: HALT Halt => Same, Same, Same;
    halt_resume: HALT Resume => Denied, To(NORMAL), Denied;
    halt_shutdown: HALT Shutdown => Denied, To(SHUTDOWN), To(SHUTDOWN);
    halt_rearm: HALT Rearm => Refused, Refused, Refused;
    shutdown_alert: SHUTDOWN Alert => Same, Same, Same;
    shutdown_clear_alert: SHUTDOWN ClearAlert => Same, Same, Same;
    shutdown_halt: SHUTDOWN Halt => Same, Same, Same;
    shutdown_resume: SHUTDOWN Resume => Refused, Refused, Refused;
    shutdown_shutdown: SHUTDOWN Shutdown => Same, Same, Same;
    shutdown_rearm: SHUTDOWN Rearm => Denied, To(HALT), Denied;
}

#[tokio::test(start_paused = true)]
async fn a_rule_does_not_clear_an_alert_a_person_raised() {
    let (store, bus) = shared_memory();
    let controller = support::controller("row", &store, &bus, ControllerOptions::default()).await;
    let bot = controller.bot_scope().clone();
    controller.request(Request::new(bot.clone(), Action::Alert, Source::Manual, "alice", "watch BTC")).await.unwrap();
    let cleared =
        controller.request(Request::new(bot, Action::ClearAlert, Source::Rule, "rule:x", "calm")).await.unwrap();
    assert_eq!(
        cleared,
        Outcome::Unchanged {
            scope: controller.bot_scope().clone(),
            state: ALERT,
            why: "a rule clears only an alert a rule raised"
        }
    );
}
