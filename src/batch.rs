//! One batch, from its checked items to its report: the engine `submit`,
//! `cancel` and `upgrade` share. The ledger records the run, the items go
//! through [`submit::send_batch`] (ledger decisions, lookups, sends), each
//! outcome lands in its slot (an order's group, a sheet's row), the report
//! and its run facts are written, the ledger records the run's end, and the
//! exit code follows from the facts — the same way for every command.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::dcms::{Client, CreateFields, OrderBody};
use crate::error::{Error, Result};
use crate::exit;
use crate::group::{RowOutcome, Status, list};
use crate::ops::RowCheck;
use crate::ops::sheet::{OpRow, OpSheet};
use crate::pipeline::Checked;
use crate::report::{
    self, ApiFacts, ErrorItem, FactCounts, Header, InputFacts, Line, RunFacts, SentCounts,
    SentOrders, Value as Cell,
};
use crate::submit::ledger::{RowRecord, RunEnd, RunStart};
use crate::submit::{
    self, CreateOrders, Ledger, NOT_SUBMITTED, Operation, SendStatus, Sent, Stopper, SubmitOpts,
    Tally,
};
use crate::validate::Problem;

/// What every batch of one command shares: where it sends, its ledger,
/// how it sends, and the stop signal.
pub struct Engine {
    pub runtime: tokio::runtime::Runtime,
    pub ledger: Ledger,
    pub client: Client,
    pub opts: SubmitOpts,
    pub stopper: Arc<Stopper>,
    pub tenant: String,
    pub base_url: String,
    /// The config file's profile that named the API, if one did.
    pub profile: Option<String>,
    /// The create body's field names.
    pub fields: CreateFields,
}

/// One batch: the command, its options for the run facts, when it
/// started, where its report goes, and the counters a progress display
/// reads while it runs.
pub struct Batch<'a> {
    pub command: &'static str,
    pub options: Value,
    pub started: String,
    pub report: &'a Path,
    pub tally: Arc<Tally>,
    /// A CSV report begins with a UTF-8 byte-order mark.
    pub csv_bom: bool,
}

/// A cancel or upgrade sheet, read and checked: one item per valid row.
pub struct RowSheet<'a, T> {
    pub path: &'a Path,
    pub sha256: &'a str,
    pub bytes: u64,
    pub sheet: &'a OpSheet,
    pub checks: &'a [RowCheck<T>],
    /// The `--batch-id` label, if given.
    pub batch_id: Option<&'a str>,
}

/// A batch done: its run facts as written beside the report, where they
/// are, its exit code, and what the engine noted on the way (a bulk lookup
/// the API does not offer...).
#[derive(Debug)]
pub struct Finished {
    pub facts: RunFacts,
    pub facts_path: PathBuf,
    pub code: i32,
    pub notes: Vec<String>,
    /// The most frequent refusals: (error code, orders or rows), most first.
    pub rejections: Vec<(String, u64)>,
}

impl Finished {
    /// The counts of the rows and, if sent, of their outcomes, in one
    /// object (for a `--json` summary).
    pub fn counts_json(&self) -> Value {
        let mut counts = serde_json::to_value(self.facts.counts).unwrap_or_default();
        if let (Some(obj), Some(Ok(Value::Object(sent)))) = (
            counts.as_object_mut(),
            self.facts.sent.map(serde_json::to_value),
        ) {
            obj.extend(sent);
        }
        counts
    }
}

impl Engine {
    /// Sends a checked order sheet's ready orders, streamed from the check
    /// with their group as their slot, and writes its report.
    pub fn orders(&self, checked: &Checked, batch: Batch<'_>) -> Result<Finished> {
        let input = checked.path.display().to_string();
        let start = RunStart {
            command: batch.command,
            input: &input,
            input_sha256: checked.sheet.sha256(),
            batch_id: &checked.batch_id,
            options: &batch.options,
            started_at: &batch.started,
        };
        let t0 = std::time::Instant::now();
        let slots = checked.grouping.groups().len();
        let fields = &self.fields;
        let (run, sent) = self.send(&start, CreateOrders, slots, &batch, |emit| {
            checked.for_each_order(&mut |g, order| {
                let body = OrderBody::new(&order, fields).map_err(Error::Body)?;
                if emit(g as usize, body) {
                    Ok(())
                } else {
                    Err(Error::Usage("the send engine stopped taking orders".into()))
                }
            })
        })?;
        crate::clock::timing("sent", t0);
        let mut facts = checked.facts(batch.command, batch.options.clone(), batch.started.clone());
        facts.sent = Some(order_counts(checked, &sent));
        facts.api = Some(self.api_facts(run, &batch.tally));
        let mut marks = Vec::new();
        let facts_path = order_report(
            checked,
            batch.report,
            batch.csv_bom,
            &mut facts,
            Some((&sent, &mut marks)),
        )?;
        let rejections = top_rejections(sent.iter().flatten());
        let line_columns = line_columns(checked).1;
        let groups = checked.grouping.groups();
        let rows = marks.into_iter().map(|m| RowRecord {
            row: m.row,
            key: groups[m.group as usize].order_id().to_owned(),
            status: m.status.to_owned(),
            line: m.line.map(hex::encode).unwrap_or_default(),
        });
        self.finish(
            run,
            facts,
            facts_path,
            &batch,
            rejections,
            (Box::new(rows), line_columns),
        )
    }

    /// Sends a cancel or upgrade sheet's items, one per valid row with its
    /// row as its slot, and writes its report: every row with its outcome.
    pub fn rows<O: Operation>(
        &self,
        op: O,
        input: &RowSheet<'_, O::Item>,
        batch: Batch<'_>,
    ) -> Result<Finished> {
        let path = input.path.display().to_string();
        let start = RunStart {
            command: batch.command,
            input: &path,
            input_sha256: input.sha256,
            batch_id: input.batch_id.unwrap_or_default(),
            options: &batch.options,
            started_at: &batch.started,
        };
        let checks = input.checks;
        let (run, sent) = self.send(&start, op, checks.len(), &batch, |emit| {
            for (i, c) in checks.iter().enumerate() {
                if let Some(item) = &c.item
                    && !emit(i, item.clone())
                {
                    break;
                }
            }
            Ok(())
        })?;
        // A valid row always has an outcome; were one missing, the row says
        // it was not sent rather than vanish from the counts.
        let outcomes: Vec<Option<Sent>> = checks
            .iter()
            .zip(sent)
            .map(|(c, s)| c.item.as_ref().map(|_| s.unwrap_or_else(unsent)))
            .collect();
        let sheet = input.sheet;
        let facts_input = InputFacts {
            path: path.clone(),
            absolute_path: InputFacts::absolute(input.path),
            sha256: input.sha256.to_string(),
            bytes: input.bytes,
            sheet: sheet.sheet.name().to_string(),
            header_row: sheet.columns.header_row,
            detected: sheet.sheet.notes().to_vec(),
        };
        let valid = outcomes.iter().flatten().count() as u64;
        let counts = FactCounts {
            rows: checks.len() as u64,
            valid,
            invalid: checks.len() as u64 - valid,
            held: 0,
            warnings: 0,
            blank_rows: sheet.blank_rows,
            orders: None,
        };
        let mut facts = RunFacts::new(
            batch.command,
            facts_input,
            input.batch_id.map(str::to_string),
            batch.options.clone(),
            batch.started.clone(),
            counts,
        );
        facts.sent = Some(row_counts(&outcomes));
        facts.api = Some(self.api_facts(run, &batch.tally));

        let header = Header {
            source_file: path.clone(),
            sheet: sheet.sheet.name().to_string(),
            columns: sheet.columns.headers.clone(),
            results: result_columns::<O>(),
            json_order: (0..result_columns::<O>().len()).collect(),
            rows: sheet.rows.len(),
            csv_bom: batch.csv_bom,
        };
        let lines: Vec<Line<'_>> = sheet
            .rows
            .iter()
            .zip(checks)
            .zip(&outcomes)
            .map(|((row, check), sent)| row_line(sheet, row, check, sent.as_ref(), &header.results))
            .collect();
        let key_col = ["order_id", "kit_no"]
            .iter()
            .find_map(|k| sheet.columns.headers.iter().position(|h| h == k));
        let rows: Vec<RowRecord> = lines
            .iter()
            .map(|l| RowRecord {
                row: l.number,
                key: key_col
                    .and_then(|c| l.cells.list().get(c).map(str::to_owned))
                    .unwrap_or_default(),
                status: l.results[0].text().into_owned(),
                line: String::new(),
            })
            .collect();
        let facts_path = report::write(batch.report, &header, &mut facts, |send| {
            send(lines);
            Ok(())
        })?;
        let rejections = top_rejections(outcomes.iter().flatten());
        self.finish(
            run,
            facts,
            facts_path,
            &batch,
            rejections,
            (Box::new(rows.into_iter()), Vec::new()),
        )
    }

    /// One batch through [`submit::send_batch`]: the run's ledger id and
    /// the outcomes by slot.
    fn send<O, P>(
        &self,
        start: &RunStart<'_>,
        op: O,
        slots: usize,
        batch: &Batch<'_>,
        produce: P,
    ) -> Result<(i64, Vec<Option<Sent>>)>
    where
        O: Operation,
        P: FnOnce(&mut (dyn FnMut(usize, O::Item) -> bool + Send)) -> Result<()> + Send,
    {
        submit::send_batch(
            &self.runtime,
            &self.ledger,
            start,
            op,
            self.client.clone(),
            slots,
            produce,
            &self.opts,
            batch.tally.clone(),
            self.stopper.clone(),
        )
    }

    fn api_facts(&self, run: i64, tally: &Tally) -> ApiFacts {
        ApiFacts {
            tenant: self.tenant.clone(),
            base_url: self.base_url.clone(),
            profile: self.profile.clone(),
            ledger: std::path::absolute(self.ledger.path())
                .unwrap_or_else(|_| self.ledger.path().to_path_buf())
                .display()
                .to_string(),
            ledger_run: run,
            requests: tally.requests.load(Ordering::Relaxed),
            stopped: self.stopper.reason().map(|r| r.to_string()),
        }
    }

    /// Records the run's end in the ledger, once its report is written,
    /// and gives its exit code.
    fn finish(
        &self,
        run: i64,
        facts: RunFacts,
        facts_path: PathBuf,
        batch: &Batch<'_>,
        rejections: Vec<(String, u64)>,
        (rows, line_columns): (Box<dyn Iterator<Item = RowRecord> + '_>, Vec<String>),
    ) -> Result<Finished> {
        let stopped = self.stopper.reason();
        let end = RunEnd {
            report_sha256: facts
                .report
                .as_ref()
                .map(|r| r.sha256.clone())
                .unwrap_or_default(),
            line_columns,
            rows,
        };
        let counts = serde_json::json!({ "counts": facts.counts, "sent": facts.sent });
        self.ledger.end_run(
            run,
            &counts,
            batch.report,
            stopped.as_ref().map(ToString::to_string),
            end,
        )?;
        let code = match &stopped {
            Some(why) => why.exit_code(),
            None if facts.all_done() => exit::OK,
            None => exit::ROWS_NOT_DONE,
        };
        Ok(Finished {
            facts,
            facts_path,
            code,
            notes: batch.tally.take_notes(),
            rejections,
        })
    }
}

/// Rows and orders by outcome. A sent order's valid rows take its outcome.
fn order_counts(checked: &Checked, by_group: &[Option<Sent>]) -> SentCounts {
    let mut c = SentCounts::default();
    let mut o = SentOrders::default();
    for (group, sent) in checked.grouping.groups().iter().zip(by_group) {
        let Some(sent) = sent else { continue };
        let rows = u64::from(group.rows - group.invalid);
        let (row_count, order_count) = match sent.status {
            SendStatus::Accepted => (&mut c.accepted, &mut o.orders_accepted),
            SendStatus::Rejected => (&mut c.rejected, &mut o.orders_rejected),
            SendStatus::Failed => (&mut c.failed, &mut o.orders_failed),
            SendStatus::Skipped => (&mut c.skipped, &mut o.orders_skipped),
            SendStatus::Conflict => (&mut c.conflict, &mut o.orders_conflict),
            SendStatus::Decided => (&mut c.decided, &mut o.orders_decided),
        };
        *row_count += rows;
        *order_count += 1;
        if never_sent(sent) {
            c.not_sent += rows;
        }
    }
    c.orders = Some(o);
    debug_assert_eq!(
        c.accepted + c.rejected + c.failed + c.skipped + c.conflict + c.decided,
        checked.grouping.counts.valid,
        "every valid row belongs to a sent order"
    );
    c
}

/// Rows by outcome, one item per row.
fn row_counts(outcomes: &[Option<Sent>]) -> SentCounts {
    let mut c = SentCounts::default();
    for sent in outcomes.iter().flatten() {
        c.not_sent += u64::from(never_sent(sent));
        *match sent.status {
            SendStatus::Accepted => &mut c.accepted,
            SendStatus::Rejected => &mut c.rejected,
            SendStatus::Failed => &mut c.failed,
            SendStatus::Skipped => &mut c.skipped,
            SendStatus::Conflict => &mut c.conflict,
            SendStatus::Decided => &mut c.decided,
        } += 1;
    }
    c
}

/// A FAILED outcome of an item no request was sent for.
fn never_sent(sent: &Sent) -> bool {
    sent.status == SendStatus::Failed && sent.error_code.as_deref() == Some(NOT_SUBMITTED)
}

/// The most frequent refusals: error codes of the REJECTED outcomes, each
/// with how many, most first (at most 3).
fn top_rejections<'s>(outcomes: impl Iterator<Item = &'s Sent>) -> Vec<(String, u64)> {
    let mut by_code: std::collections::HashMap<String, u64> = Default::default();
    for s in outcomes.filter(|s| s.status == SendStatus::Rejected) {
        let code = s.error_code.clone().unwrap_or_else(|| "(no code)".into());
        *by_code.entry(code).or_default() += 1;
    }
    let mut top: Vec<(String, u64)> = by_code.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(3);
    top
}

fn unsent() -> Sent {
    Sent {
        status: SendStatus::Failed,
        error_code: Some(NOT_SUBMITTED.into()),
        messages: vec!["not sent".into()],
        ..Sent::default()
    }
}

/// The result columns of a validate report.
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
fn result_columns<O: Operation>() -> Vec<&'static str> {
    let mut cols = vec!["status"];
    cols.extend(SUBMIT_RESULTS.iter().skip(2).filter(|c| **c != "warnings"));
    cols.extend(O::RESULTS);
    cols
}

/// One row's outcome while the report is written, for the ledger: small
/// (a million rows are not held as strings), its order by its group.
pub struct RowMark {
    row: u64,
    group: u32,
    status: &'static str,
    /// The product line's fingerprint; `None` for an INVALID row.
    line: Option<[u8; 12]>,
}

/// The outcome of a valid row's order, if it was sent.
fn sent_of<'a>(out: &RowOutcome<'_>, sent: Option<&'a [Option<Sent>]>) -> Option<&'a Sent> {
    sent.and_then(|s| s.get(out.group as usize))
        .and_then(Option::as_ref)
        .filter(|_| out.status == Status::Valid)
}

/// A row's status word: its order's outcome, else its own status.
fn status_of(out: &RowOutcome<'_>, sent: Option<&[Option<Sent>]>) -> &'static str {
    match sent_of(out, sent) {
        Some(s) => s.status.as_str(),
        None => out.status.as_str(),
    }
}

/// The input columns of a product line (its product fields and quantity):
/// their indices and names, for the ledger's row fingerprints.
fn line_columns(checked: &Checked) -> (Vec<usize>, Vec<String>) {
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
    path: &Path,
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
    report::write(path, &header, facts, |send| {
        let as_csv = report::Format::from_path(path)? == report::Format::Csv;
        checked.for_each_cells(as_csv, &mut |rows| {
            let outcomes: Vec<(u32, &'static str)> = rows
                .iter()
                .map(|(_, out)| (out.group, status_of(out, sent)))
                .collect();
            let lines: Vec<Line<'_>> = rows
                .into_iter()
                .map(|(cells, out)| order_line(checked, cells, &out, sent))
                .collect();
            if let Some(marks) = marks.as_deref_mut() {
                marks.extend(lines.iter().zip(outcomes).map(|(l, (group, status))| {
                    let line = (status != "INVALID").then(|| {
                        let cells = l.cells.list();
                        report::line_digest(line_cols.iter().map(|&c| cells.get(c).unwrap_or("")))
                    });
                    RowMark {
                        row: l.number,
                        group,
                        status,
                        line,
                    }
                }));
            }
            if send(lines) {
                Ok(())
            } else {
                Err(Error::report(path, "the report writer stopped"))
            }
        })
    })
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
    path: &Path,
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
            let mut list: csv::StringRecord = row.cells.iter().collect();
            for _ in row.cells.len()..sheet.columns.len() {
                list.push_field("");
            }
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
    report::write(path, &header, facts, |send| {
        send(lines);
        Ok(())
    })
}

/// A row of a cancel or upgrade sheet with its outcome, as a report line.
fn row_line<'a, T>(
    sheet: &OpSheet,
    row: &OpRow,
    check: &RowCheck<T>,
    sent: Option<&Sent>,
    results: &[&str],
) -> Line<'a> {
    let mut list: csv::StringRecord = row.cells.iter().collect();
    for _ in row.cells.len()..sheet.columns.len() {
        list.push_field("");
    }
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
