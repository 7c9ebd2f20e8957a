//! `dcms-bulk verify REPORT`: what an auditor runs weeks later, on good
//! reports and on reports that were changed, lost a row, or whose input
//! changed.

mod common;

use common::*;
use dcms_bulk::exit;
use serde_json::Value;

/// `verify ARGS --json`: the exit code and the findings by check.
fn verify(desk: &Desk, args: &[&str]) -> (i32, Vec<(String, Option<bool>, String)>) {
    let out = desk.run(&[&["verify", "--json"], args].concat());
    let code = out.status.code().unwrap();
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    let findings = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_owned(),
                f["ok"].as_bool(),
                f["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (code, findings)
}

fn failed(findings: &[(String, Option<bool>, String)]) -> Vec<&str> {
    findings
        .iter()
        .filter(|f| f.1 == Some(false))
        .map(|f| f.0.as_str())
        .collect()
}

#[test]
fn a_good_report_holds_in_every_format_and_a_changed_one_is_named() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 4, 2);
    for ext in ["csv", "jsonl", "xlsx"] {
        let report = format!("r.{ext}");
        let out = desk.submit(&sheet, &sb.base, "ACME", &["--report", &report]);
        assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
        let (code, findings) = verify(&desk, &[&report]);
        assert_eq!(code, exit::OK, "{ext}: {findings:?}");
        let checks: Vec<&str> = findings.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            checks,
            [
                "report SHA-256",
                "input SHA-256",
                "every row once",
                "counts add up",
                "statuses match the counts",
                "accepted in the ledger",
                "the run in the ledger",
                "the ledger's chain of runs"
            ],
            "{ext}"
        );
        assert!(findings.iter().all(|f| f.1 == Some(true)), "{findings:?}");
    }
    // The run facts say who ran it where, and the input from the root.
    let facts: Value =
        serde_json::from_slice(&std::fs::read(desk.path("r.csv.run.json")).unwrap()).unwrap();
    assert!(facts["host"].is_string() && facts["input"]["absolute_path"].is_string());
    assert!(
        std::path::Path::new(facts["api"]["ledger"].as_str().unwrap()).is_absolute(),
        "{facts}"
    );

    // An edited status: the report's hash and the counts say so.
    let text = std::fs::read_to_string(desk.path("r.csv")).unwrap();
    let edited = text.replacen("ACCEPTED", "REJECTED", 1);
    std::fs::write(desk.path("r.csv"), &edited).unwrap();
    let (code, findings) = verify(&desk, &["r.csv"]);
    assert_eq!(code, exit::ROWS_NOT_DONE);
    assert_eq!(
        failed(&findings),
        [
            "report SHA-256",
            "statuses match the counts",
            "the run in the ledger"
        ],
        "{findings:?}"
    );

    // A row removed.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(3);
    std::fs::write(desk.path("r.csv"), lines.join("\n") + "\n").unwrap();
    let (code, findings) = verify(&desk, &["r.csv"]);
    assert_eq!(code, exit::ROWS_NOT_DONE);
    let fails = failed(&findings);
    assert!(
        fails.contains(&"report SHA-256") && fails.contains(&"every row once"),
        "{findings:?}"
    );
    let once = findings.iter().find(|f| f.0 == "every row once").unwrap();
    assert!(
        once.2
            .contains("7 rows in the report, the run facts count 8"),
        "{once:?}"
    );

    // The input changed since: the report holds, the input is not the one.
    std::fs::write(desk.path("r.csv"), &text).unwrap();
    std::fs::write(&sheet, "changed").unwrap();
    let (code, findings) = verify(&desk, &["r.csv"]);
    assert_eq!(code, exit::ROWS_NOT_DONE);
    assert_eq!(failed(&findings), ["input SHA-256"]);
    // Gone: not checked, and not a discrepancy.
    std::fs::remove_file(&sheet).unwrap();
    let (code, findings) = verify(&desk, &["r.csv"]);
    assert_eq!(code, exit::OK, "{findings:?}");
    let input = findings.iter().find(|f| f.0 == "input SHA-256").unwrap();
    assert_eq!(input.1, None);
    assert!(input.2.contains("not at hand"));
}

#[test]
fn accepted_rows_the_ledger_does_not_know_are_named() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 3, 1);
    let out = desk.submit(&sheet, &sb.base, "ACME", &[]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    // Another ledger (another machine's): it never accepted these.
    let other = Desk::new();
    let other_sheet = other.write(
        "other.csv",
        &format!("{HEADER}\n{}\n", row("77777", "P9", "5")),
    );
    let sb2 = SandboxProcess::start(&[]);
    let out = other.submit(&other_sheet, &sb2.base, "ACME", &[]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let facts: Value =
        serde_json::from_slice(&std::fs::read(other.path("other.report.csv.run.json")).unwrap())
            .unwrap();
    let other_ledger = facts["api"]["ledger"].as_str().unwrap().to_owned();
    let (code, findings) = verify(&desk, &["orders.report.csv", "--ledger", &other_ledger]);
    assert_eq!(code, exit::ROWS_NOT_DONE);
    let ledger = findings
        .iter()
        .find(|f| f.0 == "accepted in the ledger")
        .unwrap();
    assert_eq!(ledger.1, Some(false));
    assert!(
        ledger
            .2
            .starts_with("3 rows say their order was accepted, the ledger does not: row 2 ("),
        "{ledger:?}"
    );
    // Without --json: a line a check, FAIL where one fails.
    let out = desk.run(&["verify", "orders.report.csv", "--ledger", &other_ledger]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL accepted in the ledger")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("ok   report SHA-256")),
        "{text}"
    );
    // No run facts: unreadable, exit 3.
    std::fs::remove_file(desk.path("orders.report.csv.run.json")).unwrap();
    let out = desk.run(&["verify", "orders.report.csv"]);
    assert_eq!(out.status.code(), Some(exit::INPUT_UNREADABLE));
    assert!(
        stderr(&out).contains("orders.report.csv.run.json"),
        "{}",
        stderr(&out)
    );
}

/// Forges a CSV report consistently: `edit` changes its text and the run
/// facts' counts, and the facts' SHA-256 is recomputed, as a forger would.
fn forge(desk: &Desk, report: &str, edit: impl Fn(String, &mut Value) -> String) {
    use sha2::Digest;
    let facts_path = desk.path(&format!("{report}.run.json"));
    let mut facts: Value = serde_json::from_slice(&std::fs::read(&facts_path).unwrap()).unwrap();
    let text = edit(
        std::fs::read_to_string(desk.path(report)).unwrap(),
        &mut facts,
    );
    std::fs::write(desk.path(report), &text).unwrap();
    facts["report"]["sha256"] = hex::encode(sha2::Sha256::digest(text.as_bytes())).into();
    std::fs::write(&facts_path, serde_json::to_vec_pretty(&facts).unwrap()).unwrap();
}

/// Bumps a count of the run facts by `by`.
fn bump(facts: &mut Value, part: &str, key: &str, by: i64) {
    let n = facts[part][key].as_i64().unwrap() + by;
    facts[part][key] = n.into();
}

/// Reports edited together with their run facts (the SHA-256 recomputed)
/// hold against the run facts; the ledger's record of the run names each
/// forgery: a status relabelled, a quantity changed, a row deleted with
/// the counts lowered. A run deleted from the ledger breaks its chain.
#[test]
fn consistent_forgeries_fail_against_the_ledger() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 4, 1);
    let out = desk.submit(&sheet, &sb.base, "ACME", &[]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let report = "orders.report.csv";
    let (code, findings) = verify(&desk, &[report]);
    assert_eq!(code, exit::OK, "{findings:?}");
    let checks: Vec<&str> = findings.iter().map(|f| f.0.as_str()).collect();
    assert!(
        checks.contains(&"the run in the ledger") && checks.contains(&"the ledger's chain of runs"),
        "{checks:?}"
    );
    let original = std::fs::read_to_string(desk.path(report)).unwrap();
    let original_facts = std::fs::read(desk.path(&format!("{report}.run.json"))).unwrap();
    let restore = || {
        std::fs::write(desk.path(report), &original).unwrap();
        std::fs::write(desk.path(&format!("{report}.run.json")), &original_facts).unwrap();
    };
    let ledger_finding = |findings: &[(String, Option<bool>, String)]| {
        findings
            .iter()
            .find(|f| f.0 == "the run in the ledger")
            .cloned()
            .unwrap()
    };

    // 1. An ACCEPTED order relabelled REJECTED.
    forge(&desk, report, |text, facts| {
        bump(facts, "sent", "accepted", -1);
        bump(facts, "sent", "rejected", 1);
        bump(facts, "sent", "orders_accepted", -1);
        bump(facts, "sent", "orders_rejected", 1);
        text.replacen(",ACCEPTED,", ",REJECTED,", 1)
    });
    let (code, findings) = verify(&desk, &[report]);
    assert_eq!(code, exit::ROWS_NOT_DONE, "{findings:?}");
    assert_eq!(failed(&findings), ["the run in the ledger"], "{findings:?}");
    let f = ledger_finding(&findings);
    assert!(
        f.2.contains("row 2 is REJECTED in the report, ACCEPTED in the ledger")
            && f.2.contains("the ledger never wrote this report"),
        "{f:?}"
    );
    restore();

    // 2. An accepted row's quantity changed from 10 to 754.
    forge(&desk, report, |text, _| text.replacen(",10,", ",754,", 1));
    let (code, findings) = verify(&desk, &[report]);
    assert_eq!(code, exit::ROWS_NOT_DONE, "{findings:?}");
    assert_eq!(failed(&findings), ["the run in the ledger"], "{findings:?}");
    let f = ledger_finding(&findings);
    assert!(
        f.2.contains("row 2's product line") && f.2.contains("quantity"),
        "{f:?}"
    );
    restore();

    // 3. An accepted order's row deleted, the counts lowered.
    forge(&desk, report, |text, facts| {
        for (part, key) in [
            ("counts", "rows"),
            ("counts", "valid"),
            ("counts", "orders_ready"),
            ("sent", "accepted"),
            ("sent", "orders_accepted"),
        ] {
            bump(facts, part, key, -1);
        }
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(3);
        lines.join("\n") + "\n"
    });
    let (code, findings) = verify(&desk, &[report]);
    assert_eq!(code, exit::ROWS_NOT_DONE, "{findings:?}");
    assert_eq!(failed(&findings), ["the run in the ledger"], "{findings:?}");
    let f = ledger_finding(&findings);
    assert!(
        f.2.contains("row 4 (ACCEPTED DCB-") && f.2.contains("is in the ledger, not in the report"),
        "{f:?}"
    );
    assert!(f.2.contains("the run facts count rows 3"), "{f:?}");
    restore();
    let (code, findings) = verify(&desk, &[report]);
    assert_eq!(code, exit::OK, "{findings:?}");

    // A second run, then the first deleted from the ledger: the chain
    // breaks.
    let out = desk.submit(&sheet, &sb.base, "ACME", &[]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let facts: Value =
        serde_json::from_slice(&std::fs::read(desk.path(&format!("{report}.run.json"))).unwrap())
            .unwrap();
    let ledger = facts["api"]["ledger"].as_str().unwrap().to_owned();
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    conn.execute("DELETE FROM run_rows WHERE run = 1", [])
        .unwrap();
    conn.execute("DELETE FROM runs WHERE id = 1", []).unwrap();
    drop(conn);
    let (code, findings) = verify(&desk, &[report]);
    assert_eq!(code, exit::ROWS_NOT_DONE, "{findings:?}");
    let chain = findings
        .iter()
        .find(|f| f.0 == "the ledger's chain of runs")
        .unwrap();
    assert_eq!(chain.1, Some(false), "{chain:?}");
    assert!(chain.2.contains("run 2 follows a run"), "{chain:?}");

    // Without the ledger: said what could not be checked.
    std::fs::remove_file(&ledger).unwrap();
    let (_, findings) = verify(&desk, &[report]);
    let not = findings
        .iter()
        .find(|f| f.0 == "accepted in the ledger")
        .unwrap();
    assert_eq!(not.1, None);
    assert!(not.2.contains("product lines against the run"), "{not:?}");
}
