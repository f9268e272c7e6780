//! Serde helper: a [`Duration`] written as whole milliseconds (`timeout_ms = 2000`).
//!
//! Integers are unambiguous in TOML and in environment variables, unlike `"2s"` strings whose
//! unit rules differ between tools.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

pub(crate) fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    // Durations here come from u64 milliseconds, so they always fit.
    serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_millis)
}
