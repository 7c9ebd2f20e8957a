//! Validate: checks one row against the rules and says everything that is
//! wrong with it, each problem with its cell and a message a branch clerk
//! can act on. It also derives what grouping needs from the row: the order
//! key, and fingerprints of its order-level and product fields.
//!
//! Cross-row rules (duplicate product lines, rows that disagree with their
//! order) need the whole sheet and live in `group`.

use std::borrow::Cow;
use std::collections::HashMap;

mod value;
mod width;

use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use crate::columns::{Columns, Field};
use crate::quote;
use crate::read::{CellKind, Row};
use crate::rules::Rules;
use value::{chars_beyond, is_digits, zeros_hint};
pub use value::{check_timestamp, whole_number};
pub use width::WidthCensus;

/// Excel's own limit on the characters of one cell.
pub const MAX_CELL_CHARS: usize = 32_767;
/// The card printers' limit on the delivery address.
pub const MAX_ADDRESS_CHARS: usize = 175;
pub const MAX_BRANCH_NAME_CHARS: usize = 100;
pub const MAX_ORDER_REF_CHARS: usize = 64;
pub const MAX_VALIDITY_DAYS: u32 = 3650;
/// The `order_ref` of the order template's example row: a row with it is
/// refused, so an example left in a sheet is never sent.
pub use crate::schema::EXAMPLE_ORDER_REF;

/// One thing wrong with a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The column it is in; `None` for the row as a whole.
    pub col: Option<usize>,
    /// The field (`quantity`), or `row`.
    pub field: Cow<'static, str>,
    pub message: String,
}

impl Problem {
    pub fn new(
        col: Option<usize>,
        field: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            col,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Which order a row belongs to: a digest of its `order_ref`, or of its
/// order key fields.
pub type OrderKey = [u8; 16];

/// What checking one row found.
#[derive(Debug, Clone)]
pub struct RowCheck {
    pub number: u64,
    pub problems: Vec<Problem>,
    /// Warnings: what the row leaves in doubt without being wrong (an id
    /// Excel stored as a number, a code in another case). The row stays
    /// valid; under `--strict` each is a problem instead.
    pub warnings: Vec<Problem>,
    pub key: OrderKey,
    /// The `order_ref`, when the row has one: it is the order id.
    pub order_ref: Option<Box<str>>,
    /// Fingerprint of the order-level fields: the rows of one order must agree.
    pub order_fields: u64,
    /// Fingerprint of the product line: no two rows of an order may share it.
    pub product: u64,
}

/// The fields that make up the order key when there is no `order_ref`.
pub const KEY_FIELDS: [Field; 6] = [
    Field::BranchId,
    Field::DeliveryAddress,
    Field::PinCode,
    Field::ProcessStartTime,
    Field::ValidityDays,
    Field::OrderedBy,
];

/// Order-level fields: every row of one order must have the same values.
pub const ORDER_FIELDS: [Field; 8] = [
    Field::BranchId,
    Field::BranchName,
    Field::DeliveryAddress,
    Field::PinCode,
    Field::ProcessStartTime,
    Field::ValidityDays,
    Field::OrderedBy,
    Field::OrderingPartyType,
];

/// The fields that identify a product line within an order.
pub const PRODUCT_FIELDS: [Field; 5] = [
    Field::ProductId,
    Field::Bin,
    Field::PlasticCode,
    Field::CardType,
    Field::PanLength,
];

/// One value to check, and where it came from.
#[derive(Clone, Copy)]
struct Cell<'v> {
    col: usize,
    kind: CellKind,
    text: &'v str,
    /// Known to be printable ASCII (the whole row is).
    printable: bool,
}

/// Checks rows against the rules for one sheet's columns.
pub struct Checker<'a> {
    columns: &'a Columns,
    rules: &'a Rules,
    /// The width most values of an id column have (workbooks only), to spot
    /// ids that Excel shortened by storing them as numbers.
    typical_width: HashMap<Field, usize>,
}

impl<'a> Checker<'a> {
    pub fn new(
        columns: &'a Columns,
        rules: &'a Rules,
        typical_width: HashMap<Field, usize>,
    ) -> Self {
        Checker {
            columns,
            rules,
            typical_width,
        }
    }

    /// A field's value as it will be sent: trimmed, an Excel number padded
    /// to the rules file's width. Empty when the sheet has no such column.
    pub fn value<'r>(&self, row: &Row<'r>, field: Field) -> Cow<'r, str> {
        self.value_and_kind(row, field).0
    }

    #[inline]
    fn value_and_kind<'r>(&self, row: &Row<'r>, field: Field) -> (Cow<'r, str>, CellKind) {
        let Some(c) = self.columns.get(field) else {
            return (Cow::Borrowed(""), CellKind::Empty);
        };
        let cell = row.cell(c);
        if field.is_id()
            && cell.kind == CellKind::Number
            && let Some(&w) = self.rules.id_widths.get(&field)
            && cell.text.len() < w
            && cell.text.bytes().all(|b| b.is_ascii_digit())
        {
            return (Cow::Owned(format!("{:0>w$}", cell.text)), cell.kind);
        }
        // Codes the API spells in capitals are read in any case.
        if matches!(field, Field::CardType | Field::OrderingPartyType)
            && cell.text.bytes().any(|b| b.is_ascii_lowercase())
        {
            return (Cow::Owned(cell.text.to_ascii_uppercase()), cell.kind);
        }
        (cell.text, cell.kind)
    }

    /// `pin_generation` as sent: `Y` or `N`.
    pub fn pin_generation(text: &str) -> Option<&'static str> {
        let is = |words: [&str; 4]| words.iter().any(|w| text.eq_ignore_ascii_case(w));
        if is(["y", "yes", "true", "1"]) {
            Some("Y")
        } else if is(["n", "no", "false", "0"]) {
            Some("N")
        } else {
            None
        }
    }

    /// Checks one row; `None` for a blank one, which is not a data row.
    pub fn check_unless_blank(&self, row: &Row<'_>) -> Option<RowCheck> {
        let width = row.width();
        (width > 0).then(|| self.check_width(row, width))
    }

    /// Checks one (non-blank) row.
    pub fn check(&self, row: &Row<'_>) -> RowCheck {
        self.check_width(row, row.width())
    }

    /// [`check`](Self::check), the row's [`Row::width`] known.
    fn check_width(&self, row: &Row<'_>, width: usize) -> RowCheck {
        let mut problems = self.shape_problems(row, width);
        let mut warnings = Vec::new();
        let vals: [(Cow<'_, str>, CellKind); Field::ALL.len()] =
            std::array::from_fn(|i| self.value_and_kind(row, Field::ALL[i]));
        let val = |f: Field| vals[f as usize].0.as_ref();
        // Most rows are printable ASCII throughout: one look at all their
        // bytes spares a look at each value's.
        let printable = row.is_printable_ascii();
        for field in Field::ALL {
            if let Some(c) = self.columns.get(field) {
                let (v, kind) = &vals[field as usize];
                let cell = Cell {
                    col: c,
                    kind: *kind,
                    text: v,
                    printable,
                };
                self.check_field(
                    field,
                    cell,
                    val(Field::ProductId),
                    &mut problems,
                    &mut warnings,
                );
            }
        }
        for field in [Field::CardType, Field::OrderingPartyType] {
            if let Some(c) = self.columns.get(field)
                && let Cow::Owned(upper) = &vals[field as usize].0
            {
                warnings.push(Problem::new(
                    Some(c),
                    field.name(),
                    format!(
                        "`{}` read as {upper}, the API's spelling",
                        quote::value(&row.cell(c).text)
                    ),
                ));
            }
        }
        if self.rules.strict && !warnings.is_empty() {
            problems.extend(warnings.drain(..).map(|mut w| {
                w.message.push_str(" (a warning, refused by --strict)");
                w
            }));
        }
        let (order_ref, key, order_fields, product) = self.identity(row, &val);
        RowCheck {
            number: row.number(),
            problems,
            warnings,
            key,
            order_ref,
            order_fields,
            product,
        }
    }

    /// Problems of the row's shape: cells missing or beyond the header,
    /// a cell longer than a spreadsheet holds.
    fn shape_problems(&self, row: &Row<'_>, width: usize) -> Vec<Problem> {
        let mut problems = Vec::new();
        let ncols = self.columns.len();
        if let Some(n) = row.field_count()
            && n < ncols
            && width <= n
        {
            problems.push(Problem::new(
                    None,
                    "row",
                    format!("has {n} cells but the header has {ncols}: a delimiter is missing or the row is cut short"),
                ));
        }
        if width > ncols {
            problems.push(Problem::new(
                Some(ncols),
                "row",
                format!(
                    "has a value in column {}, which has no header: a delimiter too many, or a column without a name",
                    crate::read::column_letter(width - 1)
                ),
            ));
        }
        let cols = if row.may_hold_more_than(MAX_CELL_CHARS) {
            0..width.min(ncols)
        } else {
            0..0
        };
        for c in cols.filter(|&c| row.may_exceed(c, MAX_CELL_CHARS)) {
            let cell = row.cell(c);
            if cell.text.len() > MAX_CELL_CHARS {
                let n = cell.text.chars().count();
                if n > MAX_CELL_CHARS {
                    problems.push(Problem::new(
                        Some(c),
                        self.columns.headers[c].clone(),
                        format!("holds {n} characters; a cell holds at most {MAX_CELL_CHARS}"),
                    ));
                }
            }
        }
        problems
    }

    /// What tells the row's order and product apart: its `order_ref`,
    /// the order's key, and the hashes of its order-level and product
    /// values.
    fn identity<'v>(
        &self,
        row: &Row<'_>,
        val: &impl Fn(Field) -> &'v str,
    ) -> (Option<Box<str>>, [u8; 16], u64, u64) {
        let order_ref = Some(val(Field::OrderRef))
            .filter(|t| !t.is_empty())
            .map(Box::<str>::from);
        let (key, order_fields, product) = SCRATCH.with_borrow_mut(|buf| {
            let key = match &order_ref {
                Some(r) => fingerprint128(buf, ["order_ref", r.as_ref()]),
                // The values as checked and sent: `030` days is `30`.
                None => {
                    let days = val(Field::ValidityDays);
                    let days: Cow<'_, str> = match whole_number(days) {
                        Some(d) if days.len() > 1 && days.starts_with('0') => {
                            Cow::Owned(d.to_string())
                        }
                        _ => Cow::Borrowed(days),
                    };
                    fingerprint128(
                        buf,
                        KEY_FIELDS.map(|f| match f {
                            Field::ValidityDays => days.as_ref(),
                            _ => val(f),
                        }),
                    )
                }
            };
            // The order-level values, then the product's, hashed apart. Rows
            // grouped by the order key share its fields: only the others
            // can disagree.
            buf.clear();
            for f in ORDER_FIELDS {
                if order_ref.is_some() || !KEY_FIELDS.contains(&f) {
                    feed(buf, val(f));
                }
            }
            for (_, c) in self.columns.meta() {
                feed(buf, &row.cell(c).text);
            }
            let split = buf.len();
            for f in PRODUCT_FIELDS {
                feed(buf, val(f));
            }
            (key, xxh3_64(&buf[..split]), xxh3_64(&buf[split..]))
        });
        (order_ref, key, order_fields, product)
    }

    fn check_field(
        &self,
        field: Field,
        cell: Cell<'_>,
        product_id: &str,
        out: &mut Vec<Problem>,
        warnings: &mut Vec<Problem>,
    ) {
        let Cell {
            col,
            kind,
            text: v,
            printable,
        } = cell;
        let mut bad = |message: String| out.push(Problem::new(Some(col), field.name(), message));
        match self.cell_problem(field, col, kind, v, printable, warnings) {
            CellCheck::Refused(m) => return bad(m),
            CellCheck::Done => return,
            CellCheck::Value => {}
        }
        let problem = match field {
            Field::BranchId
            | Field::ProductId
            | Field::Bin
            | Field::PlasticCode
            | Field::PinCode => self.id_problem(field, v, product_id),
            Field::CardType
            | Field::PanLength
            | Field::PinGeneration
            | Field::OrderingPartyType => self.code_problem(field, v),
            Field::Quantity | Field::ValidityDays => self.number_problem(field, v),
            _ => self.text_problem(field, v),
        };
        if let Some(m) = problem {
            bad(m);
        }
        for (f, re) in &self.rules.patterns {
            if *f == field && !re.is_match(v) {
                out.push(Problem::new(
                    Some(col),
                    field.name(),
                    format!(
                        "`{}` does not match the rules file's pattern for {}",
                        quote::value(v),
                        field.name()
                    ),
                ));
            }
        }
    }

    #[expect(
        clippy::collapsible_match,
        reason = "each field's check reads as one arm, as the manual lists them"
    )]
    /// The problem of a value of the digits of an id, and the rules file's catalog.
    fn id_problem(&self, field: Field, v: &str, product_id: &str) -> Option<String> {
        match field {
            Field::BranchId => {
                if !is_digits(v) {
                    return Some(format!("must be digits only, got `{}`", quote::value(v)));
                }
            }
            Field::ProductId => {
                if let Some(cat) = &self.rules.catalog
                    && !cat.contains_key(v)
                {
                    return Some(format!(
                        "`{}` is not a product of the rules file's catalog{}",
                        quote::value(v),
                        zeros_hint(field, v, cat.keys())
                    ));
                }
            }
            Field::Bin => {
                if !(is_digits(v) && (v.len() == 6 || v.len() == 8)) {
                    return Some(format!("must be 6 or 8 digits, got `{}`", quote::value(v)));
                } else if let Some(entry) = self.catalog_entry(product_id)
                    && !entry.bins.is_empty()
                    && !entry.bins.contains(v)
                {
                    return Some(format!(
                        "`{}` is not a BIN of product {product_id} in the rules file's catalog{}",
                        quote::value(v),
                        zeros_hint(field, v, entry.bins.iter())
                    ));
                }
            }
            Field::PlasticCode => {
                if let Some(entry) = self.catalog_entry(product_id)
                    && !entry.plastic_codes.is_empty()
                    && !entry.plastic_codes.contains(v)
                {
                    return Some(format!(
                        "`{}` is not a plastic code of product {product_id} in the rules file's catalog{}",
                        quote::value(v),
                        zeros_hint(field, v, entry.plastic_codes.iter())
                    ));
                }
            }
            Field::PinCode => {
                if !(is_digits(v) && v.len() == 6) {
                    return Some(format!("must be 6 digits, got `{}`", quote::value(v)));
                }
            }
            _ => {}
        }
        None
    }

    #[expect(
        clippy::collapsible_match,
        reason = "each field's check reads as one arm, as the manual lists them"
    )]
    /// The problem of a value of a code from a fixed list.
    fn code_problem(&self, field: Field, v: &str) -> Option<String> {
        match field {
            Field::CardType => {
                if v != "PHYSICAL" && v != "VIRTUAL" {
                    return Some(format!(
                        "must be PHYSICAL or VIRTUAL, got `{}`",
                        quote::value(v)
                    ));
                }
            }
            Field::PanLength => {
                if v != "16" && v != "19" {
                    return Some(format!("must be 16 or 19, got `{}`", quote::value(v)));
                }
            }
            Field::PinGeneration => {
                if Self::pin_generation(v).is_none() {
                    return Some(format!(
                        "must be Y or N (yes/no, true/false also work), got `{}`",
                        quote::value(v)
                    ));
                }
            }
            Field::OrderingPartyType => {
                if !v.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                    return Some(format!(
                        "must be a code in capitals such as BANK, got `{}`",
                        quote::value(v)
                    ));
                }
            }
            _ => {}
        }
        None
    }

    /// The problem of a value of a whole number in its range.
    fn number_problem(&self, field: Field, v: &str) -> Option<String> {
        match field {
            Field::Quantity => match whole_number(v) {
                None => return Some(format!("must be a whole number, got `{}`", quote::value(v))),
                Some(q) if q < 1 || q > u64::from(self.rules.quantity_max) => {
                    return Some(format!(
                        "must be between 1 and {}, got {q}",
                        self.rules.quantity_max
                    ));
                }
                Some(_) => {}
            },
            Field::ValidityDays => match whole_number(v) {
                None => {
                    return Some(format!(
                        "must be a whole number of days, got `{}`",
                        quote::value(v)
                    ));
                }
                Some(d) if d < 1 || d > u64::from(MAX_VALIDITY_DAYS) => {
                    return Some(format!(
                        "must be between 1 and {MAX_VALIDITY_DAYS} days, got {d}"
                    ));
                }
                Some(_) => {}
            },
            _ => {}
        }
        None
    }

    /// The problem of a value of free text within its limits, and the start time.
    fn text_problem(&self, field: Field, v: &str) -> Option<String> {
        match field {
            Field::OrderRef => {
                if v.trim().eq_ignore_ascii_case(EXAMPLE_ORDER_REF) {
                    return Some(
                        "this is the template's example row, not an order: delete the row".into(),
                    );
                } else if v.chars().count() > MAX_ORDER_REF_CHARS {
                    return Some(format!("is longer than {MAX_ORDER_REF_CHARS} characters"));
                }
            }
            Field::BranchName => {
                let n = chars_beyond(v, MAX_BRANCH_NAME_CHARS);
                if n > MAX_BRANCH_NAME_CHARS {
                    return Some(format!(
                        "is {n} characters long; at most {MAX_BRANCH_NAME_CHARS}"
                    ));
                }
            }
            Field::DeliveryAddress => {
                let n = chars_beyond(v, MAX_ADDRESS_CHARS);
                let (mut parts, mut first_empty, mut start) = (0, None, 0);
                // `~` is ASCII, never inside a character: the parts are cut
                // where memchr finds it, which for an address of some fifty
                // bytes costs half of what `str::split`'s searcher does
                // (about 330 instructions a row fewer).
                for end in memchr::memchr_iter(b'~', v.as_bytes()).chain([v.len()]) {
                    if first_empty.is_none() && crate::read::trim(&v[start..end]).is_empty() {
                        first_empty = Some(parts);
                    }
                    parts += 1;
                    start = end + 1;
                }
                if n > MAX_ADDRESS_CHARS {
                    return Some(format!(
                        "is {n} characters long; the card printers take at most {MAX_ADDRESS_CHARS}"
                    ));
                } else if let Some(i) = first_empty {
                    if parts < 3 {
                        return Some(format!(
                            "needs at least 3 parts separated by `~` (house~area~city), got `{}`",
                            quote::value(v)
                        ));
                    } else {
                        return Some(format!(
                            "part {} is empty (two `~` in a row, or a `~` at an end)",
                            i + 1
                        ));
                    }
                } else if parts < 3 {
                    return Some(format!(
                        "needs at least 3 parts separated by `~` (house~area~city), got {parts} part{}",
                        if parts == 1 { "" } else { "s" }
                    ));
                }
            }
            Field::ProcessStartTime => {
                if let Err(m) = check_timestamp(v) {
                    return Some(m);
                }
            }
            Field::OrderedBy => {}
            _ => {}
        }
        None
    }

    /// What the cell itself says before its value is read: a formula
    /// error, nothing in it, a control character, an id that lost its
    /// leading zeros (a warning goes to `warnings` when it may have).
    fn cell_problem(
        &self,
        field: Field,
        col: usize,
        kind: CellKind,
        v: &str,
        printable: bool,
        warnings: &mut Vec<Problem>,
    ) -> CellCheck {
        if kind == CellKind::Error {
            return CellCheck::Refused(format!(
                "the cell shows the formula error {v}; fix the formula or type the value"
            ));
        }
        if v.is_empty() {
            if field.required() {
                return CellCheck::Refused("missing".into());
            }
            return CellCheck::Done;
        }
        if v.len() > MAX_CELL_CHARS {
            return CellCheck::Done; // reported once for the cell, above
        }
        let printable = printable || crate::read::is_printable_ascii(v);
        if let Some(ch) = (!printable)
            .then(|| v.chars().find(|c| c.is_control()))
            .flatten()
        {
            return CellCheck::Refused(format!(
                "contains a control character (U+{:04X}); retype the value",
                ch as u32
            ));
        }
        if field.is_id()
            && kind == CellKind::Number
            && !self.rules.id_widths.contains_key(&field)
            && let Some(&w) = self.typical_width.get(&field)
            && v.len() < w
            && !field.id_lengths().contains(&v.len())
        {
            return CellCheck::Refused(format!(
                "`{}` is shorter than the {w} characters most {} values have: Excel stored it as a \
                         number and dropped its leading zeros; format the column as Text and type it again \
                         (or set id_widths.{} in the rules file)",
                quote::value(v),
                field.name(),
                field.name()
            ));
        }
        if field.is_id() && kind == CellKind::Number && !self.rules.id_widths.contains_key(&field) {
            warnings.push(Problem::new(
                Some(col),
                field.name(),
                format!(
                    "`{}` is a number in the spreadsheet, and Excel drops an id's leading zeros \
                     (0001 becomes 1): check it is the whole id; format the column as Text and \
                     type it again, or set id_widths.{} in the rules file",
                    quote::value(v),
                    field.name()
                ),
            ));
        }
        CellCheck::Value
    }

    fn catalog_entry(&self, product_id: &str) -> Option<&crate::rules::CatalogEntry> {
        self.rules.catalog.as_ref()?.get(product_id)
    }
}

/// What a cell's own look decides.
enum CellCheck {
    /// Refused, with this message.
    Refused(String),
    /// Nothing more to check (empty and optional, or too long: said once).
    Done,
    /// Its value is to be checked.
    Value,
}

thread_local! {
    /// Where a row's fields are joined before hashing, reused row after row.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn feed(buf: &mut Vec<u8>, v: &str) {
    buf.extend_from_slice(v.as_bytes());
    buf.push(0x1f);
}

/// A 128-bit XXH3 of the parts, each followed by 0x1F: a fixed, documented
/// function, so order ids derived from it stay the same across versions.
fn fingerprint128<S: AsRef<str>>(
    buf: &mut Vec<u8>,
    parts: impl IntoIterator<Item = S>,
) -> OrderKey {
    buf.clear();
    for p in parts {
        feed(buf, p.as_ref());
    }
    xxh3_128(buf).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: [&str; 14] = [
        "branch_id",
        "branch_name",
        "product_id",
        "bin",
        "card_type",
        "quantity",
        "plastic_code",
        "pan_length",
        "pin_generation",
        "delivery_address",
        "pin_code",
        "process_start_time",
        "validity_days",
        "ordered_by",
    ];
    const GOOD: [&str; 14] = [
        "00123",
        "Pune Camp",
        "01",
        "412345",
        "PHYSICAL",
        "10",
        "0001",
        "16",
        "Y",
        "Flat 1~Camp~Pune",
        "411001",
        "2026-12-01 09:00:00",
        "365",
        "Priya",
    ];

    /// A census of rows counted in parts and merged is the census of all.
    #[test]
    fn width_census_merges_its_parts() {
        use calamine::Data;
        let columns = Columns::for_test(&HEADER);
        let sheet_row = |branch: Data, bin: Data| {
            let mut cells: Vec<Data> = GOOD.iter().map(|v| Data::String(v.to_string())).collect();
            cells[0] = branch;
            cells[3] = bin;
            cells
        };
        let rows = [
            sheet_row(Data::String("00123".into()), Data::Float(412345.0)),
            sheet_row(Data::String("00124".into()), Data::Float(41234.0)),
            sheet_row(Data::Float(123.0), Data::Float(4123456.0)),
            sheet_row(Data::String("0012".into()), Data::Empty),
            sheet_row(Data::String("0013".into()), Data::Float(412345.0)),
            sheet_row(Data::String("00125".into()), Data::Float(9.0)),
        ];
        let census = |rows: &[Vec<Data>]| {
            let mut c = WidthCensus::default();
            for (i, cells) in rows.iter().enumerate() {
                c.add(
                    &columns,
                    &Row::Sheet {
                        number: i as u64 + 2,
                        cells,
                    },
                );
            }
            c
        };
        let whole = census(&rows).typical();
        assert_eq!(whole.get(&Field::BranchId), Some(&5));
        assert_eq!(whole.get(&Field::Bin), Some(&7));
        for cut in 0..=rows.len() {
            let merged = census(&rows[..cut]).merge(census(&rows[cut..]));
            assert_eq!(merged.typical(), whole, "cut at {cut}");
        }
    }

    /// `030` days is `30` in the order key (the value sent); what is not a
    /// number is kept as it is.
    #[test]
    fn validity_days_key_as_the_number_sent() {
        let key = |days: &str| {
            let columns = Columns::for_test(&HEADER);
            let mut cells = GOOD;
            cells[HEADER.iter().position(|h| *h == "validity_days").unwrap()] = days;
            let record = csv::StringRecord::from(cells.to_vec());
            let row = Row::Text {
                number: 7,
                record: &record,
                raw: None,
            };
            Checker::new(&columns, &Rules::default(), HashMap::new())
                .check(&row)
                .key
        };
        assert_eq!(key("030"), key("30"));
        assert_eq!(key("00"), key("0"));
        assert_ne!(key("30"), key("300"));
        assert_ne!(key("3O"), key("30"));
        assert_ne!(key("x"), key(""));
    }

    fn problems_with(rules: &Rules, field: &str, value: &str) -> Vec<Problem> {
        let columns = Columns::for_test(&HEADER);
        let mut cells = GOOD;
        let i = HEADER.iter().position(|h| *h == field).expect("field");
        cells[i] = value;
        let record = csv::StringRecord::from(cells.to_vec());
        let row = Row::Text {
            number: 7,
            record: &record,
            raw: None,
        };
        Checker::new(&columns, rules, HashMap::new())
            .check(&row)
            .problems
    }

    /// The order template's lists and number ranges say exactly what the
    /// rules accept: every listed value passes, and a closed list's or a
    /// range's outside fails.
    #[test]
    fn the_templates_lists_agree_with_the_rules() {
        let rules = Rules::default();
        let mut checked = 0;
        for c in crate::template::Kind::Order.columns() {
            if !HEADER.contains(&c.name) {
                continue;
            }
            let ok = |v: &str| problems_with(&rules, c.name, v).is_empty();
            for choice in c.choices {
                assert!(ok(choice), "{}: listed `{choice}` is refused", c.name);
                checked += 1;
            }
            if !c.choices.is_empty() && !c.open {
                for outside in ["X", "17", "maybe", "BANK2"] {
                    assert!(
                        !ok(outside),
                        "{}: `{outside}` is not listed but passes",
                        c.name
                    );
                }
            }
            if let Some((min, max)) = c.whole {
                assert!(ok(&min.to_string()) && ok(&max.to_string()), "{}", c.name);
                assert!(!ok(&(min - 1).to_string()), "{}: below {min}", c.name);
                assert!(!ok(&(max + 1).to_string()), "{}: above {max}", c.name);
                checked += 1;
            }
        }
        assert!(checked >= 14, "{checked} lists and ranges");
        // pin_generation's list is every value the rule reads.
        for v in crate::template::PIN_GENERATION {
            assert!(Checker::pin_generation(v).is_some(), "{v}");
        }
    }

    /// A code in another case is taken in the API's capitals, with a
    /// warning saying so; in capitals, no warning.
    #[test]
    fn codes_in_another_case_are_read_in_capitals_with_a_warning() {
        let rules = Rules::default();
        let columns = Columns::for_test(&HEADER);
        let checker = Checker::new(&columns, &rules, HashMap::new());
        let check = |card: &str| {
            let mut cells = GOOD;
            let i = HEADER.iter().position(|h| *h == "card_type").unwrap();
            cells[i] = card;
            let record = csv::StringRecord::from(cells.to_vec());
            let row = Row::Text {
                number: 7,
                record: &record,
                raw: None,
            };
            let check = checker.check(&row);
            (
                check.problems,
                check.warnings,
                checker.value(&row, Field::CardType).into_owned(),
            )
        };
        let (problems, notes, sent) = check("Virtual");
        assert!(problems.is_empty());
        assert_eq!(sent, "VIRTUAL");
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].message.contains("`Virtual` read as VIRTUAL"),
            "{notes:?}"
        );
        let (problems, notes, sent) = check("PHYSICAL");
        assert!(problems.is_empty() && notes.is_empty());
        assert_eq!(sent, "PHYSICAL");
    }

    /// Every default rule: a value, and the message it must give (`None`: valid).
    #[test]
    fn default_rules() {
        let rules = Rules::default();
        let table: &[(&str, &str, Option<&str>)] = &[
            ("branch_id", "00123", None),
            ("branch_id", "", Some("missing")),
            (
                "branch_id",
                "12A45",
                Some("must be digits only, got `12A45`"),
            ),
            ("branch_name", "", Some("missing")),
            (
                "branch_name",
                &"x".repeat(101),
                Some("is 101 characters long; at most 100"),
            ),
            ("product_id", "", Some("missing")),
            ("bin", "41234567", None),
            ("bin", "4123", Some("must be 6 or 8 digits, got `4123`")),
            ("bin", "41A345", Some("must be 6 or 8 digits")),
            ("bin", "4123456", Some("must be 6 or 8 digits")),
            ("card_type", "VIRTUAL", None),
            // Another case is read in the API's capitals (a note, below).
            ("card_type", "physical", None),
            (
                "card_type",
                "PLASTIC",
                Some("must be PHYSICAL or VIRTUAL, got `PLASTIC`"),
            ),
            ("quantity", "500", None),
            ("quantity", "0", Some("must be between 1 and 500, got 0")),
            (
                "quantity",
                "501",
                Some("must be between 1 and 500, got 501"),
            ),
            ("quantity", "ten", Some("must be a whole number, got `ten`")),
            ("quantity", "3.5", Some("must be a whole number")),
            ("quantity", "-5", Some("must be a whole number")),
            ("quantity", "1,000", Some("must be a whole number")),
            ("plastic_code", "", Some("missing")),
            ("pan_length", "19", None),
            ("pan_length", "17", Some("must be 16 or 19, got `17`")),
            ("pin_generation", "yes", None),
            ("pin_generation", "FALSE", None),
            ("pin_generation", "maybe", Some("must be Y or N")),
            ("delivery_address", "a~b~c~d", None),
            (
                "delivery_address",
                "Flat 3 MG Road Pune",
                Some("needs at least 3 parts"),
            ),
            (
                "delivery_address",
                "a~b",
                Some("needs at least 3 parts separated by `~` (house~area~city), got 2 parts"),
            ),
            (
                "delivery_address",
                "Flat 3~~Pune~MH",
                Some("part 2 is empty"),
            ),
            ("delivery_address", "~Camp~Pune", Some("part 1 is empty")),
            ("delivery_address", "Flat 3~Camp~", Some("part 3 is empty")),
            (
                "delivery_address",
                "Flat 3~ \u{a0}~Pune",
                Some("part 2 is empty"),
            ),
            ("delivery_address", "Flat 3~Sh\u{e2}stri Nagar~Pune", None),
            (
                "delivery_address",
                &format!("{}~b~c", "x".repeat(180)),
                Some("the card printers take at most 175"),
            ),
            (
                "delivery_address",
                "Flat 1\nCamp~Pune~MH",
                Some("contains a control character (U+000A)"),
            ),
            ("pin_code", "40005", Some("must be 6 digits, got `40005`")),
            ("pin_code", "40A051", Some("must be 6 digits")),
            ("process_start_time", "2024-02-29 23:59:59", None),
            (
                "process_start_time",
                "2025-02-29 11:11:11",
                Some("`2025-02-29 11:11:11` is not a real date"),
            ),
            (
                "process_start_time",
                "2025-04-31 12:00:00",
                Some("is not a real date"),
            ),
            (
                "process_start_time",
                "2025-13-01 10:00:00",
                Some("is not a real date"),
            ),
            (
                "process_start_time",
                "2025-06-15 25:00:00",
                Some("is not a real time of day"),
            ),
            (
                "process_start_time",
                "2025-06-15 10:61:00",
                Some("is not a real time of day"),
            ),
            (
                "process_start_time",
                "15/06/2025 10:00:00",
                Some("must be a date and time written YYYY-MM-DD HH:mm:ss"),
            ),
            (
                "process_start_time",
                "2025-06-15T10:00:00",
                Some("YYYY-MM-DD HH:mm:ss"),
            ),
            (
                "process_start_time",
                "2025-06-15",
                Some("YYYY-MM-DD HH:mm:ss"),
            ),
            (
                "process_start_time",
                "2025-6-5 10:00:00",
                Some("YYYY-MM-DD HH:mm:ss"),
            ),
            ("validity_days", "3650", None),
            (
                "validity_days",
                "0",
                Some("must be between 1 and 3650 days, got 0"),
            ),
            (
                "validity_days",
                "3651",
                Some("must be between 1 and 3650 days"),
            ),
            (
                "validity_days",
                "a year",
                Some("must be a whole number of days"),
            ),
            ("ordered_by", "", Some("missing")),
        ];
        for (field, value, want) in table {
            let got = problems_with(&rules, field, value);
            match want {
                None => assert!(got.is_empty(), "{field}={value:?}: {got:?}"),
                Some(w) => {
                    assert_eq!(got.len(), 1, "{field}={value:?}: {got:?}");
                    assert_eq!(got[0].field, *field);
                    assert!(
                        got[0].message.contains(w),
                        "{field}={value:?}: {:?} lacks {w:?}",
                        got[0].message
                    );
                }
            }
        }
    }

    #[test]
    fn every_problem_of_a_row_is_reported() {
        let columns = Columns::for_test(&HEADER);
        let mut cells = GOOD;
        cells[0] = "";
        cells[5] = "0";
        cells[11] = "tomorrow";
        let record = csv::StringRecord::from(cells.to_vec());
        let rules = Rules::default();
        let check = Checker::new(&columns, &rules, HashMap::new()).check(&Row::Text {
            number: 2,
            record: &record,
            raw: None,
        });
        let fields: Vec<&str> = check.problems.iter().map(|p| p.field.as_ref()).collect();
        assert_eq!(fields, ["branch_id", "quantity", "process_start_time"]);
    }

    #[test]
    fn rules_file_tightens() {
        let rules = Rules::parse(
            "quantity = { max = 100 }\n[patterns]\npin_code = \"[1-9][0-9]{5}\"\n\
             [[catalog]]\nproduct_id = \"01\"\nbins = [\"412345\"]\nplastic_codes = [\"0001\"]\n",
        )
        .unwrap();
        assert!(problems_with(&rules, "quantity", "100").is_empty());
        assert!(
            problems_with(&rules, "quantity", "101")[0]
                .message
                .contains("between 1 and 100")
        );
        assert!(
            problems_with(&rules, "pin_code", "011001")[0]
                .message
                .contains("does not match the rules file's pattern")
        );
        assert!(
            problems_with(&rules, "product_id", "02")[0]
                .message
                .contains("not a product of the rules file's catalog")
        );
        assert!(
            problems_with(&rules, "bin", "52431190")[0]
                .message
                .contains("not a BIN of product 01")
        );
        assert!(
            problems_with(&rules, "plastic_code", "0009")[0]
                .message
                .contains("not a plastic code of product 01")
        );
    }
}
