//! Pipeline: runs the checking stages over one input file — read, columns,
//! validate (in parallel, on rayon), group — and lets later steps walk the
//! rows again with their outcomes (to write the report, or build the
//! orders). The rows come again from the sheet as it was read (a CSV
//! file's private copy), never from the file: a later pass meets exactly
//! the rows that were checked.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::columns::{self, Columns, Field, Role};
use crate::dcms::CardOrderRequest;
use crate::error::{Error, Result};
use crate::group::{self, Grouper, Grouping, OrderValues, RowOutcome, Status};
use crate::read::{self, ReadOpts, Row, Sheet};
use crate::report::{self, Cells, FactCounts, InputFacts, OrderCounts, RunFacts};
use crate::rules::Rules;
use crate::validate::{Checker, ORDER_FIELDS, RowCheck, WidthCensus};

mod recheck;
pub use recheck::{KeptChecks, check_sheet_keeping, recheck_rows};

/// What a check run needs besides the file.
#[derive(Debug, Clone, Default)]
pub struct CheckOpts {
    pub read: ReadOpts,
    pub rules: Rules,
    /// `--batch-id`; default: the input file's SHA-256.
    pub batch_id: Option<String>,
    /// `--allow-partial-orders`: send an order's valid rows even when
    /// another of its rows is invalid.
    pub allow_partial: bool,
}

/// A data row with what became of it.
pub type OutcomeRow<'a> = (Row<'a>, RowOutcome<'a>);

/// A checked and grouped input file.
pub struct Checked {
    pub path: PathBuf,
    pub sheet: Sheet,
    pub columns: Columns,
    pub grouping: Grouping,
    /// The `--batch-id` salt of the order ids; empty when none was given.
    pub batch_id: String,
    /// Blank rows below the header: not data rows, but counted.
    pub blank_rows: u64,
    rules: Rules,
    typical_width: HashMap<Field, usize>,
    /// Of a comma-separated file, the rows (by number) whose bytes a CSV
    /// report may copy as they are.
    copies: RowBits,
}

/// A batch's value of a later pass (see [`Checked::fold_cells`]), with
/// how many rows it met, where the next is likely to be found, and the
/// first row met that the first pass did not.
#[derive(Default)]
struct Met<A> {
    value: A,
    rows: usize,
    next: usize,
    stray: Option<u64>,
}

/// A row's check as the first pass hands it from the core that made it
/// to the one that groups the rows: most rows have no problem, so their
/// problems and warnings take a pointer, not two lists' room (the check
/// is read on another core: its size is traffic between the cores).
struct Handed {
    number: u64,
    key: crate::validate::OrderKey,
    order_ref: Option<Box<str>>,
    order_fields: u64,
    product: u64,
    findings: Option<Box<(Vec<crate::validate::Problem>, Vec<crate::validate::Problem>)>>,
}

impl From<RowCheck> for Handed {
    fn from(c: RowCheck) -> Self {
        let findings = (!c.problems.is_empty() || !c.warnings.is_empty())
            .then(|| Box::new((c.problems, c.warnings)));
        Handed {
            number: c.number,
            key: c.key,
            order_ref: c.order_ref,
            order_fields: c.order_fields,
            product: c.product,
            findings,
        }
    }
}

impl From<Handed> for RowCheck {
    fn from(h: Handed) -> Self {
        let (problems, warnings) = h.findings.map_or_else(Default::default, |f| *f);
        RowCheck {
            number: h.number,
            problems,
            warnings,
            key: h.key,
            order_ref: h.order_ref,
            order_fields: h.order_fields,
            product: h.product,
        }
    }
}

/// A set of row numbers, a bit each.
#[derive(Debug, Clone, Default)]
struct RowBits(Vec<u64>);

impl RowBits {
    fn insert(&mut self, row: u64) {
        let (word, bit) = ((row / 64) as usize, row % 64);
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    fn contains(&self, row: u64) -> bool {
        let (word, bit) = ((row / 64) as usize, row % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }
}

/// Reads, checks and groups one input file.
pub fn check(path: &Path, opts: &CheckOpts) -> Result<Checked> {
    let t0 = std::time::Instant::now();
    let sheet = read_sheet(path, opts)?;
    check_sheet(path, sheet, opts, t0)
}

/// Reads the sheet of `path` that [`check`] checks.
pub fn read_sheet(path: &Path, opts: &CheckOpts) -> Result<Sheet> {
    // Before anything opens it: a FIFO would block for good.
    crate::files::regular(path).map_err(|e| Error::io(path, e))?;
    read::open(path, &opts.read, &mut |sheet: &Sheet| {
        columns::header_of(sheet, &Field::ALL)
            .is_some_and(|(n, cells)| Columns::from_headers(path, sheet, n, &cells).is_ok())
    })
}

/// Checks and groups a sheet read from `path` (with the cells a person
/// changed, if any: see [`read::Edits`]).
pub fn check_sheet(
    path: &Path,
    sheet: Sheet,
    opts: &CheckOpts,
    t0: std::time::Instant,
) -> Result<Checked> {
    let parts = check_parts(path, &sheet, opts, t0, None)?;
    Ok(parts.checked(path, sheet))
}

impl Parts {
    /// The sheet read from `path`, checked as these parts found.
    fn checked(self, path: &Path, mut sheet: Sheet) -> Checked {
        note_columns(&mut sheet, &self.columns);
        Checked {
            path: path.to_path_buf(),
            sheet,
            columns: self.columns,
            grouping: self.grouping,
            batch_id: self.batch_id,
            blank_rows: self.blank_rows,
            rules: self.rules,
            typical_width: self.typical_width,
            copies: self.copies,
        }
    }
}

/// What checking a sheet finds, the sheet aside.
struct Parts {
    columns: Columns,
    grouping: Grouping,
    batch_id: String,
    blank_rows: u64,
    rules: Rules,
    typical_width: HashMap<Field, usize>,
    copies: RowBits,
}

fn check_parts(
    path: &Path,
    sheet: &Sheet,
    opts: &CheckOpts,
    t0: std::time::Instant,
    mut keep: Option<&mut KeptChecks>,
) -> Result<Parts> {
    let Some((header_row, header_cells)) = columns::header_of(sheet, &Field::ALL) else {
        return Err(columns::no_header(path, sheet, &Field::ALL));
    };
    let columns = Columns::from_headers(path, sheet, header_row, &header_cells)?;
    let typical_width = typical_widths(sheet, &columns, header_row)?;
    crate::clock::timing("open", t0);

    let checker = Checker::new(&columns, &opts.rules, typical_width.clone());
    let mut grouper = Grouper::with_capacity(sheet.rows_hint());
    let mut blank_rows = 0;
    let mut copies = RowBits::default();
    let (comma, ncols) = (sheet.is_comma_separated(), columns.len());
    let check = |r: &Row<'_>| {
        let check = checker.check_unless_blank(r);
        let copy = comma && check.is_some() && copied_as_is(r, ncols);
        (r.number(), check.map(Handed::from), copy)
    };
    sheet.scan_map(header_row, ncols, &check, &mut |checks| {
        for (number, c, copy) in checks {
            let c = c.map(RowCheck::from);
            if let Some(kept) = keep.as_deref_mut() {
                kept.push((number, c.clone()));
            }
            if copy {
                copies.insert(number);
            }
            match c {
                Some(c) => grouper.push(c),
                None => blank_rows += 1,
            }
        }
        Ok(())
    })?;
    crate::clock::timing("check", t0);
    if grouper.rows() == 0 {
        return Err(Error::input(
            path,
            format!(
                "sheet `{}` has a header on row {header_row} but no data rows below it",
                sheet.name()
            ),
        ));
    }

    let values = conflicted_values(sheet, &checker, &columns, &grouper)?;

    // Ids hang on the orders' checked content, salted only by a deliberate
    // `--batch-id`: the same orders get the same ids from any file.
    let batch_id = opts.batch_id.clone().unwrap_or_default();
    let grouping = grouper.finish(&batch_id, opts.allow_partial, &values);
    crate::clock::timing("group", t0);
    Ok(Parts {
        columns,
        grouping,
        batch_id,
        blank_rows,
        rules: opts.rules.clone(),
        typical_width,
        copies,
    })
}

/// Whether a CSV report may copy row `r`'s bytes as they are: its cells
/// are written as the csv crate writes them, none needing to be made
/// inert.
fn copied_as_is(r: &Row<'_>, ncols: usize) -> bool {
    r.canonical_csv(ncols, &report::is_inert)
}

/// Notes where the header is and which columns are kept as they are.
fn note_columns(sheet: &mut Sheet, columns: &Columns) {
    sheet.add_note(format!(
        "header on row {}, {} columns",
        columns.header_row,
        columns.len()
    ));
    let unknown: Vec<&str> = columns
        .roles
        .iter()
        .zip(&columns.headers)
        .filter(|(r, _)| **r == Role::Unknown)
        .map(|(_, h)| h.as_str())
        .collect();
    if !unknown.is_empty() {
        sheet.add_note(format!("columns kept as they are: {}", unknown.join(", ")));
    }
}

/// The rows of orders whose rows disagree: their values, to say which.
fn conflicted_values(
    sheet: &Sheet,
    checker: &Checker<'_>,
    columns: &Columns,
    grouper: &Grouper,
) -> Result<HashMap<u64, OrderValues>> {
    let mut conflicted = grouper.conflicted_rows();
    conflicted.sort_unstable();
    let mut values: HashMap<u64, OrderValues> = HashMap::new();
    if !conflicted.is_empty() {
        // Only the rows of `conflicted` come.
        sheet.scan_lines(
            columns.header_row,
            columns.len(),
            &conflicted,
            &mut |rows| {
                for r in rows {
                    values.insert(r.number(), order_values(checker, columns, r));
                }
                Ok(())
            },
        )?;
    }
    Ok(values)
}

/// For a workbook, the usual width of each id column, to tell an id that
/// lost its leading zeros to a number cell.
fn typical_widths(
    sheet: &Sheet,
    columns: &Columns,
    header_row: u64,
) -> Result<HashMap<Field, usize>> {
    if !sheet.is_workbook() {
        return Ok(HashMap::new());
    }
    let mut census = WidthCensus::default();
    sheet.scan(header_row, columns.len(), &mut |rows| {
        let counted = rows
            .par_iter()
            .fold(WidthCensus::default, |mut c, r| {
                c.add(columns, r);
                c
            })
            .reduce(WidthCensus::default, WidthCensus::merge);
        census = std::mem::take(&mut census).merge(counted);
        Ok(())
    })?;
    Ok(census.typical())
}

fn order_values(checker: &Checker<'_>, columns: &Columns, row: &Row<'_>) -> OrderValues {
    let mut v: OrderValues = ORDER_FIELDS
        .iter()
        .filter_map(|f| {
            columns
                .get(*f)
                .map(|c| (c, f.name().to_string(), checker.value(row, *f).into_owned()))
        })
        .collect();
    for (k, c) in columns.meta() {
        v.push((c, format!("meta.{k}"), row.cell(c).text.into_owned()));
    }
    v
}

impl Checked {
    /// The facts of a run on this sheet, for its run-facts record.
    pub fn facts(&self, command: &str, options: serde_json::Value, started_at: String) -> RunFacts {
        let c = self.grouping.counts;
        let input = InputFacts {
            path: self.path.display().to_string(),
            absolute_path: InputFacts::absolute(&self.path),
            sha256: self.sheet.sha256().to_string(),
            bytes: self.sheet.bytes(),
            sheet: self.sheet.name().to_string(),
            header_row: self.columns.header_row,
            detected: self.sheet.notes().to_vec(),
        };
        let counts = FactCounts {
            rows: c.rows,
            valid: c.valid,
            invalid: c.invalid,
            held: c.held,
            warnings: c.warnings,
            blank_rows: self.blank_rows,
            orders: Some(OrderCounts {
                orders_ready: c.orders_ready,
                orders_held: c.orders_held,
            }),
        };
        let batch_id = (!self.batch_id.is_empty()).then(|| self.batch_id.clone());
        RunFacts::new(command, input, batch_id, options, started_at, counts)
    }

    /// Walks every data row again, in input order and in batches, with its
    /// outcome.
    pub fn for_each_outcome(
        &self,
        f: &mut (dyn FnMut(&[OutcomeRow<'_>]) -> Result<()> + Send),
    ) -> Result<()> {
        let mut next = 0;
        self.sheet
            .scan(self.columns.header_row, self.columns.len(), &mut |rows| {
                let rows: Vec<Row<'_>> = rows.iter().filter(|r| !r.is_blank()).copied().collect();
                let first = self.claim(&mut next, rows.len())?;
                let batch: Vec<OutcomeRow<'_>> = rows
                    .into_iter()
                    .zip(first..)
                    .map(|(r, i)| (r, self.grouping.row(i)))
                    .collect();
                f(&batch)
            })?;
        self.all_met(next)
    }

    /// The data rows at `indexes` (sorted), in order and in batches, with
    /// their outcomes: a page of the sheet, reading no more of it than
    /// the rows need.
    pub fn for_each_outcome_at(
        &self,
        indexes: &[usize],
        f: &mut (dyn FnMut(&[OutcomeRow<'_>]) -> Result<()> + Send),
    ) -> Result<()> {
        let numbers: Vec<u64> = indexes.iter().map(|&i| self.grouping.number(i)).collect();
        let mut met = 0;
        self.sheet.scan_lines(
            self.columns.header_row,
            self.columns.len(),
            &numbers,
            &mut |rows| {
                let batch: Vec<OutcomeRow<'_>> = rows
                    .iter()
                    .filter(|r| !r.is_blank())
                    .filter_map(|r| {
                        let k = numbers.binary_search(&r.number()).ok()?;
                        Some((*r, self.grouping.row(indexes[k])))
                    })
                    .collect();
                met += batch.len();
                f(&batch)
            },
        )?;
        self.met(met, indexes.len())
    }

    /// Walks every data row again, in input order: `add` folds each one,
    /// as its cells (trimmed, one per column) with its outcome, into its
    /// batch's value, on every core, and `sink` takes the values in
    /// order. `as_csv`: a record of a comma-separated file that a CSV
    /// report can copy as it is comes as its bytes (borrowed for the
    /// call: owned where kept).
    pub fn fold_cells<'c, A: Default + Send>(
        &'c self,
        as_csv: bool,
        add: &(dyn Fn(&mut A, Cells<'_>, RowOutcome<'c>) + Sync),
        sink: &mut (dyn FnMut(A) -> Result<()> + Send),
    ) -> Result<()> {
        let ncols = self.columns.len();
        let copy = as_csv && self.sheet.is_comma_separated();
        // Each row's outcome is found by its number: a row the first pass
        // did not meet stops the walk.
        let met = |out: &mut Met<A>, number: u64, cells: Cells<'_>| match self
            .grouping
            .index_near(number, out.next)
        {
            Some(i) => {
                add(&mut out.value, cells, self.grouping.row(i));
                (out.rows, out.next) = (out.rows + 1, i + 1);
            }
            None => out.stray = out.stray.or(Some(number)),
        };
        let fold = |out: &mut Met<A>, r: &Row<'_>| {
            if r.is_blank() {
                return;
            }
            // A row with changed cells has no bytes of its own.
            let cells = match r.raw() {
                Some(raw) if copy && self.copies.contains(r.number()) => {
                    Cells::Csv(Cow::Borrowed(raw))
                }
                _ => {
                    let mut cells = csv::StringRecord::with_capacity(128, ncols);
                    for c in 0..ncols {
                        cells.push_field(&r.cell(c).text);
                    }
                    Cells::List(cells)
                }
            };
            met(out, r.number(), cells);
        };
        // A row copied as it is needs no parsing.
        let raw = |out: &mut Met<A>, number: u64, bytes: &[u8]| {
            let taken = self.copies.contains(number);
            if taken {
                met(out, number, Cells::Csv(Cow::Borrowed(bytes)));
            }
            taken
        };
        let mut rows = 0;
        let sink = &mut |out: Met<A>| {
            if out.stray.is_some() {
                return Err(self.rows_differ());
            }
            rows += out.rows;
            sink(out.value)
        };
        let raw = copy.then_some(&raw as &read::RawFold<'_, Met<A>>);
        self.sheet
            .scan_fold(self.columns.header_row, ncols, &fold, raw, sink)?;
        self.all_met(rows)
    }

    /// The index of the first of the next `n` data rows a pass met, which
    /// the first pass found too.
    fn claim(&self, next: &mut usize, n: usize) -> Result<usize> {
        let first = *next;
        *next += n;
        if *next > self.grouping.len() {
            return Err(self.rows_differ());
        }
        Ok(first)
    }

    fn all_met(&self, met: usize) -> Result<()> {
        self.met(met, self.grouping.len())
    }

    /// An error unless a pass met the `want` rows it was to meet.
    fn met(&self, met: usize, want: usize) -> Result<()> {
        if met == want {
            Ok(())
        } else {
            Err(self.rows_differ())
        }
    }

    /// Cannot happen (the rows come each time from what was read: a
    /// workbook's cells in memory, a CSV file's private copy), but a pass
    /// that met other rows than the first must stop, not pair rows with
    /// the wrong outcomes.
    fn rows_differ(&self) -> Error {
        Error::input(
            &self.path,
            "the rows read again differ from the rows checked",
        )
    }

    /// The `POST /card-order` bodies of the orders that are ready, in the
    /// order their first row appears; products in row order.
    pub fn orders(&self) -> Result<Vec<CardOrderRequest>> {
        let mut orders = Vec::new();
        self.for_each_order(&mut |g, order| {
            orders.push((g, order));
            Ok(())
        })?;
        orders.sort_unstable_by_key(|(g, _)| *g);
        Ok(orders.into_iter().map(|(_, o)| o).collect())
    }

    /// Hands each ready order to `f` as soon as its last row has been read
    /// (rows of an order usually sit together), so a caller that keeps them
    /// compactly never holds every order as a struct at once. The order is
    /// that of their last rows; the group index says where each belongs.
    pub fn for_each_order(
        &self,
        f: &mut (dyn FnMut(u32, CardOrderRequest) -> Result<()> + Send),
    ) -> Result<()> {
        let checker = Checker::new(&self.columns, &self.rules, self.typical_width.clone());
        let groups = self.grouping.groups();
        let mut open: HashMap<u32, CardOrderRequest> = HashMap::new();
        let built = |e: String| Error::input(&self.path, e);
        self.for_each_outcome(&mut |batch| {
            for (row, out) in batch.iter().filter(|(_, o)| o.status == Status::Valid) {
                let order = match open.entry(out.group) {
                    std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::hash_map::Entry::Vacant(v) => v.insert(
                        group::order_request(&checker, &self.columns, row, out.order_id)
                            .map_err(built)?,
                    ),
                };
                order
                    .products
                    .push(group::product(&checker, row).map_err(built)?);
                let g = &groups[out.group as usize];
                if order.products.len() as u32 >= g.rows - g.invalid
                    && let Some(done) = open.remove(&out.group)
                {
                    f(out.group, done)?;
                }
            }
            Ok(())
        })?;
        // Cannot happen (every valid row was counted), but never drop one.
        let mut rest: Vec<(u32, CardOrderRequest)> = open.into_iter().collect();
        rest.sort_unstable_by_key(|(g, _)| *g);
        for (g, order) in rest {
            f(g, order)?;
        }
        Ok(())
    }

    /// The A1 reference of a cell of this sheet.
    pub fn cell_ref(&self, col: usize, row: u64) -> String {
        self.sheet.cell_ref(col, row)
    }
}
