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
use crate::ops::RowCheck;
use crate::ops::sheet::{OpRow, OpSheet};
use crate::pipeline::Checked;
use crate::report::{
    self, ApiFacts, ErrorItem, FactCounts, InputFacts, RunFacts, SentCounts, SentOrders, table,
};
use crate::submit::ledger::RunStart;
use crate::submit::{
    self, CreateOrders, Ledger, NOT_SUBMITTED, Operation, SendStatus, Sent, Stopper, SubmitOpts,
    Tally,
};

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
            input_sha256: &checked.input_sha256,
            batch_id: &checked.batch_id,
            options: &batch.options,
            started_at: &batch.started,
        };
        let slots = checked.grouping.groups().len();
        let fields = &self.fields;
        let (run, sent) = self.send(&start, CreateOrders, slots, &batch, |emit| {
            checked.for_each_order(&mut |g, order| {
                let body =
                    OrderBody::new(&order, fields).map_err(|e| Error::Usage(e.to_string()))?;
                if emit(g as usize, body) {
                    Ok(())
                } else {
                    Err(Error::Usage("the send engine stopped taking orders".into()))
                }
            })
        })?;
        let mut facts = RunFacts::of_check(
            batch.command,
            checked,
            batch.options.clone(),
            batch.started.clone(),
        );
        facts.sent = Some(order_counts(checked, &sent));
        facts.api = Some(self.api_facts(run, &batch.tally));
        let facts_path = report::write_with(checked, batch.report, &mut facts, Some(&sent))?;
        self.finish(run, facts, facts_path, &batch)
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
            path,
            sha256: input.sha256.to_string(),
            bytes: input.bytes,
            sheet: sheet.sheet.name().to_string(),
            header_row: sheet.header_row,
            detected: sheet.sheet.notes().to_vec(),
        };
        let valid = outcomes.iter().flatten().count() as u64;
        let counts = FactCounts {
            rows: checks.len() as u64,
            valid,
            invalid: checks.len() as u64 - valid,
            held: 0,
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

        let results = result_columns::<O>();
        let lines: Vec<table::Line> = sheet
            .rows
            .iter()
            .zip(checks)
            .zip(&outcomes)
            .map(|((row, check), sent)| line(sheet, row, check, sent.as_ref(), &results))
            .collect();
        let name = input.path.display().to_string();
        let table = table::Table {
            source_file: &name,
            sheet: sheet.sheet.name(),
            columns: &sheet.headers,
            results: &results,
            summary: Vec::new(),
            facts: Vec::new(),
        };
        let facts_path = report::write_lines(batch.report, table, &lines, &mut facts)?;
        self.finish(run, facts, facts_path, &batch)
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
        P: FnOnce(&mut dyn FnMut(usize, O::Item) -> bool) -> Result<()> + Send,
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
            ledger: self.ledger.path().display().to_string(),
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
    ) -> Result<Finished> {
        let stopped = self.stopper.reason();
        let counts = serde_json::json!({ "counts": facts.counts, "sent": facts.sent });
        self.ledger
            .end_run(
                run,
                &counts,
                batch.report,
                stopped.as_ref().map(ToString::to_string),
            )
            .map_err(|e| Error::Usage(e.to_string()))?;
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
        };
        *row_count += rows;
        *order_count += 1;
    }
    c.orders = Some(o);
    debug_assert_eq!(
        c.accepted + c.rejected + c.failed + c.skipped + c.conflict,
        checked.grouping.counts.valid,
        "every valid row belongs to a sent order"
    );
    c
}

/// Rows by outcome, one item per row.
fn row_counts(outcomes: &[Option<Sent>]) -> SentCounts {
    let mut c = SentCounts::default();
    for sent in outcomes.iter().flatten() {
        *match sent.status {
            SendStatus::Accepted => &mut c.accepted,
            SendStatus::Rejected => &mut c.rejected,
            SendStatus::Failed => &mut c.failed,
            SendStatus::Skipped => &mut c.skipped,
            SendStatus::Conflict => &mut c.conflict,
        } += 1;
    }
    c
}

fn unsent() -> Sent {
    Sent {
        status: SendStatus::Failed,
        error_code: Some(NOT_SUBMITTED.into()),
        messages: vec!["not sent".into()],
        ..Sent::default()
    }
}

/// The result columns of a row report: `status` first, then the API's
/// answer, then the operation's own fields.
fn result_columns<O: Operation>() -> Vec<&'static str> {
    let mut cols = vec![
        "status",
        "error_code",
        "errors",
        "http_status",
        "attempts",
        "submitted_at",
        "latency_ms",
        "request_id",
    ];
    cols.extend(O::RESULTS);
    cols
}

/// A report line: the row's cells, then its status and the API's answer.
fn line<T>(
    sheet: &OpSheet,
    row: &OpRow,
    check: &RowCheck<T>,
    sent: Option<&Sent>,
    results: &[&str],
) -> table::Line {
    let mut cells = row.cells.clone();
    cells.resize(sheet.headers.len(), String::new());
    let mut out: Vec<String> = vec![String::new(); results.len()];
    let mut errors: Vec<ErrorItem> = check
        .problems
        .iter()
        .map(|p| ErrorItem {
            cell: p.col.map(|c| sheet.sheet.cell_ref(c, row.number)),
            field: p.field.to_string(),
            message: p.message.clone(),
        })
        .collect();
    errors.extend(report::sent_items(sent));
    out[2] = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    match sent {
        None => out[0] = "INVALID".into(),
        Some(s) => {
            out[0] = s.status.as_str().into();
            out[1] = s.error_code.clone().unwrap_or_default();
            out[3] = s.http_status.map(|h| h.to_string()).unwrap_or_default();
            out[4] = s.attempts.to_string();
            out[5] = s.submitted_at.clone().unwrap_or_default();
            out[6] = s.latency_ms.map(|l| l.to_string()).unwrap_or_default();
            out[7] = s.request_id.clone().unwrap_or_default();
            for (i, col) in results.iter().enumerate().skip(8) {
                out[i] = s.result.get(*col).cloned().unwrap_or_default();
            }
        }
    }
    table::Line {
        number: row.number,
        cells,
        results: out,
    }
}
