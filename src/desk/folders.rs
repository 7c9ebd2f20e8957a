//! Drop folders on the page: what `serve --watch` does with each folder's
//! files (waiting to settle, checking, sending, done, failed), told by the
//! watch's events, and each file's report.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::guard::refused;
use askama::Template;

use super::{Shared, lock, page};
use crate::service::{Event, Filing};

/// Files the page remembers; the oldest ended ones go first.
const KEPT: usize = 500;

/// What the watch is doing with the folders' files.
pub struct Folders {
    dirs: Vec<PathBuf>,
    board: Mutex<Board>,
}

#[derive(Default)]
struct Board {
    files: VecDeque<FolderFile>,
    next_id: u64,
    /// How the watch is: started, waiting for the ledger, stopped.
    watch: String,
}

/// A folder's file, as the page shows it.
#[derive(Clone)]
pub struct FolderFile {
    pub id: u64,
    /// Its path as the watch names it.
    pub path: String,
    pub name: String,
    pub folder: String,
    pub state: FileState,
    /// What there is to say: its counts, how far it is, why it failed.
    pub detail: String,
    /// When the state last changed.
    pub since: String,
    pub report: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    Waiting,
    Checking,
    Sending,
    Done,
    /// Its orders were all handled; rows need a person.
    Attention,
    Failed,
    /// To be tried again after a while.
    Retrying,
    /// Stopped part way: the next start resumes it.
    Left,
    /// Not an order sheet, or not taken.
    Passed,
    /// Four eyes: sent once a checker approves it.
    Awaiting,
}

impl FileState {
    pub fn word(self) -> &'static str {
        match self {
            FileState::Waiting => "waiting to settle",
            FileState::Checking => "checking",
            FileState::Sending => "sending",
            FileState::Done => "done",
            FileState::Attention => "needs attention",
            FileState::Failed => "failed",
            FileState::Retrying => "to be tried again",
            FileState::Left => "stopped part way",
            FileState::Passed => "not taken",
            FileState::Awaiting => "waiting for approval",
        }
    }

    /// The CSS class (the word says it too: not by colour alone).
    pub fn class(self) -> &'static str {
        match self {
            FileState::Done => "ok",
            FileState::Failed | FileState::Passed => "bad",
            FileState::Attention | FileState::Retrying | FileState::Left | FileState::Awaiting => {
                "warn"
            }
            _ => "busy",
        }
    }

    fn ended(self) -> bool {
        matches!(
            self,
            FileState::Done
                | FileState::Attention
                | FileState::Failed
                | FileState::Left
                | FileState::Passed
        )
    }
}

impl Folders {
    pub fn new(dirs: Vec<PathBuf>) -> Folders {
        Folders {
            dirs,
            board: Mutex::new(Board {
                watch: "starting".into(),
                ..Board::default()
            }),
        }
    }

    /// Takes in what the watch tells.
    pub fn tell(&self, event: &Event<'_>) {
        let mut b = lock(&self.board);
        match event {
            Event::Engine(crate::engine::Event::LedgerBusy { .. }) => {
                b.watch = "waiting: another run holds the ledger".into();
            }
            Event::Watching { .. } => b.watch = "watching".into(),
            Event::WatchStopped { why, .. } => {
                b.watch = match why {
                    Some(why) => format!("stopped: {why}"),
                    None => "stopped".into(),
                };
            }
            Event::Waiting {
                file,
                unchanged,
                settle,
            } => b.at(file, FileState::Waiting, || {
                format!(
                    "unchanged for {} s; taken once unchanged for {} s",
                    unchanged.as_secs(),
                    settle.as_secs()
                )
            }),
            Event::Passed(p) => b.at(&p.path, FileState::Passed, || p.why.clone()),
            Event::Taken { file } => b.at(file, FileState::Checking, String::new),
            Event::Held { file, why } => {
                b.at(Path::new(file), FileState::Awaiting, || (*why).to_owned());
            }
            Event::Checked { file, checked } => {
                let c = checked.grouping.counts;
                b.at(Path::new(file), FileState::Checking, || {
                    format!(
                        "{} rows: {} valid, {} invalid, {} held",
                        c.rows, c.valid, c.invalid, c.held
                    )
                });
            }
            Event::Sending { file, orders } => b.at(Path::new(file), FileState::Sending, || {
                format!("0 of {orders} orders")
            }),
            Event::Progress { file, total, sent } => {
                b.at(Path::new(file), FileState::Sending, || {
                    format!(
                        "{} of {total} orders: {} accepted, {} rejected, {} failed",
                        sent.done, sent.accepted, sent.rejected, sent.failed
                    )
                });
            }
            Event::Finished { file, done } => b.at(Path::new(file), FileState::Sending, || {
                super::send::summary(done)
            }),
            Event::Failed { file, error } => b.at(file, FileState::Failed, || error.to_string()),
            Event::Retry {
                file, why, after, ..
            } => b.at(file, FileState::Retrying, || {
                format!("{why}; tried again in {} s", after.as_secs())
            }),
            Event::FileDone(outcome) => b.ended(outcome),
            _ => {}
        }
    }

    /// The folders, how the watch is, and their files, newest first.
    pub fn now(&self) -> (Vec<String>, String, Vec<FolderFile>) {
        let b = lock(&self.board);
        let dirs = self.dirs.iter().map(|d| d.display().to_string()).collect();
        (
            dirs,
            b.watch.clone(),
            b.files.iter().rev().cloned().collect(),
        )
    }

    fn report(&self, id: u64) -> Option<PathBuf> {
        let b = lock(&self.board);
        b.files.iter().find(|f| f.id == id)?.report.clone()
    }
}

impl Board {
    /// The file at `path` is now in `state`; a file that ended earlier
    /// and comes again is a new line.
    fn at(&mut self, path: &Path, state: FileState, detail: impl FnOnce() -> String) {
        let key = path.display().to_string();
        let since = crate::report::now();
        let found = self
            .files
            .iter_mut()
            .rev()
            .find(|f| f.path == key)
            .filter(|f| !f.state.ended() || f.state == state);
        if let Some(f) = found {
            let detail = detail();
            if f.state != state {
                f.since = since;
            }
            if !detail.is_empty() || f.state != state {
                f.detail = detail;
            }
            f.state = state;
            return;
        }
        self.next_id += 1;
        self.files.push_back(FolderFile {
            id: self.next_id,
            name: path
                .file_name()
                .map_or_else(|| key.clone(), |n| n.to_string_lossy().into_owned()),
            folder: path
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            path: key,
            state,
            detail: detail(),
            since,
            report: None,
        });
        if self.files.len() > KEPT
            && let Some(at) = self.files.iter().position(|f| f.state.ended())
        {
            self.files.remove(at);
        }
    }

    /// The watch is done with a file: filed, left, or to be tried again.
    fn ended(&mut self, outcome: &crate::service::FileOutcome) {
        let path = Path::new(&outcome.input);
        let state = match outcome.outcome {
            Filing::Done => FileState::Done,
            Filing::NeedsAttention => FileState::Attention,
            Filing::Left => FileState::Left,
            Filing::Failed => FileState::Failed,
        };
        let retrying = self
            .files
            .iter()
            .rev()
            .find(|f| f.path == outcome.input)
            .is_some_and(|f| matches!(f.state, FileState::Retrying | FileState::Awaiting));
        if !retrying {
            let keep = |f: &FolderFile| f.detail.clone();
            let detail = match (&outcome.error, &outcome.filed_in) {
                (Some(e), _) => e.clone(),
                (None, Some(dir)) => format!("{}; moved to {dir}", outcome.reason),
                (None, None) => self.last(&outcome.input).map(keep).unwrap_or_default(),
            };
            self.at(path, state, || detail);
        }
        if let Some(f) = self
            .files
            .iter_mut()
            .rev()
            .find(|f| f.path == outcome.input)
        {
            f.report = outcome.report.as_ref().map(PathBuf::from);
        }
    }

    fn last(&self, path: &str) -> Option<&FolderFile> {
        self.files.iter().rev().find(|f| f.path == path)
    }
}

/// The drop folders' page.
pub(super) async fn page_of(State(desk): State<Shared>, me: super::auth::Who) -> Response {
    let (dirs, watch, files) = now(&desk);
    page(FoldersPage {
        me,
        watching: desk.opts.folders.is_some(),
        dirs,
        watch,
        files,
    })
}

/// The files' table alone, for the page to refresh itself with.
pub(super) async fn table(State(desk): State<Shared>) -> Response {
    let (_, watch, files) = now(&desk);
    page(FolderTable { watch, files })
}

fn now(desk: &Shared) -> (Vec<String>, String, Vec<FolderFile>) {
    match &desk.opts.folders {
        Some(f) => f.now(),
        None => (Vec::new(), String::new(), Vec::new()),
    }
}

/// A folder file's report, wherever the watch put it.
pub(super) async fn report(State(desk): State<Shared>, UrlPath(id): UrlPath<u64>) -> Response {
    let path = desk.opts.folders.as_ref().and_then(|f| f.report(id));
    match path {
        Some(path) => super::files::attachment(&path),
        None => refused(StatusCode::NOT_FOUND, "No report for that file."),
    }
}

/// The drop folders a watch in the desk looks at, and their files.
#[derive(Template)]
#[template(path = "folders.html")]
pub struct FoldersPage {
    pub me: super::auth::Who,
    pub watching: bool,
    pub dirs: Vec<String>,
    /// How the watch is.
    pub watch: String,
    pub files: Vec<FolderFile>,
}

/// The folders' files alone (the page refreshes them).
#[derive(Template)]
#[template(path = "folders_table.html")]
pub struct FolderTable {
    pub watch: String,
    pub files: Vec<FolderFile>,
}
