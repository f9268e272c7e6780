//! The values a store holds and the small types its operations speak.

use std::{fmt, sync::Arc, time::Duration};

use serde::{Serialize, de::DeserializeOwned};

use crate::{Result, StateError};

/// A stored value: JSON text, exactly as it sits in the backend, so that any client in any
/// language reads the same thing. Cheap to clone.
///
/// Values written through this crate are always valid JSON. A value written by another client
/// may not be: reading it never fails, decoding it does ([`StateValue::decode`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StateValue(Arc<str>);

impl StateValue {
    /// Serializes `value` to JSON.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(Self::from_json_text)
    }

    /// Wraps text that must already be valid JSON.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<serde::de::IgnoredAny>(text)?;
        Ok(Self(text.into()))
    }

    /// Wraps text known to be JSON (or read from a backend as is).
    pub(crate) fn from_json_text(text: impl Into<Arc<str>>) -> Self {
        Self(text.into())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Size of the text in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty (only possible for values written by other clients).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decodes the JSON into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// The version of this value, as [`StateStore::get_versioned`](crate::StateStore::get_versioned)
    /// reports it: the SHA-1 of its text.
    pub fn version(&self) -> Version {
        Version(sha1_smol::Sha1::from(self.0.as_bytes()).digest().to_string())
    }
}

impl fmt::Debug for StateValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 256;
        match self.0.char_indices().nth(SHOWN) {
            Some((cut, _)) => write!(f, "StateValue({:?}… {} bytes)", &self.0[..cut], self.0.len()),
            None => write!(f, "StateValue({:?})", &*self.0),
        }
    }
}

impl fmt::Display for StateValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for StateValue {
    type Err = serde_json::Error;

    /// Same as [`StateValue::parse`]: the text must be JSON.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl From<serde_json::Value> for StateValue {
    fn from(value: serde_json::Value) -> Self {
        Self(value.to_string().into())
    }
}

impl From<&serde_json::Value> for StateValue {
    fn from(value: &serde_json::Value) -> Self {
        Self(value.to_string().into())
    }
}

/// The version of a stored value, for compare-and-swap: the SHA-1 of its JSON text.
///
/// It changes whenever the text changes. Being content-derived it has the ABA property: a value
/// changed and changed back has its old version again, which is what an optimistic update
/// needs (it only ever replaces the value it read).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(pub(crate) String);

impl Version {
    /// The version as 40 lowercase hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads a version previously obtained with [`Version::as_str`].
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() == 40 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Self(text.to_owned()))
        } else {
            Err(StateError::InvalidVersion { version: text.chars().take(64).collect() })
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value read with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value.
    pub value: StateValue,
    /// Its version.
    pub version: Version,
}

/// What a compare-and-swap expects to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// The key must not exist.
    Absent,
    /// The key must hold exactly this JSON text.
    Value(StateValue),
    /// The key must hold a value of this version.
    Version(Version),
}

/// The result of a compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// The new value is stored; this is its version.
    Swapped(Version),
    /// The expectation did not hold; this is what the key holds now.
    Conflict(Option<Versioned>),
}

impl CasOutcome {
    /// Whether the swap happened.
    pub fn is_swapped(&self) -> bool {
        matches!(self, Self::Swapped(_))
    }
}

/// The remaining time to live of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// The key does not exist.
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires after this long (millisecond precision).
    Expires(Duration),
}

/// An amount to add to a counter, or a counter's new value.
///
/// Integers follow Redis `INCRBY` (64-bit, overflow is an error); floats follow `INCRBYFLOAT`
/// (a float increment turns an integer into a float; NaN or infinity is an error).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(n) => write!(f, "{n}"),
            Self::Float(x) => write!(f, "{x}"),
        }
    }
}

impl From<i64> for Number {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}

impl From<f64> for Number {
    fn from(x: f64) -> Self {
        Self::Float(x)
    }
}

/// How float counters are written, identically by every backend: C's `%.17g` (every `f64`
/// survives the round trip), with `.0` added when that looks like an integer so it reads back
/// as a float. Redis computes float increments in a Lua script with the same format.
#[cfg(any(feature = "memory", test))]
pub(crate) fn format_float(x: f64) -> String {
    // `{:.16e}` gives the 17 significant digits of `%.17g`, correctly rounded like glibc.
    let sci = format!("{x:.16e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if negative { "-" } else { "" };
    let text = if !(-4..17).contains(&exponent) {
        // Scientific, as %g writes it: d[.ddd]e±XX (at least two exponent digits).
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{first}{dot}e{exp_sign}{:02}", exponent.unsigned_abs())
    } else if exponent < 0 {
        format!("{sign}0.{}{digits}", "0".repeat(exponent.unsigned_abs() as usize - 1))
    } else {
        let point = exponent as usize + 1;
        if digits.len() <= point {
            format!("{sign}{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..point], &digits[point..])
        }
    };
    if text.contains(['.', 'e']) { text } else { format!("{text}.0") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_formatted_like_c_percent_17g() {
        let cases = [
            (0.0, "0.0"),
            (3.0, "3.0"),
            (-2.0, "-2.0"),
            (0.5, "0.5"),
            (10.6, "10.6"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.1 + 0.7, "0.79999999999999993"),
            (1e21, "1e+21"),
            (1.5e-7, "1.4999999999999999e-07"),
            (0.0001, "0.0001"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (12345678901234567.0, "12345678901234568.0"),
            (-0.00012, "-0.00012"),
        ];
        for (x, expected) in cases {
            assert_eq!(format_float(x), expected, "{x:e}");
            assert_eq!(format_float(x).parse::<f64>().unwrap(), x, "round trip of {expected}");
        }
    }

    #[test]
    fn values_parse_decode_and_version() {
        let v = StateValue::json(&serde_json::json!({"b": 1, "a": [1, 2]})).unwrap();
        assert_eq!(v.as_str(), r#"{"a":[1,2],"b":1}"#);
        assert_eq!(v.decode::<serde_json::Value>().unwrap()["b"], 1);
        assert!(StateValue::parse("{not json").is_err());
        assert_eq!(StateValue::parse("\"x\"").unwrap().as_str(), "\"x\"");
        let version = StateValue::json("x").unwrap().version();
        assert_eq!(
            version.as_str(),
            "a81fa20d625fc8e5a04721cdf61f056fc2e22496",
            "SHA-1 of the text, as Redis's redis.sha1hex"
        );
        assert_eq!(Version::parse(version.as_str()).unwrap(), version);
        assert_eq!(
            Version::parse("nope").unwrap_err().to_string(),
            "invalid version `nope`: expected 40 lowercase hex digits"
        );
    }
}
