//! Property tests of the Redis URL parser and its redaction over arbitrary input: parsing and
//! redacting never panic, and a password (in the user info or a secret query parameter) never
//! appears in any rendering of a URL that had one, parsed or refused. Case counts are modest:
//! this file runs in well under 10 s.

use infra_config::{REDIS_SCHEMES, RedisUrl, redact_urls_in};
use proptest::{prelude::*, test_runner::Config};

/// The two ends of every generated secret: whatever part of it a bug let through, one of them
/// would show (a split secret keeps its head or its tail).
const HEAD: &str = "Zq9";
const TAIL: &str = "Xk7";

fn config() -> Config {
    Config { cases: 512, failure_persistence: None, ..Config::default() }
}

/// Characters a careless user might put in a password: URL delimiters, percent signs, spaces,
/// quotes, non-ASCII.
fn secret_middle() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a", "B", "7", ":", "@", "/", "#", "?", "&", "=", "%", "%40", "%2F", "%zz", " ", "\"", "'", "`", "(", ")", "!",
        "*", "+", ",", ";", "~", "$", "[", "]", "\\", "é", "日", "\t",
    ]);
    prop::collection::vec(pieces, 0..8).prop_map(|parts| parts.concat())
}

fn secret() -> impl Strategy<Value = String> {
    secret_middle().prop_map(|middle| format!("{HEAD}{middle}{TAIL}"))
}

/// A URL of any scheme fred accepts with a secret in the user info, or in a query parameter,
/// around hosts, ports and paths that are sometimes malformed.
fn url_with_secret() -> impl Strategy<Value = String> {
    let scheme = prop::sample::select(REDIS_SCHEMES.to_vec());
    let user = prop::sample::select(vec!["", "bot", "default", "u-1"]);
    let host = prop::sample::select(vec!["localhost", "10.0.0.7", "[::1]", "cache.internal", "", "bad host", "h_1"]);
    let port = prop::sample::select(vec!["", ":6379", ":26379", ":notaport", ":99999", ":"]);
    let path = prop::sample::select(vec!["", "/0", "/mymaster", "/x/y"]);
    let query_key = prop::sample::select(vec![
        "password",
        "sentinelPassword",
        "sentinelpassword",
        "PASSWORD",
        "token",
        "auth_token",
        "clientSecret",
        "api_key",
    ]);
    (scheme, user, secret(), host, port, path, query_key, 0..3u8).prop_map(
        |(scheme, user, secret, host, port, path, key, place)| match place {
            0 => format!("{scheme}://{user}:{secret}@{host}{port}{path}"),
            // A lone token is a secret (a token) only without a `:`, which makes it user:password.
            1 => format!("{scheme}://{}@{host}{port}{path}", secret.replace(':', "c")),
            // A raw `&` ends a query value for every reader (fred too): `password=a&b` is a
            // password `a` and a parameter `b`, so the generated secret has none.
            _ => format!(
                "{scheme}://{host}{port}{path}?sentinelServiceName=m&{key}={}&node=h2:1",
                secret.replace('&', "n")
            ),
        },
    )
}

fn assert_hidden(text: &str, input: &str) -> Result<(), TestCaseError> {
    prop_assert!(!text.contains(HEAD) && !text.contains(TAIL), "{:?} shows a secret of {:?}", text, input);
    Ok(())
}

#[test]
fn parsing_and_redacting_arbitrary_text_never_panics() {
    proptest!(config(), |(input in any::<String>())| {
        match RedisUrl::parse(&input) {
            Ok(url) => {
                let _ = (url.to_string(), format!("{url:?}"), url.redacted(), url.host(), url.port());
            }
            Err(error) => {
                let _ = (error.to_string(), format!("{error:?}"), error.reason());
            }
        }
        let once = redact_urls_in(&input);
        prop_assert_eq!(redact_urls_in(&once), once.clone(), "redaction is idempotent");
    });
}

#[test]
fn arbitrary_text_after_a_scheme_never_panics() {
    let scheme = prop::sample::select(REDIS_SCHEMES.to_vec());
    proptest!(config(), |(scheme in scheme, rest in any::<String>())| {
        let input = format!("{scheme}://{rest}");
        if let Ok(url) = RedisUrl::parse(&input) {
            let _ = (url.to_string(), format!("{url:?}"));
        }
        let _ = redact_urls_in(&format!("connecting to {input} failed"));
    });
}

#[test]
fn a_secret_never_appears_in_any_rendering() {
    proptest!(config(), |(input in url_with_secret())| {
        match RedisUrl::parse(&input) {
            Ok(url) => {
                assert_hidden(&url.to_string(), &input)?;
                assert_hidden(&format!("{url:?}"), &input)?;
                assert_hidden(&url.redacted(), &input)?;
                assert_hidden(url.host(), &input)?;
                // In free text: another library (fred) quoting the URL it was given, which
                // parsed. (Unparsed text is redacted by the parser's error, above and below.)
                assert_hidden(&redact_urls_in(&format!("cannot connect to {}: refused", url.expose())), &input)?;
                assert_hidden(&redact_urls_in(&format!("url=\"{}\"", url.expose())), &input)?;
            }
            Err(error) => {
                assert_hidden(&error.to_string(), &input)?;
                assert_hidden(&format!("{error:?}"), &input)?;
                assert_hidden(error.reason(), &input)?;
            }
        }
    });
}
