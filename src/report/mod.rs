//! Report: one line per input data row, in input order — where it came from,
//! every original cell, and what became of it — as CSV, JSON Lines or XLSX,
//! plus the run-facts record beside it.
//!
//! This is the last stage and a pure consumer: it is handed a [`Header`]
//! and [`Line`]s (over a channel, from the stage that knows the outcomes)
//! and writes them, knowing nothing of how rows were read, checked or sent.
//! Files are written under a temporary name and renamed into place, so a
//! crash never leaves a half report that looks whole.

pub mod audit;
mod csv_out;
mod facts;
mod jsonl;
pub mod read;
mod xlsx;

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::files::AtomicFile;
use crate::stage;

pub use facts::{
    ApiFacts, FactCounts, InputFacts, OrderCounts, ReportFacts, RunFacts, SentCounts, SentOrders,
    UnreadableFacts, host, user,
};
pub use xlsx::MAX_XLSX_ROWS;

/// The report's file format: by `--report-format`, else from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Xlsx,
    Jsonl,
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

/// Where a report goes, and in which format: decided once for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub path: PathBuf,
    pub format: Format,
}

/// Whether two paths name the same existing file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Refuses a report path that is the input itself.
pub fn not_the_input(report: &Path, input: &Path) -> Result<()> {
    if same_file(report, input) {
        return Err(Error::Usage(format!(
            "the report {} would overwrite its input; choose another path",
            report.display()
        )));
    }
    Ok(())
}

impl Target {
    /// The report at `path`, in the format its extension names.
    pub fn at(path: &Path) -> Result<Target> {
        Ok(Target {
            format: Format::from_path(path)?,
            path: path.to_owned(),
        })
    }

    /// `report` if given; else `NAME.report.EXT` in `dir`, or beside the
    /// input, in `format`, else as the input (a workbook gets an XLSX
    /// report, for people; a text file a CSV one). `fallback` names an
    /// input without a name.
    pub fn for_input(
        report: Option<&Path>,
        format: Option<Format>,
        input: &Path,
        dir: Option<&Path>,
        fallback: &str,
    ) -> Result<Target> {
        if let Some(path) = report {
            return Target::at(path);
        }
        let workbook = input.extension().is_some_and(|e| {
            ["xlsx", "xlsm", "xlsb", "xls", "ods"]
                .contains(&e.to_string_lossy().to_ascii_lowercase().as_str())
        });
        let format = match format {
            Some(f) => f,
            None if workbook => Format::Xlsx,
            None => Format::Csv,
        };
        let stem = input
            .file_stem()
            .map_or_else(|| fallback.to_owned(), |s| s.to_string_lossy().into_owned());
        let dir = dir.or(input.parent()).unwrap_or(Path::new(""));
        let ext = match format {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Xlsx => "xlsx",
        };
        Ok(Target {
            path: dir.join(format!("{stem}.report.{ext}")),
            format,
        })
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

/// What every line of one report shares.
#[derive(Debug, Clone)]
pub struct Header {
    pub source_file: String,
    pub sheet: String,
    /// The input's own column names.
    pub columns: Vec<String>,
    /// The result columns after them; the first is `status`.
    pub results: Vec<&'static str>,
    /// The order in which a JSON Lines object lists the result columns
    /// (indexes into `results`).
    pub json_order: Vec<usize>,
    /// How many lines will come (an XLSX sheet holds at most
    /// [`MAX_XLSX_ROWS`]).
    pub rows: usize,
    /// A CSV report begins with a UTF-8 byte-order mark.
    pub csv_bom: bool,
}

/// One line: a row's number, its original cells (trimmed), and one value
/// per result column.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    pub number: u64,
    pub cells: Cells<'a>,
    pub results: Vec<Value<'a>>,
    /// The cells that failed a check: (input column, field, the problem);
    /// the XLSX report marks them.
    pub flagged: Vec<(usize, Cow<'a, str>, String)>,
    /// The cells with a warning, marked apart from failed ones.
    pub warned: Vec<(usize, Cow<'a, str>, String)>,
}

impl Line<'_> {
    /// The line, owning all it holds.
    pub fn into_owned(self) -> Line<'static> {
        let owned = |flags: Vec<(usize, Cow<'_, str>, String)>| {
            flags
                .into_iter()
                .map(|(c, f, m)| (c, Cow::Owned(f.into_owned()), m))
                .collect()
        };
        Line {
            number: self.number,
            cells: self.cells.into_owned(),
            results: self.results.into_iter().map(Value::into_owned).collect(),
            flagged: owned(self.flagged),
            warned: owned(self.warned),
        }
    }
}

/// A line's original cells.
#[derive(Debug, Clone)]
pub enum Cells<'a> {
    /// One per column.
    List(csv::StringRecord),
    /// One comma-separated record, exactly as the CSV writer writes the
    /// cells (quoted only where needed), none of them needing
    /// [`neutralize`]: a CSV report copies it as it is.
    Csv(Cow<'a, [u8]>),
}

impl Cells<'_> {
    /// The cells, owning their bytes.
    pub fn into_owned(self) -> Cells<'static> {
        match self {
            Cells::List(record) => Cells::List(record),
            Cells::Csv(bytes) => Cells::Csv(Cow::Owned(bytes.into_owned())),
        }
    }

    /// The cells one by one.
    pub fn list(&self) -> Cow<'_, csv::StringRecord> {
        match self {
            Cells::List(record) => Cow::Borrowed(record),
            Cells::Csv(bytes) => {
                thread_local! {
                    static PARSER: std::cell::RefCell<crate::read::RecordParser> =
                        std::cell::RefCell::new(crate::read::RecordParser::new(b','));
                }
                let mut record = csv::StringRecord::new();
                // A record read once: it reads again.
                PARSER.with_borrow_mut(|p| p.parse(bytes, &mut record)).ok();
                Cow::Owned(record)
            }
        }
    }
}

/// Whether a cell goes into a report as it is: nothing a spreadsheet runs
/// (see [`neutralize`]).
pub fn is_inert(cell: &str) -> bool {
    matches!(neutralize(cell), Cow::Borrowed(_))
}

/// A result cell.
#[derive(Debug, Clone)]
pub enum Value<'a> {
    /// Nothing to say: an empty cell, left out of a JSON object.
    None,
    Text(Cow<'a, str>),
    Number(u64),
    /// A row's problems: one cell of text (`; ` between them), or a JSON
    /// array of objects.
    Errors(Vec<ErrorItem>),
}

impl Value<'_> {
    /// The cell, owning its text.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::None => Value::None,
            Value::Text(t) => Value::Text(Cow::Owned(t.into_owned())),
            Value::Number(n) => Value::Number(n),
            Value::Errors(items) => Value::Errors(items),
        }
    }

    /// The text of the cell.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Value::None => Cow::Borrowed(""),
            Value::Text(t) => Cow::Borrowed(t),
            Value::Number(n) => Cow::Owned(n.to_string()),
            Value::Errors(items) if items.is_empty() => Cow::Borrowed(""),
            Value::Errors(items) => Cow::Owned(
                items
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }
}

/// A report being written.
enum Sink {
    /// CSV or JSON Lines: lines formatted into bytes and written.
    Text(Arc<dyn TextFormat>, Box<HashedFile>),
    Xlsx(Box<xlsx::XlsxSink>),
}

/// Lines a core formats at a time.
const FORMAT_PART: usize = 512;

/// How a text format writes lines: each line's bytes depend on that line
/// alone, so lines may be formatted apart (on any thread) and joined.
trait TextFormat: Send + Sync {
    /// One line's bytes, added to `out`.
    fn line(&self, out: &mut Vec<u8>, line: &Line<'_>) -> std::io::Result<()>;

    /// The lines' bytes.
    fn format(&self, lines: &[Line<'_>]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(lines.len() * 256);
        lines.iter().try_for_each(|l| self.line(&mut out, l))?;
        Ok(out)
    }
}

/// A text report's format, for a producer that formats its lines itself,
/// where it makes them (see [`Batch::Bytes`]).
#[derive(Clone, Copy)]
pub struct LineFormat<'f> {
    format: &'f dyn TextFormat,
    spare: &'f stage::Spare,
}

impl LineFormat<'_> {
    /// One line's bytes, added to `out`.
    pub fn line(&self, out: &mut Vec<u8>, line: &Line<'_>) -> std::io::Result<()> {
        self.format.line(out, line)
    }

    /// An empty buffer to format lines into: one the writer is done with
    /// (its room grown to a batch's size), or a new one.
    pub fn buffer(&self) -> Vec<u8> {
        self.spare.take()
    }
}

/// What a producer hands the report's writer, in order.
pub enum Batch<'a> {
    /// Lines, formatted on every core and written.
    Lines(Vec<Line<'a>>),
    /// Lines the producer formatted with the report's [`LineFormat`]:
    /// written as they are.
    Bytes(Vec<u8>),
}

impl Sink {
    fn create(target: &Target, header: &Header) -> Result<Sink> {
        let path = target.path.as_path();
        let text = |format: Arc<dyn TextFormat>, first: &[u8]| -> Result<Sink> {
            let mut file = HashedFile::create(path)?;
            file.write_part(first.to_vec())?;
            Ok(Sink::Text(format, Box::new(file)))
        };
        match target.format {
            Format::Csv => {
                let (csv, names) = csv_out::Csv::new(header).map_err(|e| Error::report(path, e))?;
                let bom: &[u8] = if header.csv_bom { b"\xEF\xBB\xBF" } else { b"" };
                text(Arc::new(csv), &[bom, &names].concat())
            }
            Format::Jsonl => text(Arc::new(jsonl::Jsonl::new(header)), b""),
            Format::Xlsx => Ok(Sink::Xlsx(Box::new(xlsx::XlsxSink::create(path, header)?))),
        }
    }

    /// The format of a text report, which a producer may format lines
    /// with itself.
    fn text_format(&self) -> Option<(Arc<dyn TextFormat>, Arc<stage::Spare>)> {
        match self {
            Sink::Text(format, file) => Some((Arc::clone(format), Arc::clone(&file.spare))),
            Sink::Xlsx(_) => None,
        }
    }

    /// Writes a batch to the report at `path`.
    fn batch(&mut self, batch: Batch<'_>, path: &Path) -> Result<()> {
        match (batch, self) {
            (Batch::Lines(lines), sink) => sink.lines(&lines),
            (Batch::Bytes(bytes), Sink::Text(_, file)) => file.write_part(bytes),
            // Cannot happen: a workbook's format is not handed out.
            (Batch::Bytes(_), Sink::Xlsx(_)) => Err(Error::report(
                path,
                "lines formatted as text came for a workbook",
            )),
        }
    }

    fn lines(&mut self, lines: &[Line<'_>]) -> Result<()> {
        match self {
            Sink::Text(format, file) => {
                // Formatted on every core, a part each, written in order:
                // a line's bytes depend on that line alone.
                use rayon::prelude::*;
                let parts: Vec<std::io::Result<Vec<u8>>> = lines
                    .par_chunks(FORMAT_PART)
                    .map(|part| format.format(part))
                    .collect();
                for bytes in parts {
                    let bytes = bytes.map_err(|e| Error::report(file.path(), e))?;
                    file.write_part(bytes)?;
                }
                Ok(())
            }
            Sink::Xlsx(x) => x.lines(lines),
        }
    }

    /// Completes the file and moves it into place; returns its SHA-256.
    fn finish(self, facts: &RunFacts) -> Result<String> {
        match self {
            Sink::Text(_, file) => (*file).commit(),
            Sink::Xlsx(x) => x.finish(facts),
        }
    }
}

/// Writes the report at `path` (format by extension) of the lines `produce`
/// sends, in order, in batches, then the run facts beside it; returns where
/// the facts went. The lines are written on a thread of their own while
/// `produce` makes the next ones; `produce` is given the report's format
/// when it is text, to format lines itself where it makes them; `send`
/// returns `false` once the writer has stopped (its error is the one
/// returned).
pub fn write<'a>(
    target: &Target,
    header: &Header,
    facts: &mut RunFacts,
    produce: impl FnOnce(
        Option<LineFormat<'_>>,
        &mut (dyn FnMut(Batch<'a>) -> bool + Send),
    ) -> Result<()>,
) -> Result<PathBuf> {
    let t0 = std::time::Instant::now();
    let path = target.path.as_path();
    let mut sink = Sink::create(target, header)?;
    let format = sink.text_format();
    let (tx, rx) = stage::bounded::<Batch<'a>>(4);
    let written = std::thread::scope(|s| -> Result<Sink> {
        let writer = stage::beside(s, "report", move || -> Result<Sink> {
            for batch in rx {
                sink.batch(batch, path)?;
            }
            Ok(sink)
        })
        .map_err(|e| Error::report(path, e))?;
        let format = format.as_ref().map(|(format, spare)| LineFormat {
            format: format.as_ref(),
            spare,
        });
        let produced = produce(format, &mut |batch| tx.send(batch).is_ok());
        drop(tx);
        let written = stage::joined(writer)
            .unwrap_or_else(|| Err(Error::report(path, "the report writer stopped")));
        // The writer's error first: it is why the lines stopped.
        let sink = written?;
        produced.map(|()| sink)
    });
    let sink = written?;
    crate::clock::timing("report lines", t0);
    facts.finished_at = now();
    let sha = sink.finish(facts)?;
    crate::clock::timing("report committed", t0);
    write_facts(target, facts, sha)
}

/// Writes the run facts of the report at `path` (whose SHA-256 is `sha`)
/// beside it.
fn write_facts(target: &Target, facts: &mut RunFacts, sha: String) -> Result<PathBuf> {
    let path = target.path.as_path();
    facts.report = Some(ReportFacts {
        path: path.display().to_string(),
        format: target.format,
        sha256: sha,
    });
    let facts_path = facts_path(path);
    let mut json = serde_json::to_vec_pretty(facts).map_err(|e| Error::report(path, e))?;
    json.push(b'\n');
    crate::files::write_atomic(&facts_path, &json).map_err(|e| Error::report(&facts_path, e))?;
    Ok(facts_path)
}

/// Writes a report read back and extended, as `status` does (the report
/// with a column more): every cell as it is (it was neutralised when the
/// report was first written), as XLSX or CSV as `path` says; returns its
/// SHA-256.
pub fn write_table(path: &Path, headers: &[String], rows: &[Vec<String>]) -> Result<String> {
    let bytes = match Format::from_path(path)? {
        Format::Xlsx => xlsx::table(headers, rows).map_err(|e| Error::report(path, e))?,
        _ => csv_out::table(headers, rows).map_err(|e| Error::report(path, e))?,
    };
    crate::files::write_atomic(path, &bytes).map_err(|e| Error::report(path, e))
}

/// Writes JSON objects, one a line (a JSON Lines report read back and
/// extended); returns the file's SHA-256.
pub fn write_objects(
    path: &Path,
    objects: impl IntoIterator<Item = serde_json::Map<String, serde_json::Value>>,
) -> Result<String> {
    let mut bytes = Vec::new();
    for o in objects {
        serde_json::to_writer(&mut bytes, &o).map_err(|e| Error::report(path, e))?;
        bytes.push(b'\n');
    }
    crate::files::write_atomic(path, &bytes).map_err(|e| Error::report(path, e))
}

/// Writes the record of an input that could not be read where the run
/// facts of its report at `report` would go; returns that path. The run
/// facts of an earlier run's report there are kept: the record then takes
/// a name of its own (`orders.report.csv.unreadable-20261201T162000123Z.run.json`).
pub fn write_unreadable(report: &Path, facts: &UnreadableFacts) -> Result<PathBuf> {
    let mut path = facts_path(report);
    if path.exists() {
        let stamp = crate::clock::in_name(&facts.finished_at);
        let mut name = report.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".unreadable-{stamp}.run.json"));
        path = report.with_file_name(name);
    }
    let mut json = serde_json::to_vec_pretty(facts).map_err(|e| Error::report(&path, e))?;
    json.push(b'\n');
    crate::files::write_atomic(&path, &json).map_err(|e| Error::report(&path, e))?;
    Ok(path)
}

/// Before a run writes its report at `path`: an earlier run's report
/// there, its run facts and its rows to fix are renamed with that run's
/// tag (`run-<ledger id>` from its run facts, else the time it finished),
/// so that no run overwrites what an earlier one recorded and the plain
/// name holds the latest. Returns where the earlier report went.
pub fn keep_earlier(path: &Path) -> Result<Option<PathBuf>> {
    Ok(keep_earlier_in(path, None)?.map(|k| k.report))
}

/// An earlier run's records, kept under its tag.
#[derive(Debug, Clone)]
pub struct KeptRecords {
    /// Where its report (or the record of why the file could not be read)
    /// went.
    pub report: PathBuf,
    /// Its run in the ledger, if it sent.
    pub run: Option<i64>,
}

/// As [`keep_earlier`], into the folder `into` (made if need be) when one
/// is given, else beside.
pub fn keep_earlier_in(path: &Path, into: Option<&Path>) -> Result<Option<KeptRecords>> {
    let facts = facts_path(path);
    let to_fix = to_fix_path(path);
    // Only regular files are an earlier run's: a folder, pipe or device
    // there is left for `prepare` to refuse.
    let file = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
    let taken = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    if (taken(path) && !file(path)) || (taken(&facts) && !file(&facts)) {
        return Ok(None);
    }
    if !file(path) && !file(&facts) {
        return Ok(None);
    }
    let earlier = earlier_facts(&facts);
    let run = earlier.as_ref().and_then(ledger_run);
    let tag = earlier
        .as_ref()
        .and_then(earlier_tag)
        .unwrap_or_else(|| "earlier".to_string());
    let base = match into {
        Some(dir) => {
            crate::files::create_private_dir(dir).map_err(|e| Error::report(dir, e))?;
            dir.join(path.file_name().unwrap_or_default())
        }
        None => path.to_path_buf(),
    };
    let mut n = 1;
    let to = loop {
        let tag = if n == 1 {
            tag.clone()
        } else {
            format!("{tag}-{n}")
        };
        let to = crate::files::with_tag(&base, &tag);
        let fix = to_fix_path(&to);
        if !to.exists() && !facts_path(&to).exists() && !fix.exists() {
            break to;
        }
        if n >= 10_000 {
            return Err(Error::report(
                path,
                std::io::Error::other("10,000 earlier runs' reports there already"),
            ));
        }
        n += 1;
    };
    let fix_to = to_fix_path(&to);
    for (from, to) in [
        (path.to_path_buf(), to.clone()),
        (facts, facts_path(&to)),
        (to_fix, fix_to),
    ] {
        if file(&from) {
            crate::files::move_file(&from, &to).map_err(|e| Error::report(&from, e))?;
        }
    }
    Ok(Some(KeptRecords { report: to, run }))
}

/// Where the rows to fix of the report at `report` go: beside it, as
/// `NAME.to-fix.csv` (or `.xlsx` beside an XLSX report), in the branch's
/// own layout.
pub fn to_fix_path(report: &Path) -> PathBuf {
    let name = report.file_name().unwrap_or_default().to_string_lossy();
    let stem = match name.rfind(".report.") {
        Some(at) => &name[..at],
        // Every part of the name but its extension (a tag stays in it).
        None => name.rsplit_once('.').map_or(&*name, |(stem, _)| stem),
    };
    let xlsx = report
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
    report.with_file_name(format!(
        "{stem}.to-fix.{}",
        if xlsx { "xlsx" } else { "csv" }
    ))
}

/// An earlier run's facts (or record of why its file could not be read).
fn earlier_facts(facts: &Path) -> Option<serde_json::Value> {
    let text = crate::files::read_small(facts, 16 << 20).ok()?;
    serde_json::from_str(&text).ok()
}

/// Where the report of ledger run `run`, written at `recorded`, is now:
/// under its run's tag once a later run took the plain name (see
/// [`keep_earlier`]), else where it was written.
pub fn kept_report(recorded: &Path, run: i64) -> PathBuf {
    let tagged = crate::files::with_tag(recorded, &format!("run-{run}"));
    if tagged.exists() {
        tagged
    } else {
        recorded.to_path_buf()
    }
}

/// The ledger's run of a report's run facts (or of the record of why a
/// file could not be read).
fn ledger_run(facts: &serde_json::Value) -> Option<i64> {
    facts["api"]["ledger_run"]
        .as_i64()
        .or_else(|| facts["ledger_run"].as_i64())
}

/// The tag of the run whose run facts are at `facts`.
fn earlier_tag(facts: &serde_json::Value) -> Option<String> {
    if let Some(run) = ledger_run(facts) {
        return Some(format!("run-{run}"));
    }
    Some(format!(
        "at-{}",
        crate::clock::in_name(facts["finished_at"].as_str()?)
    ))
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

/// A product line's fingerprint from its cells, as a report shows them
/// (CSV cells are neutralised; the others are not, so both are).
pub fn line_fingerprint<'c>(cells: impl IntoIterator<Item = &'c str>) -> String {
    hex::encode(line_digest(cells))
}

/// [`line_fingerprint`] as bytes.
pub fn line_digest<'c>(cells: impl IntoIterator<Item = &'c str>) -> [u8; 12] {
    let mut h = Sha256::new();
    for c in cells {
        h.update(neutralize(c).as_bytes());
        h.update([0x1f]);
    }
    let mut out = [0u8; 12];
    out.copy_from_slice(&h.finalize()[..12]);
    out
}

/// Makes sure a report (and its run facts) can be written at `path` before
/// any work that cannot be undone (an order sent): nothing but a regular
/// file may stand there, its folder must exist, and a temporary file must
/// be creatable in it. Temporary files an earlier, killed run left for
/// this report (`.NAME.XXXX.partial`) are removed.
pub fn prepare(path: &Path) -> Result<()> {
    for p in [path.to_path_buf(), facts_path(path)] {
        crate::files::sweep_partials(&p);
        drop(AtomicFile::create(&p).map_err(|e| Error::report(&p, e))?);
    }
    Ok(())
}

/// A report file being written in parts, each part hashed after it is
/// written on a thread of its own (SHA-256 is one stream, and the writes
/// need not wait for it), and synced behind the writes (a thread syncs
/// what is written every [`SYNC_EVERY`] bytes, so the last sync is
/// short); renamed into place at [`commit`](Self::commit). Shared by the
/// CSV and JSONL sinks.
struct HashedFile {
    file: AtomicFile,
    out: std::fs::File,
    hasher: Option<(stage::Sender<Vec<u8>>, std::thread::JoinHandle<Sha256>)>,
    /// The parts hashed, for the producer to format lines into again.
    spare: Arc<stage::Spare>,
    syncer: Option<(
        stage::Sender<()>,
        std::thread::JoinHandle<std::io::Result<()>>,
    )>,
    unsynced: u64,
}

/// Bytes written between two syncs behind the writes.
#[cfg(not(test))]
const SYNC_EVERY: u64 = 32 << 20;
/// Small in unit tests, so that their files are synced behind the writes.
#[cfg(test)]
const SYNC_EVERY: u64 = 64 << 10;

impl HashedFile {
    fn create(path: &Path) -> Result<Self> {
        let file = AtomicFile::create(path).map_err(|e| Error::report(path, e))?;
        let handle = || file.file().try_clone().map_err(|e| Error::report(path, e));
        let (out, sync) = (handle()?, handle()?);
        let (to_hash, parts) = stage::bounded::<Vec<u8>>(16);
        let spare = Arc::new(stage::Spare::default());
        let given = Arc::clone(&spare);
        let hasher = stage::apart("report hash", move || {
            let mut hash = Sha256::new();
            for part in parts {
                hash.update(&part);
                given.give(part);
            }
            hash
        })
        .map_err(|e| Error::report(path, e))?;
        let (to_sync, asks) = stage::bounded::<()>(1);
        // The first error a sync meets is kept: a later sync of the same
        // file may not see it again.
        let syncer = stage::apart("report sync", move || {
            asks.into_iter().try_for_each(|()| sync.sync_data())
        })
        .map_err(|e| Error::report(path, e))?;
        Ok(HashedFile {
            file,
            out,
            hasher: Some((to_hash, hasher)),
            spare,
            syncer: Some((to_sync, syncer)),
            unsynced: 0,
        })
    }

    fn path(&self) -> &Path {
        self.file.path()
    }

    /// Writes `part`, then hands it to the hash.
    fn write_part(&mut self, part: Vec<u8>) -> Result<()> {
        let path = self.file.path();
        self.out
            .write_all(&part)
            .map_err(|e| Error::report(path, e))?;
        self.unsynced += part.len() as u64;
        if self.unsynced >= SYNC_EVERY
            && let Some((to_sync, _)) = &self.syncer
        {
            // A sync still running takes these bytes too, or the next one.
            let _ = to_sync.try_send(());
            self.unsynced = 0;
        }
        let stopped = || Error::report(path, "the report's hash stopped");
        let (to_hash, _) = self.hasher.as_ref().ok_or_else(stopped)?;
        to_hash.send(part).map_err(|_| stopped())
    }

    /// Syncs the rest and renames the file into place; returns the SHA-256.
    fn commit(mut self) -> Result<String> {
        let path = self.file.path().to_path_buf();
        let stopped = |what: &str| Error::report(&path, format!("the report's {what} stopped"));
        let (to_sync, syncer) = self.syncer.take().ok_or_else(|| stopped("sync"))?;
        drop(to_sync);
        let synced = syncer.join().map_err(|_| stopped("sync"))?;
        synced.map_err(|e| Error::report(&path, e))?;
        let (to_hash, hasher) = self.hasher.take().ok_or_else(|| stopped("hash"))?;
        drop(to_hash);
        let hash = hasher.join().map_err(|_| stopped("hash"))?;
        self.file.commit().map_err(|e| Error::report(&path, e))?;
        Ok(hex::encode(hash.finalize()))
    }
}

/// The header line's names: where the row came from, its columns, the
/// results.
fn column_names(header: &Header) -> impl Iterator<Item = &str> {
    ["source_file", "sheet", "row"]
        .into_iter()
        .chain(header.columns.iter().map(String::as_str))
        .chain(header.results.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_file_holds_what_it_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        let mut file = HashedFile::create(&path).unwrap();
        let mut want = Vec::new();
        for i in 0..300usize {
            let part: Vec<u8> = (0..i * 97).map(|k| (i * 31 + k) as u8).collect();
            want.extend_from_slice(&part);
            file.write_part(part).unwrap();
        }
        assert!(!path.exists(), "not in place before the commit");
        let sha = file.commit().unwrap();
        let got = std::fs::read(&path).unwrap();
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

    #[test]
    fn the_rows_to_fix_sit_beside_the_report() {
        let p = |s: &str| super::to_fix_path(Path::new(s)).display().to_string();
        assert_eq!(p("/d/night.report.csv"), "/d/night.to-fix.csv");
        assert_eq!(p("/d/night.report.xlsx"), "/d/night.to-fix.xlsx");
        assert_eq!(p("/d/a.b.report.jsonl"), "/d/a.b.to-fix.csv");
        assert_eq!(p("/d/out.csv"), "/d/out.to-fix.csv");
        // A kept report's rows to fix keep its tag.
        assert_eq!(p("/d/out.run-4.csv"), "/d/out.run-4.to-fix.csv");
    }
}
