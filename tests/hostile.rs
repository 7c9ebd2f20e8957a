//! Bad input: each case ends with a one-line message naming the file (and
//! the line, row or cell where there is one) and a documented exit code,
//! in bounded time, never a panic.

mod common;

use std::path::Path;

use common::*;
use dcms_bulk::exit;

fn check_file(path: &Path) -> Run {
    let r = run(&["validate", path_str(path)]);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    r
}

fn expect_input_error(path: &Path, want: &str) {
    let r = check_file(path);
    assert_eq!(
        r.code,
        exit::INPUT_UNREADABLE,
        "{}: {}",
        path.display(),
        r.stderr
    );
    let first = r.stderr.lines().next().unwrap_or_default();
    assert!(first.contains(path_str(path)), "names the file: {first}");
    assert!(first.contains(want), "{first:?} should contain {want:?}");
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn broken_workbooks() {
    let f = |n: &str| root().join("tests/fixtures").join(n);
    expect_input_error(
        &f("picture.xlsx"),
        "not a spreadsheet: the file is a PNG image",
    );
    expect_input_error(&f("truncated.xlsx"), "damaged or truncated");
    expect_input_error(&f("password.xlsx"), "password-protected");
    expect_input_error(&f("zipbomb.xlsx"), "would inflate from");
}

#[test]
fn empty_and_header_only() {
    let dir = tempfile::tempdir().unwrap();
    expect_input_error(&write(dir.path(), "empty.csv", ""), "the file is empty");
    expect_input_error(
        &write(dir.path(), "header.csv", format!("{HEADER}\r\n")),
        "no data rows below it",
    );
    expect_input_error(&write(dir.path(), "blanks.csv", "\n\n,,,\n"), "is empty");
    expect_input_error(
        &write(
            dir.path(),
            "prose.csv",
            "Dear team,\nplease find the orders attached.\n",
        ),
        "no header row",
    );
}

/// A value quoted from a sheet, and a message from the process that
/// checks a legacy workbook, stay inside one line of the log: a cell
/// cannot start a line that passes for another log line.
#[test]
fn messages_stay_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let forged = "2026-12-04T17:13:48.430Z dcms-bulk: error: forged";
    let sheet = write(
        dir.path(),
        "no_header.csv",
        format!("\"ABC\n{forged}\",x\u{1b}[2J,y\nnot,a,header\n"),
    );
    let r = check_file(&sheet);
    assert_eq!(r.code, exit::INPUT_UNREADABLE, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("ABC\\n2026-12-04T17:13:48.430Z"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("x\\u{1b}[2J"), "{}", r.stderr);
    for name in ["truncated.xls", "truncated_late.xls", "fat_chain_loops.xls"] {
        let path = root().join("tests/fixtures/hostile").join(name);
        let r = check_file(&path);
        assert_eq!(r.code, exit::INPUT_UNREADABLE, "{name}: {}", r.stderr);
        for line in r.stderr.lines() {
            assert_eq!(line.matches("dcms-bulk:").count(), 1, "{name}: {line}");
            assert_eq!(line.matches(name).count(), 1, "{name}: {line}");
        }
    }
    let cut = std::fs::read(root().join("tests/fixtures/orders.xls")).unwrap();
    let cut = write(dir.path(), "cut.xls", &cut[..3000]);
    let r = check_file(&cut);
    assert_eq!(r.code, exit::INPUT_UNREADABLE, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert_eq!(r.stderr.matches("cut.xls").count(), 1, "{}", r.stderr);
}

#[test]
fn missing_and_duplicate_columns() {
    let dir = tempfile::tempdir().unwrap();
    let no_qty = HEADER.replace(",quantity", "");
    let p = write(dir.path(), "noqty.csv", format!("{no_qty}\n1,2\n"));
    expect_input_error(
        &p,
        "missing required column quantity; the headers found are: branch_id, branch_name",
    );
    let p = write(
        dir.path(),
        "dup.csv",
        format!("{HEADER},Qty\n{},5\n", row("00123", "01", "5")),
    );
    expect_input_error(
        &p,
        "duplicate column: `quantity` (column F) and `Qty` (column O)",
    );
}

#[test]
fn unbalanced_quote_names_the_line_it_opened_on() {
    let dir = tempfile::tempdir().unwrap();
    let good = row("00123", "01", "5");
    let bad = row("00123", "02", "5").replace("Pune Camp Branch", "\"Pune Camp Branch");
    let body = format!(
        "{HEADER}\n{good}\n{bad}\n{}\n{}\n",
        row("00123", "03", "5"),
        row("00123", "04", "5")
    );
    expect_input_error(&write(dir.path(), "quote.csv", body), "line 3:");
    // At the very end of the file, too.
    let body = format!(
        "{HEADER}\n{good}\n{}\n",
        row("00124", "01", "5").replace("Priya Iyer", "\"Priya Iyer")
    );
    expect_input_error(
        &write(dir.path(), "quote_end.csv", body),
        "line 3: a quote opened on this record is never closed",
    );
}

/// A cancel or upgrade sheet whose row has more cells than its header: the
/// row is INVALID and said, its extra cells cut from the report line, and
/// the report is written (it once failed to be, exit 5).
#[test]
fn a_long_row_of_a_cancel_sheet_is_invalid_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let sheet = write(
        dir.path(),
        "cancels.csv",
        "order_id,branch_id,reason\nDCB-a8738225cd6973ff5946,00123,Branch asked\nDCB-9ee1d5df49cd8a5ab18d,00890,Duplicate,extra,more\n",
    );
    let report = dir.path().join("r.csv");
    let r = run(&["validate", path_str(&sheet), "--report", path_str(&report)]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);
    assert!(
        r.stderr.contains("5 cells, but the header has 3"),
        "{}",
        r.stderr
    );
    let text = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[2].contains(",INVALID,"), "{text}");
    assert!(!lines[2].contains("extra"), "{text}");
}

#[test]
fn ragged_rows_are_invalid_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let short = "00123,Pune Camp Branch,01,412345";
    let long = row("00124", "01", "5") + ",extra";
    let p = write(
        dir.path(),
        "ragged.csv",
        format!("{HEADER}\n{}\n{short}\n{long}\n", row("00125", "01", "5")),
    );
    let r = check_file(&p);
    assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("ragged row 3 row: has 4 cells but the header has 14"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("ragged!O4 row: has a value in column O, which has no header"),
        "{}",
        r.stderr
    );
}

#[test]
fn encodings() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{HEADER}\n{}\n",
        row("00123", "01", "5").replace("Pune Camp Branch", "Pune Café Branch")
    );
    // UTF-16LE with BOM, as Excel's "Unicode text" writes it.
    let mut utf16 = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    // Windows-1252: é is one byte, 0xE9.
    let cp1252: Vec<u8> = text
        .chars()
        .map(|c| if c == 'é' { 0xE9 } else { c as u8 })
        .collect();
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice(text.as_bytes());
    for (name, bytes, note) in [
        ("utf16.csv", utf16, "UTF-16LE"),
        ("cp1252.csv", cp1252, "Windows-1252"),
        ("bom.csv", bom, "UTF-8 with BOM"),
    ] {
        let p = write(dir.path(), name, bytes);
        let r = run(&["validate", path_str(&p), "-v", "--print-orders"]);
        assert_eq!(r.code, exit::OK, "{name}: {}", r.stderr);
        assert!(r.stderr.contains(note), "{name}: {}", r.stderr);
        assert!(
            r.stdout.contains("Pune Café Branch"),
            "{name}: {}",
            r.stdout
        );
    }
    // UTF-8 first, then a stray Windows-1252 byte: a mixed file is refused.
    let mut mixed = text.clone().into_bytes();
    mixed.extend_from_slice(
        row("00124", "01", "5")
            .replace("Pune Camp", "Pune Caf\u{1} ")
            .as_bytes(),
    );
    let i = mixed.len() - 60;
    mixed[i] = 0xE9;
    expect_input_error(
        &write(dir.path(), "mixed.csv", mixed),
        "line 3: byte 0xE9 is not valid UTF-8",
    );
    expect_input_error(
        &write(dir.path(), "nul.csv", b"branch_id\0,x\n"),
        "NUL bytes",
    );
}

/// The encoding is read from the first MiB and confirmed over the rest
/// while the rows are checked: a file whose first byte that is not ASCII
/// comes after the first MiB is decided as if read whole first.
#[test]
fn encodings_decided_past_the_first_mib() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 14_000; // about 1.6 MB
    let body = |last: &[u8]| {
        let mut b = format!("{HEADER}\n").into_bytes();
        for i in 1..rows {
            b.extend_from_slice(row(&format!("{i:05}"), "01", "5").as_bytes());
            b.push(b'\n');
        }
        b.extend_from_slice(last);
        b.push(b'\n');
        assert!(b.len() > 3 << 19, "{}", b.len());
        b
    };
    let last = row("99999", "01", "5");
    let line = rows + 1;
    // Windows-1252 (é as 0xE9) only in the last row: read as Windows-1252.
    let cp1252 = last.replace("Pune Camp", "Pune Caf\u{1}");
    let cp1252: Vec<u8> = cp1252
        .bytes()
        .map(|b| if b == 1 { 0xE9 } else { b })
        .collect();
    let p = write(dir.path(), "late1252.csv", body(&cp1252));
    let report = dir.path().join("late1252.report.csv");
    let r = run(&[
        "validate",
        path_str(&p),
        "-v",
        "--print-orders",
        "--report",
        path_str(&report),
    ]);
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    let note = format!("encoding Windows-1252 (line {line} is not UTF-8 and nothing before it is)");
    assert!(r.stderr.contains(&note), "{}", r.stderr);
    assert!(r.stdout.contains("Pune Caf\u{e9} Branch"), "decoded");
    let (_, report_rows) = read_report(&report);
    assert_eq!(report_rows.len(), rows, "every row once");

    // UTF-8 only in the last row: UTF-8, not ASCII.
    let utf8 = last.replace("Pune Camp", "Pune Caf\u{e9}");
    let p = write(dir.path(), "lateutf8.csv", body(utf8.as_bytes()));
    let r = run(&["validate", path_str(&p), "-v"]);
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    assert!(r.stderr.contains("encoding UTF-8\n"), "{}", r.stderr);

    // All ASCII.
    let p = write(dir.path(), "ascii.csv", body(last.as_bytes()));
    let r = run(&["validate", path_str(&p), "-v"]);
    assert!(r.stderr.contains("encoding ASCII"), "{}", r.stderr);

    // UTF-8 early, a Windows-1252 byte late: refused, naming its line.
    let mut mixed = body(&cp1252);
    let at = mixed.len() / 10;
    let at = at + mixed[at..].iter().position(|&b| b == b'P').unwrap();
    mixed.splice(at..at + 1, "\u{c9}".bytes());
    expect_input_error(
        &write(dir.path(), "latemixed.csv", mixed),
        &format!("line {line}: byte 0xE9 is not valid UTF-8"),
    );
    // A NUL byte late.
    let nul = last.replace("Priya", "Pri\0ya");
    expect_input_error(
        &write(dir.path(), "latenul.csv", body(nul.as_bytes())),
        &format!("line {line}: the file holds NUL bytes"),
    );
}

#[test]
fn huge_cell_and_many_columns_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(20 * 1024 * 1024);
    let p = write(
        dir.path(),
        "bigcell.csv",
        format!(
            "{HEADER}\n{}\n",
            row("00123", "01", "5").replace("Pune Camp Branch", &big)
        ),
    );
    let started = std::time::Instant::now();
    let r = check_file(&p);
    assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "bigcell!B2 branch_name: holds 20971520 characters; a cell holds at most 32767"
        ),
        "{}",
        &r.stderr[..r.stderr.len().min(500)]
    );
    assert!(
        r.stderr.len() < 10_000,
        "the value is not echoed in messages"
    );
    assert!(started.elapsed().as_secs() < 60);

    let mut header = String::from(HEADER);
    let mut line = row("00123", "01", "5");
    // As wide as a spreadsheet goes (16,384 columns in all).
    for i in 0..16_000 {
        header += &format!(",extra{i}");
        line += ",v";
    }
    let p = write(dir.path(), "wide.csv", format!("{header}\n{line}\n"));
    let report = dir.path().join("wide.report.csv");
    let r = run(&["validate", path_str(&p), "--report", path_str(&report)]);
    assert_eq!(r.code, exit::OK, "{}", &r.stderr[..r.stderr.len().min(500)]);
    let (h, rows) = read_report(&report);
    assert_eq!(h.len(), 4 + 14 + 16_000 + 3);
    assert_eq!(rows.len(), 1);
}

#[test]
fn usage_errors() {
    let r = run(&["validate"]);
    assert_eq!(r.code, exit::USAGE);
    let r = run(&["validate", "samples/orders.csv", "--report", "out.txt"]);
    assert_eq!(r.code, exit::USAGE);
    assert!(r.stderr.contains(".csv, .jsonl or .xlsx"), "{}", r.stderr);
    let r = run(&["validate", "samples/orders.csv", "--delimiter", "x"]);
    assert_eq!(r.code, exit::USAGE);
    let r = run(&["validate", "samples/orders.csv", "--sheet", "Orders"]);
    assert_eq!(r.code, exit::USAGE);
    let r = run(&["validate", "samples/orders.xlsx", "--sheet", "Nope"]);
    assert_eq!(r.code, exit::INPUT_UNREADABLE);
    assert!(
        r.stderr
            .contains("no sheet `Nope`; the workbook has: Orders"),
        "{}",
        r.stderr
    );
    let r = run(&["validate", "no/such/file.csv"]);
    assert_eq!(r.code, exit::INPUT_UNREADABLE);
    assert!(r.stderr.contains("no/such/file.csv"), "{}", r.stderr);
}

/// A file changed between the pass that checks the rows and the one that
/// writes the report (an editor saving over it): the file is read once, so
/// the report holds the rows that were checked, and its run facts the hash
/// of the bytes those rows came from, whatever the file holds by then.
#[test]
fn a_file_changed_after_the_check_leaves_the_report_of_what_was_checked() {
    use dcms_bulk::{lines, pipeline};
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<String> = (0..2000)
        .map(|i| row(&format!("{:05}", 10_000 + i), "01", "10"))
        .collect();
    let original = format!("{HEADER}\n{}\n", rows.join("\n"));
    let changes = [
        ("a value", original.replacen("10500,", "30500,", 1)),
        (
            "a row removed",
            original.replacen(&format!("{}\n", row("10500", "01", "10")), "", 1),
        ),
        (
            "a row added",
            format!("{original}{}\n", row("19999", "01", "10")),
        ),
    ];
    for (what, changed) in changes {
        for ext in ["csv", "jsonl"] {
            let input = dir.path().join("orders.csv");
            std::fs::write(&input, &original).unwrap();
            let checked = pipeline::check(&input, &pipeline::CheckOpts::default()).unwrap();
            std::fs::write(&input, &changed).unwrap();
            let mut facts = checked.facts("validate", serde_json::json!({}), "t".into());
            let out = dir.path().join(format!("r.{ext}"));
            let target = dcms_bulk::report::Target::at(&out).unwrap();
            lines::order_report(&checked, &target, false, &mut facts, None).expect(what);
            let report = std::fs::read_to_string(&out).unwrap();
            assert_eq!(
                report.lines().count(),
                2000 + usize::from(ext == "csv"),
                "{what}"
            );
            assert!(report.contains("10500"), "{what}, {ext}: the row checked");
            assert!(
                !report.contains("30500") && !report.contains("19999"),
                "{what}, {ext}"
            );
            assert_eq!(
                facts.input.sha256,
                hex::encode(sha2::Sha256::digest(original.as_bytes())),
                "{what}, {ext}: the hash of what was read"
            );
        }
    }
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

#[cfg(unix)]
#[test]
fn fifos_devices_and_folders_are_refused_at_once_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("orders.csv");
    mkfifo(&fifo);
    let sheet = write(
        dir.path(),
        "ok.csv",
        std::fs::read(root().join("samples/orders.csv")).unwrap(),
    );
    let started = std::time::Instant::now();
    for (args, code, want) in [
        (
            vec!["validate", path_str(&fifo)],
            exit::INPUT_UNREADABLE,
            "a named pipe (FIFO), not a regular file",
        ),
        (
            vec!["validate", "/dev/zero"],
            exit::INPUT_UNREADABLE,
            "a device, not a regular file",
        ),
        (
            vec!["cancel", path_str(&fifo), "--sandbox"],
            exit::INPUT_UNREADABLE,
            "a named pipe",
        ),
        (
            vec!["validate", path_str(&sheet), "--rules", path_str(&fifo)],
            exit::USAGE,
            "a named pipe",
        ),
        (
            vec![
                "submit",
                path_str(&sheet),
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--tenant",
                "A",
                "--token-file",
                path_str(&fifo),
            ],
            exit::USAGE,
            "token file",
        ),
        (
            vec![
                "submit",
                path_str(&sheet),
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--tenant",
                "A",
                "--token-file",
                "/dev/zero",
            ],
            exit::USAGE,
            "a device",
        ),
        (
            vec![
                "submit",
                path_str(&sheet),
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--tenant",
                "A",
                "--config",
                path_str(&fifo),
            ],
            exit::USAGE,
            "config file",
        ),
    ] {
        let r = run(&args);
        assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
    }
    assert!(started.elapsed().as_secs() < 20, "none of them blocked");
}

#[test]
fn no_order_leaves_before_the_report_is_known_to_be_writable() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 5, 1);
    std::fs::create_dir(desk.path("taken.csv")).unwrap();
    let mut bad = vec![
        (desk.path("taken.csv"), "it is a folder, not a regular file"),
        (desk.path("missing/r.csv"), "the folder"),
    ];
    #[cfg(unix)]
    {
        mkfifo(&desk.path("pipe.csv"));
        bad.push((desk.path("pipe.csv"), "it is a named pipe (FIFO)"));
    }
    for (report, want) in bad {
        let out = desk.submit(
            &sheet,
            &sb.base,
            "ACME",
            &["--report", report.to_str().unwrap()],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(exit::USAGE), "{err}");
        assert!(err.contains(want), "{want}: {err}");
        assert_eq!(
            sb.inspect("/stats")["tenants"]["ACME"],
            serde_json::Value::Null,
            "nothing sent"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = std::fs::metadata(desk.path("pipe.csv"))
            .unwrap()
            .file_type();
        assert!(t.is_fifo(), "the FIFO was not replaced by a file");
    }

    // A killed run's temporary report files are removed by the next run.
    let stale = desk.write(".orders.report.csv.Ab12Cd.partial", "half a report");
    let stale_facts = desk.write(".orders.report.csv.run.json.Zz99Yy.partial", "{");
    let other = desk.write(".other.csv.Ab12Cd.partial", "not ours to remove");
    let out = desk.submit(&sheet, &sb.base, "ACME", &[]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    assert!(!stale.exists() && !stale_facts.exists());
    assert!(other.exists(), "only this report's own");
}

/// `validate FILE` with the address space capped at 1 GiB where the shell
/// can do it: what once took all the memory there was now dies (and
/// fails the test) instead of passing on a large machine.
fn capped(path: &Path) -> Run {
    if cfg!(unix) {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 1048576 && exec \"$0\" validate \"$1\"")
            .arg(bin().get_program())
            .arg(path)
            .output()
            .expect("run sh");
        let r = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(!r.stderr.contains("memory allocation"), "{}", r.stderr);
        return r;
    }
    check_file(path)
}

/// Every file in `tests/fixtures/hostile` once crashed, hung or blew up a
/// reader: now each is a damaged workbook (exit 3) or a sheet with bad
/// cells (exit 1), named, in bounded time, never a panic.
#[test]
fn files_that_once_crashed_a_reader_are_answered() {
    let dir = root().join("tests/fixtures/hostile");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let started = std::time::Instant::now();
        let r = capped(&path);
        assert!(
            r.code == exit::INPUT_UNREADABLE || r.code == exit::ROWS_NOT_DONE,
            "{}: exit {}: {}",
            path.display(),
            r.code,
            r.stderr
        );
        assert!(
            r.stderr.contains(path_str(&path)),
            "names the file: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("RUST_BACKTRACE"), "{}", r.stderr);
        assert!(started.elapsed().as_secs() < 20, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 3);
    // What each says: every substring must be in its message. Found by
    // bench/fuzz.py: the xlsx and ods ones once aborted asking for
    // gigabytes, the cut ods one looped for ever (session 10); a FAT whose
    // chain never ends grew until memory ran out, and in the capped child
    // it dies, which is a damaged file.
    let says: [(&str, &[&str]); 9] = [
        ("date_out_of_range.xlsx", &["Orders!L2 process_start_time"]),
        ("truncated.xls", &["the workbook is damaged"]),
        (
            "ods_cut_inside_an_element.ods",
            &["ends inside 4 open elements"],
        ),
        (
            "shared_strings_count_lies.xlsx",
            &["claims 4294967295 strings"],
        ),
        (
            "cell_at_xfd1048576.xlsx",
            &["over the limit of 8388608 cells", "--max-cells"],
        ),
        ("row_beyond_excel.xlsx", &["beyond Excel's 1048576 rows"]),
        (
            "rows_repeated_a_billion_times.ods",
            &["span 1000000000 rows"],
        ),
        (
            "fat_chain_loops.xls",
            &["the workbook is damaged", "ran out of memory"],
        ),
        (
            "damaged_password_container.xlsx",
            &["the workbook is damaged"],
        ),
    ];
    for (file, parts) in says {
        let r = check_file(&dir.join(file));
        for part in parts {
            assert!(r.stderr.contains(part), "{file}: {part}: {}", r.stderr);
        }
    }
    // A real one still reads.
    assert_eq!(
        check_file(&root().join("tests/fixtures/orders.ods")).code,
        exit::OK
    );
}

/// A cell of megabytes that needs quoting (line breaks in it) costs time in
/// proportion to its size in every report, and messages quote only its
/// start: the CSV report of one such cell took 20 s (quadratic) before.
#[test]
fn a_cell_of_megabytes_costs_linear_time_and_is_quoted_short() {
    let dir = tempfile::tempdir().unwrap();
    let big = format!("\"{}\"", "Camp\nRoad ".repeat(800_000)); // 8 MB
    let line = |branch: &str, name: &str| {
        format!(
            "{branch},{name},P1,412345,PHYSICAL,10,0001,16,Y,Flat 1~Camp~Pune~MH,411001,2026-12-01 09:00:00,365,Priya\n"
        )
    };
    let text = format!("{HEADER}\n{}{}", line("00001", &big), line("00001", "Pune"));
    let sheet = write(dir.path(), "big.csv", text);
    for ext in ["csv", "jsonl", "xlsx"] {
        let report = dir.path().join(format!("r.{ext}"));
        let started = std::time::Instant::now();
        let r = run(&["validate", path_str(&sheet), "--report", path_str(&report)]);
        assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);
        assert!(
            started.elapsed().as_secs() < 30,
            "{ext}: {:?}",
            started.elapsed()
        );
        assert!(
            r.stderr.len() < 4_000,
            "the console gets no megabytes: {}",
            r.stderr.len()
        );
        assert!(r.stderr.contains("characters)"), "{}", r.stderr);
    }
    let (header, rows) = read_report(&dir.path().join("r.csv"));
    let errors = col(&header, "errors");
    assert!(
        rows[1][errors].len() < 1_000,
        "the errors cell quotes the start only"
    );
    let kept = big.trim_matches('"').trim();
    assert_eq!(
        rows[0][col(&header, "branch_name")],
        kept,
        "the cell itself is kept (trimmed)"
    );
}

/// An order sheet workbook of the header and 3,000 rows holding only a
/// branch name, `name(row)`.
fn branch_names_workbook(path: &Path, name: impl Fn(u32) -> String) {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in HEADER.split(',').enumerate() {
        ws.write_string(0, c as u16, h).unwrap();
    }
    for r in 1..=3000u32 {
        ws.write_string(r, 1, name(r)).unwrap();
    }
    wb.save(path).unwrap();
}

#[test]
fn a_workbook_over_its_budget_is_refused_with_how_to_raise_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.xlsx");
    // One long branch name shared by 3,000 rows: 3 MB of text once read.
    let long = "Pune Camp Branch ".repeat(60);
    branch_names_workbook(&path, |_| long.clone());
    let r = run(&["validate", path_str(&path), "--max-text-mib", "1"]);
    assert_eq!(r.code, exit::INPUT_UNREADABLE, "{}", r.stderr);
    assert!(
        r.stderr.contains("more than 1 MiB of text") && r.stderr.contains("--max-text-mib"),
        "{}",
        r.stderr
    );
    let r = run(&["validate", path_str(&path), "--max-cells", "1000"]);
    assert_eq!(r.code, exit::INPUT_UNREADABLE, "{}", r.stderr);
    assert!(
        r.stderr.contains("over the limit of 1000 cells"),
        "{}",
        r.stderr
    );
    // Within the defaults it is read (and its rows found wanting).
    let r = run(&["validate", path_str(&path)]);
    assert_eq!(r.code, exit::ROWS_NOT_DONE, "{}", r.stderr);

    // 3,000 different long strings: the shared-strings table itself is
    // over the budget, refused before the library reads it.
    let unique = dir.path().join("unique.xlsx");
    branch_names_workbook(&unique, |r| format!("{r} {long}"));
    let r = run(&["validate", path_str(&unique), "--max-text-mib", "1"]);
    assert_eq!(r.code, exit::INPUT_UNREADABLE, "{}", r.stderr);
    assert!(
        r.stderr.contains("shared-strings table inflates to"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_header_wider_than_any_spreadsheet_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let extra: Vec<String> = (0..20_000).map(|i| format!("c{i}")).collect();
    let text = format!(
        "{HEADER},{}\n{}\n",
        extra.join(","),
        row("00001", "P1", "10")
    );
    let sheet = write(dir.path(), "wide.csv", text);
    expect_input_error(&sheet, "20014 columns, more than a spreadsheet's 16384");
}

/// A CSV file larger than 4 GiB is refused before a byte of it is read (a
/// sparse file here: its size is all it has).
#[test]
fn a_csv_file_too_large_to_hold_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.csv");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(dcms_bulk::read::MAX_TEXT_FILE + 1).unwrap();
    let started = std::time::Instant::now();
    let r = run(&["validate", path_str(&path)]);
    assert_eq!(r.code, exit::INPUT_UNREADABLE, "{}", r.stderr);
    assert!(r.stderr.contains("larger than 4 GiB"), "{}", r.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// Writes a zip of `(name, text)` parts, deflated.
fn zip_of(path: &Path, parts: &[(&str, String)]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, text) in parts {
        zip.start_file(*name, opts).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
}

/// Workbooks that lie about their size stay within 1 GiB (the address
/// space is capped there): a 400 KB workbook whose shared strings inflate
/// to 400 MB, and a 12 KB OpenDocument sheet whose one 10 MB cell is
/// repeated over 65,536 rows (640 GiB of text once expanded; it once took
/// all the memory there was). Both are refused, exit 3, saying why.
#[test]
fn lying_workbooks_stay_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let header: Vec<&str> = HEADER.split(',').collect();
    let big = "A".repeat(10 << 20);

    let mut strings: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    strings.extend((0..40).map(|k| format!("{k:02}{big}")));
    let mut sst = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{0}" uniqueCount="{0}">"#,
        strings.len()
    );
    for s in &strings {
        sst += &format!("<si><t>{s}</t></si>");
    }
    sst += "</sst>";
    let mut sheet = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1">"#,
    );
    for (i, _) in header.iter().enumerate() {
        sheet += &format!(
            r#"<c r="{}1" t="s"><v>{i}</v></c>"#,
            (b'A' + i as u8) as char
        );
    }
    sheet += "</row>";
    for k in 0..40 {
        sheet += &format!(
            r#"<row r="{0}"><c r="B{0}" t="s"><v>{1}</v></c></row>"#,
            k + 2,
            header.len() + k
        );
    }
    sheet += "</sheetData></worksheet>";
    let xlsx = dir.path().join("shared.xlsx");
    zip_of(
        &xlsx,
        &[
            ("[Content_Types].xml", r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#.into()),
            ("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.into()),
            ("xl/workbook.xml", r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Orders" sheetId="1" r:id="rId1"/></sheets></workbook>"#.into()),
            ("xl/_rels/workbook.xml.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#.into()),
            ("xl/sharedStrings.xml", sst),
            ("xl/worksheets/sheet1.xml", sheet),
        ],
    );
    assert!(
        std::fs::metadata(&xlsx).unwrap().len() < 1 << 20,
        "a small file"
    );
    let r = capped(&xlsx);
    assert_eq!(r.code, exit::INPUT_UNREADABLE, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("shared-strings table inflates to 400 MiB"),
        "{}",
        r.stderr
    );

    let mut content = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Orders"><table:table-row>"#,
    );
    for h in &header {
        content += &format!(
            r#"<table:table-cell office:value-type="string"><text:p>{h}</text:p></table:table-cell>"#
        );
    }
    content += &format!(
        r#"</table:table-row><table:table-row table:number-rows-repeated="65536"><table:table-cell office:value-type="string"><text:p>1</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>{big}</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"#
    );
    let ods = dir.path().join("repeated.ods");
    zip_of(
        &ods,
        &[
            ("mimetype", "application/vnd.oasis.opendocument.spreadsheet".into()),
            ("META-INF/manifest.xml", r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#.into()),
            ("content.xml", content),
        ],
    );
    assert!(
        std::fs::metadata(&ods).unwrap().len() < 64 << 10,
        "a small file"
    );
    let r = capped(&ods);
    assert_eq!(r.code, exit::INPUT_UNREADABLE, "{}", r.stderr);
    assert!(
        r.stderr.contains("once their repeats") && r.stderr.contains("--max-text-mib"),
        "{}",
        r.stderr
    );
}
