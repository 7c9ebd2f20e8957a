//! The service's events on the console: log lines (text or JSON, see
//! `log`), a progress bar on a terminal, and with `--json` each file's
//! outcome on stdout as the watch is done with it. `-q` keeps to what
//! must be said (errors, the watch's start and end); `-v` adds details.

use super::log::at_level;
use super::progress::{Bar, print_finished};
use super::{Console, count, error_message, print_problems, print_stdout, say_passed};
use crate::exit::Exit;
use crate::service::{Event, Filing};

/// Tells the service's events on the console.
pub struct News {
    console: Console,
    /// Print each file's outcome on stdout as a JSON line.
    json_lines: bool,
    bar: Bar,
    /// A watch's notices: each file it is done with, and its end.
    notices: Option<crate::notify::Notifier>,
}

impl News {
    pub fn new(console: Console, json_lines: bool) -> News {
        News {
            console,
            json_lines,
            bar: Bar::default(),
            notices: None,
        }
    }

    /// A watch's news, which also notifies of each file it is done with
    /// and of its end (its notices are delivered before it is dropped).
    pub fn notifying(mut self, notices: Option<crate::notify::Notifier>) -> News {
        self.notices = notices;
        self
    }

    /// Tells one event.
    pub fn tell(&self, event: Event<'_>) {
        if let Some(n) = &self.notices {
            match &event {
                // Its end: not to be tried again, not left waiting.
                Event::FileDone(o) if o.tried_again_in.is_none() && !o.awaiting_approval => {
                    n.file((*o).clone())
                }
                Event::WatchStopped { why, end } => n.summary(&match why {
                    Some(why) => format!("the watch stopped ({why}, exit {})", end.exit.code()),
                    None => format!("the watch stopped (exit {})", end.exit.code()),
                }),
                _ => {}
            }
        }
        match event {
            Event::Engine(e) => super::api::show(self.console)(e),
            Event::Watching { .. }
            | Event::NoEvents { .. }
            | Event::FolderUnreadable { .. }
            | Event::Heartbeat { .. }
            | Event::WatchStopped { .. }
            | Event::Retry { .. }
            | Event::Filed { .. }
            | Event::FileDone(_) => self.watch(event),
            _ => self.file(event),
        }
    }

    /// What happens to a file: waited for, checked, sent, failed.
    fn file(&self, event: Event<'_>) {
        let quiet = self.console.quiet;
        match event {
            Event::Passed(p) if !quiet => say_passed(p),
            Event::Waiting {
                file,
                unchanged,
                settle,
            } if !quiet => tracing::info!(
                event = "waiting",
                file = %file.display(),
                "dcms-bulk: waiting for {} to settle (unchanged for {:.0} s of {})",
                file.display(),
                unchanged.as_secs_f64(),
                humantime::format_duration(settle)
            ),
            Event::NothingReady if !quiet => tracing::info!(
                event = "nothing_ready",
                "dcms-bulk: no sheet in the folder(s) is ready; nothing sent"
            ),
            Event::Checked { file, checked } => print_problems(checked, file, self.console),
            Event::Held { file, why } => tracing::warn!(
                event = "awaiting_approval",
                file,
                code = Exit::RowsNotDone.code(),
                "{file}: not sent: {why}"
            ),
            Event::Elsewhere {
                file,
                host,
                taken_over,
            } if taken_over || !quiet => say_elsewhere(file, host, taken_over),
            Event::Resuming { file, cut_off } if !quiet => tracing::info!(
                event = "resuming",
                file,
                run = cut_off.run,
                done = cut_off.done,
                in_doubt = cut_off.in_doubt,
                "{file}: resuming run {} (cut off at {}): {} already done{}; nothing is sent twice",
                cut_off.run,
                crate::clock::shown(&cut_off.at),
                count(cut_off.done, "order"),
                match cut_off.in_doubt {
                    0 => String::new(),
                    n => format!(", {n} sent without an answer (looked up first)"),
                }
            ),
            Event::Sending { file, orders } => self.bar.sending(file, orders, self.console),
            Event::Progress { file, total, sent } => self.bar.progress(file, total, &sent),
            Event::Sent { .. } => self.bar.finish(),
            Event::Finished { file, done } => print_finished(file, done, self.console),
            Event::Failed { file, error } => tracing::error!(
                event = "error",
                file = %file.display(),
                code = error.exit().code(),
                "{}",
                error_message(error)
            ),
            Event::Trouble { file, message } => tracing::error!(
                event = "error",
                file = file.map(|f| f.display().to_string()),
                code = Exit::LocalFailure.code(),
                "dcms-bulk: error: {message}"
            ),
            _ => {}
        }
    }

    /// What the watch does: its start and end, its heartbeat.
    fn watch(&self, event: Event<'_>) {
        let quiet = self.console.quiet;
        match event {
            Event::Heartbeat {
                dirs,
                done,
                attention,
                failed,
                in_hand,
                settling,
                retrying,
            } if !quiet => tracing::info!(
                event = "heartbeat",
                files_done = done,
                files_attention = attention,
                files_failed = failed,
                in_hand,
                settling,
                retrying,
                "dcms-bulk: watching {}: {} done, {attention} needing attention, {failed} failed; {in_hand} in hand, {settling} settling, {retrying} to try again",
                shown(dirs),
                count(done, "file"),
            ),
            Event::Watching {
                dirs,
                events,
                poll_only,
                poll,
                settle,
            } => tracing::info!(
                event = "watching",
                dirs = %shown(dirs),
                events,
                "dcms-bulk: watching {} for order sheets ({}, settling {}); Ctrl-C or SIGTERM stops",
                shown(dirs),
                match (events, poll_only) {
                    (true, _) => format!(
                        "file-system events, and a look every {}",
                        humantime::format_duration(poll)
                    ),
                    (false, true) => format!(
                        "a look every {} (--poll-only)",
                        humantime::format_duration(poll)
                    ),
                    (false, false) => format!(
                        "no file-system events here: a look every {}",
                        humantime::format_duration(poll)
                    ),
                },
                humantime::format_duration(settle)
            ),
            Event::NoEvents { dir, error } => tracing::warn!(
                event = "no_events",
                "dcms-bulk: warning: no file-system events for {} ({error}); looking every --poll instead",
                dir.display()
            ),
            Event::FolderUnreadable { dir, error } => tracing::error!(
                event = "error",
                code = Exit::LocalFailure.code(),
                "dcms-bulk: error: cannot read the folder {}: {error}",
                dir.display()
            ),
            Event::WatchStopped { why, end } => at_level!(
                super::log::level_of(end.exit),
                event = "stopped",
                code = end.exit.code(),
                files_done = end.done,
                files_attention = end.attention,
                files_failed = end.failed,
                "dcms-bulk: watch stopped{}: {} done, {} needing attention, {} failed",
                why.map_or(String::new(), |why| format!(" ({why})")),
                count(end.done, "file"),
                end.attention,
                end.failed,
            ),
            _ => self.filed(event),
        }
    }

    /// Where the watch put a file, or when it tries it again.
    fn filed(&self, event: Event<'_>) {
        let quiet = self.console.quiet;
        match event {
            Event::Filed { file, dir, outcome } if !quiet => {
                let line = format!(
                    "dcms-bulk: {}: {}: {}; moved to {} with its report",
                    file.display(),
                    outcome.outcome.name(),
                    outcome.reason,
                    dir.display()
                );
                let (file, folder, code) = (
                    file.display().to_string(),
                    dir.display().to_string(),
                    outcome.exit_code.code(),
                );
                let what = outcome.outcome.key();
                let level = match outcome.outcome {
                    Filing::Done => tracing::Level::INFO,
                    Filing::NeedsAttention => tracing::Level::WARN,
                    Filing::Failed | Filing::Left => tracing::Level::ERROR,
                };
                at_level!(
                    level,
                    event = "filed",
                    file,
                    outcome = what,
                    code,
                    folder,
                    "{line}"
                );
            }
            Event::Retry {
                file,
                exit,
                why,
                after,
            } if !quiet => tracing::warn!(
                event = "retry",
                file = %file.display(),
                code = exit.code(),
                "dcms-bulk: {}: not done ({why}); trying it again in {}",
                file.display(),
                humantime::format_duration(after)
            ),
            Event::FileDone(outcome) if self.json_lines => {
                if let Ok(line) = serde_json::to_string(outcome) {
                    let _ = print_stdout(&(line + "\n"));
                }
            }
            _ => {}
        }
    }
}

/// `a, b`: folders as a line says them.
fn shown(dirs: &[std::path::PathBuf]) -> String {
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    dirs.join(", ")
}

/// A file of a shared drop folder another host's watch holds, or that
/// this watch takes over.
fn say_elsewhere(file: &std::path::Path, host: &str, taken_over: bool) {
    if taken_over {
        tracing::warn!(
            event = "taken_over",
            file = %file.display(),
            host,
            "{}: taking it over from {}, whose lease ran out (its run is resumed, nothing sent twice)",
            file.display(),
            crate::quote::escaped(host)
        );
    } else {
        tracing::info!(
            event = "elsewhere",
            file = %file.display(),
            host,
            "{}: {} is sending it (this watch takes it over if that host's lease runs out)",
            file.display(),
            crate::quote::escaped(host)
        );
    }
}
