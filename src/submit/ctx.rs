//! What the workers of one run share: the client, the ledger's writer and
//! the run's id, the rate limit, the stop, and the counts that decide when
//! the API is unavailable or not the API at all.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use super::absence;
use super::http::{self, describe_answer};
use super::ledger::Writer;
use super::limit::Limiter;
use super::opts::SubmitOpts;
use super::outcome::Tally;
use super::retry::RetryPolicy;
use super::stop::{Stop, Stopper};
use crate::dcms::{Client, Failure, FailureKind};

/// Where the engine keeps its records: the ledger's writer and this run.
pub(super) struct Books {
    pub(super) writer: Writer,
    pub(super) run: i64,
}

/// What the workers share.
pub(super) struct Ctx {
    pub(super) client: Client,
    pub(super) books: Arc<Books>,
    pub(super) retry: RetryPolicy,
    pub(super) limiter: Limiter,
    /// Calls in flight at most (`--concurrency`): each call holds a place
    /// while it is made (not while its records are written, nor while it
    /// waits to try again).
    pub(super) calls: Arc<tokio::sync::Semaphore>,
    /// No call starts after this (`--deadline`).
    pub(super) deadline: Option<tokio::time::Instant>,
    pub(super) failures: AtomicU32,
    pub(super) max_failures: u32,
    /// Some call got an answer that is not a failure; and the last
    /// failure's words (see [`run`]'s end: no answer at all stops the run
    /// as the API unavailable, whatever the number of calls).
    pub(super) reached_once: AtomicBool,
    pub(super) last_failure: Mutex<Option<String>>,
    /// Answers in a row that were not DCMS envelopes, and whether any
    /// answer was one.
    pub(super) foreign: AtomicU32,
    pub(super) envelopes: AtomicBool,
    pub(super) tally: Arc<Tally>,
    pub(super) stopper: Arc<Stopper>,
    /// An item the ledger knows the API holds: the absence controls' known
    /// one (see [`absence`]).
    pub(super) known: Option<String>,
    /// What the absence controls proved, asked the first time a lookup's
    /// answer proved nothing by itself.
    pub(super) absence: tokio::sync::OnceCell<absence::Verdict>,
    /// The controls changed mid-run: nothing more is sent on their word.
    pub(super) absence_void: AtomicBool,
    /// Times the controls were asked for the run's calibration.
    pub(super) absence_tries: AtomicU32,
    /// Why the controls prove nothing, for the run's notes.
    pub(super) unproven: Mutex<Option<String>>,
}

impl Ctx {
    pub(super) fn new(
        client: Client,
        books: Arc<Books>,
        opts: &SubmitOpts,
        tally: Arc<Tally>,
        stopper: Arc<Stopper>,
        known: Option<String>,
    ) -> Self {
        Ctx {
            client,
            books,
            retry: opts.retry,
            limiter: Limiter::new(opts.rate, opts.burst),
            calls: Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1))),
            deadline: opts.deadline.map(|d| tokio::time::Instant::now() + d),
            failures: AtomicU32::new(0),
            max_failures: opts.max_failures.max(1),
            reached_once: AtomicBool::new(false),
            last_failure: Mutex::new(None),
            foreign: AtomicU32::new(0),
            envelopes: AtomicBool::new(false),
            tally,
            stopper,
            known,
            absence: tokio::sync::OnceCell::new(),
            absence_void: AtomicBool::new(false),
            absence_tries: AtomicU32::new(0),
            unproven: Mutex::new(None),
        }
    }

    /// A call got an answer that is not a failure: the API is there.
    fn reached(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.reached_once.store(true, Ordering::Relaxed);
    }

    /// A call was answered, not rate limited: the rate may climb back.
    fn answered(&self) {
        self.reached();
        self.limiter.passed();
    }

    /// A call was answered in the DCMS envelope.
    fn enveloped(&self) {
        self.envelopes.store(true, Ordering::Relaxed);
        self.foreign.store(0, Ordering::Relaxed);
    }

    /// A call's answer was not a DCMS envelope (and no gateway refusal,
    /// rate limit or server error): the first 5 of a run, or 10 in a row,
    /// mean the base URL is not the API's, and the run stops before any
    /// item is taken as refused.
    fn not_enveloped(&self, what: &str) {
        let n = self.foreign.fetch_add(1, Ordering::Relaxed) + 1;
        let limit = if self.envelopes.load(Ordering::Relaxed) {
            10
        } else {
            5
        };
        if n >= limit {
            self.stopper.stop(Stop::NotTheApi(format!(
                "{n} answers in a row, the last: {what}"
            )));
        }
    }

    /// A call got no answer: a refused login stops the run (nothing was
    /// sent), anything else counts as a failed call.
    fn no_answer(&self, f: &Failure) {
        if f.kind == FailureKind::Refused {
            self.stopper.stop(Stop::Refused(f.message.clone()));
        } else {
            self.failed(&f.message);
        }
    }

    /// A call failed (no answer, or 5xx); too many in a row stop the run.
    fn failed(&self, why: &str) {
        *lock(&self.last_failure) = Some(why.to_owned());
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.max_failures {
            self.stopper.stop(Stop::ApiUnavailable(format!(
                "{n} failed calls in a row, the last: {why}"
            )));
        }
    }
}

impl http::Caller for Ctx {
    fn client(&self) -> &Client {
        &self.client
    }

    fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    fn stopper(&self) -> &Stopper {
        &self.stopper
    }

    fn retry(&self) -> RetryPolicy {
        self.retry
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.deadline
    }

    /// The engine's counts: requests made, failures in a row, answers in
    /// the DCMS envelope or not.
    fn heard(&self, what: http::Heard<'_>) {
        match what {
            http::Heard::Request => {
                self.tally.requests.fetch_add(1, Ordering::Relaxed);
            }
            http::Heard::Answer(a) if a.envelope.is_some() => {
                self.answered();
                self.enveloped();
            }
            http::Heard::Answer(a) => {
                self.reached();
                self.not_enveloped(&describe_answer("an answer", a));
            }
            http::Heard::RateLimited(_) => self.reached(),
            http::Heard::Failed(why) => self.failed(why),
            http::Heard::NoAnswer(f) => self.no_answer(f),
        }
    }

    fn calls(&self) -> Option<&tokio::sync::Semaphore> {
        Some(&self.calls)
    }
}

/// Locks a mutex that no holder panics with.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) fn seed_of(order_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(order_id.as_bytes())
}
