//! `infractl` without Redis: usage errors and `config show`.

mod support;

use support::{infractl, run, run_args};

#[test]
fn an_unknown_environment_exits_2_and_lists_the_valid_names() {
    let flag = run_args(&["--env", "prodution", "state", "get", "k"]);
    assert_eq!(flag.code(), Some(2), "{flag:?}");
    assert!(flag.stderr.contains("valid environments: development, staging, production"), "{flag:?}");
    assert!(flag.stderr.contains("prodution"), "{flag:?}");

    let mut from_variable = infractl(&["config", "show"]);
    from_variable.env("INFRA_ENV", "prodution");
    let variable = run(from_variable);
    assert_eq!(variable.code(), Some(2), "{variable:?}");
    assert!(variable.stderr.contains("valid environments: development, staging, production"), "{variable:?}");
    assert!(variable.stderr.contains("INFRA_ENV"), "{variable:?}");
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["state"][..],
        &["state", "set", "k", "1", "--ttl", "30"],
        &["emergency", "halt", "--reason", "no scope"],
        &["events", "subscribe", "orders:[A-Z"],
    ] {
        let finished = run_args(args);
        assert_eq!(finished.code(), Some(2), "{args:?}: {finished:?}");
        assert!(!finished.stderr.is_empty(), "{args:?}: {finished:?}");
    }
    let unit = run_args(&["state", "set", "k", "1", "--ttl", "30"]);
    assert!(unit.stderr.contains("`30` has no unit"), "{unit:?}");
}

#[test]
fn config_show_redacts_the_password_and_names_each_source() {
    let mut command = infractl(&[
        "--env",
        "production",
        "--redis-url",
        "redis://:hunter2@cache.internal:6379",
        "-o",
        "text",
        "config",
        "show",
    ]);
    command.env("INFRA_EMERGENCY__BOT_ID", "arb-eu-1");
    let shown = run(command).ok();
    assert!(!shown.stdout.contains("hunter2") && !shown.stderr.contains("hunter2"), "{shown:?}");
    assert!(shown.stdout.starts_with("# environment: production\n"), "{}", shown.stdout);
    let line = |key: &str| {
        shown
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_else(|| panic!("{key}: {}", shown.stdout))
    };
    assert!(line("redis_url").contains("\"redis://:***@cache.internal:6379\""), "{}", shown.stdout);
    assert!(line("redis_url").ends_with("# command-line option `--redis-url`"), "{}", shown.stdout);
    assert!(line("bot_id").ends_with("# environment variable `INFRA_EMERGENCY__BOT_ID`"), "{}", shown.stdout);
    assert!(line("fail_closed").ends_with("# the production preset"), "{}", shown.stdout);
    // The text is TOML: it reads back, secrets redacted.
    let table: toml::Table = shown.stdout.parse().unwrap();
    assert_eq!(table["state"]["redis_url"].as_str(), Some("redis://:***@cache.internal:6379"));
    assert_eq!(table["emergency"]["bot_id"].as_str(), Some("arb-eu-1"));

    let json =
        run_args(&["--env", "production", "--redis-url", "redis://:hunter2@cache.internal:6379", "config", "show"])
            .ok();
    assert!(!json.stdout.contains("hunter2"), "{json:?}");
    let record = json.record();
    assert_eq!(record["config"]["events"]["redis_url"], "redis://:***@cache.internal:6379");
    assert_eq!(record["sources"]["events.redis_url"], "command-line option `--redis-url`");
}

#[test]
fn an_invalid_configuration_is_a_usage_error_naming_the_key() {
    // Production has no Redis URL unless one is given.
    let finished = run_args(&["--env", "production", "config", "show"]);
    assert_eq!(finished.code(), Some(2), "{finished:?}");
    assert!(finished.stderr.contains("state.redis_url"), "{finished:?}");
}

#[test]
fn development_runs_on_memory_backends_and_says_so() {
    let finished = run_args(&["--env", "development", "state", "get", "k"]).ok();
    assert_eq!(finished.record(), serde_json::json!({"key": "k", "value": null}));
    assert!(finished.stderr.contains("in-process memory backends"), "{finished:?}");
}
