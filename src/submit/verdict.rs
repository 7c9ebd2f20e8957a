//! Reading a create's answer: what the call path's meaning of its HTTP
//! status and the DCMS envelope together say happened to the item.

use std::time::Duration;

use super::http::{self, exception_messages};
use super::op::Operation;
use crate::dcms::{Answer, Failure};

/// What an answer to a create means.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Verdict {
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

pub(super) fn classify<O: Operation>(
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

#[cfg(test)]
mod tests {
    use super::super::op::CreateOrders;
    use super::*;
    use crate::dcms::{ApiException, Envelope, FailureKind};
    use serde_json::Value;

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
}
