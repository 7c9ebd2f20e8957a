//! The HTTP client of the DCMS API: reqwest with rustls and connection
//! reuse, the `tenant` header and the bearer token on every call, timeouts,
//! and an answer read into the documented envelope. It sends one request
//! and says what came back; retrying and deciding what an answer means is
//! the submit stage's business.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::Serialize;
use serde_json::Value;

use super::Envelope;

/// A token: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(token: impl Into<String>) -> Secret {
        Secret(token.into())
    }

    /// The token itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// How to reach the API.
#[derive(Debug, Clone)]
pub struct ClientOpts {
    /// `https://host/v1`; the endpoint paths are appended.
    pub base_url: Url,
    pub tenant: String,
    pub token: Option<Secret>,
    pub connect_timeout: Duration,
    /// Whole request, answer included.
    pub timeout: Duration,
}

/// Checks a base URL: https anywhere, plain http only to this machine
/// unless `allow_http` says the user really means it.
pub fn check_base_url(text: &str, allow_http: bool) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => return Err(format!("`{text}` has no host")),
    };
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

/// An answer with an HTTP status.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// The envelope, when the body is one.
    pub envelope: Option<Envelope<Value>>,
    /// The start of a body that is not an envelope (a proxy's error page).
    pub other_body: Option<String>,
    pub retry_after: Option<Duration>,
    pub latency: Duration,
}

/// What kind of transport failure, which decides whether the request may
/// have reached the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection was made: the request was certainly not processed.
    Connect,
    /// No answer in time: the request may have been processed.
    Timeout,
    /// The connection broke (closed with no answer, reset...): the request
    /// may have been processed.
    Broken,
}

/// A request that got no HTTP answer.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub latency: Duration,
}

/// The API client; cheap to share between workers.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    tenant: HeaderValue,
    auth: Option<HeaderValue>,
}

impl Client {
    pub fn new(opts: &ClientOpts) -> Result<Client, String> {
        // reqwest is built without a crypto provider; ring is ours. A second
        // call finds it installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("dcms-bulk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let tenant = HeaderValue::from_str(&opts.tenant)
            .map_err(|_| format!("tenant `{}` cannot be sent as a header", opts.tenant))?;
        let auth = match &opts.token {
            None => None,
            Some(t) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose()))
                    .map_err(|_| "the token holds characters a header cannot carry".to_string())?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        Ok(Client {
            http,
            base: opts.base_url.as_str().trim_end_matches('/').to_owned(),
            tenant,
            auth,
        })
    }

    /// `POST {base}{path}` with a JSON body.
    pub async fn post<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Answer, Failure> {
        let started = Instant::now();
        let body = serde_json::to_vec(body).map_err(|e| Failure {
            kind: FailureKind::Connect,
            message: format!("cannot encode the request: {e}"),
            latency: Duration::ZERO,
        })?;
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("tenant", self.tenant.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(auth) = &self.auth {
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
            message: describe(&e),
            latency: started.elapsed(),
        };
        let response = req.send().await.map_err(|e| failed(e, started))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(|e| failed(e, started))?;
        let latency = started.elapsed();
        let (envelope, other_body) = match serde_json::from_slice::<Envelope<Value>>(&bytes) {
            Ok(env) => (Some(env), None),
            Err(_) => {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
                (None, Some(text))
            }
        };
        Ok(Answer {
            status,
            envelope,
            other_body,
            retry_after,
            latency,
        })
    }
}

/// A reqwest error with its causes, without the URL's query (none is used)
/// and never a header.
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the connection failed"
    };
    let mut text = what.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
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

    #[test]
    fn a_secret_never_shows() {
        let s = Secret::new("abc123");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        let opts = ClientOpts {
            base_url: Url::parse("https://example.com/v1").unwrap(),
            tenant: "ACME".into(),
            token: Some(s),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{opts:?}").contains("abc123"));
        let client = Client::new(&opts).unwrap();
        assert!(!format!("{client:?}").contains("abc123"));
    }
}
