//! `dcms-bulk watch`: the real binary watching a drop folder, against the
//! sandbox over loopback, through a scripted night.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use dcms_bulk::exit;
use serde_json::Value;

/// Rows of `orders` orders of two products each, for branches `first`,
/// `first + 1`, ...
fn rows_text(first: u32, orders: u32) -> String {
    let mut text = String::new();
    for o in 0..orders {
        for p in ["P1", "P2"] {
            text.push_str(&row(&format!("{:05}", first + o), p, "10"));
            text.push('\n');
        }
    }
    text
}

fn sheet_text(first: u32, orders: u32) -> String {
    format!("{HEADER}\n{}", rows_text(first, orders))
}

/// `dcms-bulk watch` running in `desk` on `drop`, its stdout and stderr
/// going to files there.
struct Watch {
    child: Child,
}

impl Watch {
    /// `watch drop` with done and failed folders, and `extra`.
    fn start(desk: &Desk, base: &str, extra: &[&str]) -> Watch {
        let folders = ["--done-dir", "done", "--failed-dir", "failed"];
        Watch::run(desk, base, &[&folders[..], extra].concat())
    }

    /// `watch drop` with `extra` only.
    fn run(desk: &Desk, base: &str, extra: &[&str]) -> Watch {
        let args = [&["watch", "drop"], extra].concat();
        let child = desk
            .command_at(base, &args)
            .stdout(std::fs::File::create(desk.path("watch.out")).unwrap())
            .stderr(std::fs::File::create(desk.path("watch.log")).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("start the watch");
        Watch { child }
    }

    /// SIGTERM, and the exit code.
    fn terminate(mut self) -> i32 {
        let pid = self.child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the watch did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The names of the files in a folder.
fn names(dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Waits until `done` holds, at most `within`; whether it did.
fn wait_for(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    true
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Writes `text` into `path` in four pieces, `gap` apart, as a slow copy
/// over a network share does.
fn copy_slowly(path: PathBuf, text: String, gap: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut file = std::fs::File::create(&path).unwrap();
        let bytes = text.as_bytes();
        let piece = bytes.len().div_ceil(4);
        for chunk in bytes.chunks(piece) {
            file.write_all(chunk).unwrap();
            file.flush().unwrap();
            std::thread::sleep(gap);
        }
    })
}

/// The night: 20 sheets dropped over about a minute while the watch runs.
/// Two are copied slowly in pieces, one is broken, one is an earlier sheet
/// again with CRLF line ends, one has an order the API refuses, and the
/// API refuses connections for 10 seconds in the middle.
#[cfg(unix)]
#[test]
fn a_scripted_night_in_a_watched_folder() {
    let began = Instant::now();
    let sb = SandboxProcess::start(&["--unknown-branches", "90001", "--latency", "5ms"]);
    let desk = Desk::new();
    std::fs::create_dir(desk.path("drop")).unwrap();
    let watch = Watch::start(
        &desk,
        &sb.base,
        &[
            "--settle",
            "2s",
            "--poll",
            "1s",
            "--heartbeat",
            "5s",
            "--log-format",
            "json",
        ],
    );
    let drop_dir = desk.path("drop");
    let put = |name: &str, text: &str| std::fs::write(drop_dir.join(name), text).unwrap();

    // (name, its text) of each sheet that should end in done, with its
    // orders (branch ids); 3 orders a sheet.
    let mut expected_branches: BTreeSet<String> = BTreeSet::new();
    let mut slow = Vec::new();
    let mut copies = Vec::new();
    let mut sheets_sent = 0;
    for i in 0..20u32 {
        let first = 10_000 + i * 10;
        let name = format!("night-{i:02}.csv");
        let text = sheet_text(first, 3);
        match i {
            // Copied slowly: a piece every 600 ms, under the 2 s settle.
            4 | 11 => {
                slow.push((name.clone(), sha256(text.as_bytes())));
                copies.push(copy_slowly(
                    drop_dir.join(&name),
                    text,
                    Duration::from_millis(600),
                ));
            }
            // Broken: a workbook that is not one.
            7 => put("night-07.xlsx", "PK\u{3}\u{4} not really a workbook"),
            // Sheet 2 again, re-saved with CRLF line ends: nothing new.
            9 => put(
                "night-02-again.csv",
                &sheet_text(10_020, 3).replace('\n', "\r\n"),
            ),
            // One order for a branch the API does not know.
            14 => put(&name, &(sheet_text(first, 2) + &rows_text(90_001, 1))),
            // One row the branch must fix.
            16 => put(
                &name,
                &format!("{text}{}\n", row(&format!("{:05}", first + 5), "P1", "ten")),
            ),
            _ => put(&name, &text),
        }
        if ![7, 9].contains(&i) {
            let orders = if i == 14 { 2 } else { 3 };
            for o in 0..orders {
                expected_branches.insert(format!("{:05}", first + o));
            }
            sheets_sent += 1;
        }
        // The API goes away for 10 s a third of the way in.
        if i == 7 {
            let r = sb
                .http
                .post(format!("{}/outage", sb.inspect_url()))
                .body(r#"{"seconds": 10}"#)
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 202);
        }
        std::thread::sleep(Duration::from_millis(2_800));
        // Retries leave no reports or records of their own in the drop
        // folder: they wait with the run history.
        let tagged: Vec<String> = names(&drop_dir)
            .into_iter()
            .filter(|n| n.contains(".run-") || n.contains(".at-"))
            .collect();
        assert!(tagged.is_empty(), "{tagged:?}");
    }
    for c in copies {
        c.join().unwrap();
    }

    // Every file ends in done, needs attention or failed, with its
    // report; the drop folder is left empty (earlier tries' reports went
    // with the run history, then with their file).
    let (done_dir, failed_dir) = (desk.path("done"), desk.path("failed"));
    let attention_dir = desk.path("needs-attention");
    let filed = wait_for(Duration::from_secs(150), || names(&drop_dir).is_empty());
    assert!(
        filed,
        "every file filed; left: {:?}\n{}",
        names(&drop_dir),
        std::fs::read_to_string(desk.path("watch.log")).unwrap()
    );
    let dropped_for = began.elapsed();
    let code = watch.terminate();
    assert_eq!(code, exit::OK, "a stop between files exits 0");

    let done = names(&done_dir);
    let failed = names(&failed_dir);
    for i in (0..20).filter(|i| ![7, 14, 16].contains(i)) {
        let name = if i == 9 {
            "night-02-again.csv".to_string()
        } else {
            format!("night-{i:02}.csv")
        };
        let stem = name.trim_end_matches(".csv");
        for f in [
            name.clone(),
            format!("{stem}.report.csv"),
            format!("{stem}.report.csv.run.json"),
        ] {
            assert!(done.contains(&f), "{f} in done: {done:?}");
        }
        let rows = report_rows(&done_dir.join(format!("{stem}.report.csv")));
        let want = if i == 9 { "SKIPPED" } else { "ACCEPTED" };
        assert!(rows.iter().all(|r| r["status"] == want), "{name}: {rows:?}");
        assert_eq!(rows.len(), 6, "{name}");
    }
    // Earlier tries' reports (the outage's) came along, under their run.
    assert!(done.len() > 17 * 3, "{done:?}");
    assert!(done.iter().any(|n| n.contains(".run-")), "{done:?}");
    // The broken file, with the record of why; the sheet the API refused
    // in part, with its report saying which row.
    assert!(failed.contains("night-07.xlsx"), "{failed:?}");
    // A record of each of its three tries, the last at the plain name (a
    // workbook's report would be .xlsx).
    let tries = failed
        .iter()
        .filter(|n| n.starts_with("night-07.") && n.ends_with(".report.xlsx.run.json"))
        .count();
    assert_eq!(tries, 3, "{failed:?}");
    let record = failed
        .iter()
        .find(|n| *n == "night-07.report.xlsx.run.json")
        .unwrap_or_else(|| panic!("the unreadable record in failed: {failed:?}"));
    let record: Value =
        serde_json::from_slice(&std::fs::read(failed_dir.join(record)).unwrap()).unwrap();
    assert_eq!(record["exit_code"], exit::INPUT_UNREADABLE, "{record}");
    assert!(
        !failed
            .iter()
            .any(|n| n.starts_with("night-14") || n.starts_with("night-16"))
    );
    let attention = names(&attention_dir);
    for f in [
        "night-14.csv",
        "night-14.report.csv",
        "night-16.csv",
        "night-16.report.csv",
        "night-16.to-fix.csv",
    ] {
        assert!(attention.contains(f), "{f} needs attention: {attention:?}");
    }
    let to_fix = std::fs::read_to_string(attention_dir.join("night-16.to-fix.csv")).unwrap();
    assert_eq!(to_fix.lines().count(), 2, "{to_fix}");
    assert!(to_fix.contains("ten"), "{to_fix}");
    let rows = report_rows(&attention_dir.join("night-14.report.csv"));
    let statuses: Vec<&str> = rows.iter().map(|r| r["status"].as_str()).collect();
    assert_eq!(
        statuses,
        [
            "ACCEPTED", "ACCEPTED", "ACCEPTED", "ACCEPTED", "REJECTED", "REJECTED"
        ]
    );

    // Every order exists at the sandbox exactly once, and with both its
    // products: nothing was sent from a half-copied file.
    let orders = sb.inspect("/tenants/ACME/orders");
    let orders = orders.as_array().unwrap();
    let mut by_branch: BTreeMap<String, usize> = BTreeMap::new();
    for o in orders {
        assert_eq!(o["products"].as_array().unwrap().len(), 2, "{o}");
        assert_eq!(o["creates"], 1, "{o}");
        *by_branch
            .entry(o["branchId"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        by_branch.keys().cloned().collect::<BTreeSet<_>>(),
        expected_branches
    );
    assert!(by_branch.values().all(|&n| n == 1), "{by_branch:?}");
    let stats = sb.inspect("/stats");
    assert_eq!(stats["tenants"]["ACME"]["duplicateCreates"], 0, "{stats}");

    // `runs` lists a run for every sheet read; the slow copies were only
    // ever read whole.
    let out = desk.run_at(&sb.base, &["runs", "--json"]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = listed["runs"].as_array().unwrap();
    let inputs: BTreeSet<String> = runs
        .iter()
        .map(|r| {
            r["input"]
                .as_str()
                .unwrap()
                .trim_start_matches("drop/")
                .to_owned()
        })
        .collect();
    for i in (0..20).filter(|&i| i != 7 && i != 9) {
        assert!(inputs.contains(&format!("night-{i:02}.csv")), "{inputs:?}");
    }
    assert!(inputs.contains("night-02-again.csv"));
    for (name, sha) in &slow {
        let of_it: Vec<&Value> = runs
            .iter()
            .filter(|r| r["input"].as_str().unwrap().ends_with(name.as_str()))
            .collect();
        assert!(!of_it.is_empty());
        assert!(
            of_it.iter().all(|r| r["input_sha256"] == sha.as_str()),
            "{name} read only when whole: {of_it:?}"
        );
    }
    // Each run's report is where `runs` says it is now.
    for r in runs {
        let report = r["report"].as_str().unwrap();
        assert!(desk.path(report).is_file(), "{report}: {r}");
    }

    // The log: JSON lines with time, level and event; a heartbeat; the
    // outage and the broken file tried again; every file's filing.
    let log = log_of(&desk);
    for line in &log {
        assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
        assert!(
            line["level"].is_string() && line["event"].is_string(),
            "{line}"
        );
    }
    let events = |name: &str| log.iter().filter(|l| l["event"] == name).count();
    assert!(events("heartbeat") >= 5, "a heartbeat every 5 s");
    let retried = |file: &str| {
        log.iter()
            .any(|l| l["event"] == "retry" && l["file"].as_str().unwrap() == file)
    };
    assert!(
        retried("drop/night-07.xlsx"),
        "the broken file is read again"
    );
    let in_outage: Vec<&Value> = log
        .iter()
        .filter(|l| l["event"] == "retry" && l["file"] != "drop/night-07.xlsx")
        .collect();
    assert!(
        !in_outage.is_empty(),
        "a sheet met the outage and was tried again"
    );
    assert!(
        in_outage
            .iter()
            .all(|l| l["code"] == exit::API_UNAVAILABLE || l["code"] == exit::ROWS_NOT_DONE),
        "{in_outage:?}"
    );
    assert_eq!(events("filed"), 20);
    // Levels that mean something: a file done is info, one with rows a
    // person must see a warning, one not processed an error; so is each
    // problem a warning.
    let filed_level = |file: &str| {
        log.iter()
            .find(|l| l["event"] == "filed" && l["file"] == file)
            .map(|l| (l["level"].clone(), l["outcome"].clone()))
            .unwrap_or_else(|| panic!("{file} filed"))
    };
    assert_eq!(
        filed_level("drop/night-00.csv"),
        ("info".into(), "done".into())
    );
    assert_eq!(
        filed_level("drop/night-14.csv"),
        ("warn".into(), "needs-attention".into())
    );
    assert_eq!(
        filed_level("drop/night-16.csv"),
        ("warn".into(), "needs-attention".into())
    );
    assert_eq!(
        filed_level("drop/night-07.xlsx"),
        ("error".into(), "failed".into())
    );
    let problems: Vec<&Value> = log.iter().filter(|l| l["event"] == "problem").collect();
    assert!(
        !problems.is_empty() && problems.iter().all(|l| l["level"] == "warn"),
        "{problems:?}"
    );
    let finished = |file: &str| {
        log.iter()
            .rev()
            .find(|l| l["event"] == "finished" && l["file"] == file)
            .map(|l| l["level"].as_str().unwrap().to_owned())
    };
    assert_eq!(finished("drop/night-00.csv").as_deref(), Some("info"));
    assert_eq!(finished("drop/night-16.csv").as_deref(), Some("warn"));
    assert!(
        log.iter()
            .filter(|l| l["event"] == "error")
            .all(|l| l["code"].is_i64()),
        "errors carry their exit code"
    );
    let last = log.last().unwrap();
    assert_eq!(last["event"], "stopped", "{last}");
    eprintln!(
        "night: 20 files, {} orders created, {sheets_sent} sheets sent, {} runs, all filed after {:.1} s",
        orders.len(),
        runs.len(),
        dropped_for.as_secs_f64()
    );
}

/// The watch's log, one JSON object a line.
fn log_of(desk: &Desk) -> Vec<Value> {
    std::fs::read_to_string(desk.path("watch.log"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// SIGTERM while a sheet is being sent: the calls in flight finish, the
/// report is written, the file stays for the next watch (exit 130), and
/// the next watch finishes it without sending anything twice.
#[cfg(unix)]
#[test]
fn a_stop_mid_file_finishes_the_calls_and_the_next_watch_resumes() {
    let sb = SandboxProcess::start(&["--latency", "100ms"]);
    let desk = Desk::new();
    std::fs::create_dir(desk.path("drop")).unwrap();
    std::fs::write(desk.path("drop/big.csv"), sheet_text(20_000, 60)).unwrap();
    let args = [
        "--settle",
        "0",
        "--concurrency",
        "2",
        "--log-format",
        "text",
    ];
    let watch = Watch::start(&desk, &sb.base, &args);
    let sent = wait_for(Duration::from_secs(30), || {
        sb.inspect("/tenants/ACME/orders").as_array().unwrap().len() >= 4
    });
    assert!(
        sent,
        "{}",
        std::fs::read_to_string(desk.path("watch.log")).unwrap()
    );
    assert_eq!(watch.terminate(), exit::INTERRUPTED);
    let log = std::fs::read_to_string(desk.path("watch.log")).unwrap();
    let log = untimed(&log);
    assert!(log.contains("watch stopped (interrupted)"), "{log}");
    // Not filed: the report says what was done and what was not.
    assert!(desk.path("drop/big.csv").exists());
    let rows = report_rows(&desk.path("drop/big.report.csv"));
    assert_eq!(rows.len(), 120);
    let accepted = rows.iter().filter(|r| r["status"] == "ACCEPTED").count();
    let created = sb.inspect("/tenants/ACME/orders").as_array().unwrap().len();
    assert!(accepted > 0 && accepted < 120, "{accepted}");
    assert!(created * 2 >= accepted, "every ACCEPTED row has its order");

    // The next watch resumes: the rest is sent, nothing twice.
    let watch = Watch::start(&desk, &sb.base, &args);
    let filed = wait_for(Duration::from_secs(60), || {
        desk.path("done/big.csv").exists()
    });
    assert!(
        filed,
        "{}",
        std::fs::read_to_string(desk.path("watch.log")).unwrap()
    );
    assert_eq!(watch.terminate(), exit::OK);
    let orders = sb.inspect("/tenants/ACME/orders");
    let orders = orders.as_array().unwrap();
    assert_eq!(orders.len(), 60);
    assert!(orders.iter().all(|o| o["creates"] == 1));
    let rows = report_rows(&desk.path("done/big.report.csv"));
    assert!(
        rows.iter()
            .all(|r| r["status"] == "ACCEPTED" || r["status"] == "SKIPPED"),
        "{rows:?}"
    );
    // The first watch's report came along under its run.
    assert!(
        names(&desk.path("done"))
            .iter()
            .any(|n| n.starts_with("big.report.csv") || n.starts_with("big.run-")),
    );
}

/// Runs of the ledger of the desk's sandbox, as `runs --json` lists them.
fn runs(desk: &Desk, base: &str) -> Vec<Value> {
    let out = desk.run_at(base, &["runs", "--json"]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    listed["runs"].as_array().unwrap().clone()
}

/// Where file-system events are not trusted, looking is enough; several
/// files are checked at once and still each order is sent once.
#[cfg(unix)]
#[test]
fn polling_alone_finds_the_files_and_parallel_checks_send_each_order_once() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    std::fs::create_dir_all(desk.path("drop/inner")).unwrap();
    // The same sheet twice under two names, and five others.
    for i in 0..6u32 {
        let first = if i == 5 { 30_000 } else { 30_000 + i * 10 };
        std::fs::write(desk.path(&format!("drop/p{i}.csv")), sheet_text(first, 3)).unwrap();
    }
    std::fs::write(desk.path("drop/inner/deep.csv"), sheet_text(39_000, 1)).unwrap();
    let watch = Watch::start(
        &desk,
        &sb.base,
        &[
            "--settle",
            "0",
            "--poll-only",
            "--poll",
            "300ms",
            "--parallel-files",
            "3",
        ],
    );
    let filed = wait_for(Duration::from_secs(60), || {
        (0..6).all(|i| desk.path(&format!("done/p{i}.csv")).exists())
    });
    assert!(
        filed,
        "{}",
        std::fs::read_to_string(desk.path("watch.log")).unwrap()
    );
    assert_eq!(watch.terminate(), exit::OK);
    let log = untimed(&std::fs::read_to_string(desk.path("watch.log")).unwrap());
    assert!(log.contains("(--poll-only)"), "{log}");
    assert!(
        log.contains("passed over drop/inner: not a regular file"),
        "{log}"
    );
    let orders = sb.inspect("/tenants/ACME/orders");
    let orders = orders.as_array().unwrap();
    assert_eq!(orders.len(), 15, "5 sheets of 3 orders; the copy adds none");
    assert!(orders.iter().all(|o| o["creates"] == 1));
    let skipped = report_rows(&desk.path("done/p5.report.csv"));
    let first = report_rows(&desk.path("done/p0.report.csv"));
    // Whichever of the two went first sent, the other skipped.
    let statuses = |rows: &[BTreeMap<String, String>]| -> BTreeSet<String> {
        rows.iter().map(|r| r["status"].clone()).collect()
    };
    let both = [statuses(&first), statuses(&skipped)];
    assert!(
        both.contains(&BTreeSet::from(["ACCEPTED".to_string()]))
            && both.contains(&BTreeSet::from(["SKIPPED".to_string()])),
        "{both:?}"
    );
    assert!(desk.path("drop/inner/deep.csv").exists());
}

/// Without done and failed folders a file stays, and is read again only
/// once it changes.
#[cfg(unix)]
#[test]
fn a_file_that_stays_is_read_again_only_when_it_changes() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    std::fs::create_dir(desk.path("drop")).unwrap();
    let sheet = desk.path("drop/branches.csv");
    std::fs::write(&sheet, sheet_text(40_000, 2)).unwrap();
    let watch = Watch::run(&desk, &sb.base, &["--settle", "500ms", "--poll", "300ms"]);
    let sent = wait_for(Duration::from_secs(30), || runs(&desk, &sb.base).len() == 1);
    assert!(
        sent,
        "{}",
        std::fs::read_to_string(desk.path("watch.log")).unwrap()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(runs(&desk, &sb.base).len(), 1, "not read again unchanged");
    // A branch adds an order to the sheet: read again, the new order sent.
    std::fs::write(&sheet, sheet_text(40_000, 2) + &rows_text(40_002, 1)).unwrap();
    let again = wait_for(Duration::from_secs(30), || runs(&desk, &sb.base).len() == 2);
    assert!(
        again,
        "{}",
        std::fs::read_to_string(desk.path("watch.log")).unwrap()
    );
    assert_eq!(watch.terminate(), exit::OK);
    assert!(sheet.exists());
    let rows = report_rows(&desk.path("drop/branches.report.csv"));
    let statuses: Vec<&str> = rows.iter().map(|r| r["status"].as_str()).collect();
    assert_eq!(
        statuses,
        [
            "SKIPPED", "SKIPPED", "SKIPPED", "SKIPPED", "ACCEPTED", "ACCEPTED"
        ]
    );
    assert_eq!(
        sb.inspect("/tenants/ACME/orders").as_array().unwrap().len(),
        3
    );
    // The first run's report is kept under its run.
    let first = runs(&desk, &sb.base)[0]["report"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(first.contains(".run-"), "{first}");
    assert!(desk.path(&first).is_file());
}
