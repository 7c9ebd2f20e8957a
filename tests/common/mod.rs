//! Helpers for running the real binary on fixture files.

#![allow(dead_code)]

pub mod pg;

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dcms-bulk"))
}

pub fn run(args: &[&str]) -> Run {
    run_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    let out = bin()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run dcms-bulk");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Log lines (stderr off a terminal) without the RFC 3339 time each one
/// starts with; panics on a line without one.
pub fn untimed(stderr: &str) -> String {
    stderr
        .lines()
        .map(|line| {
            let (time, rest) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("no time before {line:?}"));
            assert!(
                time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
                "not an RFC 3339 time before {line:?}"
            );
            format!("{rest}\n")
        })
        .collect()
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` whose name ends in `.ext`, sorted.
pub fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The header of an order sheet, and a valid row of it.
pub const HEADER: &str = "branch_id,branch_name,product_id,bin,card_type,quantity,plastic_code,pan_length,pin_generation,delivery_address,pin_code,process_start_time,validity_days,ordered_by";

pub fn row(branch: &str, product: &str, qty: &str) -> String {
    format!(
        "{branch},Pune Camp Branch,{product},412345,PHYSICAL,{qty},0001,16,Y,Flat 1~Camp~Pune~MH,411001,2026-12-01 09:00:00,365,Priya Iyer"
    )
}

/// Reads a CSV report into (header, rows).
pub fn read_report(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rdr = csv::Reader::from_path(path).expect("open report");
    let header = rdr
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let rows = rdr
        .records()
        .map(|r| r.expect("record").iter().map(String::from).collect())
        .collect();
    (header, rows)
}

pub fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

/// `dcms-bulk sandbox` run as a user would, on a free loopback port; killed
/// when dropped.
pub struct SandboxProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT/v1`
    pub base: String,
    pub http: reqwest::blocking::Client,
}

/// One answer of the sandbox.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: serde_json::Value,
}

impl Answer {
    /// `exception.errorCode`, or "" when the call succeeded.
    pub fn code(&self) -> &str {
        self.body["exception"]["errorCode"].as_str().unwrap_or("")
    }

    /// `exception.fieldError` as one string, for `contains` checks.
    pub fn field_errors(&self) -> String {
        self.body["exception"]["fieldError"].to_string()
    }
}

impl SandboxProcess {
    pub fn start(args: &[&str]) -> SandboxProcess {
        use std::io::BufRead;
        let mut child = bin()
            .args(["sandbox", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the sandbox");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the base URL");
        if line.is_empty() {
            let out = child.wait_with_output().expect("sandbox output");
            panic!(
                "the sandbox did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        SandboxProcess {
            child,
            base: line.trim().to_owned(),
            http: client(std::time::Duration::from_secs(10)),
        }
    }

    /// `http://127.0.0.1:PORT/_sandbox`
    pub fn inspect_url(&self) -> String {
        format!("{}/_sandbox", self.base.trim_end_matches("/v1"))
    }

    /// POSTs JSON text to an API path (`/card-order`) as `tenant`.
    pub fn post(&self, path: &str, tenant: Option<&str>, body: &str) -> Answer {
        self.post_with(&self.http, path, tenant, body)
            .expect("the sandbox answers")
    }

    pub fn post_with(
        &self,
        http: &reqwest::blocking::Client,
        path: &str,
        tenant: Option<&str>,
        body: &str,
    ) -> reqwest::Result<Answer> {
        let mut req = http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(t) = tenant {
            req = req.header("tenant", t);
        }
        answer(req.send()?)
    }

    /// GETs an inspection path (`/stats`) as JSON.
    pub fn inspect(&self, path: &str) -> serde_json::Value {
        self.http
            .get(format!("{}{path}", self.inspect_url()))
            .send()
            .and_then(|r| r.json())
            .expect("inspection answers")
    }

    /// `POST /_sandbox/advance` with `steps`.
    pub fn advance(&self, steps: u32) {
        let r = self
            .http
            .post(format!("{}/advance", self.inspect_url()))
            .body(format!("{{\"steps\":{steps}}}"))
            .send()
            .expect("advance");
        assert!(r.status().is_success());
    }

    /// Stops the server with SIGTERM and returns (exit code, stderr).
    #[cfg(unix)]
    pub fn terminate(mut self) -> (i32, String) {
        use std::io::Read;
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(killed.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the sandbox did not stop"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        (status.code().unwrap_or(-1), stderr)
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client(timeout: std::time::Duration) -> reqwest::blocking::Client {
    // reqwest is built with rustls and no crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .expect("http client")
}

pub fn answer(r: reqwest::blocking::Response) -> reqwest::Result<Answer> {
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = r.json()?;
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// The `POST /card-order` bodies `validate --print-orders` makes of a sheet.
pub fn printed_orders(sheet: &str) -> Vec<String> {
    let out = run(&["validate", sheet, "--print-orders", "-q"]);
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    out.stdout.lines().map(str::to_owned).collect()
}

/// A folder with sheets, its own ledger folder (`journals`) and an empty
/// HOME, where `dcms-bulk` runs with a clean environment.
pub struct Desk {
    pub dir: tempfile::TempDir,
}

impl Desk {
    pub fn new() -> Desk {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        Desk { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A sheet of `orders` orders with `products` rows each.
    pub fn sheet(&self, name: &str, orders: usize, products: usize) -> PathBuf {
        let mut text = format!("{HEADER}\n");
        for o in 0..orders {
            for p in 0..products {
                text.push_str(&row(&format!("{:05}", o + 1), &format!("P{p}"), "10"));
                text.push('\n');
            }
        }
        self.write(name, &text)
    }

    /// Adds a user of the desk with `roles` (comma-separated) and
    /// `password`, through `dcms-bulk users add --password-stdin`.
    pub fn add_user(&self, name: &str, roles: &str, password: &str) {
        use std::io::Write;
        let mut child = self
            .command(&[
                "users",
                "add",
                name,
                "--roles",
                roles,
                "--password-stdin",
                "-q",
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run dcms-bulk users add");
        writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write the password");
        assert!(
            child.wait().expect("users add").success(),
            "users add {name}"
        );
    }

    /// `dcms-bulk ARGS` with a clean environment: ledgers in this desk, no
    /// DCMS_* variables from outside, HOME here (no real config file).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = bin();
        cmd.current_dir(self.dir.path())
            .args(args)
            .env("HOME", self.path("home"))
            .env("DCMS_JOURNAL_DIR", self.path("journals"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_STATE_HOME");
        for var in [
            "DCMS_BASE_URL",
            "DCMS_TENANT",
            "DCMS_TOKEN",
            "DCMS_TOKEN_FILE",
            "DCMS_PROFILE",
            "DCMS_CONFIG",
            "DCMS_USERNAME",
            "DCMS_PASSWORD",
            "DCMS_PASSWORD_FILE",
            "DCMS_LEDGER_URL",
            "DCMS_LEDGER_PASSWORD",
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().expect("run dcms-bulk")
    }

    /// `dcms-bulk ARGS` sending to the API at `base` as tenant ACME.
    pub fn command_at(&self, base: &str, args: &[&str]) -> Command {
        let mut cmd = self.command(args);
        cmd.args(["--base-url", base, "--tenant", "ACME"]);
        cmd
    }

    /// `dcms-bulk ARGS` sending to the API at `base` as tenant ACME, run.
    pub fn run_at(&self, base: &str, args: &[&str]) -> std::process::Output {
        self.command_at(base, args).output().expect("run dcms-bulk")
    }

    /// `dcms-bulk submit SHEET --base-url BASE --tenant TENANT EXTRA...`.
    pub fn submit(
        &self,
        sheet: &Path,
        base: &str,
        tenant: &str,
        extra: &[&str],
    ) -> std::process::Output {
        let sheet = sheet.to_str().expect("utf-8 path");
        let args = [
            &["submit", sheet, "--base-url", base, "--tenant", tenant],
            extra,
        ]
        .concat();
        self.run(&args)
    }
}

/// Report rows as maps of column → value.
pub fn report_rows(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let (header, rows) = read_report(path);
    rows.into_iter()
        .map(|r| header.iter().cloned().zip(r).collect())
        .collect()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Checks that every worksheet of an XLSX file is well formed as Excel
/// requires: rows strictly in order, each row's cells strictly in order
/// and in that row. Panics naming the sheet and the place otherwise.
pub fn assert_well_formed_xlsx(path: &Path) {
    use quick_xml::events::Event;
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.expect("a zip entry's name").to_string())
        .filter(|n| n.starts_with("xl/worksheets/sheet") && n.ends_with(".xml"))
        .collect();
    assert!(!names.is_empty(), "{}: no worksheet", path.display());
    for name in names {
        let mut xml = String::new();
        zip.by_name(&name)
            .unwrap()
            .read_to_string(&mut xml)
            .unwrap();
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut last_row = 0u64;
        let mut last_col = 0u64;
        let attr = |e: &quick_xml::events::BytesStart<'_>, key: &str| {
            e.attributes()
                .flatten()
                .find(|a| a.key.as_ref() == key)
                .map(|a| a.value.to_string())
        };
        loop {
            match reader.read_event().unwrap() {
                Event::Start(e) | Event::Empty(e) if e.name().as_ref() == "row" => {
                    let r: u64 = attr(&e, "r")
                        .unwrap_or_else(|| panic!("{name}: a row without r"))
                        .parse()
                        .unwrap();
                    assert!(
                        r > last_row,
                        "{}: {name}: row {r} after row {last_row}",
                        path.display()
                    );
                    last_row = r;
                    last_col = 0;
                }
                Event::Start(e) | Event::Empty(e) if e.name().as_ref() == "c" => {
                    let at = attr(&e, "r").unwrap_or_else(|| panic!("{name}: a cell without r"));
                    let letters: String = at.chars().take_while(char::is_ascii_uppercase).collect();
                    let row: u64 = at[letters.len()..].parse().unwrap();
                    let col = letters
                        .bytes()
                        .fold(0u64, |n, b| n * 26 + u64::from(b - b'A' + 1));
                    assert_eq!(
                        row,
                        last_row,
                        "{}: {name}: cell {at} in row {last_row}",
                        path.display()
                    );
                    assert!(
                        col > last_col,
                        "{}: {name}: cell {at} after column {last_col}",
                        path.display()
                    );
                    last_col = col;
                }
                Event::Eof => break,
                _ => {}
            }
        }
    }
}

/// `dcms-bulk serve` on a free port of this machine (with `extra`,
/// keeping its sheets in `kept`, its ledgers and home in `env`), and the
/// URL it printed.
pub fn serve(env: &Desk, kept: &Path, extra: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = env
        .command(&["serve", "--listen", "127.0.0.1:0", "-q", "--keep-dir"])
        .arg(kept)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the desk");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the desk's URL");
    assert!(
        line.starts_with("http://127.0.0.1:") || line.starts_with("https://127.0.0.1:"),
        "{line:?}"
    );
    (child, line.trim().to_owned())
}

/// A certificate for `names`, signed by a CA made here (rcgen): the CA's
/// PEM, and the certificate and its key as PEM and DER.
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

#[allow(dead_code)]
pub fn pki(names: &[&str]) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    }
}
