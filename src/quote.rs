//! How a value from a sheet appears in a message: its first 80 characters,
//! then "…" and its length, so that a hostile cell of megabytes never fills
//! a message, the console or a report's errors cell; and a count with
//! its noun.

use std::borrow::Cow;

/// Longest part of a value a message quotes, in characters.
const MAX: usize = 80;

/// `v` as a message quotes it.
pub fn value(v: &str) -> Cow<'_, str> {
    match v.char_indices().nth(MAX) {
        None => Cow::Borrowed(v),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} characters)", &v[..cut], v.chars().count())),
    }
}

/// `1 row`, `2 rows`: a count and its noun, in the plural unless one.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    match n.into() {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_values_are_cut_with_their_length() {
        assert_eq!(super::value("short"), "short");
        let long = "é".repeat(100);
        assert_eq!(
            super::value(&long),
            format!("{}… (100 characters)", "é".repeat(80))
        );
        assert_eq!(super::value(&"x".repeat(80)), "x".repeat(80));
    }
}
