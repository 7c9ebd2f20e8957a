//! One table for what an HTTP answer means, whatever the call (a create, a
//! cancel, an upgrade, a lookup, the bulk lookup, a status), and one retry
//! loop for the calls that change nothing.
//!
//! | answer | meaning |
//! |---|---|
//! | 401, 403, a refused login | the gateway refuses us: the call was not processed; the run stops (exit 4) |
//! | 429 | not processed: wait (`Retry-After`, else a pause that doubles with each 429 in a row, up to a minute) and call again; not one of the tries |
//! | 5xx, no answer in time, a broken connection | may have been processed: retried after a backoff (a create only after a lookup) |
//! | no connection made | not processed: retried after a backoff |
//! | anything else (2xx; 400, 404, 409 and the other 4xx) | an answer the operation reads: 404 "not found" and 409 "duplicate" are its business, as are validation errors |

use std::time::Duration;

use serde_json::Value;

use super::retry::RetryPolicy;
use super::stop::{Stop, Stopper};
use crate::dcms::{Answer, Client, Failure, FailureKind};

/// 429s one call (or one item) takes before it is given up (resumable).
pub const MAX_RATE_LIMITED: u32 = 100;

/// What a call's result means before its operation reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Meaning {
    /// An answer for the operation to read.
    Answer,
    /// 401 or 403, or a refused login: not processed; stop the run.
    Refused(String),
    /// 429: not processed; call again after `wait`, not one of the tries.
    RateLimited { wait: Duration },
    /// Worth another try. `ambiguous`: the request may have been processed.
    Retry {
        ambiguous: bool,
        /// The server's `Retry-After`, if any.
        wait: Option<Duration>,
        error: String,
    },
}

/// The table: what `result` means; `limited` is how many 429s in a row
/// came before it (for the pause when no `Retry-After` says one).
pub fn meaning(result: &Result<Answer, Failure>, limited: u32) -> Meaning {
    let answer = match result {
        Ok(a) => a,
        Err(f) if f.kind == FailureKind::Refused => return Meaning::Refused(f.message.clone()),
        Err(f) => {
            return Meaning::Retry {
                ambiguous: f.kind != FailureKind::Connect,
                wait: None,
                error: f.message.clone(),
            };
        }
    };
    match answer.status {
        401 | 403 => Meaning::Refused(describe_answer("the gateway refuses us", answer)),
        429 => Meaning::RateLimited {
            wait: answer
                .retry_after
                .unwrap_or_else(|| Duration::from_millis(500) * (1 << (limited + 1).min(6)))
                .min(Duration::from_secs(60)),
        },
        500..=599 => Meaning::Retry {
            ambiguous: true,
            wait: answer.retry_after,
            error: describe_answer(&format!("HTTP {}", answer.status), answer),
        },
        _ => Meaning::Answer,
    }
}

/// What a caller hears of its calls, for its own counts (the send engine's
/// failures in a row, the requests made); nothing by default.
#[derive(Debug, Clone, Copy)]
pub enum Heard<'a> {
    /// A call is going out.
    Request,
    /// An answer to read came back.
    Answer(&'a Answer),
    /// A 429.
    RateLimited(Duration),
    /// A 5xx, or no answer (the failure).
    Failed(&'a str),
    /// No answer: why.
    NoAnswer(&'a Failure),
}

/// Who calls: the client, its rate limit, its stop signal, its retries.
pub trait Caller: Sync {
    fn client(&self) -> &Client;
    fn limiter(&self) -> &super::limit::Limiter;
    fn stopper(&self) -> &Stopper;
    fn retry(&self) -> RetryPolicy;
    /// No call starts after this.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        None
    }
    fn heard(&self, what: Heard<'_>) {
        let _ = what;
    }
    /// The calls in flight at most, where the caller bounds them.
    fn calls(&self) -> Option<&tokio::sync::Semaphore> {
        None
    }
}

/// A place among the calls in flight, held while the call is made (where
/// the caller bounds them); `None` if the run stops meanwhile.
pub async fn place<C: Caller + ?Sized>(c: &C) -> Option<Option<tokio::sync::SemaphorePermit<'_>>> {
    let Some(calls) = c.calls() else {
        return Some(None);
    };
    tokio::select! {
        p = calls.acquire() => p.ok().filter(|_| !c.stopper().is_stopped()).map(Some),
        () = c.stopper().stopped() => None,
    }
}

/// Waits for the rate limit; `false` if the run stops meanwhile, or its
/// deadline passes.
pub async fn turn<C: Caller + ?Sized>(c: &C) -> bool {
    let ok = tokio::select! {
        () = c.limiter().acquire() => !c.stopper().is_stopped(),
        () = c.stopper().stopped() => false,
    };
    if ok
        && c.deadline()
            .is_some_and(|d| tokio::time::Instant::now() >= d)
    {
        c.stopper().stop(Stop::Deadline);
        return false;
    }
    ok
}

/// Sleeps; `false` if the run stops meanwhile.
pub async fn pause<C: Caller + ?Sized>(c: &C, wait: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => !c.stopper().is_stopped(),
        () = c.stopper().stopped() => false,
    }
}

/// The result of one call, told to the caller: the request counted, and
/// what came back.
pub async fn call<C: Caller + ?Sized>(
    c: &C,
    path: &str,
    body: &(impl serde::Serialize + Sync),
    limited: u32,
) -> (Result<Answer, Failure>, Meaning) {
    c.heard(Heard::Request);
    let result = c.client().post(path, body).await;
    let meaning = meaning(&result, limited);
    match (&result, &meaning) {
        (Ok(a), Meaning::Answer) => c.heard(Heard::Answer(a)),
        (_, Meaning::RateLimited { wait }) => {
            c.limiter().rate_limited(*wait);
            c.heard(Heard::RateLimited(*wait));
        }
        (_, Meaning::Refused(why)) => c.stopper().stop(Stop::Refused(why.clone())),
        (Err(f), Meaning::Retry { .. }) => c.heard(Heard::NoAnswer(f)),
        (Ok(_), Meaning::Retry { error, .. }) => c.heard(Heard::Failed(error)),
        (Err(_), Meaning::Answer) => {}
    }
    (result, meaning)
}

/// A call that changes nothing (a lookup, the bulk lookup, a status), made
/// until it gets an answer to read: called again on a 429 (not one of the
/// tries), a 5xx or no answer, as the retry policy allows. `Err` says why
/// not: the run stopped, the gateway refuses us (the run stops), or the
/// tries ran out. `request_id` hears each call's request id.
pub async fn read<C: Caller + ?Sized>(
    c: &C,
    path: &str,
    body: &Value,
    seed: u64,
    request_id: &mut (dyn FnMut(Option<String>) + Send),
) -> Result<Answer, String> {
    let retry = c.retry();
    let mut backoff = retry.backoff(seed);
    let mut limited = 0u32;
    let stopped = || {
        c.stopper()
            .reason()
            .map_or_else(|| "the run stopped".into(), |r| r.to_string())
    };
    loop {
        if !turn(c).await {
            return Err(stopped());
        }
        let Some(held) = place(c).await else {
            return Err(stopped());
        };
        let (result, meaning) = call(c, path, body, limited).await;
        drop(held);
        request_id(match &result {
            Ok(a) => Some(a.request_id.clone()),
            Err(f) => f.request_id.clone(),
        });
        let (why, wait) = match (result, meaning) {
            (Ok(a), Meaning::Answer) => return Ok(a),
            (_, Meaning::Refused(why)) => return Err(format!("{path}: {why}")),
            (_, Meaning::RateLimited { .. }) => {
                limited += 1;
                if limited >= MAX_RATE_LIMITED {
                    return Err(format!("{path}: HTTP 429: rate limited {limited} times"));
                }
                // Not one of the tries: the limiter waits.
                continue;
            }
            (_, Meaning::Retry { wait, error, .. }) => (format!("{path}: {error}"), wait),
            (Err(f), Meaning::Answer) => (f.message, None),
        };
        limited = 0;
        match backoff.next() {
            Some(b) => {
                if !pause(c, retry.wait(b, wait)).await {
                    return Err(why);
                }
            }
            None => return Err(why),
        }
    }
}

/// An answer that proves nothing, described for a message.
pub(super) fn describe_answer(what: &str, answer: &Answer) -> String {
    let (code, messages) = exception_messages(answer);
    format!(
        "{what}: HTTP {} {code}: {}",
        answer.status,
        clip(&messages.join("; "), 200)
    )
}

pub(super) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
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

pub(super) fn exception_messages(answer: &Answer) -> (String, Vec<String>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcms::Envelope;

    fn answer(status: u16, retry_after: Option<Duration>) -> Result<Answer, Failure> {
        Ok(Answer {
            status,
            envelope: Some(Envelope {
                result: None,
                exception: None,
                pagination: None,
            }),
            other_body: None,
            retry_after,
            latency: Duration::ZERO,
            request_id: String::new(),
            answer_request_id: None,
        })
    }

    fn failure(kind: FailureKind) -> Result<Answer, Failure> {
        Err(Failure {
            kind,
            message: "x".into(),
            latency: Duration::ZERO,
            request_id: None,
        })
    }

    /// The one table, as the module's documentation gives it.
    #[test]
    fn every_answer_means_one_thing_for_every_call() {
        for status in [401, 403] {
            assert!(matches!(
                meaning(&answer(status, None), 0),
                Meaning::Refused(_)
            ));
        }
        assert!(matches!(
            meaning(&failure(FailureKind::Refused), 0),
            Meaning::Refused(_)
        ));
        assert_eq!(
            meaning(&answer(429, Some(Duration::from_secs(3))), 0),
            Meaning::RateLimited {
                wait: Duration::from_secs(3)
            }
        );
        // Without Retry-After: a pause that grows with 429s in a row.
        let pause = |n| match meaning(&answer(429, None), n) {
            Meaning::RateLimited { wait } => wait,
            other => panic!("{other:?}"),
        };
        assert!(pause(0) < pause(1) && pause(1) < pause(2));
        assert!(pause(50) <= Duration::from_secs(60));
        for status in [500, 502, 503, 504] {
            assert!(matches!(
                meaning(&answer(status, None), 0),
                Meaning::Retry {
                    ambiguous: true,
                    ..
                }
            ));
        }
        assert!(matches!(
            meaning(&failure(FailureKind::Connect), 0),
            Meaning::Retry {
                ambiguous: false,
                ..
            }
        ));
        for kind in [FailureKind::Timeout, FailureKind::Broken] {
            assert!(matches!(
                meaning(&failure(kind), 0),
                Meaning::Retry {
                    ambiguous: true,
                    ..
                }
            ));
        }
        for status in [200, 201, 400, 404, 409, 422] {
            assert_eq!(
                meaning(&answer(status, None), 0),
                Meaning::Answer,
                "{status}"
            );
        }
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
}
