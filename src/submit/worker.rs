//! The worker: one item sent until it is accepted, refused, or out of
//! attempts, every request in the ledger before it goes out and every
//! answer after it comes back; an item whose earlier request may have
//! been processed is looked up first.

use std::collections::BTreeMap;

use super::ctx::{Ctx, seed_of};
use super::http;
use super::ledger::Record;
use super::lookup::look_up;
use super::op::{Lookup, Operation};
use super::outcome::{NOT_SUBMITTED, SendStatus, Sent, request_uuid};
use super::retry::Backoff;
use super::stop::Stop;
use super::verdict::{Verdict, classify};
use crate::clock::Stamp;
use crate::dcms::{Answer, Failure};

/// Sends one item until it is accepted, refused, or out of attempts.
pub(super) async fn send_one<O: Operation>(
    op: &O,
    ctx: &Ctx,
    item: &O::Item,
    lookup_first: bool,
    prior: u32,
) -> Sent {
    let mut sending = Sending::new(op, ctx, item, lookup_first, prior);
    loop {
        let step = if sending.calls_left == 0 {
            sending.give_up()
        } else if sending.uncertain {
            sending.look_up_first().await
        } else {
            sending.attempt().await
        };
        match step {
            Step::Again => {}
            Step::Done(sent, uncertain) => return sending.finish(sent, uncertain).await,
            Step::Unrecorded(sent) => return sent,
        }
    }
}

/// What one step of an item's sending came to.
enum Step {
    /// Another call.
    Again,
    /// Finished with this outcome; `uncertain`: an earlier request may
    /// have been processed.
    Done(Sent, bool),
    /// Stopped before the call because the ledger failed: nothing to
    /// record it in.
    Unrecorded(Sent),
}

/// One item's sending: what its calls so far found.
struct Sending<'a, O: Operation> {
    op: &'a O,
    ctx: &'a Ctx,
    item: &'a O::Item,
    key: String,
    backoff: Backoff,
    calls_left: u32,
    attempts: u32,
    /// An earlier request may have been processed: look it up first.
    uncertain: bool,
    /// The API said the id exists.
    duplicate_seen: bool,
    /// 429s in a row.
    limited: u32,
    /// The outcome so far.
    last: Sent,
    /// The last call's request id, and what the attempts got, kept with
    /// the item's next record (no commit of their own).
    request_id: Option<String>,
    attempted: Vec<Record>,
}

impl<'a, O: Operation> Sending<'a, O> {
    fn new(op: &'a O, ctx: &'a Ctx, item: &'a O::Item, lookup_first: bool, prior: u32) -> Self {
        let key = O::key(item);
        Sending {
            op,
            ctx,
            item,
            backoff: ctx.retry.backoff(seed_of(&key)),
            key,
            calls_left: ctx.retry.retries + 1,
            attempts: prior,
            uncertain: lookup_first,
            duplicate_seen: false,
            limited: 0,
            last: Sent {
                status: SendStatus::Failed,
                attempts: prior,
                ..Sent::default()
            },
            request_id: None,
            attempted: Vec::new(),
        }
    }

    /// Out of calls: the last outcome stands.
    fn give_up(&mut self) -> Step {
        Step::Done(std::mem::take(&mut self.last), self.uncertain)
    }

    /// The run stopped while the item was worked on.
    fn stopped(&mut self) -> Step {
        let last = std::mem::take(&mut self.last);
        Step::Done(cut_off(self.ctx, last, self.attempts), self.uncertain)
    }

    /// An outcome built on the last one, with this sending's attempts.
    fn settled(&mut self, status: SendStatus, code: Option<&str>, message: String) -> Sent {
        Sent {
            status,
            error_code: code.map(str::to_owned),
            messages: vec![message],
            attempts: self.attempts,
            ..std::mem::take(&mut self.last)
        }
    }

    /// Whether an earlier request took effect, before any new one.
    async fn look_up_first(&mut self) -> Step {
        if self.ctx.stopper.is_stopped() {
            return self.stopped();
        }
        self.calls_left -= 1;
        match look_up(self.op, self.ctx, self.item, &mut self.request_id).await {
            Lookup::Found(how) => {
                let why = if self.duplicate_seen {
                    "the API says it is done already (duplicate)"
                } else {
                    "an earlier request took effect"
                };
                let sent = self.settled(SendStatus::Accepted, None, format!("{why}: {how}"));
                Step::Done(sent, false)
            }
            Lookup::Conflict(why) => {
                let message = format!("{why}; not sent again");
                let sent = self.settled(SendStatus::Conflict, Some("CONFLICT"), message);
                Step::Done(sent, false)
            }
            Lookup::Missing if self.duplicate_seen => {
                let message =
                    "the API says the id exists, but the lookup does not find it; not sent again";
                let sent = self.settled(
                    SendStatus::Failed,
                    Some("DUPLICATE_NOT_FOUND"),
                    message.into(),
                );
                Step::Done(sent, true)
            }
            Lookup::Missing => {
                self.uncertain = false;
                Step::Again
            }
            // The lookup was retried as every read is (see `http::read`):
            // no answer, or an answer that proves nothing. Not sent again;
            // the re-run looks again.
            Lookup::Failed(error) => {
                self.last.messages = vec![format!(
                    "{error}; the earlier request may have taken effect, so it was not sent again"
                )];
                self.last.error_code = Some("OUTCOME_UNKNOWN".into());
                if self.ctx.stopper.is_stopped() {
                    return self.stopped();
                }
                self.give_up()
            }
        }
    }

    /// One create: recorded as sent, called, its answer read.
    async fn attempt(&mut self) -> Step {
        if !http::turn(self.ctx).await {
            return self.stopped();
        }
        self.attempts += 1;
        self.calls_left -= 1;
        let at = Stamp::now();
        let mut records = std::mem::take(&mut self.attempted);
        records.push(Record::Sent {
            kind: O::KIND,
            key: self.key.clone(),
            attempt: self.attempts,
            run: self.ctx.books.run,
            at: at.to_string(),
        });
        if let Err(e) = self.ctx.books.writer.record(records).await {
            self.ctx.stopper.stop(Stop::Ledger(e.to_string()));
            return Step::Unrecorded(Sent {
                status: SendStatus::Failed,
                error_code: Some(NOT_SUBMITTED.into()),
                messages: vec![format!("not sent: {e}")],
                attempts: self.attempts - 1,
                ..Sent::default()
            });
        }
        let Some(held) = http::place(self.ctx).await else {
            return self.stopped();
        };
        let (result, meaning) = http::call(self.ctx, self.op.path(), self.item, self.limited).await;
        drop(held);
        let base = self.called(&result, at);
        let verdict = classify(self.op, &result, meaning);
        self.read(verdict, &result, base).await
    }

    /// What a call got, recorded with the item's next record; the outcome
    /// so far, as a failure.
    fn called(&mut self, result: &Result<Answer, Failure>, at: Stamp) -> Sent {
        let (http_status, latency, rid, answer_rid) = match result {
            Ok(a) => (
                Some(a.status),
                a.latency,
                Some(a.request_id.clone()),
                a.answer_request_id.clone(),
            ),
            Err(f) => (None, f.latency, f.request_id.clone(), None),
        };
        self.request_id = rid.clone();
        self.attempted.push(Record::Attempted {
            kind: O::KIND,
            key: self.key.clone(),
            attempt: self.attempts,
            request_id: rid.clone(),
            answer_request_id: answer_rid,
            http_status,
        });
        Sent {
            status: SendStatus::Failed,
            error_code: None,
            messages: Vec::new(),
            http_status,
            attempts: self.attempts,
            submitted_at: Some(at),
            latency_ms: Some(latency.as_millis() as u64),
            result: BTreeMap::new(),
            request_id: request_uuid(rid.as_deref()),
        }
    }

    /// What a create's answer comes to: accepted or refused for good, or
    /// another call.
    async fn read(
        &mut self,
        verdict: Verdict,
        result: &Result<Answer, Failure>,
        base: Sent,
    ) -> Step {
        match verdict {
            Verdict::Accepted => {
                let result = result
                    .as_ref()
                    .map(|a| self.op.accepted(a))
                    .unwrap_or_default();
                let sent = Sent {
                    status: SendStatus::Accepted,
                    result,
                    ..base
                };
                Step::Done(sent, false)
            }
            Verdict::Duplicate => {
                self.duplicate_seen = true;
                self.uncertain = true;
                self.last = base;
                // The lookup needs a call of its own, even on the last attempt.
                self.calls_left = self.calls_left.max(1);
                Step::Again
            }
            Verdict::Rejected { code, messages } => Step::Done(
                Sent {
                    status: SendStatus::Rejected,
                    error_code: Some(code),
                    messages,
                    ..base
                },
                false,
            ),
            Verdict::RateLimited { .. } => {
                // Not one of the tries: the call was not processed (the
                // limiter waits, see `http::call`).
                self.calls_left += 1;
                self.limited += 1;
                self.last = Sent {
                    error_code: Some("HTTP_429".into()),
                    messages: vec![format!(
                        "HTTP 429: rate limited {} times; not processed, a re-run sends it",
                        self.limited
                    )],
                    ..base
                };
                if self.limited >= http::MAX_RATE_LIMITED {
                    return self.give_up();
                }
                Step::Again
            }
            // The gateway refused the call: it was not processed (and the
            // run stops, see `http::call`).
            Verdict::Refused(why) => Step::Done(
                Sent {
                    status: SendStatus::Failed,
                    error_code: Some("REFUSED".into()),
                    messages: vec![format!("{why}; not processed, a re-run sends it")],
                    ..base
                },
                self.uncertain,
            ),
            Verdict::Retry {
                ambiguous,
                wait,
                error,
                foreign,
            } => self.retry(ambiguous, wait, &error, foreign, base).await,
        }
    }

    /// A call worth another try, after the backoff's pause.
    async fn retry(
        &mut self,
        ambiguous: bool,
        wait: Option<std::time::Duration>,
        error: &str,
        foreign: bool,
        base: Sent,
    ) -> Step {
        self.limited = 0;
        self.uncertain |= ambiguous;
        let attempts = self.attempts;
        self.last = Sent {
            error_code: Some(match base.http_status {
                // Not processed by DCMS: a re-run sends it.
                _ if foreign && !self.uncertain => NOT_SUBMITTED.into(),
                Some(h) => format!("HTTP_{h}"),
                None => "NO_ANSWER".into(),
            }),
            messages: vec![if self.uncertain {
                format!(
                    "{error} (after {attempts} attempts); it may have been processed: the re-run looks it up before sending again"
                )
            } else {
                format!("{error} (after {attempts} attempts)")
            }],
            ..base
        };
        match self.backoff.next() {
            Some(b) if self.calls_left > 0 => {
                if !http::pause(self.ctx, self.ctx.retry.wait(b, wait)).await {
                    return self.stopped();
                }
                Step::Again
            }
            _ => self.give_up(),
        }
    }

    /// Records the item's outcome, with what its attempts got.
    async fn finish(mut self, mut sent: Sent, uncertain: bool) -> Sent {
        if sent.request_id.is_none() {
            sent.request_id = request_uuid(self.request_id.as_deref());
        }
        let mut records = std::mem::take(&mut self.attempted);
        records.push(Record::Answered {
            kind: O::KIND,
            key: self.key,
            sent: sent.clone(),
            uncertain,
            run: self.ctx.books.run,
            at: crate::clock::now(),
        });
        if let Err(e) = self.ctx.books.writer.record(records).await {
            self.ctx.stopper.stop(Stop::Ledger(e.to_string()));
        }
        sent
    }
}

/// The outcome of an item whose run stopped while it was being worked on.
fn cut_off(ctx: &Ctx, mut last: Sent, attempts: u32) -> Sent {
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
