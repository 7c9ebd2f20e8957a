//! The one wall-clock format every stage writes: RFC 3339 UTC with
//! milliseconds (`2026-12-01T08:45:19.200Z`), and the stage timings of
//! `DCMS_BULK_TIMING=1`. It sits below the stages so that none has to
//! reach into another for the time.

pub fn now() -> String {
    Stamp::now().to_string()
}

/// A time of [`now`]'s format as a file name may hold it: its letters and
/// digits only (`2026-12-01T16:20:00.123Z` → `20261201T162000123Z`).
pub fn in_name(time: &str) -> String {
    time.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// A time of [`now`]'s format as a person reads it in a line:
/// `2026-12-01 16:20 UTC` (as given, if it is not of that format).
pub fn shown(time: &str) -> String {
    match (time.get(..10), time.get(11..16)) {
        (Some(day), Some(hm)) if time.len() >= 20 => format!("{day} {hm} UTC"),
        _ => time.to_owned(),
    }
}

/// A moment to the millisecond, written in the one format: kept as 12
/// bytes where its text would take a heap allocation (an outcome of each
/// of a million orders holds one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(chrono::DateTime<chrono::Utc>);

impl Stamp {
    pub fn now() -> Stamp {
        use chrono::{SubsecRound, Utc};
        Stamp(Utc::now().trunc_subsecs(3))
    }

    /// A moment written in RFC 3339 (as [`now`] writes it).
    pub fn parse(text: &str) -> Option<Stamp> {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Stamp(t.with_timezone(&chrono::Utc)))
    }
}

impl From<chrono::DateTime<chrono::Utc>> for Stamp {
    fn from(t: chrono::DateTime<chrono::Utc>) -> Stamp {
        use chrono::SubsecRound;
        Stamp(t.trunc_subsecs(3))
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }
}

impl serde::Serialize for Stamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Stamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Stamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Stamp::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text}")))
    }
}

/// `DCMS_BULK_TIMING=1` prints how long each stage took (for benchmarks).
pub fn timing(stage: &str, since: std::time::Instant) {
    static ON: std::sync::LazyLock<bool> =
        std::sync::LazyLock::new(|| std::env::var_os("DCMS_BULK_TIMING").is_some());
    if *ON {
        eprintln!(
            "timing: {stage}: {:.3} s, {} MiB resident, {:.2} s CPU so far",
            since.elapsed().as_secs_f64(),
            resident_mib(),
            cpu_seconds()
        );
    }
}

/// The CPU time this process has used so far, user and system, in seconds
/// (Linux, at the usual 100 ticks a second; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The fields after the command's name, which is in parentheses.
            let rest = &s[s.rfind(')')? + 2..];
            let mut f = rest.split_whitespace().skip(11);
            Some(f.next()?.parse::<u64>().ok()? + f.next()?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    ticks as f64 / 100.0
}

/// This process's resident memory now, in MiB (Linux; 0 elsewhere).
fn resident_mib() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    (pages * 4096) >> 20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_as_it_was_written() {
        let t = Stamp::now();
        let text = t.to_string();
        assert_eq!(text.len(), "2026-12-01T08:45:19.200Z".len(), "{text}");
        assert_eq!(Stamp::parse(&text), Some(t));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Stamp>(&json).unwrap(), t);
        assert_eq!(
            Stamp::parse("2026-12-01T08:45:19.2Z").unwrap().to_string(),
            "2026-12-01T08:45:19.200Z"
        );
        assert!(Stamp::parse("yesterday").is_none());
    }
}
