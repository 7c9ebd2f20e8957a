//! Exactly once against an API that behaves worse than our sandbox's own
//! choices: the real binary against `dcms-bulk sandbox` over loopback, with
//! the sandbox's "real API" behaviours turned on (duplicates accepted as
//! second orders, fetchStatus of an unknown order answered 200/null,
//! lookups with other products). The inspection API counts what was really
//! created, per order id.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{Desk, HEADER, SandboxProcess, path_str, report_rows, row, stderr};
use dcms_bulk::exit;

/// Rows of `orders` orders with `products` product lines each.
fn rows(orders: usize, products: usize) -> Vec<String> {
    let mut out = Vec::new();
    for o in 0..orders {
        for p in 0..products {
            out.push(row(&format!("{:05}", o + 1), &format!("P{p}"), "10"));
        }
    }
    out
}

fn write_csv(path: &Path, rows: &[String], line_end: &str, bom: bool) {
    let mut text = String::new();
    if bom {
        text.push('\u{feff}');
    }
    text.push_str(HEADER);
    text.push_str(line_end);
    for r in rows {
        text.push_str(r);
        text.push_str(line_end);
    }
    std::fs::write(path, text).unwrap();
}

/// The same rows as a workbook, every cell text (as a branch types ids).
fn write_xlsx(path: &Path, rows: &[String]) {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in HEADER.split(',').enumerate() {
        ws.write_string(0, c as u16, h).unwrap();
    }
    for (r, line) in rows.iter().enumerate() {
        for (c, v) in line.split(',').enumerate() {
            ws.write_string(r as u32 + 1, c as u16, v).unwrap();
        }
    }
    wb.save(path).unwrap();
}

/// Order id → creates the sandbox stored under it (more than 1: doubled).
fn creates(sb: &SandboxProcess, tenant: &str) -> BTreeMap<String, u64> {
    sb.inspect(&format!("/tenants/{tenant}/orders"))
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["orderId"].as_str().unwrap().to_owned(),
                o["creates"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Create requests the sandbox received, whatever it answered.
fn create_requests(sb: &SandboxProcess) -> u64 {
    sb.inspect("/stats")["requests"]["/v1/card-order"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0)
}

/// Where to send, and CSV reports whatever the input (to read them back).
fn api(sb: &SandboxProcess) -> Vec<String> {
    [
        "--base-url",
        &sb.base,
        "--tenant",
        "ACME",
        "--report-format",
        "csv",
    ]
    .map(String::from)
    .to_vec()
}

fn submit(desk: &Desk, sheet: &Path, extra: &[String]) -> Output {
    let mut args = vec!["submit".to_string(), sheet.display().to_string()];
    args.extend_from_slice(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    desk.run(&args)
}

#[test]
fn the_same_sheet_resent_in_any_form_creates_nothing_new() {
    let sb = SandboxProcess::start(&["--accept-duplicates"]);
    let desk = Desk::new();
    let lines = rows(6, 3);
    let mut shuffled = lines.clone();
    shuffled.reverse();
    shuffled.swap(0, 7);
    let first = desk.path("orders.csv");
    write_csv(&first, &lines, "\n", false);
    let crlf = desk.path("orders_crlf.csv");
    write_csv(&crlf, &lines, "\r\n", true);
    let moved = desk.path("orders_shuffled.csv");
    write_csv(&moved, &shuffled, "\n", false);
    let workbook = desk.path("orders.xlsx");
    write_xlsx(&workbook, &lines);

    let out = submit(&desk, &first, &api(&sb));
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let made = creates(&sb, "ACME");
    assert_eq!(made.len(), 6);
    let requests = create_requests(&sb);
    assert_eq!(requests, 6);
    let ids: BTreeSet<String> = report_rows(&desk.path("orders.report.csv"))
        .iter()
        .map(|r| r["order_id"].clone())
        .collect();

    for again in [&crlf, &moved, &workbook] {
        let out = submit(&desk, again, &api(&sb));
        assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
        let stem = again.file_stem().unwrap().to_str().unwrap();
        let report = desk.path(&format!("{stem}.report.csv"));
        let rows = report_rows(&report);
        assert_eq!(rows.len(), 18, "{stem}");
        for r in &rows {
            assert_eq!(r["status"], "SKIPPED", "{stem}: {r:?}");
            assert!(
                r["errors"].contains("in run 1 of") && r["errors"].contains("orders.csv"),
                "{stem}: the row names the run that accepted it: {r:?}"
            );
        }
        let again_ids: BTreeSet<String> = rows.iter().map(|r| r["order_id"].clone()).collect();
        assert_eq!(again_ids, ids, "{stem}: the same orders get the same ids");
    }
    assert_eq!(create_requests(&sb), requests, "no create was sent again");
    assert_eq!(creates(&sb, "ACME"), made);

    // A deliberate new --batch-id orders the same content again.
    let out = submit(
        &desk,
        &first,
        &[api(&sb), vec!["--batch-id".into(), "again-2026-12".into()]].concat(),
    );
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    assert_eq!(creates(&sb, "ACME").len(), 12);
}

#[test]
fn a_half_copied_sheet_then_the_whole_one_is_a_conflict_not_a_second_order() {
    let sb = SandboxProcess::start(&["--accept-duplicates"]);
    let desk = Desk::new();
    let lines = rows(10, 3);
    // Cut in the middle of the fifth order: two of its three lines.
    let half = desk.path("orders_part.csv");
    write_csv(&half, &lines[..14], "\n", false);
    let whole = desk.path("orders.csv");
    write_csv(&whole, &lines, "\n", false);

    let out = submit(&desk, &half, &api(&sb));
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    assert_eq!(creates(&sb, "ACME").len(), 5);

    let out = submit(&desk, &whole, &api(&sb));
    assert_eq!(
        out.status.code(),
        Some(exit::ROWS_NOT_DONE),
        "{}",
        stderr(&out)
    );
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(rows.len(), 30);
    let status_of = |branch: &str| -> BTreeSet<String> {
        rows.iter()
            .filter(|r| r["branch_id"] == branch)
            .map(|r| r["status"].clone())
            .collect()
    };
    for b in 1..=4 {
        assert_eq!(
            status_of(&format!("{b:05}")),
            BTreeSet::from(["SKIPPED".into()])
        );
    }
    assert_eq!(status_of("00005"), BTreeSet::from(["CONFLICT".into()]));
    for b in 6..=10 {
        assert_eq!(
            status_of(&format!("{b:05}")),
            BTreeSet::from(["ACCEPTED".into()])
        );
    }
    let conflict = rows.iter().find(|r| r["status"] == "CONFLICT").unwrap();
    assert_eq!(conflict["error_code"], "CONFLICT");
    for says in ["orders_part.csv", "other content", "--batch-id", "P2"] {
        assert!(conflict["errors"].contains(says), "{says}: {conflict:?}");
    }
    let made = creates(&sb, "ACME");
    assert_eq!(made.len(), 10);
    assert!(made.values().all(|n| *n == 1), "{made:?}");
    // The run facts count the conflicts, and the counts add up.
    let facts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(desk.path("orders.report.csv.run.json")).unwrap())
            .unwrap();
    let sent = &facts["sent"];
    assert_eq!(sent["conflict"], 3);
    assert_eq!(sent["orders_conflict"], 1);
    let total: u64 = ["accepted", "rejected", "failed", "skipped", "conflict"]
        .iter()
        .map(|k| sent[k].as_u64().unwrap())
        .sum();
    assert_eq!(total, 30);
}

/// Every ACCEPTED or SKIPPED row's order is held at the API: no ghost.
fn assert_no_ghost(sb: &SandboxProcess, desk: &Desk) {
    let held = creates(sb, "ACME");
    for r in &report_rows(&desk.path("orders.report.csv")) {
        if matches!(r["status"].as_str(), "ACCEPTED" | "SKIPPED") {
            assert!(
                held.contains_key(&r["order_id"]),
                "reported {} without the order at the API: {r:?}",
                r["status"]
            );
        }
    }
}

/// 200/null for an unknown order, and a fifth of creates refused 503
/// before they are stored, with no inventory lookup: the first run cannot
/// tell a lost create from an order (no order of ours is known yet); the
/// next runs calibrate the lookup against a made-up id and a known order,
/// send the lost ones again, and end with every order created once.
#[test]
fn a_calibrated_lookup_ends_orders_in_doubt_and_creates_each_once() {
    let sb = SandboxProcess::start(&[
        "--unknown-as-null",
        "--accept-duplicates",
        "--error-503",
        "0.2",
        "--seed",
        "11",
    ]);
    let desk = Desk::new();
    let sheet = desk.path("orders.csv");
    write_csv(&sheet, &rows(1500, 1), "\n", false);
    let args = [api(&sb), ["--no-precheck", "-q"].map(String::from).to_vec()].concat();
    let first = submit(&desk, &sheet, &args);
    assert_eq!(first.status.code(), Some(exit::ROWS_NOT_DONE));
    assert_no_ghost(&sb, &desk);
    let unknown = report_rows(&desk.path("orders.report.csv"))
        .iter()
        .filter(|r| r["error_code"] == "OUTCOME_UNKNOWN")
        .count();
    assert!(unknown > 0, "the first run cannot tell: {}", stderr(&first));
    let mut runs = 1;
    let mut code = first.status.code();
    while code != Some(exit::OK) && runs < 4 {
        let out = submit(&desk, &sheet, &args);
        code = out.status.code();
        runs += 1;
        assert_no_ghost(&sb, &desk);
    }
    assert_eq!(code, Some(exit::OK), "done within {runs} runs");
    let held = creates(&sb, "ACME");
    assert_eq!(held.len(), 1500);
    assert!(held.values().all(|n| *n == 1), "each created once");
}

/// A broken lookup (every id, held or not, answered 200/null) proves
/// nothing: orders in doubt are never sent again, run after run, and the
/// run says why and what ends it.
#[test]
fn a_lookup_that_answers_everything_alike_proves_nothing() {
    let sb = SandboxProcess::start(&[
        "--lookup-always-null",
        "--accept-duplicates",
        "--error-503",
        "0.2",
        "--seed",
        "11",
    ]);
    let desk = Desk::new();
    let sheet = desk.path("orders.csv");
    write_csv(&sheet, &rows(200, 1), "\n", false);
    let args = [
        api(&sb),
        ["--retries", "1", "--no-precheck"]
            .map(String::from)
            .to_vec(),
    ]
    .concat();
    submit(&desk, &sheet, &args);
    let after_first: u64 = creates(&sb, "ACME").values().sum();
    for _ in 0..2 {
        let out = submit(&desk, &sheet, &args);
        assert_eq!(out.status.code(), Some(exit::ROWS_NOT_DONE));
        assert!(
            stderr(&out).contains("answered alike") && stderr(&out).contains("dcms-bulk resolve"),
            "{}",
            stderr(&out)
        );
        assert_no_ghost(&sb, &desk);
    }
    let held = creates(&sb, "ACME");
    assert_eq!(
        held.values().sum::<u64>(),
        after_first,
        "nothing sent again"
    );
    assert!(held.values().all(|n| *n == 1));
    assert!(held.len() < 200, "some creates were lost");
}

/// `resolve`: a person's decision on orders in doubt, recorded with who,
/// where, when and why; `--sent` is reported ACCEPTED_BY_DECISION and
/// never sent, `--not-sent` is sent by the next run; `show` and `verify`
/// show it; an order not in doubt, or unknown, is refused.
#[test]
fn resolve_records_a_persons_decision_both_ways() {
    // The first three API requests fail: the first three creates (one at
    // a time, no retry).
    let sb = SandboxProcess::start(&["--unknown-as-null", "--fail-first", "3"]);
    let desk = Desk::new();
    let sheet = desk.path("orders.csv");
    write_csv(&sheet, &rows(5, 1), "\n", false);
    let args = [
        api(&sb),
        ["--retries", "0", "--no-precheck", "--concurrency", "1"]
            .map(String::from)
            .to_vec(),
    ]
    .concat();
    let out = submit(&desk, &sheet, &args);
    assert_eq!(
        out.status.code(),
        Some(exit::ROWS_NOT_DONE),
        "{}",
        stderr(&out)
    );
    let report = report_rows(&desk.path("orders.report.csv"));
    let failed: Vec<String> = report
        .iter()
        .filter(|r| r["status"] == "FAILED")
        .map(|r| r["order_id"].clone())
        .collect();
    assert_eq!(failed.len(), 3, "{report:?}");
    let accepted = report.iter().find(|r| r["status"] == "ACCEPTED").unwrap()["order_id"].clone();
    let resolve = |ids: &[&str], how: &str, reason: &str| {
        let mut args = vec!["resolve"];
        args.extend_from_slice(ids);
        args.extend_from_slice(&[how, "--reason", reason]);
        desk.run_at(&sb.base, &args)
    };
    // A reason is required.
    let out = desk.run_at(&sb.base, &["resolve", failed[0].as_str(), "--sent"]);
    assert_eq!(out.status.code(), Some(exit::USAGE));
    let out = resolve(
        &[&failed[0]],
        "--sent",
        "DCMS support ticket 4411: the order is there",
    );
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let out = resolve(
        &[&failed[1]],
        "--not-sent",
        "not in the DCMS portal, checked by R. Rao",
    );
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    // Not in doubt, or unknown: nothing to decide.
    let out = resolve(
        &[&accepted, "DCB-nosuchorder", "--json"],
        "--not-sent",
        "a mistake",
    );
    assert_eq!(out.status.code(), Some(exit::ROWS_NOT_DONE));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["not_resolved"].as_array().unwrap().len(), 2, "{said}");
    assert_eq!(said["exit_code"], exit::ROWS_NOT_DONE, "{said}");
    assert!(
        stderr(&out).contains("nothing to decide"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("has no order DCB-nosuchorder"),
        "{}",
        stderr(&out)
    );

    let show = desk.run_at(&sb.base, &["show", failed[0].as_str()]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("ACCEPTED_BY_DECISION")
            && text.contains("decided sent by")
            && text.contains("ticket 4411")
            && text.contains("it was FAILED"),
        "{text}"
    );

    let again = [api(&sb), vec!["--no-precheck".to_string()]].concat();
    let out = submit(&desk, &sheet, &again);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("calibrated: HTTP 200"),
        "{}",
        stderr(&out)
    );
    let report = report_rows(&desk.path("orders.report.csv"));
    let status_of =
        |id: &str| report.iter().find(|r| r["order_id"] == id).unwrap()["status"].clone();
    assert_eq!(status_of(&failed[0]), "ACCEPTED_BY_DECISION");
    assert_eq!(status_of(&failed[1]), "ACCEPTED");
    // Left to the tool: looked up (200/null), compared with the controls
    // (a made-up id: 200/null; a created order: found), sent again.
    assert_eq!(status_of(&failed[2]), "ACCEPTED");
    let held = creates(&sb, "ACME");
    assert!(!held.contains_key(&failed[0]), "decided sent: never sent");
    assert_eq!(held.get(&failed[1]), Some(&1));
    assert_eq!(held.get(&failed[2]), Some(&1));
    let verify = desk.run(&["verify", path_str(&desk.path("orders.report.csv"))]);
    let text = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(
        verify.status.code(),
        Some(exit::OK),
        "{text}{}",
        stderr(&verify)
    );
    assert!(text.contains("decided"), "{text}");
}

#[cfg(unix)]
#[test]
fn faults_and_kill_9_against_an_api_that_accepts_duplicates_never_double_an_order() {
    let sb = SandboxProcess::start(&[
        "--accept-duplicates",
        "--unknown-as-null",
        "--error-503",
        "0.1",
        "--error-429",
        "0.05",
        "--drop",
        "0.02",
        "--hang",
        "0.02",
        "--hang-for",
        "1500ms",
        "--fault-applies",
        "random",
        "--latency",
        "1ms..4ms",
    ]);
    let desk = Desk::new();
    let sheet = desk.path("orders.csv");
    write_csv(&sheet, &rows(2000, 1), "\n", false);
    let args: Vec<String> = [
        api(&sb),
        [
            "--timeout",
            "1s",
            "--concurrency",
            "8",
            "--max-failures",
            "50",
            "-q",
        ]
        .map(String::from)
        .to_vec(),
    ]
    .concat();
    let argv: Vec<&str> = std::iter::once("submit")
        .chain(std::iter::once(sheet.to_str().unwrap()))
        .chain(args.iter().map(String::as_str))
        .collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut moments = Vec::new();
    for k in 0..8u32 {
        let before = creates(&sb, "ACME").len();
        let more = 20 + (seed.wrapping_mul(2654435761).rotate_left(k * 5) % 220) as usize;
        let mut child = desk
            .command(&argv)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while creates(&sb, "ACME").len() < (before + more).min(2000)
            && child.try_wait().unwrap().is_none()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        moments.push(creates(&sb, "ACME").len());
    }
    let mut runs = 0;
    let last = loop {
        runs += 1;
        let out = desk.run(&argv);
        if out.status.code() == Some(exit::OK) || runs == 20 {
            break out;
        }
    };
    assert_eq!(
        last.status.code(),
        Some(exit::OK),
        "killed at {moments:?}, {runs} re-runs: {}",
        stderr(&last)
    );
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(rows.len(), 2000);
    let held = creates(&sb, "ACME");
    assert_eq!(held.len(), 2000, "killed at {moments:?}");
    let doubled: Vec<_> = held.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubled.is_empty(), "killed at {moments:?}: {doubled:?}");
    for r in &rows {
        assert!(
            matches!(r["status"].as_str(), "ACCEPTED" | "SKIPPED"),
            "{r:?}"
        );
        assert!(held.contains_key(&r["order_id"]), "{r:?}");
    }
}

#[test]
fn two_submits_of_one_sheet_at_once_create_each_order_once() {
    let sb = SandboxProcess::start(&["--accept-duplicates", "--latency", "1ms..3ms"]);
    let desk = Desk::new();
    let sheet = desk.path("orders.csv");
    write_csv(&sheet, &rows(300, 1), "\n", false);
    let copy = desk.path("orders_copy.csv");
    std::fs::copy(&sheet, &copy).unwrap();
    let argv = |s: &Path| {
        let mut v = vec!["submit".to_string(), s.display().to_string()];
        v.extend(api(&sb));
        v
    };
    let a = argv(&sheet);
    let b = argv(&copy);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let piped = |argv: &[&str]| {
        desk.command(argv)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = piped(&a);
    let second = piped(&b);
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(exit::OK), "{}", stderr(&first));
    assert_eq!(second.status.code(), Some(exit::OK), "{}", stderr(&second));
    let held = creates(&sb, "ACME");
    assert_eq!(held.len(), 300);
    assert!(held.values().all(|n| *n == 1), "{held:?}");
    assert_eq!(create_requests(&sb), 300);
}

#[test]
fn a_lost_ledger_or_another_spelling_of_the_url_sends_nothing_again() {
    let sb = SandboxProcess::start(&["--accept-duplicates"]);
    let desk = Desk::new();
    let sheet = desk.path("orders.csv");
    write_csv(&sheet, &rows(250, 2), "\n", false);
    let out = submit(&desk, &sheet, &api(&sb));
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    assert_eq!(create_requests(&sb), 250);

    // Another ledger folder (another machine, a deleted folder).
    let elsewhere = desk.path("other-journals").display().to_string();
    let out = submit(
        &desk,
        &sheet,
        &[api(&sb), vec!["--journal-dir".into(), elsewhere]].concat(),
    );
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert!(
        rows.iter().all(|r| r["status"] == "SKIPPED"),
        "{:?}",
        rows[0]
    );
    assert!(rows[0]["errors"].contains("inventory"), "{:?}", rows[0]);

    // The same API spelled `localhost`: a ledger of its own.
    let localhost = sb.base.replace("127.0.0.1", "localhost");
    let out = submit(
        &desk,
        &sheet,
        &["--base-url", &localhost, "--tenant", "ACME"].map(String::from),
    );
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    assert_eq!(create_requests(&sb), 250, "no create was sent again");
    let held = creates(&sb, "ACME");
    assert_eq!(held.len(), 250);
    assert!(held.values().all(|n| *n == 1));

    // Lookups that return other products are a conflict, never a send.
    let odd = SandboxProcess::start(&["--accept-duplicates", "--lookup-other-products"]);
    let out = submit(&desk, &sheet, &api(&odd));
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let other = desk.path("other-journals-2").display().to_string();
    let out = submit(
        &desk,
        &sheet,
        &[api(&odd), vec!["--journal-dir".into(), other]].concat(),
    );
    assert_eq!(
        out.status.code(),
        Some(exit::ROWS_NOT_DONE),
        "{}",
        stderr(&out)
    );
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert!(
        rows.iter().all(|r| r["status"] == "CONFLICT"),
        "{:?}",
        rows[0]
    );
    assert!(rows[0]["errors"].contains("x11"), "{:?}", rows[0]);
    assert_eq!(create_requests(&odd), 250);
}

#[test]
fn cancels_and_upgrades_whose_answers_are_lost_are_never_repeated() {
    // Every request is carried out and a third of the answers are lost.
    let sb = SandboxProcess::start(&[
        "--unknown-as-null",
        "--drop",
        "0.3",
        "--fault-applies",
        "always",
        "--seed",
        "5",
    ]);
    let desk = Desk::new();
    // Orders to cancel, created straight at the sandbox.
    let mut cancels = String::from("order_id,branch_id\n");
    for i in 0..20 {
        let body = format!(
            r#"{{"orderId":"C-{i}","branchInfo":{{"branchId":"{i:05}","branchName":"B"}},"address":"a~b~c","pinCode":"411001","orderingPartyInfo":{{"orderingPartyId":"P"}},"processStartTime":"2026-12-01 09:00:00","validity":365,"products":[{{"productId":"01","bin":"412345","quantity":1,"plasticCode":"0001"}}]}}"#
        );
        // A dropped answer still stores the order: retry until it is there.
        for _ in 0..10 {
            let _ = sb
                .http
                .post(format!("{}/card-order", sb.base))
                .header("tenant", "ACME")
                .header("content-type", "application/json")
                .body(body.clone())
                .send();
            if sb.inspect(&format!("/tenants/ACME/orders/C-{i}"))["orderId"].is_string() {
                break;
            }
        }
        cancels.push_str(&format!("C-{i},{i:05}\n"));
    }
    std::fs::write(desk.path("cancels.csv"), cancels).unwrap();
    let mut upgrades =
        String::from("entity_id,kit_no,delivery_address_type,card_type,plastic_code,tier_type\n");
    for i in 1..=10 {
        upgrades.push_str(&format!(
            "ENT{i:06},{},PERMANENT,PHYSICAL,4566,GOLD\n",
            4240000000u64 + i
        ));
    }
    std::fs::write(desk.path("upgrades.csv"), upgrades).unwrap();

    for (command, sheet) in [("cancel", "cancels.csv"), ("upgrade", "upgrades.csv")] {
        let mut argv = vec![command.to_string(), sheet.to_string()];
        argv.extend(api(&sb));
        argv.extend(["--max-failures", "100", "-q"].map(String::from));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut code = None;
        for _ in 0..15 {
            code = desk.run(&argv).status.code();
            if code == Some(exit::OK) {
                break;
            }
        }
        assert_eq!(code, Some(exit::OK), "{command}");
    }
    let cancel_ok = sb.inspect("/stats")["requests"]["/v1/card-order/cancel"]["200"]
        .as_u64()
        .unwrap_or(0);
    let cancel_dropped = sb.inspect("/stats")["requests"]["/v1/card-order/cancel"]["dropped"]
        .as_u64()
        .unwrap_or(0);
    let cancel_refused = sb.inspect("/stats")["requests"]["/v1/card-order/cancel"]["400"]
        .as_u64()
        .unwrap_or(0);
    // Each cancel was carried out once: answered or dropped, never refused
    // as "already CANCELLED".
    assert_eq!(cancel_ok + cancel_dropped, 20);
    assert_eq!(cancel_refused, 0, "a second cancel was sent");
    for i in 0..20 {
        assert_eq!(
            sb.inspect(&format!("/tenants/ACME/orders/C-{i}"))["status"],
            "CANCELLED"
        );
    }
    assert_eq!(
        sb.inspect("/stats")["tenants"]["ACME"]["upgrades"],
        10,
        "each kit upgraded exactly once"
    );
    let rows = report_rows(&desk.path("upgrades.report.csv"));
    assert!(
        rows.iter()
            .all(|r| matches!(r["status"].as_str(), "ACCEPTED" | "SKIPPED"))
    );
}

/// A 403 is the gateway refusing us, whatever the call: a lookup answered
/// 403 stops the run (exit 4) with nothing sent again, the bulk lookup
/// answered 403 is not taken for an endpoint the API lacks, and `status`
/// stops the same way.
#[test]
fn a_forbidden_lookup_is_the_gateway_refusing_us() {
    let sb = SandboxProcess::start(&["--lookups-forbidden", "--fail-first", "1"]);
    let desk = Desk::new();
    let sheet = desk.path("orders.csv");
    write_csv(&sheet, &rows(5, 1), "\n", false);
    let no_precheck = [
        api(&sb),
        ["--no-precheck", "--concurrency", "1"]
            .map(String::from)
            .to_vec(),
    ]
    .concat();
    // The first create is answered 503: it may have been processed, so
    // it is looked up before a retry; the lookup is refused.
    let out = submit(&desk, &sheet, &no_precheck);
    assert_eq!(
        out.status.code(),
        Some(exit::API_UNAVAILABLE),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("HTTP 403"), "{}", stderr(&out));
    // Which order's create is answered 503 depends on which is sent first
    // (two are worked on per place): one order is in doubt.
    let report = report_rows(&desk.path("orders.report.csv"));
    let unknown = report
        .iter()
        .filter(|r| r["error_code"] == "OUTCOME_UNKNOWN")
        .count();
    assert_eq!(unknown, 1, "{report:?}");
    let sent_before = create_requests(&sb);
    // With the bulk lookup: refused too, nothing sent.
    let out = submit(&desk, &sheet, &api(&sb));
    assert_eq!(
        out.status.code(),
        Some(exit::API_UNAVAILABLE),
        "{}",
        stderr(&out)
    );
    let said = stderr(&out);
    assert!(
        said.contains("the gateway refuses us: HTTP 403") && !said.contains("does not offer"),
        "not taken for an endpoint the API lacks: {said}"
    );
    assert_eq!(create_requests(&sb), sent_before, "nothing sent");
    // status of orders created: the same.
    let other = desk.path("more.csv");
    write_csv(
        &other,
        &rows(2, 1)
            .iter()
            .map(|r| r.replace("Pune", "Pune East"))
            .collect::<Vec<_>>(),
        "\n",
        false,
    );
    let out = submit(&desk, &other, &no_precheck);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let out = desk.run_at(
        &sb.base,
        &["status", path_str(&desk.path("more.report.csv"))],
    );
    assert_eq!(
        out.status.code(),
        Some(exit::API_UNAVAILABLE),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
}
