//! HTTPS over loopback with a CA made here (rcgen): the sandbox serves
//! TLS, the binary trusts it only with `--ca-file`, and reaches a gateway
//! that requires a client certificate only with `--client-cert`.

mod common;

use common::{Desk, SandboxProcess, report_rows, stderr};
use dcms_bulk::exit;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

/// A CA, and certificates it signed, as PEM files in the desk.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki(desk: &Desk) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test Bank CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    server
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dcms.test.bank");
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(vec!["back-office".into()]).unwrap();
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();

    let write = |name: &str, text: String| desk.write(name, &text).display().to_string();
    Pki {
        ca: write("ca.pem", ca_cert.pem()),
        server_cert: write("server.pem", server_cert.pem()),
        server_key: write("server.key", server_key.serialize_pem()),
        client_cert: write("client.pem", client_cert.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
    }
}

fn submit(desk: &Desk, sb: &SandboxProcess, extra: &[&str]) -> std::process::Output {
    let sheet = desk.path("orders.csv");
    let mut args = vec![
        "submit",
        sheet.to_str().unwrap(),
        "--max-failures",
        "2",
        "--retries",
        "0",
    ];
    args.extend(extra);
    desk.run_at(&sb.base, &args)
}

#[test]
fn a_private_ca_is_trusted_with_ca_file_and_refused_without() {
    let desk = Desk::new();
    let pki = pki(&desk);
    desk.sheet("orders.csv", 3, 2);
    let sb = SandboxProcess::start(&["--tls-cert", &pki.server_cert, "--tls-key", &pki.server_key]);
    assert!(sb.base.starts_with("https://127.0.0.1:"), "{}", sb.base);

    let refused = submit(&desk, &sb, &[]);
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(exit::API_UNAVAILABLE), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert!(rows.iter().all(|r| r["status"] == "FAILED"));

    let trusted = submit(&desk, &sb, &["--ca-file", &pki.ca]);
    assert_eq!(
        trusted.status.code(),
        Some(exit::OK),
        "{}",
        stderr(&trusted)
    );
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert!(rows.iter().all(|r| r["status"] == "ACCEPTED"), "{rows:?}");

    // A file that holds no certificate is a usage error, named.
    let bad = desk.write("not-a-ca.pem", "hello");
    let out = submit(&desk, &sb, &["--ca-file", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(exit::USAGE), "{}", stderr(&out));
    assert!(stderr(&out).contains("not-a-ca.pem"));
}

#[test]
fn a_gateway_that_requires_a_client_certificate_is_reached_with_one() {
    let desk = Desk::new();
    let pki = pki(&desk);
    desk.sheet("orders.csv", 2, 1);
    let sb = SandboxProcess::start(&[
        "--tls-cert",
        &pki.server_cert,
        "--tls-key",
        &pki.server_key,
        "--tls-client-ca",
        &pki.ca,
    ]);
    let without = submit(&desk, &sb, &["--ca-file", &pki.ca]);
    assert_eq!(
        without.status.code(),
        Some(exit::API_UNAVAILABLE),
        "{}",
        stderr(&without)
    );
    let with = submit(
        &desk,
        &sb,
        &[
            "--ca-file",
            &pki.ca,
            "--client-cert",
            &pki.client_cert,
            "--client-key",
            &pki.client_key,
        ],
    );
    assert_eq!(with.status.code(), Some(exit::OK), "{}", stderr(&with));
    let rows = report_rows(&desk.path("orders.report.csv"));
    assert!(rows.iter().all(|r| r["status"] == "ACCEPTED"), "{rows:?}");
}

#[test]
fn doctor_shows_the_certificate_and_whether_it_is_trusted() {
    let desk = Desk::new();
    let pki = pki(&desk);
    let sb = SandboxProcess::start(&["--tls-cert", &pki.server_cert, "--tls-key", &pki.server_key]);
    let run = |extra: &[&str]| {
        let args = [&["doctor"], extra].concat();
        let out = desk.run_at(&sb.base, &args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&[]);
    assert_eq!(code, Some(exit::API_UNAVAILABLE), "{out}");
    assert!(out.contains("FAIL  tls"), "{out}");
    assert!(
        out.contains("CN=dcms.test.bank") && out.contains("CN=Test Bank CA"),
        "{out}"
    );
    assert!(out.contains("not trusted"), "{out}");

    let (code, out) = run(&["--ca-file", &pki.ca]);
    assert_eq!(code, Some(exit::OK), "{out}");
    assert!(
        out.contains("ok    tls") && out.contains("trusted by --ca-file"),
        "{out}"
    );
    assert!(out.contains("expires "), "{out}");
}
