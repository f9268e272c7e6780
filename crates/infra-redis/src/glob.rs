//! Redis glob patterns that match text literally.

/// `text` with Redis's glob characters escaped, so a pattern matches it literally.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A pattern (for `SCAN MATCH` or `PSUBSCRIBE`) matching everything that starts with `prefix`.
pub fn glob_prefix(prefix: &str) -> String {
    let mut pattern = glob_escape(prefix);
    pattern.push('*');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_become_literal_glob_patterns() {
        assert_eq!(glob_prefix("ns:prices:"), "ns:prices:*");
        assert_eq!(glob_prefix("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\*");
        assert_eq!(glob_escape("plain"), "plain");
    }
}
