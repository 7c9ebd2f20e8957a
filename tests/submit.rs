//! `dcms-bulk submit` run as a user would, against `dcms-bulk sandbox`
//! over real HTTP on a free loopback port; the sandbox's inspection API
//! says what really arrived.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Desk, SandboxProcess, path_str, report_rows, stderr};
use dcms_bulk::exit;
use serde_json::Value;

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn statuses(rows: &[BTreeMap<String, String>]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in rows {
        *counts.entry(r["status"].clone()).or_default() += 1;
    }
    counts
}

/// The sandbox's orders of a tenant: id → number of products.
fn stored(sb: &SandboxProcess, tenant: &str) -> BTreeMap<String, usize> {
    sb.inspect(&format!("/tenants/{tenant}/orders"))
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["orderId"].as_str().unwrap().to_owned(),
                o["products"].as_array().unwrap().len(),
            )
        })
        .collect()
}

fn duplicates(sb: &SandboxProcess, tenant: &str) -> u64 {
    sb.inspect("/stats")["tenants"][tenant]["duplicateCreates"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn every_order_is_created_once_and_the_report_agrees_row_by_row() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 40, 3);
    let out = desk.run_at(&sb.base, &["submit", sheet.to_str().unwrap(), "--json"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(exit::OK), "{stderr}");
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(rows.len(), 120);
    assert_eq!(statuses(&rows), BTreeMap::from([("ACCEPTED".into(), 120)]));

    // Row by row: each row's order is at the sandbox with as many products
    // as the report has rows for it, and nothing else is there.
    let mut per_order: BTreeMap<String, usize> = BTreeMap::new();
    for r in &rows {
        *per_order.entry(r["order_id"].clone()).or_default() += 1;
        assert_eq!(r["http_status"], "200");
        assert_eq!(r["attempts"], "1");
        assert!(r["submitted_at"].ends_with('Z'), "{r:?}");
        assert!(r["latency_ms"].parse::<u64>().is_ok());
    }
    assert_eq!(per_order, stored(&sb, "ACME"));
    assert_eq!(duplicates(&sb, "ACME"), 0);
    let stats = sb.inspect("/stats");
    assert_eq!(stats["requests"]["/v1/card-order"]["200"], 40);

    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["exit_code"], exit::OK);
    assert_eq!(summary["files"][0]["counts"]["accepted"], 120);
    assert_eq!(summary["files"][0]["counts"]["orders_accepted"], 40);
    let facts: Value = serde_json::from_str(
        &std::fs::read_to_string(desk.path("orders.report.csv.run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(facts["api"]["tenant"], "ACME");
    assert_eq!(facts["api"]["base_url"], sb.base.as_str());
    assert_eq!(facts["sent"]["accepted"], 120);

    // The same command again sends nothing: every order is SKIPPED.
    let again = desk.run_at(&sb.base, &["submit", sheet.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(exit::OK), "{}", text(&again).1);
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(statuses(&rows), BTreeMap::from([("SKIPPED".into(), 120)]));
    assert_eq!(
        sb.inspect("/stats")["requests"]["/v1/card-order"]["200"],
        40
    );
}

#[test]
fn under_faults_every_order_ends_accepted_or_failed_and_a_rerun_finishes() {
    let sb = SandboxProcess::start(&[
        "--error-503",
        "0.10",
        "--error-429",
        "0.05",
        "--drop",
        "0.02",
        "--hang",
        "0.02",
        "--hang-for",
        "3s",
        "--fault-applies",
        "random",
        "--seed",
        "11",
    ]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 150, 2);
    let args = [
        "submit",
        sheet.to_str().unwrap(),
        "--timeout",
        "700ms",
        "--concurrency",
        "16",
        "--max-failures",
        "100",
    ];
    let first = desk.run_at(&sb.base, &args);
    let code = first.status.code();
    assert!(
        code == Some(exit::OK) || code == Some(exit::ROWS_NOT_DONE),
        "{}",
        text(&first).1
    );
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(rows.len(), 300);
    for r in &rows {
        match r["status"].as_str() {
            "ACCEPTED" => {}
            "FAILED" => assert!(
                !r["errors"].is_empty() && !r["error_code"].is_empty(),
                "{r:?}"
            ),
            other => panic!("unexpected status {other}: {r:?}"),
        }
    }
    let accepted: BTreeSet<String> = rows
        .iter()
        .filter(|r| r["status"] == "ACCEPTED")
        .map(|r| r["order_id"].clone())
        .collect();
    let at_sandbox = stored(&sb, "ACME");
    assert!(accepted.iter().all(|id| at_sandbox.contains_key(id)));

    // Re-runs finish the failed ones; the sandbox ends with each order once.
    for _ in 0..4 {
        let rerun = desk.run_at(&sb.base, &args);
        if rerun.status.code() == Some(exit::OK) {
            break;
        }
    }
    let rows = report_rows(&desk.path("orders.report.csv"));
    let done = statuses(&rows);
    assert_eq!(done.get("FAILED"), None, "{done:?}");
    assert_eq!(done.values().sum::<usize>(), 300);
    let at_sandbox = stored(&sb, "ACME");
    assert_eq!(at_sandbox.len(), 150);
    assert!(at_sandbox.values().all(|products| *products == 2));
    assert_eq!(duplicates(&sb, "ACME"), 0, "nothing was created twice");
    let faults = sb.inspect("/stats")["faults"].clone();
    for kind in ["503", "429", "drop"] {
        assert!(
            faults[kind].as_u64().unwrap_or(0) > 0,
            "no {kind} fault met: {faults}"
        );
    }
}

#[cfg(unix)]
/// `runs` tells the whole story: a run cut off by kill -9 is marked so
/// once the re-run begins, and the re-run says it takes it up; every
/// count is listed; a file that could not be read is a run of its own.
#[test]
fn runs_tell_of_cut_off_runs_unreadable_files_and_every_count() {
    let sb = SandboxProcess::start(&["--latency", "20ms"]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 200, 1);
    let args = ["submit", path_str(&sheet), "--concurrency", "2"];
    let mut child = desk.command_at(&sb.base, &args).spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while stored(&sb, "ACME").len() < 20 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    let stored_before = stored(&sb, "ACME").len();
    assert!(stored_before > 0 && stored_before < 200, "{stored_before}");
    let runs_text = |desk: &Desk| {
        let out = desk.run_at(&sb.base, &["runs"]);
        assert_eq!(out.status.code(), Some(exit::OK), "{}", text(&out).1);
        text(&out).0
    };
    let before = runs_text(&desk);
    assert!(
        before.contains("not ended (running, or cut off)"),
        "{before}"
    );

    let again = desk.run_at(&sb.base, &args);
    let (_, stderr) = text(&again);
    assert_eq!(again.status.code(), Some(exit::OK), "{stderr}");
    assert!(stderr.contains("resuming run 1 (cut off at "), "{stderr}");
    assert!(stderr.contains("already done"), "{stderr}");

    // A sheet with a row to fix, and a file that is no sheet.
    let bad = desk.path("bad.csv");
    std::fs::write(
        &bad,
        format!(
            "{}\n{}\n",
            common::HEADER,
            common::row("00091", "P0", "ten")
        ),
    )
    .unwrap();
    let out = desk.run_at(&sb.base, &["submit", path_str(&bad)]);
    assert_eq!(
        out.status.code(),
        Some(exit::ROWS_NOT_DONE),
        "{}",
        text(&out).1
    );
    let broken = desk.path("broken.xlsx");
    std::fs::write(&broken, b"not a workbook").unwrap();
    let out = desk.run_at(&sb.base, &["submit", path_str(&broken)]);
    assert_eq!(
        out.status.code(),
        Some(exit::INPUT_UNREADABLE),
        "{}",
        text(&out).1
    );

    let after = runs_text(&desk);
    let lines: Vec<&str> = after.lines().collect();
    assert_eq!(lines.len(), 4, "{after}");
    assert!(
        lines[0].starts_with("#1 ") && lines[0].contains("cut off; resumed by run 2"),
        "{after}"
    );
    assert!(
        lines[1].starts_with("#2 ") && lines[1].contains("200 rows"),
        "{after}"
    );
    assert!(lines[2].contains("1 invalid"), "{after}");
    assert!(
        lines[3].contains("broken.xlsx: could not be read: "),
        "{after}"
    );
    let out = desk.run_at(&sb.base, &["runs", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = listed["runs"].as_array().unwrap();
    assert_eq!(runs[0]["cut_off"], true);
    assert_eq!(runs[0]["resumed_by"], 2);
    assert!(runs[1].get("cut_off").is_none(), "{}", runs[1]);
    assert!(runs[3]["counts"]["unreadable"].is_string(), "{}", runs[3]);
    assert!(
        Path::new(runs[3]["report"].as_str().unwrap()).is_file()
            || desk.path(runs[3]["report"].as_str().unwrap()).is_file(),
        "{}",
        runs[3]
    );
}

#[test]
fn kill_9_at_random_moments_never_loses_or_doubles_an_order() {
    let sb = SandboxProcess::start(&["--latency", "1ms..8ms"]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 2000, 1);
    let args = [
        "submit",
        sheet.to_str().unwrap(),
        "--concurrency",
        "8",
        "-q",
    ];
    // Kill when the sandbox has received a random number of new orders, so
    // every kill lands mid-run whatever the machine's speed.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut moments = Vec::new();
    for k in 0..4u32 {
        let before = stored(&sb, "ACME").len();
        let more = 50 + (seed.wrapping_mul(2654435761).rotate_left(k * 7) % 350) as usize;
        let mut child = desk.command_at(&sb.base, &args).spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while stored(&sb, "ACME").len() < (before + more).min(2000)
            && child.try_wait().unwrap().is_none()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        moments.push(stored(&sb, "ACME").len());
    }
    assert!(
        moments.iter().any(|n| *n > 0 && *n < 2000),
        "no kill landed mid-run: {moments:?}"
    );
    let last = desk.run_at(&sb.base, &args);
    assert_eq!(
        last.status.code(),
        Some(exit::OK),
        "killed with {moments:?} orders stored: {}",
        text(&last).1
    );
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(rows.len(), 2000, "killed with {moments:?} orders stored");
    let ids: BTreeSet<_> = rows.iter().map(|r| r["order_id"].clone()).collect();
    assert_eq!(ids.len(), 2000);
    for r in &rows {
        assert!(
            matches!(r["status"].as_str(), "ACCEPTED" | "SKIPPED"),
            "{r:?}"
        );
    }
    let at_sandbox = stored(&sb, "ACME");
    assert_eq!(
        at_sandbox.len(),
        2000,
        "killed with {moments:?} orders stored"
    );
    assert_eq!(ids, at_sandbox.keys().cloned().collect());
    assert_eq!(
        duplicates(&sb, "ACME"),
        0,
        "killed with {moments:?} orders stored"
    );
}

#[test]
fn a_wrong_token_stops_with_exit_4_and_the_token_is_never_written() {
    let desk = Desk::new();
    let right = "right-token-93c1";
    let wrong = "wrong-token-7f2e";
    std::fs::write(desk.path("server.token"), right).unwrap();
    std::fs::write(desk.path("client.token"), format!("{wrong}\n")).unwrap();
    let sb = SandboxProcess::start(&["--token-file", desk.path("server.token").to_str().unwrap()]);
    let sheet = desk.sheet("orders.csv", 5, 1);
    let out = desk
        .command_at(
            &sb.base,
            &["submit", sheet.to_str().unwrap(), "-v", "--json"],
        )
        .env("DCMS_TOKEN_FILE", desk.path("client.token"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(exit::API_UNAVAILABLE), "{stderr}");
    assert!(
        stderr.contains("refuses us") && stderr.contains("401"),
        "{stderr}"
    );
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r["status"] == "FAILED"));

    // Nowhere: stdout, stderr, report, run facts, journal.
    let mut written = vec![stdout, stderr];
    written.push(std::fs::read_to_string(desk.path("orders.report.csv")).unwrap());
    written.push(std::fs::read_to_string(desk.path("orders.report.csv.run.json")).unwrap());
    for entry in std::fs::read_dir(desk.path("journals")).unwrap() {
        written.push(std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
    }
    for w in &written {
        assert!(
            !w.contains(wrong) && !w.contains(right),
            "a token leaked into: {w}"
        );
    }

    // With the right token (from the environment) the same batch goes through.
    let out = desk
        .command_at(&sb.base, &["submit", sheet.to_str().unwrap()])
        .env("DCMS_TOKEN", right)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::OK), "{}", text(&out).1);
    assert_eq!(stored(&sb, "ACME").len(), 5);
}

#[test]
fn http_200_with_an_exception_is_rejected_not_accepted() {
    let sb = SandboxProcess::start(&["--business-errors", "1"]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 3, 2);
    let out = desk.run_at(&sb.base, &["submit", sheet.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(exit::ROWS_NOT_DONE),
        "{}",
        text(&out).1
    );
    let rows = report_rows(&desk.path("orders.report.csv"));
    for r in &rows {
        assert_eq!(r["status"], "REJECTED");
        assert_eq!(r["error_code"], "sandbox.business.error");
        assert_eq!(r["http_status"], "200");
        assert!(
            r["errors"].contains("refused by the business rules"),
            "{r:?}"
        );
    }
    assert_eq!(stored(&sb, "ACME").len(), 0);
    // A rejection is final: the re-run reports it again without sending.
    let requests = sb.inspect("/stats")["requests"]["/v1/card-order"]["200"].clone();
    desk.run_at(&sb.base, &["submit", sheet.to_str().unwrap()]);
    assert_eq!(
        sb.inspect("/stats")["requests"]["/v1/card-order"]["200"],
        requests
    );
    assert_eq!(
        statuses(&report_rows(&desk.path("orders.report.csv")))["REJECTED"],
        6
    );
}

#[test]
fn progress_lines_off_a_terminal_say_done_rate_and_eta() {
    let sb = SandboxProcess::start(&["--latency", "200ms"]);
    let desk = Desk::new();
    let sheet = desk.sheet("slow.csv", 32, 1);
    let out = desk.submit(
        &sheet,
        &sb.base,
        "ACME",
        &[
            "--concurrency",
            "1",
            "--no-precheck",
            "--log-format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let log: Vec<Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let progress: Vec<&Value> = log.iter().filter(|l| l["event"] == "progress").collect();
    assert!(!progress.is_empty(), "a line every 5 s: {log:?}");
    for p in progress {
        let (done, total) = (p["done"].as_u64().unwrap(), p["total"].as_u64().unwrap());
        assert!(done > 0 && done < total && total == 32, "{p}");
        assert!(p["rate"].as_f64().unwrap() > 0.0, "{p}");
        assert!(p["eta_s"].as_u64().is_some(), "{p}");
        let message = p["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("{done}/32 done")) && message.contains("orders/s, ETA "),
            "{message}"
        );
    }
    let finished = log.iter().find(|l| l["event"] == "finished").unwrap();
    assert_eq!(finished["accepted"], 32);
    assert_eq!(finished["code"], exit::OK);
}

#[test]
fn no_answer_at_all_is_exit_4_whatever_the_number_of_orders() {
    let desk = Desk::new();
    // A port nobody listens on: every connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = format!("http://127.0.0.1:{port}/v1");
    // An API that answers every call 503.
    let sb = SandboxProcess::start(&["--error-503", "1"]);
    // The bulk lookup before the creates fails first, unless it is off:
    // then the creates are the calls that get no answer.
    let cases = [
        (1, &refused, "-v"),
        (2, &refused, "--no-precheck"),
        (3, &refused, "--no-precheck"),
        (4, &sb.base, "--no-precheck"),
    ];
    for (orders, base, precheck) in cases {
        let sheet = desk.sheet(&format!("o{orders}.csv"), orders, 1);
        let out = desk.submit(&sheet, base, "ACME", &["--retries", "1", precheck]);
        let (_, stderr) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(exit::API_UNAVAILABLE),
            "{orders} orders at {base} {precheck}: {stderr}"
        );
        assert!(stderr.contains("the API is unavailable"), "{stderr}");
        let rows = report_rows(&desk.path(&format!("o{orders}.report.csv")));
        assert_eq!(rows.len(), orders);
        assert!(rows.iter().all(|r| r["status"] == "FAILED"), "{rows:?}");
    }
    // One answer, and the rows it could not send are rows not done: 1.
    let flaky = SandboxProcess::start(&["--error-503", "0.5", "--seed", "7"]);
    let sheet = desk.sheet("o20.csv", 20, 1);
    let out = desk.submit(
        &sheet,
        &flaky.base,
        "ACME",
        // No bulk lookup first: which orders share a lookup call depends
        // on timing, and so would the faults it meets.
        &["--retries", "0", "--max-failures", "1000", "--no-precheck"],
    );
    let (_, stderr) = text(&out);
    let rows = report_rows(&desk.path("o20.report.csv"));
    let seen = statuses(&rows);
    let n = |s: &str| seen.get(s).copied().unwrap_or(0);
    assert!(n("ACCEPTED") > 0 && n("FAILED") > 0, "{seen:?}: {stderr}");
    assert_eq!(out.status.code(), Some(exit::ROWS_NOT_DONE), "{stderr}");
}

#[test]
fn an_unreachable_api_stops_with_exit_4_and_nothing_is_lost() {
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 30, 1);
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}/v1");
    let out = desk.run_at(
        &base,
        &[
            "submit",
            sheet.to_str().unwrap(),
            "--max-failures",
            "3",
            "--concurrency",
            "1",
        ],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(exit::API_UNAVAILABLE), "{stderr}");
    assert!(stderr.contains("the API is unavailable"), "{stderr}");
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(rows.len(), 30);
    assert!(rows.iter().all(|r| r["status"] == "FAILED"));
    assert!(rows.iter().any(|r| r["error_code"] == "NOT_SUBMITTED"));
}

/// A closed port, met by `submit` (pre-check on), `status` and `watch`:
/// each says the connection was refused, and where, at the default
/// verbosity, and advises only what is safe (wait, `doctor`), never to turn
/// the pre-check off.
#[test]
fn a_closed_port_is_named_by_submit_status_and_watch() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 4, 1);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}/v1");
    let refused = format!("connection refused by 127.0.0.1:{port}");
    let safe = |stderr: &str| {
        assert!(stderr.contains(&refused), "{stderr}");
        assert!(stderr.contains("dcms-bulk doctor"), "{stderr}");
        assert!(!stderr.contains("precheck = false"), "{stderr}");
    };

    let out = desk.run_at(&closed, &["submit", path_str(&sheet)]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(exit::API_UNAVAILABLE), "{stderr}");
    safe(&stderr);

    // Sent for real, then asked after from a closed port.
    std::fs::remove_file(desk.path("orders.report.csv")).unwrap();
    let out = desk.run_at(&sb.base, &["submit", path_str(&sheet), "--batch-id", "b"]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", text(&out).1);
    let out = desk.run_at(&closed, &["status", "orders.report.csv"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(exit::API_UNAVAILABLE), "{stderr}");
    safe(&stderr);

    std::fs::create_dir(desk.path("drop")).unwrap();
    std::fs::copy(&sheet, desk.path("drop/night.csv")).unwrap();
    let log = std::fs::File::create(desk.path("watch.log")).unwrap();
    let mut watch = desk
        .command_at(&closed, &["watch", "drop", "--settle", "0", "--poll", "1s"])
        .stderr(log)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let told = loop {
        let log = std::fs::read_to_string(desk.path("watch.log")).unwrap();
        if log.contains("trying it again") || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(told.contains(&refused), "{told}");
    assert!(!told.contains("precheck = false"), "{told}");
}

#[test]
fn profiles_then_environment_then_flags() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 1, 1);
    let config = desk.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "default_profile = \"uat\"\n[profiles.uat]\nbase_url = \"{}\"\ntenant = \"FROM_PROFILE\"\n",
            sb.base
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let s = sheet.to_str().unwrap();
    let ok = |out: Output| assert_eq!(out.status.code(), Some(exit::OK), "{}", text(&out).1);
    ok(desk.run(&["submit", s, "--config", cfg, "--batch-id", "b1"]));
    ok(desk
        .command(&["submit", s, "--config", cfg, "--batch-id", "b2"])
        .env("DCMS_TENANT", "FROM_ENV")
        .output()
        .unwrap());
    ok(desk
        .command(&[
            "submit",
            s,
            "--config",
            cfg,
            "--batch-id",
            "b3",
            "--tenant",
            "FROM_FLAG",
        ])
        .env("DCMS_TENANT", "FROM_ENV")
        .output()
        .unwrap());
    let tenants = sb.inspect("/stats")["tenants"].clone();
    for t in ["FROM_PROFILE", "FROM_ENV", "FROM_FLAG"] {
        assert_eq!(tenants[t]["orders"], 1, "{t}: {tenants}");
    }
    let missing = desk.run(&["submit", s, "--config", cfg, "--profile", "prod"]);
    assert_eq!(missing.status.code(), Some(exit::USAGE));
    assert!(
        text(&missing)
            .1
            .contains("no profile `prod` (profiles: uat)")
    );
    let nothing = desk.run(&["submit", s]);
    assert_eq!(nothing.status.code(), Some(exit::USAGE));
    assert!(
        text(&nothing).1.contains("--sandbox"),
        "{}",
        text(&nothing).1
    );
    let plain = desk.run(&[
        "submit",
        s,
        "--base-url",
        "http://10.1.2.3/v1",
        "--tenant",
        "A",
    ]);
    assert_eq!(plain.status.code(), Some(exit::USAGE));
    assert!(text(&plain).1.contains("--allow-insecure-http"));
}

#[test]
fn a_folder_is_one_batch_per_sheet_with_a_combined_summary() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    std::fs::create_dir(desk.path("in")).unwrap();
    let a = desk.sheet("in/a.csv", 2, 1);
    std::fs::copy(&a, desk.path("in/b.csv")).unwrap();
    std::fs::write(desk.path("in/broken.xlsx"), b"not a workbook").unwrap();
    let out = desk.run_at(
        &sb.base,
        &[
            "submit",
            desk.path("in").to_str().unwrap(),
            "--report-dir",
            desk.path("out").to_str().unwrap(),
            "--json",
            "--settle",
            "0",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(exit::INPUT_UNREADABLE), "{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    let files = summary["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(files[0]["exit_code"], exit::OK);
    assert_eq!(files[1]["exit_code"], exit::OK);
    assert_eq!(files[2]["exit_code"], exit::INPUT_UNREADABLE);
    assert!(desk.path("out/a.report.csv").exists() && desk.path("out/b.report.csv").exists());
    // The file that could not be read has no report, but a record of why.
    assert!(!desk.path("out/broken.report.xlsx").exists());
    let record = desk.path("out/broken.report.xlsx.run.json");
    assert_eq!(files[2]["run_facts"], path_str(&record));
    let facts: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(facts["exit_code"], exit::INPUT_UNREADABLE);
    assert!(
        facts["error"].as_str().unwrap().contains("broken.xlsx"),
        "{facts}"
    );
    assert_eq!(facts["input"]["bytes"], 14);
    assert_eq!(facts["input"]["sha256"].as_str().unwrap().len(), 64);
    assert!(facts["report"].is_null());
    // Again: the newest record takes the plain name, the first is kept
    // under its run's id (a file that could not be read is a run of its
    // own in the ledger).
    let first = std::fs::read(&record).unwrap();
    let again = desk.submit(
        &desk.path("in/broken.xlsx"),
        &sb.base,
        "ACME",
        &["--report-dir", desk.path("out").to_str().unwrap()],
    );
    assert_eq!(again.status.code(), Some(exit::INPUT_UNREADABLE));
    let kept: Vec<std::path::PathBuf> = std::fs::read_dir(desk.path("out"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("broken.run-") && n.ends_with(".report.xlsx.run.json")
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        std::fs::read(&kept[0]).unwrap(),
        first,
        "the first record kept"
    );
    assert_ne!(
        std::fs::read(&record).unwrap(),
        first,
        "the plain name is the latest"
    );
    // Without --done-dir or --failed-dir nothing moves.
    assert!(desk.path("in/a.csv").exists() && desk.path("in/broken.xlsx").exists());
    // a.csv and b.csv hold the same bytes: the same batch, sent once.
    assert_eq!(stored(&sb, "ACME").len(), 2);
    assert_eq!(
        statuses(&report_rows(&desk.path("out/b.report.csv")))["SKIPPED"],
        2
    );
}

#[test]
fn a_folder_gives_only_finished_sheets_and_says_what_it_passed_over() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    std::fs::create_dir(desk.path("in")).unwrap();
    // A sheet copied in slowly, in pieces: taken only once whole.
    let whole = std::fs::read(desk.sheet("whole.csv", 40, 1)).unwrap();
    let slow = desk.path("in/slow.csv");
    std::fs::write(&slow, &whole[..whole.len() / 4]).unwrap();
    let writer = {
        let (slow, whole) = (slow.clone(), whole.clone());
        std::thread::spawn(move || {
            for k in 2..=4 {
                std::thread::sleep(Duration::from_millis(400));
                std::fs::write(&slow, &whole[..whole.len() * k / 4]).unwrap();
            }
        })
    };
    for name in [
        "next.csv.part",
        "~$book.xlsx",
        "old.report.csv",
        "notes.pdf",
    ] {
        std::fs::write(desk.path(&format!("in/{name}")), "x").unwrap();
    }
    let out = desk.submit(
        &desk.path("in"),
        &sb.base,
        "ACME",
        &[
            "--report-dir",
            desk.path("out").to_str().unwrap(),
            "--json",
            "--settle",
            "1s",
        ],
    );
    writer.join().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(exit::OK), "{stderr}");
    assert!(stderr.contains("waiting for"), "{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["files"].as_array().unwrap().len(), 1);
    // Every row of the whole sheet, none of a piece.
    assert_eq!(report_rows(&desk.path("out/slow.report.csv")).len(), 40);
    assert_eq!(stored(&sb, "ACME").len(), 40);
    let passed: Vec<(String, String)> = summary["passed_over"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let path = p["path"].as_str().unwrap();
            let name = Path::new(path).file_name().unwrap().to_string_lossy();
            (name.into_owned(), p["why"].as_str().unwrap().to_owned())
        })
        .collect();
    let why = |n: &str| &passed.iter().find(|(name, _)| name == n).unwrap().1;
    assert!(
        why("next.csv.part").contains("temporary name"),
        "{passed:?}"
    );
    assert!(why("~$book.xlsx").contains("lock file"), "{passed:?}");
    assert!(
        why("old.report.csv").contains("report of an earlier run"),
        "{passed:?}"
    );
    assert!(
        why("notes.pdf").contains("not an order sheet"),
        "{passed:?}"
    );
    // A folder with no sheet at all is a quiet night: exit 0, said.
    std::fs::create_dir(desk.path("empty")).unwrap();
    let quiet = desk.submit(&desk.path("empty"), &sb.base, "ACME", &["--settle", "0"]);
    let (_, said) = text(&quiet);
    assert_eq!(quiet.status.code(), Some(exit::OK), "{said}");
    assert!(said.contains("nothing sent"), "{said}");
    for (name, _) in &passed {
        assert!(stderr.contains("passed over"), "{stderr}");
        assert!(stderr.contains(name.as_str()), "{name}: {stderr}");
    }
}

#[test]
fn done_and_failed_folders_take_each_file_with_its_report_and_never_overwrite() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    std::fs::create_dir(desk.path("in")).unwrap();
    let good = std::fs::read(desk.sheet("good.csv", 3, 1)).unwrap();
    std::fs::write(desk.path("in/good.csv"), &good).unwrap();
    let bad = format!(
        "{}\n{}\n{}\n",
        common::HEADER,
        common::row("00091", "P0", "10"),
        common::row("00092", "P0", "ten")
    );
    std::fs::write(desk.path("in/bad.csv"), bad).unwrap();
    std::fs::write(desk.path("in/broken.xlsx"), b"not a workbook").unwrap();
    let run = |desk: &Desk| {
        let out = desk.submit(
            &desk.path("in"),
            &sb.base,
            "ACME",
            &[
                "--settle",
                "0",
                "--done-dir",
                desk.path("done").to_str().unwrap(),
                "--failed-dir",
                desk.path("failed").to_str().unwrap(),
                "--json",
            ],
        );
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), summary)
    };
    let (code, summary) = run(&desk);
    assert_eq!(code, Some(exit::INPUT_UNREADABLE), "{summary}");
    let names = |dir: &str| -> BTreeSet<String> {
        std::fs::read_dir(desk.path(dir))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert!(names("in").is_empty(), "{:?}", names("in"));
    assert_eq!(
        names("done"),
        set(&["good.csv", "good.report.csv", "good.report.csv.run.json"])
    );
    // Sent, with a row the branch must fix: needs attention (beside the
    // failed folder unless named), with the rows to fix in the branch's
    // layout; never with the file that could not be read.
    assert_eq!(
        names("needs-attention"),
        set(&[
            "bad.csv",
            "bad.report.csv",
            "bad.report.csv.run.json",
            "bad.to-fix.csv",
        ])
    );
    assert_eq!(
        names("failed"),
        set(&["broken.xlsx", "broken.report.xlsx.run.json"])
    );
    let to_fix = std::fs::read_to_string(desk.path("needs-attention/bad.to-fix.csv")).unwrap();
    let lines: Vec<&str> = to_fix.lines().collect();
    assert_eq!(lines.len(), 2, "{to_fix}");
    assert!(lines[0].starts_with("what to fix,"), "{to_fix}");
    assert!(
        lines[1].contains("ten") && !lines[1].contains("--"),
        "{to_fix}"
    );
    let files = summary["files"].as_array().unwrap();
    let outcome = |name: &str| {
        files
            .iter()
            .find(|f| f["input"].as_str().unwrap().ends_with(name))
            .map(|f| {
                (
                    f["outcome"].clone(),
                    f["reason"].as_str().unwrap().to_owned(),
                )
            })
            .unwrap()
    };
    assert_eq!(outcome("good.csv").0, "done");
    let (bad, why) = outcome("bad.csv");
    assert_eq!(bad, "needs-attention");
    assert!(
        why.contains("1 invalid") && why.contains("bad.to-fix.csv"),
        "{why}"
    );
    assert_eq!(outcome("broken.xlsx").0, "failed");
    let good_summary = files
        .iter()
        .find(|f| f["input"].as_str().unwrap().ends_with("good.csv"))
        .unwrap();
    assert_eq!(good_summary["filed_in"], path_str(&desk.path("done")));
    assert_eq!(
        good_summary["report"],
        path_str(&desk.path("done/good.report.csv"))
    );
    assert_eq!(
        statuses(&report_rows(&desk.path("done/good.report.csv")))["ACCEPTED"],
        3
    );
    // The same sheet dropped again: its run's files take the run id; the
    // first run's stay as they were.
    let first_report = std::fs::read(desk.path("done/good.report.csv")).unwrap();
    std::fs::write(desk.path("in/good.csv"), &good).unwrap();
    let (code, summary) = run(&desk);
    assert_eq!(code, Some(exit::OK), "{summary}");
    let done = names("done");
    assert_eq!(done.len(), 6, "{done:?}");
    let tagged: Vec<&String> = done.iter().filter(|n| n.contains(".run-")).collect();
    assert_eq!(tagged.len(), 3, "{done:?}");
    assert!(
        tagged.iter().all(|n| n.starts_with("good.run-")),
        "{done:?}"
    );
    assert_eq!(
        std::fs::read(desk.path("done/good.report.csv")).unwrap(),
        first_report
    );
    assert_eq!(stored(&sb, "ACME").len(), 4, "sent once each");
}

#[test]
fn a_rerun_keeps_the_earlier_runs_report_and_run_facts() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 3, 1);
    let facts_of = |p: &str| -> Value {
        serde_json::from_slice(&std::fs::read(desk.path(p)).unwrap()).unwrap()
    };
    let first = desk.submit(&sheet, &sb.base, "ACME", &[]);
    assert_eq!(first.status.code(), Some(exit::OK));
    let run = facts_of("orders.report.csv.run.json")["api"]["ledger_run"]
        .as_i64()
        .unwrap();
    let first_report = std::fs::read(desk.path("orders.report.csv")).unwrap();
    let second = desk.submit(&sheet, &sb.base, "ACME", &[]);
    assert_eq!(second.status.code(), Some(exit::OK));
    // The plain names hold the latest run: nothing sent again.
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(statuses(&rows)["SKIPPED"], 3);
    assert_eq!(facts_of("orders.report.csv.run.json")["api"]["requests"], 0);
    // The first run's, which created the orders, are kept under its id.
    let kept = format!("orders.run-{run}.report.csv");
    assert_eq!(std::fs::read(desk.path(&kept)).unwrap(), first_report);
    let kept_facts = facts_of(&format!("{kept}.run.json"));
    assert_eq!(kept_facts["api"]["ledger_run"], run);
    assert!(kept_facts["api"]["requests"].as_u64().unwrap() > 0);
    assert_eq!(statuses(&report_rows(&desk.path(&kept)))["ACCEPTED"], 3);

    // The ledger lists both runs, each with the report it wrote, where
    // that report is now.
    let out = desk.run_at(&sb.base, &["runs", "--json"]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = listed["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{listed}");
    let sha = facts_of("orders.report.csv.run.json")["input"]["sha256"].clone();
    assert!(
        runs.iter()
            .all(|r| r["input_sha256"] == sha && r["command"] == "submit")
    );
    assert_eq!(runs[0]["id"], run);
    assert_eq!(runs[0]["report"], path_str(&desk.path(&kept)));
    assert_eq!(runs[0]["counts"]["sent"]["accepted"], 3);
    assert_eq!(runs[1]["report"], path_str(&desk.path("orders.report.csv")));
    assert_eq!(runs[1]["counts"]["sent"]["skipped"], 3);
    let out = desk.run_at(&sb.base, &["runs"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines().next().unwrap().contains("3 accepted"),
        "{text}"
    );

    // One order: the run that sent and accepted it, its row in that run's
    // report, its one request.
    let order = &report_rows(&desk.path(&kept))[1];
    let id = &order["order_id"];
    let show = |extra: &[&str]| {
        let args = [&["show", id.as_str()], extra].concat();
        desk.run_at(&sb.base, &args)
    };
    let out = show(&["--json"]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["item"]["accepted_run"], run);
    assert_eq!(shown["item"]["outcome"]["status"], "ACCEPTED");
    let requests = shown["item"]["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{shown}");
    assert_eq!(
        requests[0]["http_status"].to_string(),
        order["http_status"],
        "the report's status"
    );
    assert_eq!(
        requests[0]["request_id"].as_str(),
        Some(order["request_id"].as_str())
    );
    assert_eq!(shown["report"], path_str(&desk.path(&kept)));
    assert_eq!(
        shown["rows"],
        serde_json::json!([order["row"].parse::<u64>().unwrap()])
    );
    let text = String::from_utf8(show(&[]).stdout).unwrap();
    assert!(
        text.contains(&format!("HTTP {}", order["http_status"]))
            && text.contains(&format!("rows {} of", order["row"])),
        "{text}"
    );
    // An id the ledger never saw: exit 1, said.
    let out = desk.run_at(&sb.base, &["show", "DCB-nothing"]);
    assert_eq!(out.status.code(), Some(exit::ROWS_NOT_DONE));
    assert!(
        stderr(&out).contains("has no order DCB-nothing"),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[test]
fn an_interrupt_flushes_the_report_exits_130_and_the_rerun_resumes() {
    let sb = SandboxProcess::start(&["--latency", "20ms"]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 300, 1);
    let args = ["submit", sheet.to_str().unwrap(), "--concurrency", "2"];
    let child = desk
        .command_at(&sb.base, &args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(exit::INTERRUPTED),
        "{}",
        text(&out).1
    );
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(rows.len(), 300);
    let first = statuses(&rows);
    assert!(first.get("ACCEPTED").copied().unwrap_or(0) > 0, "{first:?}");
    assert!(first.get("FAILED").copied().unwrap_or(0) > 0, "{first:?}");

    // The same sheet twice at once: the second waits for the first, then
    // finds everything done.
    let hold = desk.command_at(&sb.base, &args).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let second_report = desk.path("second.report.csv");
    let second_args = [&args[..], &["--report", second_report.to_str().unwrap()]].concat();
    let second = desk.run_at(&sb.base, &second_args);
    assert_eq!(second.status.code(), Some(exit::OK), "{}", text(&second).1);
    assert!(
        text(&second).1.contains("waiting for it to end"),
        "{}",
        text(&second).1
    );
    let held = hold.wait_with_output().unwrap();
    assert_eq!(held.status.code(), Some(exit::OK));
    let rows = report_rows(&desk.path("orders.report.csv"));
    let done = statuses(&rows);
    assert_eq!(done.get("FAILED"), None, "{done:?}");
    assert_eq!(
        statuses(&report_rows(&second_report)).get("SKIPPED"),
        Some(&300)
    );
    assert_eq!(stored(&sb, "ACME").len(), 300);
    assert_eq!(duplicates(&sb, "ACME"), 0);
}

#[test]
fn the_readme_command_works_with_the_built_in_sandbox() {
    let desk = Desk::new();
    std::fs::copy(
        common::root().join("samples/orders.xlsx"),
        desk.path("orders.xlsx"),
    )
    .unwrap();
    let out = desk.run(&["submit", "orders.xlsx", "--sandbox"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(exit::OK), "{stderr}");
    assert!(stderr.contains("built-in sandbox"), "{stderr}");
    // A workbook in, a workbook report out.
    use calamine::{Reader, open_workbook_auto};
    let mut wb = open_workbook_auto(desk.path("orders.report.xlsx")).unwrap();
    let sheet = wb.worksheet_range("Report").unwrap();
    let mut rows = sheet.rows();
    let header: Vec<String> = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
    assert_eq!(header[1], "status");
    let statuses: Vec<String> = rows.map(|r| r[1].to_string()).collect();
    assert_eq!(statuses.len(), 10);
    assert!(statuses.iter().all(|s| s == "ACCEPTED"), "{statuses:?}");
}

#[test]
fn xlsx_and_jsonl_reports_carry_the_answers_too() {
    use calamine::{Reader, open_workbook_auto};
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 3, 2);
    let out = desk.run(&[
        "submit",
        sheet.to_str().unwrap(),
        "--sandbox",
        "--report-format",
        "xlsx",
    ]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", text(&out).1);
    let mut wb = open_workbook_auto(desk.path("orders.report.xlsx")).unwrap();
    let range = wb.worksheet_range("Report").unwrap();
    let rows: Vec<Vec<String>> = range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect();
    let col = |name: &str| rows[0].iter().position(|h| h == name).unwrap();
    assert_eq!(rows.len(), 7);
    for r in &rows[1..] {
        assert_eq!(r[col("status")], "ACCEPTED");
        assert_eq!(r[col("http_status")], "200");
        assert_eq!(r[col("attempts")], "1");
    }
    let summary = wb.worksheet_range("Summary").unwrap();
    let lines: Vec<String> = summary.rows().map(|r| r[0].to_string()).collect();
    assert!(lines.contains(&"orders accepted".to_string()), "{lines:?}");

    let jsonl = desk.path("orders.jsonl");
    let out = desk.run(&[
        "submit",
        sheet.to_str().unwrap(),
        "--sandbox",
        "--report",
        jsonl.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(exit::OK));
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    for l in &lines {
        assert_eq!(l["status"], "ACCEPTED");
        assert_eq!(l["http_status"], 200);
        assert!(l["submitted_at"].is_string());
    }
}

/// Regression: a message cut a non-ASCII batch id mid-character and
/// panicked. The id is kept whole in the run facts of every run.
#[test]
fn a_resumed_batch_with_a_non_ascii_id_is_fine() {
    let sb = SandboxProcess::start(&["--error-503", "1"]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 2, 1);
    let args = [
        "submit",
        sheet.to_str().unwrap(),
        "--batch-id",
        "ñøéü-paäckchen-λ",
        "--retries",
        "0",
        "--max-failures",
        "100",
        "--no-precheck",
    ];
    // Not one call answered: exit 4 (the API unavailable), rows FAILED.
    assert_eq!(
        desk.run_at(&sb.base, &args).status.code(),
        Some(exit::API_UNAVAILABLE)
    );
    let again = desk.run_at(&sb.base, &args);
    let (_, stderr) = text(&again);
    assert_eq!(again.status.code(), Some(exit::API_UNAVAILABLE), "{stderr}");
    let facts: Value =
        serde_json::from_slice(&std::fs::read(desk.path("orders.report.csv.run.json")).unwrap())
            .unwrap();
    assert_eq!(facts["batch_id"], "ñøéü-paäckchen-λ");
    assert_eq!(facts["api"]["ledger_run"], 2);
}

/// The ledger's failures keep their kind: a damaged ledger is this
/// machine's failure (exit 5, named, nothing sent), a journal folder that
/// is a file is a setting to fix (exit 2); neither is reported twice.
#[test]
fn a_damaged_ledger_is_a_local_failure_and_a_wrong_folder_a_usage_error() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 3, 1);
    let first = desk.submit(&sheet, &sb.base, "ACME", &[]);
    assert_eq!(first.status.code(), Some(exit::OK), "{}", stderr(&first));
    for entry in std::fs::read_dir(desk.path("journals")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sqlite") {
            std::fs::write(&path, vec![b'x'; 8192]).unwrap();
        } else if path.is_file() {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let requests = sb.inspect("/stats")["requests"].clone();
    let damaged = desk.submit(&sheet, &sb.base, "ACME", &[]);
    let err = stderr(&damaged);
    assert_eq!(damaged.status.code(), Some(exit::LOCAL_FAILURE), "{err}");
    assert!(
        err.contains("ledger") && err.contains("not a database"),
        "{err}"
    );
    assert_eq!(err.matches("not a database").count(), 1, "once: {err}");
    assert_eq!(sb.inspect("/stats")["requests"], requests, "nothing sent");

    let file = desk.write("not-a-folder", "x");
    let wrong = desk
        .command_at(&sb.base, &["submit", path_str(&sheet)])
        .env("DCMS_JOURNAL_DIR", &file)
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(exit::USAGE), "{}", stderr(&wrong));
}

#[test]
fn calls_in_flight_never_exceed_the_concurrency_lookups_included() {
    // Slow answers keep calls in flight; a sheet of several windows makes
    // the bulk lookups of one window overlap the creates of the one before.
    let sb = SandboxProcess::start(&["--latency", "15ms"]);
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 2_400, 1);
    let out = desk.run_at(
        &sb.base,
        &[
            "submit",
            sheet.to_str().unwrap(),
            "--concurrency",
            "6",
            "-q",
        ],
    );
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let stats = sb.inspect("/stats");
    let peak = stats["peakInFlight"].as_u64().unwrap();
    assert!((2..=6).contains(&peak), "at most 6 at once: {peak}");
    let lookups: u64 = stats["requests"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.contains("Inventory"))
        .flat_map(|(_, by)| by.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    // A lookup a hundred orders at least (and those that calibrate what
    // a lookup proves): every window was looked up.
    assert!(lookups >= 24, "{stats}");
    assert_eq!(stats["tenants"]["ACME"]["orders"], 2_400);
}
