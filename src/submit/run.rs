//! The run: one batch through the engine, a window of items at a time
//! planned (see [`plan`](super::plan)) and handed to workers on tokio, at
//! most `concurrency` in flight; its outcomes by slot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::ctx::{Books, Ctx, lock};
use super::ledger::{self, Ledger, LedgerError};
use super::limit::Limiter;
use super::op::Operation;
use super::outcome::{SendStatus, Sent, Tally};
use super::plan::{not_submitted, settle};
use super::retry::RetryPolicy;
use super::stop::{Stop, Stopper};
use super::worker::send_one;
use crate::dcms::Client;

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

/// Sends the items that arrive on `items`, a window at a time; returns
/// their outcomes by slot. Items must have distinct keys.
#[expect(
    clippy::too_many_arguments,
    reason = "the run's parts, each shared differently"
)]
pub(super) async fn run<O: Operation>(
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
