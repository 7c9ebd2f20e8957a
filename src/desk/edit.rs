//! A sheet changed in place: a cell, a row's form, and every change
//! through one door ([`alter`]) that checks the sheet again, records the
//! change, keeps its maker from approving the sheet, and voids an approval
//! asked for before it.

use std::sync::Arc;

use axum::extract::{Form, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::Who;
use super::guard::{refused, token_ok};
use super::views::{self, RowView};
use super::{Shared, bad_token, lock, page, sheet_page, sheets};
use crate::access::SheetChange;
use crate::error::{Error, Result};
use crate::job::{CellChange, Job};

#[derive(serde::Deserialize)]
pub(super) struct CellForm {
    csrf: String,
    row: u64,
    col: usize,
    value: String,
    back: Option<String>,
}

/// One cell changed in place; the sheet checked again.
pub(super) async fn change_cell(
    State(desk): State<Shared>,
    who: Who,
    UrlPath(id): UrlPath<u64>,
    Form(f): Form<CellForm>,
) -> Response {
    if !token_ok(&who.csrf, &f.csrf) {
        return bad_token();
    }
    let back = f
        .back
        .filter(|b| b.starts_with(&format!("/sheets/{id}")))
        .unwrap_or_else(|| format!("/sheets/{id}"));
    change(
        desk,
        &who,
        id,
        f.row,
        vec![(f.col, f.value)],
        format!("{back}#r{}", f.row),
    )
    .await
}

/// Changes cells of row `row`, given by column index; back to `back`.
async fn change(
    desk: Shared,
    who: &Who,
    id: u64,
    row: u64,
    cells: Vec<(usize, String)>,
    back: String,
) -> Response {
    alter(desk, who, id, back, "cells changed", move |job| {
        let headers = job.checked().columns.headers.clone();
        let mut changes = Vec::new();
        for (col, value) in cells {
            let Some(column) = headers.get(col) else {
                return Err(Error::Usage(format!("the sheet has no column {}", col + 1)));
            };
            changes.push(CellChange {
                row,
                column: column.clone(),
                value,
            });
        }
        job.edit(&changes)
    })
    .await
}

/// Changes sheet `id` as `how` does (unless it is being sent), then back
/// to `back`; a change refused is said on the sheet's page. A change made
/// is recorded (`action`, with the cells it changed), its maker can no
/// longer approve the sheet, and an approval asked for before it is void.
pub(super) async fn alter(
    desk: Shared,
    who: &Who,
    id: u64,
    back: String,
    action: &'static str,
    how: impl FnOnce(&mut Job) -> Result<()> + Send + 'static,
) -> Response {
    let dropped = match sheets::found(&desk, id).await {
        Ok(d) => d,
        Err(refusal) => return refusal,
    };
    let name = who.name.clone();
    let at = desk.clone();
    let done = tokio::task::spawn_blocking(move || -> std::result::Result<_, String> {
        let mut d = lock(&dropped);
        let (before, seen) = (d.job.edits().len(), d.revision);
        let Some(job) = Arc::get_mut(&mut d.job) else {
            return Err("the sheet is being sent; it cannot change until the run ends".into());
        };
        how(job).map_err(|e| e.to_string())?;
        let counts = d.job.checked().grouping.counts;
        let (rows, invalid) = (counts.rows, counts.invalid);
        let made = d.job.edits().get(before..).unwrap_or_default().to_vec();
        let change = match d.job.edits().len().cmp(&before) {
            std::cmp::Ordering::Equal => return Ok(None),
            std::cmp::Ordering::Greater => SheetChange::Save {
                edits: serde_json::to_string(&made).map_err(|e| e.to_string())?,
                rows,
                invalid,
            },
            std::cmp::Ordering::Less => SheetChange::Undo { rows, invalid },
        };
        let saved = lock(&at.access).sheet_change(id as i64, seen, &change, &name);
        if !matches!(saved, Ok(true)) {
            // This desk's copy is not the database's: opened again.
            drop(d);
            at.forget(id);
            return Err(match saved {
                Err(e) => e.to_string(),
                _ => "it was changed or sent from another desk meanwhile; here it is as it is now: make the change again".into(),
            });
        }
        d.revision = seen + 1;
        d.editors.insert(name);
        Ok(Some((d.name.clone(), made)))
    })
    .await;
    match done {
        Ok(Ok(None)) => Redirect::to(&back).into_response(),
        Ok(Ok(Some((sheet, made)))) => {
            let access = lock(&desk.access);
            let by = who.actor();
            let what = serde_json::json!({ "sheet": sheet, "changes": made });
            let _ = access.record(&by, action, what, "");
            let _ = access.void(&desk.subject(id), "the sheet changed", &by);
            Redirect::to(&back).into_response()
        }
        Ok(Err(why)) => {
            let dropped = match sheets::found(&desk, id).await {
                Ok(d) => d,
                Err(refusal) => return refusal,
            };
            let d = lock(&dropped);
            let mut answer = sheet_page(
                &d,
                id,
                who,
                1,
                false,
                Some(format!("Not changed: {why}")),
                desk.send_view(id),
            );
            *answer.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            answer
        }
        Err(_) => refused(StatusCode::INTERNAL_SERVER_ERROR, "The check stopped."),
    }
}

pub(super) async fn row(
    State(desk): State<Shared>,
    who: Who,
    UrlPath((id, number)): UrlPath<(u64, u64)>,
) -> Response {
    let dropped = match sheets::found(&desk, id).await {
        Ok(d) => d,
        Err(refusal) => return refusal,
    };
    let me = who.clone();
    let drawn = tokio::task::spawn_blocking(move || -> std::result::Result<Response, String> {
        let d = lock(&dropped);
        let found = d.job.row(number).map_err(|e| e.to_string())?;
        let Some(found) = found else {
            return Ok(refused(StatusCode::NOT_FOUND, "No such row in the sheet."));
        };
        let checked = d.job.checked();
        Ok(page(views::Row {
            me: &me,
            id,
            name: &d.name,
            headers: &checked.columns.headers,
            row: RowView::of(found),
        }))
    })
    .await;
    match drawn {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e),
        Err(_) => refused(StatusCode::INTERNAL_SERVER_ERROR, "The page stopped."),
    }
}

/// A row's form sent: its cells as given (`c0`, `c1`...).
pub(super) async fn change_row(
    State(desk): State<Shared>,
    who: Who,
    UrlPath((id, number)): UrlPath<(u64, u64)>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let given = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map_or("", |(_, v)| v.as_str());
    if !token_ok(&who.csrf, given) {
        return bad_token();
    }
    let cells = fields
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix('c')?.parse::<usize>().ok()?, v)))
        .collect();
    change(
        desk,
        &who,
        id,
        number,
        cells,
        format!("/sheets/{id}#r{number}"),
    )
    .await
}
