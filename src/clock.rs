//! The one wall-clock format every stage writes: RFC 3339 UTC with
//! milliseconds (`2026-12-01T08:45:19.200Z`). It sits below the stages so
//! that none has to reach into another for the time.

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
