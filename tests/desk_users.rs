//! The desk with users, over HTTP (the real binary): every role, and no
//! session, against every change the desk takes; four eyes (a maker asks,
//! the maker and anyone who changed the sheet cannot approve, a change
//! voids an approval, a rejection needs a reason, an approval sends once);
//! sessions (cookie flags, a new id at sign-in, sign-out, idle expiry, a
//! disabled user, throttled failures told in the same words) and a trusted
//! proxy's header believed from its address only.

mod common;

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Desk, root};
use reqwest::blocking::{Client, multipart};
use reqwest::redirect::Policy;

const PASSWORD: &str = "a long password 1";

/// Adds `name` with `roles` and the tests' password.
fn add_user(env: &Desk, name: &str, roles: &str) {
    env.add_user(name, roles, PASSWORD);
}

/// A desk with users, stopped when dropped.
struct Served {
    child: Child,
    _kept: tempfile::TempDir,
    url: String,
    http: Client,
}

/// Someone signed in: their cookie and their forms' token.
#[derive(Clone)]
struct Session {
    cookie: String,
    csrf: String,
}

impl Served {
    fn start(env: &Desk, extra: &[&str]) -> Served {
        let kept = tempfile::tempdir().unwrap();
        let (child, url) = common::serve(env, kept.path(), extra);
        let _ = rustls::crypto::ring::default_provider().install_default();
        Served {
            child,
            _kept: kept,
            url: url.trim_end_matches('/').to_owned(),
            http: Client::builder()
                .redirect(Policy::none())
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        who: Option<&Session>,
    ) -> reqwest::blocking::RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("Origin", &self.url);
        if let Some(s) = who {
            r = r.header("Cookie", &s.cookie);
        }
        r
    }

    fn get(&self, path: &str, who: Option<&Session>) -> (u16, String) {
        let r = self
            .request(reqwest::Method::GET, path, who)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    /// A form posted with `who`'s token (and `fields`).
    fn post(&self, path: &str, who: Option<&Session>, fields: &[(&str, &str)]) -> (u16, String) {
        let mut form = vec![("csrf", who.map_or("", |s| s.csrf.as_str()))];
        form.extend_from_slice(fields);
        let r = self
            .request(reqwest::Method::POST, path, who)
            .form(&form)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    /// Signs in; the answer's status and `Set-Cookie`.
    fn sign_in_as(&self, name: &str, password: &str, cookie: Option<&str>) -> (u16, String) {
        let mut r = self
            .request(reqwest::Method::POST, "/login", None)
            .form(&[("name", name), ("password", password)]);
        if let Some(c) = cookie {
            r = r.header("Cookie", c);
        }
        let r = r.send().unwrap();
        let set = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (r.status().as_u16(), set)
    }

    fn sign_in(&self, name: &str) -> Session {
        let (status, set) = self.sign_in_as(name, PASSWORD, None);
        assert_eq!(status, 303, "{name}");
        let cookie = set.split(';').next().unwrap().to_owned();
        let (status, page) = self.get(
            "/",
            Some(&Session {
                cookie: cookie.clone(),
                csrf: String::new(),
            }),
        );
        assert_eq!(status, 200);
        assert!(
            page.contains(&format!("Signed in as <strong>{name}</strong>")),
            "{page}"
        );
        Session {
            cookie,
            csrf: token_in(&page),
        }
    }

    fn upload(&self, who: &Session, name: &str, bytes: Vec<u8>) -> (u16, String) {
        let form = multipart::Form::new().text("csrf", who.csrf.clone()).part(
            "sheet",
            multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
        let r = self
            .request(reqwest::Method::POST, "/sheets", Some(who))
            .multipart(form)
            .send()
            .unwrap();
        let to = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (r.status().as_u16(), to)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token_in(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a token") + 19;
    page[at..at + 64].to_owned()
}

/// A config file whose profile `foureyes` requires approval.
fn four_eyes_config(env: &Desk) -> String {
    env.write(
        "config.toml",
        "[profiles.foureyes]\napproval = \"required\"\n",
    )
    .display()
    .to_string()
}

#[test]
fn every_role_and_no_session_against_every_change() {
    let env = Desk::new();
    for (name, roles) in [
        ("asha", "maker"),
        ("ravi", "checker"),
        ("aud", "auditor"),
        ("adm", "admin"),
    ] {
        add_user(&env, name, roles);
    }
    let config = four_eyes_config(&env);
    let desk = Served::start(
        &env,
        &["--sandbox", "--config", &config, "--profile", "foureyes"],
    );
    let sessions: Vec<(&str, Option<Session>)> = vec![
        ("maker", Some(desk.sign_in("asha"))),
        ("checker", Some(desk.sign_in("ravi"))),
        ("auditor", Some(desk.sign_in("aud"))),
        ("admin", Some(desk.sign_in("adm"))),
        ("no session", None),
    ];
    // Each change, and the roles it is open to.
    let changes: [(&str, &[&str]); 16] = [
        ("/sheets", &["maker"]),
        ("/sheets/1/cells", &["maker"]),
        ("/sheets/1/rows/2", &["maker"]),
        ("/sheets/1/replace", &["maker"]),
        ("/sheets/1/undo", &["maker"]),
        ("/sheets/1/close", &["maker"]),
        ("/sheets/1/send", &["maker"]),
        ("/sheets/1/ask", &["maker"]),
        ("/approvals/1/approve", &["checker"]),
        ("/approvals/1/reject", &["checker"]),
        ("/verify", &["maker", "checker", "auditor", "admin"]),
        ("/users", &["admin"]),
        ("/users/aud/roles", &["admin"]),
        ("/users/aud/disable", &["admin"]),
        ("/users/aud/enable", &["admin"]),
        ("/sheets/1/anything", &[]),
    ];
    for (role, session) in &sessions {
        for (path, open_to) in changes {
            let (status, body) = desk.post(path, session.as_ref(), &[("reason", "x")]);
            match session {
                None => assert_eq!(status, 401, "{role} {path}: {body}"),
                Some(_) if open_to.contains(role) => {
                    assert!(
                        status != 401 && status != 403,
                        "{role} {path}: {status} {body}"
                    )
                }
                Some(_) => {
                    assert_eq!(status, 403, "{role} {path}: {body}");
                    assert!(body.contains("may not do this"), "{role} {path}: {body}");
                }
            }
        }
        // Every page is read by anyone signed in, and by no one else.
        for page in ["/", "/runs", "/approvals", "/audit", "/folders", "/verify"] {
            let (status, _) = desk.get(page, session.as_ref());
            let want = if session.is_some() { 200 } else { 303 };
            assert_eq!(status, want, "{role} GET {page}");
        }
    }
    // A maker's token does not pass with another session's cookie.
    let asha = sessions[0].1.clone().unwrap();
    let ravi = sessions[1].1.clone().unwrap();
    let crossed = Session {
        cookie: ravi.cookie.clone(),
        csrf: asha.csrf.clone(),
    };
    let (status, body) = desk.post("/approvals/1/reject", Some(&crossed), &[("reason", "x")]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("token"), "{body}");
    // The refusals are on the record.
    let (_, trail) = desk.get("/audit", Some(&asha));
    assert!(
        trail.contains("refused") && trail.contains("not one of their roles"),
        "{trail}"
    );
}

#[test]
fn four_eyes_a_maker_asks_another_approves_and_the_orders_go_once() {
    let env = Desk::new();
    for (name, roles) in [
        ("asha", "maker"),
        ("ravi", "checker"),
        ("both", "maker,checker"),
    ] {
        add_user(&env, name, roles);
    }
    let sb = common::SandboxProcess::start(&[]);
    let config = four_eyes_config(&env);
    let desk = Served::start(
        &env,
        &[
            "--base-url",
            &sb.base,
            "--tenant",
            "ACME",
            "--config",
            &config,
            "--profile",
            "foureyes",
        ],
    );
    let (asha, ravi, both) = (
        desk.sign_in("asha"),
        desk.sign_in("ravi"),
        desk.sign_in("both"),
    );
    let created = || {
        sb.inspect("/stats")["tenants"]["ACME"]["orders"]
            .as_u64()
            .unwrap_or(0)
    };
    let bytes = std::fs::read(root().join("samples/orders.csv")).unwrap();
    assert_eq!(
        desk.upload(&asha, "orders.csv", bytes.clone()),
        (303, "/sheets/1".into())
    );

    // No sending at once under this profile: ask.
    let (status, body) = desk.post("/sheets/1/send", Some(&asha), &[]);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("approval"), "{body}");
    assert_eq!(desk.post("/sheets/1/ask", Some(&asha), &[]).0, 303);
    let (_, page) = desk.get("/sheets/1", Some(&asha));
    assert!(page.contains("waiting for a checker"), "{page}");

    // A maker and checker in one cannot approve a sheet they changed: the
    // change voids the request, and a new one still names them.
    assert_eq!(
        desk.post(
            "/sheets/1/cells",
            Some(&both),
            &[("row", "2"), ("col", "5"), ("value", "120")]
        )
        .0,
        303
    );
    let (status, body) = desk.post("/approvals/1/approve", Some(&ravi), &[]);
    assert_eq!(status, 403, "void: {body}");
    assert!(body.contains("void"), "{body}");
    assert_eq!(desk.post("/sheets/1/ask", Some(&asha), &[]).0, 303);
    let (_, shown) = desk.get("/approvals/2", Some(&both));
    assert!(!shown.contains("id=\"approve-button\""), "{shown}");
    assert!(shown.contains("You made or changed this sheet"), "{shown}");
    let (status, body) = desk.post("/approvals/2/approve", Some(&both), &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("four eyes"), "{body}");
    // ...nor from the command line.
    let mut cli = env
        .command(&["approve", "2", "--user", "both", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(cli.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = cli.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(dcms_bulk::exit::USAGE), "{said}");
    assert!(said.contains("four eyes"), "{said}");

    // A rejection needs a reason, and the maker reads it.
    assert_eq!(
        desk.post("/approvals/2/reject", Some(&ravi), &[("reason", " ")])
            .0,
        422
    );
    assert_eq!(
        desk.post(
            "/approvals/2/reject",
            Some(&ravi),
            &[("reason", "branch 04567 is closed")]
        )
        .0,
        303
    );
    let (_, page) = desk.get("/sheets/1", Some(&asha));
    assert!(
        page.contains("Rejected by ravi: branch 04567 is closed"),
        "{page}"
    );
    assert_eq!(created(), 0, "nothing left before an approval");

    // Asked again, approved by another: sent once, by the desk.
    assert_eq!(desk.post("/sheets/1/ask", Some(&asha), &[]).0, 303);
    let (_, shown) = desk.get("/approvals/3", Some(&ravi));
    assert!(shown.contains("id=\"approve-button\""), "{shown}");
    assert!(
        shown.contains("<td>quantity</td><td>100</td><td>120</td>"),
        "the changes are shown: {shown}"
    );
    assert_eq!(desk.post("/approvals/3/approve", Some(&ravi), &[]).0, 303);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, page) = desk.get("/sheets/1", Some(&asha));
        if page.contains("Finished.") {
            assert!(page.contains("10 rows: 10 accepted"), "{page}");
            break;
        }
        assert!(Instant::now() < deadline, "{page}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(created(), 4);
    let (status, _) = desk.post("/approvals/3/approve", Some(&ravi), &[]);
    assert_eq!(status, 403, "an approval is used once");
    let (_, shown) = desk.get("/approvals/3", Some(&asha));
    assert!(shown.contains("id=\"approval-state\">sent"), "{shown}");

    // The run's facts say who approved it; the trail has every step, and
    // its chain holds.
    let facts: serde_json::Value =
        serde_json::from_str(&desk.get("/runs/1/facts", Some(&asha)).1).unwrap();
    assert_eq!(facts["options"]["approval"]["maker"], "asha");
    assert_eq!(facts["options"]["approval"]["checker"], "ravi");
    let out = env.run(&["audit", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let trail: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(trail["chain_holds"], true);
    let actions: Vec<&str> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in [
        "signed in",
        "sheet dropped",
        "approval asked",
        "cells changed",
        "approval voided",
        "decision refused",
        "rejected",
        "approved",
        "sent",
        "sending",
    ] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
}

#[test]
fn sessions_are_cookies_that_change_at_sign_in_and_end() {
    let env = Desk::new();
    add_user(&env, "asha", "maker");
    add_user(&env, "ravi", "checker");
    let desk = Served::start(&env, &["--session-idle", "2s"]);

    // The cookie's flags, and the same words for every failure.
    let (status, set) = desk.sign_in_as("asha", PASSWORD, None);
    assert_eq!(status, 303);
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    let first = set.split(';').next().unwrap().to_owned();
    let wrong = desk
        .request(reqwest::Method::POST, "/login", None)
        .form(&[("name", "asha"), ("password", "not her password")])
        .send()
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let wrong = wrong.text().unwrap();
    let unknown = desk
        .request(reqwest::Method::POST, "/login", None)
        .form(&[("name", "nobody"), ("password", "not her password")])
        .send()
        .unwrap()
        .text()
        .unwrap();
    let said = |page: &str| {
        let at = page.find("role=\"alert\">").unwrap();
        page[at..at + page[at..].find('<').unwrap()].to_owned()
    };
    assert_eq!(said(&wrong), said(&unknown));

    // A new id at sign-in: the one sent with it no longer works.
    let (_, set) = desk.sign_in_as("asha", PASSWORD, Some(&first));
    let second = set.split(';').next().unwrap().to_owned();
    assert_ne!(first, second);
    let old = Session {
        cookie: first,
        csrf: String::new(),
    };
    assert_eq!(desk.get("/", Some(&old)).0, 303);

    // Sign-out ends it.
    let asha = desk.sign_in("asha");
    let (status, _) = desk.post("/logout", Some(&asha), &[]);
    assert_eq!(status, 303);
    assert_eq!(desk.get("/", Some(&asha)).0, 303);

    // Idle too long: ended.
    let asha = desk.sign_in("asha");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(desk.get("/", Some(&asha)).0, 303);

    // Disabled: their sessions end at once.
    let ravi = desk.sign_in("ravi");
    assert_eq!(desk.get("/", Some(&ravi)).0, 200);
    assert!(
        env.run(&["users", "disable", "ravi", "-q"])
            .status
            .success()
    );
    assert_eq!(desk.get("/", Some(&ravi)).0, 303);
    assert_eq!(desk.sign_in_as("ravi", PASSWORD, None).0, 401);

    // Failures held back per name (one failed above): the right password
    // too, for a while.
    for _ in 0..4 {
        assert_eq!(desk.sign_in_as("asha", "guessing wrong", None).0, 401);
    }
    assert_eq!(desk.sign_in_as("asha", PASSWORD, None).0, 429);
}

#[test]
fn a_proxy_header_is_believed_from_the_trusted_proxy_only() {
    let env = Desk::new();
    add_user(&env, "ravi", "checker");
    let elsewhere = Served::start(
        &env,
        &[
            "--trusted-proxy",
            "10.9.9.9",
            "--user-header",
            "X-Remote-User",
        ],
    );
    let r = elsewhere
        .request(reqwest::Method::GET, "/", None)
        .header("X-Remote-User", "ravi")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "not from the proxy: ignored");
    drop(elsewhere);

    let proxied = Served::start(
        &env,
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--user-header",
            "X-Remote-User",
        ],
    );
    let page = proxied
        .request(reqwest::Method::GET, "/", None)
        .header("X-Remote-User", "ravi")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("Signed in as <strong>ravi</strong>"),
        "{page}"
    );
    let r = proxied
        .request(reqwest::Method::GET, "/", None)
        .header("X-Remote-User", "nobody")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "an unknown user is no one");
}

#[test]
fn users_are_managed_from_the_command_line_with_passwords_never_in_arguments() {
    let env = Desk::new();
    add_user(&env, "asha", "maker,checker");
    let out = env.run(&["users", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["users"][0]["name"], "asha");
    assert_eq!(
        listed["users"][0]["roles"],
        serde_json::json!(["maker", "checker"])
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(PASSWORD));
    assert!(
        env.run(&["users", "roles", "asha", "auditor", "-q"])
            .status
            .success()
    );
    assert!(String::from_utf8_lossy(&env.run(&["users", "list"]).stdout).contains("asha\tauditor"));
    // A role that does not exist, a short password, a password as an
    // argument: refused.
    let bad = env.run(&["users", "add", "bea", "--roles", "boss"]);
    assert_eq!(bad.status.code(), Some(dcms_bulk::exit::USAGE));
    let mut child = env
        .command(&[
            "users",
            "add",
            "bea",
            "--roles",
            "maker",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "short").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(dcms_bulk::exit::USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 10"));
    let out = env.run(&["users", "passwd", "asha", "--password", "x"]);
    assert_eq!(out.status.code(), Some(dcms_bulk::exit::USAGE));
    // Every change is on the trail, whose chain holds.
    let out = env.run(&["audit"]);
    assert_eq!(out.status.code(), Some(0));
    let trail = String::from_utf8_lossy(&out.stdout);
    assert!(
        trail.contains("user added") && trail.contains("roles set"),
        "{trail}"
    );
}

#[test]
fn submit_files_a_sheet_for_approval_and_sends_it_once_a_checker_approved() {
    let env = Desk::new();
    add_user(&env, "ravi", "checker");
    add_user(&env, "asha", "maker");
    let sb = common::SandboxProcess::start(&[]);
    let config = four_eyes_config(&env);
    let sheet = env.write(
        "orders.csv",
        &std::fs::read_to_string(root().join("samples/orders.csv")).unwrap(),
    );
    let sheet = sheet.display().to_string();
    let submit = || {
        env.run(&[
            "submit",
            &sheet,
            "--base-url",
            &sb.base,
            "--tenant",
            "ACME",
            "--config",
            &config,
            "--profile",
            "foureyes",
        ])
    };
    let created = || {
        sb.inspect("/stats")["tenants"]["ACME"]["orders"]
            .as_u64()
            .unwrap_or(0)
    };
    let decide = |args: &[&str], password: &str| {
        let mut all = args.to_vec();
        all.extend([
            "--password-stdin",
            "--config",
            &config,
            "--profile",
            "foureyes",
        ]);
        let mut child = env
            .command(&all)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let out = submit();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("filed for approval #1"), "{said}");
    assert_eq!(created(), 0);
    let out = submit();
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiting for approval #1"));

    // Only a checker, signed in, decides; a rejection needs a reason.
    assert_eq!(
        decide(&["approve", "1", "--user", "asha"], PASSWORD).0,
        Some(2)
    );
    assert_eq!(
        decide(&["approve", "1", "--user", "ravi"], "not his password").0,
        Some(2)
    );
    assert_eq!(
        decide(&["reject", "1", "--user", "ravi"], PASSWORD).0,
        Some(2)
    );
    let (code, said) = decide(&["approve", "1", "--user", "ravi"], PASSWORD);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(created(), 0, "approving sends nothing by itself");

    // The next run sends it, once; a run after that sends nothing again.
    let out = submit();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(created(), 4);
    let facts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(env.path("orders.report.csv.run.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(facts["options"]["approval"]["checker"], "ravi");
    let out = submit();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(created(), 4);

    // verify finds the approval, by another, and the trail's chain whole;
    // a record of the trail changed behind the database's back, it does
    // not.
    let report = env.path("orders.report.csv").display().to_string();
    let out = env.run(&["verify", &report]);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("approved by ravi"), "{said}");
    let db = rusqlite::Connection::open(env.path("journals/access.sqlite")).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET who = 'mallory' WHERE action = 'approved';",
    )
    .unwrap();
    drop(db);
    let out = env.run(&["verify", &report]);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("does not match its hash"), "{said}");
    assert_eq!(env.run(&["audit", "-q"]).status.code(), Some(1));

    // The file changed: a new request, not the old approval.
    let changed = std::fs::read_to_string(&sheet)
        .unwrap()
        .replace(",100,", ",120,");
    std::fs::write(&sheet, changed).unwrap();
    let out = submit();
    assert!(String::from_utf8_lossy(&out.stderr).contains("filed for approval #2"));
    assert_eq!(created(), 4);
}

/// A certificate for 127.0.0.1 signed by a CA made here: (CA, cert, key)
/// as PEM files in `env`.
fn pki(env: &Desk) -> (String, String, String) {
    let pki = common::pki(&["127.0.0.1", "desk.bank.test"]);
    let write = |name: &str, text: &str| env.write(name, text).display().to_string();
    (
        write("ca.pem", &pki.ca_pem),
        write("desk.pem", &pki.cert_pem),
        write("desk.key", &pki.key_pem),
    )
}

#[test]
fn beyond_this_machine_the_desk_needs_tls_and_users_and_its_cookie_is_secure() {
    let env = Desk::new();
    let (ca, cert, key) = pki(&env);
    let tls = ["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
    let refused = env.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(refused.status.code(), Some(dcms_bulk::exit::USAGE));
    let mut args = vec!["serve", "--listen", "0.0.0.0:0"];
    args.extend(tls);
    let refused = env.run(&args);
    assert_eq!(refused.status.code(), Some(dcms_bulk::exit::USAGE));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("needs TLS"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    add_user(&env, "asha", "maker");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kept = tempfile::tempdir().unwrap();
    let (child, url) = common::serve(&env, kept.path(), &tls);
    let mut served = Served {
        child,
        _kept: kept,
        url: url.trim_end_matches('/').to_owned(),
        http: Client::new(),
    };
    assert!(served.url.starts_with("https://"), "{}", served.url);
    let root = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
    served.http = Client::builder()
        .redirect(Policy::none())
        .tls_certs_only([root])
        .build()
        .unwrap();
    let (status, set) = served.sign_in_as("asha", PASSWORD, None);
    assert_eq!(status, 303);
    assert!(set.contains("Secure") && set.contains("HttpOnly"), "{set}");
    let r = served
        .request(reqwest::Method::GET, "/login", None)
        .send()
        .unwrap();
    assert!(r.headers().contains_key("strict-transport-security"));
    // A form from the plain-HTTP origin of the same host is not its own.
    let plain = served
        .http
        .post(format!("{}/login", served.url))
        .header("Origin", served.url.replace("https://", "http://"))
        .form(&[("name", "asha"), ("password", PASSWORD)])
        .send()
        .unwrap();
    assert_eq!(plain.status().as_u16(), 403);
    let asha = served.sign_in("asha");
    assert_eq!(served.get("/", Some(&asha)).0, 200);

    // With both, it listens beyond this machine.
    let mut wide = env
        .command(&[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "-q",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(wide.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = wide.kill();
    let _ = wide.wait();
    assert!(line.starts_with("https://0.0.0.0:"), "{line:?}");
}

#[test]
fn an_approval_expires_and_the_sheet_is_filed_again() {
    let env = Desk::new();
    add_user(&env, "ravi", "checker");
    let sb = common::SandboxProcess::start(&[]);
    let config = env
        .write(
            "config.toml",
            "[profiles.quick]\napproval = \"required\"\napproval_valid_for = \"1s\"\n",
        )
        .display()
        .to_string();
    let sheet = env.write(
        "orders.csv",
        &std::fs::read_to_string(root().join("samples/orders.csv")).unwrap(),
    );
    let sheet = sheet.display().to_string();
    let api = [
        "--base-url",
        &sb.base,
        "--tenant",
        "ACME",
        "--config",
        &config,
        "--profile",
        "quick",
    ];
    let submit = || {
        let mut args = vec!["submit", sheet.as_str()];
        args.extend(api);
        let out = env.run(&args);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(submit().contains("filed for approval #1"));
    let args = [
        "approve",
        "1",
        "--user",
        "ravi",
        "--password-stdin",
        "--config",
        &config,
        "--profile",
        "quick",
    ];
    let mut child = env.command(&args).stdin(Stdio::piped()).spawn().unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(child.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(1500));
    let said = submit();
    assert!(
        said.contains("approval #1 expired") && said.contains("filed for approval #2"),
        "{said}"
    );
    assert_eq!(
        sb.inspect("/stats")["tenants"]["ACME"]["orders"]
            .as_u64()
            .unwrap_or(0),
        0
    );
}

#[test]
fn an_admin_manages_users_on_the_desk_and_cannot_lock_themselves_out() {
    let env = Desk::new();
    add_user(&env, "adm", "admin");
    let desk = Served::start(&env, &[]);
    let adm = desk.sign_in("adm");
    // A user added with a first password and roles signs in with them.
    let (status, _) = desk.post(
        "/users",
        Some(&adm),
        &[
            ("name", "bea"),
            ("password", PASSWORD),
            ("role", "maker"),
            ("role", "auditor"),
        ],
    );
    assert_eq!(status, 303);
    let bea = desk.sign_in("bea");
    let (_, page) = desk.get("/users", Some(&bea));
    assert!(
        page.contains("<td>bea</td>") && page.contains("maker, auditor"),
        "{page}"
    );
    assert!(
        !page.contains("Add the user"),
        "no admin forms for bea: {page}"
    );
    // A short password, a user that exists: said on the page.
    let (status, page) = desk.post(
        "/users",
        Some(&adm),
        &[("name", "cy"), ("password", "short"), ("role", "maker")],
    );
    assert_eq!(status, 422);
    assert!(page.contains("at least 10"), "{page}");
    // Roles changed, then disabled: her session ends at once.
    assert_eq!(
        desk.post("/users/bea/roles", Some(&adm), &[("role", "checker")])
            .0,
        303
    );
    assert!(desk.get("/", Some(&bea)).1.contains("(checker)"));
    assert_eq!(desk.post("/users/bea/disable", Some(&adm), &[]).0, 303);
    assert_eq!(desk.get("/", Some(&bea)).0, 303);
    // Not themselves.
    assert_eq!(desk.post("/users/adm/disable", Some(&adm), &[]).0, 422);
    assert_eq!(
        desk.post("/users/adm/roles", Some(&adm), &[("role", "maker")])
            .0,
        422
    );
    let out = env.run(&["audit", "--json"]);
    let trail = String::from_utf8_lossy(&out.stdout);
    assert!(
        trail.contains("\"who\": \"adm\"") && trail.contains("user disabled"),
        "{trail}"
    );
}
