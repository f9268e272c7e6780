//! `infractl` end to end: the real binary as a process against a real Redis.

mod support;

use std::time::Duration;

use infra_testkit::{RedisServer, Reply};
use serde_json::json;
use support::{Running, eventually, infractl, run, run_args};

/// `--env staging --redis-url URL` and the rest.
fn on<'a>(url: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--env", "staging", "--redis-url", url];
    all.extend_from_slice(args);
    all
}

fn integer(reply: Reply) -> i64 {
    match reply {
        Reply::Integer(n) => n,
        other => panic!("not an integer: {other:?}"),
    }
}

#[test]
fn state_round_trip_in_json_lines() {
    let server = RedisServer::builder().password("hunter2").start().expect("redis-server starts");
    let url = server.url();
    let state = |args: &[&str]| run_args(&on(&url, args)).ok();

    let set = state(&["state", "set", "position:BTC", r#"{"qty":1.5,"side":"long"}"#, "--ttl", "30s"]).record();
    assert_eq!(set, json!({"key": "position:BTC", "set": true, "ttl_ms": 30_000}));
    let ttl = integer(server.command(&["PTTL", "staging:position:BTC"]).unwrap());
    assert!((1..=30_000).contains(&ttl), "the key lives under the namespace with its TTL: {ttl}");

    let got = state(&["state", "get", "position:BTC"]).record();
    assert_eq!(got, json!({"key": "position:BTC", "value": {"qty": 1.5, "side": "long"}}));
    let refused = state(&["state", "set", "position:BTC", "0", "--nx"]).record();
    assert_eq!(refused["set"], false);

    assert_eq!(state(&["state", "incr", "trades"]).record()["value"], 1);
    assert_eq!(state(&["state", "incr", "trades", "--by", "5"]).record()["value"], 6);
    assert_eq!(state(&["state", "incr", "trades", "--by", "-2"]).record()["value"], 4);

    let keys: Vec<_> = state(&["state", "keys"]).records().into_iter().map(|r| r["key"].clone()).collect();
    assert_eq!(keys, [json!("position:BTC"), json!("trades")], "sorted, and infractl's own heartbeat is not listed");
    let prefixed = state(&["state", "keys", "pos"]).records();
    assert_eq!(prefixed, [json!({"key": "position:BTC"})]);

    assert_eq!(state(&["state", "del", "position:BTC"]).record(), json!({"key": "position:BTC", "deleted": true}));
    assert_eq!(state(&["state", "del", "position:BTC"]).record()["deleted"], false);
    assert_eq!(state(&["state", "get", "position:BTC"]).record(), json!({"key": "position:BTC", "value": null}));
    assert_eq!(run_args(&on(&url, &["-o", "text", "state", "get", "trades"])).ok().stdout, "4\n");

    let not_json = run_args(&on(&url, &["state", "set", "k", "plain text"]));
    assert_eq!(not_json.code(), Some(2), "{not_json:?}");
    assert!(not_json.stderr.contains("is not JSON"), "{not_json:?}");
}

#[test]
fn events_subscribe_receives_what_events_publish_sent_and_foreign_bytes_raw() {
    let server = RedisServer::start().expect("redis-server starts");
    let url = server.url();
    let subscriber =
        Running::spawn(infractl(&on(&url, &["events", "subscribe", "orders:*", "--count", "2", "--timeout", "20s"])));
    // Subscribed once Redis counts its pattern subscription.
    eventually("the subscriber's PSUBSCRIBE", support::DEADLINE, || {
        integer(server.command(&["PUBSUB", "NUMPAT"]).unwrap()) >= 1
    });

    let published =
        run_args(&on(&url, &["events", "publish", "orders:BTC", r#"{"qty":2}"#, "--correlation-id", "exec-42"]))
            .ok()
            .record();
    assert_eq!(published["channel"], "orders:BTC");
    assert_eq!(published["redis_receivers"], 1);
    server.command(&["PUBLISH", "staging:orders:raw", "not json at all"]).unwrap();

    let finished = subscriber.finish().ok();
    let records = finished.records();
    assert_eq!(records.len(), 2, "{finished:?}");
    let ours = records.iter().find(|r| r["channel"] == "orders:BTC").expect("the published event");
    assert_eq!(ours["data"], json!({"qty": 2}));
    assert_eq!(ours["correlation_id"], "exec-42");
    assert_eq!(ours["id"], published["id"]);
    let foreign = records.iter().find(|r| r["channel"] == "orders:raw").expect("the foreign event");
    assert_eq!((foreign["data"].clone(), foreign["raw"].clone()), (json!("not json at all"), json!(true)));
    assert_eq!(foreign["correlation_id"], json!(null));
}

#[test]
fn a_subscription_that_times_out_before_its_count_fails() {
    let server = RedisServer::start().expect("redis-server starts");
    let url = server.url();
    let waited = run_args(&on(&url, &["events", "subscribe", "quiet", "--count", "1", "--timeout", "300ms"]));
    assert_eq!(waited.code(), Some(1), "{waited:?}");
    assert!(waited.stderr.contains("timed out after 300ms: 0 of 1 events received"), "{waited:?}");
    let bounded = run_args(&on(&url, &["events", "subscribe", "quiet", "--timeout", "200ms"])).ok();
    assert_eq!(bounded.stdout, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_through_the_cli_stops_a_controller_in_another_process() {
    use infra_facade::{
        config::{Config, Environment},
        emergency::{ControllerOptions, EmergencyController},
    };

    let server = RedisServer::start().expect("redis-server starts");
    let url = server.url();
    let config = Config::loader()
        .environment(Environment::Staging)
        .without_file()
        .without_env_vars()
        .set("state.redis_url", url.as_str())
        .set("events.redis_url", url.as_str())
        .set("emergency.bot_id", "arb-1")
        .load()
        .unwrap();
    let options = ControllerOptions::default().resync_interval(Duration::from_millis(200));
    let bot = EmergencyController::from_config(&config, options).await.unwrap();
    assert!(bot.can_trade());

    let cli = |args: &[&str]| {
        let args: Vec<String> = on(&url, args).into_iter().map(str::to_owned).collect();
        tokio::task::spawn_blocking(move || run_args(&args.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    let halted = cli(&["emergency", "halt", "--global", "--reason", "drill", "--operator", "alice"]).await.unwrap();
    let record = halted.ok().record();
    assert_eq!(
        (record["scope"].clone(), record["to"].clone(), record["actor"].clone()),
        (json!("global"), json!("HALT"), json!("alice"))
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while bot.can_trade() {
        assert!(tokio::time::Instant::now() < deadline, "the bot still trades after the CLI's halt");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(bot.status().reason, "drill");

    let status = cli(&["emergency", "status", "--bot", "arb-1"]).await.unwrap().ok().record();
    assert_eq!(status["bot"], "arb-1");
    assert_eq!(status["state"], "HALT");
    assert_eq!((status["reason"].clone(), status["actor"].clone()), (json!("drill"), json!("alice")));
    assert_eq!(status["scope"], "global");
    assert!(status["since_ms"].as_u64().is_some(), "{status}");
    let text = cli(&["-o", "text", "emergency", "status", "--bot", "arb-1"]).await.unwrap().ok().stdout;
    assert!(text.starts_with("arb-1  HALT (global scope, by alice, 20"), "{text}");
    assert!(text.ends_with("): drill\n"), "{text}");

    // The fleet view: the bot, not infractl's own controller, once it heartbeats the halt.
    let mut fleet: Vec<serde_json::Value> = Vec::new();
    while fleet.len() != 1 || fleet[0]["applied_latest_global"] != true {
        assert!(tokio::time::Instant::now() < deadline + Duration::from_secs(10), "fleet: {fleet:?}");
        fleet = cli(&["emergency", "status", "--all"]).await.unwrap().ok().records();
    }
    assert_eq!((fleet[0]["bot"].clone(), fleet[0]["applied_state"].clone()), (json!("arb-1"), json!("HALT")));
    assert!(fleet[0]["heartbeat_age_ms"].as_u64().is_some(), "{fleet:?}");

    let refused = cli(&["emergency", "rearm", "--global", "--reason", "nothing to rearm"]).await.unwrap();
    assert_eq!(refused.code(), Some(1), "{refused:?}");
    assert!(refused.stderr.contains("rearm refused on the global scope in HALT"), "{refused:?}");

    let resumed =
        cli(&["emergency", "resume", "--global", "--reason", "drill over", "--operator", "alice"]).await.unwrap();
    assert_eq!(resumed.ok().record()["to"], "NORMAL");
    while !bot.can_trade() {
        assert!(tokio::time::Instant::now() < deadline + Duration::from_secs(20), "the bot never resumed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let history = cli(&["emergency", "history", "--global"]).await.unwrap().ok().records();
    let actions: Vec<_> = history.iter().map(|r| (r["seq"].clone(), r["action"].clone())).collect();
    assert_eq!(actions, [(json!(2), json!("resume")), (json!(1), json!("halt"))]);
    bot.close().await.unwrap();
}

#[test]
fn emergency_watch_prints_each_transition_as_it_happens() {
    let server = RedisServer::start().expect("redis-server starts");
    let url = server.url();
    let mut watcher = Running::spawn(infractl(&on(
        &url,
        &["emergency", "watch", "--bot", "arb-2", "--count", "2", "--timeout", "20s"],
    )));
    watcher.wait_for_stderr("watching emergency transitions");
    // Another bot's transition is not shown; the global ones and arb-2's are.
    for args in [
        &["emergency", "halt", "--bot", "arb-9", "--reason", "other bot"][..],
        &["emergency", "halt", "--global", "--reason", "everyone"],
        &["emergency", "shutdown", "--bot", "arb-2", "--reason", "this bot"],
    ] {
        run_args(&on(&url, args)).ok();
    }
    let finished = watcher.finish().ok();
    let seen: Vec<_> = finished.records().iter().map(|r| (r["scope"].clone(), r["to"].clone())).collect();
    assert_eq!(seen, [(json!("global"), json!("HALT")), (json!("bot:arb-2"), json!("SHUTDOWN"))]);
}

#[test]
fn an_unreachable_redis_exits_1_naming_it_with_the_password_redacted() {
    let mut server = RedisServer::builder().password("hunter2").start().expect("redis-server starts");
    let url = server.url();
    server.stop().unwrap();

    let failed = run_args(&on(&url, &["state", "get", "k"]));
    assert_eq!(failed.code(), Some(1), "{failed:?}");
    assert!(!failed.stderr.contains("hunter2") && !failed.stdout.contains("hunter2"), "{failed:?}");
    let redacted = format!("redis://default:***@127.0.0.1:{}", server.port());
    assert!(failed.stderr.contains(&redacted), "{failed:?}");
    assert!(failed.stderr.contains("cannot connect the state store"), "{failed:?}");

    let health = run_args(&on(&url, &["health"]));
    assert_eq!(health.code(), Some(1), "{health:?}");
    assert!(!health.stderr.contains("hunter2") && !health.stdout.contains("hunter2"), "{health:?}");
    let report = health.record();
    assert_eq!((report["healthy"].clone(), report["state"]["reachable"].clone()), (json!(false), json!(false)));
    assert!(health.stderr.contains("unhealthy: the state store is unreachable"), "{health:?}");
}

#[test]
fn health_is_healthy_on_a_reachable_redis() {
    let server = RedisServer::start().expect("redis-server starts");
    let report = run_args(&on(&server.url(), &["health"])).ok().record();
    assert_eq!(report["healthy"], true);
    assert_eq!(
        (report["state"]["backend"].clone(), report["events"]["reachable"].clone()),
        (json!("redis"), json!(true))
    );
    let text = run(infractl(&on(&server.url(), &["-o", "text", "health"]))).ok();
    assert!(text.stdout.starts_with("healthy (staging)\n"), "{text:?}");
}

#[test]
fn the_infra_variables_configure_it_as_the_options_do() {
    let server = RedisServer::start().expect("redis-server starts");
    let with_variables = |args: &[&str]| {
        let mut command = infractl(args);
        command
            .env("INFRA_ENV", "staging")
            .env("INFRA_STATE__REDIS_URL", server.url())
            .env("INFRA_EVENTS__REDIS_URL", server.url())
            .env("INFRA_STATE__NAMESPACE", "ops");
        run(command).ok()
    };
    with_variables(&["state", "set", "k", "[1,2]"]);
    assert_eq!(server.command(&["GET", "ops:k"]).unwrap().as_text().as_deref(), Some("[1,2]"));
    assert_eq!(with_variables(&["state", "get", "k"]).record()["value"], json!([1, 2]));
    // An option wins over the variable.
    with_variables(&["--namespace", "desk", "state", "set", "k", "3"]);
    assert_eq!(server.command(&["GET", "desk:k"]).unwrap().as_text().as_deref(), Some("3"));
    let shown = with_variables(&["config", "show"]).record();
    assert_eq!(shown["sources"]["state.redis_url"], "environment variable `INFRA_STATE__REDIS_URL`");
}

#[test]
fn durable_events_reach_a_subscriber_through_its_consumer_group() {
    let server = RedisServer::start().expect("redis-server starts");
    let url = server.url();
    let durable = |args: &[&str]| {
        let mut command = infractl(&on(&url, args));
        command.env("INFRA_EVENTS__MODE", "durable");
        command
    };
    let mut subscriber = Running::spawn(durable(&["events", "subscribe", "fills", "--count", "1", "--timeout", "20s"]));
    // `subscribe` returns once its private consumer group exists.
    subscriber.wait_for_stderr("subscribed to `fills`");
    let groups = server.command(&["XINFO", "GROUPS", "staging:stream:fills"]).unwrap();
    assert!(matches!(&groups, Reply::Array(Some(groups)) if groups.len() == 1), "{groups:?}");

    let published = run(durable(&["events", "publish", "fills", r#"{"px":101.5}"#])).ok().record();
    assert!(published["position"].is_string(), "{published}");
    let received = subscriber.finish().ok().record();
    assert_eq!(
        (received["data"].clone(), received["position"].clone()),
        (json!({"px": 101.5}), published["position"].clone())
    );
}
