//! The command line's conventions: completions, man pages, `--dry-run`,
//! `-vv`, plurals, and the destination said before sending.

mod common;

use common::*;
use dcms_bulk::exit;

#[test]
fn completions_and_man_pages_are_made_for_every_shell_and_command() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let r = run(&["completions", shell]);
        assert_eq!(r.code, exit::OK, "{shell}: {}", r.stderr);
        assert!(r.stdout.contains("dcms-bulk"), "{shell}");
        assert!(
            r.stdout.contains("submit") && r.stdout.contains("done-dir"),
            "{shell}"
        );
    }
    let r = run(&["man"]);
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    assert!(
        r.stdout.starts_with(".ie") || r.stdout.contains(".TH dcms-bulk 1"),
        "{}",
        r.stdout
    );
    let dir = tempfile::tempdir().unwrap();
    let r = run(&["man", "--dir", path_str(dir.path())]);
    assert_eq!(r.code, exit::OK, "{}", r.stderr);
    for page in [
        "dcms-bulk.1",
        "dcms-bulk-submit.1",
        "dcms-bulk-watch.1",
        "dcms-bulk-verify.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".SH"), "{page}");
    }
    let submit = std::fs::read_to_string(dir.path().join("dcms-bulk-submit.1")).unwrap();
    assert!(
        submit.contains("Examples"),
        "the examples are in the page too"
    );
    assert!(!dir.path().join("dcms-bulk-__check-workbook.1").exists());
}

#[test]
fn a_dry_run_checks_and_prints_the_bodies_and_sends_nothing() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 3, 2);
    let out = desk.submit(&sheet, &sb.base, "ACME", &["--dry-run"]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let bodies: Vec<serde_json::Value> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(bodies.len(), 3);
    assert_eq!(bodies[0]["products"].as_array().unwrap().len(), 2);
    let log = untimed(&stderr(&out));
    assert!(
        log.contains("dry run: 3 orders would be sent, nothing sent"),
        "{log}"
    );
    assert_eq!(
        sb.inspect("/stats")["requests"],
        serde_json::json!({}),
        "no call"
    );
    assert!(!desk.path("orders.report.csv").exists(), "no report");
    assert!(!desk.path("journals").exists(), "no ledger");
}

#[test]
fn submit_says_where_it_sends_and_counts_in_the_singular_when_one() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let sheet = desk.sheet("one.csv", 1, 1);
    let out = desk.submit(&sheet, &sb.base, "ACME", &["-vv"]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let log = untimed(&stderr(&out));
    let first = log.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "dcms-bulk: sending to {} as tenant ACME",
            sb.base.trim_end_matches('/')
        )
        .replace("/v1", "/v1"),
        "{log}"
    );
    assert!(log.contains("one.csv: 1 row: 1 accepted"), "{log}");
    // -vv: the HTTP stack's own debug lines too.
    assert!(log.contains("connecting to 127.0.0.1"), "{log}");
}

#[test]
fn validate_reads_standard_input_and_several_files_and_folders() {
    use std::io::Write;
    // `-`: a CSV piped in.
    let mut child = bin()
        .current_dir(root())
        .args(["validate", "-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let sheet = std::fs::read(root().join("samples/orders.csv")).unwrap();
    child.stdin.take().unwrap().write_all(&sheet).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["input"], "<stdin>");
    assert_eq!(summary["counts"]["rows"], 10);
    assert!(untimed(&stderr(&out)).contains("<stdin>: 10 rows: 10 valid"));

    // Two files and a folder, each with its report in --report-dir.
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("in");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(
        root().join("samples/orders_with_mistakes.xlsx"),
        folder.join("m.xlsx"),
    )
    .unwrap();
    std::fs::write(folder.join("notes.txt.part"), "x").unwrap();
    let reports = dir.path().join("reports");
    let r = run(&[
        "validate",
        "samples/orders.csv",
        "samples/orders.xlsx",
        path_str(&folder),
        "--report-dir",
        path_str(&reports),
        "--json",
    ]);
    assert_eq!(
        r.code,
        exit::ROWS_NOT_DONE,
        "the mistakes decide: {}",
        r.stderr
    );
    let summary: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let files = summary["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{summary}");
    for name in ["orders.report.csv", "orders.report.xlsx", "m.report.xlsx"] {
        assert!(reports.join(name).is_file(), "{name}");
        assert!(reports.join(format!("{name}.run.json")).is_file(), "{name}");
    }
    let log = untimed(&r.stderr);
    assert!(
        log.contains("passed over") && log.contains("notes.txt.part"),
        "{log}"
    );
    assert!(log.contains("dcms-bulk: 3 files checked"), "{log}");
    // --report names one file.
    let r = run(&[
        "validate",
        "samples/orders.csv",
        "samples/orders.xlsx",
        "--report",
        "x.csv",
    ]);
    assert_eq!(r.code, exit::USAGE, "{}", r.stderr);
}
