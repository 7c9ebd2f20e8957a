//! Columns: finds the header row and maps its headers to order fields.
//!
//! Headers match case-insensitively, ignoring spaces, `_`, `-` and `.`, and
//! through common aliases ("Branch Code", "Qty", "BIN Number"...). Columns
//! that match no field are kept and echoed in the report; `meta.<key>`
//! columns carry free-text order metadata.

use std::path::Path;

use crate::error::{Error, Result};
use crate::read::{Row, Sheet};

/// An order-sheet field: a column the tool understands.
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

    /// The canonical column name, as in the README and templates.
    pub fn name(self) -> &'static str {
        match self {
            Field::OrderRef => "order_ref",
            Field::BranchId => "branch_id",
            Field::BranchName => "branch_name",
            Field::ProductId => "product_id",
            Field::Bin => "bin",
            Field::CardType => "card_type",
            Field::Quantity => "quantity",
            Field::PlasticCode => "plastic_code",
            Field::PanLength => "pan_length",
            Field::PinGeneration => "pin_generation",
            Field::DeliveryAddress => "delivery_address",
            Field::PinCode => "pin_code",
            Field::ProcessStartTime => "process_start_time",
            Field::ValidityDays => "validity_days",
            Field::OrderedBy => "ordered_by",
            Field::OrderingPartyType => "ordering_party_type",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether a sheet must have this column.
    pub fn required(self) -> bool {
        !matches!(self, Field::OrderRef | Field::OrderingPartyType)
    }

    /// Columns whose values are codes, where leading zeros matter.
    pub fn is_id(self) -> bool {
        matches!(
            self,
            Field::BranchId | Field::Bin | Field::PlasticCode | Field::PinCode
        )
    }

    /// Normalised header spellings accepted for this field.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Field::OrderRef => &[
                "orderref",
                "orderreference",
                "orderid",
                "orderno",
                "ordernumber",
                "ref",
            ],
            Field::BranchId => &[
                "branchid",
                "branchcode",
                "branchno",
                "branchnumber",
                "branch",
                "solid",
            ],
            Field::BranchName => &["branchname"],
            Field::ProductId => &["productid", "productcode", "product"],
            Field::Bin => &["bin", "binnumber", "binno", "bincode"],
            Field::CardType => &["cardtype", "type"],
            Field::Quantity => &[
                "quantity",
                "qty",
                "noofcards",
                "numberofcards",
                "cardcount",
                "count",
            ],
            Field::PlasticCode => &["plasticcode", "plastic", "plasticid"],
            Field::PanLength => &["panlength", "panlen", "pan"],
            Field::PinGeneration => &["pingeneration", "pingen", "generatepin"],
            Field::DeliveryAddress => &["deliveryaddress", "address", "shippingaddress"],
            Field::PinCode => &["pincode", "postalcode", "postcode", "zipcode", "zip"],
            Field::ProcessStartTime => &[
                "processstarttime",
                "processstart",
                "starttime",
                "processingstarttime",
            ],
            Field::ValidityDays => &["validitydays", "validity", "validdays"],
            Field::OrderedBy => &[
                "orderedby",
                "orderingparty",
                "orderingpartyid",
                "requestedby",
            ],
            Field::OrderingPartyType => &["orderingpartytype", "partytype"],
        }
    }
}

/// What one column of the sheet is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Field(Field),
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

/// The role a header gives its column.
pub fn role_of(header: &str) -> Role {
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
    Field::ALL
        .into_iter()
        .find(|f| f.aliases().contains(&n.as_str()))
        .map_or(Role::Unknown, Role::Field)
}

/// The columns of a sheet: the header row, every header as written, and
/// where each field is.
#[derive(Debug, Clone)]
pub struct Columns {
    /// The row the headers are on.
    pub header_row: u64,
    /// Every header as written (an empty header becomes `column F`).
    pub headers: Vec<String>,
    pub roles: Vec<Role>,
    index: [Option<usize>; Field::ALL.len()],
}

impl Columns {
    /// The column index of a field, if the sheet has it.
    pub fn get(&self, field: Field) -> Option<usize> {
        self.index[field as usize]
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

    /// Builds the columns from a header row's cell texts.
    pub fn from_headers(
        path: &Path,
        sheet: &Sheet,
        header_row: u64,
        cells: &[String],
    ) -> Result<Columns> {
        let width = cells
            .iter()
            .rposition(|c| !c.trim().is_empty())
            .map_or(0, |i| i + 1);
        // No spreadsheet has more columns; a report of them could not be
        // opened (a damaged file made one of 475,260).
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
        let mut headers: Vec<String> = Vec::with_capacity(width);
        let mut roles = Vec::with_capacity(width);
        let mut index = [None; Field::ALL.len()];
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
                role_of(h)
            };
            let ident = match &role {
                Role::Field(f) => f.name().to_string(),
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
            if let Role::Field(f) = role {
                index[f as usize] = Some(i);
            }
            headers.push(header);
            roles.push(role);
        }
        let missing: Vec<&str> = Field::ALL
            .into_iter()
            .filter(|f| f.required() && index[*f as usize].is_none())
            .map(Field::name)
            .collect();
        if !missing.is_empty() {
            return Err(Error::input(
                path,
                format!(
                    "sheet `{}`, header row {header_row}: missing required column{} {}; the headers found are: {}",
                    sheet.name(),
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", "),
                    shorten_list(&headers)
                ),
            ));
        }
        Ok(Columns {
            header_row,
            headers,
            roles,
            index,
        })
    }
}

impl Columns {
    /// Columns from header names, for tests of the later stages.
    #[cfg(test)]
    pub fn for_test(names: &[&str]) -> Columns {
        let roles: Vec<Role> = names.iter().map(|n| role_of(n)).collect();
        let mut index = [None; Field::ALL.len()];
        for (i, r) in roles.iter().enumerate() {
            if let Role::Field(f) = r {
                index[*f as usize] = Some(i);
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

/// How many of a row's cells name a known field.
fn known_headers(row: &Row<'_>) -> usize {
    let mut found = std::collections::HashSet::new();
    for i in 0..row.width() {
        if let Role::Field(f) = role_of(&row.cell(i).text) {
            found.insert(f);
        }
    }
    found.len()
}

/// How far down title rows may push the header.
pub const HEADER_SEARCH_ROWS: usize = 50;

/// Finds the header row among a sheet's first rows: the first row naming at
/// least three known fields. Returns its number and its cell texts.
pub fn locate_header(rows: &[Row<'_>]) -> Option<(u64, Vec<String>)> {
    rows.iter().find(|r| known_headers(r) >= 3).map(|r| {
        let cells = (0..r.width())
            .map(|i| r.cell(i).text.into_owned())
            .collect();
        (r.number(), cells)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_aliases() {
        let cases = [
            ("Branch Code", Role::Field(Field::BranchId)),
            ("branch_id", Role::Field(Field::BranchId)),
            ("BRANCH-ID", Role::Field(Field::BranchId)),
            ("Qty", Role::Field(Field::Quantity)),
            ("BIN Number", Role::Field(Field::Bin)),
            ("PIN Code", Role::Field(Field::PinCode)),
            ("Card Type", Role::Field(Field::CardType)),
            ("PIN Generation", Role::Field(Field::PinGeneration)),
            ("Process Start Time", Role::Field(Field::ProcessStartTime)),
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
            assert_eq!(role_of(f.name()), Role::Field(f));
            assert_eq!(Field::from_name(f.name()), Some(f));
        }
    }
}
