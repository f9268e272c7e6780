//! The pattern table, and random patterns, checked against Redis's own matcher on a real
//! server (`KEYS` uses the same `stringmatchlen` as `PSUBSCRIBE`).

use infra_events::Pattern;
use infra_testkit::{Connection, RedisServer, Reply};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};

const TABLE: &[(&str, &str, bool)] = &[
    ("prices:*", "prices:BTC", true),
    ("prices:*", "prices:", true),
    ("prices:*", "price:BTC", false),
    ("prices:*", "prices:BTC:1m", true),
    ("*", "", false),
    ("*", "anything", true),
    ("", "", true),
    ("", "a", false),
    ("a**b", "ab", true),
    ("a*b*c", "aXbYc", true),
    ("a*b*c", "aXbY", false),
    ("h?llo", "hello", true),
    ("h?llo", "hllo", false),
    ("h?llo", "héllo", false),
    ("h??llo", "héllo", true),
    ("h[ae]llo", "hallo", true),
    ("h[ae]llo", "hillo", false),
    ("h[^e]llo", "hallo", true),
    ("h[^e]llo", "hello", false),
    ("h[a-b]llo", "hbllo", true),
    ("h[b-a]llo", "hbllo", true),
    ("h[a-b]llo", "hcllo", false),
    ("h\\*llo", "h*llo", true),
    ("h\\*llo", "hello", false),
    ("h[\\]]llo", "h]llo", true),
    ("h[\\^]llo", "h^llo", true),
    ("h[abc", "hb", true),
    ("h[abc", "hbc", false),
    ("trailing\\", "trailing\\", true),
    ("exact", "exact", true),
    ("exact", "exactly", false),
    ("*:BTC", "prices:BTC", true),
    ("*:BTC", "prices:ETH", false),
    ("[", "[", false),
    ("[]", "]", false),
    ("?", "", false),
];

/// Whether Redis's matcher says `channel` matches `pattern`: store the channel as the only
/// key, then ask `KEYS pattern`.
fn redis_matches(redis: &mut Connection, pattern: &str, channel: &str) -> bool {
    // `KEYS *` skips the matcher and lists every key, the empty one included; `PSUBSCRIBE *`
    // does run it, and it does not match the empty channel (checked with redis-cli:
    // `PUBLISH "" x` reaches no `*` subscriber).
    if pattern == "*" {
        return !channel.is_empty();
    }
    redis.command_ok(&["FLUSHALL"]).expect("flush");
    redis.command_ok(&["SET", channel, "1"]).expect("set");
    match redis.command_ok(&["KEYS", pattern]).expect("keys") {
        Reply::Array(Some(keys)) => !keys.is_empty(),
        other => panic!("unexpected KEYS reply {other:?}"),
    }
}

#[test]
fn the_table_matches_like_redis() {
    let server = RedisServer::start().expect("redis-server must be installed");
    let mut redis = server.connect().unwrap();
    for (pattern, channel, expected) in TABLE {
        assert_eq!(redis_matches(&mut redis, pattern, channel), *expected, "redis: {pattern:?} ~ {channel:?}");
        assert_eq!(Pattern::new(*pattern).matches(channel), *expected, "ours: {pattern:?} ~ {channel:?}");
    }
}

#[test]
fn random_patterns_match_like_redis() {
    let server = RedisServer::start().expect("redis-server must be installed");
    let redis = std::cell::RefCell::new(server.connect().unwrap());
    let alphabet = || proptest::sample::select(vec!["a", "b", ":", "*", "?", "[", "]", "^", "-", "\\", "é"]);
    let text = move || proptest::collection::vec(alphabet(), 0..8).prop_map(|parts| parts.concat());
    let mut runner = TestRunner::new(Config { cases: 2000, failure_persistence: None, ..Config::default() });
    let result = runner.run(&(text(), text()), |(pattern, channel)| {
        let expected = redis_matches(&mut redis.borrow_mut(), &pattern, &channel);
        prop_assert_eq!(Pattern::new(pattern.as_str()).matches(&channel), expected, "{:?} ~ {:?}", pattern, channel);
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
