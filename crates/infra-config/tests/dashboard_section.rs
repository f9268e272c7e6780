//! `[dashboard]`: loopback and the trading_bot channels by default, no token; the token comes
//! from the file or `INFRA_DASHBOARD__TOKEN` and is redacted in every rendering.

#![allow(clippy::result_large_err, reason = "figment::Jail closures return figment::Error (Figment#139)")]

use std::net::SocketAddr;

use figment::Jail;
use infra_config::{Config, DashboardConfig, Environment, ProblemKind, Secret};

#[test]
fn loopback_and_no_token_by_default() {
    for environment in [Environment::Development, Environment::Staging, Environment::Production] {
        let dashboard = Config::for_env(environment).dashboard;
        assert_eq!(dashboard, DashboardConfig::default());
        assert_eq!(dashboard.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(dashboard.token, None);
        assert_eq!(dashboard.prices_pattern, "trading_bot.prices.*");
        assert_eq!(dashboard.executions_pattern, "trading_bot.executions.*");
    }
}

#[test]
fn the_file_and_the_variables_set_it_and_the_token_never_shows() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "infra.toml",
            "[default.dashboard]\nlisten = \"127.0.0.1:9000\"\ntoken = \"file-s3cret\"\nprices_pattern = \"px.*\"\n",
        )?;
        let config = Config::load().expect("valid");
        assert_eq!(config.dashboard.listen, "127.0.0.1:9000".parse::<SocketAddr>().unwrap());
        assert_eq!(config.dashboard.token.as_ref().map(Secret::expose), Some("file-s3cret"));
        assert_eq!(config.dashboard.prices_pattern, "px.*");
        assert_eq!(config.dashboard.executions_pattern, "trading_bot.executions.*");
        let dump = config.to_toml();
        assert!(dump.contains("token = \"<redacted>\""), "{dump}");
        assert!(!dump.contains("file-s3cret"), "{dump}");
        assert!(!format!("{config:?}").contains("file-s3cret"));

        jail.set_env("INFRA_DASHBOARD__TOKEN", "env-s3cret");
        let config = Config::load().expect("valid");
        assert_eq!(config.dashboard.token.as_ref().map(Secret::expose), Some("env-s3cret"));
        assert!(!config.to_toml().contains("env-s3cret"));

        // Digits only: the variable is read as a number, still a token.
        jail.set_env("INFRA_DASHBOARD__TOKEN", "123456");
        let config = Config::load().expect("valid");
        assert_eq!(config.dashboard.token.as_ref().map(Secret::expose), Some("123456"));
        Ok(())
    });
}

#[test]
fn a_blank_token_and_a_bad_address_are_problems() {
    Jail::expect_with(|jail| {
        jail.create_file("infra.toml", "[default.dashboard]\nlisten = \"nowhere\"\ntokn = \"x\"\n")?;
        let err = Config::load().expect_err("invalid");
        let problems: Vec<_> = err.problems().iter().map(|p| (p.key.as_str(), p.kind)).collect();
        assert!(problems.contains(&("dashboard.listen", ProblemKind::WrongType)), "{err}");
        assert!(problems.contains(&("dashboard.tokn", ProblemKind::UnknownKey)), "{err}");

        jail.create_file("infra.toml", "[default.dashboard]\ntoken = \"  \"\n")?;
        let err = Config::load().expect_err("invalid");
        assert!(err.to_string().contains("`dashboard.token`: must not be empty"), "{err}");
        Ok(())
    });
}
