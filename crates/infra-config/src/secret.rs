//! Redis URLs whose password never leaves the process by accident.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "***";

/// URL schemes the Redis backends accept (the ones `fred` understands).
pub const REDIS_SCHEMES: &[&str] =
    &["redis", "rediss", "redis-cluster", "rediss-cluster", "redis-sentinel", "rediss-sentinel"];

/// A validated Redis connection URL whose password is redacted everywhere it could leak.
///
/// `Debug`, `Display` and `Serialize` (so a dumped config too) all show the password as `***`.
/// Only [`RedisUrl::expose`] returns the real URL; call it where a connection is made and nowhere
/// else.
///
/// ```
/// use infra_config::RedisUrl;
///
/// let url: RedisUrl = "redis://bot:hunter2@cache.internal:6379/0".parse()?;
/// assert_eq!(url.to_string(), "redis://bot:***@cache.internal:6379/0");
/// assert!(!format!("{url:?}").contains("hunter2"));
/// assert_eq!(url.expose(), "redis://bot:hunter2@cache.internal:6379/0");
/// # Ok::<(), infra_config::InvalidRedisUrl>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    url: url::Url,
}

/// Why a string is not a usable Redis URL. The message never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed redis url `{redacted}`: {reason}")]
pub struct InvalidRedisUrl {
    redacted: String,
    reason: String,
}

impl InvalidRedisUrl {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        Self { redacted: redact_urls_in(input), reason: reason.into() }
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
        Ok(Self { url })
    }

    /// The full URL, password included. Use it only to open a connection.
    pub fn expose(&self) -> &str {
        self.url.as_str()
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        if self.url.password().is_none() {
            return self.url.to_string();
        }
        let mut url = self.url.clone();
        // Setting a password cannot fail on a URL that already has one.
        let _ = url.set_password(Some(REDACTED));
        url.to_string()
    }

    /// Whether the URL carries a password.
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
    /// Serializes the *redacted* form, so a dumped configuration never carries the password.
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

/// Replaces the password of every `scheme://user:password@host` found in `text` with `***`.
///
/// Used on every error message that may quote a value, since a URL can end up under the wrong
/// key and be echoed back by a type error.
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority ends at the first character that cannot be part of it.
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '`' || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..=colon]);
                        out.push_str(REDACTED);
                    }
                    // A lone user part can be a token (`redis://token@host`): hide it as well.
                    None if !userinfo.is_empty() => out.push_str(REDACTED),
                    None => {}
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
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
        assert_eq!(redact_urls_in("no urls here"), "no urls here");
        assert_eq!(redact_urls_in("trailing ://"), "trailing ://");
    }
}
