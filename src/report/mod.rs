//! Report: one line per input data row, in input order — where it came from,
//! every original cell, and what became of it — as CSV, JSON Lines or XLSX,
//! plus the run-facts record beside it. Files are written to a temporary
//! name and renamed into place, so a crash never leaves a half report that
//! looks whole.

mod csv_out;
mod facts;
mod jsonl;
pub mod table;
mod xlsx;

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::group::{RowOutcome, Status, list};
use crate::pipeline::{Checked, RawRow};
use crate::read::Row;
use crate::submit::{SendStatus, Sent};

pub use facts::{
    ApiFacts, FactCounts, InputFacts, OrderCounts, ReportFacts, RunFacts, SentCounts, SentOrders,
    fact_lines,
};

/// The report's file format, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
    Xlsx,
}

impl Format {
    pub fn from_path(path: &Path) -> Result<Format> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Ok(Format::Csv),
            Some("jsonl") | Some("ndjson") => Ok(Format::Jsonl),
            Some("xlsx") => Ok(Format::Xlsx),
            _ => Err(Error::Usage(format!(
                "report `{}`: the extension must be .csv, .jsonl or .xlsx",
                path.display()
            ))),
        }
    }
}

/// One problem of a row, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorItem {
    /// `F7`; absent for a problem of the whole row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cell: Option<String>,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ErrorItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.cell {
            Some(c) => write!(f, "{c} {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct ReportRow<'a> {
    pub number: u64,
    /// The original cells, trimmed; empty when `verbatim` holds them.
    pub cells: Vec<Cow<'a, str>>,
    /// The original cells as the CSV input has them, when they can go into
    /// a CSV report as they are (see `csv_out::verbatim`).
    pub verbatim: Option<&'a [u8]>,
    pub status: Status,
    pub order_id: &'a str,
    pub errors: Vec<ErrorItem>,
    /// For a submit report: what became of the row's order.
    pub sent: Option<&'a Sent>,
}

impl ReportRow<'_> {
    /// `VALID`, `INVALID`, `HELD`, or for a sent row its order's outcome.
    pub fn status_text(&self) -> &'static str {
        match (self.status, self.sent) {
            (Status::Valid, Some(sent)) => sent.status.as_str(),
            (status, _) => status.as_str(),
        }
    }

    /// The result cells after the original ones, unneutralised: the
    /// columns of [`ReportHeader::result_columns`].
    pub fn result_cells(&self, submitted: bool) -> Vec<Cow<'_, str>> {
        let mut cells = Vec::with_capacity(9);
        self.result_cells_into(submitted, &mut cells);
        cells
    }

    /// [`result_cells`](Self::result_cells), into a vector the caller
    /// reuses from row to row.
    pub fn result_cells_into<'r>(&'r self, submitted: bool, cells: &mut Vec<Cow<'r, str>>) {
        cells.clear();
        cells.push(Cow::Borrowed(self.status_text()));
        cells.push(Cow::Borrowed(self.order_id));
        if !submitted {
            cells.push(Cow::Owned(self.errors_text()));
            return;
        }
        let sent = self.sent.filter(|_| self.status == Status::Valid);
        let number = |n: Option<u64>| Cow::Owned(n.map(|n| n.to_string()).unwrap_or_default());
        cells.push(Cow::Borrowed(
            sent.and_then(|s| s.error_code.as_deref()).unwrap_or(""),
        ));
        cells.push(Cow::Owned(self.errors_text()));
        cells.push(number(sent.and_then(|s| s.http_status).map(u64::from)));
        cells.push(number(sent.map(|s| u64::from(s.attempts))));
        cells.push(Cow::Borrowed(
            sent.and_then(|s| s.submitted_at.as_deref()).unwrap_or(""),
        ));
        cells.push(number(sent.and_then(|s| s.latency_ms)));
        cells.push(Cow::Borrowed(
            sent.and_then(|s| s.request_id.as_deref()).unwrap_or(""),
        ));
    }

    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return String::new(); // most rows: no iterator to build
        }
        self.errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What every line of one report shares.
#[derive(Debug, Clone)]
pub struct ReportHeader {
    pub source_file: String,
    pub sheet: String,
    pub columns: Vec<String>,
    /// A submit report, with the API's answer per row.
    pub submitted: bool,
}

impl ReportHeader {
    /// The result columns after the original ones.
    pub fn result_columns(&self) -> &'static [&'static str] {
        if self.submitted {
            &SUBMIT_COLUMNS
        } else {
            &RESULT_COLUMNS
        }
    }
}

/// The result columns of a validate report.
pub const RESULT_COLUMNS: [&str; 3] = ["status", "order_id", "errors"];

/// The result columns of a submit report.
pub const SUBMIT_COLUMNS: [&str; 9] = [
    "status",
    "order_id",
    "error_code",
    "errors",
    "http_status",
    "attempts",
    "submitted_at",
    "latency_ms",
    "request_id",
];

/// What the send said of a row's order: the API's messages for a refused
/// or failed one; for a skipped, conflicting or looked-up one, what the
/// ledger or the lookup found (when and by which run it was accepted...).
pub fn sent_items(sent: Option<&Sent>) -> impl Iterator<Item = ErrorItem> + '_ {
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

/// Every problem of a row, each with its cell, and for a held row why.
pub fn error_items(out: &RowOutcome<'_>, cell_ref: impl Fn(usize) -> String) -> Vec<ErrorItem> {
    let mut items: Vec<ErrorItem> = out
        .problems
        .iter()
        .map(|p| ErrorItem {
            cell: p.col.map(&cell_ref),
            field: p.field.to_string(),
            message: p.message.clone(),
        })
        .collect();
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

/// A report being written.
trait Sink {
    fn rows(&mut self, header: &ReportHeader, rows: &[ReportRow<'_>]) -> Result<()>;
    /// Completes the file and moves it into place; returns its SHA-256.
    fn finish(self: Box<Self>, header: &ReportHeader, facts: &RunFacts) -> Result<String>;
}

/// Writes the report of a checked file to `path` (format by extension),
/// then the run facts beside it. Returns where the facts went.
pub fn write(checked: &Checked, path: &Path, facts: &mut RunFacts) -> Result<PathBuf> {
    write_with(checked, path, facts, None)
}

/// [`write`], for a submit run: `sent` holds each order's outcome, by
/// group index (`None` for orders that were not sent: held ones).
pub fn write_with(
    checked: &Checked,
    path: &Path,
    facts: &mut RunFacts,
    sent: Option<&[Option<Sent>]>,
) -> Result<PathBuf> {
    let format = Format::from_path(path)?;
    let header = ReportHeader {
        source_file: checked.path.display().to_string(),
        sheet: checked.sheet.name().to_string(),
        columns: checked.columns.headers.clone(),
        submitted: sent.is_some(),
    };

    let ncols = checked.columns.len();
    let t0 = std::time::Instant::now();
    let mut raw_walked = false;
    let mut sink: Box<dyn Sink> = match format {
        Format::Csv => {
            let mut csv = csv_out::CsvSink::create(path, &header)?;
            // A CSV report of a comma-separated input copies the plain valid
            // rows as they are and parses only the others; each group of
            // rows is looked up and formatted by one task, into a part
            // large enough to be written as it is (about 250 KiB).
            if let Some(walked) = checked.for_each_raw_outcome(&mut |batch| {
                let parts: Vec<Vec<u8>> = batch
                    .par_chunks(1024)
                    .map(|chunk| csv.format(&header, &raw_report_rows(checked, chunk, sent)?))
                    .collect::<Result<_>>()?;
                parts.into_iter().try_for_each(|part| csv.write(part))
            }) {
                walked?;
                raw_walked = true;
            }
            Box::new(csv)
        }
        Format::Jsonl => Box::new(jsonl::JsonlSink::create(path)?),
        Format::Xlsx => Box::new(xlsx::XlsxSink::create(
            path,
            &header,
            checked.grouping.len(),
        )?),
    };
    if !raw_walked {
        checked.for_each_outcome(&mut |batch| {
            let rows: Vec<ReportRow<'_>> = batch
                .par_iter()
                .map(|(row, out)| {
                    let sent = sent_for(sent, out);
                    let mut errors = error_items(out, |c| checked.cell_ref(c, out.number));
                    errors.extend(sent_items(sent));
                    ReportRow {
                        number: out.number,
                        cells: (0..ncols).map(|c| row.cell(c).text).collect(),
                        verbatim: None,
                        status: out.status,
                        order_id: out.order_id,
                        errors,
                        sent,
                    }
                })
                .collect();
            sink.rows(&header, &rows)
        })?;
    }
    crate::pipeline::timing("report rows", t0);
    // Not a report of rows other than those checked: the report is only a
    // temporary file until it is committed.
    checked.ensure_unchanged()?;
    facts.finished_at = now();
    let sha = sink.finish(&header, facts)?;
    crate::pipeline::timing("report done", t0);
    write_facts(path, facts, sha)
}

/// Writes a one-line-per-row report (cancel, upgrade) to `path`, its
/// Summary and Run facts sheets (XLSX) from `facts`, then the run facts
/// beside it. Returns where the facts went.
pub fn write_lines(
    path: &Path,
    mut table: table::Table<'_>,
    lines: &[table::Line],
    facts: &mut RunFacts,
) -> Result<PathBuf> {
    facts.finished_at = now();
    table.summary = facts
        .summary()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    table.facts = facts.lines();
    let sha = table::write(path, &table, lines)?;
    write_facts(path, facts, sha)
}

/// Writes the run facts of the report at `path` (whose SHA-256 is `sha`)
/// beside it.
fn write_facts(path: &Path, facts: &mut RunFacts, sha: String) -> Result<PathBuf> {
    facts.report = Some(ReportFacts {
        path: path.display().to_string(),
        format: Format::from_path(path)?,
        sha256: sha,
    });
    let facts_path = facts_path(path);
    write_atomic(&facts_path, |w| {
        serde_json::to_writer_pretty(&mut *w, facts).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })?;
    Ok(facts_path)
}

/// The outcome of a valid row's order, in a submit report.
fn sent_for<'s>(sent: Option<&'s [Option<Sent>]>, out: &RowOutcome<'_>) -> Option<&'s Sent> {
    sent.and_then(|s| s.get(out.group as usize))
        .and_then(Option::as_ref)
        .filter(|_| out.status == Status::Valid)
}

/// Report rows from records' bytes: plain valid rows are copied as they are
/// (see `csv_out::verbatim`), the others parsed, together, for their cells.
fn raw_report_rows<'a>(
    checked: &'a Checked,
    chunk: &[RawRow<'a>],
    sent: Option<&'a [Option<Sent>]>,
) -> Result<Vec<ReportRow<'a>>> {
    let ncols = checked.columns.len();
    let mut rows: Vec<ReportRow<'a>> = chunk
        .iter()
        .map(|&(raw, i)| {
            let out = &checked.outcome(i);
            let sent = sent_for(sent, out);
            let mut errors = error_items(out, |c| checked.cell_ref(c, out.number));
            errors.extend(sent_items(sent));
            let verbatim =
                (errors.is_empty() && csv_out::verbatim(raw, out.order_id, ncols)).then_some(raw);
            ReportRow {
                number: out.number,
                cells: Vec::new(),
                verbatim,
                status: out.status,
                order_id: out.order_id,
                errors,
                sent,
            }
        })
        .collect();
    let others: Vec<&[u8]> = chunk
        .iter()
        .zip(&rows)
        .filter(|(_, r)| r.verbatim.is_none())
        .map(|((raw, _), _)| *raw)
        .collect();
    if !others.is_empty() {
        // The first pass parsed these bytes: they parse, unless the file changed.
        let records = checked
            .sheet
            .parse_raw(&others)
            .ok_or_else(|| Error::file_changed(&checked.path))?;
        let slow = rows.iter_mut().filter(|r| r.verbatim.is_none());
        for (r, record) in slow.zip(&records) {
            let row = Row::Text {
                number: r.number,
                record,
            };
            r.cells = (0..ncols)
                .map(|c| Cow::Owned(row.cell(c).text.into_owned()))
                .collect();
        }
    }
    Ok(rows)
}

/// The run-facts file of a report: `orders.report.csv` → `orders.report.csv.run.json`.
pub fn facts_path(report: &Path) -> PathBuf {
    let mut name = report.file_name().unwrap_or_default().to_os_string();
    name.push(".run.json");
    report.with_file_name(name)
}

pub use crate::clock::now;

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, or a
/// tab or CR first) gets a leading `'`, so it shows as text.
pub fn neutralize(s: &str) -> Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

/// A temporary file beside `path`, renamed onto it when complete.
struct AtomicFile {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
}

/// Makes sure a report (and its run facts) can be written at `path` before
/// any work that cannot be undone (an order sent): nothing but a regular
/// file may stand there, its folder must exist, and a temporary file must
/// be creatable in it. Temporary files an earlier, killed run left for
/// this report (`.NAME.XXXX.partial`) are removed.
pub fn prepare(path: &Path) -> Result<()> {
    for p in [path.to_path_buf(), facts_path(path)] {
        sweep_partials(&p);
        drop(AtomicFile::create(&p)?);
    }
    Ok(())
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The prefix of a report's temporary files.
fn partial_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report");
    format!(".{name}.")
}

/// Removes the temporary files of a report at `path` that a killed run
/// left behind.
fn sweep_partials(path: &Path) {
    let prefix = partial_prefix(path);
    let Ok(entries) = std::fs::read_dir(folder_of(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix)
            && name.ends_with(".partial")
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl AtomicFile {
    fn create(path: &Path) -> Result<Self> {
        // A FIFO, device or folder at the path is not replaced by a file.
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && !meta.is_file()
            && !meta.file_type().is_symlink()
        {
            let e = crate::files::regular(path)
                .err()
                .map_or_else(|| "not a regular file".to_string(), |e| e.to_string());
            return Err(Error::report(path, format!("it is {e}")));
        }
        let dir = folder_of(path);
        if !dir.is_dir() {
            return Err(Error::report(
                path,
                format!("the folder {} does not exist", dir.display()),
            ));
        }
        let prefix = partial_prefix(path);
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".partial");
        // Reports are for others to read (auditors): not the temp file's 0600.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let tmp = builder
            .tempfile_in(dir)
            .map_err(|e| Error::report(path, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
        })
    }

    fn commit(self) -> Result<()> {
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|e| Error::report(&self.path, e))?;
        self.tmp
            .persist(&self.path)
            .map_err(|e| Error::report(&self.path, e.error))?;
        Ok(())
    }
}

/// A report file being written, committed atomically. The bytes are
/// hashed and written by a thread of its own, so the next rows are
/// formatted meanwhile, and that thread starts the disk writing every
/// [`SYNC_EVERY`] bytes, so the final sync has little left to wait for.
/// Shared by the CSV and JSONL sinks and the run facts.
struct HashedFile {
    file: AtomicFile,
    /// Bytes not yet handed to the writer thread.
    pending: Vec<u8>,
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    writer: Option<std::thread::JoinHandle<std::io::Result<String>>>,
}

/// How much the writer thread gathers before it hands it on.
const HAND_ON: usize = 1 << 20;
/// How much is written between two syncs of a long report.
/// (With 32 MiB the final sync of the 1M-row report took about 0.037 s;
/// with 8 MiB about 0.012 s, and the rows were written as fast.)
const SYNC_EVERY: usize = 8 << 20;

impl HashedFile {
    fn create(path: &Path) -> Result<Self> {
        let file = AtomicFile::create(path)?;
        let handle = file
            .tmp
            .as_file()
            .try_clone()
            .map_err(|e| Error::report(path, e))?;
        let (tx, rx) = mpsc::sync_channel(64);
        let writer = std::thread::Builder::new()
            .name("report-writer".into())
            .spawn(move || write_behind(handle, rx))
            .map_err(|e| Error::report(path, e))?;
        Ok(HashedFile {
            file,
            pending: Vec::with_capacity(HAND_ON),
            tx: Some(tx),
            writer: Some(writer),
        })
    }

    fn path(&self) -> &Path {
        &self.file.path
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= HAND_ON {
            self.hand_on()?;
        }
        Ok(())
    }

    /// Writes a buffer of formatted bytes: a large one (such as the CSV
    /// lines of 1024 rows, about 250 KiB) goes to the writer thread as it
    /// is, not copied. Smaller ones are gathered: a write call costs more
    /// than copying its bytes (64 KiB calls took 0.24 s for the 1M-row
    /// report, 1 MiB calls 0.10 s).
    fn write_vec(&mut self, bytes: Vec<u8>) -> Result<()> {
        if bytes.len() < HAND_ON / 8 {
            return self.write_all(&bytes);
        }
        if !self.pending.is_empty() {
            self.hand_on()?;
        }
        self.send(bytes)
    }

    fn hand_on(&mut self) -> Result<()> {
        let bytes = std::mem::replace(&mut self.pending, Vec::with_capacity(HAND_ON));
        self.send(bytes)
    }

    fn send(&mut self, bytes: Vec<u8>) -> Result<()> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(bytes).is_ok());
        if sent {
            Ok(())
        } else {
            // The writer stopped: its error says why.
            self.finish_writing().map(drop)
        }
    }

    /// Hands on what is left and waits for the writer; returns the SHA-256.
    fn finish_writing(&mut self) -> Result<String> {
        if let Some(tx) = self.tx.take() {
            let rest = std::mem::take(&mut self.pending);
            let _ = tx.send(rest);
        }
        let path = &self.file.path;
        match self.writer.take().map(|w| w.join()) {
            Some(Ok(Ok(sha))) => Ok(sha),
            Some(Ok(Err(e))) => Err(Error::report(path, e)),
            Some(Err(_)) | None => Err(Error::report(path, "the report writer stopped")),
        }
    }

    /// Writes the rest, syncs and renames into place; returns the SHA-256.
    fn commit(mut self) -> Result<String> {
        let sha = self.finish_writing()?;
        self.file.commit()?;
        Ok(sha)
    }
}

/// The writer thread of a [`HashedFile`]. Every [`SYNC_EVERY`] bytes it
/// asks a thread of its own to sync what is written so far: the disk then
/// writes while the next bytes are hashed and written, instead of the
/// writer waiting for it.
fn write_behind(mut file: std::fs::File, rx: mpsc::Receiver<Vec<u8>>) -> std::io::Result<String> {
    let syncing = file.try_clone()?;
    let (sync_tx, sync_rx) = mpsc::sync_channel::<()>(1);
    let syncer = std::thread::Builder::new()
        .name("report-sync".into())
        .spawn(move || -> std::io::Result<()> {
            for () in sync_rx {
                syncing.sync_data()?;
            }
            Ok(())
        })?;
    let mut hash = Sha256::new();
    let mut unsynced = 0;
    let written = (|| {
        while let Ok(first) = rx.recv() {
            // The parts that are waiting, up to about HAND_ON bytes, go in
            // one call: a call costs more than the bytes it writes.
            let mut parts = vec![first];
            let mut len = parts[0].len();
            while len < HAND_ON
                && let Ok(next) = rx.try_recv()
            {
                len += next.len();
                parts.push(next);
            }
            for part in &parts {
                hash.update(part);
            }
            write_all_parts(&mut file, &parts)?;
            unsynced += len;
            if unsynced >= SYNC_EVERY {
                // A sync still running will take these bytes along, or the
                // next one (or the final one) will.
                let _ = sync_tx.try_send(());
                unsynced = 0;
            }
        }
        Ok(())
    })();
    drop(sync_tx);
    let synced = syncer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the report sync stopped")));
    written.and(synced)?;
    Ok(hex::encode(hash.finalize()))
}

/// Writes every byte of `parts`, in order, in as few calls as the system
/// takes.
fn write_all_parts(file: &mut std::fs::File, parts: &[Vec<u8>]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    std::io::IoSlice::advance_slices(&mut rest, 0); // skips empty parts
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes a small file atomically (temporary file, sync, rename); returns
/// its SHA-256.
pub fn write_atomic(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<String> {
    let mut bytes = Vec::new();
    f(&mut bytes).map_err(|e| Error::report(path, e))?;
    let mut file = HashedFile::create(path)?;
    file.write_all(&bytes)?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parts of every size, large ones handed on as they are and small ones
    /// gathered, empty ones too, many waiting at once for the writer: the
    /// file holds them in order, and its hash is the hash of what it holds.
    #[test]
    fn a_hashed_file_writes_every_part_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let mut file = HashedFile::create(&path).unwrap();
        let mut want = Vec::new();
        for i in 0..120usize {
            let len = [0, 1, 700, HAND_ON / 8, HAND_ON / 4 + 3, HAND_ON + 1][i % 6];
            let part: Vec<u8> = (0..len).map(|k| (i * 31 + k) as u8).collect();
            want.extend_from_slice(&part);
            if i % 7 == 0 {
                file.write_all(&part).unwrap();
            } else {
                file.write_vec(part).unwrap();
            }
        }
        let sha = file.commit().unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "the bytes differ");
        assert_eq!(sha, hex::encode(Sha256::digest(&got)));
    }

    #[test]
    fn formulas_are_neutralized() {
        for s in ["=1+1", "+91", "-5", "@SUM(A1)", "\tx", "\rx"] {
            assert!(neutralize(s).starts_with('\''), "{s:?}");
        }
        for s in ["Pune", "", "1=1", "a-b"] {
            assert_eq!(neutralize(s), s);
        }
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(Format::from_path(Path::new("r.CSV")).unwrap(), Format::Csv);
        assert_eq!(
            Format::from_path(Path::new("r.jsonl")).unwrap(),
            Format::Jsonl
        );
        assert_eq!(
            Format::from_path(Path::new("r.xlsx")).unwrap(),
            Format::Xlsx
        );
        assert!(Format::from_path(Path::new("r.txt")).is_err());
    }
}
