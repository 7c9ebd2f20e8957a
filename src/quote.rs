//! How a value from a sheet appears in a message: its first 80 characters,
//! then "…" and its length, so that a hostile cell of megabytes never fills
//! a message, the console or a report's errors cell; and a count with
//! its noun.

use std::borrow::Cow;

/// Longest part of a value a message quotes, in characters.
const MAX: usize = 80;

/// `v` as a message quotes it: control characters (a line break, a tab,
/// an escape) and the characters that break or reorder a line (U+2028,
/// U+2029, the bidirectional overrides) written as escapes, so that a
/// cell never starts a log line of its own; a long value cut.
pub fn value(v: &str) -> Cow<'_, str> {
    let v = escaped(v);
    match v.char_indices().nth(MAX) {
        None => v,
        Some((cut, _)) => Cow::Owned(format!("{}… ({} characters)", &v[..cut], v.chars().count())),
    }
}

/// Whether a character is written as an escape when quoted.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `v` with its control characters as escapes (`\n`, `\r`, `\t`,
/// `\u{1b}`).
pub fn escaped(v: &str) -> Cow<'_, str> {
    if !v.chars().any(unsafe_char) {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
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

    #[test]
    fn a_quoted_value_stays_on_one_line() {
        assert_eq!(
            super::value("ABC\n2026-12-04T17:13:48Z dcms-bulk: error: x"),
            "ABC\\n2026-12-04T17:13:48Z dcms-bulk: error: x"
        );
        assert_eq!(super::value("a\r\tb\u{1b}[31m"), "a\\r\\tb\\u{1b}[31m");
        assert_eq!(super::value("x\u{2028}y\u{202e}z"), "x\\u{2028}y\\u{202e}z");
        assert_eq!(super::value("Pune – Camp é"), "Pune – Camp é");
    }
}
