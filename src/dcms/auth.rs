//! Who we are to the API: nobody, a fixed bearer token, or a login. A
//! login is `POST /api/authenticate` with `{username, password}`, answered
//! with `{id_token}`, a JWT sent as `Authorization: Bearer`. Its token is
//! renewed shortly before it expires (from the JWT's `exp` when it can be
//! read) and after a 401, one login at a time for every worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde_json::Value;

use super::wire::{Failure, FailureKind, MAX_ANSWER_BYTES, Secret, describe_body, describe_error};

/// How the tool proves who it is.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A token given as it is; never renewed.
    Token(Secret),
    /// A user and password to log in with at `url`.
    Login {
        url: Url,
        username: String,
        password: Secret,
    },
}

/// A bearer header and the number of the login that gave it (0: a fixed
/// token), so a worker refused with it can ask for a newer one.
pub(super) type Bearer = Option<(HeaderValue, u64)>;

/// The credentials in use.
#[derive(Debug)]
pub(super) enum Auth {
    None,
    Fixed(HeaderValue),
    Login(Box<Login>),
}

#[derive(Debug)]
pub(super) struct Login {
    url: Url,
    username: String,
    password: Secret,
    current: tokio::sync::Mutex<Option<Token>>,
    logins: AtomicU64,
}

#[derive(Debug, Clone)]
struct Token {
    header: HeaderValue,
    serial: u64,
    /// Renewed from this moment on; `None`: only after a 401.
    renew_at: Option<Instant>,
    lifetime: Option<Duration>,
}

impl Auth {
    pub(super) fn new(credentials: Option<&Credentials>) -> Result<Auth, String> {
        Ok(match credentials {
            None => Auth::None,
            Some(Credentials::Token(t)) => Auth::Fixed(bearer(t.expose())?),
            Some(Credentials::Login {
                url,
                username,
                password,
            }) => Auth::Login(Box::new(Login {
                url: url.clone(),
                username: username.clone(),
                password: password.clone(),
                current: tokio::sync::Mutex::new(None),
                logins: AtomicU64::new(0),
            })),
        })
    }

    /// The header for the next call, logging in first when no token is
    /// held or it is about to expire.
    pub(super) async fn bearer(
        &self,
        http: &reqwest::Client,
        tenant: &HeaderValue,
    ) -> Result<Bearer, Failure> {
        match self {
            Auth::None => Ok(None),
            Auth::Fixed(h) => Ok(Some((h.clone(), 0))),
            Auth::Login(login) => {
                let mut current = login.current.lock().await;
                if let Some(t) = current.as_ref()
                    && t.renew_at.is_none_or(|at| Instant::now() < at)
                {
                    return Ok(Some((t.header.clone(), t.serial)));
                }
                let t = login.log_in(http, tenant).await?;
                let out = (t.header.clone(), t.serial);
                *current = Some(t);
                Ok(Some(out))
            }
        }
    }

    /// After a call made with login `serial` was answered 401: a fresh
    /// token, unless another worker got one meanwhile. `None` when there is
    /// nothing to renew (no login).
    pub(super) async fn renew(
        &self,
        http: &reqwest::Client,
        tenant: &HeaderValue,
        serial: u64,
    ) -> Result<Bearer, Failure> {
        let Auth::Login(login) = self else {
            return Ok(None);
        };
        let mut current = login.current.lock().await;
        if let Some(t) = current.as_ref()
            && t.serial != serial
        {
            return Ok(Some((t.header.clone(), t.serial)));
        }
        let t = login.log_in(http, tenant).await?;
        let out = (t.header.clone(), t.serial);
        *current = Some(t);
        Ok(Some(out))
    }

    /// Logins made so far.
    pub(super) fn logins(&self) -> u64 {
        match self {
            Auth::Login(l) => l.logins.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// How long the last token was valid for, when its JWT says.
    pub(super) async fn lifetime(&self) -> Option<Duration> {
        match self {
            Auth::Login(l) => l.current.lock().await.as_ref().and_then(|t| t.lifetime),
            _ => None,
        }
    }
}

impl Login {
    async fn log_in(&self, http: &reqwest::Client, tenant: &HeaderValue) -> Result<Token, Failure> {
        let started = Instant::now();
        let serial = self.logins.fetch_add(1, Ordering::Relaxed) + 1;
        let body = serde_json::json!({
            "username": self.username,
            "password": self.password.expose(),
        });
        let url = self.url.as_str();
        // No call was made yet: whatever happens here, nothing was processed.
        let not_processed = |kind, message: String| Failure {
            kind,
            message,
            latency: started.elapsed(),
            request_id: None,
        };
        let response = http
            .post(url)
            .header("tenant", tenant.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                not_processed(
                    FailureKind::Connect,
                    format!("login at {url}: {}", describe_error(&e)),
                )
            })?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = response.bytes().await.map_err(|e| {
            not_processed(
                FailureKind::Connect,
                format!("login at {url}: {}", describe_error(&e)),
            )
        })?;
        let bytes = &bytes[..bytes.len().min(MAX_ANSWER_BYTES)];
        if !(200..300).contains(&status) {
            let said = describe_body(&content_type, bytes);
            // A refused login stops the run; a server error or rate limit
            // may pass, so it is worth another try like any failed call.
            let kind = if status >= 500 || status == 429 {
                FailureKind::Connect
            } else {
                FailureKind::Refused
            };
            return Err(not_processed(
                kind,
                format!("login at {url} refused: HTTP {status}: {said}"),
            ));
        }
        let token = id_token(bytes).ok_or_else(|| {
            not_processed(
                FailureKind::Refused,
                format!(
                    "login at {url}: HTTP {status} without an id_token: {}",
                    describe_body(&content_type, bytes)
                ),
            )
        })?;
        let header = bearer(&token).map_err(|e| not_processed(FailureKind::Refused, e))?;
        let lifetime = jwt_lifetime(&token);
        Ok(Token {
            header,
            serial,
            renew_at: lifetime.map(|l| Instant::now() + l - renew_margin(l)),
            lifetime,
        })
    }
}

/// The login answer's token: `id_token`, at the top or in `result`.
fn id_token(answer: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(answer)
        .ok()
        .and_then(|v| {
            v.get("id_token")
                .or_else(|| v.get("result").and_then(|r| r.get("id_token")))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|t| !t.is_empty())
}

fn bearer(token: &str) -> Result<HeaderValue, String> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the token holds characters a header cannot carry".to_string())?;
    v.set_sensitive(true);
    Ok(v)
}

/// How long before its end a token is renewed: a fifth of its life, at
/// most a minute.
fn renew_margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(60))
}

/// A JWT's lifetime: `exp - iat` when both are given (immune to a clock
/// that differs from the server's), else `exp` minus now. `None` when the
/// token is not a readable JWT or has no future `exp`.
pub fn jwt_lifetime(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    let from = match claims.get("iat").and_then(Value::as_f64) {
        Some(iat) => iat,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_secs_f64(),
    };
    let secs = exp - from;
    (secs > 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs.min(1e9)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &Value) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(br#"{"alg":"HS256"}"#),
            e.encode(claims.to_string())
        )
    }

    #[test]
    fn a_jwt_lifetime_is_read_from_exp_and_iat() {
        let t = jwt(&serde_json::json!({"sub": "u", "iat": 1000, "exp": 1002}));
        assert_eq!(jwt_lifetime(&t), Some(Duration::from_secs(2)));
        let expired = jwt(&serde_json::json!({"iat": 1000, "exp": 900}));
        assert_eq!(jwt_lifetime(&expired), None);
        assert_eq!(jwt_lifetime("not-a-jwt"), None);
        assert_eq!(jwt_lifetime("a.!!!.c"), None);
        assert_eq!(
            renew_margin(Duration::from_secs(2)),
            Duration::from_millis(400)
        );
        assert_eq!(
            renew_margin(Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
    }
}
