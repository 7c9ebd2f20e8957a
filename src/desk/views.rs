//! The desk's pages: askama templates (in `templates/`, checked when the
//! code is compiled, every value escaped: a cell is always text), and the
//! shapes of what they show.

use askama::Template;

use super::auth::Who;
use crate::group::Counts;
use crate::job::{Edit, ShownRow};

/// Rows on a page of the table.
pub const PAGE_ROWS: u64 = 100;

/// The start page: the drop zone, and the sheets dropped so far.
#[derive(Template)]
#[template(path = "index.html")]
pub struct Index<'a> {
    pub me: &'a Who,
    pub sheets: Vec<SheetLink>,
    /// Why the last sheet dropped could not be read.
    pub error: Option<String>,
    pub max_mib: u64,
    pub max_sheets: usize,
}

/// A sheet dropped this session.
pub struct SheetLink {
    pub id: u64,
    pub name: String,
    pub rows: u64,
    pub invalid: u64,
}

/// A sheet: its counts, a page of its rows, and the edits made to it.
#[derive(Template)]
#[template(path = "sheet.html")]
pub struct Sheet<'a> {
    pub me: &'a Who,
    pub id: u64,
    pub name: &'a str,
    pub version: usize,
    pub counts: Counts,
    pub headers: &'a [String],
    pub rows: Vec<RowView>,
    pub page: u64,
    pub pages: u64,
    /// How many rows the filter lets through.
    pub total: u64,
    pub problems_only: bool,
    pub edits: &'a [Edit],
    /// Why the last change was refused.
    pub error: Option<String>,
    /// Where the send button sends; `None`: the desk checks only.
    pub send_to: Option<String>,
    /// Four eyes: the sheet is sent once a checker approves it.
    pub approval_needed: bool,
    /// The sheet's latest approval, asked for or decided.
    pub approval: Option<crate::access::Approval>,
    /// The sheet's run, once it was sent.
    pub run: Option<super::send::RunState>,
    /// The desk (its host) sending it now, where that is another desk.
    pub sending_elsewhere: Option<String>,
    /// The last save can be undone.
    pub can_undo: bool,
}

/// The cells a find and replace would change, before they do.
#[derive(Template)]
#[template(path = "replace.html")]
pub struct Replace<'a> {
    pub me: &'a Who,
    pub id: u64,
    pub name: &'a str,
    pub column: &'a str,
    pub col: usize,
    pub find: &'a str,
    pub with: &'a str,
    pub matches: Vec<crate::job::Match>,
}

impl Sheet<'_> {
    /// A maker may ask for approval: none is waiting or in force.
    pub fn may_ask(&self) -> bool {
        self.counts.orders_ready > 0
            && self.me.has_maker()
            && !self
                .approval
                .as_ref()
                .is_some_and(|a| a.state == crate::access::ApprovalState::Pending || a.in_force())
    }

    /// The link to page `page` with the same filter.
    pub fn page_link(&self, page: &u64) -> String {
        format!(
            "/sheets/{}?page={page}{}",
            self.id,
            if self.problems_only {
                "&problems=1"
            } else {
                ""
            }
        )
    }
}

/// One row, every cell a field of a form.
#[derive(Template)]
#[template(path = "row.html")]
pub struct Row<'a> {
    pub me: &'a Who,
    pub id: u64,
    pub name: &'a str,
    pub headers: &'a [String],
    pub row: RowView,
}

/// A row as the table shows it.
pub struct RowView {
    pub number: u64,
    pub status: &'static str,
    pub order_id: String,
    /// Its order's group, and what sending it gave, once answered.
    pub group: u32,
    pub sent: Option<&'static str>,
    pub cells: Vec<CellView>,
    /// Problems of the row as a whole (not of one cell), in words.
    pub row_problems: Vec<String>,
    /// For a held row: which rows hold its order back.
    pub held_by: String,
}

/// A cell, with the problems the checks found in it.
pub struct CellView {
    pub col: usize,
    pub text: String,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl CellView {
    pub fn marked(&self) -> bool {
        !self.errors.is_empty() || !self.warnings.is_empty()
    }
}

impl RowView {
    pub fn of(row: ShownRow) -> RowView {
        let mut cells: Vec<CellView> = row
            .cells
            .into_iter()
            .enumerate()
            .map(|(col, text)| CellView {
                col,
                text,
                errors: Vec::new(),
                warnings: Vec::new(),
            })
            .collect();
        let mut row_problems = Vec::new();
        for (col, message) in row.problems {
            match col.and_then(|c| cells.get_mut(c)) {
                Some(cell) => cell.errors.push(message),
                None => row_problems.push(format!("Error: {message}")),
            }
        }
        for (col, message) in row.warnings {
            match col.and_then(|c| cells.get_mut(c)) {
                Some(cell) => cell.warnings.push(message),
                None => row_problems.push(format!("Warning: {message}")),
            }
        }
        let held_by = row
            .held_by
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        RowView {
            number: row.number,
            status: row.status,
            order_id: row.order_id,
            group: row.group,
            sent: None,
            cells,
            row_problems,
            held_by,
        }
    }
}

/// The runs the ledger recorded.
#[derive(Template)]
#[template(path = "runs.html")]
pub struct Runs {
    pub me: Who,
    /// The API and tenant whose ledger it is; `None`: the desk checks only.
    pub to: Option<String>,
    pub runs: Vec<RunView>,
}

/// One run.
#[derive(Template)]
#[template(path = "run.html")]
pub struct Run {
    pub me: Who,
    pub run: RunView,
    pub sha: String,
    pub has_report: bool,
    pub edits: Vec<crate::job::Edit>,
}

/// One order, as the ledger holds it.
#[derive(Template)]
#[template(path = "order.html")]
pub struct Order {
    pub me: Who,
    pub item: crate::submit::ledger::ItemHistory,
    pub status: String,
    /// The last answer in words (status, code, messages).
    pub answer: String,
}

/// `verify` of an uploaded report, and what it found.
#[derive(Template)]
#[template(path = "verify.html")]
pub struct Verify<'a> {
    pub me: &'a Who,
    /// The report verified, once one was.
    pub name: Option<String>,
    pub holds: bool,
    pub failed: usize,
    /// Each check: its result (`ok`, `FAIL`, `not checked`), name and
    /// finding.
    pub findings: Vec<(&'static str, &'static str, String)>,
    pub error: Option<String>,
}

impl<'a> Verify<'a> {
    /// The form, before a report is given.
    pub fn empty(me: &'a Who) -> Self {
        Verify {
            me,
            name: None,
            holds: false,
            failed: 0,
            findings: Vec::new(),
            error: None,
        }
    }
}

/// A run as the pages show it.
pub struct RunView {
    pub id: i64,
    pub started_at: String,
    pub command: String,
    pub input: String,
    pub rows: u64,
    pub accepted: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub failed: u64,
    /// When it ended, or that it did not.
    pub ended: String,
    pub report: Option<String>,
    pub sha256: String,
    /// The host it ran on, where the ledger says.
    pub host: Option<String>,
}

impl RunView {
    pub fn of(r: crate::submit::ledger::RunRecord) -> RunView {
        let count = |at: &[&str]| {
            let mut v = r.counts.as_ref();
            for k in at {
                v = v.and_then(|v| v.get(*k));
            }
            v.and_then(serde_json::Value::as_u64).unwrap_or(0)
        };
        RunView {
            host: r.host.clone(),
            id: r.id,
            rows: count(&["counts", "rows"]),
            accepted: count(&["sent", "accepted"]),
            skipped: count(&["sent", "skipped"]),
            rejected: count(&["sent", "rejected"]),
            failed: count(&["sent", "failed"]),
            ended: match (&r.finished_at, &r.stopped) {
                (None, _) => "not ended (running, or cut off)".into(),
                (Some(at), Some(why)) => format!("{at}, stopped: {why}"),
                (Some(at), None) => at.clone(),
            },
            started_at: r.started_at,
            command: r.command,
            input: r.input,
            report: r.report,
            sha256: r.input_sha256,
        }
    }
}

/// The approvals, newest first.
#[derive(Template)]
#[template(path = "approvals.html")]
pub struct Approvals {
    pub me: Who,
    pub all: Vec<crate::access::Approval>,
}

/// One approval: what will be sent, and the checker's buttons.
#[derive(Template)]
#[template(path = "approval.html")]
pub struct ApprovalPage {
    pub me: Who,
    pub approval: crate::access::Approval,
    /// The sheet's id on this desk, while it is here.
    pub sheet: Option<u64>,
    /// The one looking may approve or reject it.
    pub may_decide: bool,
    pub expired: bool,
    pub edits: Vec<Edit>,
    /// Earlier runs of a file of the same name.
    pub earlier: Vec<RunView>,
}

/// The audit trail, and whether its chain holds.
#[derive(Template)]
#[template(path = "audit.html")]
pub struct Trail {
    pub me: Who,
    pub records: Vec<crate::access::Record>,
    pub problems: Vec<crate::access::TrailProblem>,
}

/// The users, and an admin's forms.
#[derive(Template)]
#[template(path = "users.html")]
pub struct Users {
    pub me: Who,
    pub users: Vec<crate::access::User>,
    pub error: Option<String>,
}

impl Users {
    /// Every role, for the forms.
    pub fn roles(&self) -> [crate::access::Role; 4] {
        crate::access::Role::ALL
    }
}
