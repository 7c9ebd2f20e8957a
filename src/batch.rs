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

use crate::dcms::OrderBody;
pub use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::lines::{line_columns, order_report, result_columns, row_line};
use crate::ops::RowCheck;
use crate::ops::sheet::OpSheet;
use crate::pipeline::Checked;
use crate::report::{
    self, ApiFacts, FactCounts, Header, InputFacts, Line, RunFacts, SentCounts, SentOrders,
};
use crate::submit::ledger::{RowRecord, RunEnd, RunStart};
use crate::submit::{self, CreateOrders, NOT_SUBMITTED, Operation, SendStatus, Sent, Tally};

/// One batch: the command, its options for the run facts, when it
/// started, where its report goes, and the counters a progress display
/// reads while it runs.
pub struct Batch<'a> {
    pub command: &'static str,
    pub options: Value,
    pub started: String,
    pub report: &'a crate::report::Target,
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
    pub exit: Exit,
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
                    Err(Error::Internal(
                        "the send engine stopped taking orders".into(),
                    ))
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
        let mut facts = row_facts(input, &batch, &outcomes);
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
        let rows = row_records(sheet, &lines);
        let facts_path = report::write(batch.report, &header, &mut facts, |_, send| {
            send(report::Batch::Lines(lines));
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
            ledger: self.ledger.place(),
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
            &batch.report.path,
            stopped.as_ref().map(ToString::to_string),
            end,
        )?;
        let exit = match &stopped {
            Some(why) => why.exit(),
            None => Exit::rows(facts.all_done()),
        };
        Ok(Finished {
            facts,
            facts_path,
            exit,
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

/// The run facts of a row sheet's batch (cancels, upgrades), before the
/// send's counts.
fn row_facts<T>(input: &RowSheet<'_, T>, batch: &Batch<'_>, outcomes: &[Option<Sent>]) -> RunFacts {
    let sheet = input.sheet;
    let facts_input = InputFacts {
        path: input.path.display().to_string(),
        absolute_path: InputFacts::absolute(input.path),
        sha256: input.sha256.to_string(),
        bytes: input.bytes,
        sheet: sheet.sheet.name().to_string(),
        header_row: sheet.columns.header_row,
        detected: sheet.sheet.notes().to_vec(),
    };
    let valid = outcomes.iter().flatten().count() as u64;
    let counts = FactCounts {
        rows: input.checks.len() as u64,
        valid,
        invalid: input.checks.len() as u64 - valid,
        held: 0,
        warnings: 0,
        blank_rows: sheet.blank_rows,
        orders: None,
    };
    RunFacts::new(
        batch.command,
        facts_input,
        input.batch_id.map(str::to_string),
        batch.options.clone(),
        batch.started.clone(),
        counts,
    )
}

/// The ledger's record of every row of a row sheet's report.
fn row_records(sheet: &OpSheet, lines: &[Line<'_>]) -> Vec<RowRecord> {
    let key_col = ["order_id", "kit_no"]
        .iter()
        .find_map(|k| sheet.columns.headers.iter().position(|h| h == k));
    lines
        .iter()
        .map(|l| RowRecord {
            row: l.number,
            key: key_col
                .and_then(|c| l.cells.list().get(c).map(str::to_owned))
                .unwrap_or_default(),
            status: l.results[0].text().into_owned(),
            line: String::new(),
        })
        .collect()
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
