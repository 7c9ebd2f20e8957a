//! The binary against the sandbox standing in for a bank's gateway, over
//! real HTTP on loopback: a login whose tokens expire, refused logins,
//! request ids a support desk can find, answers that are not the DCMS
//! envelope.

mod common;

use std::collections::BTreeMap;

use common::{Desk, SandboxProcess, report_rows, stderr};
use dcms_bulk::exit;
use serde_json::Value;

/// A sandbox that logs in `clerk` with the password in the desk's file.
fn gateway(desk: &Desk, extra: &[&str]) -> SandboxProcess {
    let password = desk.write("sandbox-password", "s3cret-pw\n");
    let login = format!("clerk:{}", password.display());
    let mut args = vec!["--login", login.as_str()];
    args.extend(extra);
    SandboxProcess::start(&args)
}

/// The user's own password file, private as it should be.
fn password_file(desk: &Desk, password: &str) -> String {
    let p = desk.write("password", password);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    p.display().to_string()
}

#[test]
fn tokens_that_expire_are_renewed_once_per_expiry_and_every_order_goes_once() {
    let desk = Desk::new();
    let sb = gateway(&desk, &["--token-ttl", "2s"]);
    let sheet = desk.sheet("orders.csv", 2_000, 1);
    let password = password_file(&desk, "s3cret-pw");
    let started = std::time::Instant::now();
    let out = desk.submit(
        &sheet,
        &sb.base,
        "ACME",
        &[
            "--username",
            "clerk",
            "--password-file",
            &password,
            "--rate",
            "400",
            "--no-precheck",
        ],
    );
    let elapsed = started.elapsed().as_secs_f64();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(exit::OK), "{err}");
    assert!(!err.contains("s3cret-pw"), "the password is never printed");
    assert!(
        !err.contains("warning"),
        "a private file gets no warning: {err}"
    );
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(rows.len(), 2_000);
    assert!(
        rows.iter().all(|r| r["status"] == "ACCEPTED"),
        "{:?}",
        rows[0]
    );

    // One login at the start, then one per expiry: never one per worker.
    let stats = sb.inspect("/stats");
    let logins = stats["logins"].as_u64().unwrap();
    assert!(
        elapsed > 4.0,
        "the run outlives two tokens ({elapsed:.1} s)"
    );
    assert!(
        logins >= 3,
        "tokens were renewed: {logins} logins in {elapsed:.1} s"
    );
    assert!(
        (logins as f64) <= elapsed / 1.5 + 2.0,
        "{logins} logins in {elapsed:.1} s: more than one per expiry"
    );
    // Renewed before expiry: no call was refused, nothing created twice.
    assert_eq!(
        stats["requests"]["/v1/card-order"].get("401"),
        None,
        "{stats}"
    );
    assert_eq!(stats["requests"]["/v1/card-order"]["200"], 2_000);
    assert_eq!(stats["tenants"]["ACME"]["orders"], 2_000);

    // Every row names the last call made for its order, as the sandbox
    // saw it; the run facts and ledger hold neither token nor password.
    let calls = sb.inspect("/calls");
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for c in calls.as_array().unwrap() {
        if let (Some(s), Some(id)) = (c["subject"].as_str(), c["requestId"].as_str()) {
            last.insert(s.to_owned(), id.to_owned());
        }
    }
    let mut ids = std::collections::BTreeSet::new();
    for r in &rows {
        assert_eq!(Some(&r["request_id"]), last.get(&r["order_id"]), "{r:?}");
        assert_eq!(r["request_id"].len(), 36, "a UUID");
        ids.insert(r["request_id"].clone());
    }
    assert_eq!(ids.len(), 2_000, "a fresh id per call");
    // The ledger keeps each attempt's request id and status.
    let ledger = std::fs::read_dir(desk.path("journals"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .unwrap();
    let db = rusqlite::Connection::open(&ledger).unwrap();
    let kept: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM attempts WHERE length(request_id) = 36 AND http_status = 200",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 2_000);
    drop(db);
    let facts = std::fs::read_to_string(desk.path("orders.report.csv.run.json")).unwrap();
    assert!(
        !facts.contains("s3cret-pw") && !facts.contains("eyJ"),
        "{facts}"
    );
    for entry in std::fs::read_dir(desk.path("journals")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("s3cret-pw") && !text.contains("eyJ"));
    }
}

#[test]
fn a_wrong_password_stops_with_the_gateways_message_and_rejects_nothing() {
    let desk = Desk::new();
    let sb = gateway(&desk, &[]);
    let sheet = desk.sheet("orders.csv", 20, 2);
    let password = desk.write("password", "wrong-pw");
    let out = desk.submit(
        &sheet,
        &sb.base,
        "ACME",
        &[
            "--username",
            "clerk",
            "--password-file",
            password.to_str().unwrap(),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(exit::API_UNAVAILABLE), "{err}");
    assert!(
        err.contains("Bad credentials"),
        "the gateway's own words: {err}"
    );
    assert!(err.contains("/api/authenticate"), "{err}");
    assert!(!err.contains("wrong-pw"));
    #[cfg(unix)]
    assert!(
        err.contains("can be read by other users"),
        "a password file others can read is warned about: {err}"
    );
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(rows.len(), 40);
    assert!(
        rows.iter().all(|r| r["status"] == "FAILED"),
        "{:?}",
        rows[0]
    );
    assert_eq!(
        sb.inspect("/stats")["tenants"]["ACME"],
        Value::Null,
        "nothing sent"
    );

    // The right password: the re-run sends everything, once.
    let password = password_file(&desk, "s3cret-pw");
    let again = desk
        .command_at(
            &sb.base,
            &["submit", sheet.to_str().unwrap(), "--username", "clerk"],
        )
        .env("DCMS_PASSWORD_FILE", &password)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(exit::OK), "{}", stderr(&again));
    assert_eq!(sb.inspect("/stats")["tenants"]["ACME"]["orders"], 20);
}

#[test]
fn a_call_refused_with_an_expired_token_is_sent_once_more_after_a_login() {
    // Tokens the client cannot read live 300 ms: it learns of each end
    // from a 401, logs in once for all workers, and sends the call again.
    let desk = Desk::new();
    let sb = gateway(
        &desk,
        &[
            "--token-ttl",
            "300ms",
            "--opaque-tokens",
            "--latency",
            "40ms",
        ],
    );
    let sheet = desk.sheet("orders.csv", 60, 1);
    let out = desk
        .command_at(
            &sb.base,
            &[
                "submit",
                sheet.to_str().unwrap(),
                "--username",
                "clerk",
                "--concurrency",
                "4",
                "--no-precheck",
            ],
        )
        .env("DCMS_PASSWORD", "s3cret-pw")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let stats = sb.inspect("/stats");
    let refused = stats["requests"]["/v1/card-order"]["401"]
        .as_u64()
        .unwrap_or(0);
    assert!(refused > 0, "tokens expired mid-run: {stats}");
    let logins = stats["logins"].as_u64().unwrap();
    assert!(
        logins <= refused + 1,
        "one login per expiry, not per worker: {stats}"
    );
    assert_eq!(stats["tenants"]["ACME"]["orders"], 60);
    assert_eq!(stats["tenants"]["ACME"]["duplicateCreates"], 0, "{stats}");
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert!(
        rows.iter()
            .all(|r| r["status"] == "ACCEPTED" && r["attempts"] == "1")
    );

    // A fixed token the gateway never issued: refused, exit 4, with the
    // problem document's title and detail.
    let out = desk
        .command(&[
            "submit",
            sheet.to_str().unwrap(),
            "--base-url",
            &sb.base,
            "--tenant",
            "OTHER",
        ])
        .env("DCMS_TOKEN", "not-a-token")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(exit::API_UNAVAILABLE), "{err}");
    assert!(err.contains("Unauthorized: Invalid"), "{err}");
}

#[test]
fn a_base_url_that_is_not_the_api_stops_quickly_and_nothing_is_rejected() {
    let desk = Desk::new();
    let sb = SandboxProcess::start(&[]);
    let sheet = desk.sheet("orders.csv", 300, 1);
    // The path of the bank's web server, not of the API.
    let wrong = sb.base.replace("/v1", "/dcms/api");
    let started = std::time::Instant::now();
    let out = desk.run_at(&wrong, &["submit", sheet.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(exit::API_UNAVAILABLE), "{err}");
    assert!(started.elapsed().as_secs() < 20, "quickly");
    assert!(err.contains("not as the DCMS API does"), "{err}");
    assert!(err.contains("404 Not Found"), "the page's title: {err}");
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert_eq!(rows.len(), 300);
    for r in &rows {
        assert_eq!(
            (r["status"].as_str(), r["error_code"].as_str()),
            ("FAILED", "NOT_SUBMITTED"),
            "{r:?}"
        );
    }
    let stats = sb.inspect("/stats");
    assert!(
        stats["requests"]["other"]["404"].as_u64().unwrap() < 30,
        "{stats}"
    );

    // Resumable: the right URL sends every order, once.
    let out = desk.submit(&sheet, &sb.base, "ACME", &[]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    assert_eq!(sb.inspect("/stats")["tenants"]["ACME"]["orders"], 300);
}

#[test]
fn exceptions_in_shape_b_and_retry_after_dates_are_read() {
    let desk = Desk::new();
    let sb = SandboxProcess::start(&[
        "--exception-shape",
        "b",
        "--rate-limit",
        "20",
        "--burst",
        "5",
        "--retry-after-date",
        "--business-errors",
        "0.2",
        "--seed",
        "3",
    ]);
    let sheet = desk.sheet("orders.csv", 40, 1);
    let out = desk.submit(
        &sheet,
        &sb.base,
        "ACME",
        &["--no-precheck", "--concurrency", "8"],
    );
    let rows = report_rows(&desk.path("orders.report.csv"));
    let rejected: Vec<_> = rows.iter().filter(|r| r["status"] == "REJECTED").collect();
    let accepted = rows.iter().filter(|r| r["status"] == "ACCEPTED").count();
    let stats = sb.inspect("/stats");
    assert!(
        stats["requests"]["/v1/card-order"]["429"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "the limit was met: {stats}"
    );
    // A 429 is no failure and uses up no try: none is left FAILED.
    assert_eq!(accepted + rejected.len(), 40, "{}", stderr(&out));
    assert!(!rejected.is_empty(), "{}", stderr(&out));
    for r in rejected {
        assert!(
            !r["error_code"].is_empty() && !r["error_code"].starts_with("HTTP_"),
            "{r:?}"
        );
        assert!(r["errors"].len() > 5, "the errorMessage is shown: {r:?}");
    }
}

/// `dcms-bulk doctor` with these arguments: exit code and what it printed.
fn doctor(desk: &Desk, args: &[&str], password: Option<&str>) -> (Option<i32>, String) {
    let mut cmd = desk.command(&[&["doctor"], args].concat());
    if let Some(p) = password {
        cmd.env("DCMS_PASSWORD", p);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn doctor_says_which_step_fails() {
    let desk = Desk::new();
    let sb = gateway(&desk, &[]);
    let api = [
        "--base-url",
        sb.base.as_str(),
        "--tenant",
        "ACME",
        "--username",
        "clerk",
    ];

    let (code, out) = doctor(&desk, &api, Some("s3cret-pw"));
    assert_eq!(code, Some(exit::OK), "{out}");
    for step in ["configuration", "dns", "tcp", "login", "api call"] {
        assert!(out.contains(&format!("ok    {step}")), "{step}: {out}");
    }
    assert!(
        out.contains("password: DCMS_PASSWORD"),
        "where it came from: {out}"
    );
    assert!(!out.contains("s3cret-pw"), "never the secret itself");
    assert!(out.contains("the token lives 1h"), "{out}");
    assert!(
        out.contains("in the DCMS envelope; tenant ACME accepted"),
        "{out}"
    );
    assert!(out.ends_with("all is well\n"), "{out}");

    let (code, out) = doctor(&desk, &api, Some("wrong"));
    assert_eq!(code, Some(exit::API_UNAVAILABLE), "{out}");
    assert!(
        out.contains("FAIL  login") && out.contains("Bad credentials"),
        "{out}"
    );
    // The same steps as one JSON object, for a monitoring script.
    let json_args = [&api[..], &["--json"]].concat();
    for (password, code, ready) in [
        ("s3cret-pw", exit::OK, true),
        ("wrong", exit::API_UNAVAILABLE, false),
    ] {
        let (got, out) = doctor(&desk, &json_args, Some(password));
        assert_eq!(got, Some(code), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
        assert_eq!(v["ready"], ready, "{v}");
        assert_eq!(v["exit_code"], code, "{v}");
        let login = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == "login")
            .unwrap();
        assert_eq!(login["verdict"], if ready { "ok" } else { "fail" }, "{v}");
        assert!(!out.contains("s3cret-pw"), "never the secret itself");
    }

    let wrong = sb.base.replace("/v1", "/dcms");
    let (code, out) = doctor(
        &desk,
        &[
            "--base-url",
            &wrong,
            "--tenant",
            "ACME",
            "--username",
            "clerk",
        ],
        Some("s3cret-pw"),
    );
    assert_eq!(code, Some(exit::API_UNAVAILABLE), "{out}");
    assert!(
        out.contains("FAIL  api call") && out.contains("not a DCMS answer"),
        "{out}"
    );

    let (code, out) = doctor(&desk, &["--base-url", &sb.base, "--tenant", "ACME"], None);
    assert_eq!(code, Some(exit::API_UNAVAILABLE), "{out}");
    assert!(
        out.contains("FAIL  tenant, token"),
        "no login, refused: {out}"
    );

    let (code, out) = doctor(&desk, &["--tenant", "ACME"], None);
    assert_eq!(code, Some(exit::API_UNAVAILABLE), "{out}");
    assert!(
        out.contains("FAIL  configuration") && out.contains("--base-url"),
        "{out}"
    );
}

#[test]
fn the_create_bodys_field_names_come_from_the_profile() {
    let desk = Desk::new();
    let sheet = desk.sheet("orders.csv", 3, 2);
    let config = desk.write(
        "config.toml",
        r#"
[profiles.uat]
tenant = "ACME"

[profiles.uat.create_fields]
plastic_code = "plasticType"
pin_generation = "generatePin"
pin_generation_format = "boolean"
"#,
    );
    let config = config.to_str().unwrap();
    // validate shows the bodies as they will be sent.
    let out = desk.run(&[
        "validate",
        sheet.to_str().unwrap(),
        "--print-orders",
        "--config",
        config,
        "--profile",
        "uat",
    ]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    let product = &first["products"][0];
    assert_eq!(product["plasticType"], "0001", "{product}");
    assert_eq!(product["generatePin"], true, "{product}");
    assert!(product.get("plasticCode").is_none() && product.get("pinGeneration").is_none());
    assert_eq!(
        product["cardType"], "PHYSICAL",
        "unnamed fields keep their names"
    );

    // A rehearsal: the sandbox reads the same table and accepts only it.
    let sb = SandboxProcess::start(&["--config", config, "--profile", "uat"]);
    let with = desk.run(&[
        "submit",
        sheet.to_str().unwrap(),
        "--base-url",
        &sb.base,
        "--config",
        config,
        "--profile",
        "uat",
    ]);
    assert_eq!(with.status.code(), Some(exit::OK), "{}", stderr(&with));
    assert_eq!(sb.inspect("/stats")["tenants"]["ACME"]["orders"], 3);
    let stored = sb.inspect("/tenants/ACME/orders");
    let body = &stored[0]["request"];
    let body: Value = match body {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        other => other.clone(),
    };
    assert_eq!(body["products"][0]["generatePin"], true, "{body}");

    // Today's default names are refused by that API, by name.
    let other = desk.sheet("other.csv", 1, 1);
    let text = std::fs::read_to_string(&other)
        .unwrap()
        .replace("00001", "00009");
    let other = desk.write("other.csv", &text);
    let without = desk.submit(&other, &sb.base, "ACME", &[]);
    assert_eq!(without.status.code(), Some(exit::ROWS_NOT_DONE));
    let rows = report_rows(&desk.path("other.report.csv"));
    assert_eq!(rows[0]["status"], "REJECTED");
    assert!(rows[0]["errors"].contains("plasticType"), "{:?}", rows[0]);
}

#[test]
fn status_wait_says_when_it_gives_up_and_which_statuses_are_final_is_configurable() {
    let desk = Desk::new();
    let sb = SandboxProcess::start(&[]);
    let sheet = desk.sheet("orders.csv", 4, 1);
    let out = desk.run_at(&sb.base, &["submit", sheet.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let report = desk.path("orders.report.csv");
    let wait = [
        "status",
        report.to_str().unwrap(),
        "--wait",
        "--wait-timeout",
        "1s",
        "--interval",
        "200ms",
        "--json",
    ];
    // Orders that never move: it gives up, and says how many are open.
    let started = std::time::Instant::now();
    let out = desk.run(&wait);
    let err = stderr(&out);
    // Its own code: not a failed order (1), not an outage (4).
    assert_eq!(out.status.code(), Some(exit::STILL_OPEN), "{err}");
    assert!(started.elapsed().as_secs() < 15);
    assert!(
        err.contains("gave up waiting after 1s: 4 of 4 orders still open (4 RECEIVED)"),
        "{err}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["timed_out"], true);
    assert_eq!(summary["still_open"]["RECEIVED"], 4);

    // RECEIVED taken as final: no waiting, nothing open.
    let out = desk.run(&[&wait[..], &["--final-statuses", "received,SUCCESS"]].concat());
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["timed_out"], false, "{}", stderr(&out));
    assert_eq!(
        summary["final_statuses"],
        serde_json::json!(["RECEIVED", "SUCCESS"])
    );
    assert!(!stderr(&out).contains("gave up"));
}

/// `doctor` compares the made-up id's answer with an order the ledger
/// knows exists: nothing to compare before the first order, a lookup that
/// tells them apart once there is one, and a lookup that answers both
/// alike said as such (not a failure).
#[test]
fn doctor_says_whether_the_lookup_can_tell_a_missing_order() {
    for (quirk, want) in [
        ("--unknown-as-null", "ok    lookup"),
        ("--lookup-always-null", "answered alike"),
    ] {
        let sb = SandboxProcess::start(&[quirk]);
        let desk = Desk::new();
        let api = ["--base-url", sb.base.as_str(), "--tenant", "ACME"];
        let (code, out) = doctor(&desk, &api, None);
        assert_eq!(code, Some(exit::OK), "{out}");
        assert!(out.contains("no order of ours is known yet"), "{out}");
        let sheet = desk.sheet("orders.csv", 2, 1);
        let sent = desk.submit(&sheet, &sb.base, "ACME", &[]);
        assert_eq!(sent.status.code(), Some(exit::OK), "{}", stderr(&sent));
        let (code, out) = doctor(&desk, &api, None);
        assert_eq!(code, Some(exit::OK), "{quirk}: {out}");
        assert!(out.contains(want), "{quirk}: {out}");
        assert!(out.contains("result absent"), "{quirk}: {out}");
    }
}
