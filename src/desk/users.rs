//! Users on the desk, for an admin: add one (with a first password),
//! change a user's roles, disable or enable one. Everyone signed in sees
//! the list; only an admin's forms change it (checked on the server, as
//! everywhere). The command line (`dcms-bulk users`) does the same.

use axum::extract::{Form, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::Who;
use super::guard::{refused, token_ok};
use super::{Shared, bad_token, lock, page, views};
use crate::access::{AccessError, Role};

pub(super) async fn list(State(desk): State<Shared>, me: Who) -> Response {
    match lock(&desk.access).users() {
        Ok(users) => page(views::Users {
            me,
            users,
            error: None,
        }),
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The form's fields: its token, and every `role` ticked.
fn fields(form: &[(String, String)]) -> (String, Vec<Role>, Option<String>, Option<String>) {
    let get = |k: &str| form.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
    let roles = form
        .iter()
        .filter(|(f, _)| f == "role")
        .filter_map(|(_, v)| Role::parse(v))
        .collect();
    (
        get("csrf").unwrap_or_default(),
        roles,
        get("name"),
        get("password"),
    )
}

/// What came of a change: back to the list, or the list with why not.
fn after(desk: &Shared, me: Who, done: Result<(), AccessError>) -> Response {
    match done {
        Ok(()) => Redirect::to("/users").into_response(),
        Err(AccessError::Refused(why)) => {
            let users = lock(&desk.access).users().unwrap_or_default();
            let mut r = page(views::Users {
                me,
                users,
                error: Some(why),
            });
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            r
        }
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// An admin adds a user, with roles and a first password.
pub(super) async fn add(
    State(desk): State<Shared>,
    me: Who,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (csrf, roles, name, password) = fields(&form);
    if !token_ok(&me.csrf, &csrf) {
        return bad_token();
    }
    let (name, password) = (name.unwrap_or_default(), password.unwrap_or_default());
    let done = if roles.is_empty() {
        Err(AccessError::Refused("give at least one role".into()))
    } else {
        let (desk2, actor) = (desk.clone(), me.actor());
        tokio::task::spawn_blocking(move || {
            lock(&desk2.access).add_user(name.trim(), &password, &roles, &actor)
        })
        .await
        .unwrap_or_else(|_| Err(AccessError::Refused("the user could not be added".into())))
    };
    after(&desk, me, done)
}

/// An admin sets a user's roles.
pub(super) async fn roles(
    State(desk): State<Shared>,
    me: Who,
    UrlPath(name): UrlPath<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (csrf, roles, _, _) = fields(&form);
    if !token_ok(&me.csrf, &csrf) {
        return bad_token();
    }
    let done = if roles.is_empty() {
        Err(AccessError::Refused(
            "give at least one role (or disable the user)".into(),
        ))
    } else if name == me.name && !roles.contains(&Role::Admin) {
        Err(AccessError::Refused(
            "you cannot take your own admin role: another admin can".into(),
        ))
    } else {
        lock(&desk.access).set_roles(&name, &roles, &me.actor())
    };
    after(&desk, me, done)
}

#[derive(serde::Deserialize)]
pub(super) struct Plain {
    csrf: String,
}

/// An admin disables a user: their sessions end at once.
pub(super) async fn disable(
    State(desk): State<Shared>,
    me: Who,
    UrlPath(name): UrlPath<String>,
    Form(f): Form<Plain>,
) -> Response {
    set_disabled(desk, me, &name, &f, true)
}

/// An admin enables a disabled user again.
pub(super) async fn enable(
    State(desk): State<Shared>,
    me: Who,
    UrlPath(name): UrlPath<String>,
    Form(f): Form<Plain>,
) -> Response {
    set_disabled(desk, me, &name, &f, false)
}

/// Disables or enables `name`, never the admin themselves.
fn set_disabled(desk: Shared, me: Who, name: &str, f: &Plain, disabled: bool) -> Response {
    if !token_ok(&me.csrf, &f.csrf) {
        return bad_token();
    }
    let done = if disabled && name == me.name {
        Err(AccessError::Refused(
            "you cannot disable yourself: another admin can".into(),
        ))
    } else {
        lock(&desk.access).set_disabled(name, disabled, &me.actor())
    };
    after(&desk, me, done)
}
