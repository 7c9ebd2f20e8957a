//! The worker: one item sent until it is accepted, refused, or out of
//! attempts, every request in the ledger before it goes out and every
//! answer after it comes back; an item whose earlier request may have
//! been processed is looked up first.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::ctx::{Ctx, lock, seed_of};
use super::http;
use super::ledger::Record;
use super::lookup::look_up;
use super::op::{Lookup, Operation};
use super::outcome::{NOT_SUBMITTED, SendStatus, Sent, request_uuid};
use super::stop::Stop;
use super::verdict::{Verdict, classify};
use crate::clock::Stamp;

/// Sends one item until it is accepted, refused, or out of attempts.
pub(super) async fn send_one<O: Operation>(
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
            match look_up(op, ctx, order, request_id).await {
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

        if !http::turn(ctx).await {
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
                        if !http::pause(ctx, ctx.retry.wait(b, wait)).await {
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
pub(super) fn stopped(ctx: &Ctx, mut last: Sent, attempts: u32) -> Sent {
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
