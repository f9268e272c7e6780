//! The password of a Redis URL never shows in `Debug`, `Display`, errors or a dumped config.

#![allow(clippy::result_large_err, reason = "figment::Jail closures return figment::Error (Figment#139)")]

use figment::Jail;
use infra_config::{Config, Environment};

const PASSWORD: &str = "pa55-w0rd-never-shown";

#[test]
fn loaded_config_debug_and_dump_hide_the_password() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "infra.toml",
            &format!("[production.state]\nredis_url = \"rediss://trader:{PASSWORD}@cache.internal:6380/1\"\n"),
        )?;
        jail.set_env("INFRA_ENV", "production");
        jail.set_env("INFRA_EVENTS__REDIS_URL", format!("redis://:{PASSWORD}@bus:6379"));
        let config = Config::load().expect("valid");

        let debug = format!("{config:?}");
        let pretty = format!("{config:#?}");
        let dump = config.to_toml();
        for rendering in [&debug, &pretty, &dump] {
            assert!(!rendering.contains(PASSWORD), "{rendering}");
        }
        assert!(dump.contains("redis_url = \"rediss://trader:***@cache.internal:6380/1\""), "{dump}");
        assert!(dump.contains("redis_url = \"redis://:***@bus:6379\""), "{dump}");
        assert!(debug.contains("RedisUrl(\"redis://:***@bus:6379\")"), "{debug}");

        // Only the explicit accessor gives the real URL, for the backends to connect with.
        let url = config.state.redis_url.as_ref().expect("set");
        assert_eq!(url.expose(), format!("rediss://trader:{PASSWORD}@cache.internal:6380/1"));
        assert_eq!(url.to_string(), "rediss://trader:***@cache.internal:6380/1");
        Ok(())
    });
}

#[test]
fn errors_hide_the_password_even_under_the_wrong_key() {
    Jail::expect_with(|jail| {
        // A malformed URL, a URL where an enum belongs, and a URL where a number belongs.
        jail.set_env("INFRA_STATE__REDIS_URL", format!("redis://bot:{PASSWORD}@host:99999"));
        jail.set_env("INFRA_EVENTS__BACKEND", format!("redis://bot:{PASSWORD}@host"));
        jail.set_env("INFRA_STATE__CONNECT_TIMEOUT_MS", format!("redis://:{PASSWORD}@host"));
        jail.set_env("INFRA_STATE__BACKEND", "redis");
        let err = Config::loader().environment(Environment::Development).load().unwrap_err();
        let display = err.to_string();
        let debug = format!("{err:?}");
        for rendering in [&display, &debug] {
            assert!(!rendering.contains(PASSWORD), "{rendering}");
        }
        assert!(display.contains("`state.redis_url`: malformed redis url `redis://bot:***@host:99999`"), "{display}");
        assert!(display.contains("found `redis://bot:***@host`"), "{display}");
        assert!(display.contains("found string \"redis://:***@host\""), "{display}");
        Ok(())
    });
}
