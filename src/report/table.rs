//! The report of a cancel, upgrade or status run: one line per sheet row,
//! in sheet order, with where it came from, every original cell, and the
//! result columns. The sheets are small, so the file is built in memory and
//! written atomically. Same formats and safety as the order report: CSV
//! with formulas neutralised, JSON Lines, XLSX with plain strings.

use std::borrow::Cow;
use std::path::Path;

use rust_xlsxwriter::{Color, Format as CellFormat, FormatBorder, Workbook};
use serde_json::{Map, Value};

use super::{Format, neutralize, write_atomic};
use crate::error::{Error, Result};

/// What every line shares.
#[derive(Debug, Clone)]
pub struct Table<'a> {
    pub source_file: &'a str,
    pub sheet: &'a str,
    /// The sheet's own headers.
    pub columns: &'a [String],
    /// The result columns; the first is `status`.
    pub results: &'a [&'a str],
    /// XLSX only: a `Summary` sheet of counts and a `Run facts` sheet.
    pub summary: Vec<(String, u64)>,
    pub facts: Vec<(String, String)>,
}

/// One line.
#[derive(Debug, Clone)]
pub struct Line {
    pub number: u64,
    pub cells: Vec<String>,
    /// One value per result column, `status` first.
    pub results: Vec<String>,
}

/// Writes `lines` to `path` (format by extension); returns its SHA-256.
pub fn write(path: &Path, table: &Table<'_>, lines: &[Line]) -> Result<String> {
    match Format::from_path(path)? {
        Format::Csv => write_atomic(path, |w| w.write_all(&csv_bytes(table, lines)?)),
        Format::Jsonl => write_atomic(path, |w| w.write_all(&jsonl_bytes(table, lines))),
        Format::Xlsx => {
            let bytes = xlsx_bytes(table, lines).map_err(|e| Error::report(path, e))?;
            write_atomic(path, |w| w.write_all(&bytes))
        }
    }
}

fn header(table: &Table<'_>) -> Vec<String> {
    ["source_file", "sheet", "row"]
        .into_iter()
        .map(String::from)
        .chain(table.columns.iter().cloned())
        .chain(table.results.iter().map(|s| s.to_string()))
        .collect()
}

fn csv_bytes(table: &Table<'_>, lines: &[Line]) -> std::io::Result<Vec<u8>> {
    let longest = lines
        .iter()
        .flat_map(|l| l.cells.iter().chain(&l.results))
        .map(String::len)
        .max()
        .unwrap_or(0);
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .buffer_capacity(super::csv_out::quoted_capacity(longest).max(8 * 1024))
        .from_writer(Vec::new());
    w.write_record(header(table).iter().map(|h| neutralize(h).into_owned()))?;
    for l in lines {
        let mut record: Vec<Cow<'_, str>> = vec![
            neutralize(table.source_file),
            neutralize(table.sheet),
            Cow::Owned(l.number.to_string()),
        ];
        record.extend(l.cells.iter().map(|c| neutralize(c)));
        record.extend(l.results.iter().map(|c| neutralize(c)));
        w.write_record(record.iter().map(|c| c.as_bytes()))?;
    }
    w.into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}

fn jsonl_bytes(table: &Table<'_>, lines: &[Line]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        let mut obj = Map::new();
        obj.insert("source_file".into(), table.source_file.into());
        obj.insert("sheet".into(), table.sheet.into());
        obj.insert("row".into(), l.number.into());
        let cells: Map<String, Value> = table
            .columns
            .iter()
            .zip(&l.cells)
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        obj.insert("cells".into(), Value::Object(cells));
        for (k, v) in table.results.iter().zip(&l.results) {
            if !v.is_empty() {
                obj.insert((*k).to_owned(), v.as_str().into());
            }
        }
        // Strings and numbers into memory: cannot fail.
        let _ = serde_json::to_writer(&mut out, &Value::Object(obj));
        out.push(b'\n');
    }
    out
}

/// A sheet after the report: its name, column titles and rows.
type SideSheet = (&'static str, [&'static str; 2], Vec<(String, String)>);

fn xlsx_bytes(
    table: &Table<'_>,
    lines: &[Line],
) -> std::result::Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut wb = Workbook::new();
    let bold = CellFormat::new()
        .set_bold()
        .set_border_bottom(FormatBorder::Thin);
    let fill = |rgb: u32| CellFormat::new().set_background_color(Color::RGB(rgb));
    let colours = [
        ("ACCEPTED", fill(0xC6EFCE)),
        ("SUCCESS", fill(0xC6EFCE)),
        ("SKIPPED", fill(0xDDEBF7)),
        ("INVALID", fill(0xFFC7CE)),
        ("REJECTED", fill(0xFFC7CE)),
        ("FAILED", fill(0xF8CBAD)),
        ("CONFLICT", fill(0xFFEB9C)),
    ];
    let ws = wb.add_worksheet();
    ws.set_name("Report")?;
    let names = header(table);
    for (c, name) in names.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, name, &bold)?;
    }
    let lead = 3 + table.columns.len();
    for (i, l) in lines.iter().enumerate() {
        let r = i as u32 + 1;
        ws.write_string(r, 0, table.source_file)?;
        ws.write_string(r, 1, table.sheet)?;
        ws.write_number(r, 2, l.number as f64)?;
        for (c, v) in l.cells.iter().chain(&l.results).enumerate() {
            if v.is_empty() {
                continue;
            }
            let col = (3 + c) as u16;
            let colour = (3 + c == lead)
                .then(|| colours.iter().find(|(s, _)| s == v).map(|(_, f)| f))
                .flatten();
            match colour {
                Some(f) => ws.write_string_with_format(r, col, v, f)?,
                None => ws.write_string(r, col, v)?,
            };
        }
    }
    ws.set_freeze_panes(1, 0)?;
    ws.autofilter(0, 0, lines.len().max(1) as u32, (names.len() - 1) as u16)?;
    let pairs: [SideSheet; 2] = [
        (
            "Summary",
            ["what", "count"],
            table
                .summary
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        ),
        ("Run facts", ["fact", "value"], table.facts.clone()),
    ];
    for (name, titles, rows) in pairs {
        if rows.is_empty() {
            continue;
        }
        let ws = wb.add_worksheet();
        ws.set_name(name)?;
        ws.write_string_with_format(0, 0, titles[0], &bold)?;
        ws.write_string_with_format(0, 1, titles[1], &bold)?;
        for (i, (k, v)) in rows.iter().enumerate() {
            ws.write_string(i as u32 + 1, 0, k)?;
            match v.parse::<f64>() {
                Ok(n) if name == "Summary" => ws.write_number(i as u32 + 1, 1, n)?,
                _ => ws.write_string(i as u32 + 1, 1, v)?,
            };
        }
        ws.set_column_width(0, 24)?;
        ws.set_column_width(1, 60)?;
    }
    wb.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_neutralised_and_jsonl_skips_empty_results() {
        let columns = vec!["order_id".to_string(), "reason".to_string()];
        let table = Table {
            source_file: "c.csv",
            sheet: "c",
            columns: &columns,
            results: &["status", "error_code"],
            summary: vec![],
            facts: vec![],
        };
        let lines = vec![Line {
            number: 2,
            cells: vec!["O1".into(), "=HYPERLINK(1)".into()],
            results: vec!["ACCEPTED".into(), String::new()],
        }];
        let csv = String::from_utf8(csv_bytes(&table, &lines).unwrap()).unwrap();
        assert_eq!(
            csv,
            "source_file,sheet,row,order_id,reason,status,error_code\nc.csv,c,2,O1,'=HYPERLINK(1),ACCEPTED,\n"
        );
        let json: Value = serde_json::from_slice(&jsonl_bytes(&table, &lines)).unwrap();
        assert_eq!(json["cells"]["reason"], "=HYPERLINK(1)");
        assert_eq!(json["status"], "ACCEPTED");
        assert!(json.get("error_code").is_none());
    }
}
