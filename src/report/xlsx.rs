//! The XLSX report: header frozen, filter on, statuses coloured, every value
//! written as a plain string (never a formula), and two more sheets: a
//! summary and the run facts.

use std::path::Path;

use std::collections::BTreeMap;

use rust_xlsxwriter::{
    Color, Format as CellFormat, FormatAlign, FormatBorder, Note, Workbook, Worksheet,
};

use super::{Header, Line, RunFacts};
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
    /// Where each column of the report goes: `row`, the results (status,
    /// order id, errors first), the input's columns, then the source file
    /// and sheet.
    layout: Layout,
    next_row: u32,
    bold: CellFormat,
    status_formats: Vec<(&'static str, CellFormat)>,
    /// A cell that failed a check: its fill.
    flagged: CellFormat,
    /// A cell with a warning and no error.
    warned: CellFormat,
    /// The errors column: wrapped.
    wrapped: CellFormat,
    /// Column widths are fitted to the header and the first lines
    /// ([`FIT_LINES`]), once: the lines that come before are held.
    fitted: bool,
    held: Vec<Line<'static>>,
    /// The errors column's width, in characters, once fitted.
    errors_width: usize,
    /// For the Summary: problems by column, refusals by error code.
    by_column: BTreeMap<String, u64>,
    by_code: BTreeMap<String, (u64, String)>,
    /// Notes written so far (at most [`MOST_NOTES`]; a cell after that is
    /// still filled, its problem in `errors`).
    notes: usize,
    /// The last row written was given a height of its own.
    last_row_tall: bool,
}

/// Cell notes a report holds at most: each is kept in memory until the
/// file is written, and writing them costs more than linearly (2,500
/// notes added 1.8 s to a 100k-row report's save; 1,000 add 0.4 s).
const MOST_NOTES: usize = 1_000;

/// The report's columns, in the order a person reads them.
struct Layout {
    /// The sheet column of each result (by its index in `header.results`).
    results: Vec<u16>,
    /// The sheet column of the first input column.
    first_input: u16,
    /// The sheet columns of the source file and sheet names.
    lead: [u16; 2],
    /// Columns frozen with the header: `row` and the results up to the
    /// errors.
    frozen: u16,
    /// The results' sheet columns, by name.
    errors: Option<u16>,
    error_code: Option<usize>,
}

impl Layout {
    fn of(header: &Header) -> Layout {
        let first = ["status", "order_id", "errors", "warnings"];
        let mut order: Vec<usize> = first
            .iter()
            .filter_map(|name| header.results.iter().position(|r| r == name))
            .collect();
        let rest: Vec<usize> = (0..header.results.len())
            .filter(|i| !order.contains(i))
            .collect();
        order.extend(rest);
        let mut results = vec![0u16; header.results.len()];
        for (at, &i) in order.iter().enumerate() {
            results[i] = 1 + at as u16;
        }
        let first_input = 1 + header.results.len() as u16;
        let after = first_input + header.columns.len() as u16;
        let errors = header.results.iter().position(|r| *r == "errors");
        Layout {
            frozen: errors.map_or(2, |e| results[e] + 1),
            errors: errors.map(|e| results[e]),
            error_code: header.results.iter().position(|r| *r == "error_code"),
            results,
            first_input,
            lead: [after, after + 1],
        }
    }

    /// Each column's name, by sheet column.
    fn names<'h>(&self, header: &'h Header) -> Vec<&'h str> {
        let mut names = vec![""; self.lead[1] as usize + 1];
        names[0] = "row";
        for (i, r) in header.results.iter().enumerate() {
            names[self.results[i] as usize] = r;
        }
        for (i, c) in header.columns.iter().enumerate() {
            names[self.first_input as usize + i] = c;
        }
        names[self.lead[0] as usize] = "source_file";
        names[self.lead[1] as usize] = "sheet";
        names
    }
}

/// The lines, from the first, that columns are fitted to.
const FIT_LINES: usize = 2_000;

/// Widths, in characters, a column is fitted within.
const NARROWEST: usize = 6;
const WIDEST: usize = 50;
const ERRORS_WIDTH: usize = 60;

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

/// How a report line is written: where each column goes and the cells'
/// formats.
struct Pen<'a> {
    layout: &'a Layout,
    flagged: &'a CellFormat,
    warned: &'a CellFormat,
    wrapped: &'a CellFormat,
    status: &'a [(&'static str, CellFormat)],
    /// The errors column's width, in characters, less its margin.
    errors_width: usize,
    /// The source file and sheet names, on every line.
    lead: [std::borrow::Cow<'a, str>; 2],
}

type Written = std::result::Result<(), rust_xlsxwriter::XlsxError>;

impl Pen<'_> {
    /// Writes `line` as sheet row `row`, its problem cells noted while
    /// `notes` stays under [`MOST_NOTES`]; whether the row was given a
    /// height of its own.
    fn line(
        &self,
        ws: &mut Worksheet,
        row: u32,
        line: &Line<'_>,
        notes: &mut usize,
    ) -> std::result::Result<bool, rust_xlsxwriter::XlsxError> {
        let tall = self.height(ws, row, line)?;
        ws.write_number(row, 0, line.number as f64)?;
        self.inputs(ws, row, line, notes)?;
        self.results(ws, row, line)?;
        ws.write_string(row, self.layout.lead[0], self.lead[0].as_ref())?;
        ws.write_string(row, self.layout.lead[1], self.lead[1].as_ref())?;
        Ok(tall)
    }

    /// Tall enough for its wrapped errors (a program that does not fit
    /// rows itself shows them all). Set before the row's first cell: set
    /// after, the writer (streaming rows) can write the last row a second
    /// time, which Excel calls damage.
    fn height(
        &self,
        ws: &mut Worksheet,
        row: u32,
        line: &Line<'_>,
    ) -> std::result::Result<bool, rust_xlsxwriter::XlsxError> {
        let layout = self.layout;
        if let Some(i) = layout
            .errors
            .and_then(|e| layout.results.iter().position(|&c| c == e))
            && let Some(v) = line.results.get(i)
        {
            let lines = v
                .text()
                .chars()
                .count()
                .div_ceil(self.errors_width)
                .clamp(1, 8);
            if lines > 1 {
                ws.set_row_height(row, 15.0 * lines as f64)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The input's cells; a failed cell red, a cell with only a warning
    /// amber, with a note that says which (not by colour alone).
    fn inputs(&self, ws: &mut Worksheet, row: u32, line: &Line<'_>, notes: &mut usize) -> Written {
        for (i, v) in line.cells.list().iter().enumerate() {
            let col = self.layout.first_input + i as u16;
            let of_cell = |marks: &[(usize, std::borrow::Cow<'_, str>, String)], prefix: &str| {
                marks
                    .iter()
                    .filter(|(c, _, _)| *c == i)
                    .map(|(_, _, m)| format!("{prefix}{m}"))
                    .collect::<Vec<String>>()
            };
            let mut flags = of_cell(&line.flagged, "");
            let warned = of_cell(&line.warned, "warning: ");
            let fill = match (flags.is_empty(), warned.is_empty()) {
                (true, true) => {
                    if !v.is_empty() {
                        ws.write_string(row, col, fit(v).as_ref())?;
                    }
                    continue;
                }
                (false, _) => self.flagged,
                (true, false) => self.warned,
            };
            flags.extend(warned);
            ws.write_string_with_format(row, col, fit(v).as_ref(), fill)?;
            if *notes >= MOST_NOTES {
                continue;
            }
            *notes += 1;
            let note = Note::new(fit(&flags.join("\n")).as_ref())
                .set_author("dcms-bulk")
                .add_author_prefix(false);
            ws.insert_note(row, col, &note)?;
        }
        Ok(())
    }

    /// The results: the status in its colour, the errors wrapped.
    fn results(&self, ws: &mut Worksheet, row: u32, line: &Line<'_>) -> Written {
        for (i, v) in line.results.iter().enumerate() {
            let col = self.layout.results[i];
            let text = v.text();
            let colour = self
                .status
                .iter()
                .find(|(s, _)| i == 0 && *s == text)
                .map(|(_, f)| f);
            match colour {
                Some(f) => ws.write_string_with_format(row, col, text.as_ref(), f)?,
                None if text.is_empty() => ws,
                None if Some(col) == self.layout.errors => {
                    ws.write_string_with_format(row, col, fit(&text).as_ref(), self.wrapped)?
                }
                None => ws.write_string(row, col, fit(&text).as_ref())?,
            };
        }
        Ok(())
    }
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
        let layout = Layout::of(header);
        let ws = wb.add_worksheet_with_constant_memory();
        ws.set_name("Report").map_err(|e| xerr(path, e))?;
        for (c, name) in layout.names(header).iter().enumerate() {
            ws.write_string_with_format(0, c as u16, fit(name).as_ref(), &bold)
                .map_err(|e| xerr(path, e))?;
        }
        ws.set_freeze_panes(1, layout.frozen)
            .map_err(|e| xerr(path, e))?;
        // Printed: what a clerk acts on (the row, its status, its order and
        // what to fix: the frozen columns) at a readable size, landscape,
        // fitted to the page's width, the header on every page; the input's
        // columns stay on screen, outside the print area.
        ws.set_landscape();
        ws.set_print_fit_to_pages(1, 0);
        ws.set_repeat_rows(0, 0).map_err(|e| xerr(path, e))?;
        let last_row = u32::try_from(header.rows)
            .unwrap_or(u32::MAX)
            .min(MAX_XLSX_ROWS as u32);
        ws.set_print_area(0, 0, last_row.max(1), layout.frozen.saturating_sub(1))
            .map_err(|e| xerr(path, e))?;
        Ok(XlsxSink {
            file,
            wb,
            header: header.clone(),
            layout,
            next_row: 1,
            bold,
            status_formats,
            flagged: CellFormat::new().set_background_color(Color::RGB(0xFFC7CE)),
            warned: CellFormat::new().set_background_color(Color::RGB(0xFFEB9C)),
            wrapped: CellFormat::new()
                .set_text_wrap()
                .set_align(FormatAlign::Top),
            fitted: false,
            held: Vec::new(),
            errors_width: ERRORS_WIDTH,
            by_column: BTreeMap::new(),
            by_code: BTreeMap::new(),
            notes: 0,
            last_row_tall: false,
        })
    }

    /// Sets each column's width from the header and `lines` (the first):
    /// the longest value, within [`NARROWEST`] and [`WIDEST`]; the errors
    /// column wider, its text wrapped.
    fn fit_columns(
        &mut self,
        lines: &[Line<'_>],
    ) -> std::result::Result<(), rust_xlsxwriter::XlsxError> {
        let names = self.layout.names(&self.header);
        let mut widths: Vec<usize> = names.iter().map(|n| n.chars().count()).collect();
        let mut widen = |col: u16, text: &str| {
            let w = text.chars().count();
            let at = &mut widths[col as usize];
            *at = (*at).max(w);
        };
        widen(self.layout.lead[0], &self.header.source_file);
        widen(self.layout.lead[1], &self.header.sheet);
        for line in lines.iter().take(FIT_LINES) {
            widen(0, &line.number.to_string());
            for (i, v) in line.cells.list().iter().enumerate() {
                widen(self.layout.first_input + i as u16, v);
            }
            for (i, v) in line.results.iter().enumerate() {
                widen(self.layout.results[i], &v.text());
            }
        }
        let ws = self.wb.worksheet_from_index(0)?;
        for (col, w) in widths.into_iter().enumerate() {
            let col = col as u16;
            if Some(col) == self.layout.errors {
                self.errors_width = (w + 2).clamp(NARROWEST, ERRORS_WIDTH);
                ws.set_column_width(col, self.errors_width as f64)?;
                ws.set_column_format(col, &self.wrapped)?;
            } else {
                ws.set_column_width(col, (w + 2).clamp(NARROWEST, WIDEST) as f64)?;
            }
        }
        Ok(())
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
        let widest = |pick: fn(&(String, String)) -> &String, title: &str| {
            pairs
                .iter()
                .map(|p| pick(p).chars().count())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        };
        ws.set_column_width(
            0,
            (widest(|p| &p.0, titles[0]) + 2).clamp(NARROWEST, 60) as f64,
        )?;
        ws.set_column_width(
            1,
            (widest(|p| &p.1, titles[1]) + 2).clamp(NARROWEST, 100) as f64,
        )?;
        ws.set_freeze_panes(1, 0)?;
        Ok(())
    }

    /// The Summary sheet: the counts, then the problems by column and the
    /// API's refusals by error code, most first.
    fn summary_sheet(
        &mut self,
        facts: &RunFacts,
    ) -> std::result::Result<(), rust_xlsxwriter::XlsxError> {
        let mut pairs: Vec<(String, String)> = facts
            .summary()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut by_column: Vec<(&String, &u64)> = self.by_column.iter().collect();
        by_column.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        if !by_column.is_empty() {
            pairs.push((String::new(), String::new()));
            pairs.push(("problems by column".into(), String::new()));
            pairs.extend(
                by_column
                    .into_iter()
                    .map(|(c, n)| (c.clone(), n.to_string())),
            );
        }
        let mut by_code: Vec<(&String, &(u64, String))> = self.by_code.iter().collect();
        by_code.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        if !by_code.is_empty() {
            pairs.push((String::new(), String::new()));
            pairs.push(("refused by the API, by error code".into(), String::new()));
            for (code, (n, example)) in by_code.into_iter().take(10) {
                let label = if example.is_empty() {
                    code.clone()
                } else {
                    format!("{code}: {example}")
                };
                pairs.push((label, n.to_string()));
            }
        }
        self.side_sheet("Summary", ["what", "count"], &pairs, true)
    }
}

impl XlsxSink {
    /// Writes `lines`, once the columns are fitted: until the first
    /// [`FIT_LINES`] have come (however the batches cut them), they are
    /// held.
    pub(super) fn lines(&mut self, lines: &[Line<'_>]) -> Result<()> {
        if self.fitted {
            return self.write_lines(lines);
        }
        self.held
            .extend(lines.iter().map(|l| l.clone().into_owned()));
        if self.held.len() >= FIT_LINES {
            self.fit_held()?;
        }
        Ok(())
    }

    /// Fits the columns to the lines held, and writes them.
    fn fit_held(&mut self) -> Result<()> {
        let path = self.file.path().to_path_buf();
        let held = std::mem::take(&mut self.held);
        self.fitted = true;
        self.fit_columns(&held).map_err(|e| xerr(&path, e))?;
        self.write_lines(&held)
    }

    fn write_lines(&mut self, lines: &[Line<'_>]) -> Result<()> {
        let path = self.file.path().to_path_buf();
        self.tally(lines);
        let ws = self
            .wb
            .worksheet_from_index(0)
            .map_err(|e| xerr(&path, e))?;
        let pen = Pen {
            layout: &self.layout,
            flagged: &self.flagged,
            warned: &self.warned,
            wrapped: &self.wrapped,
            status: &self.status_formats,
            errors_width: self.errors_width.saturating_sub(2).max(1),
            lead: [fit(&self.header.source_file), fit(&self.header.sheet)],
        };
        for line in lines {
            self.last_row_tall = pen
                .line(ws, self.next_row, line, &mut self.notes)
                .map_err(|e| xerr(&path, e))?;
            self.next_row += 1;
        }
        Ok(())
    }

    /// Counts the lines' problems by column and refusals by error code,
    /// for the Summary.
    fn tally(&mut self, lines: &[Line<'_>]) {
        for line in lines {
            for (_, field, _) in &line.flagged {
                *self.by_column.entry(field.to_string()).or_default() += 1;
            }
            if let Some(i) = self.layout.error_code
                && line.results.first().is_some_and(|s| s.text() == "REJECTED")
            {
                let code = line.results[i].text();
                let code = if code.is_empty() {
                    "(no code)".into()
                } else {
                    code.into_owned()
                };
                let entry = self
                    .by_code
                    .entry(code)
                    .or_insert_with(|| (0, first_error(line)));
                entry.0 += 1;
            }
        }
    }

    pub(super) fn finish(mut self, facts: &RunFacts) -> Result<String> {
        if !self.fitted {
            self.fit_held()?;
        }
        let path = self.file.path().to_path_buf();
        let last_col = self.layout.lead[1];
        let last_row = self.next_row.saturating_sub(1).max(1);
        let after = self.next_row;
        let errors = self.layout.errors;
        (|| {
            let ws = self.wb.worksheet_from_index(0)?;
            // The streaming writer writes a last row of its own height a
            // second time, an empty `<row>` after the full one, which
            // Excel calls damage. A blank cell in the row after (in the
            // errors column, styled as the column is) makes that row the
            // last one.
            if self.last_row_tall
                && let Some(col) = errors
            {
                ws.write_blank(after, col, &self.wrapped)?;
            }
            ws.autofilter(0, 0, last_row, last_col)?;
            self.summary_sheet(facts)?;
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

/// The first message of a line's errors, for the Summary's example.
fn first_error(line: &Line<'_>) -> String {
    line.results
        .iter()
        .find_map(|v| match v {
            super::Value::Errors(items) => items.first().map(|e| e.message.clone()),
            _ => None,
        })
        .map(|m| m.chars().take(120).collect())
        .unwrap_or_default()
}
