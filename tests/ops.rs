//! `dcms-bulk cancel` and `dcms-bulk upgrade` against `dcms-bulk sandbox`
//! over HTTP; the sandbox's inspection API says what really changed.

mod common;

use common::{Desk, SandboxProcess, report_rows, stderr};
use dcms_bulk::exit;
use serde_json::Value;

/// Creates `n` orders for tenant ACME; returns (order id, branch id).
fn orders(sb: &SandboxProcess, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let id = format!("ORD-{i}");
            let branch = format!("{:05}", i + 1);
            let body = format!(
                r#"{{"orderId":"{id}","branchInfo":{{"branchId":"{branch}","branchName":"B"}},"address":"a~b~c","pinCode":"411001","orderingPartyInfo":{{"orderingPartyId":"P"}},"processStartTime":"2026-12-01 09:00:00","validity":365,"products":[{{"productId":"01","bin":"412345","quantity":1,"plasticCode":"0001"}}]}}"#
            );
            assert_eq!(sb.post("/card-order", Some("ACME"), &body).status, 200);
            (id, branch)
        })
        .collect()
}

fn status_at(sb: &SandboxProcess, id: &str) -> String {
    sb.inspect(&format!("/tenants/ACME/orders/{id}"))["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn cancel_cancels_what_the_sheet_says_and_a_rerun_cancels_nothing_again() {
    let sb = SandboxProcess::start(&[]);
    let made = orders(&sb, 4);
    let desk = Desk::new();
    let sheet = desk.write(
        "cancel.csv",
        &format!(
            "order_id,branch_id,reason\n{},{},closing\n{},{},closing\n{},99999,wrong branch\n{},{},again\nNOPE,1,unknown\n",
            made[0].0, made[0].1, made[1].0, made[1].1, made[2].0, made[0].0, made[0].1
        ),
    );
    let args = ["cancel", sheet.to_str().unwrap(), "--json"];
    let out = desk.run_at(&sb.base, &args);
    assert_eq!(
        out.status.code(),
        Some(exit::ROWS_NOT_DONE),
        "{}",
        stderr(&out)
    );
    let rows = report_rows(&desk.path("cancel.report.csv"));
    let statuses: Vec<&str> = rows.iter().map(|r| r["status"].as_str()).collect();
    assert_eq!(
        statuses,
        ["ACCEPTED", "ACCEPTED", "REJECTED", "INVALID", "REJECTED"]
    );
    assert_eq!(rows[2]["error_code"], "order.branch.mismatch");
    assert!(rows[3]["errors"].contains("also on row 2"), "{:?}", rows[3]);
    assert_eq!(rows[4]["error_code"], "order.not.found");
    assert_eq!(rows[0]["reason"], "closing", "the reason is echoed");

    // The sandbox: the two cancelled, the others untouched.
    assert_eq!(status_at(&sb, &made[0].0), "CANCELLED");
    assert_eq!(status_at(&sb, &made[1].0), "CANCELLED");
    assert_eq!(status_at(&sb, &made[2].0), "RECEIVED");
    assert_eq!(status_at(&sb, &made[3].0), "RECEIVED");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["counts"]["accepted"], 2);

    // The run facts have the shape of a submit's, from the one engine:
    // rows split into valid + invalid, the valid ones by outcome, the API
    // and ledger run, the report's hash.
    let facts: Value = serde_json::from_str(
        &std::fs::read_to_string(desk.path("cancel.report.csv.run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(facts["command"], "cancel");
    let (counts, sent) = (&facts["counts"], &facts["sent"]);
    assert_eq!((&counts["rows"], &counts["valid"]), (&5.into(), &4.into()));
    assert_eq!(counts["invalid"], 1);
    assert_eq!(
        counts.get("orders_ready"),
        None,
        "no orders on a cancel sheet"
    );
    assert_eq!(
        (&sent["accepted"], &sent["rejected"]),
        (&2.into(), &2.into())
    );
    assert_eq!(sent.get("orders_accepted"), None);
    assert_eq!(facts["api"]["tenant"], "ACME");
    assert!(facts["api"]["ledger_run"].as_i64().unwrap() > 0);
    assert_eq!(facts["api"]["requests"], 4);
    assert_eq!(facts["report"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        summary["run_facts"],
        desk.path("cancel.report.csv.run.json")
            .display()
            .to_string()
    );

    let cancels =
        |sb: &SandboxProcess| sb.inspect("/stats")["requests"]["/v1/card-order/cancel"].clone();
    let before = cancels(&sb);
    let again = desk.run_at(&sb.base, &args);
    assert_eq!(again.status.code(), Some(exit::ROWS_NOT_DONE));
    assert_eq!(cancels(&sb), before, "the re-run sends no cancel again");
    let rows = report_rows(&desk.path("cancel.report.csv"));
    assert_eq!(rows[0]["status"], "SKIPPED");
    assert_eq!(rows[1]["status"], "SKIPPED");
    assert_eq!(rows[2]["status"], "REJECTED");
}

#[test]
fn a_cancel_whose_answer_was_lost_is_confirmed_not_repeated() {
    // The first two API calls are carried out, then answered 503: the
    // create below, and the cancel.
    let sb = SandboxProcess::start(&["--fail-first", "2", "--fault-applies", "always"]);
    let create = r#"{"orderId":"ORD-9","branchInfo":{"branchId":"00009","branchName":"B"},"address":"a~b~c","pinCode":"411001","orderingPartyInfo":{"orderingPartyId":"P"},"processStartTime":"2026-12-01 09:00:00","validity":365,"products":[{"productId":"01","bin":"412345","quantity":1,"plasticCode":"0001"}]}"#;
    assert_eq!(sb.post("/card-order", Some("ACME"), create).status, 503);
    assert_eq!(status_at(&sb, "ORD-9"), "RECEIVED");
    let desk = Desk::new();
    let sheet = desk.write("c.csv", "order_id,branch_id\nORD-9,00009\n");
    let out = desk.run_at(&sb.base, &["cancel", sheet.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    assert_eq!(status_at(&sb, "ORD-9"), "CANCELLED");
    let rows = report_rows(&desk.path("c.report.csv"));
    assert_eq!(rows[0]["status"], "ACCEPTED");
    // One cancel call (the faulted one), then a lookup: no second cancel.
    let stats = sb.inspect("/stats");
    assert_eq!(
        stats["requests"]["/v1/card-order/cancel"],
        serde_json::json!({"503": 1})
    );
    assert_eq!(stats["requests"]["/v1/card-order/fetchStatus"]["200"], 1);
}

#[test]
fn upgrade_replaces_kits_once_and_never_writes_a_full_card_number() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let sheet = desk.write(
        "up.csv",
        "entity_id,kit_no,delivery_address_type,alias_name,card_type,plastic_code,tier_type\n\
         ENT000001,4240000001,permanent,PRIYA IYER,PHYSICAL,4566,SILVER\n\
         ENT000002,4240000002,COMMUNICATION,RAVI K,VIRTUAL,4566,GOLD\n\
         ENT000003,4240000003,PERMANENT,A NAME FAR TOO LONG FOR THE PLASTIC CARD,PHYSICAL,4566,GOLD\n\
         ENT000009,4240000004,PERMANENT,X,PHYSICAL,4566,GOLD\n\
         ENT000001,4240000001,PERMANENT,AGAIN,PHYSICAL,4566,GOLD\n",
    );
    let args = [
        "upgrade",
        sheet.to_str().unwrap(),
        "--report-format",
        "jsonl",
    ];
    let out = desk.run_at(&sb.base, &args);
    assert_eq!(
        out.status.code(),
        Some(exit::ROWS_NOT_DONE),
        "{}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(desk.path("up.report.jsonl")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let statuses: Vec<&str> = lines
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["ACCEPTED", "ACCEPTED", "INVALID", "REJECTED", "INVALID"]
    );
    assert!(lines[2]["errors"].as_str().unwrap().contains("at most 30"));
    assert_eq!(lines[3]["error_code"], "MCC007");

    let kits = sb.inspect("/tenants/ACME/kits");
    let kit = |no: &str| {
        kits.as_array()
            .unwrap()
            .iter()
            .find(|k| k["kitNo"] == no)
            .cloned()
            .unwrap()
    };
    for (line, old) in lines[..2].iter().zip(["4240000001", "4240000002"]) {
        let new = line["new_kit_no"].as_str().unwrap();
        assert_eq!(kit(old)["status"], "REPLACED");
        assert_eq!(kit(old)["replacedBy"], new);
        assert_eq!(kit(new)["status"], "ASSIGNED");
        assert_eq!(line["card_status"], "ASSIGNED");
        let masked = line["card_number"].as_str().unwrap();
        assert!(
            masked.starts_with("608040XXXXXX") && masked.len() == 16,
            "{masked}"
        );
    }
    assert_eq!(
        kit("4240000003")["status"],
        "ASSIGNED",
        "an invalid row is not sent"
    );
    assert_eq!(
        kit(lines[1]["new_kit_no"].as_str().unwrap())["cardType"],
        "VIRTUAL"
    );
    // No encrypted card number (64 hex characters) and no 16-digit number anywhere.
    let pan = regex::Regex::new(r"\b[0-9a-f]{64}\b|\b\d{13,19}\b").unwrap();
    assert!(!pan.is_match(&text), "{text}");

    // The re-run upgrades nothing again.
    let again = desk.run_at(&sb.base, &args);
    assert_eq!(again.status.code(), Some(exit::ROWS_NOT_DONE));
    assert_eq!(sb.inspect("/stats")["tenants"]["ACME"]["upgrades"], 2);
    let text = std::fs::read_to_string(desk.path("up.report.jsonl")).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["status"], "SKIPPED");
    assert_eq!(
        first["new_kit_no"], lines[0]["new_kit_no"],
        "the earlier answer is kept"
    );
}

#[test]
fn an_upgrade_whose_answer_was_lost_is_looked_up_not_repeated() {
    // Every upgrade call is carried out and then answered 503 the first
    // time; the client must find the kit REPLACED rather than upgrade again.
    let sb = SandboxProcess::start(&["--fail-first", "1", "--fault-applies", "always"]);
    let desk = Desk::new();
    let sheet = desk.write(
        "up.csv",
        "entity_id,kit_no,delivery_address_type,card_type,plastic_code,tier_type\nENT000005,4240000005,PERMANENT,PHYSICAL,4566,GOLD\n",
    );
    let out = desk.run_at(&sb.base, &["upgrade", sheet.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let rows = report_rows(&desk.path("up.report.csv"));
    assert_eq!(rows[0]["status"], "ACCEPTED");
    assert_eq!(
        sb.inspect("/stats")["tenants"]["ACME"]["upgrades"],
        1,
        "upgraded once"
    );
    assert_eq!(
        sb.inspect("/stats")["requests"]["/v1/kit-manager/fetchKitsByEntityId"]["200"],
        1
    );
}

#[test]
fn a_sheet_without_the_columns_is_refused_with_what_is_missing() {
    let desk = Desk::new();
    let sheet = desk.write("c.csv", "order,remarks\nX,Y\n");
    let out = desk.run(&["cancel", sheet.to_str().unwrap(), "--sandbox"]);
    assert_eq!(out.status.code(), Some(exit::INPUT_UNREADABLE));
    assert!(stderr(&out).contains("branch_id"), "{}", stderr(&out));
}

#[test]
fn status_reports_where_each_order_stands_and_wait_reaches_final_states() {
    let sb = SandboxProcess::start(&["--advance-after", "150ms"]);
    let desk = Desk::new();
    let mut text = format!("{}\n", common::HEADER);
    for b in ["00001", "00002", "00003"] {
        text.push_str(&common::row(b, "01", "5"));
        text.push('\n');
        text.push_str(&common::row(b, "02", "5"));
        text.push('\n');
    }
    let sheet = desk.write("orders.csv", &text);
    let out = desk.run_at(&sb.base, &["submit", sheet.to_str().unwrap(), "-q"]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));

    // The API comes from the run facts: no --base-url needed.
    let report = desk.path("orders.report.csv");
    let now = desk.run(&["status", report.to_str().unwrap()]);
    assert_eq!(
        now.status.code(),
        Some(exit::ROWS_NOT_DONE),
        "{}",
        stderr(&now)
    );
    let rows = report_rows(&desk.path("orders.report.status.csv"));
    assert_eq!(rows.len(), 6);
    assert!(
        rows.iter()
            .all(|r| !r["order_status"].is_empty() && r["order_status"] != "SUCCESS"),
        "{rows:?}"
    );

    let waited = desk.run(&[
        "status",
        report.to_str().unwrap(),
        "--wait",
        "--interval",
        "100ms",
        "--wait-timeout",
        "20s",
        "--json",
    ]);
    assert_eq!(waited.status.code(), Some(exit::OK), "{}", stderr(&waited));
    let rows = report_rows(&desk.path("orders.report.status.csv"));
    assert!(
        rows.iter().all(|r| r["order_status"] == "SUCCESS"),
        "{rows:?}"
    );
    let summary: Value = serde_json::from_slice(&waited.stdout).unwrap();
    assert_eq!(summary["by_status"]["SUCCESS"], 3);
    assert_eq!(summary["orders"], 3);

    // An XLSX report gets an XLSX status report, the column added.
    let xlsx = desk.path("orders.report.xlsx");
    let out = desk.submit(
        &sheet,
        &sb.base,
        "ACME",
        &["--report", xlsx.to_str().unwrap(), "-q"],
    );
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let out = desk.run(&["status", xlsx.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    use calamine::{Reader, open_workbook_auto};
    let mut wb = open_workbook_auto(desk.path("orders.report.status.xlsx")).unwrap();
    let sheet = wb.worksheet_range("Report").unwrap();
    let rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    assert_eq!(rows.len(), 7, "the header and six rows");
    let col = rows[0].iter().position(|h| h == "order_status").unwrap();
    assert_eq!(col, rows[0].len() - 1, "the last column");
    assert!(rows[1..].iter().all(|r| r[col] == "SUCCESS"), "{rows:?}");
}

#[test]
fn status_in_json_lines_gives_each_products_status_and_failures_fail() {
    let sb = SandboxProcess::start(&["--failed-share", "1"]);
    let desk = Desk::new();
    let sheet = desk.write(
        "orders.csv",
        &format!(
            "{}\n{}\n{}\n",
            common::HEADER,
            common::row("00001", "01", "5"),
            common::row("00001", "02", "7")
        ),
    );
    let args = [
        "submit",
        sheet.to_str().unwrap(),
        "-q",
        "--report-format",
        "jsonl",
    ];
    assert_eq!(desk.run_at(&sb.base, &args).status.code(), Some(exit::OK));
    sb.advance(5);
    let report = desk.path("orders.report.jsonl");
    let out = desk.run(&[
        "status",
        report.to_str().unwrap(),
        "--wait",
        "--interval",
        "50ms",
    ]);
    assert_eq!(
        out.status.code(),
        Some(exit::ROWS_NOT_DONE),
        "FAILED orders are not success: {}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(desk.path("orders.report.status.jsonl")).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["order_status"], "FAILED");
    let products = first["product_statuses"].as_array().unwrap();
    assert_eq!(products.len(), 2);
    assert!(products.iter().all(|p| p["status"] == "FAILED"));
    assert_eq!(products[1]["noOfCard"], 7);
}

#[test]
fn the_samples_walk_through_against_one_sandbox() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    for name in [
        "orders.xlsx",
        "cancels.xlsx",
        "upgrades.xlsx",
        "cancels.csv",
        "upgrades.csv",
    ] {
        std::fs::copy(common::root().join("samples").join(name), desk.path(name)).unwrap();
    }
    let run = |cmd: &str, file: &str, extra: &[&str]| {
        let mut args = vec![cmd, file, "--report-format", "csv"];
        args.extend_from_slice(extra);
        desk.run_at(&sb.base, &args)
    };
    assert_eq!(
        run("submit", "orders.xlsx", &[]).status.code(),
        Some(exit::OK)
    );

    let out = run("cancel", "cancels.xlsx", &[]);
    assert_eq!(
        out.status.code(),
        Some(exit::ROWS_NOT_DONE),
        "{}",
        stderr(&out)
    );
    let rows = report_rows(&desk.path("cancels.report.csv"));
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r["status"].as_str(), r["error_code"].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("ACCEPTED", ""),
            ("ACCEPTED", ""),
            ("REJECTED", "order.branch.mismatch"),
            ("INVALID", "")
        ]
    );
    assert_eq!(status_at(&sb, "DCB-a8738225cd6973ff5946"), "CANCELLED");
    assert_eq!(status_at(&sb, "DCB-8da21e6fe8b96177d943"), "RECEIVED");
    // The CSV twin is the same content in another file: the ledger knows
    // every cancel by its order id, so nothing is sent again.
    let requests =
        |sb: &SandboxProcess| sb.inspect("/stats")["requests"]["/v1/card-order/cancel"].clone();
    let before = requests(&sb);
    let out = run("cancel", "cancels.csv", &[]);
    assert_eq!(out.status.code(), Some(exit::ROWS_NOT_DONE));
    assert_eq!(requests(&sb), before, "no cancel is sent again");
    let rows = report_rows(&desk.path("cancels.report.csv"));
    let got: Vec<&str> = rows.iter().map(|r| r["status"].as_str()).collect();
    assert_eq!(got, ["SKIPPED", "SKIPPED", "REJECTED", "INVALID"]);

    let out = run("upgrade", "upgrades.xlsx", &[]);
    assert_eq!(
        out.status.code(),
        Some(exit::ROWS_NOT_DONE),
        "{}",
        stderr(&out)
    );
    let rows = report_rows(&desk.path("upgrades.report.csv"));
    let got: Vec<&str> = rows.iter().map(|r| r["status"].as_str()).collect();
    assert_eq!(
        got,
        ["ACCEPTED", "ACCEPTED", "INVALID", "ACCEPTED", "INVALID"]
    );
    assert_eq!(sb.inspect("/stats")["tenants"]["ACME"]["upgrades"], 3);

    let out = desk.run(&["status", "orders.report.csv"]);
    assert_eq!(out.status.code(), Some(exit::ROWS_NOT_DONE));
    let rows = report_rows(&desk.path("orders.report.status.csv"));
    assert!(rows.iter().any(|r| r["order_status"] == "CANCELLED"));
    assert!(rows.iter().any(|r| r["order_status"] == "RECEIVED"));
}

#[test]
fn status_and_cancel_refuse_what_they_cannot_read() {
    let desk = Desk::new();
    let not_report = desk.write(
        "orders.csv",
        &format!("{}\n{}\n", common::HEADER, common::row("00001", "01", "5")),
    );
    let out = desk.run(&[
        "status",
        not_report.to_str().unwrap(),
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--tenant",
        "A",
    ]);
    assert_eq!(out.status.code(), Some(exit::INPUT_UNREADABLE));
    assert!(
        stderr(&out).contains("not a submit report"),
        "{}",
        stderr(&out)
    );
    // No run facts and no API given: a usage error that says how to give one.
    let report = desk.write("x.report.csv", "status,order_id\nACCEPTED,O1\n");
    let out = desk.run(&["status", report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(exit::USAGE));
    assert!(stderr(&out).contains("--base-url"), "{}", stderr(&out));

    let empty = desk.write("c.csv", "");
    let out = desk.run(&["cancel", empty.to_str().unwrap(), "--sandbox"]);
    assert_eq!(
        out.status.code(),
        Some(exit::INPUT_UNREADABLE),
        "{}",
        stderr(&out)
    );
    let png = desk.path("u.xlsx");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n not a workbook").unwrap();
    let out = desk.run(&["upgrade", png.to_str().unwrap(), "--sandbox"]);
    assert_eq!(
        out.status.code(),
        Some(exit::INPUT_UNREADABLE),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("u.xlsx"), "{}", stderr(&out));
}

#[test]
fn no_command_writes_its_report_over_its_input() {
    let desk = Desk::new();
    let orders = desk.write(
        "orders.csv",
        &format!("{}\n{}\n", common::HEADER, common::row("00001", "01", "5")),
    );
    let before = std::fs::read(&orders).unwrap();
    let cancels = desk.write("c.csv", "order_id,branch_id\nO1,1\n");
    let report = desk.write("r.csv", "status,order_id\nACCEPTED,O1\n");
    for args in [
        vec![
            "submit",
            "orders.csv",
            "--sandbox",
            "--report",
            "orders.csv",
        ],
        vec!["cancel", "c.csv", "--sandbox", "--report", "c.csv"],
        vec![
            "status",
            "r.csv",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--tenant",
            "A",
            "--out",
            "r.csv",
        ],
    ] {
        let out = desk.run(&args);
        assert_eq!(
            out.status.code(),
            Some(exit::USAGE),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("would overwrite its input"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(std::fs::read(&orders).unwrap(), before);
    assert_eq!(
        std::fs::read_to_string(&cancels).unwrap(),
        "order_id,branch_id\nO1,1\n"
    );
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        "status,order_id\nACCEPTED,O1\n"
    );
}

#[test]
fn cancel_and_upgrade_headers_are_matched_as_an_order_sheets_are() {
    let desk = Desk::new();
    let run = |name: &str, command: &str, text: &str| {
        let sheet = desk.write(name, text);
        let out = desk.run(&[command, sheet.to_str().unwrap(), "--sandbox"]);
        (out.status.code(), stderr(&out))
    };
    // Below a title row, in other spellings: taken (the order is unknown
    // to the sandbox, so its row is not done).
    let (code, err) = run(
        "titled.csv",
        "cancel",
        "Cancellations for December\n\nOrder ID,Branch Code,Remarks\nX1,100,closing\n",
    );
    assert_eq!(code, Some(exit::ROWS_NOT_DONE), "{err}");
    let (code, err) = run("short.csv", "cancel", "Order ID,Remarks\nX1,closing\n");
    assert_eq!(code, Some(exit::INPUT_UNREADABLE), "{err}");
    assert!(
        err.contains("header row 1: missing required column branch_id"),
        "{err}"
    );
    let (code, err) = run(
        "twice.csv",
        "upgrade",
        "kit_no,Kit Number,entity_id\n1,2,3\n",
    );
    assert_eq!(code, Some(exit::INPUT_UNREADABLE), "{err}");
    assert!(
        err.contains("duplicate column: `kit_no` (column A) and `Kit Number` (column B)"),
        "{err}"
    );
    let (code, err) = run("none.csv", "cancel", "order,remarks\nX,Y\n");
    assert_eq!(code, Some(exit::INPUT_UNREADABLE), "{err}");
    assert!(
        err.contains("no header row among the first 50 rows (a header names at least two of: order_id, branch_id)"),
        "{err}"
    );
}

/// `cancel --dry-run` and `upgrade --dry-run` check the sheet as a real
/// run does and print what would be sent, sending nothing (the sandbox
/// sees no request, no ledger or report is written); `validate` reads the
/// same sheets, told by their header or by `--kind`, with the same
/// messages, and writes a report `verify` holds.
#[test]
fn cancel_and_upgrade_sheets_are_checked_before_they_act() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let samples = common::root().join("samples");
    for (command, sheet, sent) in [
        ("cancel", "cancels.csv", 3),
        ("upgrade", "upgrades.xlsx", 3),
    ] {
        let path = samples.join(sheet);
        let path = path.to_str().unwrap();
        let out = desk.run_at(&sb.base, &[command, path, "--dry-run"]);
        assert_eq!(
            out.status.code(),
            Some(exit::ROWS_NOT_DONE),
            "{}",
            stderr(&out)
        );
        let bodies: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(bodies.len(), sent, "{command}");
        let said = stderr(&out);
        assert!(
            said.contains(&format!(
                "dry run: {sent} {command}s would be sent, nothing sent"
            )),
            "{said}"
        );
        assert!(said.contains("is also on row 2"), "{said}");
        // validate: the same sheet, the same messages, told by its header.
        let report = desk.path(&format!("{command}.check.xlsx"));
        let v = desk.run(&["validate", path, "--report", report.to_str().unwrap()]);
        assert_eq!(v.status.code(), Some(exit::ROWS_NOT_DONE), "{}", stderr(&v));
        let checked = stderr(&v);
        assert!(
            checked.contains(&format!("{command} sheet: 5 rows"))
                || checked.contains(&format!("{command} sheet: 4 rows")),
            "{checked}"
        );
        for line in said.lines().filter(|l| l.contains("is also on row")) {
            let message = line.split_once(' ').unwrap().1;
            assert!(checked.contains(message), "{message} in {checked}");
        }
        let verify = desk.run(&["verify", report.to_str().unwrap()]);
        assert_eq!(verify.status.code(), Some(exit::OK), "{}", stderr(&verify));
        // --kind says what it is; an order sheet read as a cancel sheet is
        // refused, naming the columns a cancel sheet needs.
        let v = desk.run(&["validate", path, "--kind", command]);
        assert_eq!(v.status.code(), Some(exit::ROWS_NOT_DONE), "{}", stderr(&v));
    }
    let orders = samples.join("orders.csv");
    let v = desk.run(&["validate", orders.to_str().unwrap(), "--kind", "cancel"]);
    assert_eq!(
        v.status.code(),
        Some(exit::INPUT_UNREADABLE),
        "{}",
        stderr(&v)
    );
    assert!(stderr(&v).contains("order_id, branch_id"), "{}", stderr(&v));
    // Nothing reached the API, nothing was recorded.
    assert!(
        sb.inspect("/stats")["requests"]
            .as_object()
            .unwrap()
            .is_empty(),
        "{}",
        sb.inspect("/stats")
    );
    assert!(!desk.path("journals").exists());
}
