//! Answers in the DCMS envelope: a result or an exception (shape A of
//! `dcms-api.md` §1), with the HTTP status and any extra header.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::dcms::{ApiException, Envelope};

/// One answer before it becomes an HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Box<Envelope<Value>>,
    pub retry_after: Option<u64>,
    /// Send `Retry-After` as an HTTP date, not seconds.
    pub retry_after_date: bool,
    /// Send the exception in shape B (`errorCode`, `errorMessage`,
    /// `httpStatus: "400 BAD_REQUEST"`), as the docs' generic pages show.
    pub shape_b: bool,
}

impl Reply {
    /// HTTP 200 with `result` set.
    pub fn ok(result: impl Into<Value>) -> Reply {
        Reply {
            status: StatusCode::OK,
            body: Box::new(Envelope::ok(result.into())),
            retry_after: None,
            retry_after_date: false,
            shape_b: false,
        }
    }

    /// A refusal: `exception` set, `result` null.
    pub fn error(
        status: StatusCode,
        code: &str,
        short: &str,
        detail: &str,
        field_errors: Vec<String>,
    ) -> Reply {
        Reply {
            status,
            body: Box::new(Envelope::error(ApiException {
                error_code: Some(code.to_owned()),
                short_message: Some(short.to_owned()),
                detail_message: Some(detail.to_owned()),
                error_message: None,
                http_status: Some(status_name(status).into()),
                field_error: field_errors,
                language_code: Some("en".to_owned()),
            })),
            retry_after: None,
            retry_after_date: false,
            shape_b: false,
        }
    }

    /// The same refusal sent with HTTP 200, as the docs warn real servers do.
    pub fn with_http_200(mut self) -> Reply {
        self.status = StatusCode::OK;
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut body = *self.body;
        if self.shape_b
            && let Some(e) = body.exception.take()
        {
            let message = e.detail_message.or(e.short_message).or(e.error_message);
            body.exception = Some(ApiException {
                error_code: e.error_code,
                error_message: message,
                http_status: Some(
                    format!("{} {}", self.status.as_u16(), status_name(self.status)).into(),
                ),
                ..ApiException::default()
            });
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            let value = if self.retry_after_date {
                let at = std::time::SystemTime::now() + std::time::Duration::from_secs(seconds);
                HeaderValue::from_str(&httpdate::fmt_http_date(at)).ok()
            } else {
                Some(HeaderValue::from(seconds))
            };
            if let Some(v) = value {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// `BAD_REQUEST`-style name of a status, as the docs' `httpStatus` field.
pub fn status_name(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("UNKNOWN")
        .to_ascii_uppercase()
        .replace([' ', '-'], "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_follow_the_docs() {
        assert_eq!(status_name(StatusCode::BAD_REQUEST), "BAD_REQUEST");
        assert_eq!(
            status_name(StatusCode::TOO_MANY_REQUESTS),
            "TOO_MANY_REQUESTS"
        );
        assert_eq!(
            status_name(StatusCode::PAYLOAD_TOO_LARGE),
            "PAYLOAD_TOO_LARGE"
        );
    }

    #[test]
    fn an_error_has_every_field_of_shape_a() {
        let reply = Reply::error(
            StatusCode::BAD_REQUEST,
            "ORD001",
            "Invalid order request",
            "The card order request contains invalid or missing fields",
            vec!["branchInfo is required".into()],
        );
        let json = serde_json::to_value(&reply.body).unwrap();
        assert_eq!(json["result"], Value::Null);
        assert_eq!(json["pagination"], Value::Null);
        let e = &json["exception"];
        for key in [
            "errorCode",
            "shortMessage",
            "detailMessage",
            "httpStatus",
            "fieldError",
            "languageCode",
        ] {
            assert!(e.get(key).is_some(), "{key} missing in {e}");
        }
        assert_eq!(e["httpStatus"], "BAD_REQUEST");
        let sent_as_200 = reply.with_http_200();
        assert_eq!(sent_as_200.status, StatusCode::OK);
        assert!(sent_as_200.body.exception.is_some());
    }
}
