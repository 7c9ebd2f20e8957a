//! Sending a sheet from the desk: the same engine as `submit` (its
//! ledger, rate limits and exactly-once rule), opened for the run and
//! closed after it, on a thread of its own so the run goes on when the
//! page is closed. What the page shows of it is a [`Run`], which the live
//! view reads.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::engine::{Api, Engine, Rate, Timeouts};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::service::watch::Handed;
use crate::service::{Event, FileOutcome, Output, Service};
use crate::stage::Sender;
use crate::submit::SubmitOpts;

/// Where and how the desk sends.
pub struct Sending {
    pub api: Api,
    pub submit: SubmitOpts,
    pub rate: Rate,
    pub timeouts: Timeouts,
}

impl Sending {
    /// `https://... as tenant ACME (profile uat)`, for the send button.
    pub fn destination(&self) -> String {
        let api = &self.api;
        let base = if api.is_sandbox() {
            "the built-in simulator".to_owned()
        } else {
            api.base_url.clone()
        };
        match &api.profile {
            Some(p) => format!("{base} as tenant {} (profile {p})", api.tenant),
            None => format!("{base} as tenant {}", api.tenant),
        }
    }
}

/// A sheet's run, as the page shows it.
#[derive(Default)]
pub struct Run {
    state: Mutex<RunState>,
    /// Each order's outcome as it came: (its group, its status).
    answered: Mutex<Vec<(usize, &'static str)>>,
    /// What is done when the run is over.
    over: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// Where a run is: its progress, and once ended what came of it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunState {
    pub total: u64,
    pub done: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Orders a second.
    pub rate: f64,
    /// Seconds left, once there is a rate.
    pub eta_s: Option<u64>,
    pub finished: bool,
    /// Why it has not begun yet.
    pub waiting: Option<String>,
    /// What came of the rows, in a line.
    pub summary: Option<String>,
    /// Why it could not be sent (or ended early).
    pub error: Option<String>,
    #[serde(skip)]
    pub report: Option<PathBuf>,
    #[serde(skip)]
    began: Option<Instant>,
}

impl Run {
    /// Has `then` done once the run is over (however it ends).
    pub fn when_over(&self, then: Box<dyn FnOnce() + Send>) {
        *self.over.lock().unwrap_or_else(|p| p.into_inner()) = Some(then);
    }

    /// The orders answered, from the `from`-th on.
    pub fn answered_since(&self, from: usize) -> Vec<(usize, &'static str)> {
        let a = self.answered.lock().unwrap_or_else(|p| p.into_inner());
        a.get(from..).map(<[_]>::to_vec).unwrap_or_default()
    }

    /// Each answered order's last outcome, by group.
    pub fn outcomes(&self) -> std::collections::HashMap<usize, &'static str> {
        self.answered_since(0).into_iter().collect()
    }

    /// The run as it is now.
    pub fn now(&self) -> RunState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn with(&self, f: impl FnOnce(&mut RunState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn tell(&self, event: Event<'_>) {
        self.with(|s| s.waiting = None);
        match event {
            Event::Sending { orders, .. } => self.with(|s| {
                s.total = orders;
                s.began = Some(Instant::now());
            }),
            Event::Progress { sent, .. } => self.with(|s| {
                (s.done, s.accepted, s.rejected, s.failed, s.skipped) = (
                    sent.done,
                    sent.accepted,
                    sent.rejected,
                    sent.failed,
                    sent.skipped,
                );
                let secs = s.began.map_or(0.0, |b| b.elapsed().as_secs_f64());
                s.rate = if secs > 0.0 {
                    s.done as f64 / secs
                } else {
                    0.0
                };
                s.eta_s = (s.rate > 0.0)
                    .then(|| (s.total.saturating_sub(s.done) as f64 / s.rate).ceil() as u64);
            }),
            Event::Finished { done, .. } => self.with(|s| {
                let sent = done.facts.sent.unwrap_or_default();
                s.done = s.total;
                // The last word on the orders: the batch's own counts.
                if let Some(o) = sent.orders {
                    (s.accepted, s.rejected, s.failed, s.skipped) = (
                        o.orders_accepted + o.orders_decided,
                        o.orders_rejected,
                        o.orders_failed,
                        o.orders_skipped,
                    );
                }
                s.summary = Some(summary(done));
            }),
            Event::Failed { error, .. } => self.with(|s| s.error = Some(error.to_string())),
            Event::Answered { orders, .. } => self
                .answered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(orders.into_iter().map(|(g, s)| (g, s.as_str()))),
            _ => {}
        }
    }
}

/// What came of a batch's rows, in a line.
pub fn summary(done: &crate::batch::Finished) -> String {
    let (c, sent) = (done.facts.counts, done.facts.sent.unwrap_or_default());
    format!(
        "{} rows: {} accepted, {} skipped (sent before), {} rejected, {} failed, {} conflict, {} invalid, {} held",
        c.rows,
        sent.accepted,
        sent.skipped,
        sent.rejected,
        sent.failed,
        sent.conflict,
        c.invalid,
        c.held
    )
}

/// Starts sending `job`'s ready orders on a thread of its own, its report
/// into `dir`; `run` follows it. With a watch in the desk (`handed`), the
/// watch's sender sends it in turn with the folders' files; else an engine
/// is opened for the run, and closed after it.
pub fn start(
    sending: Arc<Sending>,
    handed: Option<Sender<Handed>>,
    job: Arc<Job>,
    dir: PathBuf,
    run: Arc<Run>,
    approval: Option<serde_json::Value>,
) {
    let on_thread = run.clone();
    let started = crate::stage::apart("desk-send", move || {
        let out = Output {
            report_dir: Some(dir),
            ..Output::default()
        };
        let options = options(&job, approval);
        let outcome = match handed {
            Some(to) => send_in_turn(&to, job, out, options, &on_thread),
            None => send(&sending, &job, &out, options, &on_thread),
        };
        on_thread.end(outcome);
    });
    if let Err(e) = started {
        run.end(Err(Error::Internal(format!(
            "the run could not start: {e}"
        ))));
    }
}

/// What the clerk changed before sending, and who approved it, for the
/// record.
fn options(job: &Job, approval: Option<serde_json::Value>) -> serde_json::Value {
    match approval {
        Some(a) => serde_json::json!({ "edits": job.edits(), "approval": a }),
        None => serde_json::json!({ "edits": job.edits() }),
    }
}

/// Sends with an engine of the run's own.
fn send(
    sending: &Sending,
    job: &Job,
    out: &Output,
    options: serde_json::Value,
    run: &Run,
) -> Result<FileOutcome> {
    let busy = |e: crate::engine::Event<'_>| {
        if let crate::engine::Event::LedgerBusy { .. } = e {
            run.with(|s| s.waiting = Some(LEDGER_BUSY.into()));
        }
    };
    let engine = Engine::open(
        &sending.api,
        sending.submit.clone(),
        sending.rate,
        sending.timeouts,
        &busy,
    )?;
    let on = |e: Event<'_>| run.tell(e);
    let service = Service {
        engine: &engine,
        out,
        command: "desk",
        options,
        on: &on,
        gate: None,
    };
    let outcome = out
        .prepare()
        .and_then(|()| service.send(job, &crate::report::now()));
    engine
        .runtime
        .shutdown_timeout(std::time::Duration::from_secs(1));
    outcome
}

/// Hands the sheet to the watch's sender, and waits for what came of it.
fn send_in_turn(
    to: &Sender<Handed>,
    job: Arc<Job>,
    out: Output,
    options: serde_json::Value,
    run: &Arc<Run>,
) -> Result<FileOutcome> {
    run.with(|s| s.waiting = Some(IN_TURN.into()));
    let (answer, answered) = crate::stage::bounded(1);
    let on_run = run.clone();
    let handed = Handed {
        options,
        job,
        out,
        command: "desk",
        on: Box::new(move |e| on_run.tell(e)),
        answer,
    };
    let gone = || Error::Internal("the drop folders' watch has stopped: nothing is sent".into());
    to.send(handed).map_err(|_| gone())?;
    answered.recv().map_err(|_| gone())?
}

const LEDGER_BUSY: &str = "Waiting: another run (a submit, or a night's watch) is sending to this API; this one starts when it ends.";
const IN_TURN: &str =
    "Waiting its turn: the desk sends one sheet at a time, with the drop folders' files.";

impl Run {
    /// The run is over: what came of it.
    fn end(&self, outcome: Result<FileOutcome>) {
        self.with(|s| {
            match outcome {
                Ok(o) => {
                    s.report = o.report.map(PathBuf::from);
                    if let Some(e) = o.error {
                        s.error = Some(e);
                    }
                }
                Err(e) => s.error = Some(e.to_string()),
            }
            s.waiting = None;
            s.finished = true;
        });
        let then = self.over.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(then) = then {
            then();
        }
    }
}
