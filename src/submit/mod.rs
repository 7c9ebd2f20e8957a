//! Submit: send a checked batch's ready orders with `POST /card-order`,
//! each exactly once. Workers on tokio, at most `concurrency` in flight and
//! one rate limit shared by all; retries only where they can help; every
//! request journaled before it goes out and every outcome after it comes
//! back (see `journal`). An order whose earlier request may have been
//! processed (a timeout, a broken connection, a 5xx, an interrupted run) is
//! looked up with `fetchStatus` before anything is sent again.
//!
//! It knows orders and the API, not sheets: the caller turns the outcomes
//! (one per order) into report rows.

mod journal;
mod retry;
pub mod status;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::dcms::{Answer, Client, Failure, FailureKind, FetchStatusRequest, OrderBody};

/// One kind of API call sent in bulk: how to name an item in the journal,
/// where to send it, and how to find out whether an earlier request for it
/// took effect. `submit` creates orders; `cancel` and `upgrade` are the
/// other operations on the same engine.
pub trait Operation: Send + Sync + 'static {
    /// What is sent: the request body.
    type Item: Serialize + Clone + Send + Sync + 'static;

    /// The item's journal key: unique within a batch.
    fn key(item: &Self::Item) -> String;

    /// The endpoint, e.g. `/card-order`.
    fn path(&self) -> &'static str;

    /// The request that finds out whether an earlier request for `item`
    /// took effect; `None` when the API has no way to tell.
    fn lookup(&self, item: &Self::Item) -> Option<(&'static str, Value)>;

    /// What the lookup's answer says.
    fn looked_up(&self, item: &Self::Item, answer: &Answer) -> Lookup;

    /// Whether a refusal means "already done" (a duplicate create), to be
    /// confirmed with the lookup.
    fn already_done(&self, status: u16, code: &str) -> bool {
        let _ = (status, code);
        false
    }

    /// Result fields worth keeping from an accepted answer (never secrets).
    fn accepted(&self, answer: &Answer) -> BTreeMap<String, String> {
        let _ = answer;
        BTreeMap::new()
    }
}

/// `POST /card-order`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOrders;

impl Operation for CreateOrders {
    type Item = OrderBody;

    fn key(item: &OrderBody) -> String {
        item.order_id.clone()
    }

    fn path(&self) -> &'static str {
        "/card-order"
    }

    fn lookup(&self, item: &OrderBody) -> Option<(&'static str, Value)> {
        let body = FetchStatusRequest {
            card_order_id: item.order_id.clone(),
        };
        Some(("/card-order/fetchStatus", serde_json::to_value(body).ok()?))
    }

    fn looked_up(&self, _item: &OrderBody, answer: &Answer) -> Lookup {
        match order_status(answer) {
            Ok(Some(status)) => {
                Lookup::Found(format!("fetchStatus finds the order (status {status})"))
            }
            Ok(None) => Lookup::Missing,
            Err(e) => Lookup::Failed(e),
        }
    }

    fn already_done(&self, status: u16, code: &str) -> bool {
        is_duplicate(status, code)
    }
}

/// A `fetchStatus` answer: `Ok(Some(status))` when the order exists,
/// `Ok(None)` when the API does not know it.
pub fn order_status(answer: &Answer) -> Result<Option<String>, String> {
    let (code, messages) = exception_messages(answer);
    let envelope = answer.envelope.as_ref();
    if let Some(e) = envelope
        && e.exception.is_none()
        && (200..300).contains(&answer.status)
    {
        let status = e
            .result
            .as_ref()
            .and_then(|r| r.get("status"))
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN");
        return Ok(Some(status.to_owned()));
    }
    let c = code.to_ascii_lowercase();
    if answer.status == 404 || c.contains("not.found") || c.contains("not_found") {
        return Ok(None);
    }
    Err(format!(
        "fetchStatus: HTTP {} {code}: {}",
        answer.status,
        messages.join("; ")
    ))
}

pub use journal::{BatchKey, Journal, JournalError, Past, Record};
pub use retry::{Backoff, RetryPolicy};

/// What became of one order in a submit run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SendStatus {
    /// The API took it (or, looked up, already had it).
    Accepted,
    /// The API refused it with a business error; final.
    Rejected,
    /// No final answer (after retries, or not sent because the run
    /// stopped); safe to re-run.
    #[default]
    Failed,
    /// Accepted by an earlier run of the same batch; not sent again.
    Skipped,
}

impl SendStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SendStatus::Accepted => "ACCEPTED",
            SendStatus::Rejected => "REJECTED",
            SendStatus::Failed => "FAILED",
            SendStatus::Skipped => "SKIPPED",
        }
    }
}

/// An order's outcome with what an auditor needs: the API's code and
/// messages, the HTTP status, how many requests, when, how long.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    pub status: SendStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Create requests sent for the order, over all runs of the batch.
    #[serde(default)]
    pub attempts: u32,
    /// When the last create request went out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Result fields of an accepted answer (an upgrade's new kit...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub result: BTreeMap<String, String>,
}

/// Code given to orders a stopped run never sent.
pub const NOT_SUBMITTED: &str = "NOT_SUBMITTED";

/// How to send.
#[derive(Debug, Clone)]
pub struct SubmitOpts {
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Requests per second over all workers; `None`: no limit.
    pub rate: Option<f64>,
    pub retry: RetryPolicy,
    /// Stop after this many failed calls in a row (no answer, or 5xx).
    pub max_failures: u32,
    /// On an interrupt, how long answers in flight are waited for.
    pub drain: Duration,
}

impl Default for SubmitOpts {
    fn default() -> Self {
        SubmitOpts {
            concurrency: 8,
            rate: None,
            retry: RetryPolicy::default(),
            max_failures: 10,
            drain: Duration::from_secs(10),
        }
    }
}

/// Why a run stopped before sending everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Too many failed calls in a row.
    ApiUnavailable(String),
    /// 401 or 403: the token or tenant is refused.
    Refused(String),
    /// Ctrl-C (or SIGTERM).
    Interrupted,
    /// The journal cannot be written: nothing may be sent.
    Journal(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::ApiUnavailable(why) => write!(f, "the API is unavailable ({why})"),
            Stop::Refused(why) => write!(f, "the API refuses us ({why})"),
            Stop::Interrupted => f.write_str("interrupted"),
            Stop::Journal(why) => write!(f, "the journal cannot be written ({why})"),
        }
    }
}

/// Tells every worker to stop; the first reason given wins.
#[derive(Debug)]
pub struct Stopper {
    reason: Mutex<Option<Stop>>,
    tx: watch::Sender<bool>,
}

impl Default for Stopper {
    fn default() -> Self {
        Stopper {
            reason: Mutex::new(None),
            tx: watch::channel(false).0,
        }
    }
}

impl Stopper {
    pub fn stop(&self, why: Stop) {
        let mut reason = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if reason.is_none() {
            *reason = Some(why);
        }
        drop(reason);
        self.tx.send_replace(true);
    }

    pub fn reason(&self) -> Option<Stop> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn is_stopped(&self) -> bool {
        *self.tx.borrow()
    }

    /// Completes when a stop is asked for.
    pub async fn stopped(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Running counts, read by the progress display.
#[derive(Debug, Default)]
pub struct Tally {
    pub orders: AtomicU64,
    pub done: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    pub skipped: AtomicU64,
    /// HTTP requests made (creates and lookups).
    pub requests: AtomicU64,
}

impl Tally {
    fn count(&self, sent: &Sent) {
        let which = match sent.status {
            SendStatus::Accepted => &self.accepted,
            SendStatus::Rejected => &self.rejected,
            SendStatus::Failed => &self.failed,
            SendStatus::Skipped => &self.skipped,
        };
        which.fetch_add(1, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends `orders` with `op`; returns one outcome per item, in the order
/// given. Items must have distinct keys.
#[expect(
    clippy::too_many_arguments,
    reason = "the run's parts, each shared differently"
)]
pub async fn run<O: Operation>(
    op: Arc<O>,
    client: Client,
    journal: Arc<Journal>,
    past: HashMap<String, Past>,
    orders: Vec<O::Item>,
    opts: &SubmitOpts,
    tally: Arc<Tally>,
    stopper: Arc<Stopper>,
) -> Vec<Sent> {
    tally.orders.store(orders.len() as u64, Ordering::Relaxed);
    let mut out: Vec<Option<Sent>> = vec![None; orders.len()];

    // Plan first: one line per new order, synced in large groups.
    let at = crate::report::now();
    let mut new = orders.iter().map(O::key).filter(|k| !past.contains_key(k));
    loop {
        let chunk: Vec<Record> = new
            .by_ref()
            .take(10_000)
            .map(|order| Record::Planned {
                order,
                at: at.clone(),
            })
            .collect();
        if chunk.is_empty() {
            break;
        }
        if let Err(e) = journal.record(&chunk).await {
            stopper.stop(Stop::Journal(e.to_string()));
            break;
        }
    }

    let ctx = Arc::new(Ctx {
        client,
        journal,
        retry: opts.retry,
        limiter: Limiter::new(opts.rate),
        failures: AtomicU32::new(0),
        max_failures: opts.max_failures.max(1),
        tally: tally.clone(),
        stopper: stopper.clone(),
    });
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut workers: JoinSet<(usize, Sent)> = JoinSet::new();
    let mut unknown_before: HashMap<usize, u32> = HashMap::new();
    let store = |out: &mut Vec<Option<Sent>>, i: usize, sent: Sent| {
        tally.count(&sent);
        out[i] = Some(sent);
    };

    for (i, order) in orders.into_iter().enumerate() {
        let (lookup_first, prior) = match past.get(&O::key(&order)) {
            Some(Past::Accepted(earlier)) => {
                let skipped = Sent {
                    status: SendStatus::Skipped,
                    ..earlier.clone()
                };
                store(&mut out, i, skipped);
                continue;
            }
            Some(Past::Rejected(earlier)) => {
                store(&mut out, i, earlier.clone());
                continue;
            }
            Some(Past::Unknown { attempts }) => (true, *attempts),
            None => (false, 0),
        };
        unknown_before.insert(i, prior);
        if stopper.is_stopped() {
            store(&mut out, i, not_submitted(&stopper, prior, lookup_first));
            continue;
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.ok(),
            () = stopper.stopped() => None,
        };
        let Some(permit) = permit else {
            store(&mut out, i, not_submitted(&stopper, prior, lookup_first));
            continue;
        };
        let ctx = ctx.clone();
        let op = op.clone();
        workers.spawn(async move {
            let sent = send_one(&*op, &ctx, &order, lookup_first, prior).await;
            drop(permit);
            (i, sent)
        });
        while let Some(done) = workers.try_join_next() {
            if let Ok((i, sent)) = done {
                store(&mut out, i, sent);
            }
        }
    }

    // Wait for the workers; after an interrupt, only for a while.
    let drain = async {
        while let Some(done) = workers.join_next().await {
            if let Ok((i, sent)) = done {
                store(&mut out, i, sent);
            }
        }
    };
    let interrupted = async {
        let mut rx = stopper.tx.subscribe();
        let _ = rx
            .wait_for(|_| matches!(stopper.reason(), Some(Stop::Interrupted)))
            .await;
        tokio::time::sleep(opts.drain).await;
    };
    tokio::select! {
        () = drain => {}
        () = interrupted => {}
    }
    workers.abort_all();
    while let Some(done) = workers.join_next().await {
        if let Ok((i, sent)) = done {
            store(&mut out, i, sent);
        }
    }

    // Orders whose worker was cut off mid-request.
    out.into_iter()
        .enumerate()
        .map(|(i, sent)| {
            sent.unwrap_or_else(|| {
                let sent = Sent {
                    status: SendStatus::Failed,
                    error_code: Some("OUTCOME_UNKNOWN".into()),
                    messages: vec![
                        "stopped while a request was in flight; the re-run checks with fetchStatus before sending again"
                            .into(),
                    ],
                    attempts: unknown_before.get(&i).copied().unwrap_or(0) + 1,
                    ..Sent::default()
                };
                tally.count(&sent);
                sent
            })
        })
        .collect()
}

fn not_submitted(stopper: &Stopper, prior: u32, uncertain: bool) -> Sent {
    let why = stopper
        .reason()
        .map_or_else(|| "the run stopped".to_string(), |r| r.to_string());
    let mut message = format!("not submitted: {why}; re-run to send");
    if uncertain {
        message.push_str(" (an earlier run's request may have arrived: the re-run checks first)");
    }
    Sent {
        status: SendStatus::Failed,
        error_code: Some(NOT_SUBMITTED.into()),
        messages: vec![message],
        attempts: prior,
        ..Sent::default()
    }
}

/// What the workers share.
struct Ctx {
    client: Client,
    journal: Arc<Journal>,
    retry: RetryPolicy,
    limiter: Limiter,
    failures: AtomicU32,
    max_failures: u32,
    tally: Arc<Tally>,
    stopper: Arc<Stopper>,
}

impl Ctx {
    /// A call got an answer that is not a failure: the API is there.
    fn reached(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    /// A call failed (no answer, or 5xx); too many in a row stop the run.
    fn failed(&self, why: &str) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.max_failures {
            self.stopper.stop(Stop::ApiUnavailable(format!(
                "{n} failed calls in a row, the last: {why}"
            )));
        }
    }

    /// Waits for the rate limit; `false` if the run stops meanwhile.
    async fn turn(&self) -> bool {
        tokio::select! {
            () = self.limiter.acquire() => !self.stopper.is_stopped(),
            () = self.stopper.stopped() => false,
        }
    }

    /// Sleeps; `false` if the run stops meanwhile.
    async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => !self.stopper.is_stopped(),
            () = self.stopper.stopped() => false,
        }
    }
}

/// One shared rate limit: evenly spaced turns.
struct Limiter {
    interval: Option<tokio::sync::Mutex<tokio::time::Interval>>,
}

impl Limiter {
    fn new(rate: Option<f64>) -> Limiter {
        let interval = rate.filter(|r| *r > 0.0).map(|r| {
            let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tokio::sync::Mutex::new(i)
        });
        Limiter { interval }
    }

    async fn acquire(&self) {
        if let Some(i) = &self.interval {
            i.lock().await.tick().await;
        }
    }
}

/// What an answer to a create means.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Accepted,
    /// The API already has an order with this id.
    Duplicate,
    Rejected {
        code: String,
        messages: Vec<String>,
    },
    /// 401 or 403.
    Refused(String),
    /// Worth another try. `ambiguous`: the request may have been processed.
    Retry {
        ambiguous: bool,
        wait: Option<Duration>,
        error: String,
        /// No answer at all, or a 5xx: counts towards `--max-failures`.
        failure: bool,
    },
}

/// Whether an error code (or the HTTP status) says "this order id exists".
/// The docs are silent on duplicates; the sandbox answers 409
/// `order.already.exists`.
fn is_duplicate(status: u16, code: &str) -> bool {
    let code = code.to_ascii_lowercase();
    status == 409 || code.contains("already.exists") || code.contains("duplicate")
}

/// Masks anything that looks like a full card number (13 to 19 digits in a
/// row) to its first 6 and last 4 digits: `608040XXXXXX6384`. API answers
/// pass through this before they reach a report or the console.
pub fn mask_card_numbers(text: &str) -> std::borrow::Cow<'_, str> {
    static PAN: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\b\d{13,19}\b").expect("a valid pattern"));
    PAN.replace_all(text, |c: &regex::Captures<'_>| {
        let d = &c[0];
        format!(
            "{}{}{}",
            &d[..6],
            "X".repeat(d.len() - 10),
            &d[d.len() - 4..]
        )
    })
}

fn exception_messages(answer: &Answer) -> (String, Vec<String>) {
    let (code, messages) = raw_exception_messages(answer);
    (
        mask_card_numbers(&code).into_owned(),
        messages
            .iter()
            .map(|m| mask_card_numbers(m).into_owned())
            .collect(),
    )
}

fn raw_exception_messages(answer: &Answer) -> (String, Vec<String>) {
    let Some(e) = answer.envelope.as_ref().and_then(|e| e.exception.as_ref()) else {
        let body = answer.other_body.clone().unwrap_or_default();
        return (
            format!("HTTP_{}", answer.status),
            vec![format!("HTTP {}: {}", answer.status, body.trim())],
        );
    };
    let code = e
        .error_code
        .clone()
        .unwrap_or_else(|| format!("HTTP_{}", answer.status));
    let mut messages = e.field_error.clone();
    if messages.is_empty() {
        messages.extend(
            [&e.short_message, &e.detail_message, &e.error_message]
                .into_iter()
                .flatten()
                .cloned(),
        );
    }
    (code, messages)
}

fn classify<O: Operation>(op: &O, result: &Result<Answer, Failure>) -> Verdict {
    let answer = match result {
        Ok(a) => a,
        Err(f) => {
            return Verdict::Retry {
                ambiguous: f.kind != FailureKind::Connect,
                wait: None,
                error: f.message.clone(),
                failure: true,
            };
        }
    };
    let status = answer.status;
    let exception = answer.envelope.as_ref().and_then(|e| e.exception.as_ref());
    match status {
        401 | 403 => {
            let (code, messages) = exception_messages(answer);
            return Verdict::Refused(format!("HTTP {status} {code}: {}", messages.join("; ")));
        }
        429 => {
            return Verdict::Retry {
                ambiguous: false,
                wait: answer.retry_after,
                error: "HTTP 429: rate limited".into(),
                failure: false,
            };
        }
        500..=599 => {
            let (code, messages) = exception_messages(answer);
            return Verdict::Retry {
                ambiguous: true,
                wait: answer.retry_after,
                error: format!("HTTP {status} {code}: {}", messages.join("; ")),
                failure: true,
            };
        }
        _ => {}
    }
    if exception.is_some() || (400..500).contains(&status) {
        let (code, messages) = exception_messages(answer);
        if op.already_done(status, &code) {
            return Verdict::Duplicate;
        }
        return Verdict::Rejected { code, messages };
    }
    if (200..300).contains(&status) && answer.envelope.is_some() {
        return Verdict::Accepted;
    }
    Verdict::Retry {
        ambiguous: true,
        wait: None,
        error: format!(
            "HTTP {status}: the answer is not a DCMS envelope: {}",
            answer.other_body.as_deref().unwrap_or("").trim()
        ),
        failure: true,
    }
}

/// Whether an earlier request for an item took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// It did; the text says how we know.
    Found(String),
    /// It did not: sending is safe.
    Missing,
    /// The lookup failed: do not send.
    Failed(String),
}

async fn lookup<O: Operation>(op: &O, ctx: &Ctx, item: &O::Item) -> Lookup {
    let Some((path, body)) = op.lookup(item) else {
        return Lookup::Failed(
            "the API has no way to tell whether the earlier request took effect".into(),
        );
    };
    let result = ctx.client.post(path, &body).await;
    ctx.tally.requests.fetch_add(1, Ordering::Relaxed);
    let answer = match result {
        Ok(a) => a,
        Err(f) => {
            ctx.failed(&f.message);
            return Lookup::Failed(format!("{path}: {}", f.message));
        }
    };
    let (code, _) = exception_messages(&answer);
    if answer.status == 401 || answer.status == 403 {
        let why = format!("HTTP {} {code}", answer.status);
        ctx.stopper.stop(Stop::Refused(why.clone()));
        return Lookup::Failed(format!("{path}: {why}"));
    }
    if answer.status >= 500 || answer.status == 429 {
        if answer.status >= 500 {
            ctx.failed(&format!("HTTP {}", answer.status));
        }
        return Lookup::Failed(format!("{path}: HTTP {} {code}", answer.status));
    }
    ctx.reached();
    op.looked_up(item, &answer)
}

fn seed_of(order_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(order_id.as_bytes())
}

/// Sends one item until it is accepted, refused, or out of attempts.
async fn send_one<O: Operation>(
    op: &O,
    ctx: &Ctx,
    order: &O::Item,
    lookup_first: bool,
    prior: u32,
) -> Sent {
    let key = O::key(order);
    let id = key.as_str();
    let mut backoff = ctx.retry.backoff(seed_of(id));
    let mut calls_left = ctx.retry.retries + 1;
    let mut attempts = prior;
    let mut uncertain = lookup_first;
    let mut duplicate_seen = false;
    let mut last = Sent {
        status: SendStatus::Failed,
        attempts,
        ..Sent::default()
    };
    let finish = |sent: Sent| async move {
        let record = Record::Done {
            order: id.to_owned(),
            sent: sent.clone(),
        };
        if let Err(e) = ctx.journal.record(&[record]).await {
            ctx.stopper.stop(Stop::Journal(e.to_string()));
        }
        sent
    };

    loop {
        if calls_left == 0 {
            return finish(last).await;
        }
        if uncertain {
            if !ctx.turn().await {
                return finish(stopped(ctx, last, attempts)).await;
            }
            calls_left -= 1;
            match lookup(op, ctx, order).await {
                Lookup::Found(how) => {
                    let why = if duplicate_seen {
                        "the API says it is done already (duplicate)"
                    } else {
                        "an earlier request took effect"
                    };
                    return finish(Sent {
                        status: SendStatus::Accepted,
                        error_code: None,
                        messages: vec![format!("{why}: {how}")],
                        attempts,
                        ..last
                    })
                    .await;
                }
                Lookup::Missing if duplicate_seen => {
                    return finish(Sent {
                        status: SendStatus::Failed,
                        error_code: Some("DUPLICATE_NOT_FOUND".into()),
                        messages: vec![
                            "the API says the order id exists, but fetchStatus does not find it"
                                .into(),
                        ],
                        attempts,
                        ..last
                    })
                    .await;
                }
                Lookup::Missing => uncertain = false,
                Lookup::Failed(error) => {
                    last.messages = vec![format!(
                        "{error}; the earlier request may have taken effect, so it was not sent again"
                    )];
                    last.error_code = Some("OUTCOME_UNKNOWN".into());
                    let wait = backoff.next().filter(|_| calls_left > 0);
                    let Some(wait) = wait else {
                        return finish(last).await;
                    };
                    if !ctx.pause(wait).await {
                        return finish(stopped(ctx, last, attempts)).await;
                    }
                    continue;
                }
            }
            if calls_left == 0 {
                return finish(last).await;
            }
        }

        if !ctx.turn().await {
            return finish(stopped(ctx, last, attempts)).await;
        }
        attempts += 1;
        calls_left -= 1;
        let at = crate::report::now();
        let record = Record::Sent {
            order: id.to_owned(),
            attempt: attempts,
            at: at.clone(),
        };
        if let Err(e) = ctx.journal.record(&[record]).await {
            ctx.stopper.stop(Stop::Journal(e.to_string()));
            return Sent {
                status: SendStatus::Failed,
                error_code: Some(NOT_SUBMITTED.into()),
                messages: vec![format!("not sent: {e}")],
                attempts: attempts - 1,
                ..Sent::default()
            };
        }
        let result = ctx.client.post(op.path(), order).await;
        ctx.tally.requests.fetch_add(1, Ordering::Relaxed);
        let (http_status, latency) = match &result {
            Ok(a) => (Some(a.status), a.latency),
            Err(f) => (None, f.latency),
        };
        let base = Sent {
            status: SendStatus::Failed,
            error_code: None,
            messages: Vec::new(),
            http_status,
            attempts,
            submitted_at: Some(at),
            latency_ms: Some(latency.as_millis() as u64),
            result: BTreeMap::new(),
        };
        match classify(op, &result) {
            Verdict::Accepted => {
                ctx.reached();
                let result = result.as_ref().map(|a| op.accepted(a)).unwrap_or_default();
                return finish(Sent {
                    status: SendStatus::Accepted,
                    result,
                    ..base
                })
                .await;
            }
            Verdict::Duplicate => {
                ctx.reached();
                duplicate_seen = true;
                uncertain = true;
                last = base;
                // The lookup needs a call of its own, even on the last attempt.
                calls_left = calls_left.max(1);
            }
            Verdict::Rejected { code, messages } => {
                ctx.reached();
                return finish(Sent {
                    status: SendStatus::Rejected,
                    error_code: Some(code),
                    messages,
                    ..base
                })
                .await;
            }
            Verdict::Refused(why) => {
                ctx.stopper.stop(Stop::Refused(why.clone()));
                return finish(Sent {
                    status: SendStatus::Failed,
                    error_code: Some("REFUSED".into()),
                    messages: vec![why],
                    ..base
                })
                .await;
            }
            Verdict::Retry {
                ambiguous,
                wait,
                error,
                failure,
            } => {
                if failure {
                    ctx.failed(&error);
                } else {
                    ctx.reached();
                }
                uncertain |= ambiguous;
                last = Sent {
                    error_code: Some(if http_status.is_some() {
                        format!("HTTP_{}", http_status.unwrap_or_default())
                    } else {
                        "NO_ANSWER".into()
                    }),
                    messages: vec![format!("{error} (after {attempts} attempts)")],
                    ..base
                };
                match backoff.next() {
                    Some(b) if calls_left > 0 => {
                        if !ctx.pause(ctx.retry.wait(b, wait)).await {
                            return finish(stopped(ctx, last, attempts)).await;
                        }
                    }
                    _ => return finish(last).await,
                }
            }
        }
    }
}

/// The outcome of an order whose run stopped while it was being worked on.
fn stopped(ctx: &Ctx, mut last: Sent, attempts: u32) -> Sent {
    let why = ctx
        .stopper
        .reason()
        .map_or_else(|| "the run stopped".to_string(), |r| r.to_string());
    last.status = SendStatus::Failed;
    last.attempts = attempts;
    if last.error_code.is_none() {
        last.error_code = Some(NOT_SUBMITTED.into());
    }
    last.messages.push(format!("{why}; re-run to finish"));
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcms::{ApiException, Envelope};

    fn answer(status: u16, exception: Option<(&str, &[&str])>) -> Result<Answer, Failure> {
        Ok(Answer {
            status,
            envelope: Some(match exception {
                None => Envelope::ok(Value::from("success")),
                Some((code, fields)) => Envelope::error(ApiException {
                    error_code: Some(code.into()),
                    field_error: fields.iter().map(|s| s.to_string()).collect(),
                    ..ApiException::default()
                }),
            }),
            other_body: None,
            retry_after: Some(Duration::from_secs(2)),
            latency: Duration::ZERO,
        })
    }

    fn failure(kind: FailureKind) -> Result<Answer, Failure> {
        Err(Failure {
            kind,
            message: "boom".into(),
            latency: Duration::ZERO,
        })
    }

    #[test]
    fn answers_mean_what_the_api_guide_says() {
        assert_eq!(
            classify(&CreateOrders, &answer(200, None)),
            Verdict::Accepted
        );
        // HTTP 200 with an exception is an error.
        assert_eq!(
            classify(
                &CreateOrders,
                &answer(200, Some(("ORD001", &["branchInfo is required"])))
            ),
            Verdict::Rejected {
                code: "ORD001".into(),
                messages: vec!["branchInfo is required".into()]
            }
        );
        assert!(matches!(
            classify(&CreateOrders, &answer(400, Some(("ORD001", &[])))),
            Verdict::Rejected { .. }
        ));
        assert_eq!(
            classify(
                &CreateOrders,
                &answer(409, Some(("order.already.exists", &[])))
            ),
            Verdict::Duplicate
        );
        assert_eq!(
            classify(
                &CreateOrders,
                &answer(200, Some(("order.already.exists", &[])))
            ),
            Verdict::Duplicate
        );
        assert!(matches!(
            classify(&CreateOrders, &answer(401, Some(("unauthorized", &[])))),
            Verdict::Refused(_)
        ));
        assert!(matches!(
            classify(&CreateOrders, &answer(403, None)),
            Verdict::Refused(_)
        ));
        assert!(matches!(
            classify(
                &CreateOrders,
                &answer(429, Some(("too.many.requests", &[])))
            ),
            Verdict::Retry {
                ambiguous: false,
                wait: Some(_),
                failure: false,
                ..
            }
        ));
        assert!(matches!(
            classify(
                &CreateOrders,
                &answer(503, Some(("service.unavailable", &[])))
            ),
            Verdict::Retry {
                ambiguous: true,
                failure: true,
                ..
            }
        ));
        assert!(matches!(
            classify(&CreateOrders, &failure(FailureKind::Connect)),
            Verdict::Retry {
                ambiguous: false,
                ..
            }
        ));
        assert!(matches!(
            classify(&CreateOrders, &failure(FailureKind::Timeout)),
            Verdict::Retry {
                ambiguous: true,
                ..
            }
        ));
        assert!(matches!(
            classify(&CreateOrders, &failure(FailureKind::Broken)),
            Verdict::Retry {
                ambiguous: true,
                ..
            }
        ));
        // A proxy's HTML page with 200 is not an acceptance.
        let html = Ok(Answer {
            status: 200,
            envelope: None,
            other_body: Some("<html>".into()),
            retry_after: None,
            latency: Duration::ZERO,
        });
        assert!(matches!(
            classify(&CreateOrders, &html),
            Verdict::Retry {
                ambiguous: true,
                ..
            }
        ));
    }

    #[test]
    fn full_card_numbers_are_masked() {
        assert_eq!(
            mask_card_numbers("card 6080401234566384 is blocked"),
            "card 608040XXXXXX6384 is blocked"
        );
        assert_eq!(
            mask_card_numbers("4111111111111111111"),
            "411111XXXXXXXXX1111"
        );
        // Kit numbers, account numbers and order ids stay.
        for kept in [
            "kit 4240000001",
            "account 8642135",
            "DCB-a50e708e61bb05c51b41",
            "2026-12-01",
        ] {
            assert_eq!(mask_card_numbers(kept), kept);
        }
    }

    #[test]
    fn the_first_stop_reason_wins() {
        let s = Stopper::default();
        assert!(!s.is_stopped());
        s.stop(Stop::Interrupted);
        s.stop(Stop::ApiUnavailable("x".into()));
        assert!(s.is_stopped());
        assert_eq!(s.reason(), Some(Stop::Interrupted));
    }
}
