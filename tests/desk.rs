//! The desk over HTTP, the real binary (`serve --listen 127.0.0.1:0`): a
//! sheet dropped, its bad cells marked for a screen reader too, a cell
//! fixed and the counts following; and every refusal (a foreign `Host`, a
//! foreign or missing `Origin`, a wrong CSRF token, a sheet too large or
//! of another kind, an address beyond this machine); a hostile cell shown
//! as text.

mod common;

use std::io::{Read, Write};
use std::process::Child;

use common::{Desk, root};
use reqwest::blocking::{Client, multipart};
use reqwest::redirect::Policy;

/// A running desk, stopped when dropped.
struct Served {
    child: Child,
    /// Where it keeps the sheets dropped on it.
    kept: tempfile::TempDir,
    /// Its home and ledgers.
    _env: Desk,
    url: String,
    http: Client,
}

impl Served {
    fn start(extra: &[&str]) -> Served {
        let kept = tempfile::tempdir().unwrap();
        let env = Desk::new();
        let (child, url) = common::serve(&env, kept.path(), extra);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = Client::builder()
            .redirect(Policy::none())
            // A fresh connection each time: the desk closes one whose
            // upload it refused part way, and a reused one would fail.
            .pool_max_idle_per_host(0)
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap();
        Served {
            child,
            kept,
            _env: env,
            url: url.trim_end_matches('/').to_owned(),
            http,
        }
    }

    fn origin(&self) -> &str {
        &self.url
    }

    fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.url)).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    /// The CSRF token the start page's form carries.
    fn token(&self) -> String {
        let (_, page) = self.get("/");
        let at = page.find("name=\"csrf\" value=\"").expect("a token") + 19;
        page[at..at + 64].to_owned()
    }

    /// Drops `bytes` as `name`, as the page's form does.
    fn upload(&self, name: &str, bytes: Vec<u8>, token: &str) -> reqwest::blocking::Response {
        let form = multipart::Form::new().text("csrf", token.to_owned()).part(
            "sheet",
            multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
        self.http
            .post(format!("{}/sheets", self.url))
            .header("Origin", self.origin())
            .multipart(form)
            .send()
            .unwrap()
    }

    fn change_cell(&self, sheet: &str, row: u64, col: usize, value: &str, token: &str) -> u16 {
        self.http
            .post(format!("{}{sheet}/cells", self.url))
            .header("Origin", self.origin())
            .form(&[
                ("csrf", token),
                ("row", &row.to_string()),
                ("col", &col.to_string()),
                ("value", value),
            ])
            .send()
            .unwrap()
            .status()
            .as_u16()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number shown for a count on a sheet's page.
fn count(page: &str, name: &str) -> u64 {
    let key = format!("<dd id=\"count-{name}\">");
    let at = page.find(&key).expect("the count") + key.len();
    page[at..].split('<').next().unwrap().parse().unwrap()
}

#[test]
fn a_dropped_sheet_shows_its_bad_cells_and_a_fix_in_place_rechecks_it() {
    let desk = Served::start(&[]);
    let token = desk.token();
    let bytes = std::fs::read(root().join("samples/orders_with_mistakes.xlsx")).unwrap();
    let r = desk.upload("orders_with_mistakes.xlsx", bytes.clone(), &token);
    assert_eq!(r.status().as_u16(), 303);
    let sheet = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(sheet, "/sheets/1");

    let (status, page) = desk.get(&format!("{sheet}?problems=1"));
    assert_eq!(status, 200);
    let invalid = count(&page, "invalid");
    assert!(invalid > 0, "{page}");
    // Every cell marked invalid points at its message, which is there.
    let marked: Vec<&str> = page.split("aria-invalid=\"true\"").skip(1).collect();
    assert!(!marked.is_empty());
    for m in &marked {
        let at = m.find("aria-describedby=\"").unwrap() + 18;
        let id = &m[at..at + m[at..].find('"').unwrap()];
        assert!(page.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(
        page.contains("Error: must be between 1 and 500, got 0"),
        "{page}"
    );

    // Row 6's quantity (column 6, index 5) is 0: fixed here.
    assert!(page.contains("aria-describedby=\"m6-5\""), "{page}");
    assert_eq!(desk.change_cell(&sheet, 6, 5, "10", &token), 303);
    let (_, page) = desk.get(&sheet);
    assert_eq!(count(&page, "invalid"), invalid - 1, "{page}");
    assert!(!page.contains("aria-describedby=\"m6-5\""));
    assert!(
        page.contains("<td>6</td><td>quantity</td><td>0</td><td>10</td>"),
        "{page}"
    );
    assert!(page.contains("Version 2 of the sheet"));

    // The row's own form: every cell a labelled field.
    let (status, form) = desk.get(&format!("{sheet}/rows/9"));
    assert_eq!(status, 200);
    assert!(form.contains("<label for=\"c0\">"), "{form}");
    // A change the sheet cannot take is refused and says why.
    let r = desk.change_cell(&sheet, 1, 0, "x", &token);
    assert_eq!(r, 422);
    // Another row of a page that is not there: not found.
    assert_eq!(desk.get("/sheets/9").0, 404);
}

#[test]
fn requests_from_elsewhere_are_refused() {
    let desk = Served::start(&["--max-upload-mib", "1"]);
    let token = desk.token();
    let sheet = std::fs::read(root().join("samples/orders.csv")).unwrap();
    let post = |origin: Option<&str>, token: &str| {
        let form = multipart::Form::new().text("csrf", token.to_owned()).part(
            "sheet",
            multipart::Part::bytes(sheet.clone()).file_name("orders.csv"),
        );
        let mut r = desk
            .http
            .post(format!("{}/sheets", desk.url))
            .multipart(form);
        if let Some(o) = origin {
            r = r.header("Origin", o);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(post(None, &token), 403, "no Origin");
    assert_eq!(
        post(Some("http://evil.example"), &token),
        403,
        "a foreign Origin"
    );
    assert_eq!(post(Some(desk.origin()), "0123"), 403, "a wrong token");
    assert_eq!(post(Some(desk.origin()), ""), 403, "no token");
    assert_eq!(
        post(Some(desk.origin()), &token),
        303,
        "the page's own form"
    );

    // A name that points here from elsewhere (DNS rebinding): refused.
    let r = desk
        .http
        .get(format!("{}/", desk.url))
        .header("Host", "evil.example")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 421);
    // Every answer: a strict policy.
    let r = desk.http.get(format!("{}/", desk.url)).send().unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");

    // Too large: refused (413), or the connection closed while it is
    // still sent; either way not taken.
    let form = multipart::Form::new().text("csrf", token.clone()).part(
        "sheet",
        multipart::Part::bytes(vec![b'a'; 2 << 20]).file_name("big.csv"),
    );
    let big = desk
        .http
        .post(format!("{}/sheets", desk.url))
        .header("Origin", desk.origin())
        .multipart(form)
        .send();
    if let Ok(r) = big {
        assert_eq!(r.status().as_u16(), 413);
    }
    assert!(!desk.get("/").1.contains("big.csv"));
    // One that says how large it is is answered before it is sent.
    let host = desk.url.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(host).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        tcp,
        "POST /sheets HTTP/1.1\r\nHost: {host}\r\nOrigin: {}\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: {}\r\n\r\n",
        desk.origin(),
        5 << 20
    )
    .unwrap();
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("up to 1 MiB"), "{answer}");
    let png = desk.upload("photo.png", b"\x89PNG".to_vec(), &token);
    assert_eq!(png.status().as_u16(), 415);
    assert!(png.text().unwrap().contains("not an order sheet"));
    // A sheet that cannot be read: said on the page, nothing kept.
    let empty = desk.upload("empty.csv", Vec::new(), &token);
    assert_eq!(empty.status().as_u16(), 422);
    let text = empty.text().unwrap();
    assert!(
        text.contains("empty.csv") && !text.contains("/tmp"),
        "{text}"
    );
}

#[test]
fn hostile_cells_are_shown_as_text() {
    let desk = Served::start(&[]);
    let token = desk.token();
    let long = "x".repeat(32_000);
    let sheet = format!(
        "{}\n{}\n{}\n",
        common::HEADER,
        common::row("<script>alert(1)</script>", "P1", "1"),
        common::row(
            "00002",
            "=HYPERLINK(\"http://evil.example\",\"click\")",
            &long
        ),
    );
    let r = desk.upload("hostile.csv", sheet.into_bytes(), &token);
    assert_eq!(r.status().as_u16(), 303);
    let (_, page) = desk.get("/sheets/1");
    assert!(!page.contains("<script>alert"), "a cell became markup");
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{page}"
    );
    assert!(
        page.contains("=HYPERLINK(&#34;http://evil.example&#34;"),
        "{page}"
    );
    assert!(page.contains(&long), "the long cell is shown whole");
    // The only script is the desk's own file.
    assert_eq!(page.matches("<script").count(), 1);
    assert!(page.contains("<script src=\"/assets/desk.js\" defer></script>"));
}

#[test]
fn without_users_and_tls_the_desk_listens_on_this_machine_only() {
    let d = Desk::new();
    let out = d.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(dcms_bulk::exit::USAGE));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("beyond this machine the desk needs TLS"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_sheet_goes_back_corrected_with_its_rows_to_fix_and_its_report() {
    let desk = Served::start(&[]);
    let token = desk.token();
    let sheet = format!(
        "{}\n{}\n{}\n{}\n",
        common::HEADER,
        common::row("00001", "P1", "0"),
        common::row("00001", "P2", "5"),
        common::row("00002", "P1", "ten"),
    );
    let r = desk.upload("branch 7.csv", sheet.into_bytes(), &token);
    assert_eq!(r.status().as_u16(), 303);
    // Row 2's quantity 0 fixed here; row 4's `ten` left for the branch.
    assert_eq!(desk.change_cell("/sheets/1", 2, 5, "3", &token), 303);
    let get = |what: &str| {
        let r = desk
            .http
            .get(format!("{}/sheets/1/download/{what}", desk.url))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{what}");
        let name = r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        (name, r.text().unwrap())
    };
    let (name, corrected) = get("corrected");
    assert!(name.contains("branch 7.corrected.csv"), "{name}");
    let lines: Vec<&str> = corrected.lines().collect();
    assert_eq!(lines.len(), 4, "{corrected}");
    assert!(
        lines[1].starts_with("00001,") && lines[1].contains(",3,"),
        "{corrected}"
    );

    let (name, to_fix) = get("to-fix");
    assert!(name.contains("branch 7.to-fix.csv"), "{name}");
    let lines: Vec<&str> = to_fix.lines().collect();
    assert_eq!(lines.len(), 2, "only the invalid row: {to_fix}");
    assert!(lines[0].starts_with("what to fix,branch_id,"), "{to_fix}");
    assert!(
        lines[1].contains("quantity: must be a whole number"),
        "{to_fix}"
    );
    assert!(!to_fix.contains("--"), "no program options: {to_fix}");

    let (_, report) = get("report.csv");
    let rows: Vec<&str> = report.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{report}");
    assert_eq!(desk.get("/sheets/1/download/nothing").0, 404);
}

#[test]
fn a_workbook_goes_back_as_a_workbook_with_its_ids_as_text() {
    use calamine::{Reader, Xlsx};
    let desk = Served::start(&[]);
    let token = desk.token();
    let bytes = std::fs::read(root().join("samples/orders.xlsx")).unwrap();
    assert_eq!(
        desk.upload("orders.xlsx", bytes, &token).status().as_u16(),
        303
    );
    let r = desk
        .http
        .get(format!("{}/sheets/1/download/corrected", desk.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let bytes = r.bytes().unwrap().to_vec();
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let range = book.worksheet_range_at(0).unwrap().unwrap();
    let header: Vec<String> = range
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let branch = header.iter().position(|h| h == "branch_id").unwrap();
    let first = &range.rows().nth(1).unwrap()[branch];
    assert!(
        matches!(first, calamine::Data::String(s) if s.starts_with('0')),
        "{first:?}"
    );
}

#[test]
fn a_sheet_sent_from_the_desk_creates_each_order_once() {
    let sb = common::SandboxProcess::start(&[]);
    let desk = Served::start(&["--base-url", &sb.base, "--tenant", "ACME"]);
    let token = desk.token();
    let bytes = std::fs::read(root().join("samples/orders.csv")).unwrap();
    assert_eq!(
        desk.upload("orders.csv", bytes.clone(), &token)
            .status()
            .as_u16(),
        303
    );
    let (_, page) = desk.get("/sheets/1");
    assert!(
        page.contains("Send 4 orders to http://127.0.0.1:"),
        "{page}"
    );
    let send = |sheet: &str| {
        desk.http
            .post(format!("{}{sheet}/send", desk.url))
            .header("Origin", desk.origin())
            .form(&[("csrf", token.as_str())])
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let finished = |sheet: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let (_, page) = desk.get(sheet);
            if page.contains("Finished.") {
                return page;
            }
            assert!(std::time::Instant::now() < deadline, "{page}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    assert_eq!(send("/sheets/1"), 303);
    let page = finished("/sheets/1");
    assert!(page.contains("10 rows: 10 accepted"), "{page}");
    // Each row shows what sending its order gave; the live view told each
    // of the 4 orders.
    assert_eq!(page.matches("sent: ACCEPTED").count(), 10, "{page}");
    let (_, events) = desk.get("/sheets/1/events");
    let event: serde_json::Value =
        serde_json::from_str(events.trim().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(event["answered"].as_array().unwrap().len(), 4, "{event}");
    assert_eq!(event["finished"], true);
    let created = || {
        sb.inspect("/stats")["tenants"]["ACME"]["orders"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(created(), 4);
    let r = desk
        .http
        .get(format!("{}/sheets/1/download/sent-report", desk.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let report = r.text().unwrap();
    let mut rdr = csv::Reader::from_reader(report.as_bytes());
    let header = rdr.headers().unwrap().clone();
    let status = header.iter().position(|h| h == "status").unwrap();
    let rows: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| &r[status] == "ACCEPTED"), "{report}");

    // The same sheet dropped again and sent: nothing is created twice.
    assert_eq!(
        desk.upload("orders.csv", bytes, &token).status().as_u16(),
        303
    );
    assert_eq!(send("/sheets/2"), 303);
    let page = finished("/sheets/2");
    assert!(page.contains("10 skipped (sent before)"), "{page}");
    assert_eq!(page.matches("sent: SKIPPED").count(), 10, "{page}");
    assert_eq!(created(), 4);

    // The sheets and their runs' reports are kept where the desk was told
    // (the ledger points at them), not in a folder that goes with it.
    let mut kept = Vec::new();
    let mut todo = vec![desk.kept.path().to_owned()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                kept.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert_eq!(
        kept.iter().filter(|n| *n == "orders.csv").count(),
        2,
        "{kept:?}"
    );
    assert_eq!(
        kept.iter().filter(|n| n.ends_with(".report.csv")).count(),
        2,
        "{kept:?}"
    );

    // History: both runs, newest first, each with its report.
    let (status, runs) = desk.get("/runs");
    assert_eq!(status, 200);
    let (first, second) = (runs.find("#1</a>").unwrap(), runs.find("#2</a>").unwrap());
    assert!(second < first, "newest first: {runs}");
    assert!(runs.contains("<td>desk</td>"), "{runs}");
    let (status, run) = desk.get("/runs/1");
    assert_eq!(status, 200);
    assert!(
        run.contains("orders.csv") && run.contains("10: 10 accepted"),
        "{run}"
    );
    let r = desk
        .http
        .get(format!("{}/runs/1/report", desk.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(desk.get("/runs/99").0, 404);

    // An order's page: what the ledger holds of it.
    let order = &rows[0][header.iter().position(|h| h == "order_id").unwrap()];
    let (status, shown) = desk.get(&format!("/orders/{order}"));
    assert_eq!(status, 200);
    assert!(
        shown.contains("ACCEPTED") && (shown.contains("HTTP 201") || shown.contains("HTTP 200")),
        "{shown}"
    );
    assert!(shown.contains("href=\"/runs/1\""), "{shown}");
    let r = desk
        .http
        .get(format!("{}/orders?id={order}", desk.url))
        .send()
        .unwrap();
    assert_eq!(r.headers()["location"], format!("/orders/{order}").as_str());
    assert_eq!(desk.get("/orders/DCB-nothing").0, 404);

    // Verify, as an auditor: the run's report and facts hold; a forged
    // status does not.
    let fetch = |path: &str| {
        desk.http
            .get(format!("{}{path}", desk.url))
            .send()
            .unwrap()
            .bytes()
            .unwrap()
            .to_vec()
    };
    let (report, facts) = (fetch("/runs/1/report"), fetch("/runs/1/facts"));
    let verify = |report: Vec<u8>| {
        let form = multipart::Form::new()
            .text("csrf", token.clone())
            .part(
                "report",
                multipart::Part::bytes(report).file_name("orders.report.csv"),
            )
            .part(
                "facts",
                multipart::Part::bytes(facts.clone()).file_name("orders.report.csv.run.json"),
            );
        let r = desk
            .http
            .post(format!("{}/verify", desk.url))
            .header("Origin", desk.origin())
            .multipart(form)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (status, found) = verify(report.clone());
    assert_eq!(status, 200);
    assert!(found.contains("every check holds"), "{found}");
    let forged = String::from_utf8(report)
        .unwrap()
        .replacen(",ACCEPTED,", ",REJECTED,", 1);
    let (_, found) = verify(forged.into_bytes());
    assert!(
        found.contains("discrepancies") && found.contains("FAIL"),
        "{found}"
    );

    // Without a destination the desk checks only, and says how to send.
    let only = Served::start(&[]);
    let token = only.token();
    let bytes = std::fs::read(root().join("samples/orders.csv")).unwrap();
    assert_eq!(
        only.upload("orders.csv", bytes, &token).status().as_u16(),
        303
    );
    assert!(only.get("/sheets/1").1.contains("This desk checks only"));
}

#[test]
fn find_and_replace_in_a_column_shows_the_matches_first_and_undo_takes_it_back() {
    let desk = Served::start(&[]);
    let token = desk.token();
    let bytes = std::fs::read(root().join("samples/orders.csv")).unwrap();
    assert_eq!(
        desk.upload("orders.csv", bytes, &token).status().as_u16(),
        303
    );
    let (_, page) = desk.get("/sheets/1");
    assert!(page.contains("<label for=\"r-col\">Column</label>"));
    assert!(!page.contains("undo-button"), "nothing to undo yet");
    // quantity is column 6 (index 5): 100 becomes 0, and the rows fail.
    let (status, preview) = desk.get("/sheets/1/replace?col=5&find=100&with=0");
    assert_eq!(status, 200);
    let n = preview.matches("<tr><td>").count();
    assert!(
        n > 0 && preview.contains(&format!("Replace in {n} cells")),
        "{preview}"
    );
    assert_eq!(
        count(&desk.get("/sheets/1").1, "invalid"),
        0,
        "a preview changes nothing"
    );
    let post = |path: &str, form: &[(&str, &str)]| {
        desk.http
            .post(format!("{}{path}", desk.url))
            .header("Origin", desk.origin())
            .form(form)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let replace = [
        ("csrf", token.as_str()),
        ("col", "5"),
        ("find", "100"),
        ("with", "0"),
    ];
    assert_eq!(post("/sheets/1/replace", &replace), 303);
    let (_, page) = desk.get("/sheets/1");
    assert_eq!(count(&page, "invalid"), n as u64);
    assert!(page.contains("undo-button"));
    assert_eq!(post("/sheets/1/undo", &[("csrf", token.as_str())]), 303);
    let (_, page) = desk.get("/sheets/1");
    assert_eq!(count(&page, "invalid"), 0);
    assert!(!page.contains("undo-button"), "one step of undo");
    // Without the token: refused.
    assert_eq!(post("/sheets/1/undo", &[("csrf", "x")]), 403);
    assert_eq!(desk.get("/sheets/1/replace?col=5&find=&with=0").0, 422);
    // Closed: off the desk.
    assert_eq!(post("/sheets/1/close", &[("csrf", "x")]), 403);
    assert_eq!(post("/sheets/1/close", &[("csrf", token.as_str())]), 303);
    assert_eq!(desk.get("/sheets/1").0, 404);
    assert!(!desk.get("/").1.contains("/sheets/1\""));
}

#[test]
fn the_desk_watches_drop_folders_and_sends_its_own_sheets_in_turn() {
    let sb = common::SandboxProcess::start(&[]);
    let folders = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let d = folders.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d.display().to_string()
    };
    let (inbox, done, failed) = (dir("in"), dir("done"), dir("failed"));
    let attention = dir("attention");
    let desk = Served::start(&[
        "--base-url",
        &sb.base,
        "--tenant",
        "ACME",
        "--watch",
        &inbox,
        "--settle",
        "0s",
        "--poll",
        "200ms",
        "--done-dir",
        &done,
        "--failed-dir",
        &failed,
        "--attention-dir",
        &attention,
    ]);
    // A sheet of the desk's own (another branch: other orders), dropped
    // while the night's files come in, and sent in turn with them.
    let token = desk.token();
    let sample = std::fs::read_to_string(root().join("samples/orders.csv")).unwrap();
    // Each row's branch id begun with another digit: other branches.
    let branched = |digit: &str| {
        let mut lines = sample.lines();
        let mut out = format!("{}\n", lines.next().unwrap());
        for line in lines {
            out.push_str(&format!("{digit}{}\n", &line[1..]));
        }
        out
    };
    let (night, own) = (branched("9"), branched("8"));
    assert_eq!(
        desk.upload("desk.csv", own.into_bytes(), &token)
            .status()
            .as_u16(),
        303
    );
    std::fs::write(format!("{inbox}/night.csv"), &night).unwrap();
    std::fs::copy(
        root().join("samples/orders_with_mistakes.xlsx"),
        format!("{inbox}/mistakes.xlsx"),
    )
    .unwrap();
    std::fs::write(format!("{inbox}/notes.pdf"), "not a sheet").unwrap();
    let sent = desk
        .http
        .post(format!("{}/sheets/1/send", desk.url))
        .header("Origin", desk.origin())
        .form(&[("csrf", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(sent.status().as_u16(), 303);

    // The page lists each file with its state, until the watch is done
    // with them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let table = loop {
        let (status, table) = desk.get("/folders/table");
        assert_eq!(status, 200);
        let ended = table.contains("<td>night.csv</td>")
            && table.matches("class=\"state\">done<").count() == 1
            && table.matches("class=\"state\">needs attention<").count() == 1;
        if ended {
            break table;
        }
        assert!(std::time::Instant::now() < deadline, "{table}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        table.contains("<td>notes.pdf</td>") && table.contains("not an order sheet"),
        "{table}"
    );
    assert!(table.contains("10 rows: 10 accepted"), "{table}");
    assert!(table.contains("11 invalid, 3 held"), "{table}");
    assert!(std::path::Path::new(&format!("{done}/night.csv")).is_file());
    // Sent, with rows the branch must fix: not with the failed files.
    assert!(std::path::Path::new(&format!("{attention}/mistakes.xlsx")).is_file());
    assert!(std::path::Path::new(&format!("{attention}/mistakes.to-fix.xlsx")).is_file());
    assert!(!std::path::Path::new(&format!("{failed}/mistakes.xlsx")).exists());
    let (_, page) = desk.get("/folders");
    assert!(page.contains(&inbox), "{page}");

    // Each file's report, from its link, wherever the watch moved it.
    let at = table.find("<td>night.csv</td>").unwrap();
    let link = &table[at..];
    let link = &link[link.find("href=\"").unwrap() + 6..];
    let link = &link[..link.find('"').unwrap()];
    let report = desk
        .http
        .get(format!("{}{link}", desk.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(report.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 10, "{report}");
    assert_eq!(desk.get("/folders/999/report").0, 404);

    // The desk's sheet went too, through the same ledger: its orders and
    // the night's, each created once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let page = loop {
        let (_, page) = desk.get("/sheets/1");
        if page.contains("Finished.") {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "{page}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(page.contains("10 rows: 10 accepted"), "{page}");
    let created = sb.inspect("/stats")["tenants"]["ACME"]["orders"]
        .as_u64()
        .unwrap();
    assert_eq!(created, 4 + 4 + 1);
    let (_, runs) = desk.get("/runs");
    assert!(
        runs.contains("<td>desk</td>") && runs.contains("<td>submit</td>"),
        "{runs}"
    );
}

#[test]
fn the_watch_in_the_desk_needs_an_api_and_its_folders() {
    let d = Desk::new();
    let folder = tempfile::tempdir().unwrap();
    let inbox = folder.path().display().to_string();
    for (args, said) in [
        (vec!["serve", "--watch", inbox.as_str()], "--watch sends"),
        (
            vec!["serve", "--done-dir", inbox.as_str()],
            "are for the drop folders of --watch",
        ),
        (
            vec!["serve", "--sandbox", "--watch", "no/such/folder"],
            "not a folder",
        ),
    ] {
        let out = d.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(dcms_bulk::exit::USAGE),
            "{args:?}: {err}"
        );
        assert!(err.contains(said), "{args:?}: {err}");
    }
}

#[test]
fn the_desk_holds_its_last_sheets_and_never_reuses_an_id() {
    let desk = Served::start(&[]);
    let token = desk.token();
    let bytes = std::fs::read(root().join("samples/orders.csv")).unwrap();
    for n in 1..=21 {
        let r = desk.upload("orders.csv", bytes.clone(), &token);
        assert_eq!(r.headers()["location"], format!("/sheets/{n}").as_str());
    }
    // The oldest is put away (its file stays kept); the last 20 stay.
    assert_eq!(desk.get("/sheets/1").0, 404);
    assert_eq!(desk.get("/sheets/2").0, 200);
    assert_eq!(desk.get("/").1.matches("href=\"/sheets/").count(), 20);
    // A sheet closed does not give its id (and its folder) to the next.
    let closed = desk
        .http
        .post(format!("{}/sheets/21/close", desk.url))
        .header("Origin", desk.origin())
        .form(&[("csrf", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(closed.status().as_u16(), 303);
    let r = desk.upload("orders.csv", bytes, &token);
    assert_eq!(r.headers()["location"], "/sheets/22");
    let kept = std::fs::read_dir(desk.kept.path()).unwrap().count();
    assert_eq!(kept, 22);
}

#[test]
fn every_format_validate_reads_is_taken_and_a_hostile_workbook_is_refused_in_words() {
    let desk = Served::start(&[]);
    let token = desk.token();
    let fixtures = root().join("tests/fixtures");
    let csv = std::fs::read_to_string(root().join("samples/orders.csv")).unwrap();
    let tsv = csv
        .lines()
        .map(|l| {
            let mut r = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(l.as_bytes());
            let rec = r.records().next().unwrap().unwrap();
            rec.iter().collect::<Vec<_>>().join("\t")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let sheets: Vec<(&str, Vec<u8>)> = vec![
        (
            "orders.xls",
            std::fs::read(fixtures.join("orders.xls")).unwrap(),
        ),
        (
            "orders.ods",
            std::fs::read(fixtures.join("orders.ods")).unwrap(),
        ),
        ("orders.tsv", tsv.into_bytes()),
        ("orders.txt", csv.clone().into_bytes()),
        (
            "orders.xlsx",
            std::fs::read(root().join("samples/orders.xlsx")).unwrap(),
        ),
    ];
    for (name, bytes) in sheets {
        let r = desk.upload(name, bytes, &token);
        assert_eq!(r.status().as_u16(), 303, "{name}");
        let (_, page) = desk.get(r.headers()["location"].to_str().unwrap());
        assert!(count(&page, "rows") > 0, "{name}: {page}");
    }
    // A workbook built to exhaust a reader: refused with why, nothing
    // else.
    for hostile in ["rows_repeated_a_billion_times.ods", "fat_chain_loops.xls"] {
        let bytes = std::fs::read(fixtures.join("hostile").join(hostile)).unwrap();
        let r = desk.upload(hostile, bytes, &token);
        assert_eq!(r.status().as_u16(), 422, "{hostile}");
        let text = r.text().unwrap();
        assert!(text.contains(hostile), "{hostile}: {text}");
    }
    assert!(desk.get("/").0 == 200);
}
