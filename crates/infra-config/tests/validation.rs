//! The exact text of every validation error, each naming its key and where the value came from.

#![allow(clippy::result_large_err, reason = "figment::Jail closures return figment::Error (Figment#139)")]

use figment::Jail;
use infra_config::{Config, ConfigError, Environment, Origin, ProblemKind};

fn problems(err: &ConfigError) -> Vec<String> {
    err.problems().iter().map(ToString::to_string).collect()
}

#[test]
fn redis_backend_without_url_names_where_the_backend_was_chosen() {
    Jail::expect_with(|jail| {
        jail.set_env("INFRA_EVENTS__BACKEND", "redis");
        let err = Config::load().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid development configuration (1 problem):\n  \
             - `events.redis_url`: required when `events.backend` is `redis` \
             (`events.backend` set by environment variable `INFRA_EVENTS__BACKEND`)"
        );
        let problem = &err.problems()[0];
        assert_eq!(problem.kind, ProblemKind::Missing);
        assert_eq!(problem.origin, Some(Origin::EnvVar("INFRA_EVENTS__BACKEND".into())));
        Ok(())
    });
    Jail::expect_with(|jail| {
        let _ = jail;

        let err = Config::loader().environment(Environment::Production).load().unwrap_err();
        assert_eq!(
            problems(&err),
            [
                "`events.redis_url`: required when `events.backend` is `redis` (`events.backend` set by the production preset)",
                "`state.redis_url`: required when `state.backend` is `redis` (`state.backend` set by the production preset)",
            ]
        );
        Ok(())
    });
}

#[test]
fn every_problem_at_once_with_file_keys_and_variable_names() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "infra.toml",
            r#"
            [production.state]
            redis_url = "redis://admin:hunter2@cache:notaport"
            namespace = "prod eu"

            [production.emergency]
            daily_loss_limit = 500.0
            alert_fraction = 1.5

            [production.resilience.breaker]
            failure_threshold = 0
            window_size = 10
            minimum_calls = 20

            [production.resilience.retry]
            max_attempts = "three"
            "#,
        )?;
        jail.set_env("INFRA_ENV", "production");
        jail.set_env("INFRA_EVENTS__REDIS_URL", "http://bus:6379");
        jail.set_env("INFRA_STATE__OPERATION_TIMEOUT_MS", "0");
        jail.set_env("INFRA_STATE__REDIS_ULR", "redis://x");
        jail.set_env("INFRA_LOGGING__FORMAT", "xml");
        jail.set_env("INFRA_LOGGING__LEVEL", "loud");
        jail.set_env("INFRA_RESILIENCE__TIMEOUT__PER_ATTEMPT_MS", "-5");

        let err = Config::load().unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            problems(&err),
            [
                "`emergency.alert_fraction`: must be strictly between 0 and 1 (the share of a limit that raises an \
                 alert), got 1.5 (set by file `infra.toml`, key `production.emergency.alert_fraction`)",
                "`emergency.daily_loss_limit`: must be negative, got 500: it is the daily P&L at which trading halts, \
                 so a loss of 500 is written -500.0 (set by file `infra.toml`, key `production.emergency.daily_loss_limit`)",
                "`events.redis_url`: malformed redis url `http://bus:6379`: unsupported scheme `http`, expected one of: \
                 redis, rediss, redis-cluster, rediss-cluster, redis-sentinel, rediss-sentinel \
                 (set by environment variable `INFRA_EVENTS__REDIS_URL`)",
                "`logging.format`: unknown variant: found `xml`, expected ``json` or `console`` \
                 (set by environment variable `INFRA_LOGGING__FORMAT`)",
                "`logging.level`: unknown level `loud` in `loud`; valid levels: trace, debug, info, warn, error, off \
                 (set by environment variable `INFRA_LOGGING__LEVEL`)",
                "`resilience.breaker.failure_threshold`: must be at least 1, got 0 \
                 (set by file `infra.toml`, key `production.resilience.breaker.failure_threshold`)",
                "`resilience.breaker.minimum_calls`: must be between 1 and `resilience.breaker.window_size` (10), got 20 \
                 (set by file `infra.toml`, key `production.resilience.breaker.minimum_calls`)",
                "`resilience.retry.max_attempts`: invalid type: found string \"three\", expected u32 \
                 (set by file `infra.toml`, key `production.resilience.retry.max_attempts`)",
                "`resilience.timeout.per_attempt_ms`: invalid value signed int `-5`, expected u64 \
                 (set by environment variable `INFRA_RESILIENCE__TIMEOUT__PER_ATTEMPT_MS`)",
                "`state.namespace`: `prod eu` contains ` `; only ASCII letters, digits, `_`, `-` and `.` are allowed \
                 (set by file `infra.toml`, key `production.state.namespace`)",
                "`state.operation_timeout_ms`: must be greater than 0 ms \
                 (set by environment variable `INFRA_STATE__OPERATION_TIMEOUT_MS`)",
                "`state.redis_ulr`: unknown key; did you mean `state.redis_url`? \
                 (set by environment variable `INFRA_STATE__REDIS_ULR`)",
                "`state.redis_url`: malformed redis url `redis://admin:***@cache:notaport`: invalid port number \
                 (set by file `infra.toml`, key `production.state.redis_url`)",
            ]
        );
        assert!(text.starts_with("invalid production configuration (13 problems):\n  - "), "{text}");
        Ok(())
    });
}

#[test]
fn unknown_keys_and_tables_in_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "infra.toml",
            r#"
            [prodution.state]
            namespace = "typo"

            [default]
            stat = { namespace = "x" }

            [default.emergency]
            bot_idd = "x"
            "#,
        )?;
        let err = Config::load().unwrap_err();
        assert_eq!(
            problems(&err),
            [
                "`emergency.bot_idd`: unknown key; did you mean `emergency.bot_id`? \
                 (set by file `infra.toml`, key `default.emergency.bot_idd`)",
                "`prodution`: unknown top-level table; the tables of a config file are default, development, staging, \
                 production, with sections inside them (e.g. `[production.state]`) (set by file `infra.toml`, key `prodution`)",
                "`stat`: unknown key; did you mean `state`? (set by file `infra.toml`, key `default.stat`)",
            ]
        );
        assert!(err.problems().iter().all(|p| p.kind == ProblemKind::UnknownKey));
        Ok(())
    });
}

#[test]
fn wrong_types_are_reported_for_every_key_not_only_the_first() {
    Jail::expect_with(|jail| {
        jail.set_env("INFRA_STATE__BACKEND", "postgres");
        jail.set_env("INFRA_EMERGENCY__FAIL_CLOSED", "maybe");
        jail.set_env("INFRA_RESILIENCE__RETRY__MULTIPLIER", "fast");
        jail.set_env("INFRA_EMERGENCY__BOT_ID", "bot 1");
        let err = Config::load().unwrap_err();
        assert_eq!(
            problems(&err),
            [
                "`emergency.bot_id`: `bot 1` contains ` `; only ASCII letters, digits, `_`, `-` and `.` are allowed \
                 (set by environment variable `INFRA_EMERGENCY__BOT_ID`)",
                "`emergency.fail_closed`: invalid type: found string \"maybe\", expected a boolean \
                 (set by environment variable `INFRA_EMERGENCY__FAIL_CLOSED`)",
                "`resilience.retry.multiplier`: invalid type: found string \"fast\", expected f64 \
                 (set by environment variable `INFRA_RESILIENCE__RETRY__MULTIPLIER`)",
                "`state.backend`: unknown variant: found `postgres`, expected ``memory` or `redis`` \
                 (set by environment variable `INFRA_STATE__BACKEND`)",
            ]
        );
        assert_eq!(err.problems()[1].kind, ProblemKind::WrongType);
        Ok(())
    });
}

#[test]
fn a_section_given_as_a_value_is_a_type_error() {
    Jail::expect_with(|jail| {
        jail.set_env("INFRA_STATE", "redis");
        let err = Config::load().unwrap_err();
        assert_eq!(
            problems(&err),
            ["`state`: invalid type: found string \"redis\", expected struct StateConfig \
              (set by environment variable `INFRA_STATE`)"]
        );
        Ok(())
    });
}

#[test]
fn unknown_environment_names_the_variable_and_the_valid_ones() {
    Jail::expect_with(|jail| {
        jail.set_env("INFRA_ENV", "qa");
        let err = Config::load().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown environment `qa` in environment variable `INFRA_ENV`; valid environments: development, staging, production"
        );
        assert!(matches!(err, ConfigError::UnknownEnvironment { .. }));
        Ok(())
    });
}

#[test]
fn toml_syntax_errors_name_the_file_and_position() {
    Jail::expect_with(|jail| {
        jail.create_file("infra.toml", "[development.state\nnamespace = 1\n")?;
        let err = Config::load().unwrap_err();
        let problems = problems(&err);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("cannot read `infra.toml`: TOML parse error at line 1, column 19"),
            "{problems:?}"
        );
        assert_eq!(err.problems()[0].kind, ProblemKind::Unreadable);
        Ok(())
    });
}

#[test]
fn cross_key_rules() {
    Jail::expect_with(|jail| {
        jail.set_env("INFRA_RESILIENCE__RETRY__INITIAL_DELAY_MS", "500");
        jail.set_env("INFRA_RESILIENCE__RETRY__MAX_DELAY_MS", "100");
        jail.set_env("INFRA_RESILIENCE__RETRY__MULTIPLIER", "0.5");
        jail.set_env("INFRA_RESILIENCE__TIMEOUT__OVERALL_MS", "1000");
        jail.set_env("INFRA_RESILIENCE__BREAKER__FAILURE_RATE_THRESHOLD", "0");
        let err = Config::load().unwrap_err();
        assert_eq!(
            problems(&err),
            [
                "`resilience.breaker.failure_rate_threshold`: must be greater than 0 and at most 1, got 0 \
                 (set by environment variable `INFRA_RESILIENCE__BREAKER__FAILURE_RATE_THRESHOLD`)",
                "`resilience.retry.max_delay_ms`: must be at least `resilience.retry.initial_delay_ms` (500 ms), got 100 ms \
                 (set by environment variable `INFRA_RESILIENCE__RETRY__MAX_DELAY_MS`)",
                "`resilience.retry.multiplier`: must be a finite number of at least 1.0, got 0.5 \
                 (set by environment variable `INFRA_RESILIENCE__RETRY__MULTIPLIER`)",
                "`resilience.timeout.overall_ms`: must be at least `resilience.timeout.per_attempt_ms` (10000 ms), got 1000 ms \
                 (set by environment variable `INFRA_RESILIENCE__TIMEOUT__OVERALL_MS`)",
            ]
        );
        Ok(())
    });
}

#[test]
fn overrides_are_named_as_such() {
    let err = Config::loader()
        .without_file()
        .without_env_vars()
        .set("emergency.daily_loss_limit", 0.0)
        .set("emergency.nope", 1)
        .load()
        .unwrap_err();
    assert_eq!(
        problems(&err),
        [
            "`emergency.daily_loss_limit`: must be negative, got 0: it is the daily P&L at which trading halts, \
             so a loss of 500 is written -500.0 (set by an override in code)",
            "`emergency.nope`: unknown key (set by an override in code)",
        ]
    );
}
