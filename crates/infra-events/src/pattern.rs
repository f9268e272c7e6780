//! Channel patterns with Redis glob semantics, so a pattern subscription matches the same
//! channels on every backend.
//!
//! A port of Redis's `stringmatchlen` (util.c): `*` any run of bytes, `?` one byte,
//! `[abc]`, `[^a]`, `[a-z]` (reversed ranges work), `\x` for a literal `x`. Matching is on
//! bytes, as in Redis: `?` matches one byte of a multi-byte UTF-8 character, and range bounds
//! compare as signed bytes (C `char` on x86-64), so non-ASCII bytes sort before ASCII.

use std::fmt;

/// Recursion bound for runs of `*`, as Redis has (it gives up and reports no match).
const MAX_NESTING: usize = 1000;

/// A compiled channel pattern.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: String,
    /// Whether the pattern has no special character, so equality is enough.
    literal: bool,
}

impl Pattern {
    /// Any string is a valid Redis pattern; this only notes whether it is a plain channel name.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let literal = !text.bytes().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'));
        Self { text, literal }
    }

    /// Like [`Pattern::new`], but refuses what is almost certainly a mistake although Redis
    /// accepts it: an empty pattern (it matches only the empty channel), a `[` never closed
    /// (Redis closes it at the end), a trailing `\` that escapes nothing (Redis matches a
    /// literal `\`). [`EventBusExt::subscribe_pattern`](crate::EventBusExt::subscribe_pattern)
    /// parses its glob with it.
    ///
    /// ```
    /// use infra_events::{EventsError, Pattern};
    ///
    /// assert!(Pattern::parse("prices:[A-Z]*")?.matches("prices:BTC"));
    /// let error = Pattern::parse("prices:[A-Z").unwrap_err();
    /// assert!(matches!(error, EventsError::InvalidPattern { .. }));
    /// assert_eq!(error.to_string(), "invalid channel pattern `prices:[A-Z`: `[` is never closed by `]`");
    /// # Ok::<(), EventsError>(())
    /// ```
    pub fn parse(text: impl Into<String>) -> crate::Result<Self> {
        let text = text.into();
        match mistake(text.as_bytes()) {
            None => Ok(Self::new(text)),
            Some(reason) => Err(crate::EventsError::InvalidPattern { pattern: text, reason }),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has no wildcard (it matches exactly one channel).
    pub fn is_literal(&self) -> bool {
        self.literal
    }

    /// Whether `channel` matches, exactly as Redis `PSUBSCRIBE` would decide.
    pub fn matches(&self, channel: &str) -> bool {
        if self.literal {
            return self.text == channel;
        }
        let mut skip_longer = false;
        glob_match(self.text.as_bytes(), channel.as_bytes(), &mut skip_longer, 0)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.text).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What is wrong with `pattern`, read the way [`glob_match`] reads it, if it is empty, has a
/// `[` with no `]`, or ends in a lone `\`.
fn mistake(pattern: &[u8]) -> Option<&'static str> {
    if pattern.is_empty() {
        return Some("an empty pattern matches only the empty channel");
    }
    let mut p = 0;
    while p < pattern.len() {
        match pattern[p] {
            b'\\' if p + 1 == pattern.len() => return Some("a trailing `\\` escapes nothing"),
            b'\\' => p += 2,
            b'[' => {
                p += 1;
                if p < pattern.len() && pattern[p] == b'^' {
                    p += 1;
                }
                loop {
                    if p >= pattern.len() {
                        return Some("`[` is never closed by `]`");
                    }
                    match pattern[p] {
                        b'\\' if pattern.len() - p >= 2 => p += 2,
                        b']' => break,
                        _ if pattern.len() - p >= 3 && pattern[p + 1] == b'-' => p += 3,
                        _ => p += 1,
                    }
                }
                p += 1;
            }
            _ => p += 1,
        }
    }
    None
}

/// A byte as C's `char` on x86-64.
fn signed(byte: u8) -> i8 {
    i8::from_ne_bytes([byte])
}

/// Redis's `stringmatchlen_impl`, index for index.
fn glob_match(pattern: &[u8], string: &[u8], skip_longer: &mut bool, nesting: usize) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    let (mut p, mut s) = (0, 0);
    while p < pattern.len() && s < string.len() {
        match pattern[p] {
            b'*' => {
                while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                while s < string.len() {
                    if glob_match(&pattern[p + 1..], &string[s..], skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let negate = p < pattern.len() && pattern[p] == b'^';
                if negate {
                    p += 1;
                }
                let c = string[s];
                let mut matched = false;
                loop {
                    if p < pattern.len() && pattern[p] == b'\\' && pattern.len() - p >= 2 {
                        p += 1;
                        if pattern[p] == c {
                            matched = true;
                        }
                    } else if p < pattern.len() && pattern[p] == b']' {
                        break;
                    } else if p >= pattern.len() {
                        // An unclosed class ends with the pattern.
                        p -= 1;
                        break;
                    } else if pattern.len() - p >= 3 && pattern[p + 1] == b'-' {
                        // Redis compares ranges as C `char`, signed on x86-64: bytes above
                        // 0x7f sort before ASCII.
                        let (mut start, mut end) = (signed(pattern[p]), signed(pattern[p + 2]));
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        p += 2;
                        if (start..=end).contains(&signed(c)) {
                            matched = true;
                        }
                    } else if pattern[p] == c {
                        matched = true;
                    }
                    p += 1;
                }
                if negate {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s += 1;
            }
            b'\\' if pattern.len() - p >= 2 => {
                p += 1;
                if pattern[p] != string[s] {
                    return false;
                }
                s += 1;
            }
            literal => {
                if literal != string[s] {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == string.len() {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            break;
        }
    }
    p == pattern.len() && s == string.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_glob_semantics() {
        // The full table, checked against a real Redis too, is in tests/patterns.rs.
        for (pattern, channel, expected) in [
            ("prices:*", "prices:BTC", true),
            ("h?llo", "héllo", false),
            ("h[^e]llo", "hallo", true),
            ("h\\*llo", "h*llo", true),
            ("[", "[", false),
        ] {
            assert_eq!(Pattern::new(pattern).matches(channel), expected, "{pattern:?} ~ {channel:?}");
        }
    }

    #[test]
    fn literal_patterns_compare_exactly() {
        let pattern = Pattern::new("orders.fills");
        assert!(pattern.is_literal());
        assert!(pattern.matches("orders.fills"));
        assert!(!pattern.matches("orders.fill"));
        assert!(!Pattern::new("a*").is_literal());
    }

    #[test]
    fn parse_refuses_likely_mistakes_only() {
        for good in ["prices:*", "a\\*", "[a-z]", "[^]]", "[a\\]]", "[a-]]", "x[]", "*"] {
            assert!(Pattern::parse(good).is_ok(), "{good:?}");
        }
        for (bad, reason) in [
            ("", "an empty pattern matches only the empty channel"),
            ("prices:[A-Z", "`[` is never closed by `]`"),
            ("[a\\]", "`[` is never closed by `]`"),
            ("[a-]", "`[` is never closed by `]`"),
            ("orders\\", "a trailing `\\` escapes nothing"),
        ] {
            match Pattern::parse(bad) {
                Err(crate::EventsError::InvalidPattern { pattern, reason: said }) => {
                    assert_eq!((pattern.as_str(), said), (bad, reason));
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn pathological_patterns_end() {
        let pattern = Pattern::new("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b");
        assert!(!pattern.matches(&"a".repeat(10_000)));
    }
}
