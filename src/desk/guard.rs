//! What every request to the desk passes before a handler sees it: its
//! `Host` must be the desk's own address (a page of another site that a
//! DNS name points here is refused), a request that changes anything must
//! come from the desk's own pages (`Origin`, and the CSRF token its forms
//! carry), and every answer carries a strict Content-Security-Policy and
//! the headers that keep it from being framed or sniffed.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::Shared;
use super::auth::{self, Need};

/// No script but the desk's own file, no style but its own, no frames,
/// forms only to itself.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Refuses a request for another host, or a change from another origin;
/// adds the security headers to every answer.
pub async fn guard(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let mut answer = if !shared.hosts.iter().any(|h| h == host) {
        refused(
            StatusCode::MISDIRECTED_REQUEST,
            "This desk answers only at its own address.",
        )
    } else if !matches!(*request.method(), Method::GET | Method::HEAD)
        && !same_origin(&request, host, shared.opts.tls.is_some())
    {
        refused(
            StatusCode::FORBIDDEN,
            "Refused: the request did not come from this desk's own page.",
        )
    } else if too_large(&request, shared.opts.max_upload) {
        // Said before the body is read: the browser shows why, instead
        // of a connection closed while it still sends.
        refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "Too large: this desk takes files of up to {} MiB.",
                shared.opts.max_upload >> 20
            ),
        )
    } else {
        admitted(&shared, request, next).await
    };
    let headers = answer.headers_mut();
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser
    // sends `Origin: null` with the page's own forms.
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if shared.opts.tls.is_some() {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    answer
}

/// The request with who sends it, if they may do what it asks; else the
/// answer that says why not (sign in first; not your role). A refused
/// change is recorded in the audit trail.
async fn admitted(desk: &Shared, mut request: Request, next: Next) -> Response {
    let need = auth::need(request.method(), request.uri().path());
    if need == Need::Public {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<super::tls::Peer>>()
        .map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |c| c.0.0);
    let who = match desk.who(request.headers(), peer) {
        Ok(who) => who,
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let Some(who) = who else {
        if request.method() == Method::GET {
            let mut to = url::Url::parse("http://desk/login").expect("a fixed URL");
            to.query_pairs_mut()
                .append_pair("next", request.uri().path());
            let to = format!("/login?{}", to.query().unwrap_or(""));
            return Redirect::to(&to).into_response();
        }
        return refused(
            StatusCode::UNAUTHORIZED,
            "Sign in first: your session has ended, or you have not signed in.",
        );
    };
    if !who.may(need) {
        let what = serde_json::json!({
            "request": format!("{} {}", request.method(), request.uri().path()),
        });
        let _ = super::lock(&desk.access).record(
            &who.actor(),
            "refused",
            what,
            "not one of their roles",
        );
        return refused(
            StatusCode::FORBIDDEN,
            &format!(
                "Refused: {} may not do this (roles: {}).",
                who.name,
                who.role_names()
            ),
        );
    }
    request.extensions_mut().insert(who);
    next.run(request).await
}

/// The request's `Origin` is this desk (`http://HOST`, `https://` under
/// TLS); a request with none is refused (every browser sends one with a
/// form it posts).
fn same_origin(request: &Request, host: &str, tls: bool) -> bool {
    let scheme = if tls { "https" } else { "http" };
    request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| o == format!("{scheme}://{host}"))
}

/// The request says its body is larger than the largest file the desk
/// takes, with room for the form around it. (A body that says nothing, or
/// less than it is, is still cut at the limit as it is read.)
fn too_large(request: &Request, max_upload: usize) -> bool {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|n| n.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > (max_upload + FORM_ROOM) as u64)
}

/// Room for a form's other fields and its multipart framing around a file.
pub const FORM_ROOM: usize = 64 * 1024;

/// A refusal, as plain text.
pub fn refused(status: StatusCode, why: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        why.to_owned(),
    )
        .into_response()
}

/// Whether `given` is the desk's CSRF token, compared in constant time.
pub fn token_ok(expected: &str, given: &str) -> bool {
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_must_match_whole() {
        assert!(token_ok("abc123", "abc123"));
        assert!(!token_ok("abc123", "abc124"));
        assert!(!token_ok("abc123", "abc12"));
        assert!(!token_ok("abc123", ""));
    }
}
