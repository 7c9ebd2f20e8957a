//! The watch: `submit` for drop folders, kept running until it is
//! stopped.
//!
//! Three parts hand files on over channels: the watcher (a thread of its
//! own) finds the sheets that have settled (woken by file-system events
//! through `notify`, and looking every `poll` besides, for file systems
//! that send none); up to `parallel_files` checkers open and check them;
//! the sender (the calling thread, which owns the engine) sends their
//! orders one file at a time (one ledger decides each order once), writes
//! the report, and files the sheet in the done or failed folder. A
//! heartbeat every `heartbeat`. A stop (Ctrl-C, SIGTERM) ends it: the
//! calls in flight are finished and the report written; files not begun
//! stay where they are.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::records::{Kept, file_records, put_away};
use super::shared::{Sharing, Turn};
use super::{Event, FileOutcome, Filing, Output, Service};
use crate::drop::{self, Look, Settle, Settling};
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::job::Job;
use crate::pipeline::CheckOpts;
use crate::report;
use crate::stage::{self, Receiver, RecvTimeoutError, Sender};
use crate::submit::{Stop, Stopper};

/// How the watch looks at its folders.
#[derive(Debug, Clone)]
pub struct WatchOpts {
    /// The drop folders.
    pub dirs: Vec<PathBuf>,
    /// Files read and checked at once (their orders are still sent one
    /// file at a time).
    pub parallel_files: usize,
    /// How often the folders are looked at, besides the file system's
    /// events.
    pub poll: Duration,
    /// Ignore the file system's events.
    pub poll_only: bool,
    /// How often the watch tells it is alive.
    pub heartbeat: Duration,
    /// Tries for a file that cannot be read (or whose report cannot be
    /// written) before it goes to the failed folder.
    pub read_tries: u32,
    /// How long a file of a drop folder shared with other hosts stays
    /// this watch's without its heartbeat (a shared ledger only).
    pub lease: Duration,
}

/// A sheet handed to the watch from elsewhere (the desk), sent in turn
/// with the folders' files: one engine, one ledger, one sender. Its report
/// goes where `out` says, and what happens is told to `on`; what came of
/// it is the answer.
pub struct Handed {
    pub job: Arc<Job>,
    pub out: Output,
    /// The command and options for the run facts.
    pub command: &'static str,
    pub options: serde_json::Value,
    pub on: Box<dyn Fn(Event<'_>) + Send + Sync>,
    pub answer: Sender<Result<FileOutcome>>,
}

/// How the watch ended, and what it did: its files done, needing
/// attention, failed.
#[derive(Debug, Clone, Copy)]
pub struct WatchEnd {
    pub exit: Exit,
    pub done: u64,
    pub attention: u64,
    pub failed: u64,
}

/// A file taken, on its way to its checker and then the sender.
struct Taken {
    path: PathBuf,
    /// This is the file's n-th try (after failed reads).
    try_no: u32,
    /// What its earlier tries wrote (reports, run facts, records of why it
    /// could not be read), kept under names of their own: they go where
    /// the file goes.
    records: Vec<Kept>,
    /// When its checking began, and what came of it; `None`: not checked,
    /// the watch is stopping.
    opened: Option<(String, Result<Job>)>,
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
    outcome: FileOutcome,
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
    /// Another host's watch holds it: looked at again after a while.
    Elsewhere(Duration),
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
    attention: u64,
    failed: u64,
    cut_short: bool,
}

/// Watches `opts.dirs` and sends what settles there, each file checked
/// with `check`, until the engine's stop signal; the sheets `handed` on
/// the way are sent in turn with the files (`stage::never()` for none).
pub fn watch(
    service: &Service<'_>,
    opts: &WatchOpts,
    check: &CheckOpts,
    handed: Receiver<Handed>,
) -> WatchEnd {
    let stopper = service.engine.stopper.clone();
    let on = service.on;
    let (wake_tx, wake_rx) = stage::unbounded();
    let (todo_tx, todo_rx) = stage::unbounded::<Taken>();
    // A checker hands on a file only as the sender takes it: no more
    // files checked and waiting than there are checkers.
    let (checked_tx, checked_rx) = stage::bounded::<Taken>(0);
    let (fatal, counts) = std::thread::scope(|scope| {
        let stopper = &stopper;
        for _ in 0..opts.parallel_files {
            let (todo_rx, checked_tx) = (todo_rx.clone(), checked_tx.clone());
            // A checker that cannot be started leaves it to the others;
            // with none, the watcher cannot hand on a file and the watch
            // ends.
            let _ = stage::beside(scope, "checker", move || {
                checker(todo_rx, checked_tx, check, stopper)
            });
        }
        drop((todo_rx, checked_tx));
        let watcher_wake = wake_tx.clone();
        let settle = service.out.settle;
        let watcher = stage::beside(scope, "watcher", move || {
            // The wake-ups end when the sender and the events are done.
            let events = if opts.poll_only {
                drop(watcher_wake);
                None
            } else {
                file_events(&opts.dirs, watcher_wake, on)
            };
            on(Event::Watching {
                dirs: &opts.dirs,
                events: events.is_some(),
                poll_only: opts.poll_only,
                poll: opts.poll,
                settle,
            });
            let mut board = Board::default();
            watcher(opts, settle, stopper, todo_tx, &wake_rx, on, &mut board);
            // Stopping: no more events; the checkers and the sender end
            // once the files in hand are done.
            drop(events);
            for wake in wake_rx.iter() {
                if let Wake::Done(d) = wake {
                    tell(&mut board.counts, &d, on);
                }
            }
            board.counts
        });
        let fatal = sender(service, opts, checked_rx, handed, wake_tx);
        let counts = watcher.ok().and_then(stage::joined).unwrap_or_default();
        (fatal, counts)
    });
    let exit = match fatal {
        Some(exit) => exit,
        None if counts.cut_short => Exit::Interrupted,
        None => Exit::Ok,
    };
    let why = stopper.reason();
    let end = WatchEnd {
        exit,
        done: counts.done,
        attention: counts.attention,
        failed: counts.failed,
    };
    on(Event::WatchStopped {
        why: why.as_ref(),
        end,
    });
    end
}

/// File-system events of `dirs` as wake-ups; `None` where the system
/// gives none (the watch then only looks every `poll`).
fn file_events(
    dirs: &[PathBuf],
    wake: Sender<Wake>,
    on: &(dyn Fn(Event<'_>) + Sync),
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
        let _ = wake.send(Wake::Event);
    })
    .ok()?;
    for dir in dirs {
        if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
            on(Event::NoEvents {
                dir,
                error: e.to_string(),
            });
            return None;
        }
    }
    Some(watcher)
}

/// Finds settled sheets and hands them on until the watch is stopped;
/// keeps the counts and tells them every `heartbeat`.
fn watcher(
    opts: &WatchOpts,
    settle: Duration,
    stopper: &Stopper,
    todo: Sender<Taken>,
    wake: &Receiver<Wake>,
    on: &(dyn Fn(Event<'_>) + Sync),
    board: &mut Board,
) {
    let mut settling = Settling::new(settle);
    let mut told_passed: HashSet<PathBuf> = HashSet::new();
    let mut beat = Instant::now();
    let mut looked = None::<Instant>;
    while !stopper.is_interrupted() && !matches!(stopper.reason(), Some(Stop::Ledger(_))) {
        if looked.is_none_or(|t| t.elapsed() >= Duration::from_millis(200)) {
            looked = Some(Instant::now());
            for path in sheets(&opts.dirs, &mut told_passed, on) {
                if board.busy.contains(&path) || !due(&mut board.later, &path) {
                    continue;
                }
                match settling.look(&path) {
                    Settle::Ready => {
                        on(Event::Taken { file: &path });
                        if todo.send(board.take(path)).is_err() {
                            return;
                        }
                    }
                    Settle::Waiting {
                        first: true,
                        unchanged,
                    } => on(Event::Waiting {
                        file: &path,
                        unchanged,
                        settle,
                    }),
                    Settle::Waiting { .. } | Settle::Gone => {}
                }
            }
        }
        if beat.elapsed() >= opts.heartbeat {
            beat = Instant::now();
            board.heartbeat(&opts.dirs, settling.waiting(), on);
        }
        // Soon again while a file settles; else at the next event or look.
        let wait = if settling.waiting() > 0 {
            Duration::from_millis(250)
        } else {
            opts.poll
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
                board.done(d, on);
            }
        }
    }
}

/// What the watcher keeps: the files in hand, the files it is not to take
/// yet, and the counts.
#[derive(Default)]
struct Board {
    counts: Counts,
    busy: HashSet<PathBuf>,
    later: HashMap<PathBuf, Later>,
}

impl Board {
    /// A settled file, taken: in hand until the sender is done with it.
    fn take(&mut self, path: PathBuf) -> Taken {
        let (try_no, records) = match self.later.remove(&path) {
            Some(l) => (l.failures + 1, l.records),
            None => (1, Vec::new()),
        };
        self.busy.insert(path.clone());
        Taken {
            path,
            try_no,
            records,
            opened: None,
        }
    }

    /// A file the sender is done with: counted, and taken again when it
    /// changes or its retry comes.
    fn done(&mut self, d: Box<Done>, on: &(dyn Fn(Event<'_>) + Sync)) {
        self.busy.remove(&d.path);
        tell(&mut self.counts, &d, on);
        let failures = d.try_no - 1;
        let (retry_at, failures) = match d.next {
            Next::Filed => return,
            Next::Stays => (None, failures),
            // An outage, or an approval awaited, is not the file's failure.
            Next::Retry(after)
                if d.outcome.exit_code == Exit::ApiUnavailable || d.outcome.awaiting_approval =>
            {
                (Some(Instant::now() + after), failures)
            }
            Next::Retry(after) => (Some(Instant::now() + after), failures + 1),
            Next::Elsewhere(after) => (Some(Instant::now() + after), failures),
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

    /// Tells that the watch is alive, and what it did so far.
    fn heartbeat(&self, dirs: &[PathBuf], settling: usize, on: &(dyn Fn(Event<'_>) + Sync)) {
        on(Event::Heartbeat {
            dirs,
            done: self.counts.done,
            attention: self.counts.attention,
            failed: self.counts.failed,
            in_hand: self.busy.len(),
            settling,
            retrying: self.later.values().filter(|l| l.retry_at.is_some()).count(),
        });
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

/// The sheets in the folders now; a file passed over is told once.
fn sheets(
    dirs: &[PathBuf],
    told: &mut HashSet<PathBuf>,
    on: &(dyn Fn(Event<'_>) + Sync),
) -> Vec<PathBuf> {
    let mut sheets = Vec::new();
    for dir in dirs {
        match drop::scan(dir) {
            Ok(found) => {
                sheets.extend(found.sheets);
                for p in found.passed {
                    if told.insert(p.path.clone()) {
                        on(Event::Passed(&p));
                    }
                }
            }
            Err(e) => on(Event::FolderUnreadable {
                dir,
                error: e.to_string(),
            }),
        }
    }
    sheets
}

/// Counts a file the sender is done with, and tells when it is tried
/// again (where it was filed is told as it is filed).
fn tell(counts: &mut Counts, d: &Done, on: &(dyn Fn(Event<'_>) + Sync)) {
    let exit = d.outcome.exit_code;
    if let Next::Elsewhere(_) = d.next {
        return;
    }
    match d.next {
        Next::Filed | Next::Stays => match d.outcome.outcome {
            Filing::Done => counts.done += 1,
            Filing::NeedsAttention => counts.attention += 1,
            Filing::Failed => counts.failed += 1,
            // Cut short while it was sent (a file not yet begun has no
            // report).
            Filing::Left => counts.cut_short |= d.outcome.report.is_some(),
        },
        Next::Retry(_) | Next::Elsewhere(_) => {}
    }
    match d.next {
        // Told already (the service's `Held`).
        Next::Retry(_) if d.outcome.awaiting_approval => {}
        Next::Retry(after) => {
            let why = match (&d.outcome.error, d.outcome.failed_rows) {
                (Some(e), _) => e.clone(),
                (None, 0) => "the API was unavailable or refused us".to_string(),
                (None, n) => format!(
                    "{n} row{} FAILED, the API left them unsettled",
                    if n == 1 { "" } else { "s" }
                ),
            };
            on(Event::Retry {
                file: &d.path,
                exit,
                why,
                after,
            });
        }
        Next::Filed | Next::Stays | Next::Elsewhere(_) => {}
    }
    on(Event::FileDone(&d.outcome));
}

/// Opens and checks the files handed to it, until there are no more.
fn checker(todo: Receiver<Taken>, out: Sender<Taken>, opts: &CheckOpts, stopper: &Stopper) {
    for mut taken in todo {
        if !stopper.is_interrupted() {
            let started = report::now();
            taken.opened = Some((started, Job::open(&taken.path, opts.clone())));
        }
        if out.send(taken).is_err() {
            return;
        }
    }
}

/// Sends the checked files one at a time, and files each away. Returns
/// how the watch is to end, if something ended it (the ledger failed).
fn sender(
    service: &Service<'_>,
    opts: &WatchOpts,
    checked: Receiver<Taken>,
    mut handed: Receiver<Handed>,
    wake: Sender<Wake>,
) -> Option<Exit> {
    let engine = service.engine;
    let mut api_pause = Duration::ZERO;
    let (mut sharing, mut fatal) = match Sharing::start(service, opts.lease) {
        Ok(s) => (s, None),
        Err(e) => {
            engine.stopper.stop(Stop::Ledger(e.to_string()));
            (None, Some(e.exit()))
        }
    };
    loop {
        let mut taken = crossbeam_channel::select! {
            recv(checked) -> taken => match taken {
                Ok(taken) => taken,
                Err(_) => break,
            },
            recv(handed) -> h => {
                match h {
                    Ok(h) => send_handed(service, h, fatal.is_some()),
                    // No more from there: the folders' files only.
                    Err(_) => handed = stage::never(),
                }
                continue;
            }
        };
        let mut paused = false;
        let stop = engine
            .stopper
            .reason()
            .filter(|_| engine.stopper.is_interrupted() || fatal.is_some());
        let (outcome, next) = match (stop, taken.opened.take()) {
            (None, Some((started, job))) => {
                let sent = send_taken(
                    service,
                    opts,
                    &mut sharing,
                    &mut taken,
                    started,
                    job,
                    &mut api_pause,
                );
                fatal = fatal.or(sent.fatal);
                paused = sent.paused;
                (sent.outcome, sent.next)
            }
            (stop, _) => (not_sent(&taken.path, stop), Next::Stays),
        };
        let mut outcome = outcome;
        if let Next::Retry(after) = next {
            outcome.tried_again_in = Some(humantime::format_duration(after).to_string());
        }
        let records = keep_records(service, &taken.path, next, taken.records, &outcome);
        let _ = wake.send(Wake::Done(Box::new(Done {
            path: taken.path,
            outcome,
            next,
            try_no: taken.try_no,
            records,
        })));
        if paused {
            pause(&engine.stopper, api_pause);
        }
    }
    fatal
}

/// A file not sent: the watch stopped (why), or is stopping.
fn not_sent(path: &Path, stop: Option<Stop>) -> FileOutcome {
    let name = path.display().to_string();
    match stop {
        Some(why) => FileOutcome::not_processed(name, &why),
        None => FileOutcome::failed(
            name,
            Exit::Interrupted,
            "not processed: the watch is stopping".into(),
        ),
    }
}

/// What came of a folder's file, and what the sender is to do next.
struct Sent {
    outcome: FileOutcome,
    next: Next,
    /// Wait before the next file: the API went away.
    paused: bool,
    /// The watch is to end, with this code: the ledger failed.
    fatal: Option<Exit>,
}

/// Sends a checked file (or records why it could not be read), and
/// decides what is next for it: filed, left, or tried again after a while
/// (`api_pause`, doubled each time in a row, when the API was away).
fn one_file(
    service: &Service<'_>,
    opts: &WatchOpts,
    taken: &Taken,
    started: String,
    job: Result<Job>,
    api_pause: &mut Duration,
) -> Sent {
    let engine = service.engine;
    let mut outcome = service.file(&taken.path, started, job);
    let exit = outcome.exit_code;
    if outcome.error.is_none() {
        outcome.error = engine.stopper.reason().map(|why| why.to_string());
    }
    let api_trouble = (exit == Exit::ApiUnavailable && engine.stopper.clear())
        || (exit == Exit::RowsNotDone && outcome.failed_rows > 0 && taken.try_no < SEND_TRIES);
    let mut sent = Sent {
        outcome,
        next: Next::Stays,
        paused: false,
        fatal: None,
    };
    if sent.outcome.awaiting_approval {
        // Four eyes: looked at again now and then, and sent once approved.
        sent.next = Next::Retry(APPROVAL_LOOK);
    } else if exit == Exit::Interrupted {
        // Stopped part way: left for the next watch, which resumes it.
    } else if api_trouble {
        // The API went away, or left orders unsettled: this file again
        // (the ledger resumes it) once the API may be back, waiting longer
        // each time in a row.
        *api_pause = (*api_pause * 2).clamp(API_PAUSE, API_PAUSE_MOST);
        (sent.next, sent.paused) = (Next::Retry(*api_pause), true);
    } else if matches!(exit, Exit::InputUnreadable | Exit::LocalFailure)
        && taken.try_no < opts.read_tries
        && !stopped_for_good(engine.stopper.as_ref())
    {
        sent.next = Next::Retry(service.out.settle.max(Duration::from_secs(5)));
    } else {
        if exit == Exit::Ok {
            *api_pause = Duration::ZERO;
        }
        if stopped_for_good(&engine.stopper) && !engine.stopper.is_interrupted() {
            sent.fatal = Some(exit);
        }
        (sent.outcome, sent.next) = filed(service, &taken.path, sent.outcome);
    }
    sent
}

/// A sheet handed to the watch, sent with the watch's engine; the answer
/// is what came of it (an error once the ledger failed or the watch is
/// stopping).
fn send_handed(service: &Service<'_>, h: Handed, ledger_failed: bool) {
    let engine = service.engine;
    let answer = match engine.stopper.reason() {
        Some(why) if ledger_failed || engine.stopper.is_interrupted() => Err(Error::Stopped {
            exit: why.exit(),
            why: why.to_string(),
        }),
        _ => {
            let on = &*h.on;
            let s = Service {
                engine,
                out: &h.out,
                command: h.command,
                options: h.options,
                on,
                gate: None,
            };
            let sent = h
                .out
                .prepare()
                .and_then(|()| s.send(&h.job, &report::now()));
            // An outage it met is not the next file's: that one tries again.
            if !stopped_for_good(&engine.stopper) {
                engine.stopper.clear();
            }
            sent
        }
    };
    let _ = h.answer.send(answer);
}

/// What a file's tries wrote, after this one: a try to be repeated puts
/// its report and run facts (or its record of why the file could not be
/// read) away with the run history, under names of their own, to go with
/// the file; a file filed takes them all with it.
fn keep_records(
    service: &Service<'_>,
    path: &Path,
    next: Next,
    mut records: Vec<Kept>,
    outcome: &FileOutcome,
) -> Vec<Kept> {
    match next {
        Next::Retry(_) => records.extend(put_away(service, path)),
        Next::Filed => {
            if let Some(dir) = &outcome.filed_in {
                file_records(service, Path::new(dir), &records, &outcome.tag);
            }
        }
        Next::Stays | Next::Elsewhere(_) => {}
    }
    records
}

/// Sends a checked file once it is this watch's to send (a shared drop
/// folder's: its lease and the destination's turn taken); a file another
/// host holds is left for a later look.
fn send_taken(
    service: &Service<'_>,
    opts: &WatchOpts,
    sharing: &mut Option<Sharing>,
    taken: &mut Taken,
    started: String,
    job: Result<Job>,
    api_pause: &mut Duration,
) -> Sent {
    let engine = service.engine;
    let name = || taken.path.display().to_string();
    match turn(sharing, service, taken, &job) {
        Ok(Turn::Go(lease)) => {
            // What an earlier watch left beside the file goes with the run
            // history first.
            taken.records.extend(put_away(service, &taken.path));
            let sent = one_file(service, opts, taken, started, job, api_pause);
            if let Some(s) = sharing {
                s.done(service, lease);
            }
            sent
        }
        Ok(Turn::Elsewhere(after)) => Sent {
            outcome: FileOutcome::failed(name(), Exit::Ok, "another host's".into()),
            next: Next::Elsewhere(after),
            paused: false,
            fatal: None,
        },
        Err(e) => {
            let why = Stop::Ledger(e.to_string());
            engine.stopper.stop(why.clone());
            Sent {
                outcome: FileOutcome::not_processed(name(), &why),
                next: Next::Stays,
                paused: false,
                fatal: Some(e.exit()),
            }
        }
    }
}

/// Whether this watch sends `taken` now: always, with a ledger of its
/// own; with a shared one, once the file's lease and the turn are its.
fn turn(
    sharing: &mut Option<Sharing>,
    service: &Service<'_>,
    taken: &Taken,
    job: &Result<Job>,
) -> Result<Turn> {
    match sharing {
        Some(s) => s.take(service, &taken.path, job),
        None => Ok(Turn::Go(None)),
    }
}

/// How often a file waiting for approval is looked at again.
const APPROVAL_LOOK: Duration = Duration::from_secs(120);

/// The first wait after the API went away; it doubles each time in a row,
/// up to the most.
const API_PAUSE: Duration = Duration::from_secs(10);
const API_PAUSE_MOST: Duration = Duration::from_secs(300);

/// Tries of a file whose orders the API left unsettled (rows FAILED: no
/// answer, 5xx, outcome unknown) before it goes to the failed folder:
/// about an hour and a half of waits.
const SEND_TRIES: u32 = 20;

/// Waits before the next file after the API went away; a stop ends it.
fn pause(stopper: &Stopper, wait: Duration) {
    let until = Instant::now() + wait;
    while Instant::now() < until && !stopper.is_interrupted() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Moves the file to the done or failed folder, if that one is given.
fn filed(service: &Service<'_>, path: &Path, outcome: FileOutcome) -> (FileOutcome, Next) {
    let outcome = service.file_away(path, outcome);
    let next = if outcome.filed_in.is_some() {
        Next::Filed
    } else {
        Next::Stays
    };
    (outcome, next)
}

/// The ledger failed: nothing more may be sent.
fn stopped_for_good(stopper: &Stopper) -> bool {
    matches!(stopper.reason(), Some(Stop::Ledger(_)))
}
