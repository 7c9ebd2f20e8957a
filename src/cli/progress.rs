//! Progress on the console while a batch is sent (a bar on a terminal, a
//! log line every few seconds otherwise), and what became of it.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Console;
use crate::batch::Finished;
use crate::submit::Tally;

/// `accepted 3 · rejected 0 · failed 1 · skipped 0`.
fn tally_counts(t: &Tally) -> String {
    format!(
        "accepted {} · rejected {} · failed {} · skipped {}",
        t.accepted.load(Ordering::Relaxed),
        t.rejected.load(Ordering::Relaxed),
        t.failed.load(Ordering::Relaxed),
        t.skipped.load(Ordering::Relaxed)
    )
}

/// How long `left` orders take at `rate` a second, to the second; none
/// before the first is done.
fn eta(left: u64, rate: f64) -> Option<Duration> {
    (rate > 0.0).then(|| Duration::from_secs((left as f64 / rate).ceil() as u64))
}

/// A progress bar on a terminal; a log line every few seconds otherwise.
pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        name: &str,
        tally: Arc<Tally>,
        orders: u64,
        console: Console,
    ) -> Progress {
        if console.quiet || orders == 0 {
            return Progress {
                task: None,
                bar: None,
            };
        }
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(orders);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} · {msg} · {rate} · ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                // indicatif's own {per_sec} has four decimals.
                .with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.1} orders/s", state.per_sec());
                    },
                )
                .progress_chars("=> "),
            );
            bar.set_prefix(name.to_owned());
            let b = bar.clone();
            let task = runtime.spawn(async move {
                loop {
                    b.set_position(tally.done.load(Ordering::Relaxed));
                    b.set_message(tally_counts(&tally));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            return Progress {
                task: Some(task),
                bar: Some(bar),
            };
        }
        let name = name.to_owned();
        let task = runtime.spawn(async move {
            let started = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let done = tally.done.load(Ordering::Relaxed);
                let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
                let eta = eta(orders.saturating_sub(done), rate);
                tracing::info!(
                    event = "progress",
                    file = name,
                    done,
                    total = orders,
                    rate = rate.round(),
                    eta_s = eta.map(|e| e.as_secs()),
                    "{name}: {done}/{orders} done ({}), {rate:.0} orders/s, ETA {}",
                    tally_counts(&tally),
                    eta.map_or("unknown".into(), |e| humantime::format_duration(e)
                        .to_string())
                );
            }
        });
        Progress {
            task: Some(task),
            bar: None,
        }
    }

    pub fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// Prints what became of a batch's rows (and orders), and the engine's
/// notes, unless `-q`.
pub fn print_finished(name: &str, done: &Finished, console: Console) {
    if console.quiet {
        return;
    }
    for note in &done.notes {
        tracing::info!(event = "note", file = name, "{name}: {note}");
    }
    let f = &done.facts;
    let (c, s) = (f.counts, f.sent.unwrap_or_default());
    let not_sent = if s.not_sent > 0 {
        format!(", {} not sent", s.not_sent)
    } else {
        String::new()
    };
    let decided = if s.decided > 0 {
        format!(", {} accepted by a person's decision", s.decided)
    } else {
        String::new()
    };
    let mut line = format!(
        "{name}: {}: {} accepted{decided}, {} skipped (done before), {} rejected, {} failed{not_sent}, {} conflict, {} invalid",
        super::count(c.rows, "row"),
        s.accepted,
        s.skipped,
        s.rejected,
        s.failed - s.not_sent,
        s.conflict,
        c.invalid
    );
    if let (Some(ready), Some(o)) = (c.orders, s.orders) {
        line += &format!(
            ", {} held; orders: {} accepted, {} skipped, {} rejected, {} failed, {} conflict, {} held",
            c.held,
            o.orders_accepted,
            o.orders_skipped,
            o.orders_rejected,
            o.orders_failed,
            o.orders_conflict,
            ready.orders_held
        );
    }
    if let Some(api) = &f.api {
        line += &format!("; {}", super::count(api.requests, "request"));
    }
    if let Some(r) = &f.report {
        line += &format!("; report: {}", r.path);
    }
    tracing::info!(
        event = "finished",
        file = name,
        code = done.exit.code(),
        rows = c.rows,
        accepted = s.accepted,
        skipped = s.skipped,
        rejected = s.rejected,
        failed = s.failed - s.not_sent,
        not_sent = s.not_sent,
        conflict = s.conflict,
        invalid = c.invalid,
        held = c.held,
        requests = f.api.as_ref().map(|a| a.requests),
        report = f.report.as_ref().map(|r| r.path.as_str()),
        "{line}"
    );
    if !done.rejections.is_empty() {
        let top: Vec<String> = done
            .rejections
            .iter()
            .map(|(code, n)| format!("{code} ({n})"))
            .collect();
        tracing::info!(
            event = "rejections",
            file = name,
            top = %top.join(", "),
            "{name}: refused most often: {}; the report's errors column says why for each",
            top.join(", ")
        );
    }
}
