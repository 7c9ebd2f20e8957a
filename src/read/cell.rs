//! A cell's text as the checks read it: trimmed, numbers and dates as a
//! person typed them, blank cells told apart; and column letters.

use std::borrow::Cow;

use calamine::Data;

use super::{CellKind, CellRef};

/// Whether every byte of `s` is printable ASCII (a space to `~`): one look
/// at all of them, which the compiler does 16 or 32 at a time.
pub fn is_printable_ascii(s: &str) -> bool {
    s.bytes().fold(true, |ok, b| ok & (0x20..0x7f).contains(&b))
}

/// `str::trim`, with a shortcut for the usual cell that has no
/// whitespace at either end.
pub fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(z)) if is_solid(*a) && is_solid(*z) => s,
        _ => s.trim(),
    }
}

/// An ASCII byte that is not whitespace (non-ASCII might be).
fn is_solid(b: u8) -> bool {
    b.is_ascii() && !b.is_ascii_whitespace()
}

/// The number of fields up to the last non-blank one.
pub(crate) fn record_width(record: &csv::StringRecord) -> usize {
    (0..record.len())
        .rev()
        .find(|&i| !trim(&record[i]).is_empty())
        .map_or(0, |i| i + 1)
}

pub(crate) fn is_blank_data(d: &Data) -> bool {
    match d {
        Data::Empty => true,
        Data::String(s) => trim(s).is_empty(),
        _ => false,
    }
}

/// Turns an Excel cell into its text, the way the user sees it, with whole
/// numbers as integers and dates in the API's `YYYY-MM-DD HH:mm:ss`.
pub fn convert_cell(d: &Data) -> CellRef<'_> {
    let (text, kind): (Cow<'_, str>, CellKind) = match d {
        Data::Empty => (Cow::Borrowed(""), CellKind::Empty),
        Data::String(s) => {
            let t = trim(s);
            let kind = if t.is_empty() {
                CellKind::Empty
            } else {
                CellKind::Text
            };
            (Cow::Borrowed(t), kind)
        }
        Data::Int(i) => (Cow::Owned(i.to_string()), CellKind::Number),
        Data::Float(f) => (Cow::Owned(format_number(*f)), CellKind::Number),
        Data::Bool(b) => (
            Cow::Borrowed(if *b { "TRUE" } else { "FALSE" }),
            CellKind::Bool,
        ),
        Data::DateTime(dt) => {
            // Excel's dates run from serial 0 to 2,958,465 (9999-12-31);
            // outside that a "date" cell is only its number (calamine's
            // conversion panics on values far outside).
            let in_range = (0.0..2_958_466.0).contains(&dt.as_f64());
            if dt.is_datetime() && in_range {
                match dt.as_datetime() {
                    Some(t) => (Cow::Owned(format_datetime(t)), CellKind::Date),
                    None => (Cow::Owned(format_number(dt.as_f64())), CellKind::Number),
                }
            } else {
                (Cow::Owned(format_number(dt.as_f64())), CellKind::Number)
            }
        }
        Data::DateTimeIso(s) => match parse_iso(s) {
            Some(t) => (Cow::Owned(format_datetime(t)), CellKind::Date),
            None => (Cow::Borrowed(s.trim()), CellKind::Text),
        },
        Data::DurationIso(s) => (Cow::Borrowed(s.trim()), CellKind::Text),
        Data::Error(e) => (Cow::Owned(e.to_string()), CellKind::Error),
    };
    CellRef { text, kind }
}

/// `12345.0` → `12345`; `3.5` → `3.5`; no exponent for large whole numbers.
pub fn format_number(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e17 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// Rounds to the nearest second: Excel stores times as fractions of a day,
/// so 10:00:00 may come back as 09:59:59.9996.
fn format_datetime(t: chrono::NaiveDateTime) -> String {
    use chrono::Timelike;
    let ms = t.nanosecond() / 1_000_000;
    let t = t.with_nanosecond(0).unwrap_or(t);
    let t = if ms >= 500 {
        t.checked_add_signed(chrono::Duration::seconds(1))
            .unwrap_or(t)
    } else {
        t
    };
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn parse_iso(s: &str) -> Option<chrono::NaiveDateTime> {
    let s = s.trim();
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
}

/// `0` → `A`, `25` → `Z`, `26` → `AA`.
pub fn column_letter(mut col: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}
