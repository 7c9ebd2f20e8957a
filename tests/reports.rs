//! Every report of the samples and fixtures, held byte for byte: a change
//! to how a sheet is read, checked, grouped or written that alters a single
//! byte of a report fails here (`cargo insta review` shows the difference).
//! Timing columns of submit reports (when, how long, which request) are
//! blanked; nothing else is.

mod common;

use std::path::Path;

use common::*;

/// The inputs: the CSV corpus of `tests/fixtures/reports` (encodings, line
/// ends, delimiters, quoting, bad rows), the samples and the workbooks.
const INPUTS: &[&str] = &[
    "tests/fixtures/reports/plain.csv",
    "tests/fixtures/reports/titled_crlf_bom.csv",
    "tests/fixtures/reports/cr_only.csv",
    "tests/fixtures/reports/semicolon_1252.csv",
    "tests/fixtures/reports/tabs_utf16.csv",
    "tests/fixtures/reports/order_ref.csv",
    "samples/orders.csv",
    "samples/orders.xlsx",
    "samples/orders_with_mistakes.xlsx",
    "tests/fixtures/dates_1904.xlsx",
    "tests/fixtures/numeric_ids.xlsx",
    "tests/fixtures/orders.ods",
    "tests/fixtures/orders.xls",
    "tests/fixtures/two_sheets.xlsx",
];

fn snapshot_name(input: &str, what: &str) -> String {
    let stem = Path::new(input).file_name().unwrap().to_str().unwrap();
    format!("{}_{what}", stem.replace('.', "_"))
}

/// A workbook report's sheets as text, one cell a line, `Run facts` left
/// out (it holds the run's times).
fn xlsx_text(path: &Path) -> String {
    use calamine::{DataType, Reader, Xlsx, open_workbook};
    let mut wb: Xlsx<_> = open_workbook(path).unwrap();
    let mut out = String::new();
    for name in wb.sheet_names() {
        if name == "Run facts" {
            continue;
        }
        let range = wb.worksheet_range(&name).unwrap();
        out.push_str(&format!("== {name}\n"));
        for (r, row) in range.rows().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                if !cell.is_empty() {
                    out.push_str(&format!("{r},{c}: {cell:?}\n"));
                }
            }
        }
    }
    out
}

#[test]
fn validate_reports_are_byte_for_byte_as_before() {
    let dir = tempfile::tempdir().unwrap();
    for input in INPUTS {
        for ext in ["csv", "jsonl", "xlsx"] {
            let report = dir.path().join(format!("r.{ext}"));
            let _ = std::fs::remove_file(&report);
            let out = run(&["validate", input, "--report", path_str(&report)]);
            assert!(out.code <= 1, "{input}: {}", out.stderr);
            let text = if ext == "xlsx" {
                xlsx_text(&report)
            } else {
                std::fs::read_to_string(&report).unwrap()
            };
            insta::assert_snapshot!(snapshot_name(input, ext), text);
        }
    }
}

/// A submit report with its timing columns blanked.
fn untimed(path: &Path) -> String {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap();
    let mut records = rdr.records().map(Result::unwrap);
    let header = records.next().unwrap();
    let timing: Vec<usize> = ["submitted_at", "latency_ms", "request_id"]
        .iter()
        .map(|name| header.iter().position(|h| h == *name).unwrap())
        .collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header).unwrap();
    for r in records {
        let cells = r
            .iter()
            .enumerate()
            .map(|(i, c)| if timing.contains(&i) { "~" } else { c });
        w.write_record(cells).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

#[test]
fn submit_reports_are_as_before() {
    let desk = Desk::new();
    for input in [
        "tests/fixtures/reports/plain.csv",
        "tests/fixtures/reports/order_ref.csv",
        "samples/orders.xlsx",
    ] {
        let report = desk.path("r.csv");
        let _ = std::fs::remove_file(&report);
        let out = desk.run(&[
            "submit",
            path_str(&root().join(input)),
            "--sandbox",
            "--report",
            path_str(&report),
        ]);
        assert!(out.status.code() <= Some(1), "{input}: {}", stderr(&out));
        let text = untimed(&report).replace(path_str(&root()), "ROOT");
        insta::assert_snapshot!(snapshot_name(input, "submit"), text);
    }
}

/// A part of an XLSX file, as text.
fn part(path: &Path, name: &str) -> String {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut text = String::new();
    zip.by_name(name)
        .unwrap_or_else(|_| panic!("{name} in {}", path.display()))
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// The value of attribute `name` in an XML start tag.
fn attr<'t>(tag: &'t str, name: &str) -> Option<&'t str> {
    let key = format!("{name}=\"");
    let at = if tag.starts_with(&key) {
        0
    } else {
        tag.find(&format!(" {key}"))? + 1
    };
    tag[at + key.len()..].split('"').next()
}

/// The report a person opens: results first and frozen, widths fitted,
/// failed cells marked with their problem, a Summary that says where the
/// problems are, Run facts without `null`.
#[test]
fn an_xlsx_report_is_laid_out_for_people() {
    use calamine::{Reader, Xlsx, open_workbook};
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("m.xlsx");
    let out = run(&[
        "validate",
        "samples/orders_with_mistakes.xlsx",
        "--report",
        path_str(&report),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let mut wb: Xlsx<_> = open_workbook(&report).unwrap();
    assert_eq!(wb.sheet_names(), ["Report", "Summary", "Run facts"]);
    let sheet = wb.worksheet_range("Report").unwrap();
    let header: Vec<String> = sheet
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(&header[..4], ["row", "status", "order_id", "errors"]);
    assert_eq!(&header[header.len() - 2..], ["source_file", "sheet"]);
    let quantity = header.iter().position(|h| h == "quantity").unwrap();
    // The row with quantity `ten`.
    let (at, _) = sheet
        .rows()
        .enumerate()
        .find(|(_, r)| r[quantity] == "ten")
        .expect("the row with `ten`");

    let xml = part(&report, "xl/worksheets/sheet1.xml");
    let pane = xml.split("<pane").nth(1).unwrap();
    assert_eq!(
        attr(pane, "xSplit"),
        Some("4"),
        "row, status, order_id, errors frozen"
    );
    assert_eq!(attr(pane, "ySplit"), Some("1"));
    let cols: Vec<&str> = xml.split("<col ").skip(1).collect();
    assert_eq!(cols.len(), header.len(), "a width for every column");
    let width = |c: usize| -> f64 { attr(cols[c], "width").unwrap().parse().unwrap() };
    let address = header.iter().position(|h| h == "delivery_address").unwrap();
    assert!(
        width(address) > 30.0,
        "an address is not cut at 8 characters"
    );
    assert!(width(3) >= 60.0, "errors wide");
    assert!(width(0) < 12.0, "row narrow");
    // The failed cell: filled, and its note says why.
    let letter = (b'A' + quantity as u8) as char;
    let cell_ref = format!("{letter}{}", at + 1);
    let cell = xml
        .split("<c ")
        .find(|c| attr(c, "r") == Some(cell_ref.as_str()))
        .unwrap();
    let style: usize = attr(cell, "s").unwrap().parse().unwrap();
    let styles = part(&report, "xl/styles.xml");
    let xf = styles
        .split("<cellXfs")
        .nth(1)
        .unwrap()
        .split("<xf ")
        .nth(style + 1)
        .unwrap();
    let fill: usize = attr(xf, "fillId").unwrap().parse().unwrap();
    assert!(fill >= 2, "a fill of its own: {xf}");
    let notes = part(&report, "xl/comments1.xml");
    let note = notes
        .split("<comment ")
        .find(|c| attr(c, "ref") == Some(cell_ref.as_str()))
        .unwrap_or_else(|| panic!("a note on {cell_ref}: {notes}"));
    assert!(note.contains("must be a whole number, got `ten`"), "{note}");

    // Summary: counts, then the problems by column.
    let summary = wb.worksheet_range("Summary").unwrap();
    let lines: Vec<(String, String)> = summary
        .rows()
        .map(|r| {
            (
                r[0].to_string(),
                r.get(1).map(|c| c.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    let after = lines
        .iter()
        .position(|l| l.0 == "problems by column")
        .unwrap();
    let by_column = &lines[after + 1..];
    assert!(
        by_column.contains(&("quantity".into(), "2".into())),
        "{by_column:?}"
    );
    assert!(
        by_column.contains(&("bin".into(), "1".into())),
        "{by_column:?}"
    );
    // Run facts: a fact a line, and no `null`.
    let facts = wb.worksheet_range("Run facts").unwrap();
    assert!(facts.rows().count() > 10);
    assert!(facts.rows().all(|r| r.iter().all(|c| *c != "null")));
}

/// A workbook's columns are fitted to its first 2,000 lines, however the
/// reading cut the sheet: here rows of some 700 bytes, fewer than 2,000 of
/// which fill the first megabyte of text read as one piece, and the
/// widest name is on the 1,900th.
#[test]
fn an_xlsx_report_fits_its_columns_to_its_first_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from(common::HEADER);
    csv.push('\n');
    let branch = "Pune Camp Branch ".repeat(38);
    for i in 1..=2_100 {
        let name = if i == 1_900 {
            "Anantharamakrishnan Subramaniam"
        } else {
            "Ann"
        };
        let row = common::row(&format!("{:05}", i % 40), "01", "5")
            .replace("Pune Camp Branch", &branch)
            .replace("Priya Iyer", name);
        csv.push_str(&row);
        csv.push('\n');
    }
    let sheet = dir.path().join("wide.csv");
    std::fs::write(&sheet, csv).unwrap();
    let report = dir.path().join("wide.xlsx");
    let out = run(&["validate", path_str(&sheet), "--report", path_str(&report)]);
    assert!(out.code <= 1, "{}", out.stderr);
    let xml = part(&report, "xl/worksheets/sheet1.xml");
    let cols: Vec<&str> = xml.split("<col ").skip(1).collect();
    let widths: Vec<f64> = cols
        .iter()
        .map(|c| attr(c, "width").unwrap().parse().unwrap())
        .collect();
    // `ordered_by` is the last input column, before source_file and sheet.
    let ordered_by = widths[widths.len() - 3];
    assert!(
        ordered_by > 32.0,
        "ordered_by fitted to the name on line 1,900: {widths:?}"
    );
}

/// Every workbook the tool writes is well formed: rows and cells strictly
/// in order in every sheet. The last row carries a wrapped error (its row
/// is made taller), more cells fail than get a note, and submit, status
/// and template workbooks are checked too.
#[test]
fn every_written_workbook_is_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from(common::HEADER);
    csv.push('\n');
    // 1,200 rows with a bad quantity (more than the 1,000 notes), the last
    // with so many problems that its errors wrap over several lines.
    for i in 0..1_200 {
        csv.push_str(&common::row(&format!("{:05}", i % 40), "01", "many"));
        csv.push('\n');
    }
    csv.push_str(
        "1234567,Pune Camp Branch,01,41,ROUND,lots,ab,17,maybe,Flat,41,yesterday,forever,Priya\n",
    );
    let sheet = dir.path().join("bad.csv");
    std::fs::write(&sheet, csv).unwrap();
    let report = dir.path().join("bad.report.xlsx");
    let out = run(&["validate", path_str(&sheet), "--report", path_str(&report)]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let xml = part(&report, "xl/worksheets/sheet1.xml");
    assert!(xml.contains("customHeight"), "the last row is made taller");
    assert!(
        part(&report, "xl/comments1.xml")
            .matches("<comment ")
            .count()
            == 1_000,
        "notes capped"
    );
    common::assert_well_formed_xlsx(&report);

    for kind in ["order", "cancel", "upgrade"] {
        let path = dir.path().join(format!("{kind}.xlsx"));
        let out = run(&["template", kind, "--out", path_str(&path)]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        common::assert_well_formed_xlsx(&path);
    }

    let desk = common::Desk::new();
    let sent = desk.path("sent.xlsx");
    let mistakes = root().join("samples/orders_with_mistakes.xlsx");
    let out = desk.run(&[
        "submit",
        path_str(&mistakes),
        "--sandbox",
        "--report",
        path_str(&sent),
    ]);
    assert!(out.status.code() <= Some(1), "{}", stderr(&out));
    common::assert_well_formed_xlsx(&sent);
    common::assert_well_formed_xlsx(&root().join("samples/orders_with_mistakes.xlsx"));

    // A status report (the report written again with order_status).
    let sb = SandboxProcess::start(&[]);
    let sheet = desk.sheet("orders.csv", 3, 2);
    let report = desk.path("orders.xlsx");
    let out = desk.submit(&sheet, &sb.base, "ACME", &["--report", path_str(&report)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status = desk.path("orders.status.xlsx");
    let out = desk.run_at(
        &sb.base,
        &["status", path_str(&report), "--out", path_str(&status)],
    );
    // 1: the orders are not final yet (RECEIVED).
    assert!(out.status.code() <= Some(1), "{}", stderr(&out));
    common::assert_well_formed_xlsx(&status);
}
