//! The XLSX report: header frozen, filter on, statuses coloured, every value
//! written as a plain string (never a formula), and two more sheets: a
//! summary and the run facts.

use std::path::Path;

use rust_xlsxwriter::{Color, Format as CellFormat, FormatBorder, Workbook};

use super::{AtomicFile, ReportHeader, ReportRow, RunFacts, Sink};
use crate::error::{Error, Result};

/// Excel's last row, less the header.
pub const MAX_XLSX_ROWS: usize = 1_048_575;
const MAX_CELL: usize = 32_767;

pub(super) struct XlsxSink {
    file: AtomicFile,
    wb: Workbook,
    next_row: u32,
    bold: CellFormat,
    status_formats: [(&'static str, CellFormat); 8],
}

fn xerr(path: &Path, e: rust_xlsxwriter::XlsxError) -> Error {
    Error::report(path, e)
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
    pub(super) fn create(path: &Path, header: &ReportHeader, rows: usize) -> Result<Self> {
        if rows > MAX_XLSX_ROWS {
            return Err(Error::report(
                path,
                format!(
                    "{rows} rows do not fit in one Excel sheet ({MAX_XLSX_ROWS} at most); use a .csv or .jsonl report"
                ),
            ));
        }
        let file = AtomicFile::create(path)?;
        let mut wb = Workbook::new();
        let bold = CellFormat::new()
            .set_bold()
            .set_border_bottom(FormatBorder::Thin);
        let fill = |rgb: u32| CellFormat::new().set_background_color(Color::RGB(rgb));
        let status_formats = [
            ("VALID", fill(0xC6EFCE)),
            ("INVALID", fill(0xFFC7CE)),
            ("HELD", fill(0xFFEB9C)),
            ("ACCEPTED", fill(0xC6EFCE)),
            ("REJECTED", fill(0xFFC7CE)),
            ("FAILED", fill(0xF8CBAD)),
            ("SKIPPED", fill(0xDDEBF7)),
            ("CONFLICT", fill(0xFFEB9C)),
        ];
        let ws = wb.add_worksheet_with_constant_memory();
        ws.set_name("Report").map_err(|e| xerr(path, e))?;
        let names = ["source_file", "sheet", "row"]
            .iter()
            .map(|s| s.to_string())
            .chain(header.columns.iter().cloned())
            .chain(header.result_columns().iter().map(|s| s.to_string()));
        for (c, name) in names.enumerate() {
            ws.write_string_with_format(0, c as u16, fit(&name).as_ref(), &bold)
                .map_err(|e| xerr(path, e))?;
        }
        ws.set_freeze_panes(1, 0).map_err(|e| xerr(path, e))?;
        Ok(XlsxSink {
            file,
            wb,
            next_row: 1,
            bold,
            status_formats,
        })
    }
}

impl Sink for XlsxSink {
    fn rows(&mut self, header: &ReportHeader, rows: &[ReportRow<'_>]) -> Result<()> {
        let path = self.file.path.clone();
        let ws = self
            .wb
            .worksheet_from_index(0)
            .map_err(|e| xerr(&path, e))?;
        for r in rows {
            let row = self.next_row;
            ws.write_string(row, 0, fit(&header.source_file).as_ref())
                .map_err(|e| xerr(&path, e))?;
            ws.write_string(row, 1, fit(&header.sheet).as_ref())
                .map_err(|e| xerr(&path, e))?;
            ws.write_number(row, 2, r.number as f64)
                .map_err(|e| xerr(&path, e))?;
            let mut c = 3u16;
            for v in &r.cells {
                if !v.is_empty() {
                    ws.write_string(row, c, fit(v).as_ref())
                        .map_err(|e| xerr(&path, e))?;
                }
                c += 1;
            }
            let status = r.status_text();
            let fmt = self
                .status_formats
                .iter()
                .find(|(s, _)| *s == status)
                .map(|(_, f)| f);
            let tail = r.result_cells(header.submitted);
            for (i, v) in tail.iter().enumerate() {
                let col = c + i as u16;
                match (i, fmt) {
                    (0, Some(f)) => ws.write_string_with_format(row, col, status, f),
                    _ if v.is_empty() => continue,
                    _ => ws.write_string(row, col, fit(v).as_ref()),
                }
                .map_err(|e| xerr(&path, e))?;
            }
            self.next_row += 1;
        }
        Ok(())
    }

    fn finish(self: Box<Self>, header: &ReportHeader, facts: &RunFacts) -> Result<String> {
        let XlsxSink {
            file,
            mut wb,
            next_row,
            bold,
            ..
        } = *self;
        let path = file.path.clone();
        let last_col = (3 + header.columns.len() + header.result_columns().len() - 1) as u16;
        {
            let ws = wb.worksheet_from_index(0).map_err(|e| xerr(&path, e))?;
            ws.autofilter(0, 0, next_row.saturating_sub(1).max(1), last_col)
                .map_err(|e| xerr(&path, e))?;
        }
        let summary = wb.add_worksheet();
        summary.set_name("Summary").map_err(|e| xerr(&path, e))?;
        let lines = facts.summary();
        summary
            .write_string_with_format(0, 0, "what", &bold)
            .map_err(|e| xerr(&path, e))?;
        summary
            .write_string_with_format(0, 1, "count", &bold)
            .map_err(|e| xerr(&path, e))?;
        for (i, (k, v)) in lines.iter().enumerate() {
            summary
                .write_string(i as u32 + 1, 0, *k)
                .map_err(|e| xerr(&path, e))?;
            summary
                .write_number(i as u32 + 1, 1, *v as f64)
                .map_err(|e| xerr(&path, e))?;
        }
        summary
            .set_column_width(0, 24)
            .map_err(|e| xerr(&path, e))?;
        let sheet = wb.add_worksheet();
        sheet.set_name("Run facts").map_err(|e| xerr(&path, e))?;
        sheet
            .write_string_with_format(0, 0, "fact", &bold)
            .map_err(|e| xerr(&path, e))?;
        sheet
            .write_string_with_format(0, 1, "value", &bold)
            .map_err(|e| xerr(&path, e))?;
        for (i, (k, v)) in facts.lines().iter().enumerate() {
            sheet
                .write_string(i as u32 + 1, 0, fit(k).as_ref())
                .map_err(|e| xerr(&path, e))?;
            sheet
                .write_string(i as u32 + 1, 1, fit(v).as_ref())
                .map_err(|e| xerr(&path, e))?;
        }
        sheet.set_column_width(0, 24).map_err(|e| xerr(&path, e))?;
        sheet.set_column_width(1, 80).map_err(|e| xerr(&path, e))?;
        wb.save(file.tmp.path()).map_err(|e| xerr(&path, e))?;
        let (sha, _) = crate::pipeline::sha256_file(file.tmp.path())
            .map_err(|e| Error::report(&path, e.to_string()))?;
        file.commit()?;
        Ok(sha)
    }
}
