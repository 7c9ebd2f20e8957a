//! Signing in and out of the desk (when it has users).

use askama::Template;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::{self, Who};
use super::guard::{refused, token_ok};
use super::{Shared, lock, page};
use crate::access::Actor;

/// The sign-in form.
#[derive(Template)]
#[template(path = "login.html")]
pub struct Login {
    pub me: Who,
    pub next: String,
    pub error: Option<String>,
}

#[derive(serde::Deserialize)]
pub(super) struct Next {
    next: Option<String>,
}

/// Where to go after signing in: a path of this desk, nothing else.
fn next_of(next: Option<String>) -> String {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/".into())
}

pub(super) async fn form(Query(q): Query<Next>) -> Response {
    page(Login {
        me: Who::nobody(),
        next: next_of(q.next),
        error: None,
    })
}

#[derive(serde::Deserialize)]
pub(super) struct SignIn {
    name: String,
    password: String,
    next: Option<String>,
}

/// The same words whatever was wrong: an unknown name, a wrong password,
/// a disabled user.
const NOT_SIGNED_IN: &str = "That name and password do not match a user of this desk.";

pub(super) async fn sign_in(
    State(desk): State<Shared>,
    ConnectInfo(super::tls::Peer(peer)): ConnectInfo<super::tls::Peer>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    let addr = peer.ip().to_string();
    let next = next_of(f.next);
    let again = |status: StatusCode, error: String| {
        let mut r = page(Login {
            me: Who::nobody(),
            next: next.clone(),
            error: Some(error),
        });
        *r.status_mut() = status;
        r
    };
    if let Some(wait) = desk.sessions.throttled(&f.name, &addr) {
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed sign-ins for this name or from this computer: try again in {} minutes.",
                wait.as_secs().div_ceil(60)
            ),
        );
    }
    let checked = {
        let desk = desk.clone();
        let (name, password) = (f.name.clone(), f.password);
        tokio::task::spawn_blocking(move || lock(&desk.access).sign_in(&name, &password)).await
    };
    let actor = Actor {
        name: f.name.clone(),
        origin: addr.clone(),
    };
    match checked {
        Ok(Ok(Some(user))) => {
            let old = auth::cookie(&headers, auth::COOKIE);
            let access = lock(&desk.access);
            let id = match access.session_begin(&user.name, old.as_deref()) {
                Ok(id) => id,
                Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            };
            let _ = access.record(&actor, "signed in", serde_json::json!({}), "");
            drop(access);
            (
                [(
                    header::SET_COOKIE,
                    auth::set_cookie(&id, desk.opts.auth.tls),
                )],
                Redirect::to(&next),
            )
                .into_response()
        }
        Ok(Ok(None)) => {
            desk.sessions.failed(&f.name, &addr);
            let _ = lock(&desk.access).record(&actor, "sign-in failed", serde_json::json!({}), "");
            again(StatusCode::UNAUTHORIZED, NOT_SIGNED_IN.into())
        }
        Ok(Err(e)) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(_) => refused(StatusCode::INTERNAL_SERVER_ERROR, "The sign-in stopped."),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct SignOut {
    csrf: String,
}

pub(super) async fn sign_out(
    State(desk): State<Shared>,
    who: Who,
    headers: HeaderMap,
    Form(f): Form<SignOut>,
) -> Response {
    if !token_ok(&who.csrf, &f.csrf) {
        return super::bad_token();
    }
    if let Some(id) = auth::cookie(&headers, auth::COOKIE) {
        let _ = lock(&desk.access).session_end(&id);
    }
    let _ = lock(&desk.access).record(&who.actor(), "signed out", serde_json::json!({}), "");
    (
        [(header::SET_COOKIE, auth::set_cookie("", desk.opts.auth.tls))],
        Redirect::to("/login"),
    )
        .into_response()
}
