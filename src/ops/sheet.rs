//! Reading a cancel or upgrade sheet: any format the order reader takes
//! (CSV/TSV, `.xlsx .xlsm .xlsb .xls .ods`), the header found below title
//! rows by the template's column names, every data row with its number and
//! cells. These sheets are small (one API call per row), so the rows are
//! kept in memory.

use std::path::Path;

use crate::columns::normalize;
use crate::error::{Error, Result};
use crate::read::{self, CellKind, ReadOpts, Sheet};
use crate::template::{Column, Kind};

/// How far down the header may be.
const HEADER_SEARCH_ROWS: usize = 50;

/// One data row.
#[derive(Debug, Clone)]
pub struct OpRow {
    /// The row number the user's program shows.
    pub number: u64,
    /// Every cell, trimmed, in sheet order.
    pub cells: Vec<String>,
    /// Problems found while reading (an Excel error cell...), with the
    /// column index.
    pub problems: Vec<(usize, String)>,
}

/// A read sheet.
pub struct OpSheet {
    pub sheet: Sheet,
    pub header_row: u64,
    /// Every header as written.
    pub headers: Vec<String>,
    /// For each column of the kind's template: where it is in the sheet.
    pub columns: Vec<Option<usize>>,
    pub rows: Vec<OpRow>,
    pub blank_rows: u64,
}

impl OpSheet {
    /// The value of template column `name` in `row`, trimmed ("" if absent).
    pub fn value<'r>(&self, kind: Kind, row: &'r OpRow, name: &str) -> &'r str {
        kind.columns()
            .iter()
            .position(|c| c.name == name)
            .and_then(|i| self.columns[i])
            .and_then(|c| row.cells.get(c))
            .map_or("", String::as_str)
    }

    /// The sheet column of template column `name`.
    pub fn column(&self, kind: Kind, name: &str) -> Option<usize> {
        kind.columns()
            .iter()
            .position(|c| c.name == name)
            .and_then(|i| self.columns[i])
    }

    /// `Sheet!C7` for a cell.
    pub fn at(&self, col: Option<usize>, row: u64) -> String {
        match col {
            Some(c) => format!("{}!{}", self.sheet.name(), self.sheet.cell_ref(c, row)),
            None => format!("{} row {row}", self.sheet.name()),
        }
    }
}

fn matches(column: &Column, header: &str) -> bool {
    let h = normalize(header);
    h == normalize(column.name) || column.aliases.contains(&h.as_str())
}

/// Where each template column is among `headers`; `Err` names what is
/// missing or doubled.
fn map_columns(kind: Kind, headers: &[String]) -> std::result::Result<Vec<Option<usize>>, String> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for c in kind.columns() {
        let found: Vec<usize> = headers
            .iter()
            .enumerate()
            .filter(|(_, h)| matches(c, h))
            .map(|(i, _)| i)
            .collect();
        if found.len() > 1 {
            return Err(format!(
                "duplicate column {}: `{}` and `{}`",
                c.name, headers[found[0]], headers[found[1]]
            ));
        }
        if found.is_empty() && c.required {
            missing.push(c.name);
        }
        out.push(found.first().copied());
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "missing required column{} {}",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", ")
        ))
    }
}

/// Reads a `kind` sheet.
pub fn read(path: &Path, opts: &ReadOpts, kind: Kind) -> Result<OpSheet> {
    let find = |sheet: &Sheet| -> Option<(u64, Vec<String>)> {
        let mut found = None;
        sheet.head(HEADER_SEARCH_ROWS, &mut |rows| {
            found = rows.iter().find_map(|r| {
                let cells: Vec<String> = (0..r.width())
                    .map(|i| r.cell(i).text.into_owned())
                    .collect();
                map_columns(kind, &cells)
                    .is_ok()
                    .then(|| (r.number(), cells))
            });
        });
        found
    };
    let sheet = read::open(path, opts, &mut |s: &Sheet| find(s).is_some())?;
    let Some((header_row, mut headers)) = find(&sheet) else {
        // Say what is missing, from the first row that has text.
        let mut first: Vec<String> = Vec::new();
        sheet.head(HEADER_SEARCH_ROWS, &mut |rows| {
            if let Some(r) = rows.iter().find(|r| !r.is_blank()) {
                first = (0..r.width())
                    .map(|i| r.cell(i).text.into_owned())
                    .collect();
            }
        });
        if first.is_empty() {
            return Err(Error::input(
                path,
                format!("sheet `{}` is empty", sheet.name()),
            ));
        }
        let why = map_columns(kind, &first).err().unwrap_or_default();
        return Err(Error::input(
            path,
            format!(
                "sheet `{}`: no header row with the {:?} columns ({why}); the first row has: {}",
                sheet.name(),
                kind,
                first.join(", ")
            ),
        ));
    };
    while headers.last().is_some_and(String::is_empty) {
        headers.pop();
    }
    let columns = map_columns(kind, &headers).map_err(|e| Error::input(path, e))?;
    let width = headers.len();
    let mut rows = Vec::new();
    let mut blank_rows = 0u64;
    sheet.scan(header_row, width, &mut |batch| {
        for r in batch {
            if r.is_blank() {
                blank_rows += 1;
                continue;
            }
            let mut problems = Vec::new();
            let cells = (0..r.width().max(width))
                .map(|i| {
                    let cell = r.cell(i);
                    if cell.kind == CellKind::Error {
                        problems.push((i, format!("the cell holds the error {}", cell.text)));
                    }
                    cell.text.into_owned()
                })
                .collect::<Vec<_>>();
            if r.width() > width && cells[width..].iter().any(|c| !c.is_empty()) {
                problems.push((
                    width,
                    format!("{} cells, but the header has {width}", r.width()),
                ));
            }
            rows.push(OpRow {
                number: r.number(),
                cells,
                problems,
            });
        }
        Ok(())
    })?;
    Ok(OpSheet {
        sheet,
        header_row,
        headers,
        columns,
        rows,
        blank_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_names_and_aliases() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cols = map_columns(Kind::Cancel, &h(&["Order ID", "Branch Code", "Remarks"])).unwrap();
        assert_eq!(cols, vec![Some(0), Some(1), Some(2)]);
        let err = map_columns(Kind::Cancel, &h(&["order_id", "note"])).unwrap_err();
        assert!(err.contains("branch_id"), "{err}");
        let err =
            map_columns(Kind::Upgrade, &h(&["kit_no", "Kit Number", "entity_id"])).unwrap_err();
        assert!(err.contains("duplicate column kit_no"), "{err}");
    }
}
