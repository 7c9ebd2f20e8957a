//! Checking a sheet again after a few of its cells changed, as the desk
//! does at every save: a row's check depends on its own cells only (and
//! the columns' usual widths), so only the changed rows are checked again
//! and the orders are formed anew from every row's check. When the
//! shortcut would not give what a whole check gives (the usual widths
//! moved, a row became blank or stopped being one), the caller checks the
//! whole sheet.

use std::collections::HashSet;
use std::path::Path;

use super::{CheckOpts, Checked, check_parts, conflicted_values, note_columns, typical_widths};
use crate::error::Result;
use crate::group::Grouper;
use crate::read::Sheet;
use crate::validate::{Checker, RowCheck, WidthCensus};

/// Each row below the header with its check (`None`: a blank row), in
/// row order: what a sheet that is edited keeps to be checked again
/// quickly.
pub type KeptChecks = Vec<(u64, Option<RowCheck>)>;

/// A sheet checked again, with its changed rows' new checks by their
/// place in its [`KeptChecks`].
pub type Rechecked = (Checked, Vec<(usize, RowCheck)>);

/// [`check_sheet`](super::check_sheet), keeping every row's check.
pub fn check_sheet_keeping(
    path: &Path,
    sheet: Sheet,
    opts: &CheckOpts,
    t0: std::time::Instant,
) -> Result<(Checked, KeptChecks)> {
    let mut kept = KeptChecks::new();
    let parts = check_parts(path, &sheet, opts, t0, Some(&mut kept))?;
    let checked = parts.checked(path, sheet);
    Ok((checked, kept))
}

/// `sheet` (the sheet of `before`, with other changes laid over it)
/// checked again, only the rows of the cells `changed` (row, column) read
/// and checked anew; the new checks, by their place in `kept`, to keep.
/// `None`: the sheet must be checked whole.
pub fn recheck_rows(
    before: &Checked,
    kept: &KeptChecks,
    mut sheet: Sheet,
    changed: &[(u64, usize)],
    opts: &CheckOpts,
) -> Result<Option<Rechecked>> {
    let t0 = std::time::Instant::now();
    let columns = before.columns.clone();
    // The usual widths move only with a cell of a column they count.
    let counted: HashSet<usize> = WidthCensus::FIELDS
        .iter()
        .filter_map(|f| columns.get(*f))
        .collect();
    let typical = if changed.iter().any(|(_, c)| counted.contains(c)) {
        typical_widths(&sheet, &columns, columns.header_row)?
    } else {
        before.typical_width.clone()
    };
    if typical != before.typical_width {
        return Ok(None);
    }
    let checker = Checker::new(&columns, &opts.rules, typical.clone());
    let ncols = columns.len();
    let mut fresh: Vec<(usize, RowCheck)> = Vec::new();
    let mut whole = false;
    let mut lines: Vec<u64> = changed.iter().map(|(r, _)| *r).collect();
    lines.sort_unstable();
    lines.dedup();
    // Only the changed rows come.
    sheet.scan_lines(columns.header_row, ncols, &lines, &mut |rows| {
        for r in rows {
            let Ok(at) = kept.binary_search_by_key(&r.number(), |(n, _)| *n) else {
                whole = true;
                continue;
            };
            match (checker.check_unless_blank(r), &kept[at].1) {
                (Some(check), Some(_)) => fresh.push((at, check)),
                (None, None) => {}
                _ => whole = true,
            }
        }
        Ok(())
    })?;
    if whole {
        return Ok(None);
    }
    fresh.sort_unstable_by_key(|(at, _)| *at);
    crate::clock::timing("check changed rows", t0);

    let mut grouper = Grouper::with_capacity(kept.len());
    let mut next = fresh.iter().peekable();
    for (at, (_, check)) in kept.iter().enumerate() {
        let Some(check) = check else { continue };
        match next.next_if(|(n, _)| *n == at) {
            Some((_, new)) => grouper.push(new.clone()),
            None => grouper.push(check.clone()),
        }
    }
    let values = conflicted_values(&sheet, &checker, &columns, &grouper)?;
    let grouping = grouper.finish(&before.batch_id, opts.allow_partial, &values);
    crate::clock::timing("group", t0);
    note_columns(&mut sheet, &columns);
    let checked = Checked {
        path: before.path.clone(),
        sheet,
        columns,
        grouping,
        batch_id: before.batch_id.clone(),
        blank_rows: before.blank_rows,
        rules: opts.rules.clone(),
        typical_width: typical,
        // A changed row is never copied: it has no bytes of its own.
        copies: before.copies.clone(),
    };
    Ok(Some((checked, fresh)))
}
