//! The `validate` command, run as a user runs it, on the shipped samples and
//! on fixtures that are real workbooks made by other programs.

mod common;

use common::*;
use dcms_bulk::exit;

#[test]
fn valid_csv_sample_is_all_valid_and_reported_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.csv");
    let r = run(&[
        "validate",
        "samples/orders.csv",
        "--report",
        path_str(&report),
    ]);
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("10 rows: 10 valid, 0 invalid, 0 held; 4 orders ready"),
        "{}",
        r.stderr
    );
    let (header, rows) = read_report(&report);
    assert_eq!(&header[..4], ["source_file", "sheet", "row", "branch_id"]);
    assert_eq!(
        &header[header.len() - 4..],
        ["status", "order_id", "errors", "warnings"]
    );
    assert_eq!(rows.len(), 10);
    let numbers: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(
        numbers,
        ["2", "3", "4", "5", "6", "7", "8", "9", "10", "11"],
        "CRLF rows keep their line numbers"
    );
    let status = col(&header, "status");
    assert!(rows.iter().all(|r| r[status] == "VALID"));
    let ids: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r[col(&header, "order_id")].as_str())
        .collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(
        rows[0][col(&header, "branch_id")],
        "00123",
        "leading zeros kept"
    );

    // The run facts name the input by hash and the report by its own hash.
    let facts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report.csv.run.json")).unwrap(),
    )
    .unwrap();
    let input = std::fs::read(root().join("samples/orders.csv")).unwrap();
    use sha2::Digest;
    assert_eq!(
        facts["input"]["sha256"],
        hex::encode(sha2::Sha256::digest(&input))
    );
    assert_eq!(
        facts["report"]["sha256"],
        hex::encode(sha2::Sha256::digest(std::fs::read(&report).unwrap()))
    );
    assert_eq!(facts["counts"]["rows"], 10);
    // Ids come from the orders' content: no batch salt unless given.
    assert_eq!(facts["batch_id"], serde_json::Value::Null);
}

/// The same rows as CSV, XLSX (dates as date cells), XLS, ODS and the 1904
/// date system must give the very same order bodies.
#[test]
fn every_format_gives_the_same_orders() {
    let orders = |file: &str| {
        let r = run(&["validate", file, "--batch-id", "B1", "--print-orders"]);
        assert_eq!(r.code, exit::OK, "{file}: {}", r.stderr);
        r.stdout
    };
    let csv = orders("samples/orders.csv");
    assert_eq!(csv.lines().count(), 4);
    assert_eq!(orders("samples/orders.xlsx"), csv);

    let dir = tempfile::tempdir().unwrap();
    let first4: String = std::fs::read_to_string(root().join("samples/orders.csv"))
        .unwrap()
        .lines()
        .take(5)
        .map(|l| l.to_string() + "\n")
        .collect();
    let small = dir.path().join("first4.csv");
    std::fs::write(&small, first4).unwrap();
    let want = orders(path_str(&small));
    assert_eq!(want.lines().count(), 2);
    for f in [
        "tests/fixtures/orders.xls",
        "tests/fixtures/orders.ods",
        "tests/fixtures/dates_1904.xlsx",
        "tests/fixtures/two_sheets.xlsx",
    ] {
        assert_eq!(orders(f), want, "{f}");
    }
    let first: serde_json::Value = serde_json::from_str(want.lines().next().unwrap()).unwrap();
    assert_eq!(first["processStartTime"], "2026-12-01 09:00:00");
    assert_eq!(first["branchInfo"]["branchId"], "00123");
    assert_eq!(first["metaValues"]["campaign"], "WINTER-2026");
    assert_eq!(first["products"][0]["plasticCode"], "0001");
    assert_eq!(first["products"][0]["quantity"], 100);
    assert_eq!(first["orderingPartyInfo"]["orderingPartyType"], "BANK");
}

#[test]
fn mistakes_sample_names_every_cell() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("mistakes.csv");
    let r = run(&[
        "validate",
        "samples/orders_with_mistakes.xlsx",
        "--report",
        path_str(&report),
    ]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);
    for want in [
        "Orders!F6 quantity: must be between 1 and 500, got 0",
        "Orders!A8 branch_id: `4567` is shorter than the 5 characters",
        "Orders!F9 quantity: must be a whole number, got `ten`",
        "Orders!D11 bin: must be 6 or 8 digits",
        "Orders!L12 process_start_time: must be a date and time written YYYY-MM-DD HH:mm:ss",
        "Orders!J14 delivery_address: needs at least 3 parts",
        "Orders!G15 plastic_code: the cell shows the formula error #N/A",
        "Orders!K16 pin_code: must be 6 digits",
        "Orders!B17 branch_name: missing",
        "Orders row 18 product: duplicate product line: row 19",
    ] {
        assert!(r.stderr.contains(want), "missing {want:?} in\n{}", r.stderr);
    }
    let (header, rows) = read_report(&report);
    let status = col(&header, "status");
    let by_row: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[2].as_str(), r[status].as_str()))
        .collect();
    assert_eq!(by_row.len(), 16, "the blank row is not a data row");
    assert_eq!(by_row[0], ("5", "HELD"));
    assert_eq!(by_row[1], ("6", "INVALID"));
    assert_eq!(by_row[2], ("7", "HELD"));
    assert_eq!(&by_row[14..], [("20", "VALID"), ("21", "VALID")]);
    let errors = col(&header, "errors");
    assert!(
        rows[0][errors].contains("held: order DCB-") && rows[0][errors].contains("invalid row 6"),
        "{}",
        rows[0][errors]
    );
    assert!(r.stderr.contains(
        "16 rows: 2 valid, 11 invalid, 3 held; 1 row with a warning; 1 order ready, 2 held (1 blank row skipped)"
    ));
    // `physical` is no mistake: read as PHYSICAL, with a warning saying so
    // (its order is held by another row).
    let row13 = rows.iter().find(|r| r[2] == "13").unwrap();
    assert_eq!(row13[status], "HELD");
    let warnings = col(&header, "warnings");
    assert!(
        row13[warnings].contains("E13 card_type: `physical` read as PHYSICAL"),
        "{}",
        row13[warnings]
    );
    assert!(!row13[errors].contains("physical"), "{}", row13[errors]);
}

#[test]
fn held_orders_go_out_partially_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("o.csv");
    std::fs::write(
        &f,
        format!(
            "{HEADER}\n{}\n{}\n",
            row("00123", "01", "10"),
            row("00123", "02", "0")
        ),
    )
    .unwrap();
    let r = run(&["validate", path_str(&f), "--print-orders"]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE);
    assert_eq!(r.stdout, "", "a held order is not printed");
    let r = run(&[
        "validate",
        path_str(&f),
        "--print-orders",
        "--allow-partial-orders",
    ]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE);
    let order: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(order["products"].as_array().unwrap().len(), 1);
}

#[test]
fn order_ref_groups_and_disagreeing_rows_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("o.csv");
    let body = format!(
        "order_ref,{HEADER}\nR-1,{}\nR-1,{}\nR-1,{}\nR-2,{}\n",
        row("00123", "01", "10"),
        row("00123", "02", "5"),
        row("00999", "03", "5"),
        row("00123", "04", "7"),
    );
    std::fs::write(&f, body).unwrap();
    let report = dir.path().join("r.csv");
    let r = run(&["validate", path_str(&f), "--report", path_str(&report)]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE);
    assert!(
        r.stderr.contains(
            "o!B4 branch_id: `00999` differs from `00123` on rows 2, 3 of the same order"
        ),
        "{}",
        r.stderr
    );
    let (header, rows) = read_report(&report);
    let (s, o) = (col(&header, "status"), col(&header, "order_id"));
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[s].as_str(), r[o].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("HELD", "R-1"),
            ("HELD", "R-1"),
            ("INVALID", "R-1"),
            ("VALID", "R-2")
        ]
    );
}

/// Rows of one order by the order key (no order_ref) that disagree on an
/// order-level field outside the key: the branch name.
#[test]
fn rows_of_one_order_must_agree_on_the_branch_name() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("o.csv");
    let renamed = row("00123", "03", "5").replace("Pune Camp Branch", "Pune Camp Br.");
    let body = format!(
        "{HEADER}\n{}\n{}\n{renamed}\n",
        row("00123", "01", "10"),
        row("00123", "02", "5"),
    );
    std::fs::write(&f, body).unwrap();
    let report = dir.path().join("r.csv");
    let r = run(&["validate", path_str(&f), "--report", path_str(&report)]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "o!B4 branch_name: `Pune Camp Br.` differs from `Pune Camp Branch` on rows 2, 3 of the same order"
        ),
        "{}",
        r.stderr
    );
    let (header, rows) = read_report(&report);
    let s = col(&header, "status");
    let got: Vec<&str> = rows.iter().map(|r| r[s].as_str()).collect();
    assert_eq!(got, ["HELD", "HELD", "INVALID"]);
}

#[test]
fn numeric_ids_are_refused_unless_the_rules_give_a_width() {
    let r = run(&["validate", "tests/fixtures/numeric_ids.xlsx"]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE);
    assert!(
        r.stderr.contains("Orders!A4 branch_id: `123` is shorter"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("format the column as Text"),
        "{}",
        r.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[id_widths]\nbranch_id = 5\nplastic_code = 4\n").unwrap();
    let r = run(&[
        "validate",
        "tests/fixtures/numeric_ids.xlsx",
        "--rules",
        path_str(&rules),
        "--print-orders",
    ]);
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    let first: serde_json::Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["branchInfo"]["branchId"], "00123");
    assert_eq!(first["products"][0]["plasticCode"], "0001");
}

#[test]
fn rules_file_tightens_and_bad_rules_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(&[
        "validate",
        "samples/orders.csv",
        "--rules",
        "samples/rules.example.toml",
    ]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("orders!F5 quantity: must be between 1 and 150, got 200"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("is not a product of the rules file's catalog"),
        "{}",
        r.stderr
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[patterns]\npin_code = \"(\"\n").unwrap();
    let r = run(&["validate", "samples/orders.csv", "--rules", path_str(&bad)]);
    assert_eq!(r.code, exit::USAGE);
    assert!(
        r.stderr.contains("bad.toml") && r.stderr.contains("patterns.pin_code"),
        "{}",
        r.stderr
    );
}

#[test]
fn every_report_format_holds_every_row() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["csv", "jsonl", "xlsx"] {
        let report = dir.path().join(format!("r.{ext}"));
        let r = run(&[
            "validate",
            "samples/orders_with_mistakes.xlsx",
            "--report",
            path_str(&report),
        ]);
        assert_eq!(r.code, exit::ROWS_NOT_DONE, "{ext}: {}", r.stderr);
        assert!(dir.path().join(format!("r.{ext}.run.json")).exists());
        let statuses: Vec<String> = match ext {
            "csv" => {
                let (h, rows) = read_report(&report);
                rows.iter().map(|r| r[col(&h, "status")].clone()).collect()
            }
            "jsonl" => std::fs::read_to_string(&report)
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["status"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect(),
            _ => {
                use calamine::{Reader, Xlsx, open_workbook};
                let mut wb: Xlsx<_> = open_workbook(&report).unwrap();
                assert_eq!(wb.sheet_names(), ["Report", "Summary", "Run facts"]);
                let range = wb.worksheet_range("Report").unwrap();
                let head: Vec<String> = range
                    .rows()
                    .next()
                    .unwrap()
                    .iter()
                    .map(|c| c.to_string())
                    .collect();
                let s = head.iter().position(|h| h == "status").unwrap();
                range.rows().skip(1).map(|r| r[s].to_string()).collect()
            }
        };
        assert_eq!(statuses.len(), 16, "{ext}");
        assert_eq!(
            statuses.iter().filter(|s| *s == "INVALID").count(),
            11,
            "{ext}"
        );
        assert_eq!(statuses.iter().filter(|s| *s == "HELD").count(), 3, "{ext}");
    }
}

#[test]
fn spreadsheet_formulas_in_cells_are_neutralised_in_the_csv_report() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("o.csv");
    let evil = row("00123", "01", "10").replace(
        "Pune Camp Branch",
        "\"=HYPERLINK(\"\"http://x\"\",\"\"click\"\")\"",
    );
    std::fs::write(&f, format!("{HEADER},note\n{evil},@SUM(A1)\n")).unwrap();
    let report = dir.path().join("r.csv");
    run(&["validate", path_str(&f), "--report", path_str(&report)]);
    let (h, rows) = read_report(&report);
    assert_eq!(
        rows[0][col(&h, "branch_name")],
        "'=HYPERLINK(\"http://x\",\"click\")"
    );
    assert_eq!(
        rows[0][col(&h, "note")],
        "'@SUM(A1)",
        "unknown columns are echoed, and neutralised"
    );
}

#[test]
fn output_does_not_depend_on_the_number_of_threads() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.csv");
    let mut body = String::from(HEADER) + "\n";
    for i in 0..30_000 {
        let qty = if i % 97 == 0 {
            "0".to_string()
        } else {
            (i % 400 + 1).to_string()
        };
        body += &row(&format!("{:05}", i / 3), &format!("{:02}", i % 3 + 1), &qty);
        body.push('\n');
    }
    std::fs::write(&f, body).unwrap();
    let mut reports = Vec::new();
    for threads in ["1", "2", "4"] {
        let report = dir.path().join(format!("r{threads}.csv"));
        let r = run(&[
            "validate",
            path_str(&f),
            "--threads",
            threads,
            "--report",
            path_str(&report),
        ]);
        assert_eq!(r.code, exit::ROWS_NOT_DONE);
        reports.push(std::fs::read(&report).unwrap());
    }
    assert_eq!(reports[0], reports[1]);
    assert_eq!(reports[0], reports[2]);
}

#[test]
fn json_summary_adds_up() {
    let r = run(&[
        "validate",
        "samples/orders_with_mistakes.xlsx",
        "--json",
        "-q",
    ]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE);
    assert_eq!(r.stderr, "", "quiet");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let c = &v["counts"];
    let n = |k: &str| c[k].as_u64().unwrap();
    assert_eq!(n("valid") + n("invalid") + n("held"), n("rows"));
    assert_eq!(v["exit_code"], 1);
}

#[test]
fn verbose_says_what_was_detected() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("semi.csv");
    let body = format!(
        "Branch order\n\n{}\n{}\n",
        HEADER.replace(',', ";"),
        row("00123", "01", "5").replace(',', ";")
    );
    std::fs::write(&f, body).unwrap();
    let r = run(&["validate", path_str(&f), "-v"]);
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    assert!(
        r.stderr.contains("delimiter ';' (detected)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("header on row 3"), "{}", r.stderr);
    assert!(r.stderr.contains("encoding ASCII"), "{}", r.stderr);
}

/// A CSV report of a comma-separated file takes shortcuts: the second pass
/// cuts records at the byte offsets the first pass found, and plain valid
/// rows are copied as they are. The same cells with semicolons go the long
/// way, parsed and written cell by cell. Both must give the same report.
#[test]
fn csv_report_shortcuts_write_what_the_long_way_writes() {
    let rest =
        "412345,PHYSICAL,5,0001,16,Y,Flat 1~Camp~Pune~MH,411001,2026-12-01 09:00:00,365,Priya Iyer";
    let lines = [
        HEADER.to_string(),
        format!("00101,Pune Camp,01,{rest}"),
        format!("00102,\"Pune, Camp\",01,{rest}"),
        format!("00103,\"Pune\",01,{rest}"), // needless quotes
        format!("00104, Pune ,01,{rest}"),   // padded
        format!("00105,=1+1,01,{rest}"),     // a formula
        String::new(),                       // a blank line
        format!("00106,\"Say \"\"hi\"\", Camp\",01,{rest}"),
        format!("00107,Pune\"s Camp,01,{rest}"), // a bare quote
        " , ,,,,,,,,,,,,".to_string(),           // a blank record
        format!("00108,Pune\u{a0},01,{rest}"),   // NBSP at the end
        format!("00109,\"Two\nlines\",01,{rest}"),
        format!("00110,Pune Camp,01,{}", rest.replace(",5,", ",0,")), // invalid
        format!("00110,Pune Camp,02,{rest}"),                         // held by it
        format!("00111,Pune Camp,01,{rest},extra"),                   // too many cells
        format!("00112,Pune Camp,01,{rest}"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let write = |sub: &str, text: String| {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        let p = dir.path().join(sub).join("orders.csv");
        std::fs::write(&p, text).unwrap();
        p
    };
    let lf = write("lf", lines.join("\n") + "\n");
    let crlf = write("crlf", lines.join("\r\n") + "\r\n");
    // Old Mac line ends: a CR alone ends each line.
    let cr = write("cr", lines.join("\r") + "\r");
    // The same cells, semicolon-separated, through the csv crate (and the
    // blank line kept, so that line numbers agree).
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(&lf)
        .unwrap();
    let mut semi_lines: Vec<String> = rdr
        .records()
        .map(|rec| {
            let mut w = csv::WriterBuilder::new()
                .delimiter(b';')
                .flexible(true)
                .from_writer(Vec::new());
            w.write_record(&rec.unwrap()).unwrap();
            let mut line = String::from_utf8(w.into_inner().unwrap()).unwrap();
            line.pop();
            line
        })
        .collect();
    semi_lines.insert(6, String::new());
    let semi = write("semi", semi_lines.join("\n") + "\n");

    let report = |input: &std::path::Path| {
        let out = input.with_extension("report.csv");
        let r = run(&[
            "validate",
            path_str(input),
            "--batch-id",
            "B",
            "--report",
            path_str(&out),
        ]);
        assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);
        // Byte for byte, but for the source file, which differs.
        let text = std::fs::read_to_string(&out).unwrap();
        let text = text.replace(path_str(input), "INPUT");
        (text, read_report(&out).1)
    };
    let want = report(&semi);
    assert_eq!(want.1.len(), 13, "{:?}", want.1);
    assert_eq!(report(&lf).0, want.0);
    assert_eq!(report(&crlf).0, want.0);
    assert_eq!(report(&cr).0, want.0);
    // Spot checks of the long way itself.
    let by_branch = |b: &str| want.1.iter().find(|r| r[3] == b).unwrap().clone();
    assert_eq!(by_branch("00103")[4], "Pune");
    assert_eq!(by_branch("00104")[4], "Pune");
    assert_eq!(by_branch("00105")[4], "'=1+1");
    assert_eq!(by_branch("00106")[4], "Say \"hi\", Camp");
    assert_eq!(by_branch("00107")[4], "Pune\"s Camp");
    assert_eq!(by_branch("00108")[2], "11");
    assert_eq!(
        by_branch("00112")[2],
        "17",
        "line numbers count the multi-line cell"
    );
}

/// A sheet of several chunks (about 1 MiB each), most of whose lines are
/// each a whole record and some not (a cell over two lines, a blank
/// line): its report copies the rows it may as they are, unparsed, and
/// must read as the report of the same cells semicolon-separated, whose
/// every cell is written the long way.
#[test]
fn a_many_chunk_csv_report_copies_what_the_long_way_writes() {
    let rest =
        "412345,PHYSICAL,5,0001,16,Y,Flat 1~Camp~Pune~MH,411001,2026-12-01 09:00:00,365,Priya Iyer";
    let mut lines = vec![HEADER.to_string()];
    for i in 0..30_000u32 {
        let b = 10_000 + i;
        lines.push(match i % 8 {
            0 => format!("{b},\"Pune, Camp\",01,{rest}"),
            1 => format!("{b},\"Pune\",01,{rest}"),
            2 => format!("{b}, Pune ,01,{rest}"),
            3 => format!("{b},=1+1,01,{rest}"),
            4 => format!("{b},\"Say \"\"hi\"\", Camp\",01,{rest}"),
            5 => format!("{b},Pune\"s Camp,01,{rest}"),
            6 => format!("{b},Pune Camp,01,{}", rest.replace(",5,", ",0,")),
            _ => format!("{b},Pune Camp,01,{rest}"),
        });
        // A stretch whose records are not each one line.
        if (12_000..12_050).contains(&i) {
            lines.push(format!("{b},\"Two\nlines\",02,{rest}"));
            lines.push(String::new());
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let comma = dir.path().join("comma").join("orders.csv");
    let semi = dir.path().join("semi").join("orders.csv");
    for p in [&comma, &semi] {
        std::fs::create_dir(p.parent().unwrap()).unwrap();
    }
    std::fs::write(&comma, lines.join("\n") + "\n").unwrap();
    assert!(std::fs::metadata(&comma).unwrap().len() > 3 << 20);
    // The same records, semicolon-separated, a blank line where one was.
    let mut semi_text = String::new();
    for line in &lines {
        if !line.is_empty() {
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(line.as_bytes());
            let rec = rdr.records().next().unwrap().unwrap();
            let mut w = csv::WriterBuilder::new()
                .delimiter(b';')
                .flexible(true)
                .from_writer(Vec::new());
            w.write_record(&rec).unwrap();
            semi_text.push_str(std::str::from_utf8(&w.into_inner().unwrap()).unwrap());
        } else {
            semi_text.push('\n');
        }
    }
    std::fs::write(&semi, semi_text).unwrap();
    let report = |input: &std::path::Path| {
        let out = input.with_extension("report.csv");
        let r = run(&["validate", path_str(input), "--report", path_str(&out)]);
        assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);
        let text = std::fs::read_to_string(&out).unwrap();
        text.replace(path_str(input), "INPUT")
    };
    let want = report(&semi);
    // A row a line, and a line more for each cell over two lines.
    assert_eq!(want.lines().count(), 1 + 30_050 + 50);
    assert!(report(&comma) == want, "the reports differ");
}

#[test]
fn a_csv_report_with_a_byte_order_mark_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.csv");
    let marked = dir.path().join("marked.csv");
    for (report, extra) in [(&plain, None), (&marked, Some("--csv-bom"))] {
        let mut args = vec![
            "validate",
            "samples/orders.csv",
            "--report",
            path_str(report),
        ];
        args.extend(extra);
        let r = run(&args);
        assert_eq!(r.code, exit::OK, "{}", r.stderr);
    }
    let (plain_bytes, marked_bytes) = (
        std::fs::read(&plain).unwrap(),
        std::fs::read(&marked).unwrap(),
    );
    assert!(!plain_bytes.starts_with(b"\xEF\xBB\xBF"));
    assert_eq!(&marked_bytes[..3], b"\xEF\xBB\xBF");
    assert_eq!(
        &marked_bytes[3..],
        &plain_bytes[..],
        "the mark, then the same report"
    );
    assert_eq!(read_report(&marked), read_report(&plain));
    // Its run facts hash the bytes as written, mark and all.
    let r = run(&["verify", path_str(&marked)]);
    assert_eq!(r.code, exit::OK, "{}{}", r.stdout, r.stderr);
}

/// A workbook whose id columns Excel stored as numbers: `bin` is 8 digits
/// on most rows and 6 on one, `pin_code` 6 on most and 5 on one.
#[test]
fn a_bin_of_six_digits_among_eights_is_not_taken_for_lost_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("numbers.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in HEADER.split(',').enumerate() {
        ws.write_string(0, c as u16, h).unwrap();
    }
    let bins = [41234567.0, 41234568.0, 41234569.0, 412345.0, 41234570.0];
    let pins = [411001.0, 411002.0, 411003.0, 411004.0, 41105.0];
    for (i, (bin, pin)) in bins.iter().zip(pins).enumerate() {
        let r = i as u32 + 1;
        let text = row(&format!("{:05}", i + 1), "P1", "5");
        for (c, v) in text.split(',').enumerate() {
            ws.write_string(r, c as u16, v).unwrap();
        }
        ws.write_number(r, 3, *bin).unwrap();
        ws.write_number(r, 10, pin).unwrap();
    }
    wb.save(&path).unwrap();
    let report = dir.path().join("r.csv");
    let r = run(&["validate", path_str(&path), "--report", path_str(&report)]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);
    let (header, rows) = read_report(&report);
    let (status, errors) = (col(&header, "status"), col(&header, "errors"));
    let statuses: Vec<&str> = rows.iter().map(|r| r[status].as_str()).collect();
    assert_eq!(statuses, ["VALID", "VALID", "VALID", "VALID", "INVALID"]);
    assert!(
        rows[4][errors].contains("pin_code") && rows[4][errors].contains("leading zeros"),
        "{:?}",
        rows[4]
    );
    assert_eq!(rows[3][col(&header, "bin")], "412345");
}

/// A number whose cell format pads it with zeros (456 formatted `00000`
/// shows 00456) is read as the spreadsheet shows it.
#[test]
fn a_number_formatted_with_zeros_is_read_as_it_shows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("padded.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Orders & more").unwrap();
    let zeros = rust_xlsxwriter::Format::new().set_num_format("00000");
    let four = rust_xlsxwriter::Format::new().set_num_format("0000");
    for (c, h) in HEADER.split(',').enumerate() {
        ws.write_string(0, c as u16, h).unwrap();
    }
    for (i, branch) in [123.0, 456.0, 7890.0].iter().enumerate() {
        let r = i as u32 + 1;
        let text = row("00000", "P1", "5");
        for (c, v) in text.split(',').enumerate() {
            ws.write_string(r, c as u16, v).unwrap();
        }
        ws.write_number_with_format(r, 0, *branch, &zeros).unwrap();
        ws.write_number_with_format(r, 6, 1.0, &four).unwrap();
    }
    wb.save(&path).unwrap();
    let report = dir.path().join("r.csv");
    let r = run(&["validate", path_str(&path), "--report", path_str(&report)]);
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    let (header, rows) = read_report(&report);
    let branches: Vec<&str> = rows
        .iter()
        .map(|r| r[col(&header, "branch_id")].as_str())
        .collect();
    assert_eq!(branches, ["00123", "00456", "07890"]);
    assert!(
        rows.iter()
            .all(|r| r[col(&header, "plastic_code")] == "0001")
    );
}

/// A workbook whose id columns Excel stored as numbers in every row
/// (`0001` became 1, `01` became 1): each such cell has a warning; with a
/// catalog the product's error says the catalog lists `01`; with widths
/// the ids are padded and warned of no more; `--strict` and `warnings =
/// "refuse"` refuse the rows.
#[test]
fn ids_stored_as_numbers_warn_and_strict_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("numbers.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in HEADER.split(',').enumerate() {
        ws.write_string(0, c as u16, h).unwrap();
    }
    for r in 1..=3u32 {
        let text = row("00001", "01", "5");
        for (c, v) in text.split(',').enumerate() {
            ws.write_string(r, c as u16, v).unwrap();
        }
        ws.write_number(r, 0, f64::from(r)).unwrap(); // branch_id 0001, 0002...
        ws.write_number(r, 2, 1.0).unwrap(); // product_id 01
        ws.write_number(r, 6, 1.0).unwrap(); // plastic_code 0001
    }
    wb.save(&path).unwrap();

    // Warnings: the rows stay valid, each numeric id cell is named.
    let report = dir.path().join("r.csv");
    let r = run(&[
        "validate",
        path_str(&path),
        "--report",
        path_str(&report),
        "--json",
    ]);
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    let summary: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(summary["counts"]["warnings"], 3, "{summary}");
    assert_eq!(summary["counts"]["valid"], 3, "{summary}");
    for cell in ["Sheet1!A2", "Sheet1!C2", "Sheet1!G2"] {
        assert!(
            r.stderr.contains(&format!("{cell} "))
                && r.stderr.contains("is a number in the spreadsheet"),
            "{cell}: {}",
            r.stderr
        );
    }
    assert!(r.stderr.contains("3 rows with a warning"), "{}", r.stderr);
    let (header, rows) = read_report(&report);
    let warnings = col(&header, "warnings");
    assert!(
        rows.iter().all(|r| r[warnings].contains("product_id")
            && r[warnings].contains("leading zeros")
            && r[col(&header, "errors")].is_empty()),
        "{rows:?}"
    );
    // The XLSX report marks the cells apart from failed ones, and says so.
    let xlsx = dir.path().join("r.xlsx");
    let r = run(&["validate", path_str(&path), "--report", path_str(&xlsx)]);
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    common::assert_well_formed_xlsx(&xlsx);
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&xlsx).unwrap()).unwrap();
    let mut notes = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("xl/comments1.xml").unwrap(), &mut notes)
        .unwrap();
    assert!(notes.contains("warning: `1` is a number"), "{notes}");
    // Printed, only what a clerk acts on: row, status, order id, errors.
    let mut book = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("xl/workbook.xml").unwrap(), &mut book).unwrap();
    assert!(
        book.contains("_xlnm.Print_Area\" localSheetId=\"0\">Report!$A$1:$D$"),
        "{book}"
    );

    // A catalog that lists 01: the error says the zeros were lost.
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[catalog]]\nproduct_id = \"01\"\nbins = [\"412345\"]\nplastic_codes = [\"0001\"]\n",
    )
    .unwrap();
    let r = run(&["validate", path_str(&path), "--rules", path_str(&rules)]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("not a product of the rules file's catalog; the catalog lists `01`")
            && r.stderr.contains("id_widths.product_id = 2"),
        "{}",
        r.stderr
    );

    // Widths declared: padded, no warnings for them; the orders carry the
    // whole ids.
    std::fs::write(
        &rules,
        "[id_widths]\nbranch_id = 5\nproduct_id = 2\nplastic_code = 4\n",
    )
    .unwrap();
    let r = run(&[
        "validate",
        path_str(&path),
        "--rules",
        path_str(&rules),
        "--print-orders",
    ]);
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    assert!(
        !r.stderr.contains("is a number in the spreadsheet"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.contains("\"productId\":\"01\"") && r.stdout.contains("\"plasticCode\":\"0001\""),
        "{}",
        r.stdout
    );

    // --strict, or warnings = "refuse": every warned row refused.
    let r = run(&["validate", path_str(&path), "--strict"]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);
    assert!(
        r.stderr.contains("3 rows: 0 valid, 3 invalid"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("refused by --strict"), "{}", r.stderr);
    std::fs::write(&rules, "warnings = \"refuse\"\n").unwrap();
    let r = run(&["validate", path_str(&path), "--rules", path_str(&rules)]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);
    assert!(r.stderr.contains("3 invalid"), "{}", r.stderr);
    // ... or in the profile.
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[profiles.strict]\nwarnings = \"refuse\"\n[profiles.lenient]\n",
    )
    .unwrap();
    for (profile, want) in [("strict", exit::ROWS_NOT_DONE), ("lenient", exit::OK)] {
        let r = run(&[
            "validate",
            path_str(&path),
            "--config",
            path_str(&config),
            "--profile",
            profile,
        ]);
        assert_eq!(r.code, want, "{profile}: {}", r.stderr);
    }

    // A sheet made from the template (ids as Text) has no such warning.
    let template = dir.path().join("t.xlsx");
    assert_eq!(
        run(&["template", "order", "--out", path_str(&template)]).code,
        0
    );
    let r = run(&["validate", path_str(&template), "-v"]);
    assert!(!r.stderr.contains("is a number"), "{}", r.stderr);
}

/// A CSV file is copied to the temporary folder while it is first read: a
/// folder that cannot take it is named, with exit 3, no report.
#[test]
fn a_temporary_folder_that_cannot_take_the_copy_is_named() {
    let desk = Desk::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dcms-bulk"))
        .args(["validate", "samples/orders.csv", "--report"])
        .arg(desk.path("r.csv"))
        .current_dir(root())
        .env("TMPDIR", desk.path("no-such-folder"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::INPUT_UNREADABLE), "{said}");
    assert!(
        said.contains("writing its private copy in the temporary folder")
            && said.contains("no-such-folder")
            && !said.contains("check the path"),
        "{said}"
    );
    assert!(!desk.path("r.csv").exists(), "nothing written");
}

#[test]
fn a_file_too_large_for_the_memory_allowed_is_refused_before_it_is_read() {
    let desk = Desk::new();
    // About 40 MB of orders.
    let big = desk.sheet("big.csv", 250_000, 1);
    let capped = |file: &std::path::Path| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 262144 && exec \"$0\" validate \"$1\" --report \"$2\" -q")
            .arg(env!("CARGO_BIN_EXE_dcms-bulk"))
            .arg(file)
            .arg(desk.path("r.csv"))
            .output()
            .unwrap()
    };
    let out = capped(&big);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::INPUT_UNREADABLE), "{said}");
    assert!(
        said.contains("ulimit -v") && said.contains("256 MiB"),
        "{said}"
    );
    assert!(!desk.path("r.csv").exists(), "nothing written");
    // A small sheet fits in the same room.
    let small = capped(&root().join("samples/orders.csv"));
    assert_eq!(
        small.status.code(),
        Some(exit::OK),
        "{}",
        String::from_utf8_lossy(&small.stderr)
    );
}
