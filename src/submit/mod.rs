//! Submit: the one batch engine for orders, cancels and upgrades. Each
//! item is sent exactly once: before anything goes out, the ledger (every
//! item ever planned for this API and tenant, see `ledger`) and, for
//! orders, the API's own inventory decide what already exists; workers on
//! tokio, at most `concurrency` in flight and one rate limit shared by all,
//! retry only where it can help; every request is in the ledger before it
//! goes out and every answer after it comes back. An item whose earlier
//! request may have been processed (a timeout, a broken connection, a 5xx,
//! an interrupted run) is looked up before anything is sent again, and only
//! an answer that returns this very item counts as evidence.
//!
//! It knows items and the API, not sheets: the caller turns the outcomes
//! (one per item) into report rows.

pub mod absence;
pub mod http;
pub mod ledger;
mod limit;
mod outcome;
mod retry;
pub mod status;
mod stop;

pub use http::mask_card_numbers;
use http::{clip, describe_answer, exception_messages};
pub use limit::{Limiter, Tier};
use outcome::request_uuid;
pub use outcome::{NOT_SUBMITTED, SendStatus, Sent};
pub use stop::{Stop, Stopper};

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::clock::Stamp;
use crate::dcms::{Answer, Client, Failure, FailureKind, FetchStatusRequest, OrderBody};

/// One kind of API call sent in bulk: how to name an item in the journal,
/// where to send it, and how to find out whether an earlier request for it
/// took effect. `submit` creates orders; `cancel` and `upgrade` are the
/// other operations on the same engine.
pub trait Operation: Send + Sync + 'static {
    /// What is sent: the request body.
    type Item: Serialize + Clone + Send + Sync + 'static;

    /// The kind of item in the ledger: `order`, `cancel`, `upgrade`.
    const KIND: &'static str;

    /// The item's ledger key: unique among items of its kind, over all runs.
    fn key(item: &Self::Item) -> String;

    /// A fingerprint of what the item asks for (an order's product lines),
    /// and a short description of it for messages. The same key with
    /// another fingerprint is a conflict, never sent.
    fn fingerprint(&self, item: &Self::Item) -> (String, String) {
        let text = serde_json::to_string(item).unwrap_or_default();
        (short_hash(&text), text)
    }

    /// The bulk lookup of what the API already holds, page `page` (from
    /// 1) of `keys`; `None` when the API has none for this kind.
    fn precheck(&self, keys: &[String], page: u32) -> Option<(&'static str, Value)> {
        let _ = (keys, page);
        None
    }

    /// What a bulk lookup page lists: each held item's key and what it
    /// holds, and how many pages there are; `Err` when the answer is not
    /// a well-formed listing.
    fn prechecked(&self, answer: &Answer) -> Result<(Vec<(String, Value)>, u32), String> {
        let _ = answer;
        Err("no bulk lookup".into())
    }

    /// How what the API holds differs from `item`; `None` when it is the
    /// same.
    fn differs(&self, item: &Self::Item, held: &Value) -> Option<String> {
        let _ = (item, held);
        None
    }

    /// The endpoint, e.g. `/card-order`.
    fn path(&self) -> &'static str;

    /// The request that finds out whether an earlier request for `item`
    /// took effect; `None` when the API has no way to tell.
    fn lookup(&self, item: &Self::Item) -> Option<(&'static str, Value)>;

    /// What the lookup's answer says.
    fn looked_up(&self, item: &Self::Item, answer: &Answer) -> Lookup;

    /// The lookup of an item by its key alone, for the absence controls
    /// (a made-up key, a key known to exist); `None` when this kind has no
    /// such lookup (then nothing is calibrated).
    fn lookup_key(&self, key: &str) -> Option<(&'static str, Value)> {
        let _ = key;
        None
    }

    /// Whether a lookup's answer shows an item held (any item: the known
    /// control's).
    fn shows_held(&self, answer: &Answer) -> bool {
        let _ = answer;
        false
    }

    /// Whether a refusal means "already done" (a duplicate create), to be
    /// confirmed with the lookup.
    fn already_done(&self, status: u16, code: &str) -> bool {
        let _ = (status, code);
        false
    }

    /// The report columns of [`Operation::accepted`]'s fields.
    const RESULTS: &'static [&'static str] = &[];

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

    const KIND: &'static str = "order";

    fn key(item: &OrderBody) -> String {
        item.order_id.clone()
    }

    /// The product lines, sorted: the same lines in another row order are
    /// the same order.
    fn fingerprint(&self, item: &OrderBody) -> (String, String) {
        let mut lines: Vec<String> = products_of(item)
            .iter()
            .map(|p| {
                format!(
                    "{} bin {} {} x{} plastic {} pan {} pin {}",
                    p.product_id,
                    p.bin,
                    p.card_type,
                    p.quantity,
                    p.plastic_code,
                    p.pan_length,
                    p.pin_generation
                )
            })
            .collect();
        lines.sort();
        let summary = lines.join("; ");
        (short_hash(&summary), summary)
    }

    fn precheck(&self, keys: &[String], page: u32) -> Option<(&'static str, Value)> {
        Some((
            "/inventory/fetchCardOrderDetailsFromInventory",
            serde_json::json!({
                "orderIds": keys,
                "pageNo": page,
                "pageSize": PRECHECK_PAGE,
            }),
        ))
    }

    fn prechecked(&self, answer: &Answer) -> Result<(Vec<(String, Value)>, u32), String> {
        let env = answer
            .envelope
            .as_ref()
            .filter(|e| e.exception.is_none() && (200..300).contains(&answer.status))
            .ok_or_else(|| describe_answer("the inventory", answer))?;
        let Some(Value::Array(items)) = &env.result else {
            return Err(format!(
                "the inventory answered HTTP {} without a list of orders",
                answer.status
            ));
        };
        let mut held = Vec::with_capacity(items.len());
        for item in items {
            let Some(id) = item.get("orderId").and_then(Value::as_str) else {
                return Err("the inventory listed an order without an orderId".into());
            };
            held.push((id.to_owned(), item.clone()));
        }
        let pages = env
            .pagination
            .as_ref()
            .and_then(|p| p.get("totalPages"))
            .and_then(Value::as_u64)
            .unwrap_or(1);
        Ok((held, u32::try_from(pages).unwrap_or(u32::MAX)))
    }

    /// Compares product id, BIN and quantity, the fields both the inventory
    /// (`products[]`) and `fetchStatus` (`productDetails[]`) list.
    fn differs(&self, item: &OrderBody, held: &Value) -> Option<String> {
        let mut theirs = held_products(held)?;
        let mut ours: Vec<(String, String, u64)> = products_of(item)
            .iter()
            .map(|p| (p.product_id.clone(), p.bin.clone(), u64::from(p.quantity)))
            .collect();
        ours.sort();
        theirs.sort();
        if ours == theirs {
            return None;
        }
        let show = |v: &[(String, String, u64)]| {
            v.iter()
                .map(|(p, bin, q)| format!("{p} bin {bin} x{q}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        Some(format!(
            "the API holds it with products [{}], the sheet has [{}]",
            show(&theirs),
            show(&ours)
        ))
    }

    fn path(&self) -> &'static str {
        "/card-order"
    }

    fn lookup(&self, item: &OrderBody) -> Option<(&'static str, Value)> {
        self.lookup_key(&item.order_id)
    }

    fn lookup_key(&self, key: &str) -> Option<(&'static str, Value)> {
        let body = FetchStatusRequest {
            card_order_id: key.to_owned(),
        };
        Some(("/card-order/fetchStatus", serde_json::to_value(body).ok()?))
    }

    fn shows_held(&self, answer: &Answer) -> bool {
        matches!(order_status(answer), Ok(Some(_)))
    }

    fn looked_up(&self, item: &OrderBody, answer: &Answer) -> Lookup {
        match order_status(answer) {
            Ok(Some(status)) => {
                let result = answer.envelope.as_ref().and_then(|e| e.result.as_ref());
                if let Some(why) = result.and_then(|r| self.differs(item, r)) {
                    return Lookup::Conflict(format!("fetchStatus: {why}"));
                }
                Lookup::Found(format!("fetchStatus returns the order (status {status})"))
            }
            Ok(None) => Lookup::Missing,
            Err(e) => Lookup::Failed(e),
        }
    }

    fn already_done(&self, status: u16, code: &str) -> bool {
        is_duplicate(status, code)
    }
}

/// Order statuses a `fetchStatus` answer may name (the docs' five, and
/// CANCELLED, which the sandbox uses after a cancel).
pub const ORDER_STATUSES: [&str; 6] = [
    "RECEIVED",
    "PENDING",
    "PROCESSED",
    "SUCCESS",
    "FAILED",
    "CANCELLED",
];

/// Orders per page of the bulk inventory lookup.
pub const PRECHECK_PAGE: usize = 100;

/// What a `fetchStatus` answer proves.
///
/// - `Ok(Some(status))`: the order exists. Only a success envelope whose
///   `result` is an object naming a known order status says so.
/// - `Ok(None)`: the order is not there, safe to send. Only an answer in
///   the DCMS envelope whose exception code says "not found" (with HTTP
///   404, or any other status: business errors may come with 200) says so.
/// - `Err`: unknown. A 2xx with a `null` or empty result, a result of
///   another shape or an unknown status, a 404 without the envelope (a
///   web server's page: a wrong path), any other error. The order may
///   exist: it is neither sent nor counted accepted.
pub fn order_status(answer: &Answer) -> Result<Option<String>, String> {
    let (code, _) = exception_messages(answer);
    let Some(envelope) = answer.envelope.as_ref() else {
        return Err(describe_answer("fetchStatus", answer));
    };
    if envelope.exception.is_none() && (200..300).contains(&answer.status) {
        let status = envelope
            .result
            .as_ref()
            .and_then(|r| r.get("status"))
            .and_then(Value::as_str)
            .filter(|s| ORDER_STATUSES.contains(s));
        return match status {
            Some(s) => Ok(Some(s.to_owned())),
            None => Err(format!(
                "fetchStatus answered HTTP {} with {}, which does not prove the order exists or not",
                answer.status,
                match &envelope.result {
                    None | Some(Value::Null) => "a null result".to_string(),
                    Some(r) => format!("the result {}", clip(&r.to_string(), 120)),
                }
            )),
        };
    }
    let c = code.to_ascii_lowercase();
    if envelope.exception.is_some() && (c.contains("not.found") || c.contains("not_found")) {
        return Ok(None);
    }
    Err(describe_answer("fetchStatus", answer))
}

/// The first 32 hex digits of SHA-256: a fingerprint.
pub fn short_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

/// An order body's product lines.
fn products_of(item: &OrderBody) -> &[crate::dcms::Product] {
    &item.products
}

/// Product id, BIN and quantity of the products an API answer lists: the
/// inventory's `products[]` (`productId`, `bin`, `quantity`) or
/// fetchStatus's `productDetails[]` (`productId`, `binNumber`, `noOfCard`).
/// `None` when it lists none (nothing to compare).
fn held_products(held: &Value) -> Option<Vec<(String, String, u64)>> {
    let list = held
        .get("products")
        .or_else(|| held.get("productDetails"))?
        .as_array()?;
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    Some(
        list.iter()
            .map(|p| {
                let bin = text(p.get("bin").or_else(|| p.get("binNumber")));
                let qty = p
                    .get("quantity")
                    .or_else(|| p.get("noOfCard"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                (text(p.get("productId")), bin, qty)
            })
            .collect(),
    )
}

pub use ledger::{Destination, Ledger, LedgerError, Past, Record, RunRef, Writer};
pub use retry::{Backoff, RetryPolicy};

/// How to send.
#[derive(Debug, Clone)]
pub struct SubmitOpts {
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Requests per second over all workers; `None`: no limit.
    pub rate: Option<f64>,
    /// Requests at once within the rate [default: one second's worth].
    pub burst: Option<f64>,
    /// No call starts after this long; what is left is not sent (resumable).
    pub deadline: Option<Duration>,
    pub retry: RetryPolicy,
    /// Stop after this many failed calls in a row (no answer, or 5xx).
    pub max_failures: u32,
    /// On an interrupt, how long answers in flight are waited for.
    pub drain: Duration,
    /// Ask the API which orders it already holds before sending
    /// (`fetchCardOrderDetailsFromInventory`).
    pub precheck: bool,
}

impl Default for SubmitOpts {
    fn default() -> Self {
        SubmitOpts {
            concurrency: 8,
            rate: None,
            burst: None,
            deadline: None,
            retry: RetryPolicy::default(),
            max_failures: 10,
            drain: Duration::from_secs(10),
            precheck: true,
        }
    }
}

/// Running counts, read by the progress display.
#[derive(Debug, Default)]
pub struct Tally {
    pub done: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    pub skipped: AtomicU64,
    pub conflict: AtomicU64,
    pub decided: AtomicU64,
    /// HTTP requests made (creates and lookups).
    pub requests: AtomicU64,
    /// Things the user should know once (an endpoint the API lacks...).
    pub notes: Mutex<Vec<String>>,
}

impl Tally {
    fn note(&self, note: String) {
        self.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(note);
    }

    /// The notes so far, taken.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn count(&self, sent: &Sent) {
        let which = match sent.status {
            SendStatus::Accepted => &self.accepted,
            SendStatus::Rejected => &self.rejected,
            SendStatus::Failed => &self.failed,
            SendStatus::Skipped => &self.skipped,
            SendStatus::Conflict => &self.conflict,
            SendStatus::Decided => &self.decided,
        };
        which.fetch_add(1, Ordering::Relaxed);
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where the engine keeps its records: the ledger's writer and this run.
struct Books {
    writer: Writer,
    run: i64,
}

/// Items the engine takes at a time: the ledger and the API's inventory are
/// asked about a window, its items planned and sent, then the next is read.
/// Memory holds a window and the requests in flight, not the batch.
const WINDOW: usize = 1_000;

/// One batch through the engine on an open ledger. `produce` hands over
/// the items, each with its slot in the outcomes (an order's group, a
/// sheet's row), on a thread of its own while they are sent: it is told
/// `false` once the engine takes no more (then it should stop). Records the
/// run's start and returns its id with the outcomes, `slots` long (`None`
/// for a slot no item went to). The caller records the run's end
/// ([`Ledger::end_run`]) once its report is written.
#[expect(
    clippy::too_many_arguments,
    reason = "the run's parts, each shared differently"
)]
pub fn send_batch<O, P>(
    runtime: &tokio::runtime::Runtime,
    ledger: &Ledger,
    start: &ledger::RunStart<'_>,
    op: O,
    client: Client,
    slots: usize,
    produce: P,
    opts: &SubmitOpts,
    tally: Arc<Tally>,
    stopper: Arc<Stopper>,
) -> crate::error::Result<(i64, Vec<Option<Sent>>)>
where
    O: Operation,
    P: FnOnce(&mut (dyn FnMut(usize, O::Item) -> bool + Send)) -> crate::error::Result<()> + Send,
{
    let ledger_error = crate::error::Error::Ledger;
    let run_id = ledger.begin_run(start).map_err(ledger_error)?;
    let books = Arc::new(Books {
        writer: ledger.writer().map_err(ledger_error)?,
        run: run_id,
    });
    let (tx, rx) = tokio::sync::mpsc::channel(WINDOW);
    std::thread::scope(|scope| {
        let producer =
            scope.spawn(move || produce(&mut |slot, item| tx.blocking_send((slot, item)).is_ok()));
        let out = runtime.block_on(run(
            Arc::new(op),
            client,
            ledger,
            books,
            slots,
            rx,
            opts,
            tally,
            stopper,
        ));
        let produced = producer.join().unwrap_or_else(|_| {
            Err(crate::error::Error::Usage(
                "the item producer failed".into(),
            ))
        });
        produced?;
        Ok((run_id, out.map_err(ledger_error)?))
    })
}

/// What to do with one item before any request.
#[derive(Debug, Clone, PartialEq)]
enum Decision {
    /// Settled: this is its outcome; nothing is sent.
    Done(Sent),
    /// To send; `lookup_first` when an earlier request may have been
    /// processed. `prior`: requests sent before.
    Send { lookup_first: bool, prior: u32 },
}

/// What the ledger's record of an item decides, given the fingerprint of
/// what the sheet asks for now.
fn decide(kind: &str, key: &str, p: &Past, fp: &str, summary: &str) -> Decision {
    let same = p.fingerprint == fp;
    let status = p.outcome.as_ref().map(|o| o.status);
    let accepted = matches!(status, Some(SendStatus::Accepted | SendStatus::Skipped));
    match (status, p.outcome.as_ref()) {
        (_, Some(earlier)) if accepted && same => {
            let when = p.accepted_at.as_deref().unwrap_or("earlier");
            let by = p
                .accepted_run
                .as_ref()
                .map_or_else(|| "an earlier run".to_string(), RunRef::to_string);
            return Decision::Done(Sent {
                status: SendStatus::Skipped,
                error_code: None,
                messages: vec![format!("accepted {when} in {by}; not sent again")],
                ..earlier.clone()
            });
        }
        (Some(SendStatus::Rejected), Some(earlier)) if same && !p.uncertain => {
            return Decision::Done(earlier.clone());
        }
        // Refused for good: nothing was created, new content may go.
        (Some(SendStatus::Rejected), _) if !p.uncertain => {
            return Decision::Send {
                lookup_first: false,
                prior: p.attempts,
            };
        }
        (Some(SendStatus::Conflict | SendStatus::Decided), Some(earlier)) if same => {
            return Decision::Done(earlier.clone());
        }
        _ => {}
    }
    if !same && (p.attempts > 0 || p.uncertain || accepted) {
        let when = p.sent_at.as_deref().unwrap_or("earlier");
        let by = p
            .first_run
            .as_ref()
            .map_or_else(|| "an earlier run".to_string(), RunRef::to_string);
        let advice = if kind == "order" {
            "cancel the earlier order and order again with a new --batch-id, or fix the sheet to match it"
        } else {
            "check what the earlier request did, then fix the sheet"
        };
        return Decision::Done(Sent {
            status: SendStatus::Conflict,
            error_code: Some("CONFLICT".into()),
            messages: vec![format!(
                "{kind} {key} was already sent {when} by {by} with other content: then [{}], now [{summary}]; not sent: {advice}",
                p.summary
            )],
            attempts: p.attempts,
            submitted_at: p.sent_at.as_deref().and_then(Stamp::parse),
            ..Sent::default()
        });
    }
    Decision::Send {
        lookup_first: p.uncertain,
        prior: p.attempts,
    }
}

/// An item to send, after the ledger and the bulk lookup.
struct Todo<T> {
    slot: usize,
    item: T,
    lookup_first: bool,
    prior: u32,
}

/// Sends the items that arrive on `items`, a window at a time; returns
/// their outcomes by slot. Items must have distinct keys.
#[expect(
    clippy::too_many_arguments,
    reason = "the run's parts, each shared differently"
)]
async fn run<O: Operation>(
    op: Arc<O>,
    client: Client,
    ledger: &Ledger,
    books: Arc<Books>,
    slots: usize,
    mut items: tokio::sync::mpsc::Receiver<(usize, O::Item)>,
    opts: &SubmitOpts,
    tally: Arc<Tally>,
    stopper: Arc<Stopper>,
) -> Result<Vec<Option<Sent>>, LedgerError> {
    let mut out: Vec<Option<Sent>> = vec![None; slots];
    let store = |out: &mut Vec<Option<Sent>>, slot: usize, sent: Sent| {
        tally.count(&sent);
        out[slot] = Some(sent);
    };
    let ctx = Arc::new(Ctx {
        client,
        books: books.clone(),
        retry: opts.retry,
        limiter: Limiter::new(opts.rate, opts.burst),
        deadline: opts.deadline.map(|d| tokio::time::Instant::now() + d),
        failures: AtomicU32::new(0),
        max_failures: opts.max_failures.max(1),
        reached_once: AtomicBool::new(false),
        last_failure: Mutex::new(None),
        foreign: AtomicU32::new(0),
        envelopes: AtomicBool::new(false),
        tally: tally.clone(),
        stopper: stopper.clone(),
        known: if op.lookup_key("").is_some() {
            ledger.known_item(O::KIND)?
        } else {
            None
        },
        absence: tokio::sync::OnceCell::new(),
        absence_void: AtomicBool::new(false),
        absence_tries: AtomicU32::new(0),
        unproven: Mutex::new(None),
    });
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut workers: JoinSet<(usize, Sent)> = JoinSet::new();
    // Requests sent before, of the items in flight: a worker cut off
    // mid-request is one more.
    let mut in_flight: HashMap<usize, u32> = HashMap::new();
    let mut precheck_on = opts.precheck && op.precheck(&[], 1).is_some();
    let mut window: Vec<(usize, O::Item)> = Vec::with_capacity(WINDOW);

    while items.recv_many(&mut window, WINDOW).await > 0 {
        let todo = settle(
            &*op,
            &ctx,
            ledger,
            std::mem::take(&mut window),
            &mut precheck_on,
            &mut |slot, sent| store(&mut out, slot, sent),
        )
        .await?;
        for t in todo {
            if stopper.is_stopped() {
                store(
                    &mut out,
                    t.slot,
                    not_submitted(&stopper, t.prior, t.lookup_first),
                );
                continue;
            }
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p.ok(),
                () = stopper.stopped() => None,
            };
            let Some(permit) = permit else {
                store(
                    &mut out,
                    t.slot,
                    not_submitted(&stopper, t.prior, t.lookup_first),
                );
                continue;
            };
            in_flight.insert(t.slot, t.prior);
            let ctx = ctx.clone();
            let op = op.clone();
            workers.spawn(async move {
                let sent = send_one(&*op, &ctx, &t.item, t.lookup_first, t.prior).await;
                drop(permit);
                (t.slot, sent)
            });
            while let Some(done) = workers.try_join_next() {
                if let Ok((slot, sent)) = done {
                    in_flight.remove(&slot);
                    store(&mut out, slot, sent);
                }
            }
        }
    }

    // Wait for the workers; after an interrupt, only for a while.
    let drain = async {
        while let Some(done) = workers.join_next().await {
            if let Ok((slot, sent)) = done {
                in_flight.remove(&slot);
                store(&mut out, slot, sent);
            }
        }
    };
    let interrupted = async {
        stopper.interrupted().await;
        tokio::time::sleep(opts.drain).await;
    };
    tokio::select! {
        () = drain => {}
        () = interrupted => {}
    }
    workers.abort_all();
    while let Some(done) = workers.join_next().await {
        if let Ok((slot, sent)) = done {
            in_flight.remove(&slot);
            store(&mut out, slot, sent);
        }
    }

    // Not one call answered (refused connections, timeouts, 5xx only): the
    // API was unavailable, however few the calls; the rows stay FAILED for
    // the re-run.
    let last_failure = lock(&ctx.last_failure).clone();
    if let Some(why) = last_failure
        && !ctx.reached_once.load(Ordering::Relaxed)
    {
        stopper.stop(Stop::ApiUnavailable(format!(
            "no call got an answer; the last: {why}"
        )));
    }

    // Orders left in doubt while the lookup proved nothing: say why, and
    // what ends it.
    let in_doubt = out
        .iter()
        .flatten()
        .any(|s| s.error_code.as_deref() == Some("OUTCOME_UNKNOWN"));
    if in_doubt && let Some(why) = lock(&ctx.unproven).clone() {
        tally.note(format!(
            "the lookup's answers for {}s in doubt prove nothing: {why}; a re-run asks again, \
             and `dcms-bulk resolve ID --sent|--not-sent --reason TEXT` records a person's decision",
            O::KIND
        ));
    }

    // Items whose worker was cut off mid-request.
    for (slot, prior) in in_flight {
        let sent = Sent {
            status: SendStatus::Failed,
            error_code: Some("OUTCOME_UNKNOWN".into()),
            messages: vec![
                "stopped while a request was in flight; the re-run looks it up before sending again"
                    .into(),
            ],
            attempts: prior + 1,
            ..Sent::default()
        };
        store(&mut out, slot, sent);
    }
    Ok(out)
}

/// One window before any send: the ledger decides, then the API's own
/// records; what they settle goes to `done`, the rest is planned in the
/// ledger and returned to be sent.
async fn settle<O: Operation>(
    op: &O,
    ctx: &Ctx,
    ledger: &Ledger,
    window: Vec<(usize, O::Item)>,
    precheck_on: &mut bool,
    done: &mut dyn FnMut(usize, Sent),
) -> Result<Vec<Todo<O::Item>>, LedgerError> {
    let at = crate::clock::now();
    let planned = |item: &O::Item| {
        let (fingerprint, summary) = op.fingerprint(item);
        Record::Planned {
            kind: O::KIND,
            key: O::key(item),
            fingerprint,
            summary,
            run: ctx.books.run,
            at: at.clone(),
        }
    };

    // 1. The ledger decides, whatever file or batch the items came from.
    let keys: Vec<String> = window.iter().map(|(_, item)| O::key(item)).collect();
    let past = ledger.past(O::KIND, keys.iter().map(String::as_str))?;
    let mut todo = Vec::with_capacity(window.len());
    for ((slot, item), key) in window.into_iter().zip(keys) {
        // An item the ledger never saw is sent; only a known one needs its
        // fingerprint compared.
        let decision = match past.get(&key) {
            None => Decision::Send {
                lookup_first: false,
                prior: 0,
            },
            Some(p) => {
                let (fingerprint, summary) = op.fingerprint(&item);
                decide(O::KIND, &key, p, &fingerprint, &summary)
            }
        };
        match decision {
            Decision::Done(sent) => done(slot, sent),
            Decision::Send {
                lookup_first,
                prior,
            } => todo.push(Todo {
                slot,
                item,
                lookup_first,
                prior,
            }),
        }
    }
    if ctx.stopper.is_stopped() || todo.is_empty() {
        return Ok(todo);
    }

    // 2. The API's own records: what it holds is never sent again.
    if *precheck_on {
        let keys: Vec<String> = todo.iter().map(|t| O::key(&t.item)).collect();
        match precheck(op, ctx, &keys).await {
            Precheck::Held(held) => {
                let mut records = Vec::new();
                let mut answered = Vec::new();
                todo.retain_mut(|t| {
                    let key = O::key(&t.item);
                    let Some(listed) = held.get(&key) else {
                        // Not held: a well-formed listing proves no earlier
                        // request took effect.
                        t.lookup_first = false;
                        return true;
                    };
                    let sent = held_outcome(op, &t.item, &key, listed, t.prior);
                    // The planned record goes first: an answer needs its item.
                    records.push(planned(&t.item));
                    records.push(Record::Answered {
                        kind: O::KIND,
                        key,
                        sent: sent.clone(),
                        uncertain: false,
                        run: ctx.books.run,
                        at: at.clone(),
                    });
                    answered.push((t.slot, sent));
                    false
                });
                if !records.is_empty()
                    && let Err(e) = ctx.books.writer.record(records).await
                {
                    ctx.stopper.stop(Stop::Ledger(e.to_string()));
                }
                for (slot, sent) in answered {
                    done(slot, sent);
                }
            }
            Precheck::NotOffered(why) => {
                *precheck_on = false;
                ctx.tally.note(format!(
                    "the API does not offer the bulk order lookup ({why}); relying on the ledger alone"
                ));
            }
            Precheck::Failed(why) => ctx.stopper.stop(Stop::ApiUnavailable(format!(
                "the bulk lookup of what the API already holds failed: {why}; nothing more is sent (set `precheck = false` in the profile to send without it)"
            ))),
        }
    }

    // 3. Plan: one record per item to send, committed together.
    if !ctx.stopper.is_stopped() && !todo.is_empty() {
        let records = todo.iter().map(|t| planned(&t.item)).collect();
        if let Err(e) = ctx.books.writer.record(records).await {
            ctx.stopper.stop(Stop::Ledger(e.to_string()));
        }
    }
    Ok(todo)
}

/// The outcome of an item the API's inventory already holds (`listed`
/// once per order it has under the key).
fn held_outcome<O: Operation>(
    op: &O,
    item: &O::Item,
    key: &str,
    listed: &[Value],
    prior: u32,
) -> Sent {
    let mut sent = match listed.iter().find_map(|l| op.differs(item, l)) {
        Some(why) => Sent {
            status: SendStatus::Conflict,
            error_code: Some("CONFLICT".into()),
            messages: vec![format!(
                "the API already holds {} {key}, with other content: {why}; not sent",
                O::KIND
            )],
            attempts: prior,
            ..Sent::default()
        },
        None if prior > 0 => Sent {
            status: SendStatus::Accepted,
            messages: vec![format!(
                "an earlier request took effect: the API's inventory holds {key}"
            )],
            attempts: prior,
            ..Sent::default()
        },
        None => Sent {
            status: SendStatus::Skipped,
            messages: vec![format!(
                "the API's inventory already holds {key} (created by a run this ledger does not know: another machine, journal folder or spelling of the URL); not sent again"
            )],
            ..Sent::default()
        },
    };
    if listed.len() > 1
        && let Some(m) = sent.messages.first_mut()
    {
        m.push_str(&format!(" (it lists {} orders with this id)", listed.len()));
    }
    sent
}

/// What the bulk lookup found.
enum Precheck {
    /// The items the API holds, by key (an id created twice is listed twice).
    Held(HashMap<String, Vec<Value>>),
    /// The API has no such endpoint, or does not let us use it.
    NotOffered(String),
    /// It could not be asked (after retries): nothing may be sent.
    Failed(String),
}

/// Asks the API which of `keys` it holds, [`PRECHECK_PAGE`] keys a call,
/// following the pages of each answer.
async fn precheck<O: Operation>(op: &O, ctx: &Ctx, keys: &[String]) -> Precheck {
    let mut held: HashMap<String, Vec<Value>> = HashMap::new();
    for chunk in keys.chunks(PRECHECK_PAGE) {
        let mut page = 1u32;
        loop {
            let Some((path, body)) = op.precheck(chunk, page) else {
                return Precheck::NotOffered("no bulk lookup".into());
            };
            let answer = match http::read(ctx, path, &body, seed_of(path), &mut |_| {}).await {
                Ok(a) => a,
                Err(why) => return Precheck::Failed(why),
            };
            // No such endpoint, or refused with a business error: the API
            // does not offer it to us; the ledger decides. (A 403 is the
            // gateway refusing us, as for every call: the run stopped.)
            let refused = answer
                .envelope
                .as_ref()
                .is_some_and(|e| e.exception.is_some() && answer.status < 500);
            if matches!(answer.status, 404 | 405 | 501) || refused {
                return Precheck::NotOffered(describe_answer(path, &answer));
            }
            let (listed, pages) = match op.prechecked(&answer) {
                Ok(l) => l,
                Err(why) => return Precheck::Failed(why),
            };
            for (key, item) in listed {
                held.entry(key).or_default().push(item);
            }
            if page >= pages {
                break;
            }
            page += 1;
        }
    }
    Precheck::Held(held)
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
    books: Arc<Books>,
    retry: RetryPolicy,
    limiter: Limiter,
    /// No call starts after this (`--deadline`).
    deadline: Option<tokio::time::Instant>,
    failures: AtomicU32,
    max_failures: u32,
    /// Some call got an answer that is not a failure; and the last
    /// failure's words (see [`run`]'s end: no answer at all stops the run
    /// as the API unavailable, whatever the number of calls).
    reached_once: AtomicBool,
    last_failure: Mutex<Option<String>>,
    /// Answers in a row that were not DCMS envelopes, and whether any
    /// answer was one.
    foreign: AtomicU32,
    envelopes: AtomicBool,
    tally: Arc<Tally>,
    stopper: Arc<Stopper>,
    /// An item the ledger knows the API holds: the absence controls' known
    /// one (see [`absence`]).
    known: Option<String>,
    /// What the absence controls proved, asked the first time a lookup's
    /// answer proved nothing by itself.
    absence: tokio::sync::OnceCell<absence::Verdict>,
    /// The controls changed mid-run: nothing more is sent on their word.
    absence_void: AtomicBool,
    /// Times the controls were asked for the run's calibration.
    absence_tries: AtomicU32,
    /// Why the controls prove nothing, for the run's notes.
    unproven: Mutex<Option<String>>,
}

impl Ctx {
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

    /// Waits for the rate limit; `false` if the run stops meanwhile, or
    /// its deadline passes.
    async fn turn(&self) -> bool {
        http::turn(self).await
    }

    /// Sleeps; `false` if the run stops meanwhile.
    async fn pause(&self, wait: Duration) -> bool {
        http::pause(self, wait).await
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
    /// 429: not processed; not a failure, and not one of the tries.
    RateLimited {
        wait: Duration,
    },
    /// Worth another try. `ambiguous`: the request may have been processed.
    Retry {
        ambiguous: bool,
        wait: Option<Duration>,
        error: String,
        /// An answer that is not a DCMS envelope (see [`Ctx::not_enveloped`]).
        foreign: bool,
    },
}

/// Whether an error code (or the HTTP status) says "this order id exists".
/// The docs are silent on duplicates; the sandbox answers 409
/// `order.already.exists`.
fn is_duplicate(status: u16, code: &str) -> bool {
    let code = code.to_ascii_lowercase();
    status == 409 || code.contains("already.exists") || code.contains("duplicate")
}

fn classify<O: Operation>(
    op: &O,
    result: &Result<Answer, Failure>,
    meaning: http::Meaning,
) -> Verdict {
    let answer = match (meaning, result) {
        (http::Meaning::Answer, Ok(a)) => a,
        (http::Meaning::Refused(why), _) => return Verdict::Refused(why),
        (http::Meaning::RateLimited { wait }, _) => return Verdict::RateLimited { wait },
        (
            http::Meaning::Retry {
                ambiguous,
                wait,
                error,
            },
            _,
        ) => {
            return Verdict::Retry {
                ambiguous,
                wait,
                error,
                foreign: false,
            };
        }
        (http::Meaning::Answer, Err(f)) => {
            return Verdict::Retry {
                ambiguous: true,
                wait: None,
                error: f.message.clone(),
                foreign: false,
            };
        }
    };
    let status = answer.status;
    let exception = answer.envelope.as_ref().and_then(|e| e.exception.as_ref());
    // Not an answer of the API's (a web server's 404 page, a proxy's
    // login form): nothing to take as refused or accepted. A 2xx may hide
    // a processed request; anything else was not processed.
    if answer.envelope.is_none() {
        return Verdict::Retry {
            ambiguous: (200..300).contains(&status),
            wait: None,
            error: format!(
                "HTTP {status}, not a DCMS answer: {}",
                answer.other_body.as_deref().unwrap_or("").trim()
            ),
            foreign: true,
        };
    }
    if exception.is_some() || (400..500).contains(&status) {
        let (code, messages) = exception_messages(answer);
        if op.already_done(status, &code) {
            return Verdict::Duplicate;
        }
        return Verdict::Rejected { code, messages };
    }
    if (200..300).contains(&status) {
        return Verdict::Accepted;
    }
    // A 1xx or 3xx in an envelope: no documented meaning.
    Verdict::Retry {
        ambiguous: true,
        wait: None,
        error: format!("HTTP {status}: an answer with no documented meaning"),
        foreign: false,
    }
}

/// Whether an earlier request for an item took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// It did; the text says how we know.
    Found(String),
    /// It did not: sending is safe.
    Missing,
    /// The lookup failed or proves nothing: do not send.
    Failed(String),
    /// The API holds the item with other content: do not send.
    Conflict(String),
}

async fn lookup<O: Operation>(
    op: &O,
    ctx: &Ctx,
    item: &O::Item,
    request_id: &Mutex<Option<String>>,
) -> Lookup {
    let Some((path, body)) = op.lookup(item) else {
        return Lookup::Failed(
            "the API has no way to tell whether the earlier request took effect".into(),
        );
    };
    let seed = seed_of(&O::key(item));
    let answer = match http::read(ctx, path, &body, seed, &mut |rid| *lock(request_id) = rid).await
    {
        Ok(a) => a,
        Err(why) => return Lookup::Failed(why),
    };
    match op.looked_up(item, &answer) {
        Lookup::Failed(why) => calibrated_absence(op, ctx, &answer, &why)
            .await
            .unwrap_or(Lookup::Failed(why)),
        found => found,
    }
}

/// Records what the absence controls answered, and what it proved.
async fn record_controls<O: Operation>(ctx: &Ctx, controls: &absence::Controls, said: String) {
    tracing::info!(
        event = "absence",
        "lookup controls: {}; {said}",
        controls.describe()
    );
    let record = Record::Controls {
        kind: O::KIND,
        answers: controls.describe(),
        verdict: said,
        run: ctx.books.run,
        at: crate::clock::now(),
    };
    if let Err(e) = ctx.books.writer.record(vec![record]).await {
        ctx.stopper.stop(Stop::Ledger(e.to_string()));
    }
}

/// Asks the lookup for a made-up key and for `known`, each called until it
/// gets an answer to read (see [`http::read`]); then it counts as failed.
async fn ask_controls<O: Operation>(op: &O, ctx: &Ctx, known: Option<String>) -> absence::Controls {
    let ask = |key: String| async move {
        let (path, body) = op.lookup_key(&key).ok_or_else(|| "no lookup".to_string())?;
        http::read(ctx, path, &body, seed_of(&key), &mut |_| {}).await
    };
    let made_up = absence::made_up_id();
    let made_up_shape = ask(made_up.clone()).await.map(|a| absence::Shape::of(&a));
    let known = match known {
        None => None,
        Some(key) => {
            let answer = ask(key.clone())
                .await
                .map(|a| (absence::Shape::of(&a), op.shows_held(&a)));
            Some((key, answer))
        }
    };
    absence::Controls {
        made_up,
        made_up_shape,
        known,
    }
}

/// A lookup that proved nothing by itself, read against the absence
/// controls (see [`absence`]), asked the first time in a run: `Some(Missing)`
/// when its answer has the shape that means "not held" and the controls,
/// asked again, still say so; the calibration is void for the rest of the
/// run when they do not. `None`: the answer still proves nothing.
async fn calibrated_absence<O: Operation>(
    op: &O,
    ctx: &Ctx,
    answer: &Answer,
    why: &str,
) -> Option<Lookup> {
    op.lookup_key("")?;
    // Asked again (a few times a run) while the controls get no answer.
    let verdict = ctx
        .absence
        .get_or_try_init(|| async {
            if ctx.absence_tries.fetch_add(1, Ordering::Relaxed) >= 3 {
                return Err(());
            }
            let controls = ask_controls(op, ctx, ctx.known.clone()).await;
            let verdict = controls.verdict();
            let said = match &verdict {
                absence::Verdict::Calibrated(shape) => {
                    format!("calibrated: {shape} means not held")
                }
                absence::Verdict::Unproven(why) => {
                    *lock(&ctx.unproven) = Some(why.clone());
                    format!("unproven: {why}")
                }
            };
            record_controls::<O>(ctx, &controls, said).await;
            if controls.failed() {
                Err(())
            } else {
                Ok(verdict)
            }
        })
        .await;
    let Ok(absence::Verdict::Calibrated(shape)) = verdict else {
        return None;
    };
    if ctx.absence_void.load(Ordering::Relaxed) || absence::Shape::of(answer) != *shape {
        return None;
    }
    let controls = ask_controls(op, ctx, ctx.known.clone()).await;
    match controls.verdict() {
        _ if controls.failed() => Some(Lookup::Failed(format!(
            "{why}; the lookup's controls got no answer to compare it with"
        ))),
        absence::Verdict::Calibrated(now) if now == *shape => Some(Lookup::Missing),
        _ => {
            // Void for the rest of the run; said once.
            if !ctx.absence_void.swap(true, Ordering::Relaxed) {
                let said = format!(
                    "the lookup's controls changed mid-run ({}): nothing more is sent on the word of {shape}",
                    controls.describe()
                );
                *lock(&ctx.unproven) = Some(said.clone());
                record_controls::<O>(ctx, &controls, format!("void: {said}")).await;
            }
            Some(Lookup::Failed(format!(
                "{why}; the lookup's controls no longer tell it from an order that exists"
            )))
        }
    }
}

/// Locks a mutex that no holder panics with.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
    let mut limited = 0u32;
    let mut last = Sent {
        status: SendStatus::Failed,
        attempts,
        ..Sent::default()
    };
    // The last call's request id, and what the attempts got, kept with
    // the item's next record (no commit of their own).
    let request_id = Mutex::new(None::<String>);
    let attempted = Mutex::new(Vec::<Record>::new());
    let request_id = &request_id;
    let attempted = &attempted;
    let finish = |mut sent: Sent, uncertain: bool| async move {
        if sent.request_id.is_none() {
            sent.request_id = request_uuid(lock(request_id).as_deref());
        }
        let mut records = std::mem::take(&mut *lock(attempted));
        records.push(Record::Answered {
            kind: O::KIND,
            key: id.to_owned(),
            sent: sent.clone(),
            uncertain,
            run: ctx.books.run,
            at: crate::clock::now(),
        });
        if let Err(e) = ctx.books.writer.record(records).await {
            ctx.stopper.stop(Stop::Ledger(e.to_string()));
        }
        sent
    };

    loop {
        if calls_left == 0 {
            return finish(last, uncertain).await;
        }
        if uncertain {
            if ctx.stopper.is_stopped() {
                return finish(stopped(ctx, last, attempts), uncertain).await;
            }
            calls_left -= 1;
            match lookup(op, ctx, order, request_id).await {
                Lookup::Found(how) => {
                    let why = if duplicate_seen {
                        "the API says it is done already (duplicate)"
                    } else {
                        "an earlier request took effect"
                    };
                    return finish(
                        Sent {
                            status: SendStatus::Accepted,
                            error_code: None,
                            messages: vec![format!("{why}: {how}")],
                            attempts,
                            ..last
                        },
                        false,
                    )
                    .await;
                }
                Lookup::Conflict(why) => {
                    return finish(
                        Sent {
                            status: SendStatus::Conflict,
                            error_code: Some("CONFLICT".into()),
                            messages: vec![format!("{why}; not sent again")],
                            attempts,
                            ..last
                        },
                        false,
                    )
                    .await;
                }
                Lookup::Missing if duplicate_seen => {
                    return finish(
                        Sent {
                            status: SendStatus::Failed,
                            error_code: Some("DUPLICATE_NOT_FOUND".into()),
                            messages: vec![
                                "the API says the id exists, but the lookup does not find it; not sent again"
                                    .into(),
                            ],
                            attempts,
                            ..last
                        },
                        true,
                    )
                    .await;
                }
                Lookup::Missing => uncertain = false,
                // The lookup was retried as every read is (see
                // `http::read`): no answer, or an answer that proves
                // nothing. Not sent again; the re-run looks again.
                Lookup::Failed(error) => {
                    last.messages = vec![format!(
                        "{error}; the earlier request may have taken effect, so it was not sent again"
                    )];
                    last.error_code = Some("OUTCOME_UNKNOWN".into());
                    if ctx.stopper.is_stopped() {
                        return finish(stopped(ctx, last, attempts), uncertain).await;
                    }
                    return finish(last, uncertain).await;
                }
            }
            if calls_left == 0 {
                return finish(last, uncertain).await;
            }
        }

        if !ctx.turn().await {
            return finish(stopped(ctx, last, attempts), uncertain).await;
        }
        attempts += 1;
        calls_left -= 1;
        let at = Stamp::now();
        let mut records = std::mem::take(&mut *lock(attempted));
        records.push(Record::Sent {
            kind: O::KIND,
            key: id.to_owned(),
            attempt: attempts,
            run: ctx.books.run,
            at: at.to_string(),
        });
        if let Err(e) = ctx.books.writer.record(records).await {
            ctx.stopper.stop(Stop::Ledger(e.to_string()));
            return Sent {
                status: SendStatus::Failed,
                error_code: Some(NOT_SUBMITTED.into()),
                messages: vec![format!("not sent: {e}")],
                attempts: attempts - 1,
                ..Sent::default()
            };
        }
        let (result, meaning) = http::call(ctx, op.path(), order, limited).await;
        let (http_status, latency, rid, answer_rid) = match &result {
            Ok(a) => (
                Some(a.status),
                a.latency,
                Some(a.request_id.clone()),
                a.answer_request_id.clone(),
            ),
            Err(f) => (None, f.latency, f.request_id.clone(), None),
        };
        *lock(request_id) = rid.clone();
        lock(attempted).push(Record::Attempted {
            kind: O::KIND,
            key: id.to_owned(),
            attempt: attempts,
            request_id: rid.clone(),
            answer_request_id: answer_rid,
            http_status,
        });
        let base = Sent {
            status: SendStatus::Failed,
            error_code: None,
            messages: Vec::new(),
            http_status,
            attempts,
            submitted_at: Some(at),
            latency_ms: Some(latency.as_millis() as u64),
            result: BTreeMap::new(),
            request_id: request_uuid(rid.as_deref()),
        };
        match classify(op, &result, meaning) {
            Verdict::Accepted => {
                let result = result.as_ref().map(|a| op.accepted(a)).unwrap_or_default();
                return finish(
                    Sent {
                        status: SendStatus::Accepted,
                        result,
                        ..base
                    },
                    false,
                )
                .await;
            }
            Verdict::Duplicate => {
                duplicate_seen = true;
                uncertain = true;
                last = base;
                // The lookup needs a call of its own, even on the last attempt.
                calls_left = calls_left.max(1);
            }
            Verdict::Rejected { code, messages } => {
                return finish(
                    Sent {
                        status: SendStatus::Rejected,
                        error_code: Some(code),
                        messages,
                        ..base
                    },
                    false,
                )
                .await;
            }
            Verdict::RateLimited { .. } => {
                // Not one of the tries: the call was not processed (the
                // limiter waits, see `http::call`).
                calls_left += 1;
                limited += 1;
                last = Sent {
                    error_code: Some("HTTP_429".into()),
                    messages: vec![format!(
                        "HTTP 429: rate limited {limited} times; not processed, a re-run sends it"
                    )],
                    ..base
                };
                if limited >= http::MAX_RATE_LIMITED {
                    return finish(last, uncertain).await;
                }
            }
            // The gateway refused the call: it was not processed (and the
            // run stops, see `http::call`).
            Verdict::Refused(why) => {
                return finish(
                    Sent {
                        status: SendStatus::Failed,
                        error_code: Some("REFUSED".into()),
                        messages: vec![format!("{why}; not processed, a re-run sends it")],
                        ..base
                    },
                    uncertain,
                )
                .await;
            }
            Verdict::Retry {
                ambiguous,
                wait,
                error,
                foreign,
            } => {
                limited = 0;
                uncertain |= ambiguous;
                last = Sent {
                    error_code: Some(match http_status {
                        // Not processed by DCMS: a re-run sends it.
                        _ if foreign && !uncertain => NOT_SUBMITTED.into(),
                        Some(h) => format!("HTTP_{h}"),
                        None => "NO_ANSWER".into(),
                    }),
                    messages: vec![if uncertain {
                        format!(
                            "{error} (after {attempts} attempts); it may have been processed: the re-run looks it up before sending again"
                        )
                    } else {
                        format!("{error} (after {attempts} attempts)")
                    }],
                    ..base
                };
                match backoff.next() {
                    Some(b) if calls_left > 0 => {
                        if !ctx.pause(ctx.retry.wait(b, wait)).await {
                            return finish(stopped(ctx, last, attempts), uncertain).await;
                        }
                    }
                    _ => return finish(last, uncertain).await,
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
            request_id: String::new(),
            answer_request_id: None,
        })
    }

    fn failure(kind: FailureKind) -> Result<Answer, Failure> {
        Err(Failure {
            kind,
            message: "boom".into(),
            latency: Duration::ZERO,
            request_id: None,
        })
    }

    fn verdict(result: &Result<Answer, Failure>) -> Verdict {
        classify(&CreateOrders, result, http::meaning(result, 0))
    }

    #[test]
    fn answers_mean_what_the_api_guide_says() {
        assert_eq!(verdict(&answer(200, None)), Verdict::Accepted);
        // HTTP 200 with an exception is an error.
        assert_eq!(
            verdict(&answer(200, Some(("ORD001", &["branchInfo is required"])))),
            Verdict::Rejected {
                code: "ORD001".into(),
                messages: vec!["branchInfo is required".into()]
            }
        );
        assert!(matches!(
            verdict(&answer(400, Some(("ORD001", &[])))),
            Verdict::Rejected { .. }
        ));
        assert_eq!(
            verdict(&answer(409, Some(("order.already.exists", &[])))),
            Verdict::Duplicate
        );
        assert_eq!(
            verdict(&answer(200, Some(("order.already.exists", &[])))),
            Verdict::Duplicate
        );
        assert!(matches!(
            verdict(&answer(401, Some(("unauthorized", &[])))),
            Verdict::Refused(_)
        ));
        assert!(matches!(verdict(&answer(403, None)), Verdict::Refused(_)));
        assert!(matches!(
            verdict(&answer(429, Some(("too.many.requests", &[])))),
            Verdict::RateLimited { .. }
        ));
        assert!(matches!(
            verdict(&failure(FailureKind::Refused)),
            Verdict::Refused(_)
        ));
        assert!(matches!(
            verdict(&answer(503, Some(("service.unavailable", &[])))),
            Verdict::Retry {
                ambiguous: true,
                ..
            }
        ));
        assert!(matches!(
            verdict(&failure(FailureKind::Connect)),
            Verdict::Retry {
                ambiguous: false,
                ..
            }
        ));
        assert!(matches!(
            verdict(&failure(FailureKind::Timeout)),
            Verdict::Retry {
                ambiguous: true,
                ..
            }
        ));
        assert!(matches!(
            verdict(&failure(FailureKind::Broken)),
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
            request_id: String::new(),
            answer_request_id: None,
        });
        assert!(matches!(
            verdict(&html),
            Verdict::Retry {
                ambiguous: true,
                foreign: true,
                ..
            }
        ));
        // A web server's 404 page is not the API refusing the order.
        let page = html.map(|a| Answer { status: 404, ..a });
        assert!(matches!(
            verdict(&page),
            Verdict::Retry {
                ambiguous: false,
                foreign: true,
                ..
            }
        ));
    }

    #[test]
    fn the_ledger_decides_by_outcome_and_fingerprint() {
        let run = RunRef {
            id: 3,
            input: "a.csv".into(),
            started_at: "t0".into(),
        };
        let past = |status: Option<SendStatus>, fp: &str, attempts: u32, uncertain: bool| Past {
            fingerprint: fp.into(),
            summary: "P1 x10".into(),
            attempts,
            outcome: status.map(|status| Sent {
                status,
                attempts,
                ..Sent::default()
            }),
            uncertain,
            first_run: Some(run.clone()),
            accepted_run: Some(run.clone()),
            accepted_at: Some("t1".into()),
            sent_at: Some("t1".into()),
        };
        let decide = |p: &Past, fp: &str| decide("order", "O1", p, fp, "P1 x11");
        let send = |lookup_first, prior| Decision::Send {
            lookup_first,
            prior,
        };
        // Accepted with the same lines: skipped, naming the run.
        match decide(&past(Some(SendStatus::Accepted), "f", 1, false), "f") {
            Decision::Done(s) => {
                assert_eq!(s.status, SendStatus::Skipped);
                assert!(s.messages[0].contains("t1 in run 3 of a.csv"), "{s:?}");
            }
            other => panic!("{other:?}"),
        }
        // Accepted, sent or unknown with other lines: a conflict.
        for p in [
            past(Some(SendStatus::Accepted), "f", 1, false),
            past(Some(SendStatus::Failed), "f", 2, false),
            past(None, "f", 1, true),
        ] {
            match decide(&p, "g") {
                Decision::Done(s) => {
                    assert_eq!(s.status, SendStatus::Conflict);
                    assert!(s.messages[0].contains("then [P1 x10], now [P1 x11]"));
                }
                other => panic!("{other:?}"),
            }
        }
        // Refused for good: the same lines are reported again, new ones sent.
        let rejected = past(Some(SendStatus::Rejected), "f", 1, false);
        assert!(
            matches!(decide(&rejected, "f"), Decision::Done(s) if s.status == SendStatus::Rejected)
        );
        assert_eq!(decide(&rejected, "g"), send(false, 1));
        // Unknown: looked up first; safely failed or only planned: sent.
        assert_eq!(decide(&past(None, "f", 1, true), "f"), send(true, 1));
        assert_eq!(
            decide(&past(Some(SendStatus::Failed), "f", 2, false), "f"),
            send(false, 2)
        );
        assert_eq!(decide(&past(None, "f", 0, false), "g"), send(false, 0));
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
