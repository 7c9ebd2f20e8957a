//! Told when it ends: notices of a run's end to a webhook (a receiver on
//! loopback, one that fails twice first, and one that is not there) and by
//! e-mail (an SMTP server started here: a real exchange, with STARTTLS and
//! a login), through the real binary against the sandbox.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use dcms_bulk::exit;
use serde_json::Value;

/// An HTTP receiver on loopback that answers 500 to its first `fail`
/// requests, then 200; the bodies it was sent.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    fn start(fail: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/hooks/T0/SECRET-PART",
            listener.local_addr().unwrap()
        );
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let body = read_request(&stream);
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(body);
                    seen.len()
                };
                let status = if n <= fail {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
            }
        });
        Receiver { url, bodies }
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

/// An HTTP request's body.
fn read_request(stream: &TcpStream) -> String {
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    String::from_utf8_lossy(&body).into_owned()
}

/// A config file whose profile `p` sends to the sandbox and notifies as
/// `notify` (TOML lines) says.
fn config(desk: &Desk, base: &str, notify: &str) -> String {
    desk.write(
        "config.toml",
        &format!(
            "[profiles.p]\nbase_url = \"{base}\"\ntenant = \"ACME\"\n[profiles.p.notify]\n{notify}\n"
        ),
    )
    .display()
    .to_string()
}

/// A sheet of three orders, one of them with a row the branch must fix.
fn sheet(desk: &Desk, name: &str) -> std::path::PathBuf {
    desk.write(
        name,
        &format!(
            "{HEADER}\n{}\n{}\n{}\n",
            row("00101", "P1", "10"),
            row("00102", "P1", "10"),
            row("00103", "P1", "ten")
        ),
    )
}

#[test]
fn a_webhook_that_fails_twice_gets_the_notice_on_the_third_try() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let hook = Receiver::start(2);
    let url_file = desk.write("hook.url", &format!("{}\n", hook.url));
    let cfg = config(
        &desk,
        &sb.base,
        &format!("webhook_url_file = \"{}\"", url_file.display()),
    );
    let s = sheet(&desk, "night.csv");
    let out = desk.run(&["submit", path_str(&s), "--config", &cfg, "--profile", "p"]);
    let err = stderr(&out);
    // The run's own end, whatever the notice did.
    assert_eq!(out.status.code(), Some(exit::ROWS_NOT_DONE), "{err}");
    assert!(
        err.contains("notice sent to the webhook at 127.0.0.1"),
        "{err}"
    );
    assert!(
        !err.contains("SECRET-PART"),
        "the URL's secret never shows: {err}"
    );
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 3, "two failures, then delivered: {bodies:?}");
    let notice: Value = serde_json::from_str(&bodies[2]).unwrap();
    assert_eq!(notice["needs_attention"], 1, "{notice}");
    assert_eq!(notice["outcomes"][0]["outcome"], "needs-attention");
    assert!(
        notice["outcomes"][0]["to_fix"]
            .as_str()
            .unwrap()
            .ends_with("night.to-fix.csv"),
        "{notice}"
    );
    let text = notice["text"].as_str().unwrap();
    assert!(
        text.contains("needs attention: 1 of 3 rows need a person: 1 invalid"),
        "{text}"
    );
    assert!(text.contains("night.report.csv"), "{text}");
}

#[test]
fn a_notice_that_cannot_be_delivered_is_told_and_never_fails_the_run() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = config(&desk, &sb.base, "tries = 2\ntimeout = \"2s\"");
    let s = desk.sheet("orders.csv", 2, 1);
    let started = Instant::now();
    let out = desk
        .command(&["submit", path_str(&s), "--config", &cfg, "--profile", "p"])
        .env("DCMS_WEBHOOK_URL", format!("http://127.0.0.1:{port}/hook"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(exit::OK), "{err}");
    assert!(err.contains("could not be sent"), "{err}");
    assert!(
        err.contains(&format!("connection refused by 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_watch_notifies_of_each_file_it_files_and_of_its_end() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let hook = Receiver::start(0);
    let cfg = config(&desk, &sb.base, "webhook_format = \"slack\"");
    std::fs::create_dir(desk.path("drop")).unwrap();
    std::fs::copy(sheet(&desk, "night.csv"), desk.path("drop/night.csv")).unwrap();
    let mut watch = desk
        .command(&[
            "watch",
            "drop",
            "--config",
            &cfg,
            "--profile",
            "p",
            "--settle",
            "0",
            "--poll",
            "1s",
            "--done-dir",
            "done",
            "--failed-dir",
            "failed",
        ])
        .env("DCMS_WEBHOOK_URL", &hook.url)
        .stderr(std::fs::File::create(desk.path("watch.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while hook.bodies().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = watch.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let code = watch.wait().unwrap().code();
    let log = std::fs::read_to_string(desk.path("watch.log")).unwrap();
    assert_eq!(code, Some(exit::OK), "{log}");
    let bodies: Vec<Value> = hook
        .bodies()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}\n{log}");
    // Slack's shape: the text alone.
    let first = bodies[0]["text"].as_str().unwrap();
    assert!(
        first.contains(": file: 1 file: 1 need attention"),
        "{first}"
    );
    assert!(
        first.contains("needs-attention/night.report.csv"),
        "{first}"
    );
    let last = bodies[1]["text"].as_str().unwrap();
    assert!(last.contains("the watch stopped"), "{last}");
    assert!(
        last.contains("0 done, 1 needing attention, 0 failed"),
        "{last}"
    );
}

/// A mail server on loopback that speaks enough SMTP for one e-mail:
/// STARTTLS with a certificate for `localhost` from a CA made here, then
/// a login (AUTH PLAIN), the envelope and the message. What it was told.
struct MailServer {
    port: u16,
    ca: std::path::PathBuf,
    said: Arc<Mutex<Vec<String>>>,
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

impl MailServer {
    fn start(desk: &Desk) -> MailServer {
        let pki = common::pki(&["localhost"]);
        let ca_path = desk.write("mail-ca.pem", &pki.ca_pem);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(
                    vec![pki.cert_der.clone().into()],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(pki.key_der.clone().into()),
                )
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let said = Arc::new(Mutex::new(Vec::new()));
        let log = said.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                smtp_session(stream, tls.clone(), &log);
            }
        });
        MailServer {
            port,
            ca: ca_path,
            said,
        }
    }

    fn said(&self) -> Vec<String> {
        self.said.lock().unwrap().clone()
    }
}

/// One SMTP session; each command (and the message) recorded.
fn smtp_session(tcp: TcpStream, tls: Arc<rustls::ServerConfig>, log: &Mutex<Vec<String>>) {
    let mut stream: Box<dyn Stream> = Box::new(tcp);
    let mut secure = false;
    let _ = stream.write_all(b"220 localhost ESMTP test\r\n");
    loop {
        let Some(line) = read_line(&mut stream) else {
            return;
        };
        log.lock().unwrap().push(line.clone());
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if secure => b"250-localhost\r\n250 AUTH PLAIN\r\n",
            "EHLO" => b"250-localhost\r\n250 STARTTLS\r\n",
            "STARTTLS" => {
                let _ = stream.write_all(b"220 go ahead\r\n");
                let conn = rustls::ServerConnection::new(tls.clone()).unwrap();
                stream = Box::new(rustls::StreamOwned::new(conn, stream));
                secure = true;
                continue;
            }
            "AUTH" if secure => b"235 2.7.0 authenticated\r\n",
            "MAIL" | "RCPT" => b"250 OK\r\n",
            "DATA" => {
                let _ = stream.write_all(b"354 go on\r\n");
                let mut message = String::new();
                while let Some(l) = read_line(&mut stream) {
                    if l == "." {
                        break;
                    }
                    message += &l;
                    message.push('\n');
                }
                log.lock().unwrap().push(message);
                b"250 queued\r\n"
            }
            "QUIT" => {
                let _ = stream.write_all(b"221 bye\r\n");
                return;
            }
            _ => b"502 not here\r\n",
        };
        if stream.write_all(reply).is_err() {
            return;
        }
    }
}

/// A line of the session, without its CRLF; `None` at its end.
fn read_line(stream: &mut Box<dyn Stream>) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8];
    loop {
        match stream.read(&mut byte) {
            Ok(1) => {
                if byte[0] == b'\n' {
                    break;
                }
                line.push(byte[0]);
            }
            _ => return None,
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Some(String::from_utf8_lossy(&line).into_owned())
}

#[test]
fn an_email_goes_over_starttls_with_a_login_and_the_reports_attached() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let mail = MailServer::start(&desk);
    let password = desk.write("smtp.pw", "mail-s3cret\n");
    let cfg = config(
        &desk,
        &sb.base,
        &format!(
            "smtp_host = \"localhost\"\nsmtp_port = {}\nsmtp_ca_file = \"{}\"\nsmtp_username = \"dcms\"\nsmtp_password_file = \"{}\"\nemail_from = \"dcms-bulk@bank.test\"\nemail_to = [\"ops@bank.test\"]",
            mail.port,
            mail.ca.display(),
            password.display()
        ),
    );
    let s = sheet(&desk, "night.csv");
    let out = desk.run(&["submit", path_str(&s), "--config", &cfg, "--profile", "p"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(exit::ROWS_NOT_DONE), "{err}");
    assert!(
        err.contains("notice sent to e-mail to ops@bank.test via localhost"),
        "{err}"
    );
    assert!(!err.contains("mail-s3cret"), "{err}");
    let said = mail.said();
    let verbs: Vec<String> = said
        .iter()
        .map(|l| l.split(' ').next().unwrap_or("").to_ascii_uppercase())
        .collect();
    let at = |v: &str| {
        verbs
            .iter()
            .position(|x| x == v)
            .unwrap_or_else(|| panic!("{v}: {said:?}"))
    };
    // The login only after STARTTLS.
    assert!(at("STARTTLS") < at("AUTH"), "{said:?}");
    assert!(
        said.iter()
            .any(|l| l.starts_with("RCPT TO:<ops@bank.test>")),
        "{said:?}"
    );
    let message = said
        .iter()
        .find(|l| l.contains("Subject:"))
        .unwrap_or_else(|| panic!("no message: {said:?}"));
    assert!(message.contains("Subject: dcms-bulk on "), "{message}");
    assert!(message.contains("1 need attention"), "{message}");
    assert!(
        message.contains("filename=\"night.report.csv\""),
        "{message}"
    );
    assert!(
        message.contains("filename=\"night.to-fix.csv\""),
        "{message}"
    );
}

#[test]
fn notification_settings_that_cannot_work_are_refused_before_anything_is_sent() {
    let sb = SandboxProcess::start(&[]);
    let desk = Desk::new();
    let s = desk.sheet("orders.csv", 1, 1);
    for (notify, want) in [
        (
            "smtp_host = \"mail.bank.test\"\nsmtp_tls = \"none\"\nemail_to = [\"a@bank.test\"]",
            "only for a mail server on this machine",
        ),
        ("email_to = [\"a@bank.test\"]", "needs smtp_host"),
        ("summary_at = \"7 o'clock\"", "not a time of day"),
    ] {
        let cfg = config(&desk, &sb.base, notify);
        let out = desk.run(&["submit", path_str(&s), "--config", &cfg, "--profile", "p"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(exit::USAGE), "{notify}: {err}");
        assert!(err.contains(want), "{notify}: {err}");
    }
    let plain = desk.write("hook.url", "http://hooks.bank.test/x");
    let cfg = config(
        &desk,
        &sb.base,
        &format!("webhook_url_file = \"{}\"", plain.display()),
    );
    let out = desk.run(&["submit", path_str(&s), "--config", &cfg, "--profile", "p"]);
    assert_eq!(out.status.code(), Some(exit::USAGE), "{}", stderr(&out));
    assert!(stored(&sb) == 0, "nothing sent");
}

fn stored(sb: &SandboxProcess) -> usize {
    sb.inspect("/tenants/ACME/orders")
        .as_array()
        .map_or(0, Vec::len)
}
