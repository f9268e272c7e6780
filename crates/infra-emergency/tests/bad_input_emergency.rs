//! Bad input for the emergency controller (listed in docs/reliability.md, "Bad input"): garbage
//! on its channel, corrupt or wrongly typed records in the store, garbage heartbeats. None
//! crashes a controller or lifts a halt; a record that cannot be read keeps the bot halted
//! (fail-closed) until it is repaired.
#![cfg(all(feature = "memory", feature = "redis"))]

mod support;

use std::{sync::Arc, time::Duration};

use infra_emergency::{ControllerOptions, EmergencyController, EmergencyState, STATE_UNAVAILABLE, Scope};
use infra_events::EventBus;
use infra_state::StateStore;
use infra_testkit::RedisServer;
use support::{config, eventually, redis_backends, wait_status};

const TIMEOUT: Duration = Duration::from_secs(2);
const WAIT: Duration = Duration::from_secs(20);

fn backends(server: &RedisServer, bot: &str) -> (Arc<dyn StateStore>, Arc<dyn EventBus>) {
    redis_backends(&server.url(), "ns", bot, TIMEOUT)
}

fn options() -> ControllerOptions {
    ControllerOptions::default()
        .resync_interval(Duration::from_millis(100))
        .heartbeat_ttl(Duration::from_secs(5))
        .resume_cooldown(Duration::ZERO)
}

async fn start(server: &RedisServer, bot: &str) -> EmergencyController {
    let (store, bus) = backends(server, bot);
    EmergencyController::start(&config(bot, true), store, bus, options()).await.expect("starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_emergency_channel_changes_nothing() {
    let server = RedisServer::start().expect("redis-server must be installed");
    let controller = start(&server, "a").await;
    let garbage = [
        "not json",
        "",
        "{\"v\":1",
        r#"{"scope":"global","to":"HALT"}"#,
        r#"{"v":1,"id":"x","channel":"emergency","ts":1,"source":"s","payload":{"seq":"one"}}"#,
        r#"{"v":1,"id":"x","channel":"emergency","ts":1,"source":"s","payload":[1,2,3]}"#,
    ];
    for message in garbage {
        server.command(&["PUBLISH", "ns:emergency", message]).unwrap();
    }
    controller.refresh().await.unwrap();
    assert_eq!(controller.state(), EmergencyState::Normal, "{:?}", controller.status());
    assert!(controller.halt(Scope::Global, "ops", "after the garbage").await.unwrap().is_applied());
    assert!(!controller.can_trade());
    controller.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_wrongly_typed_state_pointer_is_ignored_in_favour_of_the_log() {
    let server = RedisServer::start().unwrap();
    let first = start(&server, "a").await;
    assert!(first.halt(Scope::Global, "ops", "venue down").await.unwrap().is_applied());
    first.close().await.unwrap();
    // The pointer is only a shortcut into the log: garbage there must not hide the halt.
    for (value, command) in [("garbage", "SET"), ("a hash", "HSET")] {
        server.command(&["DEL", "ns:emergency:state:global"]).unwrap();
        match command {
            "SET" => server.command(&["SET", "ns:emergency:state:global", "{not json"]).unwrap(),
            _ => server.command(&["HSET", "ns:emergency:state:global", "seq", "99"]).unwrap(),
        };
        let controller = start(&server, "b").await;
        let status = wait_status(&controller, WAIT, |s| !s.store_unavailable).await;
        assert_eq!(status.state, EmergencyState::Halt, "{value}: {status:?}");
        assert_eq!(status.reason, "venue down", "{value}: {status:?}");
        if command == "SET" {
            // The background task replaces the corrupt pointer with the latest record.
            eventually(WAIT, "the pointer repaired", || async {
                let pointer = server.command(&["GET", "ns:emergency:state:global"]).unwrap().as_text()?;
                pointer.contains("venue down").then_some(())
            })
            .await;
        }
        controller.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_audit_record_keeps_the_bot_halted_until_it_is_repaired() {
    let server = RedisServer::start().unwrap();
    server.command(&["SET", "ns:emergency:audit:global:00000000000000000001", "{\"seq\": \"garbage"]).unwrap();
    let controller = start(&server, "a").await;
    let status = controller.status();
    assert_eq!((status.state, status.reason.as_str()), (EmergencyState::Halt, STATE_UNAVAILABLE), "{status:?}");
    let error = controller.refresh().await.unwrap_err();
    assert!(error.to_string().contains("emergency:audit:global:00000000000000000001"), "{error}");
    assert!(!controller.can_trade());

    // Repaired (the record removed): the next re-read lifts the fail-closed halt.
    server.command(&["DEL", "ns:emergency:audit:global:00000000000000000001"]).unwrap();
    wait_status(&controller, WAIT, |s| s.state == EmergencyState::Normal).await;
    controller.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_heartbeats_are_left_out_of_the_fleet() {
    let server = RedisServer::start().unwrap();
    let controller = start(&server, "a").await;
    server.command(&["SET", "ns:emergency:heartbeat:text", "not json"]).unwrap();
    server.command(&["SET", "ns:emergency:heartbeat:other", r#"{"bot":"other"}"#]).unwrap();
    server.command(&["HSET", "ns:emergency:heartbeat:hash", "bot", "hash"]).unwrap();
    let fleet = eventually(WAIT, "our own heartbeat", || async {
        let fleet = controller.fleet().await.unwrap();
        (!fleet.is_empty()).then_some(fleet)
    })
    .await;
    assert_eq!(fleet.iter().map(|m| m.heartbeat.bot.as_str()).collect::<Vec<_>>(), ["a"]);
    controller.close().await.unwrap();
}
