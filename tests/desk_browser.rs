//! The desk in a real browser: headless Chromium over WebDriver
//! (Debian's `chromium` and `chromium-driver`, which `.ci/run` installs).
//! A clerk drops the mistakes sample with the file picker, sees the marked
//! cells, and fixes one with the keyboard alone; the counts follow.
//! Screenshots are kept in `target/desk-screenshots/`.
//!
//! Where no `chromedriver` is installed the test says so and passes,
//! unless `DCMS_BROWSER_TESTS=required` (as `.ci/run` sets it).

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::root;
use fantoccini::{Client, ClientBuilder, Locator, key::Key};

/// A child process killed when dropped (and what it keeps, removed
/// after it).
struct Running {
    child: Child,
    _env: Option<common::Desk>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The desk on a free port (with `extra`, keeping its sheets in `kept`),
/// and its URL.
fn desk(kept: &std::path::Path, extra: &[&str]) -> (Running, String) {
    desk_in(common::Desk::new(), kept, extra)
}

/// The desk with its home and ledgers (and users) in `env`.
fn desk_in(env: common::Desk, kept: &std::path::Path, extra: &[&str]) -> (Running, String) {
    let (child, url) = common::serve(&env, kept, extra);
    (
        Running {
            child,
            _env: Some(env),
        },
        url,
    )
}

/// chromedriver on a free port, once it answers; `None` when there is none
/// on this machine.
fn driver() -> Option<(Running, u16)> {
    let found = ["chromedriver", "/usr/bin/chromedriver"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })?;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(found)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((Running { child, _env: None }, port))
}

/// chromedriver, or `None` where there is none, said (the test then
/// passes), unless `DCMS_BROWSER_TESTS=required`.
fn driver_or_skip() -> Option<(Running, u16)> {
    let found = driver();
    if found.is_none() {
        let required = std::env::var("DCMS_BROWSER_TESTS").is_ok_and(|v| v == "required");
        assert!(
            !required,
            "no chromedriver: install chromium and chromium-driver"
        );
        eprintln!("skipped: no chromedriver on this machine (.ci/run installs it)");
    }
    found
}

/// A headless Chromium session through the driver at `port`, at the size
/// of a small laptop screen.
async fn browser(port: u16) -> Client {
    browser_at(port, "1366,768").await
}

/// A headless Chromium session with a window of `size` (`W,H`).
async fn browser_at(port: u16, size: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", format!("--window-size={size}")],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session")
}

/// Waits until the page has an element `css` (at most a minute). A look
/// while the page is being replaced (a form sent, a reload) is aborted by
/// the browser, and looked again.
async fn arrive(c: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.find(Locator::Css(css)).await.is_err() {
        assert!(Instant::now() < deadline, "no {css} on the page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Chooses `sheet` with the drop zone's file picker and sends it, as a
/// clerk does with "Check it".
async fn choose_sheet(c: &Client, sheet: &std::path::Path) {
    c.find(Locator::Css("input#sheet"))
        .await
        .unwrap()
        .send_keys(sheet.to_str().unwrap())
        .await
        .unwrap();
    c.find(Locator::Css("#drop-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn screenshot(c: &Client, name: &str) {
    let dir = root().join("target/desk-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_drops_a_sheet_and_fixes_a_cell_with_the_keyboard() {
    let Some((_driver, port)) = driver_or_skip() else {
        return;
    };
    let kept = tempfile::tempdir().unwrap();
    let (_desk, url) = desk(kept.path(), &[]);
    let c = browser(port).await;

    c.goto(&url).await.unwrap();
    let picker = c.find(Locator::Css("input#sheet")).await.unwrap();
    let sample = root().join("samples/orders_with_mistakes.xlsx");
    picker.send_keys(sample.to_str().unwrap()).await.unwrap();
    c.find(Locator::XPath("//button[normalize-space()='Check it']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(&c, "table#rows").await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/sheets/")
    );
    screenshot(&c, "sheet.png").await;

    let invalid: u64 = text_of(&c, "#count-invalid").await.parse().unwrap();
    assert!(invalid > 0);
    let marked = c
        .find_all(Locator::Css("td[aria-invalid='true']"))
        .await
        .unwrap();
    assert!(!marked.is_empty());
    // Each marked cell's message is the one it points at.
    for cell in &marked {
        let id = cell.attr("aria-describedby").await.unwrap().unwrap();
        let msg = text_of(&c, &format!("[id='{id}']")).await;
        assert!(msg.starts_with("Error: "), "{msg}");
    }

    // Row 6's quantity is 0: select the cell, Enter, type, Enter.
    let cell = "td[data-row='6'][data-col='5']";
    assert_eq!(
        c.find(Locator::Css(cell))
            .await
            .unwrap()
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    type_into(&c, 6, 5, "10").await;
    arrive(&c, "table#edits").await;
    let now: u64 = text_of(&c, "#count-invalid").await.parse().unwrap();
    assert_eq!(now, invalid - 1);
    let fixed = c.find(Locator::Css(cell)).await.unwrap();
    assert_eq!(fixed.attr("aria-invalid").await.unwrap(), None);
    assert_eq!(text_of(&c, cell).await, "10");
    screenshot(&c, "fixed.png").await;
    c.close().await.unwrap();
}

/// Changes a cell with the keyboard: select it, Enter, type, Enter; waits
/// for the page to come back.
async fn type_into(c: &Client, row: u64, col: usize, value: &str) {
    let cell = format!("td[data-row='{row}'][data-col='{col}']");
    c.find(Locator::Css(&cell))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.active_element()
        .await
        .unwrap()
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    let input = c
        .wait()
        .for_element(Locator::Css(&format!("{cell} input")))
        .await
        .unwrap();
    input.clear().await.unwrap();
    input
        .send_keys(&format!("{value}{}", Key::Enter))
        .await
        .unwrap();
    arrive(c, &format!("{cell}:not(:has(input))")).await;
}

#[test]
fn the_mistakes_sample_fixed_in_the_page_is_sent_and_its_report_agrees_with_the_api() {
    let Some((_driver, port)) = driver_or_skip() else {
        return;
    };
    let sb = common::SandboxProcess::start(&[]);
    let kept = tempfile::tempdir().unwrap();
    let (_desk, url) = desk(kept.path(), &["--base-url", &sb.base, "--tenant", "ACME"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let href = runtime.block_on(fix_and_send(port, &url));
    drop(runtime);

    // The report of the run, row by row, against the API's orders.
    let report = common::client(Duration::from_secs(30))
        .get(format!("{}{href}", url.trim_end_matches('/')))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let path = root().join("target/desk-screenshots/sent.report.xlsx");
    std::fs::write(&path, &report).unwrap();
    let (header, rows) = xlsx_rows(&path);
    let status = header.iter().position(|h| h == "status").unwrap();
    let order = header.iter().position(|h| h == "order_id").unwrap();
    assert_eq!(rows.len(), 16);
    let held: Vec<String> = sb
        .inspect("/tenants/ACME/orders")
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["orderId"].as_str().unwrap().to_owned())
        .collect();
    for r in &rows {
        assert_eq!(r[status], "ACCEPTED", "{r:?}");
        assert!(held.contains(&r[order]), "{} is not at the API", r[order]);
    }
}

/// In the browser: the mistakes sample dropped, every mistake fixed where
/// it is with the keyboard, sent (its warning acknowledged), the live
/// progress followed to the end; the run report's link.
async fn fix_and_send(port: u16, url: &str) -> String {
    let c = browser(port).await;
    c.goto(url).await.unwrap();
    let sample = root().join("samples/orders_with_mistakes.xlsx");
    choose_sheet(&c, &sample).await;
    arrive(&c, "table#rows").await;
    // Each mistake fixed where it is (row, column, value).
    for (row, col, value) in [
        (6, 5, "10"),
        (8, 0, "04567"),
        (9, 5, "10"),
        (11, 3, "524311"),
        (12, 11, "2026-12-02 10:00:00"),
        (14, 9, "Flat 3~Fort~Mumbai"),
        (15, 6, "0055"),
        (16, 10, "682016"),
        (17, 1, "Kochi Branch"),
        (19, 2, "09"),
    ] {
        type_into(&c, row, col, value).await;
    }
    assert_eq!(
        text_of(&c, "#count-invalid").await,
        "0",
        "every mistake fixed"
    );
    assert_eq!(text_of(&c, "#count-held").await, "0");
    screenshot(&c, "fixed-all.png").await;
    c.find(Locator::Css("#warnings_read"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let button = c.find(Locator::Css("#send-button")).await.unwrap();
    let label = button.text().await.unwrap();
    assert!(
        label.starts_with("Send ") && label.contains("as tenant ACME"),
        "{label}"
    );
    button.click().await.unwrap();
    // The live view reloads the page when the run ends.
    arrive(&c, "#run-summary").await;
    screenshot(&c, "sent.png").await;
    let summary = text_of(&c, "#run-summary").await;
    assert!(summary.starts_with("16 rows: 16 accepted"), "{summary}");
    // Every row says what sending its order gave.
    let mut sent = 0;
    for el in c
        .find_all(Locator::Css("tr[data-group] .sent"))
        .await
        .unwrap()
    {
        assert_eq!(el.text().await.unwrap(), "sent: ACCEPTED");
        sent += 1;
    }
    assert_eq!(sent, 16);
    let href = c
        .find(Locator::Css("a[href$='/download/sent-report']"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();

    // History: the run, and the changes made before it was sent.
    c.find(Locator::LinkText("History"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(&c, "table#runs").await;
    c.find(Locator::LinkText("#1"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(&c, "table#run-edits").await;
    let edits = c
        .find_all(Locator::Css("table#run-edits tbody tr"))
        .await
        .unwrap();
    assert_eq!(edits.len(), 10);
    assert!(text_of(&c, "h1").await.starts_with("Run #1"));
    screenshot(&c, "run.png").await;
    c.close().await.unwrap();
    href
}

/// The report sheet of an XLSX report: its header and rows, as text.
fn xlsx_rows(path: &std::path::Path) -> (Vec<String>, Vec<Vec<String>>) {
    use calamine::Reader;
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
    let range = book.worksheet_range("Report").unwrap();
    let mut rows = range
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect::<Vec<String>>());
    let header = rows.next().unwrap();
    (header, rows.collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sheet_over_the_limit_is_refused_before_it_is_sent() {
    let Some((_driver, port)) = driver_or_skip() else {
        return;
    };
    let kept = tempfile::tempdir().unwrap();
    let (_desk, url) = desk(kept.path(), &["--max-upload-mib", "1"]);
    let big = kept.path().join("big.csv");
    std::fs::write(&big, vec![b'a'; 2 << 20]).unwrap();
    let c = browser(port).await;
    c.goto(&url).await.unwrap();
    let alert = c.find(Locator::Css("#too-large")).await.unwrap();
    assert!(!alert.is_displayed().await.unwrap());
    choose_sheet(&c, &big).await;
    assert!(alert.is_displayed().await.unwrap(), "the page says why");
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/",
        "nothing was sent"
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drop_folders_page_follows_a_nights_files_on_a_large_screen() {
    let Some((_driver, port)) = driver_or_skip() else {
        return;
    };
    let kept = tempfile::tempdir().unwrap();
    let inbox = kept.path().join("in");
    let done = kept.path().join("done");
    std::fs::create_dir_all(&inbox).unwrap();
    let (_desk, url) = desk(
        kept.path(),
        &[
            "--sandbox",
            "--watch",
            inbox.to_str().unwrap(),
            "--settle",
            "1s",
            "--done-dir",
            done.to_str().unwrap(),
        ],
    );
    let c = browser_at(port, "1920,1080").await;
    c.goto(&url).await.unwrap();
    c.find(Locator::LinkText("Drop folders"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(&c, "#folder-files").await;
    assert!(text_of(&c, "#folder-files").await.contains("No file yet"));
    // A file copied in while the page is open: the list follows it
    // without a reload, to its report.
    std::fs::copy(root().join("samples/orders.csv"), inbox.join("night.csv")).unwrap();
    arrive(&c, "#folder-table a[href$='/report']").await;
    let row = text_of(&c, "#folder-table tbody tr").await;
    assert!(
        row.contains("night.csv") && row.contains("done") && row.contains("10 rows: 10 accepted"),
        "{row}"
    );
    assert!(done.join("night.csv").is_file());
    screenshot(&c, "folders.png").await;
    c.close().await.unwrap();
}

/// Signs in at the desk's form as `name`.
async fn sign_in(c: &Client, url: &str, name: &str, password: &str) {
    c.goto(url).await.unwrap();
    arrive(c, "form.login").await;
    c.find(Locator::Css("#name"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    c.find(Locator::Css("#password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::XPath("//button[normalize-space()='Sign in']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(c, "#me").await;
    assert!(text_of(c, "#me").await.contains(name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maker_asks_a_checker_in_another_browser_approves_and_the_orders_go_once() {
    let Some((_driver, port)) = driver_or_skip() else {
        return;
    };
    let env = common::Desk::new();
    let password = "a long password 1";
    for (name, roles) in [("asha", "maker"), ("ravi", "checker")] {
        env.add_user(name, roles, password);
    }
    let config = env.write(
        "config.toml",
        "[profiles.foureyes]\napproval = \"required\"\n",
    );
    // The sandbox's client blocks: made, asked and dropped off the runtime.
    let sb = tokio::task::block_in_place(|| common::SandboxProcess::start(&[]));
    let kept = tempfile::tempdir().unwrap();
    let (_desk, url) = desk_in(
        env,
        kept.path(),
        &[
            "--base-url",
            &sb.base,
            "--tenant",
            "ACME",
            "--config",
            config.to_str().unwrap(),
            "--profile",
            "foureyes",
        ],
    );

    // The maker signs in, drops the sheet and asks.
    let maker = browser(port).await;
    sign_in(&maker, &url, "asha", password).await;
    screenshot(&maker, "signed-in.png").await;
    choose_sheet(&maker, &root().join("samples/orders.csv")).await;
    arrive(&maker, "#ask-button").await;
    assert!(maker.find(Locator::Css("#send-button")).await.is_err());
    maker
        .find(Locator::Css("#ask-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(&maker, "#approval-state").await;
    assert!(
        text_of(&maker, "#approval-state")
            .await
            .contains("waiting for a checker")
    );
    let sheet = maker.current_url().await.unwrap();

    // Her own approval: no button, and a request made by hand is refused.
    maker.goto(&format!("{url}approvals/1")).await.unwrap();
    arrive(&maker, "#approval-state").await;
    assert!(maker.find(Locator::Css("#approve-button")).await.is_err());
    let status = maker
        .execute(
            "const t = document.querySelector('input[name=csrf]').value; \
             return fetch('/approvals/1/approve', {method: 'POST', \
               headers: {'Content-Type': 'application/x-www-form-urlencoded'}, \
               body: 'csrf=' + t}).then(r => r.status);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, serde_json::json!(403));

    // The checker, in another browser, approves: the desk sends it.
    let checker = browser(port).await;
    sign_in(&checker, &url, "ravi", password).await;
    checker.goto(&format!("{url}approvals")).await.unwrap();
    arrive(&checker, "table#approvals").await;
    checker
        .find(Locator::LinkText("#1"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(&checker, "#approve-button").await;
    screenshot(&checker, "approval.png").await;
    checker
        .find(Locator::Css("#approve-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    arrive(&checker, "#approval-state").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !text_of(&checker, "#approval-state")
        .await
        .starts_with("sent")
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
        checker.refresh().await.unwrap();
        arrive(&checker, "#approval-state").await;
    }

    // The maker sees it sent, once.
    maker.goto(sheet.as_str()).await.unwrap();
    arrive(&maker, "#run-summary").await;
    let summary = text_of(&maker, "#run-summary").await;
    assert!(summary.starts_with("10 rows: 10 accepted"), "{summary}");
    let orders =
        tokio::task::block_in_place(|| sb.inspect("/stats"))["tenants"]["ACME"]["orders"].clone();
    assert_eq!(orders, 4);
    screenshot(&maker, "approved-and-sent.png").await;
    maker.close().await.unwrap();
    checker.close().await.unwrap();
    tokio::task::block_in_place(move || drop(sb));
}
