//! The network steps under a call, one at a time, for `doctor`: the
//! host's addresses, a TCP connection, and the TLS handshake with the
//! certificate the server showed and which roots trust it. The handshake
//! verifies as every call does; nothing is sent over it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::client::TlsOpts;

/// The addresses of `host:port`.
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    Ok(addrs)
}

/// A TCP connection to the first address that answers, and how long it took.
pub async fn connect(
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<(tokio::net::TcpStream, SocketAddr, Duration), String> {
    let mut last = String::new();
    for addr in addrs {
        let started = Instant::now();
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok((stream, *addr, started.elapsed())),
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: no connection in {timeout:?}"),
        }
    }
    Err(last)
}

/// The server's certificate, as `doctor` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub subject: String,
    pub issuer: String,
    /// `2027-03-01`.
    pub not_after: String,
    /// Days until it expires (negative: expired).
    pub days_left: i64,
}

/// What the handshake found: the certificate (if the server showed one),
/// and which roots trust it (`Err` with why none do, or why the handshake
/// failed).
#[derive(Debug)]
pub struct TlsFound {
    pub peer: Option<Peer>,
    pub trusted: Result<String, String>,
}

/// A TLS handshake to `host` over `stream`, verifying as the client does:
/// the platform's roots (bundled public roots when it has none) plus
/// `--ca-file`, and the client certificate if one is configured.
pub async fn tls(stream: tokio::net::TcpStream, host: &str, opts: &TlsOpts) -> TlsFound {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (platform, platform_name) = platform_roots();
    let setup = client_config(opts, &platform).and_then(|(extra, config, seen)| {
        let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("{host}: {e}"))?;
        Ok((extra, config, seen, name))
    });
    let (extra, config, seen, name) = match setup {
        Ok(s) => s,
        Err(e) => {
            return TlsFound {
                peer: None,
                trusted: Err(e),
            };
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake = tokio::time::timeout(
        Duration::from_secs(15),
        connector.connect(name.clone(), stream),
    )
    .await;
    let captured = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let peer = captured.as_ref().and_then(|(end, _)| describe(end));
    let outcome = match handshake {
        Err(_) => Err("no TLS handshake in 15 s".to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(_)) => Ok(()),
    };
    let trusted = match (outcome, &captured) {
        (Err(e), _) => Err(e),
        (Ok(()), None) => Err("the server showed no certificate".into()),
        (Ok(()), Some((end, chain))) => {
            let by = |roots: &RootCertStore| {
                !roots.is_empty()
                    && WebPkiServerVerifier::builder(Arc::new(roots.clone()))
                        .build()
                        .is_ok_and(|v| {
                            v.verify_server_cert(end, chain, &name, &[], UnixTime::now())
                                .is_ok()
                        })
            };
            Ok(match (by(&platform), by(&extra)) {
                (true, _) => platform_name.to_string(),
                (false, true) => format!(
                    "--ca-file {}",
                    opts.ca_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
                (false, false) => "the platform's roots and --ca-file together".into(),
            })
        }
    };
    TlsFound { peer, trusted }
}

/// The certificate chain a server showed, as the probe captured it.
type Seen = Arc<Mutex<Option<(CertificateDer<'static>, Vec<CertificateDer<'static>>)>>>;

/// The `--ca-file` roots, and a client that trusts them and `platform`'s,
/// shows the client certificate if one is given, and captures the
/// server's chain.
fn client_config(
    opts: &TlsOpts,
    platform: &RootCertStore,
) -> Result<(RootCertStore, rustls::ClientConfig, Seen), String> {
    let extra = match &opts.ca_file {
        None => RootCertStore::empty(),
        Some(path) => roots_from(path)?,
    };
    let mut all = platform.clone();
    all.roots.extend(extra.roots.iter().cloned());
    let inner = WebPkiServerVerifier::builder(Arc::new(all))
        .build()
        .map_err(|e| format!("no roots to trust: {e}"))?;
    let seen: Seen = Arc::new(Mutex::new(None));
    let verifier = Arc::new(Capture {
        inner,
        seen: seen.clone(),
    });
    let builder = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match client_auth(opts)? {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("client certificate: {e}"))?,
    };
    Ok((extra, config, seen))
}

/// The platform's roots, or the bundled public ones when it has none.
fn platform_roots() -> (RootCertStore, &'static str) {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs().certs;
    if native.is_empty() {
        roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
        return (roots, "the bundled public roots (the platform has none)");
    }
    roots.add_parsable_certificates(native);
    (roots, "the platform's roots")
}

fn roots_from(path: &std::path::Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
    }
    Ok(roots)
}

type ClientAuth = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn client_auth(opts: &TlsOpts) -> Result<Option<ClientAuth>, String> {
    let (Some(cert), Some(key)) = (&opts.client_cert, &opts.client_key) else {
        return Ok(None);
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--client-cert {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--client-key {}: {e}", key.display()))?;
    Ok(Some((chain, key)))
}

/// Subject, issuer and expiry of a certificate.
fn describe(cert: &CertificateDer<'_>) -> Option<Peer> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let not_after = parsed.validity().not_after.timestamp();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    let date = chrono::DateTime::from_timestamp(not_after, 0)?
        .format("%Y-%m-%d")
        .to_string();
    Some(Peer {
        subject: parsed.subject().to_string(),
        issuer: parsed.issuer().to_string(),
        not_after: date,
        days_left: (not_after - now).div_euclid(86_400),
    })
}

/// A server's certificate and the intermediates it sent.
type Chain = (CertificateDer<'static>, Vec<CertificateDer<'static>>);

/// Verifies as `inner` does, keeping the certificates the server showed.
#[derive(Debug)]
struct Capture {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Option<Chain>>>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((
            end_entity.clone().into_owned(),
            intermediates
                .iter()
                .map(|c| c.clone().into_owned())
                .collect(),
        ));
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
