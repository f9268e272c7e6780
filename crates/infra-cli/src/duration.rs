//! Durations as operators write them: `500ms`, `30s`, `2m`, `1h`.

use std::time::Duration;

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Nothing was given.
    #[error("empty duration; write a number and a unit, e.g. `30s`, `500ms`, `2m`")]
    Empty,
    /// The text does not start with a whole number.
    #[error("`{0}` does not start with a whole number; write e.g. `30s`, `500ms`, `2m`")]
    NotANumber(String),
    /// The number has no unit.
    #[error("`{0}` has no unit; add one of ms, s, m, h (e.g. `{0}s`)")]
    MissingUnit(String),
    /// The unit is not one of `ms`, `s`, `m`, `h`.
    #[error("unknown unit `{unit}` in `{text}`; use ms, s, m or h")]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unit as written.
        unit: String,
    },
    /// The duration does not fit.
    #[error("`{0}` is too long")]
    Overflow(String),
}

/// Reads a whole number followed by a unit: `ms`, `s`, `m` or `h` (`500ms`, `30s`, `2m`, `1h`).
///
/// ```
/// use std::time::Duration;
/// use infra_cli::{DurationError, parse_duration};
///
/// assert_eq!(parse_duration("30s")?, Duration::from_secs(30));
/// assert_eq!(parse_duration("500ms")?, Duration::from_millis(500));
/// assert_eq!(parse_duration("2m")?, Duration::from_secs(120));
/// assert!(matches!(parse_duration("30"), Err(DurationError::MissingUnit(_))));
/// # Ok::<(), DurationError>(())
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(DurationError::Empty);
    }
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = trimmed.split_at(digits);
    if number.is_empty() {
        return Err(DurationError::NotANumber(trimmed.to_owned()));
    }
    let number: u64 = number.parse().map_err(|_| DurationError::Overflow(trimmed.to_owned()))?;
    let millis_per_unit: u64 = match unit.trim() {
        "" => return Err(DurationError::MissingUnit(trimmed.to_owned())),
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => return Err(DurationError::UnknownUnit { text: trimmed.to_owned(), unit: other.to_owned() }),
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| DurationError::Overflow(trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_unit_and_refuses_the_rest_with_a_typed_error() {
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(" 1h "), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("s"), Err(DurationError::NotANumber("s".into())));
        assert_eq!(parse_duration("-1s"), Err(DurationError::NotANumber("-1s".into())));
        assert_eq!(parse_duration("10"), Err(DurationError::MissingUnit("10".into())));
        assert_eq!(parse_duration("3d"), Err(DurationError::UnknownUnit { text: "3d".into(), unit: "d".into() }));
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::Overflow("99999999999999999999s".into()))
        );
        assert_eq!(
            parse_duration("18446744073709551615h"),
            Err(DurationError::Overflow("18446744073709551615h".into()))
        );
        assert_eq!(parse_duration("3d").unwrap_err().to_string(), "unknown unit `d` in `3d`; use ms, s, m or h");
    }
}
