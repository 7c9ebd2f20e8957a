//! Cells changed by a person (the desk's fixes), laid over a sheet as it
//! was read: every pass over the sheet meets the changed cells instead of
//! the file's, so checking, grouping, the report and the orders all see
//! one version of the sheet. The file itself is never changed.

use std::collections::BTreeMap;

use calamine::Data;

use super::Row;

/// The changed cells: by row number, by column (0-based, as
/// [`Row::cell`] counts), the new text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    rows: BTreeMap<u64, BTreeMap<usize, String>>,
}

impl Edits {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Sets the cell at `row` and `col` to `text`.
    pub fn set(&mut self, row: u64, col: usize, text: String) {
        self.rows.entry(row).or_default().insert(col, text);
    }

    /// Whether row `row` has a changed cell.
    pub fn touches(&self, row: u64) -> bool {
        self.rows.contains_key(&row)
    }

    /// How many cells are changed.
    pub fn cells(&self) -> usize {
        self.rows.values().map(BTreeMap::len).sum()
    }

    /// The changed cells: row, column, text; in row and column order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, usize, &str)> {
        self.rows
            .iter()
            .flat_map(|(r, cols)| cols.iter().map(move |(c, t)| (*r, *c, t.as_str())))
    }

    /// `row` with its changed cells, if it has any.
    pub(super) fn apply(&self, row: &Row<'_>) -> Option<Edited> {
        let changes = self.rows.get(&row.number())?;
        let width = changes.keys().next_back().map_or(0, |c| c + 1);
        Some(match row {
            Row::Text { number, record, .. } => {
                let mut cells: Vec<&str> = record.iter().collect();
                cells.resize(cells.len().max(width), "");
                for (c, text) in changes {
                    cells[*c] = text;
                }
                // The file's bytes are no longer its cells: they are not
                // kept, so a report never copies them (see
                // `Row::canonical_csv`).
                Edited::Text(*number, cells.into_iter().collect())
            }
            Row::Sheet { number, cells } => {
                let mut cells = cells.to_vec();
                cells.resize(cells.len().max(width), Data::Empty);
                for (c, text) in changes {
                    cells[*c] = Data::String(text.clone());
                }
                Edited::Sheet(*number, cells)
            }
        })
    }
}

/// A row with its changed cells, owned while a pass reads it.
pub(super) enum Edited {
    Text(u64, csv::StringRecord),
    Sheet(u64, Vec<Data>),
}

impl Edited {
    pub(super) fn row(&self) -> Row<'_> {
        match self {
            Edited::Text(number, record) => Row::Text {
                number: *number,
                record,
                raw: None,
            },
            Edited::Sheet(number, cells) => Row::Sheet {
                number: *number,
                cells,
            },
        }
    }
}
