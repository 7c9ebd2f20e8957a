//! Order sheets as files, through the engine: the service `submit` and
//! `watch` (and, next, the desk) share. Each file is opened as a [`Job`],
//! its ready orders sent, its report and run facts written beside it (or
//! where [`Output`] says), and the file with them filed in the done or
//! failed folder. A file that cannot be read leaves a record of why where
//! its run facts would go. What happens is told as [`Event`]s, for a face
//! to show as it shows things; what came of each file is a
//! [`FileOutcome`].
//!
//! The watch service, which finds settled sheets in drop folders and
//! sends them until it is stopped, is in [`watch`].

pub mod approval;
pub mod filing;
mod records;
mod shared;
pub mod verify;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::batch::{Batch, Engine, Finished};
use crate::drop::{self, Passed};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::job::Job;
use crate::pipeline::Checked;
use crate::report;
use crate::stage;
use crate::submit::{Stop, Tally};
pub use filing::Filing;

/// Where each file's report goes, and where the file goes after its run.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// The report's path (one input file only).
    pub report: Option<PathBuf>,
    /// The folder for the reports; else beside each input.
    pub report_dir: Option<PathBuf>,
    /// The reports' format when no `report` path gives it; else as the
    /// input (XLSX for a workbook, CSV for text).
    pub report_format: Option<report::Format>,
    /// A CSV report begins with a UTF-8 byte-order mark.
    pub csv_bom: bool,
    /// Where a file whose rows were all done goes, with its report and
    /// run facts.
    pub done_dir: Option<PathBuf>,
    /// Where a file whose orders were all handled, with rows that need a
    /// person (invalid, held, rejected, conflict), goes, with its report,
    /// run facts and rows to fix.
    pub attention_dir: Option<PathBuf>,
    /// Where a file that could not be processed (or not all the way)
    /// goes.
    pub failed_dir: Option<PathBuf>,
    /// How long a folder's sheet must stay unchanged before it is taken.
    pub settle: Duration,
}

impl Output {
    /// Checks the report options and makes the report folder.
    pub fn prepare(&self) -> Result<()> {
        if let Some(r) = &self.report {
            report::Target::at(r)?;
        }
        if let Some(dir) = &self.report_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::report(dir, e))?;
        }
        Ok(())
    }

    /// The folder a file that ended so goes to, if one is given.
    pub fn folder(&self, filing: Filing) -> Option<&Path> {
        match filing {
            Filing::Done => self.done_dir.as_deref(),
            Filing::NeedsAttention => self.attention_dir.as_deref(),
            Filing::Failed => self.failed_dir.as_deref(),
            Filing::Left => None,
        }
    }

    /// Where `input`'s report goes (see [`report::Target::for_input`]).
    pub fn target(&self, input: &Path) -> Result<report::Target> {
        report::Target::for_input(
            self.report.as_deref(),
            self.report_format,
            input,
            self.report_dir.as_deref(),
            "orders",
        )
    }
}

/// What the service has to tell while it works.
pub enum Event<'a> {
    /// Opening the engine.
    Engine(crate::engine::Event<'a>),
    /// A folder's file not taken, and why.
    Passed(&'a Passed),
    /// A folder's sheet is still changing: waiting for it.
    Waiting {
        file: &'a Path,
        unchanged: Duration,
        settle: Duration,
    },
    /// A folder's sheet has settled: it is taken, to be checked and sent.
    Taken { file: &'a Path },
    /// No sheet of the folders named is ready: nothing is sent.
    NothingReady,
    /// A file read and checked: its problems are in `checked`.
    Checked { file: &'a str, checked: &'a Checked },
    /// Not sent: it waits for (or was refused) a second person's approval.
    Held { file: &'a str, why: &'a str },
    /// A run of the same sheet was cut off (a crash, a kill): this run
    /// takes it up, sending nothing twice.
    Resuming {
        file: &'a str,
        cut_off: &'a crate::submit::ledger::CutOff,
    },
    /// Its ready orders are about to be sent.
    Sending { file: &'a str, orders: u64 },
    /// How far the sending is (told a few times a second).
    Progress {
        file: &'a str,
        total: u64,
        sent: Progress,
    },
    /// Orders answered since the last time: (the order's group in the
    /// sheet, its outcome).
    Answered {
        file: &'a str,
        orders: Vec<(usize, crate::submit::SendStatus)>,
    },
    /// The sending is over (done, or stopped).
    Sent { file: &'a str },
    /// A file's batch is done: its report and run facts are written.
    Finished { file: &'a str, done: &'a Finished },
    /// A file could not be submitted (read, its report written...).
    Failed { file: &'a Path, error: &'a Error },
    /// This machine failed at something that does not end the run (a
    /// file could not be moved, a record not written).
    Trouble {
        file: Option<&'a Path>,
        message: String,
    },
    /// A file was moved to the done, needs-attention or failed folder,
    /// with its report and run facts.
    Filed {
        file: &'a Path,
        dir: &'a Path,
        outcome: &'a FileOutcome,
    },
    /// The watch began.
    Watching {
        dirs: &'a [PathBuf],
        /// File-system events wake it (else it only looks every `poll`).
        events: bool,
        poll_only: bool,
        poll: Duration,
        settle: Duration,
    },
    /// No file-system events for a folder: the watch looks every `poll`.
    NoEvents { dir: &'a Path, error: String },
    /// A folder could not be read.
    FolderUnreadable { dir: &'a Path, error: String },
    /// A file not done is tried again after a while.
    Retry {
        file: &'a Path,
        exit: Exit,
        why: String,
        after: Duration,
    },
    /// A file of a shared drop folder is another host's watch's: its
    /// lease is alive (`taken_over`: it ran out, and this watch takes the
    /// file over).
    Elsewhere {
        file: &'a Path,
        host: &'a str,
        taken_over: bool,
    },
    /// The watch is done with a file (filed, left, or to be tried again).
    FileDone(&'a FileOutcome),
    /// The watch is alive: what it did so far.
    Heartbeat {
        dirs: &'a [PathBuf],
        done: u64,
        attention: u64,
        failed: u64,
        in_hand: usize,
        settling: usize,
        retrying: usize,
    },
    /// The watch stopped.
    WatchStopped {
        why: Option<&'a Stop>,
        end: watch::WatchEnd,
    },
}

/// The outcomes of a batch's orders so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub done: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub failed: u64,
    pub skipped: u64,
}

impl Progress {
    fn of(t: &Tally) -> Progress {
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Progress {
            done: n(&t.done),
            accepted: n(&t.accepted),
            rejected: n(&t.rejected),
            failed: n(&t.failed),
            skipped: n(&t.skipped),
        }
    }
}

/// How often a batch's progress is told.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// Runs `send`, telling its progress a few times a second from `tally`
/// while it runs (a batch of `total` orders or rows).
pub fn with_progress<T>(
    on: &(dyn Fn(Event<'_>) + Sync),
    file: &str,
    total: u64,
    tally: &Tally,
    send: impl FnOnce() -> T,
) -> T {
    if total == 0 {
        return send();
    }
    on(Event::Sending {
        file,
        orders: total,
    });
    let over = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        let ticker = stage::beside(scope, "progress", || {
            loop {
                std::thread::park_timeout(PROGRESS_EVERY);
                if over.load(Ordering::Relaxed) {
                    break;
                }
                let sent = Progress::of(tally);
                on(Event::Progress { file, total, sent });
                let orders = tally.take_answers();
                if !orders.is_empty() {
                    on(Event::Answered { file, orders });
                }
            }
        });
        let result = send();
        over.store(true, Ordering::Relaxed);
        if let Ok(ticker) = ticker {
            ticker.thread().unpark();
        }
        result
    });
    let orders = tally.take_answers();
    if !orders.is_empty() {
        on(Event::Answered { file, orders });
    }
    on(Event::Sent { file });
    result
}

/// What came of one file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileOutcome {
    pub input: String,
    pub exit_code: Exit,
    /// Done, needs attention, failed, or left where it is.
    pub outcome: Filing,
    /// Why, in one line.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// The run facts, or for a file that could not be read the record of
    /// why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_facts: Option<String>,
    /// The rows the branch must fix, in its own layout, with what to fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_fix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<Value>,
    /// The done or failed folder the file went to, with its report and
    /// run facts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filed_in: Option<String>,
    /// A watch tries the file again after this long (the API was away, a
    /// read failed, it waits for approval): not its end yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tried_again_in: Option<String>,
    /// What tells this run's files from another's of the same name.
    #[serde(skip)]
    pub tag: String,
    /// Rows FAILED: sent, with no answer that settles them (a watch tries
    /// the file again).
    #[serde(skip)]
    pub failed_rows: u64,
    /// The ledger's id of the run.
    #[serde(skip)]
    pub run: Option<i64>,
    /// Not sent: it waits for a second person's approval.
    #[serde(skip)]
    pub awaiting_approval: bool,
}

impl FileOutcome {
    /// A file with no report: it could not be read, or was not reached.
    pub fn failed(input: String, exit: Exit, error: String) -> Self {
        FileOutcome {
            input,
            exit_code: exit,
            outcome: Filing::of(exit, 0, false),
            reason: one_line(&error),
            error: Some(error),
            report: None,
            to_fix: None,
            run_facts: None,
            batch_id: None,
            counts: None,
            filed_in: None,
            tried_again_in: None,
            tag: format!("at-{}", crate::clock::in_name(&report::now())),
            failed_rows: 0,
            run: None,
            awaiting_approval: false,
        }
    }

    /// A file the run stopped before: left where it is.
    pub fn not_processed(input: String, why: &Stop) -> Self {
        FileOutcome::failed(input, why.exit(), format!("not processed: {why}"))
    }
}

/// The order sheets named: files as given, and of a folder its sheets
/// (sorted by name) with the files passed over and why (see
/// [`drop::scan`]).
pub fn inputs(named: &[PathBuf]) -> Result<Inputs> {
    let mut inputs = Inputs::default();
    for path in named {
        if !path.is_dir() {
            inputs.files.push(path.clone());
            continue;
        }
        let found = drop::scan(path).map_err(|e| Error::io(path, e))?;
        inputs.in_folders.extend(found.sheets);
        inputs.passed.extend(found.passed);
    }
    // An empty drop folder is a quiet night, not a mistake: nothing to
    // send.
    Ok(inputs)
}

/// The inputs of a run: the files named, the sheets found in the folders
/// named, and the folders' files passed over.
#[derive(Debug, Default)]
pub struct Inputs {
    pub files: Vec<PathBuf>,
    pub in_folders: Vec<PathBuf>,
    pub passed: Vec<Passed>,
}

impl Inputs {
    /// How many sheets.
    pub fn len(&self) -> usize {
        self.files.len() + self.in_folders.len()
    }

    /// No sheet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One command's files through one engine.
pub struct Service<'a> {
    pub engine: &'a Engine,
    pub out: &'a Output,
    /// The command, and its options, for the run facts.
    pub command: &'static str,
    pub options: Value,
    pub on: &'a (dyn Fn(Event<'_>) + Sync),
    /// Four eyes: no sheet is sent without an approval of that version.
    pub gate: Option<&'a approval::Gate>,
}

impl Service<'_> {
    /// The folders' sheets that have settled (see [`drop::settled`]),
    /// after the files named; tells which were waited for and which were
    /// passed over.
    pub fn settled(&self, inputs: Inputs) -> (Vec<PathBuf>, Vec<Passed>) {
        let Inputs {
            mut files,
            in_folders,
            mut passed,
        } = inputs;
        let settle = self.out.settle;
        let mut waiting = |file: &Path, unchanged: Duration| {
            (self.on)(Event::Waiting {
                file,
                unchanged,
                settle,
            });
        };
        let stopper = &self.engine.stopper;
        let (taken, not_settled) =
            drop::settled(in_folders, settle, &mut waiting, &|| stopper.is_stopped());
        files.extend(taken);
        passed.extend(not_settled);
        for p in &passed {
            (self.on)(Event::Passed(p));
        }
        if files.is_empty() {
            (self.on)(Event::NothingReady);
        }
        (files, passed)
    }

    /// Each file in turn, opened, sent and filed away; the files after a
    /// stop are not processed.
    pub fn run(&self, files: &[PathBuf], opts: &crate::pipeline::CheckOpts) -> Vec<FileOutcome> {
        let mut outcomes = Vec::new();
        for file in files {
            let outcome = match self.engine.stopper.reason() {
                Some(why) => FileOutcome::not_processed(file.display().to_string(), &why),
                None => {
                    let started = report::now();
                    let job = Job::open(file, opts.clone());
                    self.file(file, started, job)
                }
            };
            outcomes.push(self.file_away(file, outcome));
        }
        outcomes
    }

    /// One file, opened (or not: `job` is why): its ready orders sent and
    /// its report written; a file that could not be read leaves a record
    /// of why where its run facts would go.
    pub fn file(&self, file: &Path, started: String, job: Result<Job>) -> FileOutcome {
        job.and_then(|job| self.send(&job, &started))
            .unwrap_or_else(|e| self.unreadable(file, started, &e))
    }

    /// A file that could not be submitted: told, and, when it could not be
    /// read as a sheet, recorded where its run facts would go.
    fn unreadable(&self, file: &Path, started: String, e: &Error) -> FileOutcome {
        (self.on)(Event::Failed { file, error: e });
        let mut outcome = FileOutcome::failed(file.display().to_string(), e.exit(), e.to_string());
        if e.exit() == Exit::InputUnreadable {
            let mut facts =
                report::UnreadableFacts::new(self.command, file, self.options.clone(), started, e);
            // A run of its own in the ledger: `runs` lists it.
            let input = file.display().to_string();
            let start = crate::submit::ledger::RunStart {
                command: self.command,
                input: &input,
                input_sha256: facts.input.sha256.as_deref().unwrap_or(""),
                batch_id: "",
                options: &self.options,
                started_at: &facts.started_at,
            };
            facts.ledger_run = match self.engine.ledger.begin_run(&start) {
                Ok(run) => Some(run),
                Err(l) => {
                    self.trouble(Some(file), format!("the ledger cannot record the run: {l}"));
                    None
                }
            };
            // As a report: an earlier run's there is kept, the plain name
            // holds this one.
            match self.out.target(file).and_then(|t| {
                report::keep_earlier(&t.path)?;
                report::write_unreadable(&t.path, &facts)
            }) {
                Ok(path) => {
                    if let Some(run) = facts.ledger_run {
                        self.end_unreadable(run, &path, &outcome.reason);
                    }
                    outcome.run = facts.ledger_run;
                    if let Some(run) = facts.ledger_run {
                        outcome.tag = format!("run-{run}");
                    }
                    outcome.run_facts = Some(path.display().to_string());
                }
                Err(w) => (self.on)(Event::Failed { file, error: &w }),
            }
        }
        outcome
    }

    /// Ends the ledger's run of a file that could not be read: its record
    /// of why stands for its report.
    fn end_unreadable(&self, run: i64, record: &Path, why: &str) {
        let sha = crate::files::sha256_file(record)
            .map(|(sha, _)| sha)
            .unwrap_or_default();
        let end = crate::submit::ledger::RunEnd {
            report_sha256: sha,
            line_columns: Vec::new(),
            rows: Box::new(std::iter::empty()),
        };
        let counts = serde_json::json!({ "unreadable": why });
        let stopped = Some(format!("could not be read: {why}"));
        if let Err(l) = self
            .engine
            .ledger
            .end_run(run, &counts, record, stopped, end)
        {
            self.trouble(
                Some(record),
                format!("the ledger cannot record the run: {l}"),
            );
        }
    }

    /// One opened sheet: its ready orders sent, its report written.
    pub fn send(&self, job: &Job, started: &str) -> Result<FileOutcome> {
        let checked = job.checked();
        let file = &checked.path;
        let mut options = self.options.clone();
        if let Some(gate) = self.gate {
            match gate.check(job, file)? {
                approval::Gated::Send(record) => options["approval"] = record,
                approval::Gated::Held(why) => return Ok(self.held(file, why)),
            }
        }
        let target = self.out.target(file)?;
        report::not_the_input(&target.path, file)?;
        // Before any order leaves: an earlier run's report there is kept,
        // and this run's can be written.
        report::keep_earlier(&target.path)?;
        report::prepare(&target.path)?;
        let name = file.display().to_string();
        (self.on)(Event::Checked {
            file: &name,
            checked,
        });
        self.tell_resuming(checked, &name);
        let tally = Arc::new(Tally::with_answers());
        let batch = Batch {
            command: self.command,
            options,
            started: started.to_owned(),
            report: &target,
            tally: tally.clone(),
            csv_bom: self.out.csv_bom,
        };
        let total = checked.grouping.counts.orders_ready;
        let done = with_progress(self.on, &name, total, &tally, || {
            job.send(self.engine, batch)
        })?;
        (self.on)(Event::Finished {
            file: &name,
            done: &done,
        });
        let unsettled = done.facts.sent.map_or(0, |s| s.failed);
        let mut exit = done.exit;
        let to_fix = match done.facts.counts.invalid {
            0 => None,
            _ => self.rows_to_fix(job, &target.path).or_else(|| {
                exit = exit.and(Exit::LocalFailure);
                None
            }),
        };
        let filing = Filing::of(exit, unsettled, false);
        Ok(FileOutcome {
            input: name,
            exit_code: exit,
            outcome: filing,
            reason: filing::reason(filing, &done.facts, to_fix.as_deref()),
            error: None,
            report: Some(target.path.display().to_string()),
            to_fix: to_fix.map(|p| p.display().to_string()),
            run_facts: Some(done.facts_path.display().to_string()),
            batch_id: Some(checked.batch_id.clone()),
            counts: Some(done.counts_json()),
            filed_in: None,
            tried_again_in: None,
            tag: match &done.facts.api {
                Some(api) => format!("run-{}", api.ledger_run),
                None => String::new(),
            },
            failed_rows: unsettled,
            run: done.facts.api.as_ref().map(|api| api.ledger_run),
            awaiting_approval: false,
        })
    }

    /// A sheet not sent: it waits for (or was refused) a second person's
    /// approval.
    fn held(&self, file: &Path, why: String) -> FileOutcome {
        let name = file.display().to_string();
        (self.on)(Event::Held {
            file: &name,
            why: &why,
        });
        let mut outcome = FileOutcome::failed(name, Exit::RowsNotDone, why);
        outcome.awaiting_approval = true;
        outcome.outcome = Filing::Left;
        outcome
    }

    /// Tells that this run takes up a cut-off run of the same sheet, if
    /// one was.
    fn tell_resuming(&self, checked: &Checked, name: &str) {
        if let Ok(Some(cut_off)) =
            self.engine
                .ledger
                .cut_off(self.command, checked.sheet.sha256(), &checked.batch_id)
        {
            (self.on)(Event::Resuming {
                file: name,
                cut_off: &cut_off,
            });
        }
    }

    /// Writes the rows the branch must fix beside the report at `report`;
    /// where it went, or `None` (told) when it could not be written.
    fn rows_to_fix(&self, job: &Job, report: &Path) -> Option<PathBuf> {
        let path = report::to_fix_path(report);
        match job.export(crate::job::Rows::ToFix, &path) {
            Ok(()) => Some(path),
            Err(e) => {
                self.trouble(Some(job.path()), format!("{e}"));
                None
            }
        }
    }

    /// Moves a processed file with its report, run facts and rows to fix
    /// to the folder of its outcome (done, needs attention, failed), if
    /// one is given; a file left (the run stopped before or while it, it
    /// waits for approval) stays. A move that fails is told, and counts as
    /// this machine's failure.
    pub fn file_away(&self, file: &Path, mut outcome: FileOutcome) -> FileOutcome {
        let Some(facts) = outcome.run_facts.clone() else {
            return outcome;
        };
        let Some(dir) = self.out.folder(outcome.outcome) else {
            return outcome;
        };
        let report = outcome.report.clone().map(PathBuf::from);
        let to_fix = outcome.to_fix.clone().map(PathBuf::from);
        let facts = PathBuf::from(facts);
        let mut paths: Vec<&Path> = vec![file, &facts];
        paths.extend(report.as_deref());
        paths.extend(to_fix.as_deref());
        let moved = match drop::file_away(dir, &paths, &outcome.tag) {
            Ok(moved) => moved,
            Err(e) => {
                self.trouble(
                    Some(file),
                    format!(
                        "{}: could not move it to {}: {e}",
                        file.display(),
                        dir.display()
                    ),
                );
                outcome.exit_code = outcome.exit_code.and(Exit::LocalFailure);
                return outcome;
            }
        };
        let at = |i: usize| {
            moved
                .get(i)
                .cloned()
                .flatten()
                .map(|p| p.display().to_string())
        };
        outcome.run_facts = at(1);
        if report.is_some() {
            outcome.report = at(2);
        }
        if to_fix.is_some() {
            outcome.to_fix = at(paths.len() - 1);
        }
        // The ledger's list of runs says where the report (or the record
        // of why the file could not be read) is now.
        if let (Some(run), Some(now)) = (
            outcome.run,
            outcome.report.as_ref().or(outcome.run_facts.as_ref()),
        ) && let Err(e) = self.engine.ledger.report_moved(run, Path::new(now))
        {
            self.trouble(
                Some(file),
                format!("the ledger cannot record where the report went: {e}"),
            );
            outcome.exit_code = outcome.exit_code.and(Exit::LocalFailure);
        }
        outcome.filed_in = Some(dir.display().to_string());
        (self.on)(Event::Filed {
            file,
            dir,
            outcome: &outcome,
        });
        outcome
    }

    fn trouble(&self, file: Option<&Path>, message: String) {
        (self.on)(Event::Trouble { file, message });
    }
}

/// A message in one line: a line break in it (another program's, a
/// cell's) becomes ` / `.
pub fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" / ")
}

/// Every run the ledger recorded, each report where it is now (under its
/// run's id once a later run took the plain name).
pub fn runs(
    store: &crate::submit::ledger::Store,
    dest: &crate::submit::Destination,
) -> Result<Vec<crate::submit::ledger::RunRecord>> {
    let mut runs = crate::submit::ledger::runs(store, dest)?;
    for r in &mut runs {
        if let Some(at) = &r.report {
            r.report = Some(
                report::kept_report(Path::new(at), r.id)
                    .display()
                    .to_string(),
            );
        }
    }
    Ok(runs)
}
