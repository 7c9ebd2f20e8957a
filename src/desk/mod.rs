//! The desk: a web page on this machine where the back office drops an
//! order sheet, sees what is wrong and where, and fixes it in place. It is
//! a face, like the command line: each sheet is a [`Job`] (checked by the
//! same code as `validate`, with the same budgets for untrusted files;
//! changed cells laid over the file, which is never changed), and the
//! pages are askama templates (`templates/`) whose every value is escaped.
//! What every request passes first is in [`guard`].

mod approvals;
mod audit;
pub mod auth;
mod edit;
mod files;
pub mod folders;
pub mod guard;
mod history;
mod replace;
mod runs;
pub mod send;
mod sheets;
mod signin;
mod tls;
mod users;
mod views;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, Multipart, Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::error::{Error, Result};
use crate::pipeline::CheckOpts;
use auth::Who;
use guard::{refused, token_ok};
use views::{PAGE_ROWS, RowView};

/// How the desk is served.
#[derive(Clone)]
pub struct DeskOpts {
    /// Where it listens (this machine only).
    pub listen: SocketAddr,
    /// How sheets are read and checked (as `validate`'s flags say).
    pub check: CheckOpts,
    /// The largest sheet it takes, in bytes.
    pub max_upload: usize,
    /// Where it sends; `None`: it checks only.
    pub sending: Option<Arc<send::Sending>>,
    /// Where it keeps the sheets dropped on it, as they came, and the
    /// reports of their runs (which the ledger and `verify` point at).
    pub keep: std::path::PathBuf,
    /// The drop folders a watch in the desk looks at, and what it does.
    pub folders: Option<Arc<folders::Folders>>,
    /// With a watch in the desk: its sender, which sends the desk's sheets
    /// too (one engine, one ledger).
    pub handed: Option<crate::stage::Sender<crate::service::watch::Handed>>,
    /// Where the access database (users, approvals, the audit trail) is:
    /// a folder, or the database hosts share.
    pub access: crate::submit::ledger::Store,
    /// How users sign in.
    pub auth: auth::AuthOpts,
    /// Four eyes: no sheet is sent without a second person's approval,
    /// which holds this long.
    pub approval: Option<std::time::Duration>,
    /// Served over TLS with this certificate chain and key (PEM files).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Other names the desk answers to (in `Host`), as its users reach it.
    pub names: Vec<String>,
}

/// The file types a sheet may have (as `validate` reads them).
const SHEET_TYPES: [&str; 8] = ["csv", "tsv", "txt", "xlsx", "xlsm", "xlsb", "xls", "ods"];

/// What the handlers share.
type Shared = Arc<Desk>;

/// The desk's state: its address, its CSRF token, and the sheets dropped.
pub struct Desk {
    opts: DeskOpts,
    /// The `Host` values it answers to.
    hosts: Vec<String>,
    /// The token every form carries (random, for this run of the desk).
    token: String,
    /// Scratch room: files made to be downloaded, reports uploaded to be
    /// verified.
    work: tempfile::TempDir,
    /// The sheets this desk has open (the database holds them all).
    sheets: sheets::Open,
    /// Users, approvals and the audit trail.
    access: Mutex<crate::access::Access>,
    sessions: auth::Sessions,
}

/// Where a sheet goes, for its page.
struct SendView {
    to: Option<String>,
    approval_needed: bool,
    approval: Option<crate::access::Approval>,
}

use sheets::Dropped;

impl Desk {
    /// The desk for `opts`, at `addr` (where it was bound).
    pub fn new(opts: DeskOpts, addr: SocketAddr) -> Result<Desk> {
        let port = addr.port();
        let mut hosts = vec![format!("{addr}"), format!("localhost:{port}")];
        if addr.ip().is_loopback() && addr.is_ipv4() {
            hosts.push(format!("127.0.0.1:{port}"));
        }
        for name in &opts.names {
            hosts.push(format!("{name}:{port}"));
            if (port == 443 && opts.tls.is_some()) || (port == 80 && opts.tls.is_none()) {
                hosts.push(name.clone());
            }
        }
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let access = crate::access::Access::open_in(&opts.access)?;
        Ok(Desk {
            access: Mutex::new(access),
            sessions: auth::Sessions::default(),
            opts,
            hosts,
            token,
            work: tempfile::tempdir().map_err(|e| Error::io("the desk's folder", e))?,
            sheets: Mutex::new(BTreeMap::new()),
        })
    }

    /// Where sheet `id` goes, and its approval where one is needed.
    fn send_view(&self, id: u64) -> SendView {
        let approval_needed = self.opts.approval.is_some();
        SendView {
            to: self.opts.sending.as_ref().map(|s| s.destination()),
            approval_needed,
            approval: approval_needed
                .then(|| {
                    lock(&self.access)
                        .approval_of(&self.subject(id))
                        .ok()
                        .flatten()
                })
                .flatten(),
        }
    }

    /// Who sends `headers` from `peer`: with users, a signed-in one (or
    /// no one); without, this machine's one person, who makes and reads
    /// (no one can approve: four eyes needs users).
    fn who(
        &self,
        headers: &axum::http::HeaderMap,
        peer: SocketAddr,
    ) -> std::result::Result<Option<auth::Who>, String> {
        let access = lock(&self.access);
        if !access.has_users().map_err(|e| e.to_string())? {
            return Ok(Some(auth::Who {
                name: "desk".into(),
                roles: vec![crate::access::Role::Maker, crate::access::Role::Auditor],
                csrf: self.token.clone(),
                origin: peer.ip().to_string(),
                signed_in: false,
                session: false,
            }));
        }
        self.sessions.who(&access, &self.opts.auth, headers, peer)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The desk's routes, behind its guard.
pub fn router(desk: Shared) -> Router {
    let max = desk.opts.max_upload;
    Router::new()
        .route("/", get(index))
        .route(
            "/sheets",
            // Room for the form around the file.
            post(upload).layer(DefaultBodyLimit::max(max + guard::FORM_ROOM)),
        )
        .route("/sheets/{id}", get(sheet))
        .route("/sheets/{id}/cells", post(edit::change_cell))
        .route(
            "/sheets/{id}/rows/{row}",
            get(edit::row).post(edit::change_row),
        )
        .route("/sheets/{id}/download/{what}", get(files::download))
        .route("/sheets/{id}/send", post(runs::send_sheet))
        .route(
            "/sheets/{id}/replace",
            get(replace::preview).post(replace::replace),
        )
        .route("/sheets/{id}/undo", post(replace::undo))
        .route("/sheets/{id}/close", post(close))
        .route("/runs", get(history::runs))
        .route("/runs/{id}", get(history::run))
        .route("/runs/{id}/report", get(history::report))
        .route("/runs/{id}/facts", get(history::facts))
        .route("/orders", get(history::find_order))
        .route(
            "/verify",
            get(audit::form)
                .post(audit::verify)
                .layer(DefaultBodyLimit::max(max + guard::FORM_ROOM)),
        )
        .route("/orders/{id}", get(history::order))
        .route("/sheets/{id}/events", get(runs::run_events))
        .route("/folders", get(folders::page_of))
        .route("/folders/table", get(folders::table))
        .route("/folders/{id}/report", get(folders::report))
        .route("/sheets/{id}/ask", post(approvals::ask))
        .route("/approvals", get(approvals::list))
        .route("/approvals/{id}", get(approvals::show))
        .route("/approvals/{id}/approve", post(approvals::approve))
        .route("/approvals/{id}/reject", post(approvals::reject))
        .route("/audit", get(history::trail))
        .route("/users", get(users::list).post(users::add))
        .route("/users/{name}/roles", post(users::roles))
        .route("/users/{name}/disable", post(users::disable))
        .route("/users/{name}/enable", post(users::enable))
        .route("/login", get(signin::form).post(signin::sign_in))
        .route("/logout", post(signin::sign_out))
        .route("/assets/desk.css", get(css))
        .route("/assets/desk.js", get(js))
        .layer(axum::middleware::from_fn_with_state(
            desk.clone(),
            guard::guard,
        ))
        .with_state(desk)
}

/// Binds `opts.listen` (this machine only), tells its URL, and serves
/// until `stop` resolves.
pub async fn serve(
    opts: DeskOpts,
    told: impl FnOnce(&str),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    if !opts.listen.ip().is_loopback() {
        let users = crate::access::Access::open_in(&opts.access)?.has_users()?;
        if opts.tls.is_none() || !users {
            return Err(Error::Usage(format!(
                "--listen {}: beyond this machine the desk needs TLS (--tls-cert, --tls-key) and users (dcms-bulk users add)",
                opts.listen
            )));
        }
    }
    let acceptor = match &opts.tls {
        Some((cert, key)) => Some(
            crate::sandbox::TlsServer {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: None,
            }
            .acceptor()
            .map_err(|e| Error::Usage(format!("--tls-cert/--tls-key: {e}")))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Error::Usage(format!("--listen {}: {e}", opts.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("the desk's address", e))?;
    let desk = Arc::new(Desk::new(opts, addr)?);
    tokio::spawn(sheets::keep_claims(desk.clone()));
    let app = router(desk).into_make_service_with_connect_info::<tls::Peer>();
    let failed = |e| Error::io("the desk", e);
    match acceptor {
        None => {
            told(&format!("http://{addr}/"));
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
                .map_err(failed)
        }
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor).map_err(failed)?;
            told(&format!("https://{addr}/"));
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
                .map_err(failed)
        }
    }
}

fn page(template: impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the page could not be drawn: {e}"),
        ),
    }
}

async fn index(State(desk): State<Shared>, who: Who) -> Response {
    page(index_view(&desk, &who, None))
}

fn index_view<'a>(desk: &Desk, who: &'a Who, error: Option<String>) -> views::Index<'a> {
    let (sheets, failed) = match desk.sheets_open() {
        Ok(open) => (open, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let sheets = sheets
        .into_iter()
        .map(|s| views::SheetLink {
            id: s.id as u64,
            name: s.name,
            rows: s.rows,
            invalid: s.invalid,
        })
        .collect();
    views::Index {
        me: who,
        sheets,
        error: error.or(failed),
        max_mib: (desk.opts.max_upload / (1024 * 1024)) as u64,
        max_sheets: MAX_SHEETS,
    }
}

/// A sheet dropped: kept as it came, checked, and shown.
async fn upload(State(desk): State<Shared>, who: Who, form: Multipart) -> Response {
    let mut sent = match Parts::read(&who, form).await {
        Ok(p) => p,
        Err(refusal) => return refusal,
    };
    match sent.file("sheet") {
        Some((name, bytes)) if sent.token_ok => take(desk, &who, name, bytes).await,
        _ => bad_token(),
    }
}

/// A form's parts as sent (multipart): whether it carried the desk's
/// token, and its files (field, file name, bytes).
struct Parts {
    token_ok: bool,
    files: Vec<(String, String, Vec<u8>)>,
}

impl Parts {
    /// Every part of `form`, its size bounded by the route's limit.
    async fn read(who: &Who, mut form: Multipart) -> std::result::Result<Parts, Response> {
        let failed = |e: axum::extract::multipart::MultipartError| {
            refused(e.status(), &format!("The upload failed: {}", e.body_text()))
        };
        let mut parts = Parts {
            token_ok: false,
            files: Vec::new(),
        };
        while let Some(field) = form.next_field().await.map_err(failed)? {
            let name = field.name().unwrap_or("").to_owned();
            let file = field.file_name().unwrap_or("sheet").to_owned();
            let bytes = field.bytes().await.map_err(failed)?;
            if name == "csrf" {
                parts.token_ok = token_ok(&who.csrf, &String::from_utf8_lossy(&bytes));
            } else {
                parts.files.push((name, file, bytes.to_vec()));
            }
        }
        Ok(parts)
    }

    /// The file sent as `field`: its name and bytes.
    fn file(&mut self, field: &str) -> Option<(String, Vec<u8>)> {
        let at = self.files.iter().position(|(f, _, _)| f == field)?;
        let (_, name, bytes) = self.files.swap_remove(at);
        Some((name, bytes))
    }
}

/// Keeps a dropped file and opens it as a job.
async fn take(desk: Shared, who: &Who, name: String, bytes: Vec<u8>) -> Response {
    let name = safe_name(&name);
    let ext = Path::new(&name)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if !SHEET_TYPES.contains(&ext.as_str()) {
        let why = format!(
            "{name}: not an order sheet this desk reads (it takes {})",
            SHEET_TYPES.join(", ")
        );
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            page(index_view(&desk, who, Some(why))),
        )
            .into_response();
    }
    // Staged in a folder of its own beside the kept sheets, then moved
    // under the id the database gives it.
    let staged = desk
        .opts
        .keep
        .join(format!(".incoming-{}", uuid::Uuid::new_v4().simple()));
    let path = staged.join(&name);
    let written = std::fs::create_dir_all(&staged).and_then(|()| std::fs::write(&path, &bytes));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staged);
        return refused(
            StatusCode::INSUFFICIENT_STORAGE,
            &format!("The sheet could not be kept: {e}"),
        );
    }
    let at = desk.clone();
    let (by, named) = (who.name.clone(), name.clone());
    let kept = tokio::task::spawn_blocking(move || {
        let kept = sheets::keep(&at, &path, &named, &bytes, &by);
        if kept.is_err() {
            let _ = std::fs::remove_dir_all(path.parent().unwrap_or(&path));
        }
        kept
    })
    .await;
    match kept {
        Ok(Ok((id, dropped))) => {
            let counts = dropped.job.checked().grouping.counts;
            let _ = lock(&desk.access).record(
                &who.actor(),
                "sheet dropped",
                serde_json::json!({
                    "sheet": name, "sha256": dropped.sha256, "rows": counts.rows,
                    "invalid": counts.invalid, "orders_ready": counts.orders_ready,
                }),
                "",
            );
            let mut open = lock(&desk.sheets);
            open.insert(id, Arc::new(Mutex::new(dropped)));
            sheets::put_away(&mut open, id);
            Redirect::to(&format!("/sheets/{id}")).into_response()
        }
        Ok(Err(e)) => {
            // The folder it was kept in is not the clerk's business.
            let why = e
                .to_string()
                .replace(&staged.join(&name).display().to_string(), &name);
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                page(index_view(&desk, who, Some(why))),
            )
                .into_response()
        }
        Err(_) => refused(StatusCode::INTERNAL_SERVER_ERROR, "The check stopped."),
    }
}

/// The file's own name, without folders, in plain characters.
fn safe_name(given: &str) -> String {
    let base = given.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    let clean = clean.trim_start_matches('.').trim().to_owned();
    if clean.is_empty() {
        "sheet".into()
    } else {
        clean
    }
}

#[derive(serde::Deserialize)]
struct Shown {
    page: Option<u64>,
    problems: Option<u8>,
}

async fn sheet(
    State(desk): State<Shared>,
    who: Who,
    UrlPath(id): UrlPath<u64>,
    Query(q): Query<Shown>,
) -> Response {
    let dropped = match sheets::found(&desk, id).await {
        Ok(d) => d,
        Err(refusal) => return refusal,
    };
    let problems_only = q.problems == Some(1);
    let page_no = q.page.unwrap_or(1).max(1);
    let me = who.clone();
    let to = desk.send_view(id);
    let drawn = tokio::task::spawn_blocking(move || {
        let d = lock(&dropped);
        sheet_page(&d, id, &me, page_no, problems_only, None, to)
    })
    .await;
    drawn.unwrap_or_else(|_| refused(StatusCode::INTERNAL_SERVER_ERROR, "The page stopped."))
}

/// A page of the sheet's rows, drawn.
fn sheet_page(
    d: &Dropped,
    id: u64,
    me: &Who,
    page_no: u64,
    problems_only: bool,
    error: Option<String>,
    send: SendView,
) -> Response {
    let skip = (page_no - 1).saturating_mul(PAGE_ROWS);
    let shown = match d.job.page(problems_only, skip, PAGE_ROWS) {
        Ok(p) => p,
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let checked = d.job.checked();
    let outcomes = d.run.as_ref().map(|r| r.outcomes()).unwrap_or_default();
    let rows = shown
        .rows
        .into_iter()
        .map(|r| {
            let mut r = RowView::of(r);
            r.sent = outcomes.get(&(r.group as usize)).copied();
            r
        })
        .collect();
    page(views::Sheet {
        me,
        id,
        name: &d.name,
        version: d.job.edits().len() + 1,
        counts: checked.grouping.counts,
        headers: &checked.columns.headers,
        rows,
        page: page_no,
        pages: shown.total.div_ceil(PAGE_ROWS).max(1),
        total: shown.total,
        problems_only,
        edits: d.job.edits(),
        error,
        send_to: send.to,
        approval_needed: send.approval_needed,
        approval: send.approval,
        run: d.run.as_ref().map(|r| r.now()),
        sending_elsewhere: d.sending_elsewhere.clone(),
        can_undo: d.job.can_undo(),
    })
}

#[derive(serde::Deserialize)]
struct CloseForm {
    csrf: String,
}

/// A sheet closed: off every desk, its memory freed (its kept file,
/// its record and its runs' reports stay); not while it is being sent.
async fn close(
    State(desk): State<Shared>,
    who: Who,
    UrlPath(id): UrlPath<u64>,
    Form(f): Form<CloseForm>,
) -> Response {
    if !token_ok(&who.csrf, &f.csrf) {
        return bad_token();
    }
    let dropped = match sheets::found(&desk, id).await {
        Ok(d) => d,
        Err(refusal) => return refusal,
    };
    let closed = {
        let d = lock(&dropped);
        if d.sending_here() {
            Ok(false)
        } else {
            lock(&desk.access).sheet_close(id as i64)
        }
    };
    match closed {
        Ok(true) => {
            desk.forget(id);
            Redirect::to("/").into_response()
        }
        Ok(false) => refused(
            StatusCode::CONFLICT,
            "It is being sent; close it once the run ends.",
        ),
        Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Sheets open at once (the oldest not being sent are closed beyond it),
/// and the most a desk holds in memory, with their checks.
pub const MAX_SHEETS: usize = 20;

pub(super) fn bad_token() -> Response {
    refused(
        StatusCode::FORBIDDEN,
        "Refused: the form's token is missing or wrong; reload the page and try again.",
    )
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../assets/desk.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../assets/desk.js"),
    )
        .into_response()
}
