//! Find and replace within one column of a job's sheet: the matches
//! previewed first (each cell, its value now and after), then replaced in
//! one save, which one undo takes back.

use super::{CellChange, Job};
use crate::error::{Error, Result};

/// A cell that matches, and what it would become.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Match {
    pub row: u64,
    pub old: String,
    pub new: String,
}

impl Job {
    /// The cells of column `col` whose text holds `find`, with the text
    /// `find` replaced by `with` (every time it occurs).
    pub fn find(&self, col: usize, find: &str, with: &str) -> Result<Vec<Match>> {
        if find.is_empty() {
            return Err(Error::Usage("say what to find".into()));
        }
        if col >= self.checked.columns.len() {
            return Err(Error::Usage(format!("the sheet has no column {}", col + 1)));
        }
        let mut found = Vec::new();
        self.checked.for_each_outcome(&mut |rows| {
            for (r, _) in rows {
                let text = r.cell(col).text;
                if text.contains(find) {
                    found.push(Match {
                        row: r.number(),
                        old: text.to_string(),
                        new: text.replace(find, with),
                    });
                }
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Replaces `find` by `with` in column `col`, every match in one save;
    /// returns how many cells changed.
    pub fn replace(&mut self, col: usize, find: &str, with: &str) -> Result<usize> {
        let found = self.find(col, find, with)?;
        let column = self.checked.columns.headers[col].clone();
        let changes: Vec<CellChange> = found
            .into_iter()
            .filter(|m| m.old != m.new)
            .map(|m| CellChange {
                row: m.row,
                column: column.clone(),
                value: m.new,
            })
            .collect();
        self.edit(&changes)?;
        Ok(changes.len())
    }
}
