//! The one wall-clock format every stage writes: RFC 3339 UTC with
//! milliseconds (`2026-12-01T08:45:19.200Z`), and the stage timings of
//! `DCMS_BULK_TIMING=1`. It sits below the stages so that none has to
//! reach into another for the time.

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `DCMS_BULK_TIMING=1` prints how long each stage took (for benchmarks).
pub fn timing(stage: &str, since: std::time::Instant) {
    static ON: std::sync::LazyLock<bool> =
        std::sync::LazyLock::new(|| std::env::var_os("DCMS_BULK_TIMING").is_some());
    if *ON {
        eprintln!("timing: {stage}: {:.3} s", since.elapsed().as_secs_f64());
    }
}
