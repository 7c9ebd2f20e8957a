//! A job: one order sheet through the engine, as every face drives it.
//! Open a sheet (checked at once), change cells (each change re-checks
//! the sheet as changed: its rows and every order they form), then write
//! its report or send its ready orders. The file is never changed: the
//! changes are laid over the sheet as it was read (see [`read::Edits`]),
//! and each is kept with the value it replaced.

use std::path::{Path, PathBuf};

use crate::batch::{Batch, Engine, Finished};
use crate::error::{Error, Result};
use crate::pipeline::{self, CheckOpts, Checked};
use crate::read::Edits;
use crate::report::{RunFacts, Target};

mod export;
mod replace;
pub use export::{Rows, TO_FIX};
pub use replace::Match;

/// A cell to change: by its row number (as a spreadsheet shows it) and
/// its column's header (as the sheet writes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellChange {
    pub row: u64,
    pub column: String,
    pub value: String,
}

/// A change made: the cell, the value it had, the value it has, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Edit {
    pub row: u64,
    pub column: String,
    pub old: String,
    pub new: String,
    pub at: String,
}

/// One data row as a page shows it: its cells as the checks read them
/// (with their changes), and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ShownRow {
    pub number: u64,
    pub status: &'static str,
    pub order_id: String,
    /// Its order's place among the sheet's orders (what the engine's
    /// outcomes are told by).
    pub group: u32,
    pub cells: Vec<String>,
    /// The row's errors: the column (`None`: the row as a whole) and the
    /// message.
    pub problems: Vec<(Option<usize>, String)>,
    pub warnings: Vec<(Option<usize>, String)>,
    /// For a held row: the invalid rows that hold its order back.
    pub held_by: Vec<u64>,
}

impl ShownRow {
    fn of(
        row: &crate::read::Row<'_>,
        outcome: &crate::group::RowOutcome<'_>,
        width: usize,
    ) -> Self {
        let said =
            |p: &[crate::validate::Problem]| p.iter().map(|p| (p.col, p.message.clone())).collect();
        ShownRow {
            number: outcome.number,
            status: outcome.status.as_str(),
            order_id: outcome.order_id.to_owned(),
            group: outcome.group,
            cells: (0..width).map(|c| row.cell(c).text.into_owned()).collect(),
            problems: said(outcome.problems),
            warnings: said(outcome.warnings),
            held_by: outcome.held_by.to_vec(),
        }
    }
}

/// A page of a sheet's data rows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Page {
    pub rows: Vec<ShownRow>,
    /// How many rows there are to page through (all, or those with
    /// problems).
    pub total: u64,
}

/// One order sheet, checked, with the changes made to it.
pub struct Job {
    checked: Checked,
    opts: CheckOpts,
    edits: Vec<Edit>,
    /// The sheet's changes and how many edits there were before the last
    /// save, for one step of undo.
    before: Option<(Edits, usize)>,
    /// For a sheet opened to be edited: every row's check, so that a
    /// change checks only the rows it changed.
    kept: Option<pipeline::KeptChecks>,
}

impl Job {
    /// Reads and checks the sheet at `path` (see [`pipeline::check`]).
    pub fn open(path: &Path, opts: CheckOpts) -> Result<Job> {
        let checked = pipeline::check(path, &opts)?;
        Ok(Job {
            checked,
            opts,
            edits: Vec::new(),
            before: None,
            kept: None,
        })
    }

    /// [`open`](Self::open) for a sheet a person will change cell by cell
    /// (the desk): every row's check is kept, so that a change is checked
    /// in the time its rows take, not the sheet's.
    pub fn open_to_edit(path: &Path, opts: CheckOpts) -> Result<Job> {
        let t0 = std::time::Instant::now();
        let sheet = pipeline::read_sheet(path, &opts)?;
        let (checked, kept) = pipeline::check_sheet_keeping(path, sheet, &opts, t0)?;
        Ok(Job {
            checked,
            opts,
            edits: Vec::new(),
            before: None,
            kept: Some(kept),
        })
    }

    /// Names the input as its user knows it (standard input's temporary
    /// copy is `<stdin>`), in what the job writes and tells.
    pub fn name_input(&mut self, path: PathBuf) {
        self.checked.path = path;
    }

    /// The sheet as checked now (with its changes).
    pub fn checked(&self) -> &Checked {
        &self.checked
    }

    /// What binds an approval to this version of the sheet: the SHA-256
    /// of the file as it came (`file_sha256`) with the changes laid over
    /// it, and the SHA-256 of the ready orders exactly as they would be
    /// sent. Any change to the sheet or its orders changes them.
    pub fn fingerprints(&self, file_sha256: &str) -> Result<(String, String)> {
        use sha2::{Digest, Sha256};
        let changes: Vec<(u64, &str, &str)> = self
            .edits
            .iter()
            .map(|e| (e.row, e.column.as_str(), e.new.as_str()))
            .collect();
        let version = serde_json::json!([file_sha256, changes]).to_string();
        let mut orders = Sha256::new();
        for order in self.checked.orders()? {
            let body = serde_json::to_string(&order)
                .map_err(|e| Error::Internal(format!("an order cannot be written: {e}")))?;
            orders.update(body.as_bytes());
            orders.update(b"\n");
        }
        Ok((
            hex::encode(Sha256::digest(version.as_bytes())),
            hex::encode(orders.finalize()),
        ))
    }

    /// The changes made, in the order they were made.
    pub fn edits(&self) -> &[Edit] {
        &self.edits
    }

    /// The input file (never changed).
    pub fn path(&self) -> &PathBuf {
        &self.checked.path
    }

    /// Changes cells, all or none, and checks the sheet again: a row's
    /// problems, its order's grouping and every count follow. A change to
    /// a row that is not a data row, or to a column the sheet lacks, is
    /// refused, naming it; a change to the value a cell already has is
    /// not a change.
    pub fn edit(&mut self, changes: &[CellChange]) -> Result<()> {
        let was = self.checked.sheet.edits().clone();
        let mut overlay = was.clone();
        let mut made = Vec::new();
        let cols = changes
            .iter()
            .map(|c| self.column(&c.column))
            .collect::<Result<Vec<usize>>>()?;
        let at: Vec<(u64, usize)> = changes
            .iter()
            .zip(&cols)
            .map(|(c, &col)| (c.row, col))
            .collect();
        let olds = self.cells(&at)?;
        for ((change, &col), old) in changes.iter().zip(&cols).zip(olds) {
            if old == change.value {
                continue;
            }
            overlay.set(change.row, col, change.value.clone());
            made.push(Edit {
                row: change.row,
                column: self.checked.columns.headers[col].clone(),
                old,
                new: change.value.clone(),
                at: crate::clock::now(),
            });
        }
        if made.is_empty() {
            return Ok(());
        }
        self.recheck(overlay, &at)?;
        self.before = Some((was, self.edits.len()));
        self.edits.extend(made);
        Ok(())
    }

    /// Lays `saves` (each a list of changes made together, oldest first)
    /// over the sheet as it was read, and checks it once: the job as it
    /// was after them. With `can_undo`, the last save can be undone.
    pub fn restore(&mut self, saves: &[Vec<Edit>], can_undo: bool) -> Result<()> {
        let mut overlay = self.checked.sheet.edits().clone();
        let mut edits = Vec::new();
        let mut before = None;
        for (i, save) in saves.iter().enumerate() {
            if can_undo && i + 1 == saves.len() {
                before = Some((overlay.clone(), edits.len()));
            }
            for e in save {
                overlay.set(e.row, self.column(&e.column)?, e.new.clone());
                edits.push(e.clone());
            }
        }
        if !edits.is_empty() {
            let cells = self.cells_of(&edits)?;
            self.recheck(overlay, &cells)?;
        }
        self.edits = edits;
        self.before = before;
        Ok(())
    }

    /// Whether the last save can be undone (one step).
    pub fn can_undo(&self) -> bool {
        self.before.is_some()
    }

    /// Undoes the last save: its cells as they were, the sheet checked
    /// again, its edits off the list. One step: a second undo has nothing
    /// to undo.
    pub fn undo(&mut self) -> Result<()> {
        let Some((overlay, len)) = self.before.take() else {
            return Err(Error::Usage("there is no change to undo".into()));
        };
        let cells = self.cells_of(&self.edits[len..])?;
        self.recheck(overlay, &cells)?;
        self.edits.truncate(len);
        Ok(())
    }

    /// Writes the report of the sheet as it is now, nothing sent (as
    /// `validate` does); returns where its run facts went.
    pub fn report(&self, target: &Target, csv_bom: bool, facts: &mut RunFacts) -> Result<PathBuf> {
        crate::lines::order_report(&self.checked, target, csv_bom, facts, None)
    }

    /// Sends the ready orders of the sheet as it is now, and writes the
    /// report with every row's outcome (as `submit` does).
    pub fn send(&self, engine: &Engine, batch: Batch<'_>) -> Result<Finished> {
        engine.orders(&self.checked, batch)
    }

    /// The data rows from the `skip`-th, at most `take` of them; with
    /// `problems_only`, of the rows that are not valid or have a warning.
    pub fn page(&self, problems_only: bool, skip: u64, take: u64) -> Result<Page> {
        let grouping = &self.checked.grouping;
        let mut total = 0;
        let mut wanted = Vec::new();
        for i in 0..grouping.len() {
            let outcome = grouping.row(i);
            let shown = !problems_only
                || outcome.status != crate::group::Status::Valid
                || !outcome.warnings.is_empty();
            if shown {
                total += 1;
                if total > skip && (wanted.len() as u64) < take {
                    wanted.push(i);
                }
            }
        }
        let mut rows = Vec::new();
        let width = self.checked.columns.len();
        self.checked.for_each_outcome_at(&wanted, &mut |batch| {
            rows.extend(
                batch
                    .iter()
                    .map(|(row, outcome)| ShownRow::of(row, outcome, width)),
            );
            Ok(())
        })?;
        Ok(Page { rows, total })
    }

    /// The data row numbered `number` (as a spreadsheet shows it), if the
    /// sheet has it.
    pub fn row(&self, number: u64) -> Result<Option<ShownRow>> {
        let Some(i) = self.checked.grouping.index_of(number) else {
            return Ok(None);
        };
        let mut found = None;
        let width = self.checked.columns.len();
        self.checked.for_each_outcome_at(&[i], &mut |rows| {
            if let Some((row, outcome)) = rows.first() {
                found = Some(ShownRow::of(row, outcome, width));
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// The column of the sheet whose header is `name` (as written, or
    /// the order field's canonical name).
    fn column(&self, name: &str) -> Result<usize> {
        let columns = &self.checked.columns;
        columns
            .headers
            .iter()
            .position(|h| h == name)
            .or_else(|| crate::columns::Field::from_name(name).and_then(|f| columns.get(f)))
            .ok_or_else(|| Error::Usage(format!("the sheet has no column `{name}`")))
    }

    /// The text of a data row's cell as the checks read it now.
    /// The text of data rows' cells (row, column) as the checks read
    /// them now, in one walk of the sheet.
    fn cells(&self, at: &[(u64, usize)]) -> Result<Vec<String>> {
        let mut wanted: std::collections::HashMap<u64, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, (row, _)) in at.iter().enumerate() {
            wanted.entry(*row).or_default().push(i);
        }
        let mut found: Vec<Option<String>> = vec![None; at.len()];
        let columns = &self.checked.columns;
        let mut lines: Vec<u64> = wanted.keys().copied().collect();
        lines.sort_unstable();
        self.checked
            .sheet
            .scan_lines(columns.header_row, columns.len(), &lines, &mut |rows| {
                // The rows come with their changed cells; a blank one is
                // not a data row.
                for r in rows.iter().filter(|r| !r.is_blank()) {
                    for &i in wanted.get(&r.number()).into_iter().flatten() {
                        found[i] = Some(r.cell(at[i].1).text.into_owned());
                    }
                }
                Ok(())
            })?;
        let header = self.checked.columns.header_row;
        found
            .into_iter()
            .zip(at)
            .map(|(f, (row, _))| {
                f.ok_or_else(|| {
                    Error::Usage(format!(
                        "row {row} is not a data row of the sheet (its header is row {header})"
                    ))
                })
            })
            .collect()
    }

    /// The cells (row, column) that `edits` changed.
    fn cells_of(&self, edits: &[Edit]) -> Result<Vec<(u64, usize)>> {
        edits
            .iter()
            .map(|e| Ok((e.row, self.column(&e.column)?)))
            .collect()
    }

    /// Checks the sheet again with `overlay` laid over it, whose cells
    /// `changed` (row, column) differ from the sheet as checked: only those rows where
    /// every row's check is kept, else all; when it cannot be (every data
    /// row emptied), it stays as it was.
    fn recheck(&mut self, overlay: Edits, changed: &[(u64, usize)]) -> Result<()> {
        let mut sheet = self.checked.sheet.clone();
        sheet.set_edits(overlay);
        let t0 = std::time::Instant::now();
        let path = self.checked.path.clone();
        let Some(kept) = &mut self.kept else {
            self.checked = pipeline::check_sheet(&path, sheet, &self.opts, t0)?;
            return Ok(());
        };
        let quick =
            pipeline::recheck_rows(&self.checked, kept, sheet.clone(), changed, &self.opts)?;
        match quick {
            Some((checked, fresh)) => {
                for (at, check) in fresh {
                    kept[at].1 = Some(check);
                }
                self.checked = checked;
            }
            None => {
                let (checked, all) = pipeline::check_sheet_keeping(&path, sheet, &self.opts, t0)?;
                self.checked = checked;
                *kept = all;
            }
        }
        Ok(())
    }
}
