//! Sheet templates: an empty order, cancel or upgrade sheet with the right
//! headers and one example row, as CSV or XLSX. The XLSX has drop-down lists
//! for every enumeration, its id columns formatted as Text (so Excel keeps
//! leading zeros), and a second sheet describing every column and its rule.

use std::path::Path;

use rust_xlsxwriter::{
    DataValidation, DataValidationErrorStyle, DataValidationRule, Format, FormatBorder, Workbook,
};

use crate::error::{Error, Result};
use crate::schema::{CANCEL, ORDER, UPGRADE};
pub use crate::schema::{Column, PIN_GENERATION};

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
        if let Some(check) = data_validation(c).map_err(xerr)? {
            ws.add_data_validation(1, i, TEMPLATE_ROWS, i, &check)
                .map_err(xerr)?;
        }
    }
    ws.set_freeze_panes(1, 0).map_err(xerr)?;
    columns_sheet(&mut wb, cols, &header).map_err(xerr)?;
    let buf = wb.save_to_buffer().map_err(xerr)?;
    crate::files::write_atomic(path, &buf)
        .map_err(|e| crate::error::Error::report(path, e))
        .map(|_| ())
}

type Xlsx<T> = std::result::Result<T, rust_xlsxwriter::XlsxError>;

/// What Excel checks as a column's cells are typed: a whole number in
/// its range, or one of its choices (an open list only warns), with the
/// rule as the cell's prompt.
fn data_validation(c: &Column) -> Xlsx<Option<DataValidation>> {
    let check = match (c.whole, c.choices.is_empty()) {
        (Some((min, max)), _) => DataValidation::new()
            .allow_whole_number(DataValidationRule::Between(min as i32, max as i32))
            .set_error_message(c.rule)?,
        (None, false) => {
            let list = DataValidation::new().allow_list_strings(c.choices)?;
            if c.open {
                list.set_error_style(DataValidationErrorStyle::Warning)
                    .set_error_message(c.rule)?
            } else {
                list.set_error_message(c.rule)?
            }
        }
        (None, true) => return Ok(None),
    };
    Ok(Some(
        check.set_input_title(c.name)?.set_input_message(c.rule)?,
    ))
}

/// The `Columns` sheet: each column, whether it is required, its rule,
/// its allowed values and an example.
fn columns_sheet(wb: &mut Workbook, cols: &[Column], header: &Format) -> Xlsx<()> {
    let about = wb.add_worksheet();
    about.set_name("Columns")?;
    for (i, title) in ["column", "required", "rule", "allowed values", "example"]
        .into_iter()
        .enumerate()
    {
        about.write_string_with_format(0, i as u16, title, header)?;
    }
    for (r, c) in cols.iter().enumerate() {
        let r = r as u32 + 1;
        about.write_string(r, 0, c.name)?;
        about.write_string(r, 1, if c.required { "yes" } else { "no" })?;
        about.write_string(r, 2, c.rule)?;
        about.write_string(r, 3, c.choices.join(", "))?;
        about.write_string(r, 4, c.example)?;
    }
    for (i, width) in [22.0, 9.0, 90.0, 26.0, 30.0].into_iter().enumerate() {
        about.set_column_width(i as u16, width)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
