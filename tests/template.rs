//! `dcms-bulk template`: sheets written, then opened back with calamine.

mod common;

use std::io::Read;

use calamine::{Reader, open_workbook_auto};
use common::{path_str, run};
use dcms_bulk::exit;

const KINDS: [&str; 3] = ["order", "cancel", "upgrade"];

fn rows(path: &std::path::Path, sheet: &str) -> Vec<Vec<String>> {
    let mut wb = open_workbook_auto(path).unwrap();
    let range = wb.worksheet_range(sheet).unwrap();
    range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

/// A part of the XLSX (zip) file, as text.
fn part(path: &std::path::Path, name: &str) -> String {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut text = String::new();
    zip.by_name(name)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn xlsx_templates_have_headers_an_example_lists_and_text_ids() {
    let dir = tempfile::tempdir().unwrap();
    for kind in KINDS {
        let path = dir.path().join(format!("{kind}.xlsx"));
        let out = run(&["template", kind, "--out", path_str(&path)]);
        assert_eq!(out.code, exit::OK, "{}", out.stderr);
        let sheet = match kind {
            "order" => "Orders",
            "cancel" => "Cancels",
            _ => "Upgrades",
        };
        let data = rows(&path, sheet);
        assert_eq!(data.len(), 2, "{kind}: header and one example");
        let about = rows(&path, "Columns");
        assert_eq!(about[0][..3], ["column", "required", "rule"]);
        let described: Vec<&String> = about[1..].iter().map(|r| &r[0]).collect();
        assert_eq!(
            described,
            data[0].iter().collect::<Vec<_>>(),
            "{kind}: every column described"
        );
        assert!(about[1..].iter().all(|r| !r[2].is_empty()));

        let xml = part(&path, "xl/worksheets/sheet1.xml");
        let lists = xml.matches("<dataValidation type=\"list\"").count();
        let expected = match kind {
            "order" => 4, // card_type, pan_length, pin_generation, ordering_party_type
            "cancel" => 0,
            _ => 2, // delivery_address_type, card_type
        };
        assert_eq!(lists, expected, "{kind}: {xml}");
        // Id columns carry the Text number format (built-in 49, "@").
        assert!(
            part(&path, "xl/styles.xml").contains("numFmtId=\"49\""),
            "{kind}"
        );
    }
    let xml = part(&dir.path().join("order.xlsx"), "xl/worksheets/sheet1.xml");
    assert!(
        xml.contains("<formula1>\"PHYSICAL,VIRTUAL\"</formula1>"),
        "{xml}"
    );
    // Every value validate takes, and no other, in the closed lists.
    assert!(
        xml.contains("<formula1>\"Y,N,yes,no,true,false,1,0\"</formula1>"),
        "{xml}"
    );
    // The validations cover the whole column, to Excel's last row.
    let ranges: Vec<&str> = xml
        .split("sqref=\"")
        .skip(1)
        .map(|r| r.split('"').next().unwrap())
        .collect();
    assert!(!ranges.is_empty());
    assert!(ranges.iter().all(|r| r.ends_with("1048576")), "{ranges:?}");
    // ordering_party_type is an open code: its list warns, and lets
    // another code stand.
    let party = xml
        .split("<dataValidation ")
        .find(|v| v.contains("\"BANK\""))
        .unwrap();
    assert!(party.contains("errorStyle=\"warning\""), "{party}");
    let card = xml
        .split("<dataValidation ")
        .find(|v| v.contains("PHYSICAL,VIRTUAL"))
        .unwrap();
    assert!(!card.contains("errorStyle"), "a stop list: {card}");
    // Numbers are numbers: quantity and validity_days, checked as whole
    // numbers in their range.
    let whole: Vec<&str> = xml
        .split("<dataValidation ")
        .filter(|v| v.starts_with("type=\"whole\""))
        .collect();
    assert_eq!(whole.len(), 2, "{xml}");
    assert!(
        whole
            .iter()
            .any(|v| v.contains("<formula1>1</formula1><formula2>500</formula2>"))
    );
    assert!(
        whole
            .iter()
            .any(|v| v.contains("<formula2>3650</formula2>"))
    );
    let header = &rows(&dir.path().join("order.xlsx"), "Orders")[0];
    let quantity = header.iter().position(|h| h == "quantity").unwrap();
    let cell_ref = format!("{}2", (b'A' + quantity as u8) as char);
    let cell = xml
        .split("<c ")
        .find(|c| c.starts_with(&format!("r=\"{cell_ref}\"")))
        .unwrap();
    assert!(
        !cell.contains("t=\"s\"") && cell.contains("<v>100</v>"),
        "a number: {cell}"
    );
    let upgrade = rows(&dir.path().join("upgrade.xlsx"), "Upgrades");
    assert_eq!(
        upgrade[0],
        [
            "entity_id",
            "kit_no",
            "delivery_address_type",
            "alias_name",
            "card_type",
            "plastic_code",
            "tier_type"
        ]
    );
    let cancel = rows(&dir.path().join("cancel.xlsx"), "Cancels");
    assert_eq!(cancel[0], ["order_id", "branch_id", "reason"]);
}

/// The example row is refused, saying to delete it; every other value of
/// it passes, so a clerk's rows typed below it are checked as orders and a
/// sheet left with the example is never sent whole.
#[test]
fn the_order_templates_example_is_refused_and_the_rest_passes() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["xlsx", "csv"] {
        let path = dir.path().join(format!("order.{ext}"));
        assert_eq!(
            run(&["template", "order", "--out", path_str(&path)]).code,
            exit::OK
        );
        let out = run(&["validate", path_str(&path), "-v"]);
        assert_eq!(out.code, exit::ROWS_NOT_DONE, "{ext}: {}", out.stderr);
        assert!(out.stderr.contains("1 invalid"), "{}", out.stderr);
        assert!(
            out.stderr
                .contains("the template's example row, not an order: delete the row"),
            "{ext}: {}",
            out.stderr
        );
        let sheet = if ext == "xlsx" { "Orders" } else { "order" };
        assert_eq!(
            out.stderr.matches(&format!("{sheet}!")).count(),
            1,
            "{ext}: the example's one problem: {}",
            out.stderr
        );
    }
    let csv_path = dir.path().join("order.csv");
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert!(
        csv.lines().nth(1).unwrap().contains(",00123,"),
        "leading zeros kept: {csv}"
    );
    // A clerk's row typed below the example: the example alone is refused
    // (and holds nothing: it is its own order).
    let mine = csv
        .lines()
        .nth(1)
        .unwrap()
        .replacen("EXAMPLE - delete this row", "", 1);
    std::fs::write(&csv_path, format!("{csv}{mine}\n")).unwrap();
    let report = dir.path().join("order.report.csv");
    let out = run(&[
        "validate",
        path_str(&csv_path),
        "--report",
        path_str(&report),
    ]);
    assert_eq!(out.code, exit::ROWS_NOT_DONE, "{}", out.stderr);
    let rows = common::report_rows(&report);
    assert_eq!(rows[0]["status"], "INVALID");
    assert!(
        rows[0]["errors"].contains("delete the row"),
        "{:?}",
        rows[0]
    );
    assert_eq!(rows[1]["status"], "VALID", "{:?}", rows[1]);
    // With the example deleted, the sheet is good.
    let header = csv.lines().next().unwrap();
    std::fs::write(&csv_path, format!("{header}\n{mine}\n")).unwrap();
    let out = run(&["validate", path_str(&csv_path)]);
    assert_eq!(out.code, exit::OK, "{}", out.stderr);
}

#[test]
fn an_existing_file_is_kept_unless_forced_and_the_extension_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.csv");
    std::fs::write(&path, "precious").unwrap();
    let out = run(&["template", "cancel", "--out", path_str(&path)]);
    assert_eq!(out.code, exit::USAGE);
    assert!(out.stderr.contains("--force"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    assert_eq!(
        run(&["template", "cancel", "--out", path_str(&path), "--force"]).code,
        exit::OK
    );
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("order_id,branch_id,reason")
    );
    let out = run(&[
        "template",
        "order",
        "--out",
        path_str(&dir.path().join("x.ods")),
    ]);
    assert_eq!(out.code, exit::USAGE);
    assert!(out.stderr.contains(".csv or .xlsx"));
}
