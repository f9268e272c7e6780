//! Every layer and its precedence: preset < file ([default] < [env]) < variables < overrides.

#![allow(clippy::result_large_err, reason = "figment::Jail closures return figment::Error (Figment#139)")]

use std::time::Duration;

use figment::Jail;
use infra_config::{Backend, Config, ConfigError, Environment, Jitter, LogFormat};

fn load(jail: &Jail) -> Result<Config, ConfigError> {
    let _ = jail;
    Config::load()
}

#[test]
fn presets_alone_when_nothing_else_is_set() {
    Jail::expect_with(|jail| {
        let config = load(jail).expect("development preset is valid");
        assert_eq!(config, Config::for_env(Environment::Development));

        jail.set_env("INFRA_ENV", "staging");
        let config = load(jail).expect("staging preset is valid");
        assert_eq!(config, Config::for_env(Environment::Staging));
        Ok(())
    });
}

#[test]
fn infra_env_selects_the_environment_and_its_table() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "infra.toml",
            r#"
            [default.state]
            namespace = "shared"

            [production]
            state.redis_url = "redis://prod-cache:6379"
            events.redis_url = "redis://prod-bus:6379"
            emergency.bot_id = "arb-1"

            [staging.state]
            namespace = "only-staging"
            "#,
        )?;
        jail.set_env("INFRA_ENV", "PROD");
        let config = load(jail).expect("valid");
        assert_eq!(config.environment, Environment::Production);
        assert_eq!(config.state.backend, Backend::Redis);
        assert_eq!(config.state.namespace, "shared", "[default] applies to every environment");
        assert_eq!(config.state.redis_url.unwrap().host(), "prod-cache");
        assert_eq!(config.events.redis_url.unwrap().host(), "prod-bus");
        assert_eq!(config.emergency.bot_id, "arb-1");
        assert!(config.emergency.fail_closed, "production preset kept where the file is silent");

        jail.set_env("INFRA_ENV", "staging");
        let config = load(jail).expect("valid");
        assert_eq!(config.state.namespace, "only-staging", "the environment's table beats [default]");
        assert_eq!(config.emergency.bot_id, "default", "another environment's table is not read");
        Ok(())
    });
}

#[test]
fn variables_beat_the_file_and_overrides_beat_variables() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "infra.toml",
            r#"
            [development.resilience.retry]
            max_attempts = 7
            jitter = "equal"
            initial_delay_ms = 50

            [development.logging]
            format = "json"
            "#,
        )?;
        jail.set_env("INFRA_RESILIENCE__RETRY__MAX_ATTEMPTS", "9");
        jail.set_env("INFRA_LOGGING__LEVEL", "warn,infra_state=trace");
        jail.set_env("INFRA_STATE__OPERATION_TIMEOUT_MS", "750");
        jail.set_env("INFRA_EMERGENCY__AUTO_HALT_ON_LIMIT", "true");
        jail.set_env("INFRA_EMERGENCY__DAILY_LOSS_LIMIT", "-42.5");

        let config = load(jail).expect("valid");
        assert_eq!(config.resilience.retry.max_attempts, 9, "variable beats file");
        assert_eq!(config.resilience.retry.jitter, Jitter::Equal, "file beats preset");
        assert_eq!(config.resilience.retry.initial_delay, Duration::from_millis(50));
        assert_eq!(config.logging.format, LogFormat::Json);
        assert_eq!(config.logging.level, "warn,infra_state=trace");
        assert_eq!(config.state.operation_timeout, Duration::from_millis(750));
        assert!(config.emergency.auto_halt_on_limit);
        assert_eq!(config.emergency.daily_loss_limit, -42.5);

        let config = Config::loader()
            .set("resilience.retry.max_attempts", 11)
            .set("logging.format", "console")
            .load()
            .expect("valid");
        assert_eq!(config.resilience.retry.max_attempts, 11, "override beats variable");
        assert_eq!(config.logging.format, LogFormat::Console, "override beats file");
        assert_eq!(config.state.operation_timeout, Duration::from_millis(750));
        Ok(())
    });
}

#[test]
fn explicit_environment_and_file_beat_infra_env_and_infra_config() {
    Jail::expect_with(|jail| {
        jail.create_file("other.toml", "[staging.state]\nnamespace = \"from-other\"\n")?;
        jail.create_file("named.toml", "[staging.state]\nnamespace = \"from-named\"\n")?;
        jail.set_env("INFRA_ENV", "production");
        jail.set_env("INFRA_CONFIG", "named.toml");

        let config = Config::loader().environment(Environment::Staging).load().expect("valid");
        assert_eq!(config.environment, Environment::Staging);
        assert_eq!(config.state.namespace, "from-named", "INFRA_CONFIG names the file");

        let config = Config::loader().environment(Environment::Staging).file("other.toml").load().expect("valid");
        assert_eq!(config.state.namespace, "from-other");

        let config = Config::loader().environment(Environment::Staging).without_file().load().expect("valid");
        assert_eq!(config.state.namespace, "staging");
        Ok(())
    });
}

#[test]
fn without_env_vars_ignores_every_infra_variable() {
    Jail::expect_with(|jail| {
        jail.set_env("INFRA_ENV", "production");
        jail.set_env("INFRA_STATE__NAMESPACE", "ignored");
        jail.set_env("INFRA_NOT_A_KEY", "ignored too");
        let config = Config::loader().without_env_vars().load().expect("valid");
        assert_eq!(config, Config::for_env(Environment::Development));
        Ok(())
    });
}

#[test]
fn the_file_is_optional_unless_named() {
    Jail::expect_with(|jail| {
        let _ = jail;
        let err = Config::loader().file("missing.toml").load().unwrap_err();
        assert_eq!(err.to_string(), "config file `missing.toml` does not exist (named by ConfigLoader::file)");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("INFRA_CONFIG", "nope.toml");
        let err = Config::load().unwrap_err();
        assert_eq!(
            err.to_string(),
            "config file `nope.toml` does not exist (named by environment variable `INFRA_CONFIG`)"
        );
        Ok(())
    });
}

#[test]
fn file_values_are_not_searched_in_parent_directories() {
    Jail::expect_with(|jail| {
        jail.create_dir("child")?;
        jail.create_file("infra.toml", "[development.state]\nnamespace = \"parent\"\n")?;
        std::env::set_current_dir(jail.directory().join("child")).expect("cd child");
        let config = Config::load().expect("valid");
        assert_eq!(config.state.namespace, "dev", "only ./infra.toml is read");
        Ok(())
    });
}
