//! Reading a report back, in any of its formats: the one reader `status`,
//! `verify` and `show` use. CSV and XLSX reports are a header and lines of
//! cells by column; a JSON Lines report is one object a line, its sheet
//! cells under `cells`.

use std::borrow::Cow;
use std::path::Path;

use calamine::{Reader, open_workbook_auto};
use serde_json::{Map, Value};

use super::Format;
use crate::error::{Error, Result};

/// Most bytes of a JSON Lines report read back.
const MAX_JSONL: u64 = 1 << 32;

/// One line of a report read back.
pub enum Entry<'a> {
    /// A CSV or XLSX line: its cells, by the header's columns.
    Cells {
        headers: &'a [String],
        cells: Vec<String>,
    },
    /// A JSON Lines object.
    Object(Map<String, Value>),
}

impl Entry<'_> {
    /// The value of a report column (`row`, `status`, `order_id`, ...): a
    /// JSON line's own field, else its sheet cell.
    pub fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        match self {
            Entry::Cells { .. } => self.cell(name),
            Entry::Object(o) => match o.get(name) {
                Some(Value::String(s)) => Some(Cow::Borrowed(s)),
                Some(Value::Number(n)) => Some(Cow::Owned(n.to_string())),
                _ => self.cell(name),
            },
        }
    }

    /// The value of a sheet column as the report shows it.
    pub fn cell(&self, name: &str) -> Option<Cow<'_, str>> {
        match self {
            Entry::Cells { headers, cells } => headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| cells.get(i))
                .map(|c| Cow::Borrowed(c.as_str())),
            Entry::Object(o) => o
                .get("cells")
                .and_then(|c| c.get(name))
                .and_then(Value::as_str)
                .map(Cow::Borrowed),
        }
    }

    /// The input row the line is about (0 when it names none).
    pub fn row(&self) -> u64 {
        self.field("row")
            .and_then(|r| r.parse::<f64>().ok())
            .map_or(0, |n| n as u64)
    }
}

/// Calls `each` for every line of the report at `path`, in order; returns
/// its format and header (empty for JSON Lines). An XLSX line with no cell filled (the
/// writer may add one after the last) is not a line.
pub fn for_each(
    path: &Path,
    each: &mut dyn FnMut(Entry<'_>) -> Result<()>,
) -> Result<(Format, Vec<String>)> {
    let bad = |why: String| Error::input(path, why);
    crate::files::regular(path).map_err(|e| Error::io(path, e))?;
    let format = Format::from_path(path)?;
    let headers = match format {
        Format::Csv => {
            let mut rdr = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
            let headers: Vec<String> = rdr
                .headers()
                .map_err(|e| bad(e.to_string()))?
                .iter()
                .map(str::to_owned)
                .collect();
            for record in rdr.records() {
                let record = record.map_err(|e| bad(e.to_string()))?;
                let cells = record.iter().map(str::to_owned).collect();
                each(Entry::Cells {
                    headers: &headers,
                    cells,
                })?;
            }
            headers
        }
        Format::Xlsx => {
            let mut wb = open_workbook_auto(path).map_err(|e| bad(e.to_string()))?;
            let range = wb
                .worksheet_range("Report")
                .map_err(|e| bad(format!("no `Report` sheet: {e}")))?;
            let mut lines = range
                .rows()
                .map(|r| r.iter().map(|c| c.to_string()).collect::<Vec<_>>());
            let headers = lines.next().unwrap_or_default();
            for cells in lines.filter(|cells| cells.iter().any(|c| !c.is_empty())) {
                each(Entry::Cells {
                    headers: &headers,
                    cells,
                })?;
            }
            headers
        }
        Format::Jsonl => {
            let text = crate::files::read_small(path, MAX_JSONL).map_err(|e| Error::io(path, e))?;
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                match serde_json::from_str::<Value>(line) {
                    Ok(Value::Object(o)) => each(Entry::Object(o))?,
                    Ok(_) => return Err(bad(format!("line {} is not a JSON object", i + 1))),
                    Err(e) => return Err(bad(format!("line {}: {e}", i + 1))),
                }
            }
            Vec::new()
        }
    };
    Ok((format, headers))
}

/// A report read back whole: CSV and XLSX as header and rows, JSON Lines
/// as objects.
pub enum Loaded {
    Table {
        headers: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Lines(Vec<Map<String, Value>>),
}

/// Reads the whole report at `path`.
pub fn load(path: &Path) -> Result<Loaded> {
    let mut rows = Vec::new();
    let mut objects = Vec::new();
    let (format, headers) = for_each(path, &mut |entry| {
        match entry {
            Entry::Cells { cells, .. } => rows.push(cells),
            Entry::Object(o) => objects.push(o),
        }
        Ok(())
    })?;
    Ok(match format {
        Format::Jsonl => Loaded::Lines(objects),
        _ => Loaded::Table { headers, rows },
    })
}

/// The rows a report gives order (or item) `id`: the `row` of each line
/// whose `order_id` (else `kit_no`) is `id`.
pub fn rows_of(path: &Path, id: &str) -> Result<Vec<u64>> {
    let mut rows = Vec::new();
    for_each(path, &mut |entry| {
        let key = entry.field("order_id").or_else(|| entry.field("kit_no"));
        if key.as_deref() == Some(id) {
            rows.push(entry.row());
        }
        Ok(())
    })?;
    Ok(rows)
}
