//! Progress on the console while a batch is sent (a bar on a terminal, a
//! log line every few seconds otherwise), from the service's events, and
//! what became of the batch.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Console;
use crate::batch::Finished;
use crate::service::Progress;

/// `accepted 3 · rejected 0 · failed 1 · skipped 0`.
fn tally_counts(p: &Progress) -> String {
    format!(
        "accepted {} · rejected {} · failed {} · skipped {}",
        p.accepted, p.rejected, p.failed, p.skipped
    )
}

/// How long `left` orders take at `rate` a second, to the second; none
/// before the first is done.
fn eta(left: u64, rate: f64) -> Option<Duration> {
    (rate > 0.0).then(|| Duration::from_secs((left as f64 / rate).ceil() as u64))
}

/// How often a progress line is logged where there is no terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The progress of the batch being sent, as the service tells it: a bar
/// on a terminal, a log line every few seconds otherwise.
#[derive(Default)]
pub struct Bar {
    now: Mutex<Option<Showing>>,
}

/// A batch's progress on show.
struct Showing {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    logged: Instant,
}

impl Bar {
    fn now(&self) -> std::sync::MutexGuard<'_, Option<Showing>> {
        self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A batch of `orders` begins to be sent.
    pub fn sending(&self, name: &str, orders: u64, console: Console) {
        if console.quiet {
            return;
        }
        let bar = std::io::stderr()
            .is_terminal()
            .then(|| terminal_bar(name, orders));
        *self.now() = Some(Showing {
            bar,
            started: Instant::now(),
            logged: Instant::now(),
        });
    }

    /// How far it is.
    pub fn progress(&self, name: &str, total: u64, sent: &Progress) {
        let mut now = self.now();
        let Some(showing) = now.as_mut() else { return };
        if let Some(bar) = &showing.bar {
            bar.set_position(sent.done);
            bar.set_message(tally_counts(sent));
            return;
        }
        if showing.logged.elapsed() < LOG_EVERY {
            return;
        }
        showing.logged = Instant::now();
        let done = sent.done;
        let rate = done as f64 / showing.started.elapsed().as_secs_f64().max(0.001);
        let eta = eta(total.saturating_sub(done), rate);
        tracing::info!(
            event = "progress",
            file = name,
            done,
            total,
            rate = rate.round(),
            eta_s = eta.map(|e| e.as_secs()),
            "{name}: {done}/{total} done ({}), {rate:.0} orders/s, ETA {}",
            tally_counts(sent),
            eta.map_or("unknown".into(), |e| humantime::format_duration(e)
                .to_string())
        );
    }

    /// The batch is done: the bar goes.
    pub fn finish(&self) {
        if let Some(Showing { bar: Some(bar), .. }) = self.now().take() {
            bar.finish_and_clear();
        }
    }
}

/// A progress bar of `orders` on the terminal.
fn terminal_bar(name: &str, orders: u64) -> indicatif::ProgressBar {
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
    bar
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
    super::log::at_level!(
        super::log::level_of(done.exit),
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
