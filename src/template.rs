//! Sheet templates: an empty order, cancel or upgrade sheet with the right
//! headers and one example row, as CSV or XLSX. The XLSX has drop-down lists
//! for every enumeration, its id columns formatted as Text (so Excel keeps
//! leading zeros), and a second sheet describing every column and its rule.

use std::path::Path;

use rust_xlsxwriter::{
    DataValidation, DataValidationErrorStyle, DataValidationRule, Format, FormatBorder, Workbook,
};

use crate::error::{Error, Result};

/// Which sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Card orders, for `submit` (and `validate`).
    Order,
    /// Orders to cancel, for `cancel`.
    Cancel,
    /// Card upgrades, for `upgrade`.
    Upgrade,
}

/// One column of a template.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub required: bool,
    /// A code whose leading zeros matter: formatted as Text.
    pub id: bool,
    /// The allowed values, when there is a fixed list.
    pub choices: &'static [&'static str],
    pub example: &'static str,
    pub rule: &'static str,
    /// Header spellings a sheet may use besides `name` (compared after
    /// [`crate::columns::normalize`]); the order sheet's are its fields'.
    pub aliases: &'static [&'static str],
    /// The most characters a value may have (a cancel or upgrade sheet's
    /// rule; an order sheet's are `validate`'s).
    pub max_chars: usize,
    /// `choices` are the common values of an open code, not all it may
    /// be: the template's list warns, and lets another value stand.
    pub open: bool,
    /// A whole number from .0 to .1: the template holds it as a number.
    pub whole: Option<(u32, u32)>,
}

const fn col(
    name: &'static str,
    required: bool,
    id: bool,
    choices: &'static [&'static str],
    example: &'static str,
    rule: &'static str,
) -> Column {
    Column {
        name,
        required,
        id,
        choices,
        example,
        rule,
        aliases: &[],
        max_chars: usize::MAX,
        open: false,
        whole: None,
    }
}

impl crate::columns::Known for Column {
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

impl Column {
    /// The column with other header spellings it goes by.
    const fn also(self, aliases: &'static [&'static str]) -> Column {
        Column { aliases, ..self }
    }

    /// The column with at most `max_chars` characters a value.
    const fn at_most(self, max_chars: usize) -> Column {
        Column { max_chars, ..self }
    }

    /// The column's choices are common values, not all it may hold.
    const fn open(self) -> Column {
        Column { open: true, ..self }
    }

    /// The column holds a whole number from `min` to `max`.
    const fn whole(self, min: u32, max: u32) -> Column {
        Column {
            whole: Some((min, max)),
            ..self
        }
    }
}

/// Every `pin_generation` value `validate` accepts (in any case).
pub const PIN_GENERATION: [&str; 8] = ["Y", "N", "yes", "no", "true", "false", "1", "0"];

const ORDER: [Column; 17] = [
    col(
        "order_ref",
        false,
        true,
        &[],
        crate::validate::EXAMPLE_ORDER_REF,
        "Optional. Rows with the same value form one order, whose id it becomes; without it, rows are grouped by branch, address, PIN code, start time, validity and ordered_by. The example row's value makes validate and submit refuse it: delete the example.",
    ),
    col(
        "branch_id",
        true,
        true,
        &[],
        "00123",
        "Digits; leading zeros are kept. Sent as branchInfo.branchId.",
    ),
    col(
        "branch_name",
        true,
        false,
        &[],
        "Pune Camp Branch",
        "At most 100 characters.",
    ),
    col(
        "product_id",
        true,
        true,
        &[],
        "01",
        "The product to order (a rules file may list the allowed ones).",
    ),
    col("bin", true, true, &[], "412345", "6 or 8 digits."),
    col(
        "card_type",
        true,
        false,
        &["PHYSICAL", "VIRTUAL"],
        "PHYSICAL",
        "PHYSICAL or VIRTUAL.",
    ),
    col(
        "quantity",
        true,
        false,
        &[],
        "100",
        "A whole number from 1 to 500 (a rules file may lower the maximum).",
    )
    .whole(1, 500),
    col(
        "plastic_code",
        true,
        true,
        &[],
        "0001",
        "The card plastic; leading zeros are kept.",
    ),
    col("pan_length", true, false, &["16", "19"], "16", "16 or 19."),
    col(
        "pin_generation",
        true,
        false,
        &PIN_GENERATION,
        "Y",
        "Y or N (yes/no, true/false and 1/0 are accepted too, in any case).",
    ),
    col(
        "delivery_address",
        true,
        false,
        &[],
        "Flat 12, Lake View Towers~Camp~Pune~Maharashtra",
        "Parts separated by ~, at least 3 non-empty parts, at most 175 characters.",
    ),
    col("pin_code", true, true, &[], "411001", "6 digits."),
    col(
        "process_start_time",
        true,
        false,
        &[],
        "2026-12-01 09:00:00",
        "YYYY-MM-DD HH:mm:ss, a real date and time; an Excel date cell is converted exactly.",
    ),
    col(
        "validity_days",
        true,
        false,
        &[],
        "365",
        "A whole number of days from 1 to 3650.",
    )
    .whole(1, 3650),
    col(
        "ordered_by",
        true,
        false,
        &[],
        "Priya Iyer",
        "Who places the order (orderingPartyInfo.orderingPartyId).",
    ),
    col(
        "ordering_party_type",
        false,
        false,
        &["BANK"],
        "BANK",
        "Optional; BANK when empty. Another code in capitals (A-Z and _) is accepted too.",
    )
    .open(),
    col(
        "meta.campaign",
        false,
        false,
        &[],
        "WINTER-2026",
        "Optional. Every meta.<key> column is sent as metaValues.<key>; rename or add such columns freely.",
    ),
];

const CANCEL: [Column; 3] = [
    col(
        "order_id",
        true,
        true,
        &[],
        "DCB-a50e708e61bb05c51b41",
        "The id of the order to cancel, as the submit report's order_id column shows it.",
    )
    .also(&["orderid", "cardorderid", "orderref", "orderno"])
    .at_most(100),
    col(
        "branch_id",
        true,
        true,
        &[],
        "00123",
        "The branch that placed the order; it must match.",
    )
    .also(&["branchid", "branchcode", "branch"])
    .at_most(50),
    col(
        "reason",
        false,
        false,
        &[],
        "Branch asked to cancel",
        "Optional; echoed in the report, not sent.",
    )
    .also(&["reason", "remarks", "comment"]),
];

const UPGRADE: [Column; 7] = [
    col(
        "entity_id",
        true,
        true,
        &[],
        "ENT000001",
        "The customer that holds the card.",
    )
    .also(&["entityid", "entity", "customerid", "customer"])
    .at_most(50),
    col(
        "kit_no",
        true,
        true,
        &[],
        "4240000001",
        "The kit (card) to upgrade; it is replaced by a new one.",
    )
    .also(&["kitno", "kitnumber", "kit"])
    .at_most(50),
    col(
        "delivery_address_type",
        true,
        false,
        &["PERMANENT", "COMMUNICATION"],
        "PERMANENT",
        "Where the new card goes: PERMANENT or COMMUNICATION.",
    )
    .also(&["deliveryaddresstype", "deliveryaddress", "addresstype"]),
    col(
        "alias_name",
        false,
        false,
        &[],
        "PRIYA IYER",
        "The name printed on the card: at most 30 characters.",
    )
    .also(&["aliasname", "alias", "nameoncard", "embossname"])
    .at_most(30),
    col(
        "card_type",
        true,
        false,
        &["PHYSICAL", "VIRTUAL"],
        "PHYSICAL",
        "PHYSICAL or VIRTUAL.",
    )
    .also(&["cardtype", "type"]),
    col(
        "plastic_code",
        true,
        true,
        &[],
        "4566",
        "The new card's plastic; leading zeros are kept.",
    )
    .also(&["plasticcode", "plastic"])
    .at_most(20),
    col(
        "tier_type",
        true,
        false,
        &[],
        "SILVER",
        "The tier to move to, e.g. SILVER (the values are set per bank).",
    )
    .also(&["tiertype", "tier"])
    .at_most(30),
];

impl Kind {
    pub fn columns(self) -> &'static [Column] {
        match self {
            Kind::Order => &ORDER,
            Kind::Cancel => &CANCEL,
            Kind::Upgrade => &UPGRADE,
        }
    }

    fn sheet_name(self) -> &'static str {
        match self {
            Kind::Order => "Orders",
            Kind::Cancel => "Cancels",
            Kind::Upgrade => "Upgrades",
        }
    }
}

/// The XLSX template's lists and number checks cover the whole column:
/// to Excel's last row.
const TEMPLATE_ROWS: u32 = 1_048_575;

/// Writes the template to `path`: `.csv` or `.xlsx`.
pub fn write(kind: Kind, path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv") => write_csv(kind, path),
        Some("xlsx") => write_xlsx(kind, path),
        _ => Err(Error::Usage(format!(
            "--out `{}`: the extension must be .csv or .xlsx",
            path.display()
        ))),
    }
}

fn write_csv(kind: Kind, path: &Path) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let cols = kind.columns();
    let io = |e: csv::Error| Error::report(path, e);
    w.write_record(cols.iter().map(|c| c.name)).map_err(io)?;
    w.write_record(cols.iter().map(|c| c.example)).map_err(io)?;
    let bytes = w
        .into_inner()
        .map_err(|e| Error::report(path, e.to_string()))?;
    crate::files::write_atomic(path, &bytes)
        .map_err(|e| crate::error::Error::report(path, e))
        .map(|_| ())
}

fn write_xlsx(kind: Kind, path: &Path) -> Result<()> {
    let xerr = |e: rust_xlsxwriter::XlsxError| Error::report(path, e);
    let mut wb = Workbook::new();
    let header = Format::new()
        .set_bold()
        .set_border_bottom(FormatBorder::Thin);
    let text = Format::new().set_num_format_index(49); // Excel's built-in Text ("@")
    let cols = kind.columns();
    let ws = wb.add_worksheet();
    ws.set_name(kind.sheet_name()).map_err(xerr)?;
    for (i, c) in cols.iter().enumerate() {
        let i = i as u16;
        ws.write_string_with_format(0, i, c.name, &header)
            .map_err(xerr)?;
        ws.set_column_width(i, (c.name.len().max(c.example.len().min(40)) + 2) as f64)
            .map_err(xerr)?;
        if c.id {
            ws.set_column_format(i, &text).map_err(xerr)?;
        }
        match (c.example.parse::<f64>(), c.whole) {
            _ if c.example.is_empty() => {}
            // A number column holds numbers (no "number stored as text").
            (Ok(n), Some(_)) => {
                ws.write_number(1, i, n).map_err(xerr)?;
            }
            // Ids are Text, so what the user types later is Text as well.
            _ if c.id => {
                ws.write_string_with_format(1, i, c.example, &text)
                    .map_err(xerr)?;
            }
            _ => {
                ws.write_string(1, i, c.example).map_err(xerr)?;
            }
        }
        let check = match (c.whole, c.choices.is_empty()) {
            (Some((min, max)), _) => Some(
                DataValidation::new()
                    .allow_whole_number(DataValidationRule::Between(min as i32, max as i32))
                    .set_error_message(c.rule)
                    .map_err(xerr)?,
            ),
            (None, false) => {
                let list = DataValidation::new()
                    .allow_list_strings(c.choices)
                    .map_err(xerr)?;
                Some(if c.open {
                    list.set_error_style(DataValidationErrorStyle::Warning)
                        .set_error_message(c.rule)
                        .map_err(xerr)?
                } else {
                    list.set_error_message(c.rule).map_err(xerr)?
                })
            }
            (None, true) => None,
        };
        if let Some(check) = check {
            let check = check
                .set_input_title(c.name)
                .map_err(xerr)?
                .set_input_message(c.rule)
                .map_err(xerr)?;
            ws.add_data_validation(1, i, TEMPLATE_ROWS, i, &check)
                .map_err(xerr)?;
        }
    }
    ws.set_freeze_panes(1, 0).map_err(xerr)?;

    let about = wb.add_worksheet();
    about.set_name("Columns").map_err(xerr)?;
    for (i, title) in ["column", "required", "rule", "allowed values", "example"]
        .into_iter()
        .enumerate()
    {
        about
            .write_string_with_format(0, i as u16, title, &header)
            .map_err(xerr)?;
    }
    for (r, c) in cols.iter().enumerate() {
        let r = r as u32 + 1;
        about.write_string(r, 0, c.name).map_err(xerr)?;
        about
            .write_string(r, 1, if c.required { "yes" } else { "no" })
            .map_err(xerr)?;
        about.write_string(r, 2, c.rule).map_err(xerr)?;
        about
            .write_string(r, 3, c.choices.join(", "))
            .map_err(xerr)?;
        about.write_string(r, 4, c.example).map_err(xerr)?;
    }
    for (i, width) in [22.0, 9.0, 90.0, 26.0, 30.0].into_iter().enumerate() {
        about.set_column_width(i as u16, width).map_err(xerr)?;
    }
    let buf = wb.save_to_buffer().map_err(xerr)?;
    crate::files::write_atomic(path, &buf)
        .map_err(|e| crate::error::Error::report(path, e))
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::Field;

    #[test]
    fn the_order_template_names_every_field_the_reader_knows() {
        let names: Vec<&str> = Kind::Order.columns().iter().map(|c| c.name).collect();
        for f in Field::ALL {
            assert!(names.contains(&f.name()), "{} missing", f.name());
            let c = Kind::Order
                .columns()
                .iter()
                .find(|c| c.name == f.name())
                .unwrap();
            assert_eq!(c.required, f.required(), "{}", f.name());
            if f.is_id() {
                assert!(c.id, "{} should be Text", f.name());
            }
        }
    }

    #[test]
    fn examples_are_among_the_choices() {
        for kind in [Kind::Order, Kind::Cancel, Kind::Upgrade] {
            for c in kind.columns() {
                assert!(
                    c.choices.is_empty() || c.choices.contains(&c.example),
                    "{}: {}",
                    c.name,
                    c.example
                );
                assert!(!c.rule.is_empty());
            }
        }
    }
}
