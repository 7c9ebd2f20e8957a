//! The run: one batch through the engine, a window of items at a time
//! planned (see [`plan`](super::plan)) and handed to workers on tokio, at
//! most `concurrency` in flight; its outcomes by slot.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::ctx::{Books, Ctx, lock};
use super::ledger::{self, Ledger, LedgerError};
use super::op::Operation;
use super::opts::SubmitOpts;
use super::outcome::{SendStatus, Sent, Tally};
use super::plan::{Todo, not_submitted, settle};
use super::stop::{Stop, Stopper};
use super::worker::send_one;
use crate::dcms::Client;
use crate::stage;

/// Items the engine takes at a time: the ledger and the API's inventory are
/// asked about a window and its items planned while the window before is
/// sent. Memory holds a few windows and the requests in flight, not the
/// batch.
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
        let producer = stage::beside(scope, "items", move || {
            produce(&mut |slot, item| tx.blocking_send((slot, item)).is_ok())
        })
        .map_err(|e| crate::error::Error::Internal(format!("no thread for the items: {e}")))?;
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
        let produced = stage::joined(producer).unwrap_or_else(|| {
            Err(crate::error::Error::Internal(
                "the item producer failed".into(),
            ))
        });
        // The engine's error first: it is why the producer stopped.
        let out = out.map_err(ledger_error)?;
        produced?;
        Ok((run_id, out))
    })
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
    let known = if op.lookup_key("").is_some() {
        ledger.known_item(O::KIND)?
    } else {
        None
    };
    let ctx = Arc::new(Ctx::new(client, books, opts, tally.clone(), stopper, known));
    let outcomes = Mutex::new(Outcomes::new(slots, tally));
    let mut pool = Pool::new(op.clone(), ctx.clone(), opts.concurrency);
    let mut precheck_on = opts.precheck && op.precheck(&[], 1).is_some();
    // A window is settled (the ledger, the API's inventory) while the one
    // before it is sent: the lookups do not hold the sending up.
    let (settled_tx, mut settled) = tokio::sync::mpsc::channel::<Vec<Todo<O::Item>>>(1);
    let settling = async {
        let to_send = settled_tx;
        let mut window: Vec<(usize, O::Item)> = Vec::with_capacity(WINDOW);
        while items.recv_many(&mut window, WINDOW).await > 0 {
            let todo = settle(
                &*op,
                &ctx,
                ledger,
                std::mem::take(&mut window),
                &mut precheck_on,
                &mut |slot, sent| lock(&outcomes).store(slot, sent),
            )
            .await?;
            if to_send.send(todo).await.is_err() {
                break;
            }
        }
        Ok::<_, LedgerError>(())
    };
    let sending = async {
        while let Some(todo) = settled.recv().await {
            for t in todo {
                pool.send(t, &outcomes).await;
            }
        }
    };
    let (done, ()) = tokio::join!(settling, sending);
    done?;
    pool.drain(&outcomes, opts.drain).await;
    let outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    ended::<O>(&ctx, &outcomes);
    Ok(outcomes.finish())
}

/// What a run that sent its last item says about itself: the API never
/// answered, or orders were left in doubt by a lookup that proved nothing.
fn ended<O: Operation>(ctx: &Ctx, outcomes: &Outcomes) {
    // Not one call answered (refused connections, timeouts, 5xx only): the
    // API was unavailable, however few the calls; the rows stay FAILED for
    // the re-run.
    let last_failure = lock(&ctx.last_failure).clone();
    if let Some(why) = last_failure
        && !ctx.reached_once.load(Ordering::Relaxed)
    {
        ctx.stopper.stop(Stop::ApiUnavailable(format!(
            "no call got an answer; the last: {why}"
        )));
    }
    // Orders left in doubt while the lookup proved nothing: say why, and
    // what ends it.
    let in_doubt = outcomes
        .out
        .iter()
        .flatten()
        .any(|s| s.error_code.as_deref() == Some("OUTCOME_UNKNOWN"));
    if in_doubt && let Some(why) = lock(&ctx.unproven).clone() {
        ctx.tally.note(format!(
            "the lookup's answers for {}s in doubt prove nothing: {why}; a re-run asks again, \
             and `dcms-bulk resolve ID --sent|--not-sent --reason TEXT` records a person's decision",
            O::KIND
        ));
    }
}

/// The outcomes by slot, counted as they come; and the slots whose
/// request is in flight, with the requests sent for them before.
struct Outcomes {
    out: Vec<Option<Sent>>,
    in_flight: HashMap<usize, u32>,
    tally: Arc<Tally>,
}

impl Outcomes {
    fn new(slots: usize, tally: Arc<Tally>) -> Self {
        Outcomes {
            out: vec![None; slots],
            in_flight: HashMap::new(),
            tally,
        }
    }

    fn store(&mut self, slot: usize, sent: Sent) {
        self.in_flight.remove(&slot);
        self.tally.count(slot, &sent);
        self.out[slot] = Some(sent);
    }

    /// The outcomes, an item whose worker was cut off mid-request counted
    /// as in doubt.
    fn finish(mut self) -> Vec<Option<Sent>> {
        for (slot, prior) in std::mem::take(&mut self.in_flight) {
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
            self.store(slot, sent);
        }
        self.out
    }
}

/// The workers: one task an item, at most twice `concurrency` at a time
/// (the calls in flight are held to `concurrency` by [`Ctx::calls`]).
struct Pool<O: Operation> {
    op: Arc<O>,
    ctx: Arc<Ctx>,
    /// Items worked on at once: twice the calls in flight, so that while
    /// some items' calls are made, others' records are written.
    permits: Arc<Semaphore>,
    workers: JoinSet<(usize, Sent)>,
}

impl<O: Operation> Pool<O> {
    fn new(op: Arc<O>, ctx: Arc<Ctx>, concurrency: usize) -> Self {
        Pool {
            op,
            ctx,
            permits: Arc::new(Semaphore::new(concurrency.max(1) * 2)),
            workers: JoinSet::new(),
        }
    }

    /// Hands an item to a worker once one is free; after a stop, the item
    /// is not submitted.
    async fn send(&mut self, t: Todo<O::Item>, outcomes: &Mutex<Outcomes>) {
        let stopper = &self.ctx.stopper;
        let permit = if stopper.is_stopped() {
            None
        } else {
            tokio::select! {
                p = self.permits.clone().acquire_owned() => p.ok(),
                () = stopper.stopped() => None,
            }
        };
        let Some(permit) = permit else {
            lock(outcomes).store(t.slot, not_submitted(stopper, t.prior, t.lookup_first));
            return;
        };
        lock(outcomes).in_flight.insert(t.slot, t.prior);
        let (op, ctx) = (self.op.clone(), self.ctx.clone());
        self.workers.spawn(async move {
            let sent = send_one(&*op, &ctx, &t.item, t.lookup_first, t.prior).await;
            drop(permit);
            (t.slot, sent)
        });
        while let Some(done) = self.workers.try_join_next() {
            if let Ok((slot, sent)) = done {
                lock(outcomes).store(slot, sent);
            }
        }
    }

    /// Waits for the workers; after an interrupt, only for `drain`.
    async fn drain(&mut self, outcomes: &Mutex<Outcomes>, drain: Duration) {
        let stopper = self.ctx.stopper.clone();
        let all = async {
            while let Some(done) = self.workers.join_next().await {
                if let Ok((slot, sent)) = done {
                    lock(outcomes).store(slot, sent);
                }
            }
        };
        let interrupted = async {
            stopper.interrupted().await;
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            () = all => {}
            () = interrupted => {}
        }
        self.workers.abort_all();
        while let Some(done) = self.workers.join_next().await {
            if let Ok((slot, sent)) = done {
                lock(outcomes).store(slot, sent);
            }
        }
    }
}
