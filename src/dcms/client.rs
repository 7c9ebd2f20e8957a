//! The HTTP client of the DCMS API: reqwest with rustls and connection
//! reuse, the `tenant` header and the bearer token on every call, timeouts,
//! and an answer read into the documented envelope. It sends one request
//! and says what came back; retrying and deciding what an answer means is
//! the submit stage's business.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use serde::Serialize;

use super::auth::{Auth, Credentials};
#[cfg(test)]
use super::wire::Secret;
use super::wire::{
    Answer, Failure, FailureKind, MAX_ANSWER_BYTES, describe_body, describe_error, envelope,
};

/// How to reach the API.
#[derive(Debug, Clone)]
pub struct ClientOpts {
    /// `https://host/v1`; the endpoint paths are appended.
    pub base_url: Url,
    pub tenant: String,
    pub auth: Option<Credentials>,
    /// Extra headers sent with every call (`--header`, the profile's
    /// `headers`).
    pub headers: Vec<(String, String)>,
    pub tls: TlsOpts,
    /// `--proxy`; otherwise `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`.
    pub proxy: Option<String>,
    pub connect_timeout: Duration,
    /// Whole request, answer included.
    pub timeout: Duration,
}

/// Whom to trust and who we are on TLS. Verification is never off.
#[derive(Debug, Clone, Default)]
pub struct TlsOpts {
    /// PEM certificates trusted besides the platform's roots (a bank's
    /// private CA).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for gateways that require mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Whether the URL's host is this machine (`localhost`, `127.0.0.0/8`,
/// `::1`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Checks a base URL: https anywhere, plain http only to this machine
/// unless `allow_http` says the user really means it.
pub fn check_base_url(text: &str, allow_http: bool) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if url.host().is_none() {
        return Err(format!("`{text}` has no host"));
    }
    let loopback = is_loopback(&url);
    match url.scheme() {
        "https" => {}
        "http" if loopback || allow_http => {}
        "http" => {
            return Err(format!(
                "`{text}` is plain http to another machine: orders and tokens would travel unencrypted; use https, or pass --allow-insecure-http if you really mean it"
            ));
        }
        other => return Err(format!("`{text}`: the scheme must be https, not {other}")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the base URL must not hold a user name or password; use a token file".into());
    }
    Ok(url)
}

/// The API client; cheap to share between workers (the login too).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    tenant: HeaderValue,
    headers: HeaderMap,
    auth: Arc<Auth>,
}

/// An HTTP client for a call that is not the API's (a notification's
/// webhook): the platform's roots, no redirect followed, `timeout` for
/// the whole call.
pub fn plain_http(timeout: Duration) -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("dcms-bulk/", env!("CARGO_PKG_VERSION")));
    tls(builder, &TlsOpts::default())?
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", describe_error(&e)))
}

impl Client {
    pub fn new(opts: &ClientOpts) -> Result<Client, String> {
        // reqwest is built without a crypto provider; ring is ours. A second
        // call finds it installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            // A redirect is a misconfigured base URL, and following one
            // could carry the token to another host: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dcms-bulk/", env!("CARGO_PKG_VERSION")));
        builder = tls(builder, &opts.tls)?;
        if let Some(proxy) = &opts.proxy {
            let p = reqwest::Proxy::all(proxy)
                .map_err(|e| format!("--proxy `{proxy}`: {e}"))?
                .no_proxy(reqwest::NoProxy::from_env());
            builder = builder.proxy(p);
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", describe_error(&e)))?;
        let tenant = HeaderValue::from_str(&opts.tenant)
            .map_err(|_| format!("tenant `{}` cannot be sent as a header", opts.tenant))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &opts.headers {
            let n = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("`{name}` is not a header name"))?;
            let mut v = HeaderValue::from_str(value.trim())
                .map_err(|_| format!("the value of header `{name}` cannot be sent"))?;
            v.set_sensitive(true);
            headers.append(n, v);
        }
        Ok(Client {
            http,
            base: opts.base_url.as_str().trim_end_matches('/').to_owned(),
            tenant,
            headers,
            auth: Arc::new(Auth::new(opts.auth.as_ref())?),
        })
    }

    /// `POST {base}{path}` with a JSON body. With a login, a call answered
    /// 401 is sent once more after a fresh login: the gateway refused it,
    /// so it was not processed.
    pub async fn post<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Answer, Failure> {
        let body = serde_json::to_vec(body).map_err(|e| Failure {
            kind: FailureKind::Connect,
            message: format!("cannot encode the request: {e}"),
            latency: Duration::ZERO,
            request_id: None,
        })?;
        let bearer = self.auth.bearer(&self.http, &self.tenant).await?;
        let answer = self.send(path, &body, bearer.as_ref()).await?;
        if answer.status == 401
            && let Some((_, serial)) = bearer
            && serial > 0
        {
            let fresh = self.auth.renew(&self.http, &self.tenant, serial).await?;
            return self.send(path, &body, fresh.as_ref()).await;
        }
        Ok(answer)
    }

    /// Logs in now, if the credentials are a login; `Ok(false)` when they
    /// are not.
    pub async fn log_in(&self) -> Result<bool, Failure> {
        let bearer = self.auth.bearer(&self.http, &self.tenant).await?;
        Ok(bearer.is_some_and(|(_, serial)| serial > 0))
    }

    /// Logins made so far (0 without a login).
    pub fn logins(&self) -> u64 {
        self.auth.logins()
    }

    /// How long the login's token lives, when its JWT says.
    pub async fn token_lifetime(&self) -> Option<Duration> {
        self.auth.lifetime().await
    }

    /// One call, with a fresh request id.
    async fn send(
        &self,
        path: &str,
        body: &[u8],
        bearer: Option<&(HeaderValue, u64)>,
    ) -> Result<Answer, Failure> {
        let started = Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .headers(self.headers.clone())
            .header("tenant", self.tenant.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(REQUEST_ID, request_id.as_str())
            .body(body.to_vec());
        if let Some((auth, _)) = bearer {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let failed = |e: reqwest::Error, started: Instant| Failure {
            kind: if e.is_connect() {
                FailureKind::Connect
            } else if e.is_timeout() {
                FailureKind::Timeout
            } else {
                FailureKind::Broken
            },
            message: describe_error(&e),
            latency: started.elapsed(),
            request_id: Some(request_id.clone()),
        };
        let mut response = req.send().await.map_err(|e| failed(e, started))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
        };
        let retry_after = header(RETRY_AFTER.as_str()).and_then(|v| retry_after(&v));
        let answer_request_id = header(REQUEST_ID).filter(|v| !v.is_empty());
        let content_type = header(CONTENT_TYPE.as_str()).unwrap_or_default();
        // A broken or hostile server must not fill our memory.
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| failed(e, started))? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Failure {
                    kind: FailureKind::Broken,
                    message: format!(
                        "the answer is larger than {} MiB; it was not read",
                        MAX_ANSWER_BYTES >> 20
                    ),
                    latency: started.elapsed(),
                    request_id: Some(request_id),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        let latency = started.elapsed();
        let (envelope, other_body) = match envelope(&bytes) {
            Some(env) => (Some(env), None),
            None => (None, Some(describe_body(&content_type, &bytes))),
        };
        Ok(Answer {
            status,
            envelope,
            other_body,
            retry_after,
            latency,
            request_id,
            answer_request_id,
        })
    }
}

/// The header that names a call, for support tickets.
const REQUEST_ID: &str = "x-request-id";

/// `Retry-After`: seconds, or an HTTP date (how long from now; zero if
/// past).
fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The platform's roots plus `--ca-file`, or bundled public roots when the
/// platform has none (a bare container); a client certificate when given.
fn tls(
    mut builder: reqwest::ClientBuilder,
    opts: &TlsOpts,
) -> Result<reqwest::ClientBuilder, String> {
    let mut extra = Vec::new();
    if let Some(path) = &opts.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--ca-file {}: no PEM certificate in it",
                path.display()
            ));
        }
        extra.extend(certs);
    }
    if platform_has_roots() {
        if !extra.is_empty() {
            builder = builder.tls_certs_merge(extra);
        }
    } else {
        let bundled = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .filter_map(|c| reqwest::Certificate::from_der(c.as_ref()).ok());
        builder = builder.tls_certs_only(bundled.chain(extra));
    }
    match (&opts.client_cert, &opts.client_key) {
        (None, None) => {}
        (Some(cert), key) => {
            let mut pem = std::fs::read(cert)
                .map_err(|e| format!("--client-cert {}: {e}", cert.display()))?;
            if let Some(key) = key {
                pem.push(b'\n');
                pem.extend(
                    std::fs::read(key)
                        .map_err(|e| format!("--client-key {}: {e}", key.display()))?,
                );
            }
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                format!(
                    "--client-cert {}: not a PEM certificate with its key: {e}",
                    cert.display()
                )
            })?;
            builder = builder.identity(id);
        }
        (None, Some(_)) => return Err("--client-key needs --client-cert".into()),
    }
    Ok(builder)
}

/// Whether the platform offers any root certificate.
pub fn platform_has_roots() -> bool {
    !rustls_native_certs::load_native_certs().certs.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_this_machine_unless_allowed() {
        assert!(check_base_url("https://api.example.com/v1", false).is_ok());
        assert!(check_base_url("http://127.0.0.1:8080/v1", false).is_ok());
        assert!(check_base_url("http://localhost:8080/v1", false).is_ok());
        assert!(check_base_url("http://[::1]:8080/v1", false).is_ok());
        let err = check_base_url("http://10.0.0.5/v1", false).unwrap_err();
        assert!(err.contains("--allow-insecure-http"), "{err}");
        assert!(check_base_url("http://10.0.0.5/v1", true).is_ok());
        assert!(check_base_url("ftp://example.com", true).is_err());
        assert!(check_base_url("not a url", false).is_err());
        assert!(check_base_url("https://user:pw@example.com/v1", false).is_err());
    }

    fn client_for(server: &wiremock::MockServer) -> Client {
        Client::new(&ClientOpts {
            base_url: Url::parse(&format!("{}/v1", server.uri())).unwrap(),
            tenant: "ACME".into(),
            auth: Some(Credentials::Token(Secret::new("t0k"))),
            headers: vec![("X-Channel".into(), "back-office".into())],
            tls: TlsOpts::default(),
            proxy: None,
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn it_sends_tenant_and_token_and_reads_the_envelope() {
        use wiremock::matchers::{body_json, header, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/card-order/fetchStatus"))
            .and(header("tenant", "ACME"))
            .and(header("authorization", "Bearer t0k"))
            .and(header("content-type", "application/json"))
            .and(header("x-channel", "back-office"))
            .and(wiremock::matchers::header_exists("x-request-id"))
            .and(body_json(serde_json::json!({"cardOrderId": "O1"})))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "7")
                    .set_body_json(serde_json::json!({"result": null, "exception": {"errorCode": "x"}, "pagination": null})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let answer = client_for(&server)
            .post(
                "/card-order/fetchStatus",
                &serde_json::json!({"cardOrderId": "O1"}),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, 429);
        assert_eq!(answer.retry_after, Some(Duration::from_secs(7)));
        let exception = answer.envelope.unwrap().exception.unwrap();
        assert_eq!(exception.error_code.as_deref(), Some("x"));
    }

    #[tokio::test]
    async fn a_huge_answer_is_refused_and_redirects_are_not_followed() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/huge"))
            .respond_with(
                ResponseTemplate::new(200).set_body_bytes(vec![b' '; MAX_ANSWER_BYTES + 1]),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/moved"))
            .respond_with(
                ResponseTemplate::new(302).insert_header("location", "http://example.com/steal"),
            )
            .mount(&server)
            .await;
        let client = client_for(&server);
        let huge = client
            .post("/huge", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert_eq!(huge.kind, FailureKind::Broken);
        assert!(
            huge.message.contains("larger than 4 MiB"),
            "{}",
            huge.message
        );
        let moved = client.post("/moved", &serde_json::json!({})).await.unwrap();
        assert_eq!(moved.status, 302);
        assert!(moved.envelope.is_none());
    }

    #[test]
    fn answers_that_are_not_envelopes_are_described_in_a_line() {
        let problem =
            br#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"JWT expired"}"#;
        assert_eq!(envelope(problem), None, "a problem document is no envelope");
        assert_eq!(
            describe_body("application/problem+json", problem),
            "Unauthorized: JWT expired"
        );
        let spring = br#"{"timestamp":"x","status":404,"error":"Not Found","path":"/v1/x"}"#;
        assert_eq!(describe_body("application/json", spring), "Not Found");
        let html = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>x</body></html>";
        assert_eq!(describe_body("text/html", html), "404 Not Found");
        assert_eq!(
            describe_body("text/plain", b"\n\n  Bad gateway\nmore"),
            "Bad gateway"
        );
        assert_eq!(describe_body("", b""), "(empty body)");
        assert_eq!(
            describe_body("text/plain", &[b'x'; 500]).chars().count(),
            201
        );
        // Shape B, fieldError as objects, httpStatus as a number: read.
        let b = br#"{"result":null,"exception":{"errorCode":"card.not.found","errorMessage":"No card","httpStatus":404,"fieldError":[{"field":"kitNo","message":"unknown"}]}}"#;
        let e = envelope(b).unwrap().exception.unwrap();
        assert_eq!(e.error_code.as_deref(), Some("card.not.found"));
        assert_eq!(e.error_message.as_deref(), Some("No card"));
        assert_eq!(e.field_error, ["kitNo: unknown"]);
        let null_fields = br#"{"result":null,"exception":{"errorCode":"x","fieldError":null}}"#;
        assert!(
            envelope(null_fields)
                .unwrap()
                .exception
                .unwrap()
                .field_error
                .is_empty()
        );
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
        let at = std::time::SystemTime::now() + Duration::from_secs(30);
        let wait = retry_after(&httpdate::fmt_http_date(at)).unwrap();
        assert!(
            wait > Duration::from_secs(28) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn a_secret_never_shows() {
        let s = Secret::new("abc123");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        let opts = ClientOpts {
            base_url: Url::parse("https://example.com/v1").unwrap(),
            tenant: "ACME".into(),
            auth: Some(Credentials::Token(s)),
            headers: vec![("X-Api-Key".into(), "k3y".into())],
            tls: TlsOpts::default(),
            proxy: None,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{opts:?}").contains("abc123"));
        let client = Client::new(&opts).unwrap();
        assert!(!format!("{client:?}").contains("abc123"));
    }
}
