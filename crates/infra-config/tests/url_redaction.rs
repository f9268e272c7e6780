//! For thousands of Redis URLs built from every shape fred accepts, `RedisUrl::redacted` and
//! `redact_urls_in` give the same text, and no rendering (`Display`, `Debug`, `Serialize`, free
//! text, errors) contains a secret.

use infra_config::{REDIS_SCHEMES, RedisUrl, redact_urls_in};
use serde::Serialize;

/// Every secret below contains this marker and nothing else does, so "no secret shown" is
/// "no marker shown", whatever part of a secret a bug would let through.
const MARKER: &str = "Zq9";

/// Secrets as they appear in a parsed URL (the parser leaves these characters as they are).
const USERINFO_SECRETS: &[&str] = &["Zq9-hunter2", "p%40Zq9%2Fss", "Pa$$(Zq9)!*'+,~"];
const QUERY_SECRETS: &[&str] = &["Zq9s3cret", "a%26Zq9%3Db", "Zq9`'{x}|^"];

const USERINFOS: &[&str] = &["", "bot:{S}@", ":{S}@", "{S}@", "default:{S}@"];
const HOSTS: &[&str] = &["localhost", "cache.internal", "10.0.0.7", "[::1]"];
const PORTS: &[&str] = &["", ":6379", ":26379"];
const PATHS: &[&str] = &["", "/0", "/15"];
const QUERIES: &[&str] = &[
    "",
    "?sentinelServiceName=mymaster",
    "?sentinelServiceName=mymaster&sentinelPassword={Q}",
    "?sentinelServiceName=mymaster&sentinelUsername=sentuser&sentinelPassword={Q}&node=h2:26380",
    "?sentinelpassword={Q}&node=h2:26380&node=h3:26381",
    "?password={Q}",
    "?PASSWORD={Q}&db=1",
    "?token={Q}",
    "?auth_token={Q}&clientSecret={Q}",
    "?api_key={Q}",
    "?sentinel%50assword={Q}",
    "?node=redis://u:{Q}@h3:1",
];

/// Every combination of the parts above, each with one of the secrets.
fn urls() -> Vec<String> {
    let mut urls = Vec::new();
    for scheme in REDIS_SCHEMES {
        for userinfo in USERINFOS {
            for host in HOSTS {
                for port in PORTS {
                    for path in PATHS {
                        for query in QUERIES {
                            let n = urls.len();
                            let userinfo = userinfo.replace("{S}", USERINFO_SECRETS[n % USERINFO_SECRETS.len()]);
                            let query = query.replace("{Q}", QUERY_SECRETS[n / 7 % QUERY_SECRETS.len()]);
                            urls.push(format!("{scheme}://{userinfo}{host}{port}{path}{query}"));
                        }
                    }
                }
            }
        }
    }
    urls
}

#[derive(Serialize)]
struct Dump {
    redis_url: RedisUrl,
}

#[test]
fn redacted_and_redact_urls_in_agree_and_never_show_a_secret() {
    let urls = urls();
    assert_eq!(urls.len(), 6 * 5 * 4 * 3 * 3 * 12);
    for input in &urls {
        let url = RedisUrl::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        // The inputs are what the parser writes back, so comparing them with the free-text
        // redaction of the raw input is meaningful.
        assert_eq!(url.expose(), input, "not a canonical input");

        let redacted = url.redacted();
        assert_eq!(redacted, redact_urls_in(input), "{input}");
        let in_text = redact_urls_in(&format!("reconnecting to {input} (attempt 3); last error: `{input}`"));
        let dump = toml::to_string(&Dump { redis_url: url.clone() }).expect("serializes");
        for rendering in [&redacted, &url.to_string(), &format!("{url:?}"), &format!("{url:#?}"), &in_text, &dump] {
            assert!(!rendering.contains(MARKER), "{input} shown as {rendering}");
        }
        if input.contains(MARKER) {
            assert!(redacted.contains("***"), "{input}");
        }

        // Redaction keeps the URL usable for diagnosis: same scheme, host and port.
        let reparsed = RedisUrl::parse(&redacted).unwrap_or_else(|e| panic!("{redacted}: {e}"));
        assert_eq!((reparsed.host(), reparsed.port()), (url.host(), url.port()), "{input}");
        assert!(redacted.starts_with(input.split("://").next().unwrap()), "{redacted}");
        assert_eq!(redact_urls_in(&redacted), redacted, "not idempotent on {input}");
    }
}

#[test]
fn malformed_urls_never_show_a_secret_in_their_error() {
    let mut checked = 0;
    for input in urls() {
        let broken = [
            // A port that is not a number.
            input.replace(":6379", ":notaport").replace(":26379", ":99999"),
            // Characters a password must escape, left raw: they cut the authority short.
            input.replace("Zq9-hunter2", "Zq9/hun#ter?2"),
            // No scheme.
            input.split_once("://").map(|(_, rest)| rest.to_owned()).unwrap_or_default(),
            // A scheme fred does not know.
            input.replacen("redis", "http", 1),
        ];
        for candidate in broken {
            if let Err(err) = RedisUrl::parse(&candidate) {
                checked += 1;
                for rendering in [err.to_string(), format!("{err:?}")] {
                    assert!(!rendering.contains(MARKER), "{candidate} shown as {rendering}");
                }
            }
        }
    }
    // Most of the candidates are malformed: the check above is not vacuous.
    assert!(checked > 5_000, "only {checked} malformed candidates");
}
