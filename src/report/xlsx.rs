//! The XLSX report: header frozen, filter on, statuses coloured, every value
//! written as a plain string (never a formula), and two more sheets: a
//! summary and the run facts.

use std::path::Path;

use rust_xlsxwriter::{Color, Format as CellFormat, FormatBorder, Workbook, Worksheet};

use super::{Header, Line, RunFacts, column_names};
use crate::error::{Error, Result};
use crate::files::AtomicFile;

/// Excel's last row, less the header.
pub const MAX_XLSX_ROWS: usize = 1_048_575;
const MAX_CELL: usize = 32_767;

/// The colour of each status, in the status column.
const STATUS_COLOURS: [(&str, u32); 9] = [
    ("VALID", 0xC6EFCE),
    ("ACCEPTED", 0xC6EFCE),
    ("SUCCESS", 0xC6EFCE),
    ("INVALID", 0xFFC7CE),
    ("REJECTED", 0xFFC7CE),
    ("HELD", 0xFFEB9C),
    ("CONFLICT", 0xFFEB9C),
    ("FAILED", 0xF8CBAD),
    ("SKIPPED", 0xDDEBF7),
];

pub(super) struct XlsxSink {
    file: AtomicFile,
    wb: Workbook,
    header: Header,
    next_row: u32,
    bold: CellFormat,
    status_formats: Vec<(&'static str, CellFormat)>,
}

fn xerr(path: &Path, e: rust_xlsxwriter::XlsxError) -> Error {
    Error::report(path, e)
}

/// The header row's format, on every sheet.
fn header_format() -> CellFormat {
    CellFormat::new()
        .set_bold()
        .set_border_bottom(FormatBorder::Thin)
}

/// A report read back and extended (see [`super::write_table`]): its
/// cells written as they are, as strings, the header frozen.
pub(super) fn table(
    headers: &[String],
    rows: &[Vec<String>],
) -> std::result::Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Report")?;
    let bold = header_format();
    for (c, h) in headers.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, fit(h).as_ref(), &bold)?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
            ws.write_string(r as u32 + 1, c as u16, fit(v).as_ref())?;
        }
    }
    ws.set_freeze_panes(1, 0)?;
    wb.save_to_buffer()
}

/// A value longer than a cell can hold is cut, and says so.
fn fit(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= MAX_CELL || s.chars().count() <= MAX_CELL {
        return std::borrow::Cow::Borrowed(s);
    }
    let kept: String = s.chars().take(MAX_CELL - 40).collect();
    std::borrow::Cow::Owned(format!(
        "{kept}… [cut: {} characters in all]",
        s.chars().count()
    ))
}

impl XlsxSink {
    pub(super) fn create(path: &Path, header: &Header) -> Result<Self> {
        if header.rows > MAX_XLSX_ROWS {
            return Err(Error::report(
                path,
                format!(
                    "{} rows do not fit in one Excel sheet ({MAX_XLSX_ROWS} at most); use a .csv or .jsonl report",
                    header.rows
                ),
            ));
        }
        let file = AtomicFile::create(path).map_err(|e| Error::report(path, e))?;
        let mut wb = Workbook::new();
        let bold = header_format();
        let status_formats = STATUS_COLOURS
            .iter()
            .map(|&(s, rgb)| (s, CellFormat::new().set_background_color(Color::RGB(rgb))))
            .collect();
        let ws = wb.add_worksheet_with_constant_memory();
        ws.set_name("Report").map_err(|e| xerr(path, e))?;
        for (c, name) in column_names(header).enumerate() {
            ws.write_string_with_format(0, c as u16, fit(name).as_ref(), &bold)
                .map_err(|e| xerr(path, e))?;
        }
        ws.set_freeze_panes(1, 0).map_err(|e| xerr(path, e))?;
        Ok(XlsxSink {
            file,
            wb,
            header: header.clone(),
            next_row: 1,
            bold,
            status_formats,
        })
    }

    /// A sheet of `(name, value)` pairs after the report.
    fn side_sheet(
        &mut self,
        name: &str,
        titles: [&str; 2],
        pairs: &[(String, String)],
        numbers: bool,
    ) -> std::result::Result<(), rust_xlsxwriter::XlsxError> {
        let ws: &mut Worksheet = self.wb.add_worksheet();
        ws.set_name(name)?;
        ws.write_string_with_format(0, 0, titles[0], &self.bold)?;
        ws.write_string_with_format(0, 1, titles[1], &self.bold)?;
        for (i, (k, v)) in pairs.iter().enumerate() {
            let r = i as u32 + 1;
            ws.write_string(r, 0, fit(k).as_ref())?;
            match v.parse::<f64>() {
                Ok(n) if numbers => ws.write_number(r, 1, n)?,
                _ => ws.write_string(r, 1, fit(v).as_ref())?,
            };
        }
        ws.set_column_width(0, 24)?;
        ws.set_column_width(1, if numbers { 12 } else { 80 })?;
        Ok(())
    }
}

impl XlsxSink {
    pub(super) fn lines(&mut self, lines: &[Line<'_>]) -> Result<()> {
        let path = self.file.path().to_path_buf();
        let ws = self
            .wb
            .worksheet_from_index(0)
            .map_err(|e| xerr(&path, e))?;
        let lead = [fit(&self.header.source_file), fit(&self.header.sheet)];
        for line in lines {
            let row = self.next_row;
            let mut write = || -> std::result::Result<(), rust_xlsxwriter::XlsxError> {
                ws.write_string(row, 0, lead[0].as_ref())?;
                ws.write_string(row, 1, lead[1].as_ref())?;
                ws.write_number(row, 2, line.number as f64)?;
                let mut col = 3u16;
                for v in line.cells.list().iter() {
                    if !v.is_empty() {
                        ws.write_string(row, col, fit(v).as_ref())?;
                    }
                    col += 1;
                }
                for (i, v) in line.results.iter().enumerate() {
                    let text = v.text();
                    let colour = self
                        .status_formats
                        .iter()
                        .find(|(s, _)| i == 0 && *s == text)
                        .map(|(_, f)| f);
                    match colour {
                        Some(f) => ws.write_string_with_format(row, col, text.as_ref(), f)?,
                        None if text.is_empty() => ws,
                        None => ws.write_string(row, col, fit(&text).as_ref())?,
                    };
                    col += 1;
                }
                Ok(())
            };
            write().map_err(|e| xerr(&path, e))?;
            self.next_row += 1;
        }
        Ok(())
    }

    pub(super) fn finish(mut self, facts: &RunFacts) -> Result<String> {
        let path = self.file.path().to_path_buf();
        let last_col = (3 + self.header.columns.len() + self.header.results.len() - 1) as u16;
        let last_row = self.next_row.saturating_sub(1).max(1);
        let summary: Vec<(String, String)> = facts
            .summary()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (|| {
            self.wb
                .worksheet_from_index(0)?
                .autofilter(0, 0, last_row, last_col)?;
            self.side_sheet("Summary", ["what", "count"], &summary, true)?;
            self.side_sheet("Run facts", ["fact", "value"], &facts.lines(), false)?;
            self.wb.save(self.file.tmp_path())
        })()
        .map_err(|e| xerr(&path, e))?;
        let (sha, _) =
            crate::files::sha256_file(self.file.tmp_path()).map_err(|e| Error::report(&path, e))?;
        self.file.commit().map_err(|e| Error::report(&path, e))?;
        Ok(sha)
    }
}
