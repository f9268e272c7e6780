//! The facade on a Redis user limited to its namespace (`~ns:*`, `&ns:*`): `create`, `health`,
//! state, events (both modes) and a halt all work, which proves every component keeps to the
//! namespace; a wrong password fails `create` with an error, a `Debug` and log lines that never
//! show the password.
#![cfg(feature = "redis")]

use std::{
    error::Error as _,
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use infra_facade::{
    FacadeError, Infrastructure,
    config::{Config, Environment, EventsConfig, EventsMode, StateConfig},
    prelude::*,
};
use infra_testkit::RedisServer;

const PASSWORD: &str = "Zq9-bot-secret";

/// A server whose first user (`admin`, the kit's own probes) may do anything and whose `bot`
/// may touch only `ns:*` keys and channels.
fn server() -> RedisServer {
    let server = RedisServer::builder().acl_user("admin", "admin-pw").start().expect("redis-server must be installed");
    server.add_namespace_user("bot", PASSWORD, "ns").unwrap();
    server
}

fn staging(url: &str, mode: EventsMode) -> Config {
    let timeout = Duration::from_secs(2);
    let mut config = Config::for_env(Environment::Staging);
    config.logging.level = "warn".to_owned();
    config.state = StateConfig::redis(url).unwrap().namespace("ns").operation_timeout(timeout).connect_timeout(timeout);
    config.events = EventsConfig::redis(url)
        .unwrap()
        .namespace("ns")
        .mode(mode)
        .operation_timeout(timeout)
        .connect_timeout(timeout);
    config.emergency.bot_id = "acl-bot".to_owned();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_limited_to_its_namespace_runs_the_whole_stack() {
    let server = server();
    for mode in [EventsMode::Ephemeral, EventsMode::Durable] {
        let config = staging(&server.url_with("bot", PASSWORD), mode);
        let infra = Infrastructure::builder(config).skip_logging().build().await.unwrap();
        let report = infra.health().await;
        assert!(report.healthy, "{mode:?}: {report:?}");
        assert!(!format!("{report:?} {infra:?}").contains(PASSWORD));

        infra.state().set_json("price:BTC", &50_000, None).await.unwrap();
        assert_eq!(infra.state().get_json::<i64>("price:BTC").await.unwrap(), Some(50_000));
        let mut fills =
            infra.events().stream(Topic::Channel("fills".into()), SubscribeOptions::default()).await.unwrap();
        infra.events().publish_json("fills", &1).await.unwrap();
        let event = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut fills)).await;
        assert_eq!(event.unwrap().unwrap().decode::<i64>().unwrap(), 1);
        assert!(infra.emergency().halt(Scope::Global, "ops", "acl check").await.unwrap().is_applied());
        assert!(!infra.emergency().can_trade());
        infra.emergency().resume(Scope::Global, "ops", "acl check").await.ok();
        drop(fills);
        infra.close().await.unwrap();
    }
}

/// A `Write` into a buffer the test reads afterwards.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_create_and_shows_the_password_nowhere() {
    let server = server();
    let wrong = "Zq9-wrong-guess";
    let mut config = staging(&server.url_with("bot", wrong), EventsMode::Ephemeral);
    config.logging.level = "trace".to_owned();
    let debug_config = format!("{config:?}");
    let captured = Captured::default();
    let error = Infrastructure::builder(config).log_writer(captured.clone()).build().await.unwrap_err();
    assert!(matches!(error, FacadeError::State { action: "connect", .. }), "{error:?}");

    let mut rendered = format!("{error} {error:?} {debug_config}");
    let mut cause = error.source();
    while let Some(next) = cause {
        rendered.push_str(&format!(" {next} {next:?}"));
        cause = next.source();
    }
    assert!(rendered.contains("auth") || rendered.contains("AUTH") || rendered.contains("WRONGPASS"), "{rendered}");
    // The guard of a failed build is released, so the log lines are flushed by now.
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(logs.contains("fred::protocol"), "the client's own trace lines are captured too: {logs}");
    for text in [&rendered, &logs] {
        assert!(!text.contains("Zq9"), "{text}");
    }
}
