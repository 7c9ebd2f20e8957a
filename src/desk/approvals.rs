//! Four eyes on the desk: a maker asks for approval of a sheet as it is
//! now; a checker who neither made nor changed it sees what will be sent
//! and approves (the desk then sends it, once) or rejects it with a
//! reason. The access database holds the rule; the pages follow it.

use axum::extract::{Form, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::Who;
use super::guard::{refused, token_ok};
use super::runs::{SendForm, not_done, not_ready, send_approved, sendable};
use super::{Desk, Shared, bad_token, lock, page, sheets, views};
use crate::access::{Ask, Decision};

/// A maker asks for approval of the sheet as it is now.
pub(super) async fn ask(
    State(desk): State<Shared>,
    who: Who,
    UrlPath(id): UrlPath<u64>,
    Form(f): Form<SendForm>,
) -> Response {
    let (sending, dropped) = match sendable(&desk, &who, id, &f.csrf).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    let why = if desk.opts.approval.is_none() {
        Some("This desk's profile needs no approval: send it.")
    } else if !who.signed_in {
        Some("Four eyes needs two people: the desk has no users yet (dcms-bulk users add).")
    } else {
        not_ready(&lock(&dropped), f.warnings_read.is_some())
    };
    if let Some(why) = why {
        return not_done(
            &desk,
            &lock(&dropped),
            id,
            &who,
            &format!("Not asked: {why}"),
        );
    }
    let subject = desk.subject(id);
    let destination = sending.destination();
    let held = dropped.clone();
    let made = tokio::task::spawn_blocking(move || -> crate::error::Result<Ask> {
        let d = lock(&held);
        let (sheet_sha256, orders_fp) = d.job.fingerprints(&d.sha256)?;
        let c = d.job.checked().grouping.counts;
        Ok(Ask {
            subject,
            destination,
            sheet: d.name.clone(),
            sheet_sha256,
            orders_fp,
            orders: c.orders_ready,
            rows: c.rows,
            summary: format!(
                "{} rows: {} valid, {} invalid, {} held, {} with warnings; {} orders to send, {} held back; {} changes made on the desk",
                c.rows, c.valid, c.invalid, c.held, c.warnings, c.orders_ready, c.orders_held,
                d.job.edits().len()
            ),
            editors: d.editors.iter().cloned().collect(),
        })
    })
    .await;
    let asked = match made {
        Ok(Ok(ask)) => lock(&desk.access).ask(&ask, &who.actor()),
        Ok(Err(e)) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(_) => return refused(StatusCode::INTERNAL_SERVER_ERROR, "The check stopped."),
    };
    match asked {
        Ok(_) => Redirect::to(&format!("/sheets/{id}#send")).into_response(),
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The approvals: those waiting first.
pub(super) async fn list(State(desk): State<Shared>, me: Who) -> Response {
    match lock(&desk.access).approvals(false) {
        Ok(all) => page(views::Approvals { me, all }),
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// What a checker sees before deciding: the sheet's counts, where its
/// orders go, who made and changed it, the changes, and the earlier runs
/// of a file of the same name.
pub(super) async fn show(
    State(desk): State<Shared>,
    me: Who,
    UrlPath(id): UrlPath<i64>,
) -> Response {
    let approval = match lock(&desk.access).approval(id) {
        Ok(Some(a)) => a,
        Ok(None) => return refused(StatusCode::NOT_FOUND, "No such approval."),
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let sheet = match Desk::id_asked(&approval.subject) {
        Some(id) => sheets::sheet(&desk, id)
            .await
            .ok()
            .flatten()
            .map(|d| (id, d)),
        None => None,
    };
    let edits = sheet
        .as_ref()
        .map(|(_, d)| lock(d).job.edits().to_vec())
        .unwrap_or_default();
    let earlier = super::history::runs_of(&desk)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            std::path::Path::new(&r.input)
                .file_name()
                .is_some_and(|n| n.to_string_lossy() == approval.sheet)
        })
        .collect();
    let may_decide = me.has(crate::access::Role::Checker) && approval.may_decide(&me.name);
    page(views::ApprovalPage {
        sheet: sheet.map(|(id, _)| id),
        may_decide,
        expired: approval.expired(),
        approval,
        edits,
        earlier,
        me,
    })
}

#[derive(serde::Deserialize)]
pub(super) struct DecideForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// A checker approves: the desk sends the sheet at once, if it is still
/// the version approved.
pub(super) async fn approve(
    State(desk): State<Shared>,
    who: Who,
    UrlPath(id): UrlPath<i64>,
    Form(f): Form<DecideForm>,
) -> Response {
    decide(desk, who, id, f, Decision::Approve).await
}

/// A checker rejects, with a reason.
pub(super) async fn reject(
    State(desk): State<Shared>,
    who: Who,
    UrlPath(id): UrlPath<i64>,
    Form(f): Form<DecideForm>,
) -> Response {
    let reason = f.reason.trim().to_owned();
    if reason.is_empty() {
        return refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "A rejection needs a reason: say what the maker is to change.",
        );
    }
    decide(desk, who, id, f, Decision::Reject(reason)).await
}

async fn decide(desk: Shared, who: Who, id: i64, f: DecideForm, decision: Decision) -> Response {
    if !token_ok(&who.csrf, &f.csrf) {
        return bad_token();
    }
    if matches!(lock(&desk.access).approval(id), Ok(None)) {
        return refused(StatusCode::NOT_FOUND, "No such approval.");
    }
    let valid_for = desk.opts.approval.unwrap_or_default();
    let decided = lock(&desk.access).decide(id, &decision, &who.actor(), valid_for);
    let approval = match decided {
        Ok(a) => a,
        Err(crate::access::AccessError::Refused(why)) => {
            return refused(StatusCode::FORBIDDEN, &format!("Refused: {why}."));
        }
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    if matches!(decision, Decision::Approve)
        && let Err(why) = send_approved(&desk, &who, &approval).await
    {
        return refused(StatusCode::CONFLICT, &why);
    }
    Redirect::to(&format!("/approvals/{id}")).into_response()
}
