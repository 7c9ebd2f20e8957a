//! Workbooks (`.xlsx .xlsm .xlsb .xls .ods`) through calamine, with the
//! checks calamine leaves to its caller: a zip bomb is refused before any
//! part is inflated, and calamine's errors become messages a clerk can act on.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use calamine::{Data, Range, Reader, Sheets};

use super::{BATCH_ROWS, FileKind, Row};
use crate::error::{Error, Result};

/// No part of a workbook may inflate past this: a 1,000,000-row order sheet
/// is about 600 MB of XML, a zip bomb many gigabytes.
pub const MAX_PART_BYTES: u64 = 1 << 30;

/// An open workbook, from which sheets are loaded by name.
pub struct Workbook {
    path: PathBuf,
    inner: Sheets<BufReader<File>>,
}

impl Workbook {
    pub fn open(path: &Path, kind: FileKind) -> Result<Self> {
        if matches!(kind, FileKind::Xlsx | FileKind::Xlsb | FileKind::Ods) && is_zip(path)? {
            check_zip(path)?;
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
        let inner = &mut self.inner;
        let range = guarded(&path, || {
            inner.worksheet_range(name).map_err(|e| {
                Error::input(
                    &path,
                    format!("cannot read sheet `{name}`: {}", error_text(&e)),
                )
            })
        })?;
        Ok(ExcelSheet { range })
    }
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

fn is_zip(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut magic = [0u8; 2];
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
    Ok(n == 2 && &magic == b"PK")
}

/// Reads the zip's central directory (no inflating) and refuses a part that
/// would inflate past [`MAX_PART_BYTES`].
fn check_zip(path: &Path) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| Error::input(path, format!("the workbook is damaged or truncated ({e})")))?;
    for i in 0..zip.len() {
        let part = zip.by_index_raw(i).map_err(|e| {
            Error::input(path, format!("the workbook is damaged or truncated ({e})"))
        })?;
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
    Ok(())
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
