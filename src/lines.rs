//! Report lines: a checked row with its outcome, as the report shows it.
//! Between the checking pipeline and the send engine: `validate` writes
//! its reports from here without the engine; the engine's runs write
//! theirs with the outcomes it got.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::group::{RowOutcome, Status, list};
use crate::ops::RowCheck;
use crate::ops::sheet::{OpRow, OpSheet};
use crate::pipeline::Checked;
use crate::report::{
    self, ErrorItem, FactCounts, Header, InputFacts, Line, RunFacts, Target, Value as Cell,
};
use crate::submit::{Operation, SendStatus, Sent};
use crate::validate::Problem;

const CHECK_RESULTS: [&str; 4] = ["status", "order_id", "errors", "warnings"];

/// The result columns of a submit report; a JSON Lines object lists the
/// row's problems and warnings before the API's code.
const SUBMIT_RESULTS: [&str; 10] = [
    "status",
    "order_id",
    "error_code",
    "errors",
    "warnings",
    "http_status",
    "attempts",
    "submitted_at",
    "latency_ms",
    "request_id",
];
const SUBMIT_JSON_ORDER: [usize; 10] = [0, 1, 3, 4, 2, 5, 6, 7, 8, 9];

/// The result columns of a row report: `status` first, then the API's
/// answer, then the operation's own fields. Cancel and upgrade rows have
/// no warnings.
pub(crate) fn result_columns<O: Operation>() -> Vec<&'static str> {
    let mut cols = vec!["status"];
    cols.extend(SUBMIT_RESULTS.iter().skip(2).filter(|c| **c != "warnings"));
    cols.extend(O::RESULTS);
    cols
}

/// One row's outcome while the report is written, for the ledger: small
/// (a million rows are not held as strings), its order by its group.
pub struct RowMark {
    pub(crate) row: u64,
    pub(crate) group: u32,
    pub(crate) status: &'static str,
    /// The product line's fingerprint; `None` for an INVALID row.
    pub(crate) line: Option<[u8; 12]>,
}

/// The outcome of a valid row's order, if it was sent.
pub(crate) fn sent_of<'a>(
    out: &RowOutcome<'_>,
    sent: Option<&'a [Option<Sent>]>,
) -> Option<&'a Sent> {
    sent.and_then(|s| s.get(out.group as usize))
        .and_then(Option::as_ref)
        .filter(|_| out.status == Status::Valid)
}

/// A row's status word: its order's outcome, else its own status.
pub(crate) fn status_of(out: &RowOutcome<'_>, sent: Option<&[Option<Sent>]>) -> &'static str {
    match sent_of(out, sent) {
        Some(s) => s.status.as_str(),
        None => out.status.as_str(),
    }
}

/// The input columns of a product line (its product fields and quantity):
/// their indices and names, for the ledger's row fingerprints.
pub(crate) fn line_columns(checked: &Checked) -> (Vec<usize>, Vec<String>) {
    crate::validate::PRODUCT_FIELDS
        .iter()
        .chain([&crate::columns::Field::Quantity])
        .filter_map(|f| checked.columns.get(*f))
        .map(|c| (c, checked.columns.headers[c].clone()))
        .unzip()
}

/// Writes the report of a checked order sheet, and for a submit run each
/// order's outcome (`sent`, by group index; `None` for orders not sent)
/// with every row's record for the ledger gathered in `rows`, then its
/// run facts; returns where the facts went.
pub fn order_report<'a>(
    checked: &'a Checked,
    target: &Target,
    csv_bom: bool,
    facts: &mut RunFacts,
    submitted: Option<(&'a [Option<Sent>], &mut Vec<RowMark>)>,
) -> Result<PathBuf> {
    let (sent, mut marks) = match submitted {
        Some((sent, rows)) => (Some(sent), Some(rows)),
        None => (None, None),
    };
    let (line_cols, _) = line_columns(checked);
    let (results, json_order) = match sent {
        Some(_) => (SUBMIT_RESULTS.to_vec(), SUBMIT_JSON_ORDER.to_vec()),
        None => (CHECK_RESULTS.to_vec(), vec![0, 1, 2, 3]),
    };
    let header = Header {
        source_file: checked.path.display().to_string(),
        sheet: checked.sheet.name().to_string(),
        columns: checked.columns.headers.clone(),
        results,
        json_order,
        rows: checked.grouping.len(),
        csv_bom,
    };
    report::write(target, &header, facts, |format, send| {
        let as_csv = target.format == report::Format::Csv;
        // Each line is made, and for a text report formatted, on the core
        // that reads its row.
        let add = |part: &mut Part<'a>, cells: report::Cells<'_>, out: RowOutcome<'a>| {
            let mark = |part: &mut Part<'a>, line: &Line<'_>| {
                if let Some(sent) = sent {
                    part.marks.push(row_mark(line, &out, sent, &line_cols));
                }
            };
            match format {
                Some(format) => {
                    if part.bytes.capacity() == 0 {
                        part.bytes = format.buffer();
                    }
                    let line = order_line(checked, cells, &out, sent);
                    mark(part, &line);
                    if part.failed.is_none() {
                        part.failed = format.line(&mut part.bytes, &line).err();
                    }
                }
                // A workbook's lines are kept until written: their cells too.
                None => {
                    let line = order_line(checked, cells.into_owned(), &out, sent);
                    mark(part, &line);
                    part.lines.push(line);
                }
            }
        };
        checked.fold_cells(as_csv, &add, &mut |part: Part<'a>| {
            if let Some(e) = part.failed {
                return Err(Error::report(&target.path, e));
            }
            if let Some(marks) = marks.as_deref_mut() {
                marks.extend(part.marks);
            }
            let batch = match format {
                Some(_) => report::Batch::Bytes(part.bytes),
                None => report::Batch::Lines(part.lines),
            };
            if send(batch) {
                Ok(())
            } else {
                Err(Error::report(&target.path, "the report writer stopped"))
            }
        })
    })
}

/// A sent row's record for the ledger: its outcome, and the fingerprint
/// of its product line unless it is invalid.
fn row_mark(
    line: &Line<'_>,
    out: &RowOutcome<'_>,
    sent: &[Option<Sent>],
    line_cols: &[usize],
) -> RowMark {
    let status = status_of(out, Some(sent));
    let digest = (status != "INVALID").then(|| {
        let cells = line.cells.list();
        report::line_digest(line_cols.iter().map(|&c| cells.get(c).unwrap_or("")))
    });
    RowMark {
        row: line.number,
        group: out.group,
        status,
        line: digest,
    }
}

/// The report lines of a batch of rows: formatted, or, for a workbook,
/// to be written; and the rows' records for the ledger.
#[derive(Default)]
struct Part<'a> {
    bytes: Vec<u8>,
    lines: Vec<Line<'a>>,
    marks: Vec<RowMark>,
    /// The first line that failed to format.
    failed: Option<std::io::Error>,
}

/// A row of an order sheet with its outcome, as a report line.
fn order_line<'a>(
    checked: &Checked,
    cells: report::Cells<'a>,
    out: &RowOutcome<'a>,
    sent: Option<&'a [Option<Sent>]>,
) -> Line<'a> {
    let submitted = sent.is_some();
    let status = status_of(out, sent);
    let sent = sent_of(out, sent);
    let mut errors = error_items(out, |c| checked.cell_ref(c, out.number));
    let warnings = problem_items(out.warnings, |c| checked.cell_ref(c, out.number));
    errors.extend(sent_items(sent));
    let mut results = vec![Cell::Text(status.into()), Cell::Text(out.order_id.into())];
    if !submitted {
        results.push(Cell::Errors(errors));
        results.push(Cell::Errors(warnings));
    } else {
        let text = |t: Option<&'a str>| t.map_or(Cell::None, |t| Cell::Text(t.into()));
        let owned = |t: Option<String>| t.map_or(Cell::None, |t| Cell::Text(t.into()));
        let number = |n: Option<u64>| n.map_or(Cell::None, Cell::Number);
        results.extend([
            text(sent.and_then(|s| s.error_code.as_deref())),
            Cell::Errors(errors),
            Cell::Errors(warnings),
            number(sent.and_then(|s| s.http_status).map(u64::from)),
            number(sent.map(|s| u64::from(s.attempts))),
            owned(sent.and_then(|s| s.submitted_at.map(|t| t.to_string()))),
            number(sent.and_then(|s| s.latency_ms)),
            owned(sent.and_then(|s| s.request_id.map(|id| id.to_string()))),
        ]);
    }
    Line {
        number: out.number,
        cells,
        results,
        flagged: flags(out.problems),
        warned: flags(out.warnings),
    }
}

/// The cells of a row's problems, for the XLSX report to mark.
fn flags<'a>(problems: &[Problem]) -> Vec<(usize, std::borrow::Cow<'a, str>, String)> {
    problems
        .iter()
        .filter_map(|p| {
            let field = std::borrow::Cow::Owned(p.field.to_string());
            p.col.map(|c| (c, field, p.message.clone()))
        })
        .collect()
}

/// Problems as the report shows them, each with its cell (`cell_ref` of
/// its column).
fn problem_items(problems: &[Problem], cell_ref: impl Fn(usize) -> String) -> Vec<ErrorItem> {
    problems
        .iter()
        .map(|p| ErrorItem {
            cell: p.col.map(&cell_ref),
            field: p.field.to_string(),
            message: p.message.clone(),
        })
        .collect()
}

/// Every problem of a row, each with its cell, and for a held row why.
pub fn error_items(out: &RowOutcome<'_>, cell_ref: impl Fn(usize) -> String) -> Vec<ErrorItem> {
    let mut items = problem_items(out.problems, cell_ref);
    if out.status == Status::Held {
        let n = out.invalid_in_order as usize;
        let more = n.saturating_sub(out.held_by.len());
        items.push(ErrorItem {
            cell: None,
            field: "order".into(),
            message: format!(
                "held: order {} has invalid row{} {}{}; fix {} or pass --allow-partial-orders",
                out.order_id,
                if n > 1 { "s" } else { "" },
                list(out.held_by),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                },
                if n > 1 { "them" } else { "it" },
            ),
        });
    }
    items
}

/// What the send said of a row's order: the API's messages for a refused
/// or failed one; for a skipped, conflicting or looked-up one, what the
/// ledger or the lookup found (when and by which run it was accepted...).
fn sent_items(sent: Option<&Sent>) -> impl Iterator<Item = ErrorItem> + '_ {
    sent.into_iter().flat_map(|s| {
        let field = match s.status {
            SendStatus::Rejected | SendStatus::Failed => "api",
            _ => "ledger",
        };
        s.messages.iter().map(move |m| ErrorItem {
            cell: None,
            field: field.into(),
            message: m.clone(),
        })
    })
}

/// The run facts of a cancel or upgrade sheet checked and not sent
/// (`validate`).
pub fn op_check_facts(
    checked: &crate::ops::Checked,
    path: &Path,
    command: &str,
    options: Value,
    started: String,
) -> RunFacts {
    let sheet = &checked.sheet;
    let input = InputFacts {
        path: path.display().to_string(),
        absolute_path: InputFacts::absolute(path),
        sha256: sheet.sheet.sha256().to_string(),
        bytes: sheet.sheet.bytes(),
        sheet: sheet.sheet.name().to_string(),
        header_row: sheet.columns.header_row,
        detected: sheet.sheet.notes().to_vec(),
    };
    let rows = checked.checks.len() as u64;
    let valid = checked.valid();
    let counts = FactCounts {
        rows,
        valid,
        invalid: rows - valid,
        held: 0,
        warnings: 0,
        blank_rows: sheet.blank_rows,
        orders: None,
    };
    RunFacts::new(command, input, None, options, started, counts)
}

/// Writes the report of a cancel or upgrade sheet checked and not sent:
/// every row VALID or INVALID with its problems; returns where its run
/// facts went.
pub fn op_check_report(
    checked: &crate::ops::Checked,
    target: &Target,
    csv_bom: bool,
    facts: &mut RunFacts,
) -> Result<PathBuf> {
    let sheet = &checked.sheet;
    let header = Header {
        source_file: facts.input.path.clone(),
        sheet: sheet.sheet.name().to_string(),
        columns: sheet.columns.headers.clone(),
        results: vec!["status", "errors"],
        json_order: vec![0, 1],
        rows: sheet.rows.len(),
        csv_bom,
    };
    let lines: Vec<Line<'_>> = sheet
        .rows
        .iter()
        .zip(&checked.checks)
        .map(|(row, check)| {
            let list = op_cells(sheet, row);
            let status = if check.item.is_some() {
                "VALID"
            } else {
                "INVALID"
            };
            Line {
                number: row.number,
                flagged: flags(&check.problems),
                warned: Vec::new(),
                cells: report::Cells::List(list),
                results: vec![
                    Cell::Text(status.into()),
                    Cell::Errors(problem_items(&check.problems, |c| {
                        sheet.sheet.cell_ref(c, row.number)
                    })),
                ],
            }
        })
        .collect();
    report::write(target, &header, facts, |_, send| {
        send(report::Batch::Lines(lines));
        Ok(())
    })
}

/// A cancel or upgrade row's cells as its report line shows them: one
/// for each column of the header, a short row filled with empty cells, a
/// long one cut (its extra cells are its problem, said in `errors`).
fn op_cells(sheet: &OpSheet, row: &OpRow) -> csv::StringRecord {
    let width = sheet.columns.len();
    let mut list: csv::StringRecord = row.cells.iter().take(width).collect();
    for _ in list.len()..width {
        list.push_field("");
    }
    list
}

/// A row of a cancel or upgrade sheet with its outcome, as a report line.
pub(crate) fn row_line<'a, T>(
    sheet: &OpSheet,
    row: &OpRow,
    check: &RowCheck<T>,
    sent: Option<&Sent>,
    results: &[&str],
) -> Line<'a> {
    let list = op_cells(sheet, row);
    let mut errors = problem_items(&check.problems, |c| sheet.sheet.cell_ref(c, row.number));
    errors.extend(sent_items(sent));
    let mut out: Vec<String> = vec![String::new(); results.len()];
    out[2] = Cell::Errors(errors).text().into_owned();
    match sent {
        None => out[0] = "INVALID".into(),
        Some(s) => {
            out[0] = s.status.as_str().into();
            out[1] = s.error_code.clone().unwrap_or_default();
            out[3] = s.http_status.map(|h| h.to_string()).unwrap_or_default();
            out[4] = s.attempts.to_string();
            out[5] = s.submitted_at.map(|t| t.to_string()).unwrap_or_default();
            out[6] = s.latency_ms.map(|l| l.to_string()).unwrap_or_default();
            out[7] = s.request_id.map(|id| id.to_string()).unwrap_or_default();
            for (i, col) in results.iter().enumerate().skip(8) {
                out[i] = s.result.get(*col).cloned().unwrap_or_default();
            }
        }
    }
    Line {
        number: row.number,
        flagged: flags(&check.problems),
        warned: Vec::new(),
        cells: report::Cells::List(list),
        results: out
            .into_iter()
            .map(|v| {
                if v.is_empty() {
                    Cell::None
                } else {
                    Cell::Text(v.into())
                }
            })
            .collect(),
    }
}
