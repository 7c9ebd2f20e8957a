//! What comes back from a call, and the words for it: the answer (HTTP
//! status, envelope or a description of another body, request ids), the
//! failure of a call that got none, the secret a call carries, and how
//! bodies and transport errors are put into one line. Shared by the client
//! and the login below it.

use std::time::Duration;

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
    /// The `X-Request-Id` sent with the call.
    pub request_id: String,
    /// The request id the API answered with, if any.
    pub answer_request_id: Option<String>,
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
    /// The login was refused: the call was not made.
    Refused,
}

/// A request that got no HTTP answer.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub latency: Duration,
    /// The `X-Request-Id` of the call, if it was made.
    pub request_id: Option<String>,
}

/// The body as a DCMS envelope: a JSON object with a `result` or an
/// `exception` member. Any other JSON (a gateway's problem document) is not
/// one, even though every member of the envelope is optional.
pub(super) fn envelope(bytes: &[u8]) -> Option<Envelope<Value>> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let obj = value.as_object()?;
    if !obj.contains_key("result") && !obj.contains_key("exception") {
        return None;
    }
    serde_json::from_value(value).ok()
}

/// What a body that is not a DCMS envelope says, in one line of at most
/// 200 characters: a problem document's `title` and `detail` (RFC 9457,
/// as Spring gateways send), another JSON error's `error` and `message`,
/// an HTML page's title, or the first line of text.
pub fn describe_body(content_type: &str, bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
    let said = if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&text) {
        let get = |k: &str| match m.get(k) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            _ => None,
        };
        let parts: Vec<String> = [
            get("title").or_else(|| get("error")),
            get("detail")
                .or_else(|| get("message"))
                .or_else(|| get("error_description")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            Value::Object(m).to_string()
        } else {
            parts.join(": ")
        }
    } else if content_type.contains("html") || text.trim_start().starts_with('<') {
        html_title(&text).unwrap_or_else(|| first_line(&strip_tags(&text)))
    } else {
        first_line(&text)
    };
    let said = said.trim();
    let mut out: String = said.chars().take(200).collect();
    if out.len() < said.len() {
        out.push('…');
    }
    if out.is_empty() {
        out = "(empty body)".into();
    }
    out
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_owned()
}

fn html_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let end = open_end + lower[open_end..].find("</title")?;
    let title = html
        .get(open_end..end)?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!title.is_empty()).then_some(title)
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// A reqwest error in words an operator can act on, naming the host and
/// port (connection refused, a TLS handshake that failed, a host not
/// found, no answer in time), then its innermost cause; never the URL's
/// query (none is used) or a header.
pub fn describe_error(e: &reqwest::Error) -> String {
    describe_error_of(
        e,
        "the API is down, or the base URL's host or port is wrong",
    )
}

/// [`describe_error`], with what a refused connection may mean.
pub fn describe_error_of(e: &reqwest::Error, refused_means: &str) -> String {
    let host = e
        .url()
        .and_then(|u| u.host_str())
        .unwrap_or("the API's host")
        .to_owned();
    let at = match e.url().and_then(|u| u.port_or_known_default()) {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    let mut io_kind = None;
    let mut tls = None;
    let mut dns = false;
    let mut innermost = None;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
            if let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                tls = Some(t.to_string());
            }
        }
        if let Some(t) = s.downcast_ref::<rustls::Error>() {
            tls = Some(t.to_string());
        }
        let text = s.to_string();
        dns |= text.contains("dns error") || text.contains("failed to lookup address");
        innermost = Some(text);
        source = s.source();
    }
    use std::io::ErrorKind;
    let what = if let Some(tls) = tls {
        format!("the TLS handshake with {at} failed ({tls})")
    } else if io_kind == Some(ErrorKind::ConnectionRefused) {
        format!("connection refused by {at}: nothing answers there ({refused_means})")
    } else if dns {
        format!("cannot find the host {host} (DNS)")
    } else if e.is_timeout() {
        format!("no answer from {at} in time (timeout)")
    } else if e.is_connect() {
        format!("cannot connect to {at}")
    } else if matches!(
        io_kind,
        Some(ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::UnexpectedEof)
    ) {
        format!("the connection to {at} was cut")
    } else {
        format!("the connection to {at} failed")
    };
    match innermost {
        Some(cause) if !what.contains(&cause) => format!("{what}; {cause}"),
        _ => what,
    }
}
