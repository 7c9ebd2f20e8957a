//! The usual width of each id column of a workbook, to tell an id that
//! lost its leading zeros to a number cell.

use std::collections::HashMap;

use crate::columns::{Columns, Field};
use crate::read::{CellKind, Row};

/// Counts value widths of the id columns, to find the usual width of each.
#[derive(Debug, Default)]
pub struct WidthCensus {
    /// Widths of values typed as text, which keep their zeros.
    text: HashMap<Field, HashMap<usize, u64>>,
    /// The widest numeric value, for columns with no text at all.
    widest_number: HashMap<Field, usize>,
}

impl WidthCensus {
    /// The id columns whose widths are counted.
    pub const FIELDS: [Field; 4] = [
        Field::BranchId,
        Field::Bin,
        Field::PlasticCode,
        Field::PinCode,
    ];

    pub fn add(&mut self, columns: &Columns, row: &Row<'_>) {
        for f in Self::FIELDS {
            if let Some(c) = columns.get(f) {
                let cell = row.cell(c);
                let width = cell.text.chars().count();
                match cell.kind {
                    CellKind::Empty => {}
                    CellKind::Number => {
                        let w = self.widest_number.entry(f).or_default();
                        *w = (*w).max(width);
                    }
                    _ => *self.text.entry(f).or_default().entry(width).or_default() += 1,
                }
            }
        }
    }

    /// Adds the counts of another census (of other rows).
    pub fn merge(mut self, other: WidthCensus) -> WidthCensus {
        for (f, widths) in other.text {
            let mine = self.text.entry(f).or_default();
            for (w, n) in widths {
                *mine.entry(w).or_default() += n;
            }
        }
        for (f, w) in other.widest_number {
            let mine = self.widest_number.entry(f).or_default();
            *mine = (*mine).max(w);
        }
        self
    }

    /// The width an id column's values should have: the most common width
    /// of its text values (ties go to the wider), or, when Excel holds
    /// every value as a number, the widest number (values of mixed widths
    /// in a numeric id column mean zeros were lost).
    pub fn typical(&self) -> HashMap<Field, usize> {
        let mut out: HashMap<Field, usize> = self.widest_number.clone();
        for (f, h) in &self.text {
            if let Some((w, _)) = h.iter().max_by_key(|(w, n)| (**n, **w)) {
                out.insert(*f, *w);
            }
        }
        out
    }
}
