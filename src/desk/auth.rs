//! Who is at the desk, and what they may do. With users in the access
//! database everyone signs in (the desk's own form, or a header set by a
//! trusted reverse proxy); a session is a random id in a cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` under TLS), renewed at sign-in,
//! ended at sign-out, after a while idle and after a longest time, and at
//! once when its user is disabled. Failed sign-ins are throttled per name
//! and per address, and answered the same for an unknown name and a wrong
//! password. Without users the desk is one person's, on this machine.
//!
//! Every request's need ([`need`]) is checked here, on the server, against
//! the roles the user holds now: a page that hides a button is not what
//! keeps its request out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};

use super::lock;
use crate::access::{Access, Actor, Role};

/// How the desk knows its users.
#[derive(Clone, Debug)]
pub struct AuthOpts {
    /// A session ends after this long without a request.
    pub idle: Duration,
    /// A session ends this long after sign-in, whatever it does.
    pub longest: Duration,
    /// The desk is served over TLS (its cookie is `Secure`).
    pub tls: bool,
    /// Reverse proxies whose user header is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// The header those proxies name the user in.
    pub user_header: Option<String>,
}

impl Default for AuthOpts {
    fn default() -> Self {
        AuthOpts {
            idle: Duration::from_secs(15 * 60),
            longest: Duration::from_secs(8 * 3600),
            tls: false,
            trusted_proxies: Vec::new(),
            user_header: None,
        }
    }
}

/// The session cookie's name.
pub const COOKIE: &str = "dcms_session";

/// Failed sign-ins for one name, and from one address (an office may sit
/// behind one), within [`THROTTLE_WINDOW`] after which more are refused
/// until the oldest ages out.
const THROTTLE_AFTER: usize = 5;
const THROTTLE_AFTER_FROM_ADDRESS: usize = 20;
const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The failed sign-ins of this desk (the sessions themselves are in the
/// access database, which every desk in front of it shares).
#[derive(Default)]
pub struct Sessions {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

/// Someone at the desk: who, with which roles, the token their forms
/// carry, and where from.
#[derive(Clone, Debug)]
pub struct Who {
    pub name: String,
    pub roles: Vec<Role>,
    pub csrf: String,
    pub origin: String,
    /// A signed-in user (else the desk has no users: one person's, on
    /// this machine).
    pub signed_in: bool,
    /// Signed in by the desk's form (not a proxy's header): can sign out.
    pub session: bool,
}

impl Who {
    /// No one (the sign-in page).
    pub fn nobody() -> Who {
        Who {
            name: String::new(),
            roles: Vec::new(),
            csrf: String::new(),
            origin: String::new(),
            signed_in: false,
            session: false,
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// A maker (for the pages).
    pub fn has_maker(&self) -> bool {
        self.has(Role::Maker)
    }

    /// An admin (for the pages).
    pub fn has_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// May do what `need` asks.
    pub fn may(&self, need: Need) -> bool {
        match need {
            Need::Public | Need::Read => true,
            Need::Role(role) => self.has(role),
            Need::Nobody => false,
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            name: self.name.clone(),
            origin: self.origin.clone(),
        }
    }

    /// `maker, checker`.
    pub fn role_names(&self) -> String {
        self.roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = axum::response::Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Who>().cloned().ok_or_else(|| {
            axum::response::IntoResponse::into_response((
                StatusCode::UNAUTHORIZED,
                "Sign in first.",
            ))
        })
    }
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone, signed in or not (the sign-in page, the desk's files).
    Public,
    /// Anyone signed in: reading changes nothing.
    Read,
    Role(Role),
    /// No such change.
    Nobody,
}

/// What `method path` needs. Reading needs a user; each change names the
/// role it takes; a change not listed is refused.
pub fn need(method: &Method, path: &str) -> Need {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    if path == "/login" || path.starts_with("/assets/") {
        return Need::Public;
    }
    if matches!(*method, Method::GET | Method::HEAD) {
        return Need::Read;
    }
    match parts.as_slice() {
        // Checking an uploaded report changes nothing.
        ["verify"] | ["logout"] => Need::Read,
        ["sheets"] => Need::Role(Role::Maker),
        [
            "sheets",
            _,
            "cells" | "replace" | "undo" | "close" | "send" | "ask",
        ] => Need::Role(Role::Maker),
        ["sheets", _, "rows", _] => Need::Role(Role::Maker),
        ["approvals", _, "approve" | "reject"] => Need::Role(Role::Checker),
        ["users"] | ["users", _, "roles" | "disable" | "enable"] => Need::Role(Role::Admin),
        _ => Need::Nobody,
    }
}

impl Sessions {
    /// Who sends `headers` from `peer`: a trusted proxy's user, a live
    /// session's user (as the database has them now), or no one.
    pub fn who(
        &self,
        access: &Access,
        opts: &AuthOpts,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Result<Option<Who>, String> {
        let origin = peer.ip().to_string();
        let proxied = opts
            .user_header
            .as_deref()
            .filter(|_| opts.trusted_proxies.contains(&peer.ip()))
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let text = |e: crate::access::AccessError| e.to_string();
        let (name, csrf, session) = match proxied {
            Some(name) => (name.to_owned(), None, false),
            None => {
                let Some(id) = cookie(headers, COOKIE) else {
                    return Ok(None);
                };
                match access.session(&id, opts.idle, opts.longest).map_err(text)? {
                    Some((name, csrf)) => (name, Some(csrf), true),
                    None => return Ok(None),
                }
            }
        };
        let user = access.user(&name).map_err(text)?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            // Disabled (or gone): every session of theirs ends now.
            access.sessions_end_of(&name).map_err(text)?;
            return Ok(None);
        };
        let csrf = match csrf {
            Some(csrf) => csrf,
            None => access.proxied_session(&name).map_err(text)?,
        };
        Ok(Some(Who {
            name: user.name,
            roles: user.roles,
            csrf,
            origin,
            signed_in: true,
            session,
        }))
    }

    /// Whether sign-ins for `name` or from `addr` are held back now, and
    /// for how long.
    pub fn throttled(&self, name: &str, addr: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        let mut wait = None::<Duration>;
        for (key, most) in [
            (format!("user:{name}"), THROTTLE_AFTER),
            (format!("addr:{addr}"), THROTTLE_AFTER_FROM_ADDRESS),
        ] {
            let times = failures.entry(key).or_default();
            times.retain(|t| now - *t < THROTTLE_WINDOW);
            if times.len() >= most {
                let free = THROTTLE_WINDOW - (now - times[times.len() - most]);
                wait = Some(wait.map_or(free, |w| w.max(free)));
            }
        }
        wait
    }

    /// A failed sign-in for `name` from `addr`.
    pub fn failed(&self, name: &str, addr: &str) {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        for key in [format!("user:{name}"), format!("addr:{addr}")] {
            failures.entry(key).or_default().push(now);
        }
    }
}

/// The value of cookie `name` in `headers`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The `Set-Cookie` value of session `id` (an empty id ends it).
pub fn set_cookie(id: &str, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    let age = if id.is_empty() { "; Max-Age=0" } else { "" };
    format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}{age}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_names_its_role_and_others_are_refused() {
        let post = Method::POST;
        assert_eq!(need(&post, "/sheets"), Need::Role(Role::Maker));
        assert_eq!(need(&post, "/sheets/3/cells"), Need::Role(Role::Maker));
        assert_eq!(need(&post, "/sheets/3/rows/7"), Need::Role(Role::Maker));
        assert_eq!(
            need(&post, "/approvals/2/approve"),
            Need::Role(Role::Checker)
        );
        assert_eq!(need(&post, "/verify"), Need::Read);
        assert_eq!(need(&post, "/login"), Need::Public);
        assert_eq!(need(&post, "/sheets/3/anything"), Need::Nobody);
        assert_eq!(need(&Method::DELETE, "/sheets/3"), Need::Nobody);
        assert_eq!(need(&Method::GET, "/runs"), Need::Read);
        assert_eq!(need(&Method::GET, "/assets/desk.js"), Need::Public);
    }

    #[test]
    fn failed_sign_ins_are_held_back_per_name_and_per_address() {
        let s = Sessions::default();
        for _ in 0..THROTTLE_AFTER {
            assert!(s.throttled("asha", "10.0.0.1").is_none());
            s.failed("asha", "10.0.0.1");
        }
        assert!(s.throttled("asha", "10.0.0.2").is_some(), "per name");
        assert!(s.throttled("ravi", "10.0.0.1").is_none());
        for n in THROTTLE_AFTER..THROTTLE_AFTER_FROM_ADDRESS {
            s.failed(&format!("user{n}"), "10.0.0.1");
        }
        assert!(s.throttled("ravi", "10.0.0.1").is_some(), "per address");
        assert!(s.throttled("ravi", "10.0.0.2").is_none());
    }
}
