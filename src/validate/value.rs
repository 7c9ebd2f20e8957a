//! Reading a value: digits, whole numbers, the start time's format, and
//! the hints a refused value gets.

use crate::columns::Field;
use crate::quote;

/// The number of characters of `v` when it may have more than `max`
/// (counting them costs), else its byte length, which is at most `max`.
pub(super) fn chars_beyond(v: &str, max: usize) -> usize {
    if v.len() > max {
        v.chars().count()
    } else {
        v.len()
    }
}

/// When the catalog lists `v` with leading zeros (`01` for `1`), says so:
/// Excel dropped them. Empty otherwise.
pub(super) fn zeros_hint<'c>(
    field: Field,
    v: &str,
    known: impl Iterator<Item = &'c String>,
) -> String {
    if !is_digits(v) {
        return String::new();
    }
    let bare = v.trim_start_matches('0');
    known
        .filter(|k| k.len() > v.len() && is_digits(k) && k.trim_start_matches('0') == bare)
        .min()
        .map(|k| {
            format!(
                "; the catalog lists `{k}`: the leading zeros were lost (Excel drops them from \
                 numbers): format the column as Text and type it again, or set \
                 id_widths.{} = {} in the rules file",
                field.name(),
                k.len()
            )
        })
        .unwrap_or_default()
}

pub(super) fn is_digits(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
}

/// `"12"` → 12; signs, decimals, separators and words are not whole numbers.
pub fn whole_number(v: &str) -> Option<u64> {
    if is_digits(v) && v.len() <= 12 {
        v.parse().ok()
    } else {
        None
    }
}

/// `YYYY-MM-DD HH:mm:ss`, and a date and time that exist.
pub fn check_timestamp(v: &str) -> Result<(), String> {
    let b = v.as_bytes();
    let shape_ok = b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(format!(
            "must be a date and time written YYYY-MM-DD HH:mm:ss, got `{}`",
            quote::value(v)
        ));
    }
    let n = |r: std::ops::Range<usize>| v[r].parse::<u32>().unwrap_or(u32::MAX);
    let date = chrono::NaiveDate::from_ymd_opt(n(0..4) as i32, n(5..7), n(8..10));
    let time = chrono::NaiveTime::from_hms_opt(n(11..13), n(14..16), n(17..19));
    match (date, time) {
        (Some(_), Some(_)) => Ok(()),
        (None, _) => Err(format!("`{}` is not a real date", quote::value(v))),
        (_, None) => Err(format!("`{}` is not a real time of day", quote::value(v))),
    }
}
