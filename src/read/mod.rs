//! Reading: a CSV/TSV file or an Excel/ODS sheet becomes rows of cells that
//! keep their position (sheet, the row number the user's program shows, and
//! the column letter of every cell).
//!
//! This stage knows nothing about order columns or rules. It reads the file
//! once, turns its bytes into text cells, says what kind of cell each was (a
//! number, a date, an error value...), and hands rows out in batches, as
//! often as asked: a later pass meets the very rows the first one checked,
//! whatever happens to the file meanwhile.

pub mod budget;
mod cell;
mod chunks;
mod edits;
mod excel;
mod formats;
mod store;
mod text;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use calamine::Data;

pub use cell::{column_letter, convert_cell, format_number, is_printable_ascii, trim};
use cell::{is_blank_data, record_width};
pub use edits::Edits;

use crate::error::{Error, Result};

pub use excel::Workbook;
pub use text::{RawFold, RecordParser, TextEncoding, TextOpts};

/// How many rows a batch holds: large enough to keep rayon busy, small
/// enough that a batch of wide rows stays a few megabytes.
pub const BATCH_ROWS: usize = 8192;

/// What takes a pass's results, in order, a batch at a time (on any
/// thread: while it takes one batch, the next is read).
pub type Sink<'s, T> = FoldSink<'s, Vec<T>>;

/// What takes a pass's batches folded (see [`Fold`]), in order.
pub type FoldSink<'s, A> = dyn FnMut(A) -> Result<()> + Send + 's;

/// Folds a row into its batch's value: one value a batch, made on the
/// thread that reads it (not a value a row, made and freed again).
pub type Fold<'a, A> = dyn Fn(&mut A, &Row<'_>) + Sync + 'a;

/// Rows of a workbook folded into one value at a time.
const FOLD_ROWS: usize = 1024;

/// What a cell was in the source, beyond its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// Text, or any cell of a CSV file.
    Text,
    /// A number Excel stored as a number (may have lost leading zeros).
    Number,
    /// An Excel boolean (`TRUE` / `FALSE`).
    Bool,
    /// An Excel date, converted to `YYYY-MM-DD HH:mm:ss`.
    Date,
    /// An error value such as `#N/A` or `#DIV/0!`.
    Error,
    /// No value.
    Empty,
}

/// One cell's text (trimmed) and kind.
#[derive(Debug, Clone, PartialEq)]
pub struct CellRef<'a> {
    pub text: Cow<'a, str>,
    pub kind: CellKind,
}

impl CellRef<'_> {
    const EMPTY: CellRef<'static> = CellRef {
        text: Cow::Borrowed(""),
        kind: CellKind::Empty,
    };
}

/// One data row of a sheet, borrowed from the batch it came in.
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    Text {
        number: u64,
        record: &'a csv::StringRecord,
        /// The record's bytes, from its first up to its line end, as the
        /// file holds them (known in a pass that maps rows,
        /// [`Sheet::scan_map`]; never for a row with changed cells).
        raw: Option<&'a [u8]>,
    },
    Sheet {
        number: u64,
        cells: &'a [Data],
    },
}

impl<'a> Row<'a> {
    /// The row number a spreadsheet program or text editor shows.
    pub fn number(&self) -> u64 {
        match self {
            Row::Text { number, .. } | Row::Sheet { number, .. } => *number,
        }
    }

    /// The number of cells up to the last one that holds something.
    pub fn width(&self) -> usize {
        match self {
            Row::Text { record, .. } => record_width(record),
            Row::Sheet { cells, .. } => cells
                .iter()
                .rposition(|c| !is_blank_data(c))
                .map_or(0, |i| i + 1),
        }
    }

    /// The cell at column `col` (0-based, relative to the sheet's first
    /// column); a cell beyond the row's end is empty.
    #[inline]
    pub fn cell(&self, col: usize) -> CellRef<'a> {
        match self {
            Row::Text { record, .. } => match record.get(col) {
                Some(s) => {
                    let t = trim(s);
                    let kind = if t.is_empty() {
                        CellKind::Empty
                    } else {
                        CellKind::Text
                    };
                    CellRef {
                        text: Cow::Borrowed(t),
                        kind,
                    }
                }
                None => CellRef::EMPTY,
            },
            Row::Sheet { cells, .. } => cells.get(col).map_or(CellRef::EMPTY, convert_cell),
        }
    }

    /// Whether the cell at `col` may hold more than `bytes` bytes: a cheap
    /// test before [`Row::cell`], which trims and converts.
    pub fn may_exceed(&self, col: usize, bytes: usize) -> bool {
        match self {
            Row::Text { record, .. } => record.get(col).is_some_and(|s| s.len() > bytes),
            Row::Sheet { cells, .. } => match cells.get(col) {
                Some(Data::String(s)) => s.len() > bytes,
                Some(Data::Empty) | None => false,
                // Numbers, dates and the like are short; keep it simple.
                Some(_) => true,
            },
        }
    }

    /// Whether some cell may hold more than `bytes` bytes: for a CSV
    /// record, one look at the length of all its cells together.
    pub fn may_hold_more_than(&self, bytes: usize) -> bool {
        match self {
            Row::Text { record, .. } => record.as_slice().len() > bytes,
            Row::Sheet { .. } => true,
        }
    }

    /// How many fields a CSV record had (`None` for a sheet row, which is
    /// always as wide as the sheet).
    pub fn field_count(&self) -> Option<usize> {
        match self {
            Row::Text { record, .. } => Some(record.len()),
            Row::Sheet { .. } => None,
        }
    }

    /// Whether every byte of every cell's text is printable ASCII (a space
    /// to `~`), found in one look at the CSV record's bytes or at a
    /// workbook row's strings (numbers, dates and booleans read as such).
    pub fn is_printable_ascii(&self) -> bool {
        match self {
            Row::Text { record, .. } => is_printable_ascii(record.as_slice()),
            Row::Sheet { cells, .. } => cells.iter().all(|c| match c {
                Data::String(s) => is_printable_ascii(s),
                Data::Empty | Data::Int(_) | Data::Float(_) | Data::Bool(_) | Data::DateTime(_) => {
                    true
                }
                _ => false,
            }),
        }
    }

    /// A CSV record's bytes as the file holds them, when the pass knows.
    pub fn raw(&self) -> Option<&'a [u8]> {
        match self {
            Row::Text { raw, .. } => *raw,
            Row::Sheet { .. } => None,
        }
    }

    /// A row with no value in any cell is not a data row.
    pub fn is_blank(&self) -> bool {
        self.width() == 0
    }

    /// Whether the bytes of a record of a comma-separated file are exactly
    /// what the csv crate's writer writes for its `ncols` cells as
    /// [`Row::cell`] gives them (trimmed; quoted only where a cell holds a
    /// comma, quote or line break, quotes doubled): a later stage may then
    /// copy them instead of writing the cells one by one. `also` must
    /// hold for every cell too.
    pub fn canonical_csv(&self, ncols: usize, also: &dyn Fn(&str) -> bool) -> bool {
        let Row::Text {
            record,
            raw: Some(raw),
            ..
        } = *self
        else {
            return false;
        };
        if record.len() != ncols || (ncols == 1 && record[0].is_empty()) {
            return false; // the writer quotes a lone empty cell
        }
        if ncols == 1 {
            // No delimiter tells a comma-separated record: look at the cell.
            return written_as_is(&record[0], raw) && also(&record[0]);
        }
        // Where the next cell's bytes start, and where the next quote is.
        let (mut at, mut quote) = (0, memchr::memchr(b'"', raw).unwrap_or(raw.len()));
        for (i, cell) in record.iter().enumerate() {
            if i > 0 {
                // Every delimiter a comma: the file is comma-separated.
                if raw.get(at) != Some(&b',') {
                    return false;
                }
                at += 1;
            }
            if trim(cell).len() != cell.len() || !also(cell) {
                return false;
            }
            let end = at + cell.len();
            if quote >= end {
                // No quote in the cell's stretch: the cell is its bytes as
                // they are, up to a comma, so it holds no comma, quote or
                // line break, which the writer writes as it is.
                at = end;
                continue;
            }
            let Some(len) = written_len(cell, &raw[at..]) else {
                return false;
            };
            at += len;
            quote = memchr::memchr(b'"', &raw[at..]).map_or(raw.len(), |q| at + q);
        }
        at == raw.len()
    }
}

/// Whether `raw` is exactly what the writer writes for `cell`.
fn written_as_is(cell: &str, raw: &[u8]) -> bool {
    trim(cell).len() == cell.len() && written_len(cell, raw) == Some(raw.len())
}

/// How many bytes at the start of `raw` are what the csv crate's writer
/// writes for `cell` (quoted only where it holds a comma, quote or line
/// break, quotes doubled), or `None` if they are not.
fn written_len(cell: &str, raw: &[u8]) -> Option<usize> {
    let mut at = 0;
    let mut take = |want: &[u8]| {
        let there = raw.get(at..at + want.len()) == Some(want);
        at += want.len();
        there
    };
    let bytes = cell.as_bytes();
    // Cells are short: a look at each byte beats a search.
    let quoted = bytes
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if !quoted {
        return take(bytes).then_some(at);
    }
    if !take(b"\"") {
        return None;
    }
    for (k, piece) in bytes.split(|&b| b == b'"').enumerate() {
        if (k > 0 && !take(b"\"\"")) || !take(piece) {
            return None;
        }
    }
    take(b"\"").then_some(at)
}

/// Rows of records kept with their numbers (where their bytes are is not
/// kept).
fn text_rows(records: &[(u64, csv::StringRecord)]) -> Vec<Row<'_>> {
    records
        .iter()
        .map(|(number, record)| Row::Text {
            number: *number,
            record,
            raw: None,
        })
        .collect()
}

/// Which reader a file needs, from its first bytes (not only its name: a
/// PNG renamed `.xlsx` must be named for what it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Text,
    Xlsx,
    Xlsb,
    Xls,
    Ods,
}

/// Options for opening an input file.
#[derive(Debug, Clone, Default)]
pub struct ReadOpts {
    /// `--sheet`: a sheet name, or a 1-based index.
    pub sheet: Option<String>,
    pub text: TextOpts,
    pub limits: Limits,
    /// The program that reads a legacy workbook (`.xls`, `.xlsb`) once in a
    /// child process first (`dcms-bulk __check-workbook FILE`), under a
    /// memory cap and a time limit (see [`excel::preflight`]); `None`:
    /// read it in this process only (library use, tests).
    pub isolate: Option<PathBuf>,
}

/// What one input may cost, checked before the memory is spent. The
/// defaults pass any real order sheet (half a million rows of 16 columns;
/// the benchmark's 100,000-row workbook is a sixth of it) and keep a
/// workbook's reading under 1 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Cells of a workbook sheet's used area (rows × columns between its
    /// first and last non-empty cells): what reading it allocates.
    pub max_cells: u64,
    /// Bytes of text a workbook sheet's cells may hold in all: a shared
    /// string used by a million cells is a million copies once read.
    pub max_text_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_cells: 1 << 23,
            max_text_bytes: 256 << 20,
        }
    }
}

/// Excel's own limits: no workbook has more rows or columns.
pub const MAX_ROWS: u32 = 1_048_576;
pub const MAX_COLUMNS: u32 = 16_384;

/// An opened input: a CSV file or one sheet of a workbook. A clone shares
/// what was read.
#[derive(Clone)]
pub struct Sheet {
    path: PathBuf,
    name: String,
    first_col: usize,
    /// What was read, shared by the versions of the sheet (see [`Edits`]).
    inner: std::sync::Arc<Inner>,
    notes: Vec<String>,
    /// Cells changed by a person, which every pass reads instead.
    edits: Edits,
    /// SHA-256 (hex) of a workbook file's bytes (a CSV file's is its
    /// reader's) and the file's size, as read.
    sha256: String,
    bytes: u64,
}

enum Inner {
    Text(text::TextSheet),
    Excel(excel::ExcelSheet),
}

impl Sheet {
    /// The input file this sheet came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sheet name (for a CSV file: its file name without extension,
    /// as Excel names it when it opens one).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the reader detected (encoding, delimiter, sheet), for `-v`.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Adds a note of what was detected (once).
    pub fn add_note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    /// The cells changed by a person.
    pub fn edits(&self) -> &Edits {
        &self.edits
    }

    /// Lays `edits` over the sheet: every pass from now on reads them.
    pub fn set_edits(&mut self, edits: Edits) {
        self.edits = edits;
    }

    /// Calls `f` with `row` as the passes read it: with its changed cells.
    pub fn with_edits<T>(&self, row: &Row<'_>, f: impl FnOnce(&Row<'_>) -> T) -> T {
        match self.edits.apply(row) {
            Some(edited) => f(&edited.row()),
            None => f(row),
        }
    }

    /// Whether this is a comma-separated file, whose records a CSV report
    /// may copy (see [`Row::canonical_csv`]).
    pub fn is_comma_separated(&self) -> bool {
        matches!(&*self.inner, Inner::Text(t) if t.delimiter() == b',')
    }

    /// The SHA-256 (hex) of the file's bytes, as read.
    pub fn sha256(&self) -> &str {
        match &*self.inner {
            Inner::Text(t) => t.sha256(),
            Inner::Excel(_) => &self.sha256,
        }
    }

    /// The file's size in bytes, as read.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The A1 reference of a cell: `F7`.
    pub fn cell_ref(&self, col: usize, row: u64) -> String {
        format!("{}{}", column_letter(self.first_col + col), row)
    }

    /// The letter of column `col`.
    pub fn column_letter(&self, col: usize) -> String {
        column_letter(self.first_col + col)
    }

    /// Whether cells can be numbers/dates (a workbook) or only text (CSV).
    pub fn is_workbook(&self) -> bool {
        matches!(*self.inner, Inner::Excel(_))
    }

    /// About how many rows the sheet has, to size what is kept per row:
    /// a workbook sheet's height; for a CSV file of `file_bytes`, a guess
    /// (order rows are rarely shorter than 100 bytes).
    pub fn rows_hint(&self) -> usize {
        match &*self.inner {
            Inner::Excel(x) => x.height(),
            Inner::Text(_) => usize::try_from(self.bytes / 100).unwrap_or(usize::MAX),
        }
    }

    /// Hands the first rows (blank ones included) to `f`, to find the header.
    pub fn head(&self, max_rows: usize, f: &mut dyn FnMut(&[Row<'_>])) {
        match &*self.inner {
            Inner::Text(t) => t.head(max_rows, f),
            Inner::Excel(x) => x.head(max_rows, f),
        }
    }

    /// Hands every row below `header_row` to `f`, in order, in batches.
    /// `header_width` lets the CSV reader tell a quote that swallowed lines
    /// from a legitimate multi-line cell.
    pub fn scan(
        &self,
        header_row: u64,
        header_width: usize,
        f: &mut (dyn FnMut(&[Row<'_>]) -> Result<()> + Send),
    ) -> Result<()> {
        self.scan_some(header_row, header_width, None, f)
    }

    /// The rows numbered `lines` (sorted), blank ones included, with their
    /// changed cells, handed to `f` in order: of a CSV file, only the
    /// chunks that hold them are read (once a whole pass has found where
    /// the chunks lie); a workbook's rows are all in memory.
    pub fn scan_lines(
        &self,
        header_row: u64,
        header_width: usize,
        lines: &[u64],
        f: &mut (dyn FnMut(&[Row<'_>]) -> Result<()> + Send),
    ) -> Result<()> {
        self.scan_some(header_row, header_width, Some(lines), f)
    }

    /// [`scan`](Self::scan) of every row, or only of those numbered `lines`.
    fn scan_some(
        &self,
        header_row: u64,
        header_width: usize,
        lines: Option<&[u64]>,
        f: &mut (dyn FnMut(&[Row<'_>]) -> Result<()> + Send),
    ) -> Result<()> {
        let wanted = |r: &Row<'_>| lines.is_none_or(|l| l.binary_search(&r.number()).is_ok());
        let edited = |r: &Row<'_>| self.edits.apply(r);
        match &*self.inner {
            Inner::Text(t) => {
                // A compact copy of each record wanted, with its changes:
                // the reader's own keeps the room of the widest row so far.
                let copy = |r: &Row<'_>| {
                    let changed = edited(r);
                    let r = changed.as_ref().map_or(*r, edits::Edited::row);
                    let copied = match r {
                        Row::Text { record, .. } if wanted(&r) => Some(record.iter().collect()),
                        _ => None,
                    };
                    (r.number(), copied)
                };
                let path = &self.path;
                t.scan_map_lines(path, header_row, header_width, lines, &copy, &mut |batch| {
                    let kept: Vec<(u64, csv::StringRecord)> = batch
                        .into_iter()
                        .filter_map(|(n, r)| r.map(|r| (n, r)))
                        .collect();
                    f(&text_rows(&kept))
                })
            }
            Inner::Excel(x) if self.edits.is_empty() && lines.is_none() => x.scan(header_row, f),
            Inner::Excel(x) => x.scan(header_row, &mut |rows| {
                let changed: Vec<Option<edits::Edited>> = rows.iter().map(edited).collect();
                let rows: Vec<Row<'_>> = rows
                    .iter()
                    .zip(&changed)
                    .map(|(r, e)| e.as_ref().map_or(*r, edits::Edited::row))
                    .filter(|r| wanted(r))
                    .collect();
                f(&rows)
            }),
        }
    }

    /// Like [`scan`](Self::scan), but maps every row with `map` in parallel
    /// (on rayon) and hands `sink` the results, in row order, in batches.
    pub fn scan_map<T: Send>(
        &self,
        header_row: u64,
        header_width: usize,
        map: &(dyn Fn(&Row<'_>) -> T + Sync),
        sink: &mut Sink<'_, T>,
    ) -> Result<()> {
        let fold = |out: &mut Vec<T>, r: &Row<'_>| out.push(map(r));
        self.scan_fold(header_row, header_width, &fold, None, sink)
    }

    /// Like [`scan`](Self::scan), but folds the rows of each batch into one
    /// value with `fold`, in parallel (on rayon), and hands `sink` the
    /// values, in row order. A row of a CSV file that `raw`, when given,
    /// takes by its number and bytes alone (`true`) may come so, without
    /// its cells being parsed; a row with changed cells never does.
    pub fn scan_fold<A: Default + Send>(
        &self,
        header_row: u64,
        header_width: usize,
        fold: &Fold<'_, A>,
        raw: Option<&RawFold<'_, A>>,
        sink: &mut FoldSink<'_, A>,
    ) -> Result<()> {
        use rayon::prelude::*;
        let edited = |out: &mut A, r: &Row<'_>| self.with_edits(r, |r| fold(out, r));
        let fold: &Fold<'_, A> = if self.edits.is_empty() { fold } else { &edited };
        // A changed row's bytes are no longer its cells.
        let unchanged = |out: &mut A, number: u64, bytes: &[u8]| {
            !self.edits.touches(number) && raw.is_some_and(|raw| raw(out, number, bytes))
        };
        let raw = raw.map(|_| &unchanged as &RawFold<'_, A>);
        match &*self.inner {
            Inner::Text(t) => t.scan_fold(&self.path, header_row, header_width, fold, raw, sink),
            Inner::Excel(x) => x.scan(header_row, &mut |rows| {
                let fold_part = |part: &[Row<'_>]| {
                    let mut out = A::default();
                    part.iter().for_each(|r| fold(&mut out, r));
                    out
                };
                let folded: Vec<A> = rows.par_chunks(FOLD_ROWS).map(fold_part).collect();
                folded.into_iter().try_for_each(&mut *sink)
            }),
        }
    }
}

/// The signature of a compound file: an old `.xls`, or an `.xlsx` saved
/// with a password (Excel wraps those in the same container).
const COMPOUND: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Whether the file is a compound file (read in a capped child first,
/// whatever its name says: see [`excel::preflight`]).
fn is_compound(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == COMPOUND)
}

/// Finds out what the file is from its first bytes and its name.
pub fn sniff_kind(path: &Path) -> Result<FileKind> {
    use std::io::Read;
    let mut head = [0u8; 8];
    crate::files::regular(path).map_err(|e| Error::io(path, e))?;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    let head = &head[..n];
    if n == 0 {
        return Err(Error::input(path, "the file is empty"));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let excel_ext = matches!(ext.as_str(), "xlsx" | "xlsm" | "xlsb" | "xls" | "ods");
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(match ext.as_str() {
            "xlsb" => FileKind::Xlsb,
            "ods" => FileKind::Ods,
            "xlsx" | "xlsm" => FileKind::Xlsx,
            _ => {
                return Err(Error::input(
                    path,
                    "this is a zip archive (an Excel or ODS workbook?), not a CSV file; \
                     give it its real extension (.xlsx, .ods)",
                ));
            }
        });
    }
    if head.starts_with(&COMPOUND) {
        // An old .xls, or an .xlsx saved with a password (Excel wraps those
        // in the same container); the Excel reader tells them apart.
        return Ok(if ext == "xls" {
            FileKind::Xls
        } else {
            FileKind::Xlsx
        });
    }
    if let Some(what) = binary_signature(head) {
        return Err(Error::input(
            path,
            format!("not a spreadsheet: the file is {what}"),
        ));
    }
    if excel_ext {
        return Err(Error::input(
            path,
            format!(
                "not a .{ext} workbook: the file is not a zip or Excel container \
                 (truncated, or a text file renamed?)"
            ),
        ));
    }
    Ok(FileKind::Text)
}

fn binary_signature(head: &[u8]) -> Option<&'static str> {
    const SIGS: &[(&[u8], &str)] = &[
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"%PDF", "a PDF document"),
        (b"\x1F\x8B", "gzip-compressed"),
        (b"7z\xBC\xAF", "a 7-Zip archive"),
        (b"Rar!", "a RAR archive"),
        (b"\x7FELF", "a program"),
        (b"MZ", "a Windows program"),
    ];
    SIGS.iter()
        .find(|(sig, _)| head.starts_with(sig))
        .map(|(_, what)| *what)
}

/// `dcms-bulk __check-workbook FILE`: reads a legacy workbook in this
/// (child) process under a memory cap (see [`excel::preflight`]).
pub fn check_workbook(path: &Path) -> Result<()> {
    let kind = sniff_kind(path)?;
    excel::check_in_child(path, kind)
}

/// Opens a CSV file, or the workbook and the sheet `pick` chooses among its
/// sheet names (with a way to look at each candidate's first rows).
pub fn open(path: &Path, opts: &ReadOpts, pick: &mut dyn FnMut(&Sheet) -> bool) -> Result<Sheet> {
    let kind = sniff_kind(path)?;
    if kind == FileKind::Text {
        if opts.sheet.is_some() {
            return Err(Error::Usage(
                "--sheet applies to workbooks, not CSV files".into(),
            ));
        }
        let len = crate::files::regular(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        if len > MAX_TEXT_FILE {
            return Err(Error::input(
                path,
                format!(
                    "the file is larger than {} GiB, more than a CSV order sheet may be (some 25 million \
                     rows); split it",
                    MAX_TEXT_FILE >> 30
                ),
            ));
        }
        budget::check_fits(path, len, &budget::limits())?;
        let (t, notes, size) = text::TextSheet::open(path, &opts.text)?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("sheet")
            .to_string();
        return Ok(Sheet {
            path: path.to_path_buf(),
            name,
            first_col: 0,
            inner: std::sync::Arc::new(Inner::Text(t)),
            notes,
            edits: Edits::default(),
            sha256: String::new(),
            bytes: size,
        });
    }
    let (sha256, size) = crate::files::sha256_file(path).map_err(|e| Error::io(path, e))?;
    if let Some(program) = &opts.isolate
        && (matches!(kind, FileKind::Xls | FileKind::Xlsb) || is_compound(path))
    {
        excel::preflight(program, path)?;
    }
    let mut wb = Workbook::open(path, kind, opts.limits)?;
    let names = wb.sheet_names();
    let chosen: Vec<String> = match &opts.sheet {
        Some(want) => vec![resolve_sheet(path, &names, want)?],
        None => names.clone(),
    };
    let mut first: Option<Sheet> = None;
    for name in &chosen {
        let x = wb.load(name)?;
        let sheet = Sheet {
            path: path.to_path_buf(),
            name: name.clone(),
            first_col: x.first_col(),
            notes: vec![format!(
                "{kind:?} workbook, sheet `{name}` (of {})",
                names.len()
            )],
            inner: std::sync::Arc::new(Inner::Excel(x)),
            edits: Edits::default(),
            sha256: sha256.clone(),
            bytes: size,
        };
        if opts.sheet.is_some() || pick(&sheet) {
            return Ok(sheet);
        }
        first.get_or_insert(sheet);
    }
    // No sheet has the headers: return the first, so the caller's error
    // names the headers it found there.
    first.ok_or_else(|| Error::input(path, "the workbook has no worksheets"))
}

/// The largest CSV file read. Its text is not held in memory, but what is
/// kept of every row while it is checked and sent is (some 100 bytes a
/// row), and a file this large is no order sheet.
pub const MAX_TEXT_FILE: u64 = 4 << 30;

fn resolve_sheet(path: &Path, names: &[String], want: &str) -> Result<String> {
    if let Some(n) = names.iter().find(|n| n.as_str() == want) {
        return Ok(n.clone());
    }
    if let Some(n) = names.iter().find(|n| n.eq_ignore_ascii_case(want)) {
        return Ok(n.clone());
    }
    if let Ok(i) = want.parse::<usize>()
        && i >= 1
        && i <= names.len()
    {
        return Ok(names[i - 1].clone());
    }
    Err(Error::input(
        path,
        format!("no sheet `{want}`; the workbook has: {}", names.join(", ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row with a changed cell never comes as the file's bytes: they
    /// are no longer its cells.
    #[test]
    fn a_changed_row_is_never_taken_as_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        std::fs::write(&path, "a,b\n1,2\n3,4\n5,6\n").unwrap();
        let mut sheet = open(&path, &ReadOpts::default(), &mut |_| true).unwrap();
        // A first pass finds which chunks' lines are their records.
        sheet.scan_map(1, 2, &|_| (), &mut |_| Ok(())).unwrap();
        let mut edits = Edits::default();
        edits.set(3, 1, "x".into());
        sheet.set_edits(edits);
        let mut got = Vec::new();
        let fold = |out: &mut Vec<_>, r: &Row<'_>| {
            out.push(format!("{} parsed {}", r.number(), r.cell(1).text))
        };
        let raw = |out: &mut Vec<_>, n: u64, bytes: &[u8]| {
            out.push(format!("{n} bytes {}", String::from_utf8_lossy(bytes)));
            true
        };
        let sink = &mut |rows: Vec<String>| {
            got.extend(rows);
            Ok(())
        };
        sheet.scan_fold(1, 2, &fold, Some(&raw), sink).unwrap();
        assert_eq!(got, ["2 bytes 1,2", "3 parsed x", "4 bytes 5,6"]);
    }

    #[test]
    fn a_record_is_canonical_when_the_writer_writes_its_bytes() {
        // Read with either delimiter: only a comma-separated record's bytes
        // are what the writer writes.
        for (line, delimiter) in [b',', b';'].into_iter().flat_map(|d| {
            [
                "a;b;c",
                "a,b;c;d",
                "a;b,c;d",
                "a;b;c,d",
                "a,b,c ",
                "a,b,\tc",
                "a,b,c",
                "a, b,c",
                "\"a\",b,c",
                "\"a,1\",b,c",
                "\"a\"\"1\",b,c",
                "a,,c",
                ",,",
                "a,b",
                "a,b,c,d",
                "\"\",b,c",
                "a,\"x\ny\",c",
                "a,\" b\",c",
                "a\"b,c,d",
                "=1,b,c",
                "a,\"b,1\",c",
                "\"a,1\",b,\"c\"\"d\"",
                "a,b\"x,c",
                "a,\"b,1\",\"c\"",
                "\"a,1\",\"\",c",
            ]
            .map(|line| (line, d))
        }) {
            let mut rec = csv::StringRecord::new();
            RecordParser::new(delimiter)
                .parse(line.as_bytes(), &mut rec)
                .unwrap();
            let raw = Some(line.as_bytes());
            let row = Row::Text {
                number: 2,
                record: &rec,
                raw,
            };
            let cells: Vec<String> = (0..3).map(|c| row.cell(c).text.into_owned()).collect();
            let mut w = csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(vec![]);
            w.write_record(&cells).unwrap();
            let written = w.into_inner().unwrap();
            let same = written == [line.as_bytes(), b"\n"].concat();
            assert_eq!(
                row.canonical_csv(3, &|_| true),
                same,
                "{line:?} read with {delimiter}"
            );
            let not_b = |cell: &str| cell != "b";
            let also = same && (0..3).all(|c| row.cell(c).text != "b");
            assert_eq!(row.canonical_csv(3, &not_b), also, "{line:?}: no cell b");
        }
    }

    #[test]
    fn printable_rows_are_told_from_the_others() {
        let sheet = |cells: &[Data]| Row::Sheet { number: 2, cells }.is_printable_ascii();
        assert!(sheet(&[
            Data::String("Pune Camp ~ 1".into()),
            Data::Float(12.5),
            Data::Int(-3),
            Data::Bool(true),
            Data::Empty,
        ]));
        assert!(!sheet(&[
            Data::String("Pune".into()),
            Data::String("a\tb".into())
        ]));
        assert!(!sheet(&[Data::String("Caf\u{e9}".into())]));
        assert!(!sheet(&[Data::String("x\u{7f}".into())]));
        assert!(!sheet(&[Data::Error(calamine::CellErrorType::NA)]));
        let text = |cells: Vec<&str>| {
            let record = csv::StringRecord::from(cells);
            Row::Text {
                number: 2,
                record: &record,
                raw: None,
            }
            .is_printable_ascii()
        };
        assert!(text(vec![
            "00123",
            "Flat 1~Camp",
            " ",
            "2026-12-01 09:00:00"
        ]));
        assert!(!text(vec!["00123", "two\nlines"]));
        assert!(!text(vec!["d\u{e9}j\u{e0}"]));
    }

    #[test]
    fn column_letters() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(701), "ZZ");
        assert_eq!(column_letter(702), "AAA");
        assert_eq!(column_letter(16383), "XFD");
    }

    #[test]
    fn whole_floats_become_integers() {
        assert_eq!(format_number(12345.0), "12345");
        assert_eq!(format_number(3.5), "3.5");
        assert_eq!(format_number(-2.0), "-2");
        assert_eq!(format_number(1e20), "100000000000000000000");
    }

    #[test]
    fn excel_cells_convert() {
        use calamine::{CellErrorType, ExcelDateTime, ExcelDateTimeType};
        let c = |d: Data| {
            let r = convert_cell(&d);
            (r.text.into_owned(), r.kind)
        };
        assert_eq!(c(Data::Float(12345.0)), ("12345".into(), CellKind::Number));
        assert_eq!(c(Data::Int(7)), ("7".into(), CellKind::Number));
        assert_eq!(
            c(Data::String("  Pune \t".into())),
            ("Pune".into(), CellKind::Text)
        );
        assert_eq!(c(Data::String("   ".into())), ("".into(), CellKind::Empty));
        assert_eq!(c(Data::Bool(true)), ("TRUE".into(), CellKind::Bool));
        assert_eq!(
            c(Data::Error(CellErrorType::NA)),
            ("#N/A".into(), CellKind::Error)
        );
        assert_eq!(
            c(Data::Error(CellErrorType::Div0)),
            ("#DIV/0!".into(), CellKind::Error)
        );
        // 2025-01-01 08:00:00 is serial 45658.3333… in the 1900 system…
        // A date cell far outside Excel's range is its number, not a panic.
        for v in [-1e12, 1e12, f64::NAN, 2_958_466.0] {
            let far = ExcelDateTime::new(v, ExcelDateTimeType::DateTime, false);
            assert_eq!(c(Data::DateTime(far)).1, CellKind::Number, "{v}");
        }
        let dt = ExcelDateTime::new(45658.0 + 1.0 / 3.0, ExcelDateTimeType::DateTime, false);
        assert_eq!(
            c(Data::DateTime(dt)),
            ("2025-01-01 08:00:00".into(), CellKind::Date)
        );
        // …and 1462 days less in the 1904 system.
        let dt = ExcelDateTime::new(
            45658.0 - 1462.0 + 1.0 / 3.0,
            ExcelDateTimeType::DateTime,
            true,
        );
        assert_eq!(
            c(Data::DateTime(dt)),
            ("2025-01-01 08:00:00".into(), CellKind::Date)
        );
        // A time a hair under the second rounds up, not down.
        let dt = ExcelDateTime::new(
            45658.0 + 36000.0 / 86400.0 - 1e-9,
            ExcelDateTimeType::DateTime,
            false,
        );
        assert_eq!(
            c(Data::DateTime(dt)),
            ("2025-01-01 10:00:00".into(), CellKind::Date)
        );
        assert_eq!(
            c(Data::DateTimeIso("2025-03-04T05:06:07".into())),
            ("2025-03-04 05:06:07".into(), CellKind::Date)
        );
        assert_eq!(
            c(Data::DateTimeIso("2025-03-04".into())),
            ("2025-03-04 00:00:00".into(), CellKind::Date)
        );
    }
}
