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

/// The largest answer read; a DCMS answer is a few kilobytes.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

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
            // A redirect is a misconfigured base URL, and following one
            // could carry the token to another host: never follow.
            .redirect(reqwest::redirect::Policy::none())
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
        let mut response = req.send().await.map_err(|e| failed(e, started))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
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
                });
            }
            bytes.extend_from_slice(&chunk);
        }
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

    fn client_for(server: &wiremock::MockServer) -> Client {
        Client::new(&ClientOpts {
            base_url: Url::parse(&format!("{}/v1", server.uri())).unwrap(),
            tenant: "ACME".into(),
            token: Some(Secret::new("t0k")),
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
