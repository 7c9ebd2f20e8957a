//! Reading a cancel or upgrade sheet: any format the order reader takes
//! (CSV/TSV, `.xlsx .xlsm .xlsb .xls .ods`), the header found below title
//! rows by the same matcher as an order sheet's, against the kind's
//! template columns, every data row with its number and cells. These
//! sheets are small (one API call per row), so the rows are kept in
//! memory.

use std::path::Path;

use crate::columns::{self, Columns};
use crate::error::Result;
use crate::read::{self, CellKind, ReadOpts, Sheet};
use crate::template::Kind;

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
    /// The header row, every header, and where each of the kind's template
    /// columns is.
    pub columns: Columns,
    pub rows: Vec<OpRow>,
    pub blank_rows: u64,
}

impl OpSheet {
    /// The value of template column `name` in `row`, trimmed ("" if absent).
    pub fn value<'r>(&self, kind: Kind, row: &'r OpRow, name: &str) -> &'r str {
        self.column(kind, name)
            .and_then(|c| row.cells.get(c))
            .map_or("", String::as_str)
    }

    /// The sheet column of template column `name`.
    pub fn column(&self, kind: Kind, name: &str) -> Option<usize> {
        kind.columns()
            .iter()
            .position(|c| c.name == name)
            .and_then(|i| self.columns.known(i))
    }

    /// `Sheet!C7` for a cell.
    pub fn at(&self, col: Option<usize>, row: u64) -> String {
        match col {
            Some(c) => format!("{}!{}", self.sheet.name(), self.sheet.cell_ref(c, row)),
            None => format!("{} row {row}", self.sheet.name()),
        }
    }
}

/// Reads a `kind` sheet.
pub fn read(path: &Path, opts: &ReadOpts, kind: Kind) -> Result<OpSheet> {
    let known = kind.columns();
    let sheet = read::open(path, opts, &mut |s: &Sheet| {
        columns::header_of(s, known)
            .is_some_and(|(n, cells)| Columns::matched(path, s, n, &cells, known).is_ok())
    })?;
    let Some((header_row, cells)) = columns::header_of(&sheet, known) else {
        return Err(columns::no_header(path, &sheet, known));
    };
    let columns = Columns::matched(path, &sheet, header_row, &cells, known)?;
    let width = columns.len();
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
        columns,
        rows,
        blank_rows,
    })
}
