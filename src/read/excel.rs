//! Workbooks (`.xlsx .xlsm .xlsb .xls .ods`) through calamine, with the
//! checks calamine leaves to its caller: a zip bomb is refused before any
//! part is inflated, and calamine's errors become messages a clerk can act on.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use calamine::{Cell, Data, Range, Reader, Sheets};

use super::{BATCH_ROWS, FileKind, Limits, MAX_COLUMNS, MAX_ROWS, Row};
use crate::error::{Error, Result};

/// No part of a workbook may inflate past this: a 1,000,000-row order sheet
/// is about 600 MB of XML, a zip bomb many gigabytes.
pub const MAX_PART_BYTES: u64 = 1 << 30;

/// An open workbook, from which sheets are loaded by name.
pub struct Workbook {
    path: PathBuf,
    inner: Sheets<BufReader<File>>,
    limits: Limits,
}

impl Workbook {
    pub fn open(path: &Path, kind: FileKind, limits: Limits) -> Result<Self> {
        if matches!(kind, FileKind::Xlsx | FileKind::Xlsb | FileKind::Ods) && is_zip(path)? {
            check_zip(path, kind, limits)?;
        }
        let inner = guarded(path, || match kind {
            FileKind::Xlsx => calamine::open_workbook(path)
                .map(Sheets::Xlsx)
                .map_err(|e| xlsx_error(path, e)),
            FileKind::Xlsb => calamine::open_workbook(path)
                .map(Sheets::Xlsb)
                .map_err(|e| damaged(path, &e)),
            FileKind::Xls => calamine::open_workbook(path)
                .map(Sheets::Xls)
                .map_err(|e| damaged(path, &e)),
            FileKind::Ods => calamine::open_workbook(path)
                .map(Sheets::Ods)
                .map_err(|e| damaged(path, &e)),
            FileKind::Text => Err(damaged(path, &"not a workbook")),
        })?;
        Ok(Workbook {
            path: path.to_path_buf(),
            inner,
            limits,
        })
    }

    /// The worksheets, in workbook order (chart sheets have no cells).
    pub fn sheet_names(&self) -> Vec<String> {
        self.inner
            .sheets_metadata()
            .iter()
            .filter(|s| s.typ == calamine::SheetType::WorkSheet)
            .map(|s| s.name.clone())
            .collect()
    }

    pub(super) fn load(&mut self, name: &str) -> Result<ExcelSheet> {
        let path = self.path.clone();
        let limits = self.limits;
        let inner = &mut self.inner;
        let unreadable = |e: &dyn std::fmt::Display| {
            Error::input(&path, format!("cannot read sheet `{name}`: {e}"))
        };
        let range = guarded(&path, || match inner {
            // Cell by cell, within the budget: calamine's own range would
            // allocate the whole used area first, however far its last
            // cell (a lone cell at XFD1048576: 17 billion cells).
            Sheets::Xlsx(x) => {
                let padded = super::formats::zero_padded(&path, name);
                let mut cells = x.worksheet_cells_reader(name).map_err(|e| unreadable(&e))?;
                budgeted(&path, name, limits, &padded, || {
                    cells.next_cell().map_err(|e| unreadable(&e))
                })
            }
            Sheets::Xlsb(x) => {
                let mut cells = x.worksheet_cells_reader(name).map_err(|e| unreadable(&e))?;
                budgeted(&path, name, limits, &Default::default(), || {
                    cells.next_cell().map_err(|e| unreadable(&e))
                })
            }
            other => other
                .worksheet_range(name)
                .map_err(|e| unreadable(&error_text(&e))),
        })?;
        Ok(ExcelSheet { range })
    }
}

/// A sheet's range from its cells, one at a time, refused as soon as a cell
/// lies beyond Excel's rows or columns or the used area would pass
/// `limits.max_cells`. A whole number in a cell of `padded` is read as its
/// format shows it, zeros first (see [`super::formats`]).
fn budgeted<'a>(
    path: &Path,
    sheet: &str,
    limits: Limits,
    padded: &std::collections::HashMap<(u32, u32), usize>,
    mut next: impl FnMut() -> Result<Option<Cell<calamine::DataRef<'a>>>>,
) -> Result<Range<Data>> {
    let mut cells: Vec<Cell<Data>> = Vec::new();
    let (mut top, mut left, mut bottom, mut right) = (u32::MAX, u32::MAX, 0u32, 0u32);
    let mut text = 0u64;
    while let Some(cell) = next()? {
        if matches!(cell.get_value(), calamine::DataRef::Empty) {
            continue;
        }
        let (row, col) = cell.get_position();
        if row >= MAX_ROWS || col >= MAX_COLUMNS {
            return Err(Error::input(
                path,
                format!(
                    "sheet `{sheet}` has a cell at row {}, column {}: beyond Excel's {MAX_ROWS} rows and {MAX_COLUMNS} columns; the workbook is damaged",
                    u64::from(row) + 1,
                    u64::from(col) + 1
                ),
            ));
        }
        (top, left) = (top.min(row), left.min(col));
        (bottom, right) = (bottom.max(row), right.max(col));
        let area = u64::from(bottom - top + 1) * u64::from(right - left + 1);
        if area > limits.max_cells {
            return Err(Error::input(
                path,
                format!(
                    "sheet `{sheet}`: its cells span {} rows by {} columns ({area} cells, up to row {} and column {}), over the limit of {} cells; \
                     delete what lies far outside the table, or raise the limit with --max-cells",
                    bottom - top + 1,
                    right - left + 1,
                    u64::from(bottom) + 1,
                    u64::from(right) + 1,
                    limits.max_cells
                ),
            ));
        }
        text += match cell.get_value() {
            calamine::DataRef::String(s) => s.len() as u64,
            calamine::DataRef::SharedString(s) => s.len() as u64,
            _ => 0,
        };
        if text > limits.max_text_bytes {
            return Err(Error::input(
                path,
                format!(
                    "sheet `{sheet}`: its cells hold more than {} MiB of text (a string repeated in very many cells?), over the limit; raise it with --max-text-mib",
                    limits.max_text_bytes >> 20
                ),
            ));
        }
        let (pos, mut value) = (cell.get_position(), Data::from(cell.get_value().clone()));
        if let Some(&width) = padded.get(&pos) {
            match value {
                Data::Float(n) if n >= 0.0 && n.fract() == 0.0 && n < 1e15 => {
                    value = Data::String(format!("{:0width$}", n as u64));
                }
                Data::Int(n) if n >= 0 => value = Data::String(format!("{n:0width$}")),
                _ => {}
            }
        }
        cells.push(Cell::new(pos, value));
    }
    Ok(Range::from_sparse(cells))
}

pub(super) struct ExcelSheet {
    range: Range<Data>,
}

impl ExcelSheet {
    pub(super) fn first_col(&self) -> usize {
        self.range.start().map_or(0, |(_, c)| c as usize)
    }

    /// How many rows the sheet has (blank ones too).
    pub(super) fn height(&self) -> usize {
        self.range.height()
    }

    fn first_row(&self) -> u64 {
        self.range.start().map_or(0, |(r, _)| r as u64)
    }

    fn rows_from(&self, skip: usize) -> impl Iterator<Item = Row<'_>> {
        let first = self.first_row();
        self.range
            .rows()
            .enumerate()
            .skip(skip)
            .map(move |(i, cells)| Row::Sheet {
                number: first + i as u64 + 1,
                cells,
            })
    }

    pub(super) fn head(&self, max_rows: usize, f: &mut dyn FnMut(&[Row<'_>])) {
        let rows: Vec<Row<'_>> = self.rows_from(0).take(max_rows).collect();
        f(&rows);
    }

    pub(super) fn scan(
        &self,
        header_row: u64,
        f: &mut dyn FnMut(&[Row<'_>]) -> Result<()>,
    ) -> Result<()> {
        let skip = header_row.saturating_sub(self.first_row()) as usize;
        let mut rows = self.rows_from(skip).peekable();
        let mut batch = Vec::with_capacity(BATCH_ROWS);
        while rows.peek().is_some() {
            batch.clear();
            batch.extend(rows.by_ref().take(BATCH_ROWS));
            f(&batch)?;
        }
        Ok(())
    }
}

thread_local! {
    /// Set while a guarded call into the workbook library runs: its panic
    /// is caught and reported, not printed.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs a call into calamine so that a panic in it (calamine panics on some
/// damaged `.xls` and `.xlsb` files) becomes "the workbook is damaged",
/// exit 3, with the file's name, instead of a backtrace. The unwind is
/// caught at this boundary, the only place the library is called from, and
/// the panic hook stays silent for it. (Allocation failures abort and
/// cannot be caught: the input budgets keep the library from asking.)
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
    GUARDED.with(|g| g.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(false));
    result.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let why: String = why.lines().next().unwrap_or("").chars().take(120).collect();
        Err(damaged(path, &format!("the reader gave up on it: {why}")))
    })
}

/// Memory a legacy workbook's check may take (address space).
const PREFLIGHT_MEMORY: u64 = 1 << 30;
/// Time a legacy workbook's check may take.
const PREFLIGHT_TIME: std::time::Duration = std::time::Duration::from_secs(20);

/// Reads a legacy workbook (`.xls`, `.xlsb`) once in a child process,
/// `program __check-workbook FILE`, capped at 1 GiB of memory and 20 s.
/// calamine reads their container and record lengths as given: a FAT
/// chain that loops grows without end, a record's length asks for
/// gigabytes, and an allocation that fails aborts the process, which no
/// unwind catches. Only a child can die of it: its death, or its running
/// out of time, is "the workbook is damaged". These formats are small
/// (65,536 rows at most for .xls), so reading twice costs little; `.xlsx`
/// and `.ods` are read once, within the budgets checked here.
pub fn preflight(program: &Path, path: &Path) -> Result<()> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .arg("__check-workbook")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io(program, e))?;
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| Error::io(program, e))? {
            Some(status) => break Some(status),
            None if started.elapsed() > PREFLIGHT_TIME => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    };
    let mut said = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        let _ = out.by_ref().take(64 * 1024).read_to_string(&mut said);
    }
    // The child's own answer (damaged, password...): its message, one
    // line of JSON.
    let answer = serde_json::from_str::<serde_json::Value>(said.trim())
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned));
    match (status, answer) {
        (Some(s), _) if s.success() => Ok(()),
        (Some(s), Some(message)) if s.code() == Some(crate::exit::INPUT_UNREADABLE) => {
            Err(Error::input(path, message))
        }
        (Some(_), _) => Err(damaged(
            path,
            &"reading it ran out of memory or crashed (its sizes and lengths make no sense)",
        )),
        (None, _) => Err(damaged(
            path,
            &format!("reading it took longer than {} s", PREFLIGHT_TIME.as_secs()),
        )),
    }
}

/// `dcms-bulk __check-workbook FILE`, in the child: caps its own memory,
/// then opens the workbook and loads every sheet, and says nothing more
/// than an error would.
pub fn check_in_child(path: &Path, kind: FileKind) -> Result<()> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, setrlimit};
        let cap = |n: u64| Rlimit {
            current: Some(n),
            maximum: Some(n),
        };
        // Best effort: a system that refuses still gets the time limit.
        let _ = setrlimit(Resource::As, cap(PREFLIGHT_MEMORY));
        let _ = setrlimit(Resource::Core, cap(0));
    }
    let mut wb = Workbook::open(path, kind, Limits::default())?;
    for name in wb.sheet_names() {
        wb.load(&name)?;
    }
    Ok(())
}

fn is_zip(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut magic = [0u8; 2];
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
    Ok(n == 2 && &magic == b"PK")
}

/// Reads the zip's central directory (no inflating) and refuses a part that
/// would inflate past [`MAX_PART_BYTES`].
/// The zip archive of a workbook, and what its parts say before calamine
/// allocates for them: part sizes, the shared-strings table, OpenDocument
/// repeats. The archive is opened once for all of them.
fn check_zip(path: &Path, kind: FileKind, limits: Limits) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| Error::input(path, format!("the workbook is damaged or truncated ({e})")))?;
    let mut shared_strings = None;
    for i in 0..zip.len() {
        let part = zip.by_index_raw(i).map_err(|e| {
            Error::input(path, format!("the workbook is damaged or truncated ({e})"))
        })?;
        if part.name_raw() == b"xl/sharedStrings.xml" {
            // calamine holds every shared string as it opens the workbook:
            // a table over the text budget is refused before it is read.
            if part.size() > limits.max_text_bytes {
                return Err(Error::input(
                    path,
                    format!(
                        "the workbook's shared-strings table inflates to {} MiB, more than the limit of {} MiB of text; raise it with --max-text-mib",
                        part.size() >> 20,
                        limits.max_text_bytes >> 20
                    ),
                ));
            }
            shared_strings = Some(part.size());
        }
        if part.size() > MAX_PART_BYTES {
            let name = String::from_utf8_lossy(part.name_raw()).into_owned();
            return Err(Error::input(
                path,
                format!(
                    "workbook part `{}` would inflate from {} bytes to {} bytes, over the {} MiB limit; \
                     refusing it (a zip bomb, or a sheet far larger than any order sheet)",
                    name,
                    part.compressed_size(),
                    part.size(),
                    MAX_PART_BYTES >> 20
                ),
            ));
        }
    }
    if let Some(bytes) = shared_strings {
        check_shared_strings(path, &mut zip, bytes)?;
    }
    if kind == FileKind::Ods {
        check_ods(path, &mut zip, limits)?;
    }
    Ok(())
}

type Archive = zip::ZipArchive<BufReader<File>>;

/// The shared-strings table's declared `uniqueCount` (which calamine
/// reserves memory for as it opens the workbook) must fit the part: every
/// string takes at least `<si><t/></si>`, 13 bytes. A count no part of
/// this size can hold is a lie (4,294,967,295 asks for 103 GB).
fn check_shared_strings(path: &Path, zip: &mut Archive, part_bytes: u64) -> Result<()> {
    use std::io::Read;
    let Ok(part) = zip.by_name("xl/sharedStrings.xml") else {
        return Ok(());
    };
    let mut head = Vec::new();
    // The count is on the first element; damaged bytes fail later, in calamine.
    let _ = part.take(4096).read_to_end(&mut head);
    let head = String::from_utf8_lossy(&head);
    let Some(at) = head.find("uniqueCount=\"") else {
        return Ok(());
    };
    let digits: String = head[at + 13..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let Ok(count) = digits.parse::<u64>() else {
        return Ok(());
    };
    if count > part_bytes / 13 + 1 {
        return Err(Error::input(
            path,
            format!(
                "the workbook's shared-strings table claims {count} strings in {part_bytes} bytes, more than it can hold; the workbook is damaged"
            ),
        ));
    }
    Ok(())
}

/// The cells an OpenDocument sheet's repeats would make, counted from its
/// XML before calamine expands them: a row or cell may say it repeats a
/// billion times (`number-rows-repeated`, `number-columns-repeated`), and
/// calamine materialises every repeat between the first and the last
/// non-empty cell. Refused past Excel's rows and columns or `max_cells`.
fn check_ods(path: &Path, zip: &mut Archive, limits: Limits) -> Result<()> {
    use quick_xml::events::Event;
    let Ok(content) = zip.by_name("content.xml") else {
        return Ok(());
    };
    let mut xml = quick_xml::Reader::from_reader(BufReader::new(content));
    let mut walk = OdsWalk::new();
    let mut buf = Vec::new();
    // Elements open: the sheet reader loops for ever on a document cut
    // inside one (found by bench/fuzz.py), so such a file is refused here.
    let mut depth = 0u64;
    let damaged = |why: String| {
        Error::input(
            path,
            format!("the workbook is damaged or truncated (content.xml: {why})"),
        )
    };
    loop {
        let event = xml
            .read_event_into(&mut buf)
            .map_err(|e| damaged(e.to_string()))?;
        match &event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof if depth > 0 => {
                return Err(damaged(format!("it ends inside {depth} open elements")));
            }
            Event::Eof => break,
            _ => {}
        }
        walk.step(&event, path, limits)?;
        buf.clear();
    }
    Ok(())
}

/// Where a walk through an OpenDocument sheet's XML is: the sheet's
/// extent so far, and the open row and cell.
struct OdsWalk {
    sheet: Extent,
    row_reps: u64,
    col: u64,
    row_width: u64,
    /// Text as the repeats would expand it: the open cell's repeats and
    /// text, and the row's text so far.
    cell_reps: u64,
    cell_text: u64,
    row_text: u64,
}

impl OdsWalk {
    fn new() -> OdsWalk {
        OdsWalk {
            sheet: Extent::default(),
            row_reps: 1,
            col: 0,
            row_width: 0,
            cell_reps: 0,
            cell_text: 0,
            row_text: 0,
        }
    }

    /// One event of the document; refuses a sheet over the limits.
    fn step(
        &mut self,
        event: &quick_xml::events::Event<'_>,
        path: &Path,
        limits: Limits,
    ) -> Result<()> {
        use quick_xml::events::Event;
        match event {
            Event::Start(e) => self.open(e, false),
            Event::Empty(e) => self.open(e, true),
            Event::Text(t) if self.cell_reps > 0 => {
                self.cell_text = self.cell_text.saturating_add(t.len() as u64);
            }
            Event::CData(t) if self.cell_reps > 0 => {
                self.cell_text = self.cell_text.saturating_add(t.len() as u64);
            }
            Event::End(e) => match e.local_name().as_ref() {
                "table-cell" | "covered-table-cell" => {
                    let text = self.cell_text.saturating_mul(self.cell_reps);
                    self.row_text = self.row_text.saturating_add(text);
                    (self.cell_reps, self.cell_text) = (0, 0);
                }
                "table-row" => self.sheet.row(self.row_reps, self.row_width, self.row_text),
                "table" => self.sheet.check(path, limits)?,
                _ => {}
            },
            _ => {}
        }
        self.sheet.check(path, limits)
    }

    /// An element opens (or is empty: opens and closes).
    fn open(&mut self, e: &quick_xml::events::BytesStart<'_>, empty: bool) {
        let repeats = |name: &str| -> u64 {
            e.try_get_attribute(name)
                .ok()
                .flatten()
                .and_then(|a| a.value.trim().parse::<u64>().ok())
                .unwrap_or(1)
                .max(1)
        };
        match e.local_name().as_ref() {
            "table" => self.sheet = Extent::default(),
            "table-row" => {
                self.row_reps = repeats("table:number-rows-repeated");
                (self.col, self.row_width, self.row_text) = (0, 0, 0);
                if empty {
                    self.sheet.row(self.row_reps, 0, 0);
                }
            }
            "table-cell" | "covered-table-cell" => {
                let reps = repeats("table:number-columns-repeated");
                self.col = self.col.saturating_add(reps);
                (self.cell_reps, self.cell_text) = (reps, 0);
                if e.try_get_attribute("office:value-type")
                    .ok()
                    .flatten()
                    .is_some()
                {
                    self.row_width = self.col;
                }
            }
            _ => {}
        }
    }
}

/// The rows and columns an OpenDocument sheet spans, and the text its
/// cells hold, repeats counted.
#[derive(Debug, Default)]
struct Extent {
    /// Rows seen so far, and the first and last with a value.
    rows: u64,
    first: Option<u64>,
    last: u64,
    width: u64,
    /// Bytes of text, every repeat of a row and a cell counted.
    text: u64,
}

impl Extent {
    fn row(&mut self, reps: u64, width: u64, text: u64) {
        self.text = self.text.saturating_add(text.saturating_mul(reps));
        if width > 0 {
            self.first.get_or_insert(self.rows);
            self.last = self.rows.saturating_add(reps);
            self.width = self.width.max(width);
        }
        self.rows = self.rows.saturating_add(reps);
    }

    fn check(&self, path: &Path, limits: Limits) -> Result<()> {
        self.check_extent(path, limits)?;
        if self.text > limits.max_text_bytes {
            return Err(Error::input(
                path,
                format!(
                    "a sheet's cells hold more than {} MiB of text once their repeats (number-rows-repeated, number-columns-repeated) are counted, over the limit; \
                     the workbook is damaged, or raise the limit with --max-text-mib",
                    limits.max_text_bytes >> 20
                ),
            ));
        }
        Ok(())
    }

    fn check_extent(&self, path: &Path, limits: Limits) -> Result<()> {
        let Some(first) = self.first else {
            return Ok(());
        };
        let (rows, cols) = (self.last - first, self.width);
        let area = rows.saturating_mul(cols);
        if self.last > u64::from(MAX_ROWS)
            || cols > u64::from(MAX_COLUMNS)
            || area > limits.max_cells
        {
            return Err(Error::input(
                path,
                format!(
                    "a sheet's repeated rows and cells (number-rows-repeated, number-columns-repeated) span {rows} rows by {cols} columns ({area} cells), over Excel's {MAX_ROWS} rows and {MAX_COLUMNS} columns or the limit of {} cells; \
                     the workbook is damaged, or raise the limit with --max-cells",
                    limits.max_cells
                ),
            ));
        }
        Ok(())
    }
}

fn xlsx_error(path: &Path, e: calamine::XlsxError) -> Error {
    match e {
        calamine::XlsxError::Password => Error::input(
            path,
            "the workbook is password-protected; open it in Excel, remove the password \
             (File > Info > Protect Workbook), save it and run again",
        ),
        e => damaged(path, &e),
    }
}

fn damaged(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::input(
        path,
        format!("the workbook is damaged or not a spreadsheet ({e})"),
    )
}

fn error_text(e: &calamine::Error) -> String {
    e.to_string()
}
