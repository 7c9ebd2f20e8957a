//! The ledger on both engines: the same calls against an SQLite folder and
//! against a real PostgreSQL server (a throwaway cluster per test; the
//! PostgreSQL half says it is skipped where the server is not installed,
//! unless `DCMS_POSTGRES_TESTS=required`).

mod common;

use std::path::Path;
use std::process::{Child, Output};

use common::pg::{PASSWORD, Postgres};
use common::{Desk, SandboxProcess, report_rows, stderr};
use dcms_bulk::db::PgTarget;
use dcms_bulk::submit::ledger::{RowRecord, RunEnd, RunStart, Store, Who, check_chain_in, runs};
use dcms_bulk::submit::{Destination, Ledger, LedgerError, Record, SendStatus, Sent};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
}

fn server(pg: &Postgres) -> Store {
    Store::Server(PgTarget::parse(&pg.url, Some(PASSWORD.into())).expect("the URL"))
}

/// Runs `check` on an SQLite folder, then on PostgreSQL where there is one.
fn on_both(check: impl Fn(&Store)) {
    let dir = tempfile::tempdir().unwrap();
    check(&Store::Dir(dir.path().to_owned()));
    if let Some(pg) = Postgres::start_or_skip() {
        check(&server(&pg));
    }
}

fn start<'a>(options: &'a serde_json::Value) -> RunStart<'a> {
    RunStart {
        command: "submit",
        input: "a.csv",
        input_sha256: "ab",
        batch_id: "",
        options,
        started_at: "t0",
    }
}

fn planned(key: &str, fp: &str, run: i64) -> Record {
    Record::Planned {
        kind: "order",
        key: key.into(),
        fingerprint: fp.into(),
        summary: format!("{fp} lines"),
        run,
        at: "t1".into(),
    }
}

fn sent(key: &str, run: i64) -> Record {
    Record::Sent {
        kind: "order",
        key: key.into(),
        attempt: 1,
        run,
        at: "t2".into(),
    }
}

fn answered(key: &str, status: SendStatus, run: i64, at: &str) -> Record {
    Record::Answered {
        kind: "order",
        key: key.into(),
        sent: Sent {
            status,
            attempts: 1,
            ..Sent::default()
        },
        uncertain: false,
        run,
        at: at.into(),
    }
}

#[test]
fn states_survive_a_reopen_and_the_first_acceptance_is_kept() {
    on_both(|store| {
        let dest = Destination::new("ACME", "http://127.0.0.1:1/v1");
        let options = serde_json::json!({});
        {
            let ledger = Ledger::open_in(store, &dest, false, |_| {}).expect("opens");
            let run = ledger.begin_run(&start(&options)).expect("a run");
            // A second open waits or is refused while the first holds it.
            assert!(matches!(
                Ledger::open_in(store, &dest, false, |_| {}),
                Err(LedgerError::Locked { .. })
            ));
            let w = ledger.writer().expect("a writer");
            runtime().block_on(async {
                w.record(vec![planned("A", "f1", run), planned("B", "f2", run)])
                    .await
                    .expect("planned");
                w.record(vec![sent("A", run), sent("B", run)])
                    .await
                    .expect("sent");
                w.record(vec![answered("A", SendStatus::Accepted, run, "t3")])
                    .await
                    .expect("answered");
            });
        }
        let ledger = Ledger::open_in(store, &dest, false, |_| {}).expect("reopens");
        // The run that never ended is the one a new run of the sheet takes up.
        let cut = ledger
            .cut_off("submit", "ab", "")
            .unwrap()
            .expect("cut off");
        assert_eq!((cut.run, cut.done, cut.in_doubt), (1, 1, 1));
        let run2 = ledger.begin_run(&start(&options)).expect("a second run");
        let past = ledger.past("order", ["A", "B", "C"]).expect("past");
        assert_eq!(past.len(), 2, "C was never planned");
        let a = &past["A"];
        assert_eq!(a.fingerprint, "f1");
        assert_eq!(
            a.outcome.as_ref().map(|o| o.status),
            Some(SendStatus::Accepted)
        );
        assert!(!a.uncertain);
        assert_eq!(a.accepted_at.as_deref(), Some("t3"));
        assert_eq!(a.accepted_run.as_ref().map(|r| r.id), Some(1));
        // B went out and no answer came back: it may exist.
        assert!(past["B"].uncertain);
        assert_eq!(past["B"].attempts, 1);
        // A later acceptance does not move the first one.
        let w = ledger.writer().expect("a writer");
        runtime().block_on(async {
            w.record(vec![answered("A", SendStatus::Accepted, run2, "t9")])
                .await
                .expect("answered again");
        });
        drop(w);
        let past = ledger.past("order", ["A"]).expect("past");
        assert_eq!(past["A"].accepted_at.as_deref(), Some("t3"));
        assert_eq!(past["A"].accepted_run.as_ref().map(|r| r.id), Some(1));
        // The first run shows as cut off, taken up by the second.
        let all = runs(store, &dest).expect("runs");
        assert_eq!(all.len(), 2);
        assert!(all[0].cut_off && all[0].resumed_by == Some(run2));
    });
}

/// The past of a window's keys is read many keys a statement: every
/// known key of more than one statement's worth is found, no other.
/// A ledger a newer build moved to a later version of its tables is
/// refused by this one, and left as it is: the order states in it are
/// what the newer build wrote, and this one would misread them.
#[test]
fn a_ledger_a_newer_build_migrated_is_refused_and_left_alone() {
    on_both(|store| {
        let dest = Destination::new("ACME", "http://127.0.0.1:1/v1");
        drop(Ledger::open_in(store, &dest, false, |_| {}).expect("opens"));
        edit(
            store,
            &dest,
            "INSERT INTO schema_version (version, applied_at) VALUES (999, 'later')",
        );
        let refused = Ledger::open_in(store, &dest, false, |_| {})
            .err()
            .expect("refused");
        let said = refused.to_string();
        assert!(
            said.contains("newer dcms-bulk") && said.contains("version 999"),
            "{said}"
        );
        // Left as it was: the newer build's version is still recorded.
        let sql = "SELECT COUNT(*) FROM schema_version WHERE version = 999";
        let kept = match store {
            Store::Dir(_) => rusqlite::Connection::open(store.place_of(&dest))
                .unwrap()
                .query_row(sql, [], |r| r.get::<_, i64>(0))
                .unwrap(),
            Store::Server(target) => dcms_bulk::db::Db::connect(target, &dest.schema(), false)
                .unwrap()
                .query_one(sql, vec![])
                .unwrap()
                .get::<i64>(0)
                .unwrap(),
        };
        assert_eq!(kept, 1);
        edit(
            store,
            &dest,
            "DELETE FROM schema_version WHERE version = 999",
        );
        let known = Ledger::open_in(store, &dest, false, |_| {}).map(drop);
        assert!(known.is_ok(), "opens again once its versions are known");
    });
}

#[test]
fn the_past_of_many_keys_is_read_in_parts() {
    on_both(|store| {
        let dest = Destination::new("ACME", "http://127.0.0.1:1/v1");
        let options = serde_json::json!({});
        let ledger = Ledger::open_in(store, &dest, false, |_| {}).expect("opens");
        let run = ledger.begin_run(&start(&options)).expect("a run");
        let keys: Vec<String> = (0..1000).map(|i| format!("K{i:04}")).collect();
        let known: Vec<&String> = keys.iter().step_by(3).collect();
        let w = ledger.writer().expect("a writer");
        runtime().block_on(async {
            let planned = known
                .iter()
                .map(|k| planned(k, &format!("f-{k}"), run))
                .collect();
            w.record(planned).await.expect("planned");
        });
        drop(w);
        let past = ledger
            .past("order", keys.iter().map(String::as_str))
            .expect("past");
        assert_eq!(past.len(), known.len());
        for k in known {
            assert_eq!(past[k.as_str()].fingerprint, format!("f-{k}"));
        }
        assert!(ledger.past("order", []).expect("past of none").is_empty());
    });
}

#[test]
fn ended_runs_are_chained_and_a_change_around_the_tool_shows() {
    on_both(|store| {
        let dest = Destination::new("ACME", "http://127.0.0.1:1/v1");
        let options = serde_json::json!({});
        let mut ledger = Ledger::open_in(store, &dest, false, |_| {}).expect("opens");
        for n in 0..3 {
            let run = ledger.begin_run(&start(&options)).expect("a run");
            let rows = (1..=3).map(move |row| RowRecord {
                row,
                key: format!("K{n}{row}"),
                status: "ACCEPTED".into(),
                line: format!("P1x{row}"),
            });
            ledger
                .end_run(
                    run,
                    &serde_json::json!({"accepted": 3}),
                    Path::new("r.csv"),
                    None,
                    RunEnd {
                        report_sha256: "aa".into(),
                        line_columns: vec!["product".into()],
                        rows: Box::new(rows),
                    },
                )
                .expect("ends");
        }
        // A person's decision on an item in doubt is kept with who and why.
        let w = ledger.writer().expect("a writer");
        runtime().block_on(async {
            w.record(vec![planned("D", "f", 3), sent("D", 3)])
                .await
                .unwrap();
        });
        drop(w);
        let who = Who {
            user: "ana",
            host: "h1",
            at: "t5",
            reason: "seen in the portal",
        };
        let said = ledger.resolve("order", "D", true, &who).unwrap();
        assert!(said.unwrap().contains("decided sent"));
        let again = ledger.resolve("order", "D", true, &who).unwrap();
        assert!(again.unwrap_err().contains("nothing to decide"));
        drop(ledger);

        let place = store.place_of(&dest);
        let (chained, broken) = check_chain_in(store, &dest).expect("checks");
        assert_eq!((chained, broken.len()), (3, 0), "{broken:?} at {place:?}");
        edit(
            store,
            &dest,
            "UPDATE run_rows SET status = 'REJECTED' WHERE run = 2 AND row = 2",
        );
        let (_, broken) = check_chain_in(store, &dest).expect("checks");
        assert_eq!(broken, ["run 2's record was changed after it ended"]);
    });
}

/// Changes a ledger behind the tool's back, as someone with the
/// database's password could.
fn edit(store: &Store, dest: &Destination, sql: &str) {
    match store {
        Store::Dir(_) => {
            let c = rusqlite::Connection::open(store.place_of(dest)).unwrap();
            c.execute_batch(sql).unwrap();
        }
        Store::Server(target) => {
            let db = dcms_bulk::db::Db::connect(target, &dest.schema(), false).unwrap();
            db.batch(sql).unwrap();
        }
    }
}

#[test]
fn every_destination_has_its_own_ledger_in_one_database() {
    let Some(pg) = Postgres::start_or_skip() else {
        return;
    };
    let store = server(&pg);
    let options = serde_json::json!({});
    let a = Destination::new("ACME", "http://127.0.0.1:1/v1");
    let b = Destination::new("OTHER", "http://127.0.0.1:1/v1");
    for dest in [&a, &b, &a] {
        let ledger = Ledger::open_in(&store, dest, false, |_| {}).expect("opens");
        ledger.begin_run(&start(&options)).expect("a run");
    }
    assert_eq!(runs(&store, &a).unwrap().len(), 2);
    assert_eq!(runs(&store, &b).unwrap().len(), 1);
    // Both in the one database, each in its schema, at one version.
    let schemas = pg.psql(
        "SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname LIKE 'ledger-%'",
    );
    assert_eq!(schemas.split(',').count(), 2, "{schemas}");
    let version = pg.psql(&format!(
        "SELECT MAX(version) FROM \"{}\".schema_version",
        a.schema()
    ));
    assert_eq!(version, "2");
    // A destination never used has no ledger, and reading it makes none.
    let c = Destination::new("NONE", "http://127.0.0.1:1/v1");
    assert!(runs(&store, &c).unwrap().is_empty());
    let none = pg.psql(&format!(
        "SELECT COUNT(*) FROM pg_namespace WHERE nspname = '{}'",
        c.schema()
    ));
    assert_eq!(none, "0");
}

#[test]
fn a_wrong_password_or_a_server_that_is_down_is_said_plainly() {
    let Some(pg) = Postgres::start_or_skip() else {
        return;
    };
    let dest = Destination::new("ACME", "http://127.0.0.1:1/v1");
    let wrong = Store::Server(PgTarget::parse(&pg.url, Some("not-it".into())).unwrap());
    let e = Ledger::open_in(&wrong, &dest, false, |_| {})
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains("not-it"), "the password is never shown: {e}");
    pg.stop_now();
    let e = Ledger::open_in(&server(&pg), &dest, false, |_| {})
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("stopped answering"), "{e}");
    assert!(e.contains(&format!("127.0.0.1:{}", pg.port)), "{e}");
}

/// `dcms-bulk submit SHEET` from the host `desk`, its ledger the shared
/// database at `url`, without the API's pre-check (the ledger alone
/// keeps orders from going twice).
fn submit_shared(desk: &Desk, sb: &SandboxProcess, url: &str, password: Option<&str>) -> Output {
    let mut cmd = desk.command_at(
        &sb.base,
        &[
            "submit",
            "orders.csv",
            "--ledger",
            url,
            "--no-precheck",
            "--report-format",
            "csv",
        ],
    );
    if let Some(p) = password {
        cmd.env("DCMS_LEDGER_PASSWORD", p);
    }
    cmd.output().unwrap()
}

#[test]
fn two_hosts_on_one_postgresql_ledger_send_each_order_once() {
    let Some(pg) = Postgres::start_or_skip() else {
        return;
    };
    let sb = SandboxProcess::start(&["--accept-duplicates"]);
    // Two hosts: each its own folders and journal, one database.
    let (a, b) = (Desk::new(), Desk::new());
    a.sheet("orders.csv", 5, 2);
    b.sheet("orders.csv", 5, 2);

    let out = submit_shared(&a, &sb, &pg.url, Some(PASSWORD));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The run facts name the database and the destination's schema.
    let facts = std::fs::read_to_string(a.path("orders.report.csv.run.json")).unwrap();
    let facts: serde_json::Value = serde_json::from_str(&facts).unwrap();
    let ledger = facts["api"]["ledger"].as_str().unwrap();
    assert!(
        ledger.starts_with(&format!("{}#ledger-", pg.url)),
        "{ledger}"
    );
    assert!(!facts.to_string().contains(PASSWORD));

    let out = submit_shared(&b, &sb, &pg.url, Some(PASSWORD));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&b.path("orders.report.csv"));
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| r["status"] == "SKIPPED"), "{rows:?}");
    let orders = sb.inspect("/tenants/ACME/orders");
    let creates: Vec<u64> = orders
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["creates"].as_u64().unwrap())
        .collect();
    assert_eq!(creates, [1; 5], "each order created once: {orders}");

    // Either host reads the one history.
    let out = b
        .command_at(&sb.base, &["runs", "--ledger", &pg.url, "--json"])
        .env("DCMS_LEDGER_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2, "{runs}");

    // doctor reads the shared ledger, or says why it cannot.
    let doctor = |password: Option<&str>| {
        let mut cmd = b.command_at(&sb.base, &["doctor", "--ledger", &pg.url, "--json"]);
        if let Some(p) = password {
            cmd.env("DCMS_LEDGER_PASSWORD", p);
        }
        let out = cmd.output().unwrap();
        let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let step = found["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == "ledger")
            .cloned()
            .unwrap_or_else(|| panic!("a ledger step: {found}"));
        (
            step["verdict"].as_str().unwrap().to_owned(),
            step["detail"].as_str().unwrap().to_owned(),
        )
    };
    let (verdict, detail) = doctor(Some(PASSWORD));
    assert_eq!(verdict, "ok", "{detail}");
    assert!(
        detail.contains("#ledger-") && detail.contains("2 runs"),
        "{detail}"
    );
    let (verdict, detail) = doctor(Some("not it"));
    assert_eq!(verdict, "fail", "{detail}");
    assert!(
        detail.contains("password authentication failed"),
        "{detail}"
    );
}

#[test]
fn a_ledger_database_that_cannot_be_used_stops_before_anything_is_sent() {
    let Some(pg) = Postgres::start_or_skip() else {
        return;
    };
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    desk.sheet("orders.csv", 2, 1);
    // A password in the URL is refused, and not repeated.
    let with_password = pg.url.replace("dcms@", "dcms:hunter22@");
    let out = submit_shared(&desk, &sb, &with_password, None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(
        log.contains("DCMS_LEDGER_PASSWORD") && !log.contains("hunter22"),
        "{log}"
    );
    // No password: the server refuses the login; exit 5, nothing sent.
    let out = submit_shared(&desk, &sb, &pg.url, None);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(log.contains(&format!("127.0.0.1:{}", pg.port)), "{log}");
    // The server down: exit 5, nothing sent.
    pg.stop_now();
    let out = submit_shared(&desk, &sb, &pg.url, Some(PASSWORD));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("stopped answering"),
        "{}",
        stderr(&out)
    );
    let orders = sb.inspect("/tenants/ACME/orders");
    assert_eq!(orders.as_array().map(Vec::len), Some(0), "{orders}");
}

/// Runs `dcms-bulk ARGS` on `desk` with the ledger database's password.
fn run_with_password(desk: &Desk, args: &[&str]) -> Output {
    desk.command(args)
        .env("DCMS_LEDGER_PASSWORD", PASSWORD)
        .output()
        .unwrap()
}

#[test]
fn an_sqlite_ledger_moves_into_postgresql_and_its_reports_still_verify() {
    let Some(pg) = Postgres::start_or_skip() else {
        return;
    };
    let sb = SandboxProcess::start(&["--accept-duplicates"]);
    let desk = Desk::new();
    desk.sheet("orders.csv", 4, 2);
    let out = desk.run_at(
        &sb.base,
        &["submit", "orders.csv", "--report-format", "csv"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::rename(desk.path("orders.report.csv"), desk.path("before.csv")).unwrap();
    std::fs::rename(
        desk.path("orders.report.csv.run.json"),
        desk.path("before.csv.run.json"),
    )
    .unwrap();

    // The SQLite ledgers are at the newest version already.
    let out = desk.run(&["ledger", "migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("tenant ACME") && said.contains("version 2 (up to date)"),
        "{said}"
    );

    let file = std::fs::read_dir(desk.path("journals"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "sqlite") && p.to_string_lossy().contains("ledger-")
        })
        .expect("the SQLite ledger");
    let file = file.to_str().unwrap();
    let out = run_with_password(&desk, &["ledger", "copy", "--from", file, "--to", &pg.url]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("1 runs, 4 items") && said.contains("1 ended runs chained"),
        "{said}"
    );
    // A second copy into the same ledger is refused.
    let out = run_with_password(&desk, &["ledger", "copy", "--from", file, "--to", &pg.url]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("only into an empty one"),
        "{}",
        stderr(&out)
    );

    // The report written before the move verifies against the database.
    let out = run_with_password(&desk, &["verify", "before.csv", "--ledger", &pg.url]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{said}{}", stderr(&out));
    for check in ["accepted in the ledger", "the run in the ledger"] {
        assert!(said.contains(&format!("ok   {check}")), "{check}: {said}");
    }
    // Changed behind the tool's back, the database's copy says so.
    pg.psql(&format!(
        "UPDATE \"{}\".run_rows SET status = 'REJECTED' WHERE row = 2",
        Destination::new("ACME", &sb.base).schema()
    ));
    let out = run_with_password(&desk, &["verify", "before.csv", "--ledger", &pg.url]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Sending the sheet again through the database sends nothing.
    let out = submit_shared(&desk, &sb, &pg.url, Some(PASSWORD));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert!(rows.iter().all(|r| r["status"] == "SKIPPED"), "{rows:?}");
    let out = run_with_password(&desk, &["ledger", "migrate", "--ledger", &pg.url]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("#ledger-") && said.contains("up to date"),
        "{said}"
    );
}

#[test]
fn the_database_stopped_mid_run_stops_the_run_and_the_rerun_doubles_nothing() {
    let Some(pg) = Postgres::start_or_skip() else {
        return;
    };
    let sb = SandboxProcess::start(&["--accept-duplicates", "--latency", "20ms"]);
    let desk = Desk::new();
    desk.sheet("orders.csv", 300, 1);
    let args = [
        "submit",
        "orders.csv",
        "--ledger",
        &pg.url,
        "--no-precheck",
        "--concurrency",
        "4",
        "--report-format",
        "csv",
    ];
    let child = desk
        .command_at(&sb.base, &args)
        .env("DCMS_LEDGER_PASSWORD", PASSWORD)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once some orders are out, the database goes away as in a crash.
    let began = std::time::Instant::now();
    while sb
        .inspect("/tenants/ACME/orders")
        .as_array()
        .map_or(0, Vec::len)
        < 20
    {
        assert!(began.elapsed().as_secs() < 60, "no orders sent");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    pg.stop_now();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(5), "{log}");
    assert!(log.contains("ledger"), "{log}");
    let sent_before = sb.inspect("/tenants/ACME/orders").as_array().unwrap().len();
    assert!(sent_before < 300, "stopped before the end: {sent_before}");

    pg.start_server();
    let out = desk
        .command_at(&sb.base, &args)
        .env("DCMS_LEDGER_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(rows.len(), 300);
    let orders = sb.inspect("/tenants/ACME/orders");
    let orders = orders.as_array().unwrap();
    assert_eq!(orders.len(), 300, "every order created");
    let doubled: Vec<&serde_json::Value> = orders
        .iter()
        .filter(|o| o["creates"].as_u64() != Some(1))
        .collect();
    assert!(doubled.is_empty(), "created twice: {doubled:?}");
}

/// `dcms-bulk watch` on the shared folders under `shared`, as host `id`,
/// its ledger the database at `url`; its log in `desk`.
fn shared_watch(desk: &Desk, sb: &SandboxProcess, shared: &Path, url: &str, id: &str) -> Child {
    let at = |name: &str| shared.join(name).display().to_string();
    let args = [
        "watch",
        &at("drop"),
        "--done-dir",
        &at("done"),
        "--failed-dir",
        &at("failed"),
        "--attention-dir",
        &at("attention"),
        "--ledger",
        url,
        "--host-id",
        id,
        "--lease",
        "3s",
        "--settle",
        "1s",
        "--poll",
        "500ms",
        "--concurrency",
        "1",
        "--no-precheck",
        "--report-format",
        "csv",
        "--log-format",
        "json",
    ];
    desk.command_at(&sb.base, &args)
        .env("DCMS_LEDGER_PASSWORD", PASSWORD)
        .stdout(std::fs::File::create(desk.path("watch.out")).unwrap())
        .stderr(std::fs::File::create(desk.path("watch.log")).unwrap())
        .spawn()
        .unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn two_watches_share_a_drop_folder_and_one_takes_over_when_the_other_is_killed() {
    let Some(pg) = Postgres::start_or_skip() else {
        return;
    };
    let sb = SandboxProcess::start(&["--accept-duplicates", "--latency", "40ms"]);
    let shared = tempfile::tempdir().unwrap();
    for d in ["drop", "done", "failed", "attention"] {
        std::fs::create_dir(shared.path().join(d)).unwrap();
    }
    let (desk_a, desk_b) = (Desk::new(), Desk::new());
    let mut a = shared_watch(&desk_a, &sb, shared.path(), &pg.url, "host-a");
    let mut b = shared_watch(&desk_b, &sb, shared.path(), &pg.url, "host-b");
    // 30 sheets of 10 orders (2 rows each), every branch its own.
    for f in 0..30u32 {
        let mut text = format!("{}\n", common::HEADER);
        for o in 0..10 {
            for p in ["P1", "P2"] {
                text.push_str(&common::row(
                    &format!("{:05}", 10_000 + f * 10 + o),
                    p,
                    "10",
                ));
                text.push('\n');
            }
        }
        std::fs::write(shared.path().join(format!("drop/night-{f:02}.csv")), text).unwrap();
    }
    // Host A is killed in the middle of a file: a run of its begun, not
    // ended, after it filed a few.
    let schema = Destination::new("ACME", &sb.base).schema();
    let open_runs_of_a = format!(
        "SELECT COUNT(*) FROM \"{schema}\".runs WHERE host = 'host-a' AND finished_at IS NULL"
    );
    let began = std::time::Instant::now();
    loop {
        assert!(began.elapsed().as_secs() < 120, "host A never sent");
        let filed = entries(&shared.path().join("done")).len();
        if filed >= 6 && pg.psql(&open_runs_of_a) == "1" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    a.kill().unwrap();
    a.wait().unwrap();

    // Host B files everything, taking over A's file once its lease ran out.
    let began = std::time::Instant::now();
    while !entries(&shared.path().join("drop")).is_empty() {
        assert!(
            began.elapsed().as_secs() < 180,
            "left in the drop folder: {:?}\n{}",
            entries(&shared.path().join("drop")),
            std::fs::read_to_string(desk_b.path("watch.log")).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &b.id().to_string()])
        .status();
    b.wait().unwrap();

    // Every file filed once, in done, with a report of all its rows.
    let done = entries(&shared.path().join("done"));
    for f in 0..30 {
        let name = format!("night-{f:02}.csv");
        assert_eq!(
            done.iter().filter(|n| **n == name).count(),
            1,
            "{name}: {done:?}"
        );
        let rows = report_rows(&shared.path().join(format!("done/night-{f:02}.report.csv")));
        assert_eq!(rows.len(), 20, "{name}");
        assert!(
            rows.iter()
                .all(|r| ["ACCEPTED", "SKIPPED"].contains(&r["status"].as_str())),
            "{name}: {rows:?}"
        );
    }
    assert!(entries(&shared.path().join("failed")).is_empty());
    // Every order created once.
    let orders = sb.inspect("/tenants/ACME/orders");
    let orders = orders.as_array().unwrap();
    assert_eq!(orders.len(), 300);
    let doubled: Vec<_> = orders
        .iter()
        .filter(|o| o["creates"].as_u64() != Some(1))
        .collect();
    assert!(doubled.is_empty(), "created twice: {doubled:?}");
    // B said it took the file over; the runs say which host did what.
    let log_b = std::fs::read_to_string(desk_b.path("watch.log")).unwrap();
    assert!(log_b.contains("\"taken_over\""), "{log_b}");
    let out = run_with_password(
        &desk_b,
        &[
            "runs",
            "--base-url",
            &sb.base,
            "--tenant",
            "ACME",
            "--ledger",
            &pg.url,
            "--json",
        ],
    );
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = runs["runs"].as_array().unwrap().clone();
    let cut = runs
        .iter()
        .find(|r| r["host"] == "host-a" && r["cut_off"] == true)
        .unwrap_or_else(|| panic!("a cut-off run of host A: {runs:?}"));
    let by = cut["resumed_by"].as_i64().expect("resumed");
    assert!(
        runs.iter().any(|r| r["id"] == by && r["host"] == "host-b"),
        "{runs:?}"
    );
    for host in ["host-a", "host-b"] {
        assert!(
            runs.iter()
                .any(|r| r["host"] == host && r["finished_at"].is_string())
        );
    }
}

#[test]
fn users_four_eyes_and_the_audit_trail_hold_in_the_shared_database() {
    use dcms_bulk::access::{Access, Actor, Ask, Decision, Role};
    let Some(pg) = Postgres::start_or_skip() else {
        return;
    };
    // Users added from one host's command line...
    let desk = Desk::new();
    pg.add_user(&desk, "asha", "maker");
    // ...are there for every other host.
    let access = Access::open_in(&server(&pg)).unwrap();
    assert!(access.sign_in("asha", "a long password").unwrap().is_some());
    assert!(
        access
            .sign_in("asha", "not the password")
            .unwrap()
            .is_none()
    );
    let who = |name: &str| Actor {
        name: name.into(),
        origin: "test".into(),
    };
    access
        .add_user("ravi", "another long one", &[Role::Checker], &who("admin"))
        .unwrap();
    let ask = Ask {
        subject: "s1".into(),
        destination: "ACME at http://dcms.test/v1".into(),
        sheet: "orders.csv".into(),
        sheet_sha256: "a".repeat(64),
        orders_fp: "b".repeat(64),
        orders: 4,
        rows: 10,
        summary: "10 rows".into(),
        editors: vec!["bea".into()],
    };
    let id = access.ask(&ask, &who("asha")).unwrap();
    let day = std::time::Duration::from_secs(86_400);
    for maker in ["asha", "bea"] {
        let refused = access.decide(id, &Decision::Approve, &who(maker), day);
        let said = format!("{refused:?}");
        assert!(said.contains("four eyes"), "{maker}: {said}");
    }
    // Around the library, the database itself refuses.
    let db = dcms_bulk::db::Db::connect(
        &PgTarget::parse(&pg.url, Some(PASSWORD.into())).unwrap(),
        "access",
        false,
    )
    .unwrap();
    let direct = db.execute(
        "UPDATE approvals SET state = 'approved', checker = 'bea' WHERE id = ?1",
        dcms_bulk::params![id],
    );
    assert!(format!("{direct:?}").contains("four eyes"), "{direct:?}");
    let approved = access
        .decide(id, &Decision::Approve, &who("ravi"), day)
        .unwrap();
    assert!(approved.in_force());
    // The trail is append-only and chained.
    for sql in [
        "UPDATE audit SET who = 'x' WHERE seq = 2",
        "DELETE FROM audit WHERE seq = 2",
    ] {
        let e = db.execute(sql, dcms_bulk::params![]);
        assert!(format!("{e:?}").contains("append-only"), "{e:?}");
    }
    assert!(access.check_trail().unwrap().is_empty());
    let out = run_with_password(&desk, &["users", "list", "--ledger", &pg.url]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("asha") && said.contains("ravi"), "{said}");
}

#[test]
fn tls_to_the_database_checks_its_certificate() {
    let Some(pg) = Postgres::start_or_skip() else {
        return;
    };
    let pki = common::pki(&["127.0.0.1"]);
    pg.enable_tls(&pki.cert_pem, &pki.key_pem);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("db-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let dest = Destination::new("ACME", "http://127.0.0.1:1/v1");
    let with = |query: &str| {
        let url = format!("{}?{query}", pg.url);
        Store::Server(PgTarget::parse(&url, Some(PASSWORD.into())).unwrap())
    };
    // The bank's CA: the connection is TLS, and the server says so.
    let store = with(&format!("sslmode=require&sslrootcert={}", ca.display()));
    let ledger = Ledger::open_in(&store, &dest, false, |_| {}).expect("over TLS");
    drop(ledger);
    let db = dcms_bulk::db::Db::connect(
        &PgTarget::parse(
            &format!("{}?sslmode=require&sslrootcert={}", pg.url, ca.display()),
            Some(PASSWORD.into()),
        )
        .unwrap(),
        "public",
        false,
    )
    .unwrap();
    let on: bool = db
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            dcms_bulk::params![],
        )
        .and_then(|r| r.get(0))
        .unwrap();
    assert!(on, "the connection is TLS");
    // The system's roots do not know the server's CA: refused.
    let e = Ledger::open_in(&with("sslmode=require"), &dest, false, |_| {})
        .err()
        .expect("an unknown CA is refused")
        .to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
}
