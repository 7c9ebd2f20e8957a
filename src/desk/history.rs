//! History: the runs the ledger recorded (what `runs` shows), a run's
//! page (its file, hash, counts, report, and the changes made on the desk
//! before it was sent), and its report.

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::auth::Who;
use super::guard::refused;
use super::views::{self, RunView};
use super::{Shared, page};
use crate::job::Edit;
use crate::submit::Destination;
use crate::submit::ledger::Store;

/// The ledger this desk sends with: its folder and destination.
fn ledger(desk: &Shared) -> Option<(Store, Destination, String)> {
    let sending = desk.opts.sending.as_ref()?;
    let api = &sending.api;
    Some((
        api.store(),
        Destination::new(&api.tenant, &api.base_url),
        sending.destination(),
    ))
}

/// The runs, newest first.
pub(super) fn runs_of(desk: &Shared) -> Result<Vec<RunView>, String> {
    let Some((store, dest, _)) = ledger(desk) else {
        return Ok(Vec::new());
    };
    let mut runs = crate::service::runs(&store, &dest).map_err(|e| e.to_string())?;
    runs.reverse();
    Ok(runs.into_iter().map(RunView::of).collect())
}

pub(super) async fn runs(State(desk): State<Shared>, me: Who) -> Response {
    let to = ledger(&desk).map(|(_, _, to)| to);
    match runs_of(&desk) {
        Ok(runs) => page(views::Runs { me, to, runs }),
        Err(e) => refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("The ledger cannot be read: {e}"),
        ),
    }
}

/// The run `id`, if the ledger has it.
fn run_of(desk: &Shared, id: i64) -> Result<Option<RunView>, String> {
    Ok(runs_of(desk)?.into_iter().find(|r| r.id == id))
}

pub(super) async fn run(
    State(desk): State<Shared>,
    me: Who,
    UrlPath(id): UrlPath<i64>,
) -> Response {
    let run = match run_of(&desk, id) {
        Ok(Some(r)) => r,
        Ok(None) => return refused(StatusCode::NOT_FOUND, "No such run in the ledger."),
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let report = run.report.as_deref().map(Path::new).filter(|p| p.is_file());
    let edits = report.map(edits_of).unwrap_or_default();
    let sha = run.sha256.clone();
    page(views::Run {
        me,
        has_report: report.is_some(),
        run,
        sha,
        edits,
    })
}

/// The changes a desk run's facts record (none for other runs).
fn edits_of(report: &Path) -> Vec<Edit> {
    let facts = std::fs::read(crate::report::facts_path(report)).unwrap_or_default();
    serde_json::from_slice::<serde_json::Value>(&facts)
        .ok()
        .and_then(|f| serde_json::from_value(f["options"]["edits"].clone()).ok())
        .unwrap_or_default()
}

/// The report the ledger says run `id` wrote (that file and no other).
pub(super) async fn report(State(desk): State<Shared>, UrlPath(id): UrlPath<i64>) -> Response {
    file_of_run(&desk, id, false)
}

/// The run facts beside that report.
pub(super) async fn facts(State(desk): State<Shared>, UrlPath(id): UrlPath<i64>) -> Response {
    file_of_run(&desk, id, true)
}

/// Run `id`'s report, or its run facts.
fn file_of_run(desk: &Shared, id: i64, facts: bool) -> Response {
    let path = match run_of(desk, id) {
        Ok(Some(r)) => r.report,
        Ok(None) => return refused(StatusCode::NOT_FOUND, "No such run in the ledger."),
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let Some(mut path) = path.map(PathBuf::from) else {
        return refused(StatusCode::NOT_FOUND, "The run wrote no report.");
    };
    if facts {
        path = crate::report::facts_path(&path);
    }
    super::files::attachment(&path)
}

/// An order's page: what the ledger holds of it (what `show` shows).
pub(super) async fn order(
    State(desk): State<Shared>,
    me: Who,
    UrlPath(key): UrlPath<String>,
) -> Response {
    let Some((store, dest, _)) = ledger(&desk) else {
        return refused(
            StatusCode::NOT_FOUND,
            "This desk checks only: it has no ledger to read.",
        );
    };
    let item = match crate::submit::ledger::history(&store, &dest, "order", &key) {
        Ok(Some(item)) => item,
        Ok(None) => return refused(StatusCode::NOT_FOUND, "The ledger has no such order."),
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let o = item.outcome.clone().unwrap_or_default();
    let status = o["status"].as_str().unwrap_or("no answer").to_owned();
    let mut answer = String::new();
    if item.outcome.is_some() {
        answer = status.clone();
        if let Some(code) = o["error_code"].as_str() {
            answer = format!("{answer} {code}");
        }
        let messages: Vec<&str> = o["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        if !messages.is_empty() {
            answer = format!("{answer}: {}", messages.join("; "));
        }
    }
    page(views::Order {
        me,
        item,
        status,
        answer,
    })
}

#[derive(serde::Deserialize)]
pub(super) struct Find {
    id: String,
}

/// The order search: to the order's page.
pub(super) async fn find_order(axum::extract::Query(f): axum::extract::Query<Find>) -> Response {
    // The id as one path segment, escaped.
    let mut to = url::Url::parse("http://desk/orders/").expect("a fixed URL");
    if let Ok(mut path) = to.path_segments_mut() {
        path.pop_if_empty().push(f.id.trim());
    }
    axum::response::Redirect::to(to.path()).into_response()
}

/// The audit trail: its last records, and whether its chain holds.
pub(super) async fn trail(State(desk): State<Shared>, me: Who) -> Response {
    let access = super::lock(&desk.access);
    let found = access
        .records(Some(500))
        .and_then(|records| Ok((records, access.check_trail()?)));
    match found {
        Ok((records, problems)) => page(views::Trail {
            me,
            records,
            problems,
        }),
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
