//! Redis URLs whose secrets never leave the process by accident.
//!
//! A Redis URL carries secrets in two places: its user-info (`redis://user:password@host`, or
//! a lone token, `redis://token@host`) and its query (fred's sentinel URLs take
//! `sentinelPassword=...`). [`redact_urls_in`] hides both, and [`RedisUrl`] renders itself through
//! it, so the two never disagree.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "***";

/// URL schemes the Redis backends accept (the ones `fred` understands).
pub const REDIS_SCHEMES: &[&str] =
    &["redis", "rediss", "redis-cluster", "rediss-cluster", "redis-sentinel", "rediss-sentinel"];

/// Query parameter names containing any of these (case-insensitive, once percent-decoded) carry
/// a secret, so `sentinelPassword`, `password`, `auth_token` and `clientSecret` all do.
const SECRET_QUERY_PARAMS: &[&str] =
    &["password", "passwd", "pwd", "secret", "token", "apikey", "api_key", "api-key", "auth", "credential"];

/// A validated Redis connection URL whose secrets are redacted everywhere it could leak.
///
/// `Debug`, `Display` and `Serialize` (so a dumped config too) all show as `***` the password,
/// a lone user-info (`redis://token@host`, which may be a token) and the value of every query
/// parameter named like a secret (containing `password`, `passwd`, `pwd`, `secret`, `token`,
/// `apikey`, `api_key`, `api-key`, `auth` or `credential`, in any case: fred's
/// `sentinelPassword` among them). Only [`RedisUrl::expose`] returns the real URL; call it where a
/// connection is made and nowhere else.
///
/// ```
/// use infra_config::RedisUrl;
///
/// let url: RedisUrl = "redis://bot:hunter2@cache.internal:6379/0".parse()?;
/// assert_eq!(url.to_string(), "redis://bot:***@cache.internal:6379/0");
/// assert!(!format!("{url:?}").contains("hunter2"));
/// assert_eq!(url.expose(), "redis://bot:hunter2@cache.internal:6379/0");
///
/// let sentinel: RedisUrl =
///     "redis-sentinel://sentinel:26379/0?sentinelServiceName=mymaster&sentinelPassword=s3cret".parse()?;
/// assert_eq!(
///     sentinel.to_string(),
///     "redis-sentinel://sentinel:26379/0?sentinelServiceName=mymaster&sentinelPassword=***"
/// );
/// # Ok::<(), infra_config::InvalidRedisUrl>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    url: url::Url,
}

/// Why a string is not a usable Redis URL. The message never contains a secret of the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed redis url `{redacted}`: {reason}")]
pub struct InvalidRedisUrl {
    redacted: String,
    reason: String,
}

impl InvalidRedisUrl {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        Self { redacted: redact_malformed(input), reason: reason.into() }
    }

    /// Why the URL was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl RedisUrl {
    /// Parses and checks a Redis URL: a known scheme and a host.
    pub fn parse(input: &str) -> Result<Self, InvalidRedisUrl> {
        let url = url::Url::parse(input.trim()).map_err(|e| InvalidRedisUrl::new(input, e.to_string()))?;
        if !REDIS_SCHEMES.contains(&url.scheme()) {
            return Err(InvalidRedisUrl::new(
                input,
                format!("unsupported scheme `{}`, expected one of: {}", url.scheme(), REDIS_SCHEMES.join(", ")),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(InvalidRedisUrl::new(input, "missing host"));
        }
        if url.fragment().is_some() {
            // Nothing in a Redis URL is a fragment: it is a password's unescaped `#`.
            return Err(InvalidRedisUrl::new(input, "a `#` in a redis url: write it %23"));
        }
        if has_stray_at(&url) {
            return Err(InvalidRedisUrl::new(
                input,
                "an `@` after the host: a `/`, `?` or `#` in a password must be written %2F, %3F or %23",
            ));
        }
        Ok(Self { url })
    }

    /// The full URL, secrets included. Use it only to open a connection.
    pub fn expose(&self) -> &str {
        self.url.as_str()
    }

    /// The URL with its secrets replaced by `***`: the same text as
    /// [`redact_urls_in`]`(self.expose())`.
    pub fn redacted(&self) -> String {
        // The serialized URL holds no whitespace or control character (the parser
        // percent-encodes them), so the free-text scanner reads it as one URL.
        redact_urls_in(self.url.as_str())
    }

    /// Whether the URL carries a password in its user-info.
    pub fn has_password(&self) -> bool {
        self.url.password().is_some()
    }

    /// The host name or address.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The port, if one is given.
    pub fn port(&self) -> Option<u16> {
        self.url.port()
    }
}

impl std::str::FromStr for RedisUrl {
    type Err = InvalidRedisUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for RedisUrl {
    type Error = InvalidRedisUrl;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl TryFrom<&String> for RedisUrl {
    type Error = InvalidRedisUrl;

    fn try_from(s: &String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl TryFrom<String> for RedisUrl {
    type Error = InvalidRedisUrl;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

/// Lets functions taking `impl TryInto<RedisUrl>` accept a [`RedisUrl`] itself, whose
/// conversion cannot fail, with the same error type as a string's.
impl From<std::convert::Infallible> for InvalidRedisUrl {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.redacted()).finish()
    }
}

impl Serialize for RedisUrl {
    /// Serializes the *redacted* form, so a dumped configuration never carries a secret.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Redacts the secrets of every `scheme://...` URL found in `text`: the password of the
/// user-info (`user:***@`), a lone user-info (`***@`, it may be a token) and the value of every
/// query parameter named like a secret (as listed on [`RedisUrl`], e.g. `sentinelPassword=***`).
///
/// A URL runs from `://` to the next whitespace or control character. Used on every error
/// message that may quote a value, since a URL can end up under the wrong key and be echoed
/// back by a type error, and by infra-log on every log line.
///
/// ```
/// use infra_config::redact_urls_in;
///
/// assert_eq!(
///     redact_urls_in("reconnecting to redis://bot:pw@h:6379 and redis-sentinel://s:26379?sentinelPassword=pw2"),
///     "reconnecting to redis://bot:***@h:6379 and redis-sentinel://s:26379?sentinelPassword=***"
/// );
/// ```
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let end = url_end(tail, opening_quote(&rest[..pos]));
        redact_after_scheme(&tail[..end], &mut out);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The quote right before the scheme that ends `before`, if any.
fn opening_quote(before: &str) -> Option<char> {
    let scheme = before.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme.chars().next_back().filter(|c| matches!(c, '"' | '\'' | '`'))
}

/// Where the URL starting `tail` (just after its `://`) ends in free text: at whitespace or a
/// control character, not at a quote, since a password may contain one. But a URL opened by a
/// quote ends at its closing quote when only closing punctuation follows it
/// (`RedisUrl("redis://...?password=x")`), so that quote stays out of the last query value.
fn url_end(tail: &str, opening_quote: Option<char>) -> usize {
    let end = tail.find(|c: char| c.is_whitespace() || c.is_control()).unwrap_or(tail.len());
    let Some(quote) = opening_quote else { return end };
    match tail[..end].rfind(quote) {
        Some(close)
            if tail[close + quote.len_utf8()..end]
                .chars()
                .all(|c| matches!(c, ')' | ']' | '}' | '>' | ',' | ';' | '.' | ':')) =>
        {
            close
        }
        _ => end,
    }
}

/// Like [`redact_urls_in`] on a whole input that failed to parse as a URL: its parts may not be
/// where they should (an unescaped `/`, `?` or `#` in a password cuts the user-info short), so
/// when an `@` appears past the end of the authority everything up to the last `@` is hidden.
fn redact_malformed(input: &str) -> String {
    // A `://` after something other than a scheme belongs to a URL nested in the query.
    let body_start = input
        .find("://")
        .filter(|&pos| {
            let scheme = input[..pos].trim_start();
            !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        })
        .map_or(0, |pos| pos + 3);
    let (head, body) = input.split_at(body_start);
    let mut out = String::with_capacity(input.len());
    out.push_str(head);
    let authority_end = body.find(['/', '?', '#']).unwrap_or(body.len());
    match body.rfind('@') {
        // The `@` of a query value (`?password=a@b`, a host missing): the value's tail, up to
        // the next parameter, is part of the secret too.
        Some(at) if at > authority_end && is_in_query_value(&body[..at]) => {
            out.push_str(REDACTED);
            if let Some(next) = body[at..].find('&') {
                out.push('&');
                redact_query(&body[at + next + 1..], &mut out);
            }
        }
        Some(at) if at > authority_end => {
            out.push_str(REDACTED);
            redact_after_scheme(&body[at..], &mut out);
        }
        _ => redact_after_scheme(body, &mut out),
    }
    out
}

/// Whether an `@` sits where no Redis URL needs one: in the path, or a query value
/// that is neither a secret nor a nested URL. It is the `@` of a user-info cut short by an
/// unescaped `/`, `?` or `#` (`redis://tok#en@host` parses with host `tok`), so the URL is
/// refused and its error, which hides everything up to that `@`, is all that is ever shown.
fn has_stray_at(url: &url::Url) -> bool {
    let in_query = url.query().is_some_and(|query| {
        query.split('&').any(|pair| match pair.split_once('=') {
            Some((key, value)) => value.contains('@') && !value.contains("://") && !is_secret_query_param(key),
            None => pair.contains('@'),
        })
    });
    url.path().contains('@') || in_query
}

/// Whether the end of `before` is inside a `key=value` of a query (a `?` then a `=` with no `&`
/// after it), rather than inside a user-info that a `/`, `?` or `#` cut short, or a URL nested
/// in the value (whose own user-info ends at the `@`).
fn is_in_query_value(before: &str) -> bool {
    let last_pair = before.split_once('?').and_then(|(_, query)| query.rsplit('&').next());
    last_pair.and_then(|pair| pair.split_once('=')).is_some_and(|(_, value)| !value.contains("://"))
}

/// Redacts one URL without its `scheme://`: user-info, then query; the host, path and fragment
/// are copied.
fn redact_after_scheme(url: &str, out: &mut String) {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, after) = url.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => {
            redact_userinfo(&authority[..at], out);
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    // A `#` after the `?` stays in its query value: in a Redis URL it can only be a secret's
    // unescaped `#`, and must not end the value that hides it.
    match after.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            redact_query(query, out);
        }
        None => out.push_str(after),
    }
}

/// `user:password` keeps the user; a lone `user` is hidden whole, since a token is often passed
/// that way. Empty parts stay empty: there is nothing to hide.
fn redact_userinfo(userinfo: &str, out: &mut String) {
    match userinfo.split_once(':') {
        Some((user, password)) => {
            out.push_str(user);
            out.push(':');
            if !password.is_empty() {
                out.push_str(REDACTED);
            }
        }
        None if !userinfo.is_empty() => out.push_str(REDACTED),
        None => {}
    }
}

/// Splits the query like fred does (`&`-separated, `key=value`, percent-decoded) and hides the
/// values of secret-bearing parameters.
fn redact_query(query: &str, out: &mut String) {
    for (index, pair) in query.split('&').enumerate() {
        if index > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, value)) if !value.is_empty() && is_secret_query_param(key) => {
                out.push_str(key);
                out.push('=');
                out.push_str(REDACTED);
            }
            // A value may itself be a URL (`?node=redis://...`).
            Some((key, value)) => {
                out.push_str(key);
                out.push('=');
                out.push_str(&redact_urls_in(value));
            }
            None => out.push_str(pair),
        }
    }
}

/// Whether a raw (percent-encoded) query key names a secret.
fn is_secret_query_param(raw_key: &str) -> bool {
    // `raw_key` holds neither `&` nor `=`, so it parses as exactly one pair.
    let decoded = url::form_urlencoded::parse(raw_key.as_bytes()).next().map(|(key, _)| key).unwrap_or_default();
    let lower = decoded.to_lowercase();
    SECRET_QUERY_PARAMS.iter().any(|needle| lower.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_fred_scheme() {
        for scheme in REDIS_SCHEMES {
            let url = RedisUrl::parse(&format!("{scheme}://localhost:6379")).unwrap();
            assert_eq!(url.host(), "localhost");
            assert_eq!(url.port(), Some(6379));
        }
    }

    #[test]
    fn rejects_other_schemes_and_names_them() {
        let err = RedisUrl::parse("http://localhost").unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed redis url `http://localhost`: unsupported scheme `http`, expected one of: \
             redis, rediss, redis-cluster, rediss-cluster, redis-sentinel, rediss-sentinel"
        );
    }

    #[test]
    fn rejects_garbage_without_echoing_the_password() {
        let err = RedisUrl::parse("redis://user:s3cret@host:notaport").unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(text, "malformed redis url `redis://user:***@host:notaport`: invalid port number");
        let err = RedisUrl::parse("not a url").unwrap_err();
        assert_eq!(err.reason(), "relative URL without a base");
    }

    #[test]
    fn redacts_in_every_rendering() {
        let url = RedisUrl::parse("rediss://:p%40ss@example.com:6380/2").unwrap();
        assert!(url.has_password());
        assert_eq!(url.to_string(), "rediss://:***@example.com:6380/2");
        assert_eq!(format!("{url:?}"), "RedisUrl(\"rediss://:***@example.com:6380/2\")");
        assert_eq!(url.expose(), "rediss://:p%40ss@example.com:6380/2");
        let no_password = RedisUrl::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!(no_password.to_string(), "redis://127.0.0.1:6379");
    }

    #[test]
    fn redacts_urls_inside_free_text() {
        assert_eq!(
            redact_urls_in("found string `redis://bot:pw@h:1/0` and redis://tok@h2 and http://x/y"),
            "found string `redis://bot:***@h:1/0` and redis://***@h2 and http://x/y"
        );
        assert_eq!(redact_urls_in("found string \"redis://:pw@host\""), "found string \"redis://:***@host\"");
        // A closing quote stays out of a redacted query value.
        assert_eq!(
            redact_urls_in("url=\"redis://h?token=t0k\" found `redis://h?password=pw` 'redis://h?secret=s'"),
            "url=\"redis://h?token=***\" found `redis://h?password=***` 'redis://h?secret=***'"
        );
        assert_eq!(
            redact_urls_in("Config { url: RedisUrl(\"redis://h?password=pw\"), n: 1 }"),
            "Config { url: RedisUrl(\"redis://h?password=***\"), n: 1 }"
        );
        // Without an opening quote, or with more than punctuation after the last one, the
        // quote may be part of the secret.
        assert_eq!(redact_urls_in("redis://h?password=pw\" unquoted"), "redis://h?password=*** unquoted");
        assert_eq!(redact_urls_in("'redis://h?password=p'w0rd"), "'redis://h?password=***");
        assert_eq!(redact_urls_in("no urls here"), "no urls here");
        assert_eq!(redact_urls_in("trailing ://"), "trailing ://");
    }

    #[test]
    fn a_lone_user_info_is_hidden_like_a_token() {
        let url = RedisUrl::parse("redis://tok3n@host:6379").unwrap();
        assert!(!url.has_password());
        assert_eq!(url.to_string(), "redis://***@host:6379");
        assert_eq!(format!("{url:?}"), "RedisUrl(\"redis://***@host:6379\")");
        assert_eq!(redact_urls_in("redis://tok3n@host:6379"), "redis://***@host:6379");
        // Nothing to hide in an empty user-info or an empty password.
        assert_eq!(redact_urls_in("redis://@host redis://bot:@host"), "redis://@host redis://bot:@host");
    }

    #[test]
    fn secret_query_parameters_are_hidden_and_others_kept() {
        let table = [
            (
                "redis-sentinel://host:26379/mymaster?sentinelPassword=s3cret",
                "redis-sentinel://host:26379/mymaster?sentinelPassword=***",
            ),
            (
                "rediss-sentinel://u:s3cret@h:26379/0?sentinelServiceName=m&sentinelUsername=su&sentinelPassword=s3cret&node=b:26380",
                "rediss-sentinel://u:***@h:26379/0?sentinelServiceName=m&sentinelUsername=su&sentinelPassword=***&node=b:26380",
            ),
            ("redis://h?PASSWORD=s3cret&db=1", "redis://h?PASSWORD=***&db=1"),
            ("redis://h?token=s3cret&auth_token=s3cret", "redis://h?token=***&auth_token=***"),
            ("redis://h?clientSecret=s3cret&x_api_key=s3cret", "redis://h?clientSecret=***&x_api_key=***"),
            // Percent-encoded names are decoded first, like fred does (`%50` is `P`).
            ("redis://h?sentinel%50assword=s3cret", "redis://h?sentinel%50assword=***"),
            // A URL inside a query value has its own secrets hidden.
            ("redis://h?node=redis://u:s3cret@b:1", "redis://h?node=redis://u:***@b:1"),
            // No value, or an empty one: nothing to hide.
            ("redis://h?password&password=", "redis://h?password&password="),
        ];
        for (input, expected) in table {
            let url = RedisUrl::parse(input).unwrap();
            assert_eq!(url.redacted(), expected, "{input}");
            assert_eq!(redact_urls_in(input), expected, "{input}");
            assert!(!url.to_string().contains("s3cret") && !format!("{url:?}").contains("s3cret"), "{input}");
            assert_eq!(url.expose(), input);
        }
        // A `#` can only be a secret's, unescaped: refused, and it does not end a hidden value.
        let error = RedisUrl::parse("redis://h?password=s3#cret&db=1").unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed redis url `redis://h?password=***&db=1`: a `#` in a redis url: write it %23"
        );
        let error = RedisUrl::parse("redis://tok#en@h").unwrap_err();
        assert_eq!(error.to_string(), "malformed redis url `redis://***@h`: a `#` in a redis url: write it %23");
    }

    #[test]
    fn redaction_is_idempotent() {
        for input in [
            "redis://bot:pw@h:1/0?sentinelPassword=x&db=2",
            "redis://tok@h",
            "malformed redis url `redis://***@host:notaport`: invalid port number",
        ] {
            let once = redact_urls_in(input);
            assert_eq!(redact_urls_in(&once), once, "{input}");
        }
    }

    #[test]
    fn malformed_urls_never_echo_a_secret() {
        let table = [
            // A bad port, and a sentinel password in the query.
            (
                "redis-sentinel://host:notaport/mymaster?sentinelPassword=s3cret",
                "malformed redis url `redis-sentinel://host:notaport/mymaster?sentinelPassword=***`: invalid port number",
            ),
            // An unescaped `/` or `#` in the password cuts the authority short: everything up
            // to the last `@` goes.
            ("redis://user:s3/cret@host:6379", "malformed redis url `redis://***@host:6379`: invalid port number"),
            ("redis://user:s3#cret@host", "malformed redis url `redis://***@host`: invalid port number"),
            // No `://` at all.
            (
                "user:s3cret@host",
                "malformed redis url `user:***@host`: unsupported scheme `user`, expected one of: redis, rediss, redis-cluster, rediss-cluster, redis-sentinel, rediss-sentinel",
            ),
            ("s3cret@host", "malformed redis url `***@host`: relative URL without a base"),
            // The only `://` is in a URL nested in the query: not taken for the scheme's.
            (
                "bot:s3cret@localhost?node=redis://u:s3cret@h3:1",
                "malformed redis url `***@h3:1`: unsupported scheme `bot`, expected one of: redis, rediss, redis-cluster, rediss-cluster, redis-sentinel, rediss-sentinel",
            ),
            // Parsed, but not a Redis URL.
            ("redis:s3cret@host?password=s3cret", "malformed redis url `redis:***@host?password=***`: missing host"),
            // An `@` in a query value of a URL without a host: the value's tail is hidden too.
            (
                "redis://?sentinelServiceName=m&password=s3@cret&node=h2:1",
                "malformed redis url `redis://***&node=h2:1`: missing host",
            ),
        ];
        for (input, expected) in table {
            let err = RedisUrl::parse(input).unwrap_err();
            assert_eq!(err.to_string(), expected, "{input}");
            assert!(!format!("{err:?}").contains("s3"), "{input}");
        }
    }
}
