//! A bot author's first program: sections built in code, and one call to load an environment.
//!
//! Everything that reads the process's variables or working directory runs inside
//! `figment::Jail`, which serializes those tests and gives each its own temporary directory.

#![allow(clippy::result_large_err, reason = "figment::Jail closures return figment::Error (Figment#139)")]

use std::time::Duration;

use figment::Jail;
use infra_config::{
    Backend, Config, ConfigError, DEFAULT_NAMESPACE, Environment, EventsConfig, EventsMode, RedisUrl, StateConfig,
};

#[test]
fn sections_are_built_in_code_with_a_string_url_and_setters() -> Result<(), Box<dyn std::error::Error>> {
    let state = StateConfig::redis("redis://bot:hunter2@cache.internal:6379/0")?
        .namespace("arb-eu")
        .operation_timeout(Duration::from_millis(250))
        .connect_timeout(Duration::from_secs(1));
    state.validate()?;
    assert_eq!(state.backend, Backend::Redis);
    assert_eq!(state.redis_url.as_ref().map(RedisUrl::expose), Some("redis://bot:hunter2@cache.internal:6379/0"));
    assert_eq!((state.namespace.as_str(), state.operation_timeout), ("arb-eu", Duration::from_millis(250)));
    assert!(!format!("{state:?}").contains("hunter2"), "the password stays redacted");

    let events = EventsConfig::redis(RedisUrl::parse("redis://bus.internal:6379")?)?
        .namespace("arb-eu")
        .mode(EventsMode::Durable)
        .stream_max_len(10_000)
        .claim_after(Duration::from_secs(5))
        .max_deliveries(3);
    events.validate()?;
    assert_eq!((events.mode, events.stream_max_len, events.max_deliveries), (EventsMode::Durable, 10_000, 3));

    let memory = StateConfig::memory();
    assert_eq!(
        (memory.backend, memory.redis_url.as_ref(), memory.namespace.as_str()),
        (Backend::Memory, None, DEFAULT_NAMESPACE)
    );
    Ok(())
}

#[test]
fn a_bad_url_or_bad_values_are_typed_errors_without_secrets() {
    let err = StateConfig::redis("http://bot:hunter2@cache.internal").unwrap_err();
    assert!(err.reason().starts_with("unsupported scheme `http`"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");

    // The same rules as a loaded config, every problem at once.
    let err = EventsConfig::memory().namespace("").mode(EventsMode::Durable).validate().unwrap_err();
    let keys: Vec<_> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["events.namespace", "events.mode"]);
    assert!(matches!(err, ConfigError::InvalidSection { section: "events", .. }), "{err:?}");

    // A section placed in a `Config` is checked by `Config::validate` too.
    let mut config = Config::for_env(Environment::Development);
    config.state = StateConfig::memory().connect_timeout(Duration::ZERO);
    let keys: Vec<_> = config.validate().unwrap_err().problems().iter().map(|p| p.key.clone()).collect();
    assert_eq!(keys, ["state.connect_timeout_ms"]);
}

#[test]
fn load_env_reads_the_file_and_variables_of_the_named_environment() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "infra.toml",
            r#"
            [production]
            state.redis_url = "redis://:s3cret@prod-cache:6379"
            events.redis_url = "redis://prod-bus:6379"

            [staging.state]
            namespace = "from-the-staging-table"
            "#,
        )?;
        jail.set_env("INFRA_EMERGENCY__BOT_ID", "arb-btc-1");
        // The argument names the environment; `INFRA_ENV` is not read.
        jail.set_env("INFRA_ENV", "staging");

        let config = Config::load_env("production").expect("valid production config");
        assert_eq!(config.environment, Environment::Production);
        assert_eq!(config.state.redis_url.as_ref().map(RedisUrl::host), Some("prod-cache"));
        assert_eq!(config.state.namespace, "prod", "the staging table is not read");
        assert_eq!(config.emergency.bot_id, "arb-btc-1");
        assert!(config.emergency.fail_closed, "the production preset underneath");

        assert_eq!(Config::load_env("PROD").expect("short forms are accepted"), config);

        let err = Config::load_env("prodution").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown environment `prodution` in the argument of `Config::load_env`; \
             valid environments: development, staging, production"
        );

        // Validation still runs: a production load without its URLs names them.
        jail.create_file("infra.toml", "")?;
        let err = Config::load_env("production").unwrap_err();
        let keys: Vec<_> = err.problems().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["events.redis_url", "state.redis_url"]);
        Ok(())
    });
}

#[test]
fn replica_acknowledgements_are_read_from_the_file_and_checked() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "infra.toml",
            r#"
            [production]
            state.redis_url = "redis://prod-cache:6379"
            state.replica_acks = 1
            state.replica_ack_timeout_ms = 250
            events.redis_url = "redis://prod-bus:6379"
            events.mode = "durable"
            "#,
        )?;
        jail.set_env("INFRA_EVENTS__REPLICA_ACKS", "2");
        let config = Config::load_env("production").expect("valid production config");
        assert_eq!((config.state.replica_acks, config.state.replica_ack_timeout), (1, Duration::from_millis(250)));
        assert_eq!((config.events.replica_acks, config.events.replica_ack_timeout), (2, Duration::from_secs(1)));

        // Pub/sub keeps nothing a replica could acknowledge: the setting is refused, not ignored.
        jail.set_env("INFRA_EVENTS__MODE", "ephemeral");
        let err = Config::load_env("production").unwrap_err();
        let problem = &err.problems()[0];
        assert_eq!(problem.key, "events.replica_acks");
        assert!(problem.to_string().contains("durable"), "{problem}");
        Ok(())
    });
    let err = StateConfig::memory().replica_acks(1, Duration::from_millis(500)).validate().unwrap_err();
    assert_eq!(err.problems()[0].key, "state.replica_acks");
    let err = StateConfig::redis("redis://cache:6379").unwrap().replica_acks(1, Duration::ZERO).validate().unwrap_err();
    assert_eq!(err.problems()[0].key, "state.replica_ack_timeout_ms");
}
