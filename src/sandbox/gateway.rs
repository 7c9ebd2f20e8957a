//! The sandbox as a bank's gateway would stand in front of DCMS: a login
//! (`POST /api/authenticate` with `{username, password}` → `{id_token}`)
//! issuing JWT-shaped tokens that expire, and 401 answers as problem
//! documents (`application/problem+json`, `title`/`detail`), as Spring
//! gateways send them. The tokens are signed with a key made at start, so
//! only this sandbox's own tokens pass.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A user allowed to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginUser {
    pub username: String,
    pub password: String,
}

/// Issues and checks tokens.
pub struct Gateway {
    user: LoginUser,
    ttl: Duration,
    /// Tokens the client cannot read (not JWTs): it learns of their end
    /// only from a 401.
    opaque: bool,
    key: [u8; 32],
}

impl Gateway {
    pub fn new(user: LoginUser, ttl: Duration, opaque: bool, seed: u64) -> Gateway {
        let mut h = Sha256::new();
        h.update(seed.to_le_bytes());
        h.update(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
                .to_le_bytes(),
        );
        h.update(std::process::id().to_le_bytes());
        Gateway {
            user,
            ttl,
            opaque,
            key: h.finalize().into(),
        }
    }

    /// The answer to a login body: a token for the right user and
    /// password, else a 401 problem.
    pub fn log_in(&self, body: &[u8]) -> Result<String, Problem> {
        let given: Value = serde_json::from_slice(body).map_err(|_| Problem {
            status: StatusCode::BAD_REQUEST,
            title: "Bad Request",
            detail: "the body must be JSON with username and password",
        })?;
        let field = |k: &str| given.get(k).and_then(Value::as_str).unwrap_or("");
        let user_ok = same(field("username").as_bytes(), self.user.username.as_bytes());
        let password_ok = same(field("password").as_bytes(), self.user.password.as_bytes());
        if !(user_ok && password_ok) {
            return Err(Problem::unauthorized("Bad credentials"));
        }
        Ok(self.issue())
    }

    fn issue(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // Fractions of a second, so that tokens of a short life are exact.
        let iat = now.as_secs_f64();
        let claims = json!({
            "sub": self.user.username,
            "iat": iat,
            "exp": iat + self.ttl.as_secs_f64(),
            "jti": now.as_nanos().to_string(),
        });
        let head = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let jwt = format!("{head}.{}", self.sign(&head));
        if self.opaque {
            URL_SAFE_NO_PAD.encode(jwt)
        } else {
            jwt
        }
    }

    fn sign(&self, head: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(head.as_bytes());
        URL_SAFE_NO_PAD.encode(h.finalize())
    }

    /// Whether `authorization` holds a live token of ours; else the 401.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), Problem> {
        let refuse = |detail| Err(Problem::unauthorized(detail));
        let Some(token) = authorization.and_then(|v| v.strip_prefix("Bearer ")) else {
            return refuse("Full authentication is required to access this resource");
        };
        let unwrapped;
        let token = if self.opaque {
            let Some(t) = URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
            else {
                return refuse("Invalid token");
            };
            unwrapped = t;
            unwrapped.as_str()
        } else {
            token
        };
        let Some((head, sig)) = token.rsplit_once('.') else {
            return refuse("Invalid JWT");
        };
        if !same(self.sign(head).as_bytes(), sig.as_bytes()) {
            return refuse("Invalid JWT signature");
        }
        let exp = head
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|c| c.get("exp").and_then(Value::as_f64));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        match exp {
            Some(exp) if now < exp => Ok(()),
            Some(_) => refuse("JWT expired"),
            None => refuse("Invalid JWT"),
        }
    }
}

/// A refusal of the gateway's, sent as a problem document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: &'static str,
}

impl Problem {
    fn unauthorized(detail: &'static str) -> Problem {
        Problem {
            status: StatusCode::UNAUTHORIZED,
            title: "Unauthorized",
            detail,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        problem(self.status, self.title, self.detail)
    }
}

/// An RFC 9457 problem document.
pub fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// Compares without stopping at the first difference.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(ttl: Duration) -> Gateway {
        Gateway::new(
            LoginUser {
                username: "u".into(),
                password: "p".into(),
            },
            ttl,
            false,
            1,
        )
    }

    #[test]
    fn tokens_pass_until_they_expire_and_only_ours_pass() {
        let g = gateway(Duration::from_millis(300));
        let token = g.log_in(br#"{"username":"u","password":"p"}"#).unwrap();
        assert!(g.log_in(br#"{"username":"u","password":"x"}"#).is_err());
        let bearer = format!("Bearer {token}");
        assert!(g.check(Some(&bearer)).is_ok());
        assert!(crate::dcms::jwt_lifetime(&token).is_some());
        let other = gateway(Duration::from_secs(60));
        assert!(other.check(Some(&bearer)).is_err(), "another key");
        assert!(g.check(None).is_err());
        std::thread::sleep(Duration::from_millis(350));
        assert!(g.check(Some(&bearer)).is_err(), "expired");
    }
}
