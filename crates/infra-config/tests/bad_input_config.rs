//! Bad input for the configuration loader (listed in docs/reliability.md, "Bad input") beyond
//! `validation.rs`: a file that is not UTF-8 or holds a NUL byte, nesting deep enough to
//! exhaust a recursive parser, numbers out of range, and an `INFRA_` variable whose value is
//! not UTF-8. Each is a typed `ConfigError` naming where the value came from; none panics.

#![allow(clippy::result_large_err, reason = "figment::Jail closures return figment::Error (Figment#139)")]

use figment::Jail;
use infra_config::{Config, ConfigError, ProblemKind};

fn problems(err: &ConfigError) -> Vec<String> {
    err.problems().iter().map(ToString::to_string).collect()
}

#[test]
fn a_file_that_is_not_utf8_is_unreadable_naming_the_file() {
    Jail::expect_with(|jail| {
        std::fs::write(jail.directory().join("infra.toml"), b"[default.state]\nnamespace = \"\xff\xfe\"\n")
            .map_err(|e| e.to_string())?;
        let err = Config::load().unwrap_err();
        let problems = problems(&err);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("cannot read `infra.toml`"), "{problems:?}");
        assert_eq!(err.problems()[0].kind, ProblemKind::Unreadable);
        Ok(())
    });
}

#[test]
fn a_nul_byte_in_the_file_is_a_syntax_error() {
    Jail::expect_with(|jail| {
        jail.create_file("infra.toml", "[default.state]\nnamespace = \"a\0b\"\n")?;
        let err = Config::load().unwrap_err();
        assert_eq!(err.problems()[0].kind, ProblemKind::Unreadable, "{:?}", problems(&err));
        Ok(())
    });
}

#[test]
fn deeply_nested_values_are_an_error_not_a_stack_overflow() {
    Jail::expect_with(|jail| {
        let depth = 100_000;
        let nested = format!("[default.state]\nnamespace = {}{}\n", "[".repeat(depth), "]".repeat(depth));
        jail.create_file("infra.toml", &nested)?;
        let err = Config::load().unwrap_err();
        assert_eq!(err.problems().len(), 1, "{:?}", problems(&err));
        let inline = format!("[default]\nstate = {}{}\n", "{ a = ".repeat(depth), "}".repeat(depth));
        jail.create_file("infra.toml", &inline)?;
        assert!(Config::load().is_err());
        Ok(())
    });
}

#[test]
fn numbers_out_of_range_are_typed_problems_naming_their_source() {
    Jail::expect_with(|jail| {
        // Past TOML's 64-bit integers: a syntax error with its position.
        jail.create_file("infra.toml", "[default.events]\nstream_max_len = 18446744073709551616\n")?;
        let err = Config::load().unwrap_err();
        assert!(problems(&err)[0].contains("line 2, column 18"), "{:?}", problems(&err));
        // Negative where unsigned, and past u64 in a variable: typed problems, one per key.
        jail.create_file("infra.toml", "[default.state]\noperation_timeout_ms = -5\n")?;
        jail.set_env("INFRA_STATE__CONNECT_TIMEOUT_MS", "99999999999999999999999999");
        let err = Config::load().unwrap_err();
        let problems = problems(&err);
        let named = |key: &str, source: &str| problems.iter().any(|p| p.starts_with(key) && p.contains(source));
        assert!(named("`state.operation_timeout_ms`", "file `infra.toml`"), "{problems:?}");
        assert!(named("`state.connect_timeout_ms`", "INFRA_STATE__CONNECT_TIMEOUT_MS"), "{problems:?}");
        Ok(())
    });
}

#[cfg(unix)]
#[test]
fn a_variable_that_is_not_utf8_is_reported_never_a_panic() {
    use std::{ffi::OsStr, os::unix::ffi::OsStrExt, process::Command};
    // Not an `INFRA_` name: the loader would report it as an unknown key.
    const CHILD: &str = "BAD_INPUT_CONFIG_CHILD";
    if std::env::var_os(CHILD).is_some() {
        // In the child, whose environment holds the variable: load, and say what came of it.
        let said = match Config::load() {
            Ok(config) => format!("loaded namespace {:?}", config.state.namespace),
            Err(err) => format!("refused {:?}", problems(&err)),
        };
        std::io::Write::write_all(&mut std::io::stdout(), said.as_bytes()).unwrap();
        return;
    }
    // The environment cannot be changed safely in a running test: a child process gets it.
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_variable_that_is_not_utf8_is_reported_never_a_panic", "--nocapture"])
        .env(CHILD, "1")
        .env("INFRA_STATE__NAMESPACE", OsStr::from_bytes(b"ns\xff"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {}", String::from_utf8_lossy(&output.stderr));
    // Read lossily, then refused by the namespace rule, naming the variable.
    assert!(stdout.contains("refused") && stdout.contains("INFRA_STATE__NAMESPACE"), "{stdout}");
    assert!(!stdout.contains("unknown key"), "{stdout}");
}
