//! The send button and the run's live view (server-sent events).

use std::sync::Arc;

use axum::extract::{Form, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::Who;
use super::guard::{refused, token_ok};
use super::{Desk, Shared, bad_token, lock, send, sheet_page, sheets};

#[derive(serde::Deserialize)]
pub(super) struct SendForm {
    pub(super) csrf: String,
    /// The clerk ticked "I have read the warnings".
    pub(super) warnings_read: Option<String>,
}

/// The send button: the sheet's ready orders sent as it is now (where no
/// approval is needed).
pub(super) async fn send_sheet(
    State(desk): State<Shared>,
    who: Who,
    UrlPath(id): UrlPath<u64>,
    Form(f): Form<SendForm>,
) -> Response {
    let (sending, dropped) = match sendable(&desk, &who, id, &f.csrf).await {
        Ok(found) => found,
        Err(refusal) => return refusal,
    };
    if desk.opts.approval.is_some() {
        // Four eyes: sent only as approved (a checker who approved on the
        // command line leaves the sending to the maker).
        let approval = lock(&desk.access).approval_of(&desk.subject(id));
        let why = match approval {
            Ok(Some(a)) if a.in_force() => match send_approved(&desk, &who, &a).await {
                Ok(()) => return Redirect::to(&format!("/sheets/{id}#send")).into_response(),
                Err(why) => why,
            },
            _ => "Not sent: the profile requires a second person's approval: ask for it.".into(),
        };
        return not_done(&desk, &lock(&dropped), id, &who, &why);
    }
    let mut d = lock(&dropped);
    let why = not_ready(&d, f.warnings_read.is_some());
    if let Some(why) = why {
        return not_done(&desk, &d, id, &who, &format!("Not sent: {why}"));
    }
    if let Err(why) = claim(&desk, id, &d) {
        return not_done(&desk, &d, id, &who, &why);
    }
    start(&desk, id, &mut d, sending, &who, None);
    Redirect::to(&format!("/sheets/{id}#send")).into_response()
}

/// What a form about sending sheet `id` needs: its token, a desk that
/// sends, and the sheet. Where it sends and the sheet; else the refusal.
#[allow(clippy::result_large_err)]
pub(super) async fn sendable(
    desk: &Shared,
    who: &Who,
    id: u64,
    csrf: &str,
) -> Result<(Arc<send::Sending>, Arc<std::sync::Mutex<super::Dropped>>), Response> {
    if !token_ok(&who.csrf, csrf) {
        return Err(bad_token());
    }
    let Some(sending) = desk.opts.sending.clone() else {
        return Err(refused(
            StatusCode::CONFLICT,
            "This desk checks only: start it with --sandbox, or with --profile NAME, to send.",
        ));
    };
    Ok((sending, sheets::found(desk, id).await?))
}

/// Why sheet `d` cannot be sent (or asked for) now, if it cannot.
pub(super) fn not_ready(d: &super::Dropped, warnings_read: bool) -> Option<&'static str> {
    let counts = d.job.checked().grouping.counts;
    if d.sending_here() || d.sending_elsewhere.is_some() {
        Some("It is being sent now.")
    } else if counts.warnings > 0 && !warnings_read {
        Some("Read the warnings first, and tick the box that says you have.")
    } else if counts.orders_ready == 0 {
        Some("No order is ready to send: fix the rows first.")
    } else {
        None
    }
}

/// The sheet's page, saying why what was asked was not done (409).
pub(super) fn not_done(
    desk: &Shared,
    d: &super::Dropped,
    id: u64,
    who: &Who,
    why: &str,
) -> Response {
    let mut answer = sheet_page(
        d,
        id,
        who,
        1,
        false,
        Some(why.to_owned()),
        desk.send_view(id),
    );
    *answer.status_mut() = StatusCode::CONFLICT;
    answer
}

/// Claims sheet `id` (`d`, as this desk has it) for sending from this
/// desk: no other desk sends or changes it until the run ends.
pub(super) fn claim(desk: &Shared, id: u64, d: &super::Dropped) -> Result<(), String> {
    match lock(&desk.access).sheet_sending(id as i64, d.revision, &desk.host()) {
        Ok(true) => Ok(()),
        Ok(false) => {
            desk.forget(id);
            Err("Not sent: another desk is sending it, or changed it since this page was drawn: reload the page.".into())
        }
        Err(e) => Err(format!("Not sent: {e}")),
    }
}

/// Starts sending sheet `id` (`d`, claimed) as it is now; `approval`
/// says who approved it, for the record. When the run ends, the claim is
/// let go.
pub(super) fn start(
    desk: &Shared,
    id: u64,
    d: &mut super::Dropped,
    sending: Arc<send::Sending>,
    by: &Who,
    approval: Option<serde_json::Value>,
) {
    let counts = d.job.checked().grouping.counts;
    let _ = lock(&desk.access).record(
        &by.actor(),
        "sending",
        serde_json::json!({
            "sheet": d.name, "orders": counts.orders_ready, "rows": counts.rows,
            "to": sending.destination(), "approval": approval,
        }),
        "",
    );
    let run = Arc::new(send::Run::default());
    let (at, sheet) = (desk.clone(), id as i64);
    run.when_over(Box::new(move || {
        let _ = lock(&at.access).sheet_sent(sheet);
    }));
    d.run = Some(run.clone());
    let dir = d.dir.join(format!(
        "run-{}",
        crate::clock::in_name(&crate::report::now())
    ));
    send::start(
        sending,
        desk.opts.handed.clone(),
        d.job.clone(),
        dir,
        run,
        approval,
    );
}

/// The sheet's run as server-sent events: where it is, a few times a
/// second, until it ends.
pub(super) async fn run_events(State(desk): State<Shared>, UrlPath(id): UrlPath<u64>) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let dropped = match sheets::found(&desk, id).await {
        Ok(d) => d,
        Err(refusal) => return refusal,
    };
    let Some(run) = lock(&dropped).run.clone() else {
        return refused(StatusCode::NOT_FOUND, "The sheet has not been sent.");
    };
    // Each event: where the run is, and the orders answered since the
    // last one (by group), for the rows on the page.
    let stream = futures_util::stream::unfold((run, false, 0), |(run, over, seen)| async move {
        if over {
            return None;
        }
        let now = run.now();
        let answered = run.answered_since(seen);
        let seen = seen + answered.len();
        let mut data = serde_json::to_value(&now).ok()?;
        data["answered"] = serde_json::json!(answered);
        let event = Event::default().json_data(&data).ok()?;
        if !now.finished {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        Some((
            Ok::<_, std::convert::Infallible>(event),
            (run, now.finished, seen),
        ))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Sends the sheet of an approval just given: taken for sending once, and
/// only while the sheet is the version approved.
pub(super) async fn send_approved(
    desk: &Shared,
    who: &Who,
    approval: &crate::access::Approval,
) -> Result<(), String> {
    let Some(sending) = desk.opts.sending.clone() else {
        return Err("This desk checks only: it sends nothing.".into());
    };
    let asked = Desk::id_asked(&approval.subject);
    let found = match asked {
        Some(id) => sheets::sheet(desk, id).await.ok().flatten(),
        None => None,
    };
    let (Some(sheet), Some(dropped)) = (asked, found) else {
        return Err(
            "Approved, but the sheet is no longer on this desk: the maker drops it again and asks again."
                .into(),
        );
    };
    let held = dropped.clone();
    let prints = tokio::task::spawn_blocking(move || {
        let d = lock(&held);
        d.job.fingerprints(&d.sha256)
    })
    .await
    .map_err(|_| "The check stopped.".to_owned())?
    .map_err(|e| e.to_string())?;
    let mut d = lock(&dropped);
    if let Some(why) = not_ready(&d, true) {
        return Err(format!("Not sent: {why}"));
    }
    claim(desk, sheet, &d)?;
    let taken =
        lock(&desk.access).take_for_sending(approval.id, &prints.0, &prints.1, &who.actor());
    let approval = match taken {
        Ok(a) => a,
        Err(e) => {
            let _ = lock(&desk.access).sheet_sent(sheet as i64);
            return Err(format!("Not sent: {e}."));
        }
    };
    let record = serde_json::json!({
        "id": approval.id,
        "maker": approval.maker,
        "checker": approval.checker,
        "sha256": approval.sheet_sha256,
    });
    start(desk, sheet, &mut d, sending, who, Some(record));
    Ok(())
}
