//! `[metrics] listen`: unset by default, set from the file or `INFRA_METRICS__LISTEN`, and a bad
//! address is a problem naming the key.

#![allow(clippy::result_large_err, reason = "figment::Jail closures return figment::Error (Figment#139)")]

use std::net::SocketAddr;

use figment::Jail;
use infra_config::{Config, Environment, MetricsConfig, ProblemKind};

#[test]
fn no_endpoint_unless_configured() {
    for environment in [Environment::Development, Environment::Staging, Environment::Production] {
        assert_eq!(Config::for_env(environment).metrics, MetricsConfig::default());
        assert_eq!(Config::for_env(environment).metrics.listen, None);
    }
}

#[test]
fn the_file_and_the_variable_set_the_address() {
    Jail::expect_with(|jail| {
        jail.create_file("infra.toml", "[default.metrics]\nlisten = \"127.0.0.1:9464\"\n")?;
        let config = Config::load().expect("valid");
        assert_eq!(config.metrics.listen, Some("127.0.0.1:9464".parse::<SocketAddr>().unwrap()));
        assert!(config.to_toml().contains("[metrics]\nlisten = \"127.0.0.1:9464\""), "{}", config.to_toml());

        jail.set_env("INFRA_METRICS__LISTEN", "0.0.0.0:9999");
        let config = Config::load().expect("valid");
        assert_eq!(config.metrics, MetricsConfig::listen("0.0.0.0:9999".parse().unwrap()));
        Ok(())
    });
}

#[test]
fn a_bad_address_names_the_key() {
    Jail::expect_with(|jail| {
        jail.create_file("infra.toml", "[default.metrics]\nlisten = \"localhost-ish\"\nlisen = 1\n")?;
        let err = Config::load().expect_err("invalid");
        let problems: Vec<_> = err.problems().iter().map(|p| (p.key.as_str(), p.kind)).collect();
        assert!(problems.contains(&("metrics.listen", ProblemKind::WrongType)), "{err}");
        assert!(problems.contains(&("metrics.lisen", ProblemKind::UnknownKey)), "{err}");
        assert!(err.to_string().contains("did you mean `metrics.listen`"), "{err}");
        Ok(())
    });
}
