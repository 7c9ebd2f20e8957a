//! Columns: finds the header row and maps its headers to the columns a
//! kind of sheet knows: an order sheet's fields, or a cancel or upgrade
//! sheet's template columns. One matcher serves every kind; each kind
//! declares its columns as data ([`Known`]).
//!
//! Headers match case-insensitively, ignoring spaces, `_`, `-` and `.`, and
//! through common aliases ("Branch Code", "Qty", "BIN Number"...). Columns
//! that match no known column are kept and echoed in the report;
//! `meta.<key>` columns carry free-text order metadata.

use std::path::Path;

use crate::error::{Error, Result};
use crate::read::{Row, Sheet};
use crate::schema::{Column, ORDER};

/// An order-sheet field: a column the tool understands, the row of the
/// order schema ([`ORDER`]) at its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    OrderRef,
    BranchId,
    BranchName,
    ProductId,
    Bin,
    CardType,
    Quantity,
    PlasticCode,
    PanLength,
    PinGeneration,
    DeliveryAddress,
    PinCode,
    ProcessStartTime,
    ValidityDays,
    OrderedBy,
    OrderingPartyType,
}

impl Field {
    pub const ALL: [Field; 16] = [
        Field::OrderRef,
        Field::BranchId,
        Field::BranchName,
        Field::ProductId,
        Field::Bin,
        Field::CardType,
        Field::Quantity,
        Field::PlasticCode,
        Field::PanLength,
        Field::PinGeneration,
        Field::DeliveryAddress,
        Field::PinCode,
        Field::ProcessStartTime,
        Field::ValidityDays,
        Field::OrderedBy,
        Field::OrderingPartyType,
    ];

    /// Its row of the order sheet's schema.
    pub fn column(self) -> &'static Column {
        &ORDER[self as usize]
    }

    /// The canonical column name, as in the manual and templates.
    pub fn name(self) -> &'static str {
        self.column().name
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether a sheet must have this column.
    pub fn required(self) -> bool {
        self.column().required
    }

    /// Columns whose values are codes, where leading zeros matter.
    pub fn is_id(self) -> bool {
        self.column().code
    }

    /// The lengths this id may have, when the rules fix some (a BIN is 6
    /// or 8 digits): a value of one of them is not a shortened one.
    pub fn id_lengths(self) -> &'static [usize] {
        match self {
            Field::Bin => &[6, 8],
            _ => &[],
        }
    }
}

/// A column a kind of sheet knows, as the header matcher sees it.
pub trait Known {
    /// Its name, as the templates write it.
    fn name(&self) -> &str;
    /// Other spellings its header may have, normalised (see [`normalize`]).
    fn spellings(&self) -> &[&str];
    /// Whether a sheet of the kind must have it.
    fn required(&self) -> bool;
}

impl Known for Field {
    fn name(&self) -> &str {
        Field::name(*self)
    }
    fn spellings(&self) -> &[&str] {
        self.column().aliases
    }
    fn required(&self) -> bool {
        Field::required(*self)
    }
}

impl Known for Column {
    fn name(&self) -> &str {
        self.name
    }
    fn spellings(&self) -> &[&str] {
        self.aliases
    }
    fn required(&self) -> bool {
        self.required
    }
}

/// What one column of the sheet is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The known column of this index (for an order sheet: a [`Field`],
    /// as `Field as usize`).
    Known(usize),
    /// `meta.<key>`: sent as `metaValues.<key>`.
    Meta(String),
    /// Not a field: kept and echoed in the report.
    Unknown,
}

/// `"Branch Code"` → `"branchcode"`.
pub fn normalize(header: &str) -> String {
    header
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '.' | '\u{a0}'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The role a header gives its column among the `known` columns.
pub fn role_among<K: Known>(header: &str, known: &[K]) -> Role {
    let h = header.trim();
    let lower = h.to_lowercase();
    if let Some(key) = lower
        .strip_prefix("meta.")
        .or_else(|| lower.strip_prefix("meta:"))
    {
        let key = h[h.len() - key.len()..].trim();
        if !key.is_empty() {
            return Role::Meta(key.to_string());
        }
    }
    let n = normalize(h);
    known
        .iter()
        .position(|k| normalize(k.name()) == n || k.spellings().contains(&n.as_str()))
        .map_or(Role::Unknown, Role::Known)
}

/// The role a header gives its column of an order sheet.
pub fn role_of(header: &str) -> Role {
    role_among(header, &Field::ALL)
}

/// The columns of a sheet: the header row, every header as written, and
/// where each known column is.
#[derive(Debug, Clone)]
pub struct Columns {
    /// The row the headers are on.
    pub header_row: u64,
    /// Every header as written (an empty header becomes `column F`).
    pub headers: Vec<String>,
    pub roles: Vec<Role>,
    /// For each known column: where it is in the sheet.
    index: Vec<Option<usize>>,
}

impl Columns {
    /// The column index of an order sheet's field, if the sheet has it.
    pub fn get(&self, field: Field) -> Option<usize> {
        self.known(field as usize)
    }

    /// The column index of the known column `i`, if the sheet has it.
    pub fn known(&self, i: usize) -> Option<usize> {
        self.index.get(i).copied().flatten()
    }

    /// `(key, column)` of every `meta.<key>` column.
    pub fn meta(&self) -> impl Iterator<Item = (&str, usize)> {
        self.roles.iter().enumerate().filter_map(|(i, r)| match r {
            Role::Meta(k) => Some((k.as_str(), i)),
            _ => None,
        })
    }

    pub fn len(&self) -> usize {
        self.headers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Builds the columns of an order sheet from a header row's cell texts.
    pub fn from_headers(
        path: &Path,
        sheet: &Sheet,
        header_row: u64,
        cells: &[String],
    ) -> Result<Columns> {
        Columns::matched(path, sheet, header_row, cells, &Field::ALL)
    }

    /// Builds the columns from a header row's cell texts, matched against
    /// the `known` columns; refuses a column twice, or a required one
    /// missing.
    pub fn matched<K: Known>(
        path: &Path,
        sheet: &Sheet,
        header_row: u64,
        cells: &[String],
        known: &[K],
    ) -> Result<Columns> {
        let width = header_width(path, sheet, header_row, cells)?;
        let mut headers: Vec<String> = Vec::with_capacity(width);
        let mut roles = Vec::with_capacity(width);
        let mut index = vec![None; known.len()];
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, raw) in cells[..width].iter().enumerate() {
            let h = raw.trim();
            let letter = sheet.column_letter(i);
            let header = if h.is_empty() {
                format!("column {letter}")
            } else {
                h.to_string()
            };
            let role = if h.is_empty() {
                Role::Unknown
            } else {
                role_among(h, known)
            };
            let ident = match &role {
                Role::Known(k) => known[*k].name().to_string(),
                Role::Meta(k) => format!("meta.{k}"),
                Role::Unknown => normalize(&header),
            };
            if let Some(&j) = seen.get(&ident) {
                return Err(Error::input(
                    path,
                    format!(
                        "{}!{}{header_row}: duplicate column: `{}` (column {}) and `{}` (column {letter}) \
                         are both `{ident}`; delete or rename one",
                        sheet.name(),
                        letter,
                        crate::quote::value(headers[j].as_str()),
                        sheet.column_letter(j),
                        crate::quote::value(&header),
                    ),
                ));
            }
            seen.insert(ident, i);
            if let Role::Known(k) = role {
                index[k] = Some(i);
            }
            headers.push(header);
            roles.push(role);
        }
        let columns = Columns {
            header_row,
            headers,
            roles,
            index,
        };
        columns.require(path, sheet, known)?;
        Ok(columns)
    }

    /// Refuses a header without every required column.
    fn require<K: Known>(&self, path: &Path, sheet: &Sheet, known: &[K]) -> Result<()> {
        let missing: Vec<&str> = known
            .iter()
            .zip(&self.index)
            .filter(|(k, at)| k.required() && at.is_none())
            .map(|(k, _)| k.name())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::input(
            path,
            format!(
                "sheet `{}`, header row {}: missing required column{} {}; the headers found are: {}",
                sheet.name(),
                self.header_row,
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", "),
                shorten_list(&self.headers)
            ),
        ))
    }
}

/// The header's width: up to its last non-blank cell. No spreadsheet has
/// more than [`crate::read::MAX_COLUMNS`] columns; a report of them could
/// not be opened (a damaged file made one of 475,260).
fn header_width(path: &Path, sheet: &Sheet, header_row: u64, cells: &[String]) -> Result<usize> {
    let width = cells
        .iter()
        .rposition(|c| !c.trim().is_empty())
        .map_or(0, |i| i + 1);
    let max = crate::read::MAX_COLUMNS as usize;
    if width > max {
        return Err(Error::input(
            path,
            format!(
                "sheet `{}`, header row {header_row}: {width} columns, more than a spreadsheet's {max}; the file is damaged, or not an order sheet",
                sheet.name()
            ),
        ));
    }
    Ok(width)
}

impl Columns {
    /// Columns from header names, for tests of the later stages.
    #[cfg(test)]
    pub fn for_test(names: &[&str]) -> Columns {
        let roles: Vec<Role> = names.iter().map(|n| role_of(n)).collect();
        let mut index = vec![None; Field::ALL.len()];
        for (i, r) in roles.iter().enumerate() {
            if let Role::Known(k) = r {
                index[*k] = Some(i);
            }
        }
        Columns {
            header_row: 1,
            headers: names.iter().map(|n| n.to_string()).collect(),
            roles,
            index,
        }
    }
}

fn shorten_list(items: &[String]) -> String {
    const MAX: usize = 30;
    let mut s = items
        .iter()
        .take(MAX)
        .map(|h| crate::quote::value(h))
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > MAX {
        s.push_str(&format!(", … ({} more)", items.len() - MAX));
    }
    if s.is_empty() { "(none)".into() } else { s }
}

/// How far down title rows may push the header.
pub const HEADER_SEARCH_ROWS: usize = 50;

/// How many known columns a header row names at least: three, or all the
/// required ones of a kind that has fewer.
fn enough<K: Known>(known: &[K]) -> usize {
    known.iter().filter(|k| k.required()).count().clamp(1, 3)
}

/// How many of a row's cells name one of the `known` columns (a column
/// named twice counts twice: the matcher then says it is doubled).
fn known_headers<K: Known>(row: &Row<'_>, known: &[K]) -> usize {
    (0..row.width())
        .filter(|&i| matches!(role_among(&row.cell(i).text, known), Role::Known(_)))
        .count()
}

/// Finds the header row among a sheet's first rows: the first row naming
/// enough of the `known` columns (see [`enough`]). Returns its number and
/// its cell texts.
pub fn locate_header<K: Known>(rows: &[Row<'_>], known: &[K]) -> Option<(u64, Vec<String>)> {
    let enough = enough(known);
    rows.iter()
        .find(|r| known_headers(r, known) >= enough)
        .map(|r| {
            let cells = (0..r.width())
                .map(|i| r.cell(i).text.into_owned())
                .collect();
            (r.number(), cells)
        })
}

/// The header row of a sheet among its first rows, and its cells.
pub fn header_of<K: Known>(sheet: &Sheet, known: &[K]) -> Option<(u64, Vec<String>)> {
    let mut found = None;
    sheet.head(HEADER_SEARCH_ROWS, &mut |rows| {
        found = locate_header(rows, known);
    });
    found
}

/// The error for a sheet without a header row: what it wants, and what
/// the first row says instead.
pub fn no_header<K: Known>(path: &Path, sheet: &Sheet, known: &[K]) -> Error {
    let mut first_row: Vec<String> = Vec::new();
    sheet.head(HEADER_SEARCH_ROWS, &mut |rows| {
        if let Some(r) = rows.iter().find(|r| !r.is_blank()) {
            first_row = (0..r.width().min(30))
                .map(|i| crate::quote::value(&r.cell(i).text).into_owned())
                .collect();
        }
    });
    if first_row.is_empty() {
        // No row read: a first line that cannot be read says why.
        if let Err(e) = sheet.scan(0, 0, &mut |_| Ok(())) {
            return e;
        }
        return Error::input(path, format!("sheet `{}` is empty", sheet.name()));
    }
    let want: Vec<&str> = known
        .iter()
        .filter(|k| k.required())
        .map(|k| k.name())
        .collect();
    let least = ["one", "two", "three"][enough(known) - 1];
    Error::input(
        path,
        format!(
            "sheet `{}`: no header row among the first {HEADER_SEARCH_ROWS} rows (a header names at least {least} of: {}); \
             the first row reads: {}",
            sheet.name(),
            want.join(", "),
            first_row.join(" | ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A field is the schema's row at its position: reordering one
    /// without the other would give every field another column's name.
    #[test]
    fn every_field_is_its_row_of_the_order_schema() {
        for f in Field::ALL {
            let mut snake = String::new();
            for c in format!("{f:?}").chars() {
                if c.is_ascii_uppercase() && !snake.is_empty() {
                    snake.push('_');
                }
                snake.push(c.to_ascii_lowercase());
            }
            assert_eq!(f.name(), snake);
            assert_eq!(Field::from_name(&snake), Some(f));
        }
        // The rest of the schema are examples of free columns.
        assert!(
            ORDER[Field::ALL.len()..]
                .iter()
                .all(|c| c.name.starts_with("meta."))
        );
        assert!(Field::Bin.is_id() && !Field::OrderRef.is_id() && Field::OrderRef.column().id);
    }

    #[test]
    fn headers_match_aliases() {
        let cases = [
            ("Branch Code", Role::Known(Field::BranchId as usize)),
            ("branch_id", Role::Known(Field::BranchId as usize)),
            ("BRANCH-ID", Role::Known(Field::BranchId as usize)),
            ("Qty", Role::Known(Field::Quantity as usize)),
            ("BIN Number", Role::Known(Field::Bin as usize)),
            ("PIN Code", Role::Known(Field::PinCode as usize)),
            ("Card Type", Role::Known(Field::CardType as usize)),
            ("PIN Generation", Role::Known(Field::PinGeneration as usize)),
            (
                "Process Start Time",
                Role::Known(Field::ProcessStartTime as usize),
            ),
            ("Validity (days)", Role::Unknown),
            ("meta.campaign", Role::Meta("campaign".into())),
            ("Meta.Region Code", Role::Meta("Region Code".into())),
            ("Remarks", Role::Unknown),
        ];
        for (h, want) in cases {
            assert_eq!(role_of(h), want, "{h}");
        }
    }

    #[test]
    fn every_field_name_maps_to_itself() {
        for f in Field::ALL {
            assert_eq!(role_of(f.name()), Role::Known(f as usize));
            assert_eq!(Field::from_name(f.name()), Some(f));
        }
    }
}
