//! Planning, before any create: what the ledger's record of each item
//! decides, what the API's inventory already holds (the bulk pre-check),
//! and the planned records committed before the items go to the workers.

use std::collections::HashMap;

use serde_json::Value;

use super::ctx::{Ctx, seed_of};
use super::http::{self, describe_answer};
use super::ledger::{Ledger, LedgerError, Past, Record, RunRef};
use super::op::{Operation, PRECHECK_PAGE};
use super::outcome::{NOT_SUBMITTED, SendStatus, Sent};
use super::stop::{Stop, Stopper};
use crate::clock::Stamp;

/// What to do with one item before any request.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Decision {
    /// Settled: this is its outcome; nothing is sent.
    Done(Sent),
    /// To send; `lookup_first` when an earlier request may have been
    /// processed. `prior`: requests sent before.
    Send { lookup_first: bool, prior: u32 },
}

/// What the ledger's record of an item decides, given the fingerprint of
/// what the sheet asks for now.
pub(super) fn decide(kind: &str, key: &str, p: &Past, fp: &str, summary: &str) -> Decision {
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
pub(super) struct Todo<T> {
    pub(super) slot: usize,
    pub(super) item: T,
    pub(super) lookup_first: bool,
    pub(super) prior: u32,
}

/// One window before any send: the ledger decides, then the API's own
/// records; what they settle goes to `done`, the rest is planned in the
/// ledger and returned to be sent.
pub(super) async fn settle<O: Operation>(
    op: &O,
    ctx: &Ctx,
    ledger: &Ledger,
    window: Vec<(usize, O::Item)>,
    precheck_on: &mut bool,
    done: &mut dyn FnMut(usize, Sent),
) -> Result<Vec<Todo<O::Item>>, LedgerError> {
    let at = crate::clock::now();
    let mut todo = by_the_ledger(op, ledger, window, done)?;
    if ctx.stopper.is_stopped() || todo.is_empty() {
        return Ok(todo);
    }
    if *precheck_on {
        by_the_inventory(op, ctx, &mut todo, precheck_on, &at, done).await;
    }
    // Plan: one record per item to send, committed together.
    if !ctx.stopper.is_stopped() && !todo.is_empty() {
        let records = todo
            .iter()
            .map(|t| planned(op, ctx, &t.item, &at))
            .collect();
        if let Err(e) = ctx.books.writer.record(records).await {
            ctx.stopper.stop(Stop::Ledger(e.to_string()));
        }
    }
    Ok(todo)
}

/// The planned record of an item about to be sent.
fn planned<O: Operation>(op: &O, ctx: &Ctx, item: &O::Item, at: &str) -> Record {
    let (fingerprint, summary) = op.fingerprint(item);
    Record::Planned {
        kind: O::KIND,
        key: O::key(item),
        fingerprint,
        summary,
        run: ctx.books.run,
        at: at.to_owned(),
    }
}

/// The ledger decides, whatever file or batch the items came from: what
/// it settles goes to `done`; the rest is returned to be sent.
fn by_the_ledger<O: Operation>(
    op: &O,
    ledger: &Ledger,
    window: Vec<(usize, O::Item)>,
    done: &mut dyn FnMut(usize, Sent),
) -> Result<Vec<Todo<O::Item>>, LedgerError> {
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
    Ok(todo)
}

/// The API's own records: what it holds is never sent again. Takes the
/// items it holds out of `todo` (recorded, and their outcomes to `done`);
/// stops the run when it cannot be asked.
async fn by_the_inventory<O: Operation>(
    op: &O,
    ctx: &Ctx,
    todo: &mut Vec<Todo<O::Item>>,
    precheck_on: &mut bool,
    at: &str,
    done: &mut dyn FnMut(usize, Sent),
) {
    let keys: Vec<String> = todo.iter().map(|t| O::key(&t.item)).collect();
    let held = match ask_inventory(op, ctx, &keys).await {
        Precheck::Held(held) => held,
        Precheck::NotOffered(why) => {
            *precheck_on = false;
            ctx.tally.note(format!(
                "the API does not offer the bulk order lookup ({why}); relying on the ledger alone"
            ));
            return;
        }
        Precheck::Failed(why) => {
            ctx.stopper.stop(Stop::ApiUnavailable(format!(
                "the bulk lookup of what the API already holds failed: {why}; nothing more is sent until it answers"
            )));
            return;
        }
    };
    let mut records = Vec::new();
    let mut answered = Vec::new();
    todo.retain_mut(|t| {
        let key = O::key(&t.item);
        let Some(listed) = held.get(&key) else {
            // Not held: a well-formed listing proves no earlier request
            // took effect.
            t.lookup_first = false;
            return true;
        };
        let sent = held_outcome(op, &t.item, &key, listed, t.prior);
        // The planned record goes first: an answer needs its item.
        records.push(planned(op, ctx, &t.item, at));
        records.push(Record::Answered {
            kind: O::KIND,
            key,
            sent: sent.clone(),
            uncertain: false,
            run: ctx.books.run,
            at: at.to_owned(),
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

/// The outcome of an item the API's inventory already holds (`listed`
/// once per order it has under the key).
pub(super) fn held_outcome<O: Operation>(
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
pub(super) enum Precheck {
    /// The items the API holds, by key (an id created twice is listed twice).
    Held(HashMap<String, Vec<Value>>),
    /// The API has no such endpoint, or does not let us use it.
    NotOffered(String),
    /// It could not be asked (after retries): nothing may be sent.
    Failed(String),
}

/// Asks the API which of `keys` it holds, [`PRECHECK_PAGE`] keys a call,
/// the calls at once (each takes its place among the calls in flight),
/// following the pages of each answer.
pub(super) async fn ask_inventory<O: Operation>(op: &O, ctx: &Ctx, keys: &[String]) -> Precheck {
    let asked = futures_util::future::join_all(
        keys.chunks(PRECHECK_PAGE)
            .map(|chunk| ask_chunk(op, ctx, chunk)),
    )
    .await;
    let mut held: HashMap<String, Vec<Value>> = HashMap::new();
    for answer in asked {
        match answer {
            Precheck::Held(part) => {
                for (key, mut listed) in part {
                    held.entry(key).or_default().append(&mut listed);
                }
            }
            not => return not,
        }
    }
    Precheck::Held(held)
}

/// Asks the API which of `chunk`'s keys it holds, page after page.
async fn ask_chunk<O: Operation>(op: &O, ctx: &Ctx, chunk: &[String]) -> Precheck {
    let mut held: HashMap<String, Vec<Value>> = HashMap::new();
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
            return Precheck::Held(held);
        }
        page += 1;
    }
}

pub(super) fn not_submitted(stopper: &Stopper, prior: u32, uncertain: bool) -> Sent {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
