//! Telling people when a run ends: a notice (what was done, what needs a
//! person, where the reports are) sent to a webhook (a JSON POST, in a
//! shape chat tools' incoming webhooks take) and/or by e-mail (SMTP with
//! STARTTLS or TLS and a login, through `lettre`), at the end of each run,
//! of each file a watch files, and in a summary of the night at a time of
//! day. Deliveries run on a thread of their own, each tried a few times
//! with a timeout; one that cannot be made is told and never fails the
//! run.
//!
//! A consumer of what the service tells ([`FileOutcome`]s): it imports no
//! earlier stage but the outcomes it reads.

mod mail;
mod webhook;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::service::{FileOutcome, Filing};
use crate::stage::{self, Receiver, RecvTimeoutError, Sender};

pub use mail::{Mail, SmtpTls};
pub use webhook::{Webhook, WebhookFormat};

/// Where notices go, and when.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub webhook: Option<Webhook>,
    pub mail: Option<Mail>,
    /// Tries of each delivery, and the time each may take.
    pub tries: u32,
    pub timeout: Duration,
    /// A watch also sends a summary of what it did since the last one at
    /// this time of day (the machine's local time).
    pub summary_at: Option<chrono::NaiveTime>,
    /// A watch sends a notice for each file it files (else only the
    /// summaries and its end).
    pub each_file: bool,
}

impl Settings {
    /// Whether there is anywhere to send a notice.
    pub fn any(&self) -> bool {
        self.webhook.is_some() || self.mail.is_some()
    }
}

/// One notice: a subject line, the text a person reads, the same as data
/// for a program, and the reports to attach to an e-mail.
#[derive(Debug, Clone)]
pub struct Notice {
    pub subject: String,
    pub text: String,
    pub data: Value,
    pub attachments: Vec<PathBuf>,
}

/// What was done, from the files' outcomes: one line for each, the counts
/// of each outcome, what needs a person.
pub fn notice(what: &str, host: &str, files: &[&FileOutcome]) -> Notice {
    let n = |f: Filing| files.iter().filter(|o| o.outcome == f).count();
    let (done, attention, failed, left) = (
        n(Filing::Done),
        n(Filing::NeedsAttention),
        n(Filing::Failed),
        n(Filing::Left),
    );
    let gist = match (attention, failed) {
        (0, 0) if left == 0 => "all done".to_string(),
        _ => {
            let mut parts = Vec::new();
            if attention > 0 {
                parts.push(format!("{attention} need attention"));
            }
            if failed > 0 {
                parts.push(format!("{failed} failed"));
            }
            if left > 0 {
                parts.push(format!("{left} left for later"));
            }
            parts.join(", ")
        }
    };
    let subject = format!(
        "dcms-bulk on {host}: {what}: {}: {gist}",
        crate::quote::count(files.len() as u64, "file")
    );
    let mut text = format!(
        "{subject}\n\n{done} done, {attention} needing attention, {failed} failed, {left} left for later.\n"
    );
    let mut listed = Vec::new();
    let mut attachments = Vec::new();
    for o in files {
        text += &format!(
            "\n{}: {}: {}\n",
            crate::quote::escaped(&o.input),
            o.outcome.name(),
            crate::quote::escaped(&o.reason)
        );
        for (label, path) in [
            ("report", &o.report),
            ("rows to fix", &o.to_fix),
            ("run facts", &o.run_facts),
        ] {
            if let Some(p) = path {
                text += &format!("  {label}: {}\n", crate::quote::escaped(p));
            }
        }
        attachments.extend(o.report.iter().chain(&o.to_fix).map(PathBuf::from));
        listed.push(json!({
            "input": o.input,
            "outcome": o.outcome,
            "reason": o.reason,
            "exit_code": o.exit_code,
            "counts": o.counts,
            "report": o.report,
            "to_fix": o.to_fix,
            "run_facts": o.run_facts,
        }));
    }
    let data = json!({
        "tool": "dcms-bulk",
        "host": host,
        "what": what,
        "files": files.len(),
        "done": done,
        "needs_attention": attention,
        "failed": failed,
        "left": left,
        "outcomes": listed,
    });
    Notice {
        subject,
        text,
        data,
        attachments,
    }
}

/// What the notifier has to tell.
#[derive(Debug)]
pub enum Told<'a> {
    /// A notice was delivered there (after `tries` tries).
    Delivered { to: &'a str, tries: u32 },
    /// A notice could not be delivered there: why, after every try.
    NotDelivered { to: &'a str, why: String },
}

/// What the notifier's thread is handed.
enum Job {
    /// Send this notice now.
    Now(Box<Notice>),
    /// A file a watch is done with, for its summary (and, if each file is
    /// told, a notice of its own).
    File(Box<FileOutcome>),
    /// A notice of the files since the last summary (the watch ended).
    Summary(String),
}

/// Sends notices on a thread of its own; [`Notifier::finish`] waits for
/// the last to be delivered (or given up).
pub struct Notifier {
    tx: Option<Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Notifier {
    /// Starts the notifier; `told` hears of each delivery.
    pub fn start(
        settings: Settings,
        host: String,
        told: Box<dyn Fn(Told<'_>) + Send>,
    ) -> std::io::Result<Notifier> {
        let (tx, rx) = stage::unbounded();
        let thread = std::thread::Builder::new()
            .name("notifier".into())
            .spawn(move || deliver_all(&settings, &host, rx, &*told))?;
        Ok(Notifier {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Sends `notice` (in turn, on the notifier's thread).
    pub fn send(&self, notice: Notice) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job::Now(Box::new(notice)));
        }
    }

    /// A file a watch is done with: told on its own if each file is, and
    /// kept for the next summary.
    pub fn file(&self, outcome: FileOutcome) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job::File(Box::new(outcome)));
        }
    }

    /// A notice of the files a watch did since the last summary, now,
    /// headed `what` (`the watch stopped`).
    pub fn summary(&self, what: &str) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job::Summary(what.to_owned()));
        }
    }

    /// Waits until every notice handed on is delivered or given up.
    pub fn finish(mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The notifier's thread: each notice delivered in turn; a watch's files
/// kept for the summary at its time of day.
fn deliver_all(settings: &Settings, host: &str, rx: Receiver<Job>, told: &dyn Fn(Told<'_>)) {
    let mut night: Vec<FileOutcome> = Vec::new();
    let mut next_summary = settings.summary_at.map(|at| (at, until_next(at)));
    loop {
        let wait = next_summary.map_or(Duration::from_secs(3600), |(_, due)| {
            due.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(Job::Now(notice)) => deliver(settings, &notice, told),
            Ok(Job::File(outcome)) => {
                if settings.each_file && outcome.outcome != Filing::Left {
                    deliver(settings, &notice("file", host, &[&outcome]), told);
                }
                night.push(*outcome);
            }
            Ok(Job::Summary(what)) => {
                let files: Vec<&FileOutcome> = night.iter().collect();
                deliver(settings, &notice(&what, host, &files), told);
                night.clear();
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some((at, due)) = next_summary
                    && Instant::now() >= due
                {
                    if !night.is_empty() {
                        let files: Vec<&FileOutcome> = night.iter().collect();
                        deliver(settings, &notice("summary", host, &files), told);
                        night.clear();
                    }
                    next_summary = Some((at, until_next(at)));
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// When `at` (the machine's local time of day) next comes, on this clock.
fn until_next(at: chrono::NaiveTime) -> Instant {
    let now = chrono::Local::now().naive_local();
    Instant::now() + wait_until(now, at)
}

/// How long from `now` until the time of day `at` next comes (tomorrow's
/// if today's has passed).
pub fn wait_until(now: chrono::NaiveDateTime, at: chrono::NaiveTime) -> Duration {
    let today = now.date().and_time(at);
    let next = if today > now {
        today
    } else {
        today + chrono::Duration::days(1)
    };
    (next - now).to_std().unwrap_or(Duration::from_secs(60))
}

/// Delivers a notice everywhere it goes.
fn deliver(settings: &Settings, notice: &Notice, told: &dyn Fn(Told<'_>)) {
    if let Some(hook) = &settings.webhook {
        let to = hook.shown();
        match retried(settings, |timeout| hook.post(notice, timeout)) {
            Ok(tries) => told(Told::Delivered { to: &to, tries }),
            Err(why) => told(Told::NotDelivered { to: &to, why }),
        }
    }
    if let Some(mail) = &settings.mail {
        let to = mail.shown();
        match retried(settings, |timeout| mail.send(notice, timeout)) {
            Ok(tries) => told(Told::Delivered { to: &to, tries }),
            Err(why) => told(Told::NotDelivered { to: &to, why }),
        }
    }
}

/// Tries `send` up to the settings' tries, waiting 1 s, 2 s, 4 s...
/// between; how many tries it took, or the last try's error.
fn retried(
    settings: &Settings,
    mut send: impl FnMut(Duration) -> Result<(), String>,
) -> Result<u32, String> {
    let tries = settings.tries.max(1);
    let mut last = String::new();
    for n in 1..=tries {
        match send(settings.timeout) {
            Ok(()) => return Ok(n),
            Err(e) => last = format!("{e} (try {n} of {tries})"),
        }
        if n < tries {
            std::thread::sleep(Duration::from_secs(1 << (n - 1).min(4)));
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    fn outcome(input: &str, exit: Exit, reason: &str) -> FileOutcome {
        let mut o = FileOutcome::failed(input.into(), exit, reason.into());
        o.error = None;
        o.report = Some(format!("{input}.report.csv"));
        o
    }

    #[test]
    fn a_notice_says_what_needs_a_person_and_where_the_reports_are() {
        let done = outcome(
            "a.csv",
            Exit::Ok,
            "3 rows: every row accepted or done before",
        );
        let mut fix = outcome(
            "b.csv",
            Exit::RowsNotDone,
            "1 of 3 rows need a person: 1 invalid",
        );
        fix.to_fix = Some("b.to-fix.csv".into());
        let n = notice("submit", "host1", &[&done, &fix]);
        assert_eq!(
            n.subject,
            "dcms-bulk on host1: submit: 2 files: 1 need attention"
        );
        assert!(
            n.text
                .contains("b.csv: needs attention: 1 of 3 rows need a person"),
            "{}",
            n.text
        );
        assert!(n.text.contains("  rows to fix: b.to-fix.csv"), "{}", n.text);
        assert_eq!(n.data["needs_attention"], 1);
        assert_eq!(n.data["outcomes"][1]["outcome"], "needs-attention");
        assert_eq!(n.attachments.len(), 3);
        let all = notice("submit", "h", &[&done]);
        assert!(all.subject.ends_with("1 file: all done"), "{}", all.subject);
    }

    #[test]
    fn the_summary_comes_at_its_time_of_day() {
        let t = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
        let at = chrono::NaiveTime::from_hms_opt(7, 0, 0).unwrap();
        assert_eq!(
            wait_until(t("2026-12-05 06:30"), at),
            Duration::from_secs(1800)
        );
        assert_eq!(
            wait_until(t("2026-12-05 07:00"), at),
            Duration::from_secs(24 * 3600)
        );
        assert_eq!(
            wait_until(t("2026-12-05 23:00"), at),
            Duration::from_secs(8 * 3600)
        );
    }
}
