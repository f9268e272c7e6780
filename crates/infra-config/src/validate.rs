//! Semantic checks on a typed [`Config`]: everything a type cannot say.

use std::time::Duration;

use crate::{
    Backend, Config, EventsConfig, EventsMode, Problem, ProblemKind,
    sections::{
        BreakerConfig, DashboardConfig, EmergencyConfig, LoggingConfig, RetryConfig, StateConfig, TimeoutConfig,
    },
};

/// Longest accepted namespace or bot id.
pub(crate) const MAX_IDENT_LEN: usize = 64;

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Every problem of `config`, in a stable order. Origins are filled in by the loader.
pub(crate) fn problems(config: &Config) -> Vec<Problem> {
    let mut out = state_problems(&config.state);
    out.extend(events_problems(&config.events));
    logging(&mut out, &config.logging);
    emergency(&mut out, &config.emergency);
    retry(&mut out, &config.resilience.retry);
    breaker(&mut out, &config.resilience.breaker);
    timeout(&mut out, &config.resilience.timeout);
    dashboard(&mut out, &config.dashboard);
    out
}

/// A blank token would let anyone act; empty patterns would show nothing.
fn dashboard(out: &mut Vec<Problem>, dashboard: &DashboardConfig) {
    if dashboard.token.as_ref().is_some_and(crate::Secret::is_blank) {
        out.push(Problem::new(
            "dashboard.token",
            ProblemKind::Malformed,
            "must not be empty (leave it unset to refuse every changing action)",
        ));
    }
    for (key, pattern) in [
        ("dashboard.prices_pattern", &dashboard.prices_pattern),
        ("dashboard.executions_pattern", &dashboard.executions_pattern),
    ] {
        if pattern.trim().is_empty() {
            out.push(Problem::new(key, ProblemKind::Malformed, "must not be empty"));
        }
    }
}

/// Every problem of the `state` section, keys prefixed with `state.`.
pub(crate) fn state_problems(state: &StateConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    backend_section(&mut out, "state", state.backend, state.redis_url.is_some(), &state.namespace);
    positive_ms(&mut out, "state.operation_timeout_ms", state.operation_timeout);
    positive_ms(&mut out, "state.connect_timeout_ms", state.connect_timeout);
    positive_ms(&mut out, "state.replica_ack_timeout_ms", state.replica_ack_timeout);
    if state.replica_acks > 0 && state.backend != Backend::Redis {
        out.push(
            Problem::new(
                "state.replica_acks",
                ProblemKind::Conflict,
                "needs `state.backend = \"redis\"` (only redis has replicas)",
            )
            .caused_by("state.backend"),
        );
    }
    out
}

/// Every problem of the `events` section, keys prefixed with `events.`.
pub(crate) fn events_problems(events: &EventsConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    backend_section(&mut out, "events", events.backend, events.redis_url.is_some(), &events.namespace);
    positive_ms(&mut out, "events.operation_timeout_ms", events.operation_timeout);
    positive_ms(&mut out, "events.connect_timeout_ms", events.connect_timeout);
    events_mode(&mut out, events);
    out
}

fn backend_section(out: &mut Vec<Problem>, section: &str, backend: Backend, has_url: bool, namespace: &str) {
    if backend == Backend::Redis && !has_url {
        out.push(
            Problem::new(
                format!("{section}.redis_url"),
                ProblemKind::Missing,
                format!("required when `{section}.backend` is `redis`"),
            )
            .caused_by(format!("{section}.backend")),
        );
    }
    identifier(out, &format!("{section}.namespace"), namespace);
}

/// Namespaces and bot ids end up inside Redis keys, channel names and glob patterns, so they
/// must not contain separators-to-be or glob characters.
fn identifier(out: &mut Vec<Problem>, key: &str, value: &str) {
    let message = if value.is_empty() {
        "must not be empty".to_owned()
    } else if value.chars().count() > MAX_IDENT_LEN {
        format!("must be at most {MAX_IDENT_LEN} characters, got {}", value.chars().count())
    } else if let Some(bad) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        format!("`{value}` contains `{bad}`; only ASCII letters, digits, `_`, `-` and `.` are allowed")
    } else {
        return;
    };
    out.push(Problem::new(key, ProblemKind::Malformed, message));
}

fn events_mode(out: &mut Vec<Problem>, events: &EventsConfig) {
    if events.mode == EventsMode::Durable && events.backend != Backend::Redis {
        out.push(
            Problem::new(
                "events.mode",
                ProblemKind::Conflict,
                "`durable` needs `events.backend = \"redis\"` (streams live in redis)",
            )
            .caused_by("events.backend"),
        );
    }
    if events.stream_max_len == 0 {
        out.push(Problem::new("events.stream_max_len", ProblemKind::OutOfRange, "must be at least 1, got 0"));
    }
    positive_ms(out, "events.claim_after_ms", events.claim_after);
    at_least_one(out, "events.max_deliveries", events.max_deliveries);
    positive_ms(out, "events.replica_ack_timeout_ms", events.replica_ack_timeout);
    if events.replica_acks > 0 && events.mode != EventsMode::Durable {
        out.push(
            Problem::new(
                "events.replica_acks",
                ProblemKind::Conflict,
                "needs `events.mode = \"durable\"` (pub/sub keeps nothing to replicate)",
            )
            .caused_by("events.mode"),
        );
    }
}

fn positive_ms(out: &mut Vec<Problem>, key: &str, value: Duration) {
    if value.is_zero() {
        out.push(Problem::new(key, ProblemKind::OutOfRange, "must be greater than 0 ms"));
    }
}

fn at_least_one(out: &mut Vec<Problem>, key: &str, value: u32) {
    if value == 0 {
        out.push(Problem::new(key, ProblemKind::OutOfRange, "must be at least 1, got 0"));
    }
}

fn logging(out: &mut Vec<Problem>, logging: &LoggingConfig) {
    let level = logging.level.trim();
    if level.is_empty() {
        out.push(Problem::new(
            "logging.level",
            ProblemKind::Malformed,
            format!("must not be empty; use one of {}", LEVELS.join(", ")),
        ));
        return;
    }
    for directive in level.split(',').map(str::trim) {
        if let Some(message) = directive_problem(directive) {
            out.push(Problem::new("logging.level", ProblemKind::Malformed, message));
        }
    }
}

/// Checks one `level` or `target=level` directive.
fn directive_problem(directive: &str) -> Option<String> {
    let (target, level) = match directive.split_once('=') {
        Some((target, level)) => (Some(target.trim()), level.trim()),
        None => (None, directive),
    };
    if let Some(target) = target {
        let valid_target =
            !target.is_empty() && target.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-'));
        if !valid_target {
            return Some(format!(
                "directive `{directive}` has an invalid target; expected `target=level` with a module path as target"
            ));
        }
    }
    if LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
        None
    } else {
        Some(format!("unknown level `{level}` in `{directive}`; valid levels: {}", LEVELS.join(", ")))
    }
}

fn emergency(out: &mut Vec<Problem>, emergency: &EmergencyConfig) {
    identifier(out, "emergency.bot_id", &emergency.bot_id);
    let limit = emergency.daily_loss_limit;
    if !limit.is_finite() {
        out.push(Problem::new(
            "emergency.daily_loss_limit",
            ProblemKind::OutOfRange,
            format!("must be a finite negative number, got {limit}"),
        ));
    } else if limit >= 0.0 {
        out.push(Problem::new(
            "emergency.daily_loss_limit",
            ProblemKind::OutOfRange,
            format!(
                "must be negative, got {limit}: it is the daily P&L at which trading halts, so a loss of 500 is written -500.0"
            ),
        ));
    }
    let fraction = emergency.alert_fraction;
    if !(fraction.is_finite() && fraction > 0.0 && fraction < 1.0) {
        out.push(Problem::new(
            "emergency.alert_fraction",
            ProblemKind::OutOfRange,
            format!("must be strictly between 0 and 1 (the share of a limit that raises an alert), got {fraction}"),
        ));
    }
}

fn retry(out: &mut Vec<Problem>, retry: &RetryConfig) {
    at_least_one(out, "resilience.retry.max_attempts", retry.max_attempts);
    positive_ms(out, "resilience.retry.initial_delay_ms", retry.initial_delay);
    if retry.max_delay < retry.initial_delay {
        out.push(Problem::new(
            "resilience.retry.max_delay_ms",
            ProblemKind::OutOfRange,
            format!(
                "must be at least `resilience.retry.initial_delay_ms` ({} ms), got {} ms",
                retry.initial_delay.as_millis(),
                retry.max_delay.as_millis()
            ),
        ));
    }
    if !(retry.multiplier.is_finite() && retry.multiplier >= 1.0) {
        out.push(Problem::new(
            "resilience.retry.multiplier",
            ProblemKind::OutOfRange,
            format!("must be a finite number of at least 1.0, got {}", retry.multiplier),
        ));
    }
    positive_ms(out, "resilience.retry.max_elapsed_ms", retry.max_elapsed);
}

fn breaker(out: &mut Vec<Problem>, breaker: &BreakerConfig) {
    at_least_one(out, "resilience.breaker.failure_threshold", breaker.failure_threshold);
    let rate = breaker.failure_rate_threshold;
    if !(rate.is_finite() && rate > 0.0 && rate <= 1.0) {
        out.push(Problem::new(
            "resilience.breaker.failure_rate_threshold",
            ProblemKind::OutOfRange,
            format!("must be greater than 0 and at most 1, got {rate}"),
        ));
    }
    at_least_one(out, "resilience.breaker.window_size", breaker.window_size);
    if breaker.minimum_calls == 0 || breaker.minimum_calls > breaker.window_size.max(1) {
        out.push(Problem::new(
            "resilience.breaker.minimum_calls",
            ProblemKind::OutOfRange,
            format!(
                "must be between 1 and `resilience.breaker.window_size` ({}), got {}",
                breaker.window_size, breaker.minimum_calls
            ),
        ));
    }
    positive_ms(out, "resilience.breaker.open_duration_ms", breaker.open_duration);
    at_least_one(out, "resilience.breaker.half_open_max_calls", breaker.half_open_max_calls);
}

fn timeout(out: &mut Vec<Problem>, timeout: &TimeoutConfig) {
    positive_ms(out, "resilience.timeout.per_attempt_ms", timeout.per_attempt);
    if timeout.overall < timeout.per_attempt {
        out.push(Problem::new(
            "resilience.timeout.overall_ms",
            ProblemKind::OutOfRange,
            format!(
                "must be at least `resilience.timeout.per_attempt_ms` ({} ms), got {} ms",
                timeout.per_attempt.as_millis(),
                timeout.overall.as_millis()
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Environment;

    #[test]
    fn every_preset_is_valid_once_production_has_a_url() {
        assert!(problems(&Config::for_env(Environment::Development)).is_empty());
        assert!(problems(&Config::for_env(Environment::Staging)).is_empty());
        let production = problems(&Config::for_env(Environment::Production));
        let keys: Vec<_> = production.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["state.redis_url", "events.redis_url"]);
    }

    #[test]
    fn durable_events_need_redis_and_sane_limits() {
        let mut config = Config::for_env(Environment::Development);
        config.events.mode = EventsMode::Durable;
        config.events.stream_max_len = 0;
        config.events.claim_after = Duration::ZERO;
        config.events.max_deliveries = 0;
        let found: Vec<_> = problems(&config).into_iter().map(|p| (p.key, p.kind, p.message)).collect();
        assert_eq!(
            found,
            [
                (
                    "events.mode".to_owned(),
                    ProblemKind::Conflict,
                    "`durable` needs `events.backend = \"redis\"` (streams live in redis)".to_owned()
                ),
                ("events.stream_max_len".to_owned(), ProblemKind::OutOfRange, "must be at least 1, got 0".to_owned()),
                ("events.claim_after_ms".to_owned(), ProblemKind::OutOfRange, "must be greater than 0 ms".to_owned()),
                ("events.max_deliveries".to_owned(), ProblemKind::OutOfRange, "must be at least 1, got 0".to_owned()),
            ]
        );
    }

    #[test]
    fn log_directives() {
        assert_eq!(directive_problem("info"), None);
        assert_eq!(directive_problem("infra_state::memory=TRACE"), None);
        assert_eq!(
            directive_problem("loud").as_deref(),
            Some("unknown level `loud` in `loud`; valid levels: trace, debug, info, warn, error, off")
        );
        assert_eq!(
            directive_problem("=debug").as_deref(),
            Some("directive `=debug` has an invalid target; expected `target=level` with a module path as target")
        );
    }

    #[test]
    fn identifiers() {
        let mut out = Vec::new();
        identifier(&mut out, "k", "prod-eu.1_a");
        assert!(out.is_empty());
        identifier(&mut out, "k", "a*b");
        identifier(&mut out, "k", "");
        identifier(&mut out, "k", &"x".repeat(65));
        let messages: Vec<_> = out.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "`a*b` contains `*`; only ASCII letters, digits, `_`, `-` and `.` are allowed",
                "must not be empty",
                "must be at most 64 characters, got 65",
            ]
        );
    }
}
