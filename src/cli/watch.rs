//! `dcms-bulk watch DIR...`: `submit` for drop folders, kept running.
//!
//! Three parts, each on its own thread, handing files on over channels:
//! the watcher (this thread) finds the sheets that have settled (woken by
//! file-system events through `notify`, and looking every `--poll` besides,
//! for file systems that send none); up to `--parallel-files` checkers
//! read and check them; one sender sends their orders one file at a time
//! (one ledger decides each order once), writes the report, and files the
//! sheet in the done or failed folder. A heartbeat line every
//! `--heartbeat`. Ctrl-C or SIGTERM stops it: the calls in flight are
//! finished and the report written; files not begun stay where they are.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use clap::Args;

use super::api::{ApiArgs, SendArgs, parse_duration};
use super::submit::{FileSummary, OutArgs, file_away, send_checked};
use super::{CheckArgs, Console, print_stdout};
use crate::batch::Engine;
use crate::drop::{self, Look, Settle, Settling};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::pipeline::{self, CheckOpts};
use crate::report;
use crate::submit::{Stop, Stopper};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Drop folders to watch for order sheets
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,

    #[command(flatten)]
    pub check: CheckArgs,

    #[command(flatten)]
    pub api: ApiArgs,

    #[command(flatten)]
    pub send: SendArgs,

    #[command(flatten)]
    pub out: OutArgs,

    /// Files read and checked at once; their orders are still sent one
    /// file at a time
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = "Folders")]
    pub parallel_files: usize,

    /// How often the folders are looked at, besides the file system's
    /// events (a network share may send none)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, help_heading = "Folders")]
    pub poll: Duration,

    /// Ignore the file system's events and only look every --poll (a
    /// network share whose events come from this machine alone)
    #[arg(long, help_heading = "Folders")]
    pub poll_only: bool,

    /// How often a log line says the watch is alive and what it did
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration, help_heading = "Folders")]
    pub heartbeat: Duration,

    /// Tries for a file that cannot be read (or whose report cannot be
    /// written) before it goes to --failed-dir
    #[arg(long, value_name = "N", default_value_t = 3, help_heading = "Folders")]
    pub read_tries: u32,
}

/// What an earlier try of a file wrote (its report and run facts, or the
/// record of why it could not be read), kept under a name of its own.
struct Kept {
    /// The ledger's run of that try.
    run: Option<i64>,
    report: PathBuf,
}

/// A file taken, on its way to its checker and then its sender.
struct Job {
    path: PathBuf,
    /// This is the file's n-th try (after failed reads).
    try_no: u32,
    /// What its earlier tries wrote (reports, run facts, records of why it
    /// could not be read), kept under names of their own: they go where
    /// the file goes.
    records: Vec<Kept>,
    /// When its checking began, and what came of it; `None`: not checked,
    /// the watch is stopping.
    checked: Option<(String, Result<pipeline::Checked>)>,
}

/// What wakes the watcher.
enum Wake {
    /// Something changed in a folder.
    Event,
    /// The sender is done with a file.
    Done(Box<Done>),
}

/// A file the sender is done with, and what the watcher is to do next.
struct Done {
    path: PathBuf,
    summary: FileSummary,
    next: Next,
    try_no: u32,
    /// What this and the earlier tries wrote, if the file is to be tried
    /// again.
    records: Vec<Kept>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Moved to the done or failed folder.
    Filed,
    /// Left in place: not taken again until it changes.
    Stays,
    /// Left in place, taken again after a while (the API was away, a
    /// read failed).
    Retry(Duration),
}

/// What the watcher knows of a file it is not to take yet.
struct Later {
    look: Option<Look>,
    retry_at: Option<Instant>,
    failures: u32,
    records: Vec<Kept>,
}

/// The watch's counts, for the heartbeat.
#[derive(Default)]
struct Counts {
    done: u64,
    failed: u64,
    cut_short: bool,
}

pub fn run(args: &WatchArgs, console: Console) -> Result<Exit> {
    for dir in &args.dirs {
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "{}: not a folder; watch takes drop folders (submit takes files)",
                dir.display()
            )));
        }
    }
    if args.out.report.is_some() {
        return Err(Error::Usage(
            "--report names one file; a watch writes many: use --report-dir".into(),
        ));
    }
    if args.parallel_files == 0 || args.parallel_files > 64 {
        return Err(Error::Usage("--parallel-files must be 1 to 64".into()));
    }
    if args.read_tries == 0 {
        return Err(Error::Usage("--read-tries must be at least 1".into()));
    }
    if args.poll.is_zero() || args.heartbeat.is_zero() {
        return Err(Error::Usage(
            "--poll and --heartbeat must be above 0".into(),
        ));
    }
    args.out.prepare()?;
    let mut opts = args.check.to_opts()?;
    opts.rules.strict |= args.api.profile.refuses_warnings()?;
    let api = args.api.resolve(&args.send, console)?;
    let engine = super::api::engine(&api, &args.send, console)?;
    let stopper = engine.stopper.clone();

    let (wake_tx, wake_rx) = mpsc::channel();
    let events = if args.poll_only {
        None
    } else {
        file_events(&args.dirs, wake_tx.clone())
    };
    let dirs: Vec<String> = args.dirs.iter().map(|d| d.display().to_string()).collect();
    tracing::info!(
        event = "watching",
        dirs = %dirs.join(", "),
        events = events.is_some(),
        "dcms-bulk: watching {} for order sheets ({}, settling {}); Ctrl-C or SIGTERM stops",
        dirs.join(", "),
        match (&events, args.poll_only) {
            (Some(_), _) => format!("file-system events, and a look every {}", humantime::format_duration(args.poll)),
            (None, true) => format!("a look every {} (--poll-only)", humantime::format_duration(args.poll)),
            (None, false) => format!("no file-system events here: a look every {}", humantime::format_duration(args.poll)),
        },
        humantime::format_duration(args.out.settle)
    );

    let (todo_tx, todo_rx) = mpsc::channel::<Job>();
    let todo_rx = Mutex::new(todo_rx);
    let (checked_tx, checked_rx) = mpsc::sync_channel::<Job>(0);
    let fatal = std::thread::scope(|scope| {
        for _ in 0..args.parallel_files {
            let (todo_rx, checked_tx) = (&todo_rx, checked_tx.clone());
            let (opts, stopper) = (&opts, &stopper);
            scope.spawn(move || checker(todo_rx, checked_tx, opts, stopper));
        }
        drop(checked_tx);
        let sender_wake = wake_tx.clone();
        let sender = scope.spawn(move || sender(args, engine, checked_rx, sender_wake, console));
        drop(wake_tx);
        let counts = watcher(args, &stopper, todo_tx, &wake_rx, console);
        // Stopping: no more events; the sender and the checkers end once
        // the files in hand are done.
        drop(events);
        let mut counts = counts;
        for wake in wake_rx.iter() {
            if let Wake::Done(d) = wake {
                tally(&mut counts, &d, args, console);
            }
        }
        let fatal = sender.join().unwrap_or(Some(Exit::LocalFailure));
        (fatal, counts)
    });
    let (fatal, counts) = fatal;
    let code = match fatal {
        Some(code) => code,
        None if counts.cut_short => Exit::Interrupted,
        None => Exit::Ok,
    };
    tracing::info!(
        event = "stopped",
        code = code.code(),
        files_done = counts.done,
        files_failed = counts.failed,
        "dcms-bulk: watch stopped{}: {} done, {} failed",
        match stopper.reason() {
            Some(why) => format!(" ({why})"),
            None => String::new(),
        },
        super::count(counts.done, "file"),
        counts.failed
    );
    Ok(code)
}

/// File-system events of `dirs` as wake-ups; `None` where the system
/// gives none (the watch then only looks every `--poll`).
fn file_events(dirs: &[PathBuf], wake: Sender<Wake>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
        let _ = wake.send(Wake::Event);
    })
    .ok()?;
    for dir in dirs {
        if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(
                event = "no_events",
                "dcms-bulk: warning: no file-system events for {} ({e}); looking every --poll instead",
                dir.display()
            );
            return None;
        }
    }
    Some(watcher)
}

/// Finds settled sheets and hands them on until the watch is stopped;
/// keeps the counts and says them every `--heartbeat`.
fn watcher(
    args: &WatchArgs,
    stopper: &Stopper,
    todo: Sender<Job>,
    wake: &Receiver<Wake>,
    console: Console,
) -> Counts {
    let mut board = Board {
        counts: Counts::default(),
        busy: HashSet::new(),
        later: HashMap::new(),
    };
    let mut settling = Settling::new(args.out.settle);
    let mut told_passed: HashSet<PathBuf> = HashSet::new();
    let mut beat = Instant::now();
    let mut looked = None::<Instant>;
    while !stopper.is_interrupted() && !matches!(stopper.reason(), Some(Stop::Ledger(_))) {
        if looked.is_none_or(|t| t.elapsed() >= Duration::from_millis(200)) {
            looked = Some(Instant::now());
            for path in sheets(&args.dirs, &mut told_passed, console) {
                if board.busy.contains(&path) || !due(&mut board.later, &path) {
                    continue;
                }
                match settling.look(&path) {
                    Settle::Ready => {
                        let (try_no, records) = match board.later.remove(&path) {
                            Some(l) => (l.failures + 1, l.records),
                            None => (1, Vec::new()),
                        };
                        board.busy.insert(path.clone());
                        let job = Job {
                            path,
                            try_no,
                            records,
                            checked: None,
                        };
                        if todo.send(job).is_err() {
                            return board.counts;
                        }
                    }
                    Settle::Waiting {
                        first: true,
                        unchanged,
                    } if !console.quiet => {
                        tracing::info!(
                            event = "waiting",
                            file = %path.display(),
                            "dcms-bulk: waiting for {} to settle (unchanged for {:.0} s of {})",
                            path.display(),
                            unchanged.as_secs_f64(),
                            humantime::format_duration(args.out.settle)
                        );
                    }
                    Settle::Waiting { .. } | Settle::Gone => {}
                }
            }
        }
        if beat.elapsed() >= args.heartbeat {
            beat = Instant::now();
            if !console.quiet {
                heartbeat(args, &board, settling.waiting());
            }
        }
        // Soon again while a file settles; else at the next event or look.
        let wait = if settling.waiting() > 0 {
            Duration::from_millis(250)
        } else {
            args.poll
        };
        let first = match wake.recv_timeout(wait) {
            Ok(w) => Some(w),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // Many events come at once (a copy writes often): one look for all.
        for w in first
            .into_iter()
            .chain(std::iter::from_fn(|| wake.try_recv().ok()))
        {
            if let Wake::Done(d) = w {
                board.done(d, args, console);
            }
        }
    }
    board.counts
}

/// What the watcher keeps: the files in hand, the files it is not to take
/// yet, and the counts.
struct Board {
    counts: Counts,
    busy: HashSet<PathBuf>,
    later: HashMap<PathBuf, Later>,
}

impl Board {
    /// A file the sender is done with: counted, and taken again when it
    /// changes or its retry comes.
    fn done(&mut self, d: Box<Done>, args: &WatchArgs, console: Console) {
        self.busy.remove(&d.path);
        tally(&mut self.counts, &d, args, console);
        let failures = d.try_no - 1;
        let (retry_at, failures) = match d.next {
            Next::Filed => return,
            Next::Stays => (None, failures),
            // An outage is not the file's failure.
            Next::Retry(after) if d.summary.exit_code == Exit::ApiUnavailable => {
                (Some(Instant::now() + after), failures)
            }
            Next::Retry(after) => (Some(Instant::now() + after), failures + 1),
        };
        let look = Look::of(&d.path);
        self.later.insert(
            d.path,
            Later {
                look,
                retry_at,
                failures,
                records: d.records,
            },
        );
    }
}

/// Whether a file the watch has seen before is to be looked at again: it
/// changed since, or its retry time came. A file never seen is.
fn due(later: &mut HashMap<PathBuf, Later>, path: &Path) -> bool {
    let Some(l) = later.get_mut(path) else {
        return true;
    };
    let now = Look::of(path);
    let changed = match (&l.look, &now) {
        (Some(a), Some(b)) => !a.same_as(b),
        _ => true,
    };
    if changed {
        // Dropped again, or fixed: a fresh start (what its earlier tries
        // wrote still goes with it).
        (l.look, l.retry_at, l.failures) = (now, Some(Instant::now()), 0);
        return true;
    }
    l.retry_at.is_some_and(|t| Instant::now() >= t)
}

/// The sheets in the folders now; a file passed over is said once.
fn sheets(dirs: &[PathBuf], told: &mut HashSet<PathBuf>, console: Console) -> Vec<PathBuf> {
    let mut sheets = Vec::new();
    for dir in dirs {
        match drop::scan(dir) {
            Ok(found) => {
                sheets.extend(found.sheets);
                for p in found.passed {
                    if told.insert(p.path.clone()) && !console.quiet {
                        super::say_passed(&p);
                    }
                }
            }
            Err(e) => tracing::error!(
                event = "error",
                code = Exit::LocalFailure.code(),
                "dcms-bulk: error: cannot read the folder {}: {e}",
                dir.display()
            ),
        }
    }
    sheets
}

/// Counts a file the sender is done with, says where it went, and prints
/// its summary with `--json`.
fn tally(counts: &mut Counts, d: &Done, args: &WatchArgs, console: Console) {
    let code = d.summary.exit_code;
    match d.next {
        Next::Filed | Next::Stays if code == Exit::Ok => counts.done += 1,
        // Cut short while it was sent (a file not yet begun has no report).
        Next::Filed | Next::Stays if code == Exit::Interrupted => {
            counts.cut_short |= d.summary.report.is_some();
        }
        Next::Filed | Next::Stays => counts.failed += 1,
        Next::Retry(_) => {}
    }
    if !console.quiet {
        let file = d.path.display();
        match (d.next, &d.summary.filed_in) {
            (Next::Filed, Some(dir)) => tracing::info!(
                event = "filed",
                file = %file,
                code = code.code(),
                folder = dir.as_str(),
                "dcms-bulk: {file}: moved to {dir} with its report and run facts"
            ),
            (Next::Retry(after), _) => {
                let why = match (&d.summary.error, d.summary.failed_rows) {
                    (Some(e), _) => e.clone(),
                    (None, 0) => "the API was unavailable or refused us".to_string(),
                    (None, n) => format!(
                        "{} FAILED, the API left them unsettled",
                        super::count(n, "row")
                    ),
                };
                tracing::warn!(
                    event = "retry",
                    file = %file,
                    code = code.code(),
                    "dcms-bulk: {file}: not done ({why}); trying it again in {}",
                    humantime::format_duration(after)
                );
            }
            _ => {}
        }
    }
    if args.out.json
        && let Ok(line) = serde_json::to_string(&d.summary)
    {
        let _ = print_stdout(&(line + "\n"));
    }
}

/// The heartbeat line: alive, and what the watch did so far.
fn heartbeat(args: &WatchArgs, board: &Board, settling: usize) {
    let retrying = board
        .later
        .values()
        .filter(|l| l.retry_at.is_some())
        .count();
    let in_hand = board.busy.len();
    let dirs: Vec<String> = args.dirs.iter().map(|d| d.display().to_string()).collect();
    let c = &board.counts;
    tracing::info!(
        event = "heartbeat",
        files_done = c.done,
        files_failed = c.failed,
        in_hand,
        settling,
        retrying,
        "dcms-bulk: watching {}: {} done, {} failed; {in_hand} in hand, {settling} settling, {retrying} to try again",
        dirs.join(", "),
        super::count(c.done, "file"),
        c.failed
    );
}

/// Reads and checks the files handed to it, until there are no more.
fn checker(todo: &Mutex<Receiver<Job>>, out: SyncSender<Job>, opts: &CheckOpts, stopper: &Stopper) {
    loop {
        let next = todo.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(mut job) = next else { return };
        if !stopper.is_interrupted() {
            let started = report::now();
            job.checked = Some((started, pipeline::check(&job.path, opts)));
        }
        if out.send(job).is_err() {
            return;
        }
    }
}

/// Sends the checked files one at a time, and files each away. Returns
/// the exit code that ended the watch, if one did (the ledger failed).
fn sender(
    args: &WatchArgs,
    engine: Engine,
    checked: Receiver<Job>,
    wake: Sender<Wake>,
    console: Console,
) -> Option<Exit> {
    let mut api_pause = Duration::ZERO;
    let mut fatal = None;
    for job in checked {
        let name = job.path.display().to_string();
        let mut paused = false;
        let stop = engine
            .stopper
            .reason()
            .filter(|_| engine.stopper.is_interrupted() || fatal.is_some());
        let (summary, next) = match (stop, job.checked) {
            (None, Some((started, checked))) => {
                let mut summary = send_checked(
                    &args.out,
                    &args.check,
                    &engine,
                    &job.path,
                    started,
                    checked,
                    console,
                );
                let code = summary.exit_code;
                if summary.error.is_none() {
                    summary.error = engine.stopper.reason().map(|why| why.to_string());
                }
                let api_trouble = (code == Exit::ApiUnavailable && engine.stopper.clear())
                    || (code == Exit::RowsNotDone
                        && summary.failed_rows > 0
                        && job.try_no < SEND_TRIES);
                if code == Exit::Interrupted {
                    // Stopped part way: left for the next watch, which
                    // resumes it.
                    (summary, Next::Stays)
                } else if api_trouble {
                    // The API went away, or left orders unsettled: this
                    // file again (the ledger resumes it) once the API may
                    // be back, waiting longer each time in a row.
                    api_pause = (api_pause * 2).clamp(API_PAUSE, API_PAUSE_MOST);
                    paused = true;
                    (summary, Next::Retry(api_pause))
                } else if matches!(code, Exit::InputUnreadable | Exit::LocalFailure)
                    && job.try_no < args.read_tries
                    && !stopped_for_good(&engine)
                {
                    let after = args.out.settle.max(Duration::from_secs(5));
                    (summary, Next::Retry(after))
                } else {
                    if code == Exit::Ok {
                        api_pause = Duration::ZERO;
                    }
                    if stopped_for_good(&engine) && !engine.stopper.is_interrupted() {
                        fatal = Some(code);
                    }
                    filed(&args.out, &engine, &job.path, summary)
                }
            }
            (stop, _) => {
                let why = stop.map_or("the watch is stopping".to_string(), |s| s.to_string());
                (
                    FileSummary::failed(name, Exit::Interrupted, format!("not processed: {why}")),
                    Next::Stays,
                )
            }
        };
        let mut records = job.records;
        match next {
            // This try's report and run facts step aside for the next
            // try's, under names of their own, and go with the file.
            Next::Retry(_) => match args
                .out
                .target(&job.path)
                .and_then(|t| report::keep_earlier(&t.path))
            {
                Ok(Some(kept)) => records.push(Kept {
                    run: summary.run,
                    report: kept,
                }),
                Ok(None) => {}
                Err(e) => tracing::error!(
                    event = "error",
                    file = %job.path.display(),
                    code = e.exit().code(),
                    "dcms-bulk: error: {e}"
                ),
            },
            Next::Filed => {
                if let Some(dir) = &summary.filed_in {
                    file_records(Path::new(dir), &engine, &records, &summary.tag);
                }
            }
            Next::Stays => {}
        }
        let _ = wake.send(Wake::Done(Box::new(Done {
            path: job.path,
            summary,
            next,
            try_no: job.try_no,
            records,
        })));
        if paused {
            pause(&engine, api_pause);
        }
    }
    engine.runtime.shutdown_timeout(Duration::from_secs(1));
    fatal
}

/// Moves what the earlier tries of a file wrote to where the file went;
/// the ledger's list of runs says where their reports are now.
fn file_records(dir: &Path, engine: &Engine, records: &[Kept], tag: &str) {
    for kept in records {
        let facts = report::facts_path(&kept.report);
        let moved = drop::file_away(dir, &[&kept.report, &facts], tag).and_then(|moved| {
            match (kept.run, &moved[0]) {
                (Some(run), Some(report)) => engine
                    .ledger
                    .report_moved(run, report)
                    .map_err(std::io::Error::other),
                _ => Ok(()),
            }
        });
        if let Err(e) = moved {
            tracing::error!(
                event = "error",
                code = Exit::LocalFailure.code(),
                "dcms-bulk: error: could not move {} to {}: {e}",
                kept.report.display(),
                dir.display()
            );
        }
    }
}

/// The first wait after the API went away; it doubles each time in a row,
/// up to the most.
const API_PAUSE: Duration = Duration::from_secs(10);
const API_PAUSE_MOST: Duration = Duration::from_secs(300);

/// Tries of a file whose orders the API left unsettled (rows FAILED: no
/// answer, 5xx, outcome unknown) before it goes to the failed folder:
/// about an hour and a half of waits.
const SEND_TRIES: u32 = 20;

/// Waits before the next file after the API went away; a stop ends it.
fn pause(engine: &Engine, wait: Duration) {
    let until = Instant::now() + wait;
    while Instant::now() < until && !engine.stopper.is_interrupted() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Moves the file to the done or failed folder, if that one is given.
fn filed(out: &OutArgs, engine: &Engine, path: &Path, summary: FileSummary) -> (FileSummary, Next) {
    let summary = file_away(out, engine, path, summary);
    let next = if summary.filed_in.is_some() {
        Next::Filed
    } else {
        Next::Stays
    };
    (summary, next)
}

/// The ledger failed: nothing more may be sent.
fn stopped_for_good(engine: &Engine) -> bool {
    matches!(engine.stopper.reason(), Some(Stop::Ledger(_)))
}
