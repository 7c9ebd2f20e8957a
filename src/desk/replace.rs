//! Find and replace within a column (previewed first), and one step of
//! undo.

use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::auth::Who;
use super::edit::alter;
use super::guard::{refused, token_ok};
use super::{Shared, bad_token, lock, page, sheets, views};

#[derive(serde::Deserialize)]
pub(super) struct Wanted {
    col: usize,
    find: String,
    #[serde(default)]
    with: String,
}

/// The cells that would change, before they do.
pub(super) async fn preview(
    State(desk): State<Shared>,
    who: Who,
    UrlPath(id): UrlPath<u64>,
    Query(w): Query<Wanted>,
) -> Response {
    let dropped = match sheets::found(&desk, id).await {
        Ok(d) => d,
        Err(refusal) => return refusal,
    };
    let me = who.clone();
    let drawn = tokio::task::spawn_blocking(move || {
        let d = lock(&dropped);
        let matches = match d.job.find(w.col, &w.find, &w.with) {
            Ok(m) => m,
            Err(e) => return refused(StatusCode::UNPROCESSABLE_ENTITY, &format!("{e}")),
        };
        let headers = &d.job.checked().columns.headers;
        page(views::Replace {
            me: &me,
            id,
            name: &d.name,
            column: &headers[w.col],
            col: w.col,
            find: &w.find,
            with: &w.with,
            matches,
        })
    })
    .await;
    drawn.unwrap_or_else(|_| refused(StatusCode::INTERNAL_SERVER_ERROR, "The page stopped."))
}

#[derive(serde::Deserialize)]
pub(super) struct ReplaceForm {
    csrf: String,
    col: usize,
    find: String,
    #[serde(default)]
    with: String,
}

/// Every match replaced, in one save.
pub(super) async fn replace(
    State(desk): State<Shared>,
    who: Who,
    UrlPath(id): UrlPath<u64>,
    Form(f): Form<ReplaceForm>,
) -> Response {
    if !token_ok(&who.csrf, &f.csrf) {
        return bad_token();
    }
    let back = format!("/sheets/{id}");
    alter(desk, &who, id, back, "cells replaced", move |job| {
        job.replace(f.col, &f.find, &f.with).map(|_| ())
    })
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct UndoForm {
    csrf: String,
}

/// The last save undone.
pub(super) async fn undo(
    State(desk): State<Shared>,
    who: Who,
    UrlPath(id): UrlPath<u64>,
    Form(f): Form<UndoForm>,
) -> Response {
    if !token_ok(&who.csrf, &f.csrf) {
        return bad_token();
    }
    alter(
        desk,
        &who,
        id,
        format!("/sheets/{id}"),
        "change undone",
        |job| job.undo(),
    )
    .await
}
