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
