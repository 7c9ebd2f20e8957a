//! Two desks in front of one PostgreSQL database, as behind a load
//! balancer without sticky sessions: a clerk's session, the sheets, their
//! versions, approvals and runs are the same at either desk. (Skipped
//! where PostgreSQL is not installed, unless
//! `DCMS_POSTGRES_TESTS=required`.)

mod common;

use common::pg::Postgres;
use common::{Desk, SandboxProcess};
use reqwest::blocking::multipart;

/// A signed-in clerk's cookie and form token (the same at every desk).
struct Session {
    cookie: String,
    csrf: String,
}

/// Requests to desks, redirects not followed.
struct Browser {
    http: reqwest::blocking::Client,
}

impl Browser {
    fn new() -> Browser {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Browser {
            http: reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn sign_in(&self, at: &str, name: &str) -> Session {
        let signed = self
            .http
            .post(format!("{at}/login"))
            .header("Origin", at)
            .form(&[("name", name), ("password", "a long password")])
            .send()
            .unwrap();
        assert_eq!(signed.status().as_u16(), 303, "{name}");
        let cookie = signed.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let mut s = Session {
            cookie,
            csrf: String::new(),
        };
        let (_, page) = self.get(at, "/", &s);
        let from = page.find("name=\"csrf\" value=\"").expect("a token") + 19;
        s.csrf = page[from..from + 64].to_owned();
        s
    }

    fn get(&self, at: &str, path: &str, who: &Session) -> (u16, String) {
        let r = self
            .http
            .get(format!("{at}{path}"))
            .header("Cookie", &who.cookie)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    fn post(&self, at: &str, path: &str, who: &Session, fields: &[(&str, &str)]) -> (u16, String) {
        let mut form = vec![("csrf", who.csrf.as_str())];
        form.extend_from_slice(fields);
        let r = self
            .http
            .post(format!("{at}{path}"))
            .header("Origin", at)
            .header("Cookie", &who.cookie)
            .form(&form)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    /// Drops `bytes` as `name`; where the desk sends the browser.
    fn upload(&self, at: &str, who: &Session, name: &str, bytes: Vec<u8>) -> String {
        let form = multipart::Form::new().text("csrf", who.csrf.clone()).part(
            "sheet",
            multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
        let r = self
            .http
            .post(format!("{at}/sheets"))
            .header("Origin", at)
            .header("Cookie", &who.cookie)
            .multipart(form)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        r.headers()["location"].to_str().unwrap().to_owned()
    }
}

/// Stops the desks when the test ends, however it ends.
struct Stop(Vec<std::process::Child>);

impl Drop for Stop {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_clerk_signed_in_at_one_desk_is_signed_in_at_the_other() {
    let Some(pg) = Postgres::start_or_skip() else {
        return;
    };
    let sb = SandboxProcess::start(&[]);
    let (env_a, env_b) = (Desk::new(), Desk::new());
    pg.add_user(&env_a, "asha", "maker");
    let (desk_a, a) = pg.serve(&env_a, &sb.base, &[]);
    let (desk_b, b) = pg.serve(&env_b, &sb.base, &[]);
    let _stop = Stop(vec![desk_a, desk_b]);
    let browser = Browser::new();
    let asha = browser.sign_in(&a, "asha");
    // The other desk knows the session.
    let (status, body) = browser.get(&b, "/", &asha);
    assert_eq!(status, 200);
    assert!(
        body.contains("Signed in as <strong>asha</strong>"),
        "{body}"
    );
    // Only a digest of the session's id is in the database.
    let id = asha.cookie.split_once('=').unwrap().1;
    assert_eq!(
        pg.psql(&format!(
            "SELECT COUNT(*) FROM access.sessions WHERE id_sha256 = '{id}'"
        )),
        "0"
    );
    assert_eq!(
        pg.psql("SELECT COUNT(*) FROM access.sessions WHERE user_name = 'asha'"),
        "1"
    );
    // Signed out at one desk: out at both.
    assert_eq!(browser.post(&b, "/logout", &asha, &[]).0, 303);
    assert_eq!(browser.get(&a, "/", &asha).0, 303, "back to sign-in");
}

#[test]
fn a_sheet_dropped_at_one_desk_is_changed_approved_and_sent_at_the_other() {
    let Some(pg) = Postgres::start_or_skip() else {
        return;
    };
    // Slow enough that the run is seen going on from the other desk.
    let sb = SandboxProcess::start(&["--latency", "250ms"]);
    let (env_a, env_b) = (Desk::new(), Desk::new());
    pg.add_user(&env_a, "asha", "maker");
    pg.add_user(&env_a, "ravi", "checker");
    let mut desks = Vec::new();
    let mut urls = Vec::new();
    for (env, host) in [(&env_a, "desk-a"), (&env_b, "desk-b")] {
        let config = env
            .write(
                "config.toml",
                "[profiles.foureyes]\napproval = \"required\"\n",
            )
            .display()
            .to_string();
        let (child, url) = pg.serve(
            env,
            &sb.base,
            &[
                "--config",
                &config,
                "--profile",
                "foureyes",
                "--concurrency",
                "1",
                "--host-id",
                host,
            ],
        );
        desks.push(child);
        urls.push(url);
    }
    let _stop = Stop(desks);
    let (a, b) = (urls[0].as_str(), urls[1].as_str());
    let browser = Browser::new();
    let asha = browser.sign_in(a, "asha");
    let ravi = browser.sign_in(b, "ravi");

    // Dropped at A: on B's list, and its page at B.
    let sheet = env_a.sheet("branches.csv", 12, 1);
    let to = browser.upload(a, &asha, "branches.csv", std::fs::read(&sheet).unwrap());
    assert!(to.starts_with("/sheets/"), "{to}");
    let (status, index) = browser.get(b, "/", &ravi);
    assert_eq!(status, 200);
    assert!(index.contains("branches.csv"), "{index}");
    let (status, page) = browser.get(b, &to, &asha);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Version 1 of the sheet"), "{page}");
    assert_eq!(
        pg.psql("SELECT COUNT(*) FROM access.desk_sheets WHERE closed_at IS NULL"),
        "1"
    );

    // Changed at B (a quantity of 0 makes the row invalid), seen at A.
    let quantity = "5";
    let (status, body) = browser.post(
        b,
        &format!("{to}/cells"),
        &asha,
        &[("row", "2"), ("col", quantity), ("value", "0")],
    );
    assert_eq!(status, 303, "{body}");
    let (_, page) = browser.get(a, &to, &asha);
    assert!(page.contains("Version 2 of the sheet"), "{page}");
    assert!(page.contains("id=\"count-invalid\">1<"), "{page}");
    // Undone at A, seen at B; and mended at A in one more save.
    assert_eq!(browser.post(a, &format!("{to}/undo"), &asha, &[]).0, 303);
    let (_, page) = browser.get(b, &to, &asha);
    assert!(page.contains("Version 1 of the sheet"), "{page}");
    assert!(page.contains("id=\"count-invalid\">0<"), "{page}");
    let (status, _) = browser.post(
        a,
        &format!("{to}/cells"),
        &asha,
        &[("row", "2"), ("col", quantity), ("value", "11")],
    );
    assert_eq!(status, 303);

    // Asked for at A, approved at B: B sends the version approved.
    assert_eq!(browser.post(a, &format!("{to}/ask"), &asha, &[]).0, 303);
    let (_, approvals) = browser.get(b, "/approvals", &ravi);
    let at = approvals.find("/approvals/").expect("an approval") + 11;
    let number: String = approvals[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let (status, body) = browser.post(b, &format!("/approvals/{number}/approve"), &ravi, &[]);
    assert_eq!(status, 303, "{body}");

    // A says B is sending it, and refuses a change or a close meanwhile.
    let (_, page) = browser.get(a, &to, &asha);
    assert!(
        page.contains("Being sent from the desk on desk-b"),
        "{page}"
    );
    let (status, body) = browser.post(
        a,
        &format!("{to}/cells"),
        &asha,
        &[("row", "3"), ("col", quantity), ("value", "12")],
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("being sent") || body.contains("another desk"),
        "{body}"
    );
    assert_eq!(browser.post(a, &format!("{to}/close"), &asha, &[]).0, 409);

    // The run ends; every order created once, with the mended quantity.
    let began = std::time::Instant::now();
    loop {
        let (_, page) = browser.get(a, &to, &asha);
        if !page.contains("sending-elsewhere") {
            break;
        }
        assert!(began.elapsed().as_secs() < 60, "still sending: {page}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let orders = sb.inspect("/tenants/ACME/orders");
    let orders = orders.as_array().unwrap();
    assert_eq!(orders.len(), 12, "{orders:?}");
    assert!(orders.iter().all(|o| o["creates"].as_u64() == Some(1)));
    let (_, runs) = browser.get(a, "/runs", &asha);
    assert!(runs.contains("desk-b"), "{runs}");

    // Closed at A: off B's list too.
    assert_eq!(browser.post(a, &format!("{to}/close"), &asha, &[]).0, 303);
    let (_, index) = browser.get(b, "/", &asha);
    assert!(!index.contains("branches.csv"), "{index}");
    assert_eq!(browser.get(b, &to, &asha).0, 404);
}

#[test]
fn a_machines_users_trail_and_desk_sheets_move_into_the_shared_database() {
    let Some(pg) = Postgres::start_or_skip() else {
        return;
    };
    // One machine's desk: a user, a sheet dropped and changed.
    let env = Desk::new();
    env.add_user("asha", "maker", "a long password");
    let kept = env.path("kept-local");
    let (local, url) = common::serve(&env, &kept, &[]);
    let url = url.trim_end_matches('/').to_owned();
    let mut stop = Stop(vec![local]);
    let browser = Browser::new();
    let asha = browser.sign_in(&url, "asha");
    let sheet = env.sheet("moved.csv", 3, 1);
    let to = browser.upload(&url, &asha, "moved.csv", std::fs::read(&sheet).unwrap());
    let (status, _) = browser.post(
        &url,
        &format!("{to}/cells"),
        &asha,
        &[("row", "2"), ("col", "5"), ("value", "0")],
    );
    assert_eq!(status, 303);
    drop(stop);

    // Copied: users, trail, sheets; sessions not.
    let access = env.path("journals/access.sqlite");
    let copy = |json: bool| {
        let mut args = vec![
            "ledger",
            "copy",
            "--from",
            access.to_str().unwrap(),
            "--to",
            &pg.url,
        ];
        if json {
            args.push("--json");
        }
        env.command(&args)
            .env("DCMS_LEDGER_PASSWORD", common::pg::PASSWORD)
            .output()
            .unwrap()
    };
    let out = copy(true);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["rows"]["users"], 1, "{said}");
    assert_eq!(said["rows"]["desk_sheets"], 1, "{said}");
    assert_eq!(said["rows"]["desk_saves"], 1, "{said}");
    assert!(said["rows"]["audit"].as_u64().unwrap() >= 3, "{said}");
    assert_eq!(pg.psql("SELECT COUNT(*) FROM access.sessions"), "0");
    // Only into an empty one.
    let again = copy(false);
    assert_eq!(again.status.code(), Some(dcms_bulk::exit::USAGE));
    assert!(
        common::stderr(&again).contains("empty"),
        "{}",
        common::stderr(&again)
    );

    // The shared database's desk: the same user, the sheet at its version,
    // and the trail's chain holds.
    let (shared, at) = pg.serve(&env, "http://127.0.0.1:9", &[]);
    stop = Stop(vec![shared]);
    let asha = browser.sign_in(&at, "asha");
    let (_, index) = browser.get(&at, "/", &asha);
    assert!(index.contains("moved.csv"), "{index}");
    let (_, page) = browser.get(&at, &to, &asha);
    assert!(page.contains("Version 2 of the sheet"), "{page}");
    assert!(page.contains("id=\"count-invalid\">1<"), "{page}");
    let audit = env
        .command(&["audit", "--ledger", &pg.url])
        .env("DCMS_LEDGER_PASSWORD", common::pg::PASSWORD)
        .output()
        .unwrap();
    assert!(audit.status.success(), "{}", common::stderr(&audit));
    assert!(
        String::from_utf8_lossy(&audit.stdout).contains("sheet dropped"),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
    drop(stop);
}
