//! A job's sheet written back out, for the branch: the sheet as it is now
//! (every change made), and the rows the branch must fix, in the branch's
//! own layout with a first column that says what to fix, in words.
//! A text sheet comes back as CSV, a workbook as XLSX (its id columns as
//! Text, so that Excel keeps their leading zeros).

use std::path::Path;

use rust_xlsxwriter::{Format, Workbook};

use super::{Job, ShownRow};
use crate::error::{Error, Result};

/// Which rows go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Every data row, as it is now.
    All,
    /// The invalid rows, each with what to fix.
    ToFix,
}

/// The column that says what to fix.
pub const TO_FIX: &str = "what to fix";

impl Job {
    /// Whether the sheet came as a workbook (it goes back as XLSX).
    pub fn is_workbook(&self) -> bool {
        self.checked().sheet.is_workbook()
    }

    /// Writes `rows` of the sheet to `path`: CSV, or XLSX when the path
    /// ends in `.xlsx`.
    pub fn export(&self, rows: Rows, path: &Path) -> Result<()> {
        let headers = &self.checked().columns.headers;
        let mut header: Vec<String> = Vec::new();
        if rows == Rows::ToFix {
            header.push(TO_FIX.into());
        }
        header.extend(headers.iter().cloned());
        let total = self.checked().grouping.counts.rows;
        let page = self.page(rows == Rows::ToFix, 0, total)?;
        let lines = page
            .rows
            .into_iter()
            .filter(|r| rows == Rows::All || r.status == "INVALID")
            .map(|r| match rows {
                Rows::All => r.cells,
                Rows::ToFix => {
                    let mut line = vec![what_to_fix(&r, headers)];
                    line.extend(r.cells);
                    line
                }
            });
        let xlsx = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
        if xlsx {
            let ids: Vec<bool> = header.iter().map(|h| is_id(h)).collect();
            write_xlsx(path, &header, lines, &ids)
        } else {
            write_csv(path, &header, lines)
        }
    }
}

/// A row's problems in words a clerk understands: each with its column.
fn what_to_fix(row: &ShownRow, headers: &[String]) -> String {
    row.problems
        .iter()
        .map(|(col, message)| {
            // Words for the branch: no program options in them.
            let message = message.replace(" (a warning, refused by --strict)", "");
            match col.and_then(|c| headers.get(c)) {
                Some(h) => format!("{h}: {message}"),
                None => message,
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A column whose values are codes with leading zeros (kept as Text).
fn is_id(header: &str) -> bool {
    crate::columns::Field::from_name(header).is_some_and(|f| f.is_id())
}

fn write_csv(
    path: &Path,
    header: &[String],
    lines: impl Iterator<Item = Vec<String>>,
) -> Result<()> {
    let err = |e: csv::Error| Error::report(path, e);
    let mut out = csv::Writer::from_path(path).map_err(err)?;
    out.write_record(header).map_err(err)?;
    for line in lines {
        out.write_record(&line).map_err(err)?;
    }
    out.flush().map_err(|e| Error::report(path, e))
}

fn write_xlsx(
    path: &Path,
    header: &[String],
    lines: impl Iterator<Item = Vec<String>>,
    ids: &[bool],
) -> Result<()> {
    let err = |e: rust_xlsxwriter::XlsxError| Error::report(path, e);
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let text = Format::new().set_num_format_index(49);
    let ws = wb.add_worksheet();
    for (c, h) in header.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, h, &bold)
            .map_err(err)?;
        if ids[c] {
            ws.set_column_format(c as u16, &text).map_err(err)?;
        }
    }
    for (r, line) in lines.enumerate() {
        let r = r as u32 + 1;
        for (c, v) in line.iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            let whole = v.parse::<i64>().ok().filter(|_| !v.starts_with('0'));
            if ids.get(c).copied().unwrap_or(false) {
                ws.write_string_with_format(r, c as u16, v, &text)
                    .map_err(err)?;
            } else if let Some(n) = whole {
                // A number column holds numbers, as the template's does.
                ws.write_number(r, c as u16, n as f64).map_err(err)?;
            } else {
                ws.write_string(r, c as u16, v).map_err(err)?;
            }
        }
    }
    ws.set_freeze_panes(1, 0).map_err(err)?;
    let bytes = wb.save_to_buffer().map_err(err)?;
    crate::files::write_atomic(path, &bytes)
        .map(|_| ())
        .map_err(|e| Error::report(path, e))
}
