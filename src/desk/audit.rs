//! `verify` on the desk: a report and its run facts uploaded, checked as
//! `dcms-bulk verify` checks them, the findings shown.

use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::auth::Who;
use super::guard::refused;
use super::{Parts, Shared, bad_token, page, safe_name, views};

pub(super) async fn form(who: Who) -> Response {
    page(views::Verify::empty(&who))
}

pub(super) async fn verify(State(desk): State<Shared>, who: Who, form: Multipart) -> Response {
    let mut sent = match Parts::read(&who, form).await {
        Ok(p) => p,
        Err(refusal) => return refusal,
    };
    if !sent.token_ok {
        return bad_token();
    }
    let report = sent
        .file("report")
        .map(|(name, bytes)| (safe_name(&name), bytes));
    let (Some((name, report)), Some((_, facts))) = (report, sent.file("facts")) else {
        return refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Give the report and its run facts.",
        );
    };
    let dir = match tempfile::tempdir_in(desk.work.path()) {
        Ok(d) => d,
        Err(e) => return refused(StatusCode::INSUFFICIENT_STORAGE, &e.to_string()),
    };
    let path = dir.path().join(&name);
    let kept = std::fs::write(&path, report)
        .and_then(|()| std::fs::write(crate::report::facts_path(&path), facts));
    if let Err(e) = kept {
        return refused(StatusCode::INSUFFICIENT_STORAGE, &e.to_string());
    }
    let checked = tokio::task::spawn_blocking(move || {
        let found = crate::service::verify::verify(&path, None, None);
        drop(dir);
        found
    })
    .await;
    let mut view = views::Verify {
        name: Some(name),
        ..views::Verify::empty(&who)
    };
    match checked {
        Ok(Ok(audit)) => {
            view.holds = audit.all_hold();
            view.failed = audit
                .findings
                .iter()
                .filter(|f| f.ok == Some(false))
                .count();
            view.findings = audit
                .findings
                .into_iter()
                .map(|f| {
                    let mark = match f.ok {
                        Some(true) => "ok",
                        Some(false) => "FAIL",
                        None => "not checked",
                    };
                    (mark, f.check, f.detail)
                })
                .collect();
            page(view)
        }
        Ok(Err(e)) => {
            view.name = None;
            view.error = Some(e.to_string());
            (StatusCode::UNPROCESSABLE_ENTITY, page(view)).into_response()
        }
        Err(_) => refused(StatusCode::INTERNAL_SERVER_ERROR, "The check stopped."),
    }
}
