//! [`Secret`]: a password or token from the configuration, redacted everywhere it could leak.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a [`Secret`] shows instead of its value.
pub const SECRET_REDACTED: &str = "<redacted>";

/// A password or token (such as `dashboard.token`) whose value never leaves the process by
/// accident: `Debug`, `Display` and `Serialize` (so [`Config::to_toml`](crate::Config::to_toml)
/// too) show `<redacted>`. Only [`Secret::expose`] returns the value; call it where the secret
/// is compared or sent, and nowhere else.
///
/// It reads from a string, or from a number or a boolean (an environment variable holding
/// digits only is parsed as a number before it reaches this type).
///
/// ```
/// use infra_config::Secret;
///
/// let token = Secret::new("hunter2");
/// assert_eq!(token.to_string(), "<redacted>");
/// assert!(!format!("{token:?}").contains("hunter2"));
/// assert_eq!(token.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Use it only to compare or send the secret.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (or only whitespace).
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_REDACTED)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Secret").field(&SECRET_REDACTED).finish()
    }
}

impl Serialize for Secret {
    /// Serializes `<redacted>`, so a dumped configuration never carries the secret.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(SECRET_REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Secret;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Secret, E> {
                Ok(Secret::new(value))
            }

            fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Secret, E> {
                Ok(Secret(value))
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Secret, E> {
                Ok(Secret(value.to_string()))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Secret, E> {
                Ok(Secret(value.to_string()))
            }

            fn visit_i128<E: serde::de::Error>(self, value: i128) -> Result<Secret, E> {
                Ok(Secret(value.to_string()))
            }

            fn visit_u128<E: serde::de::Error>(self, value: u128) -> Result<Secret, E> {
                Ok(Secret(value.to_string()))
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Secret, E> {
                Ok(Secret(value.to_string()))
            }

            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Secret, E> {
                Ok(Secret(value.to_string()))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Holder {
        token: Secret,
    }

    #[test]
    fn never_shows_its_value() {
        let secret = Secret::new("s3cret");
        assert_eq!(format!("{secret} {secret:?}"), "<redacted> Secret(\"<redacted>\")");
        let dump = toml::to_string(&Holder { token: secret.clone() }).unwrap();
        assert_eq!(dump.trim(), "token = \"<redacted>\"");
        let read: Holder = toml::from_str("token = \"s3cret\"").unwrap();
        assert_eq!(read.token, secret);
        let number: Holder = toml::from_str("token = 12345").unwrap();
        assert_eq!(number.token.expose(), "12345");
        assert!(Secret::new("  ").is_blank() && !secret.is_blank());
    }
}
