//! Property tests of channel patterns over arbitrary input (the match against a real Redis is
//! `patterns.rs`): parsing and matching never panic and end quickly, a refused pattern is named
//! in its error, and an escaped name matches exactly itself. Modest case counts.

use std::time::{Duration, Instant};

use infra_events::{EventsError, Pattern};
use proptest::{prelude::*, test_runner::Config};

fn config() -> Config {
    Config { cases: 1024, failure_persistence: None, ..Config::default() }
}

/// Text rich in glob syntax, with multi-byte characters.
fn globby() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec!["*", "?", "[", "]", "^", "-", "\\", "a", "b", ":", "é", "日", "\0", "\n"]);
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

/// `name` with every glob character escaped: a pattern for exactly that channel.
fn escape(name: &str) -> String {
    let mut pattern = String::with_capacity(name.len() * 2);
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

#[test]
fn parsing_and_matching_arbitrary_input_never_panics_and_ends_quickly() {
    let texts = prop_oneof![globby(), any::<String>()];
    proptest!(config(), |(pattern in texts.clone(), channel in texts)| {
        let started = Instant::now();
        match Pattern::parse(pattern.as_str()) {
            Ok(parsed) => prop_assert_eq!(parsed.as_str(), pattern.as_str()),
            Err(EventsError::InvalidPattern { pattern: named, .. }) => prop_assert_eq!(&named, &pattern),
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
        let _ = Pattern::new(pattern.as_str()).matches(&channel);
        prop_assert!(started.elapsed() < Duration::from_millis(100), "{:?} ~ {:?} took {:?}", pattern, channel, started.elapsed());
    });
}

#[test]
fn stars_against_long_channels_end_quickly() {
    let stars = prop::collection::vec(prop::sample::select(vec!["*", "a", "?", "*a"]), 1..40);
    proptest!(Config { cases: 256, ..config() }, |(pieces in stars, length in 0usize..2000)| {
        let pattern = Pattern::new(format!("{}b", pieces.concat()));
        let started = Instant::now();
        let _ = pattern.matches(&"a".repeat(length));
        prop_assert!(started.elapsed() < Duration::from_millis(200), "{:?} took {:?}", pattern, started.elapsed());
    });
}

#[test]
fn an_escaped_name_matches_exactly_itself() {
    proptest!(config(), |(name in prop_oneof![globby(), any::<String>()], other in any::<String>())| {
        let pattern = Pattern::new(escape(&name));
        prop_assert!(pattern.matches(&name), "{:?} !~ {:?}", pattern, name);
        prop_assert_eq!(pattern.matches(&other), other == name);
        // A prefix pattern: the escaped name then `*`.
        let prefix = Pattern::new(format!("{}*", escape(&name)));
        let longer = format!("{name}{other}");
        prop_assert!(prefix.matches(&longer) || other.is_empty(), "{:?} !~ {:?}", prefix, longer);
    });
}
