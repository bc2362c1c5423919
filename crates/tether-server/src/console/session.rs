//! Browser sessions for the admin console and the user portal.
//!
//! A session is a random 256-bit token in an `HttpOnly`, `SameSite=Strict` cookie scoped to
//! its path (`/console` or `/portal`); the server keeps only the token's SHA-256, in memory
//! (a restart logs everyone out, which is the safe failure). Every form that changes
//! something carries the session's CSRF token (htmx sends it as `x-csrf-token`), checked in
//! constant time, on top of `SameSite=Strict`.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use time::{Duration, OffsetDateTime};

use crate::auth::{random_hex, sha256_hex, ApiKey};
use crate::AppState;

/// How long a session lasts, from login.
pub const LIFETIME: Duration = Duration::hours(8);

pub const ADMIN_COOKIE: &str = "tether_console";
pub const USER_COOKIE: &str = "tether_portal";

#[derive(Clone, Debug)]
pub enum Who {
    /// An administrator, logged in with an admin API key (history names the key).
    Admin(ApiKey),
    /// A user of the portal.
    User(String),
}

#[derive(Clone, Debug)]
pub struct Session {
    pub who: Who,
    pub csrf: String,
    expires: OffsetDateTime,
}

#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session; returns the token for the cookie.
    pub fn open(&self, who: Who, now: OffsetDateTime) -> String {
        let token = random_hex(32);
        let s = Session { who, csrf: random_hex(16), expires: now + LIFETIME };
        let mut m = self.by_hash.lock().expect("lock");
        m.retain(|_, v| v.expires > now);
        m.insert(sha256_hex(&token), s);
        token
    }

    pub fn get(&self, token: &str, now: OffsetDateTime) -> Option<Session> {
        let m = self.by_hash.lock().expect("lock");
        m.get(&sha256_hex(token)).filter(|s| s.expires > now).cloned()
    }

    pub fn close(&self, token: &str) {
        self.by_hash.lock().expect("lock").remove(&sha256_hex(token));
    }
}

/// The `Set-Cookie` value that opens (or, with an empty token, clears) a session cookie.
pub fn cookie(name: &str, token: &str, path: &str) -> String {
    let age = if token.is_empty() { 0 } else { LIFETIME.whole_seconds() };
    format!("{name}={token}; Path={path}; Max-Age={age}; HttpOnly; SameSite=Strict")
}

pub fn cookie_value(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Constant-time comparison of a sent CSRF token with the session's.
pub fn csrf_ok(session: &Session, sent: Option<&str>) -> bool {
    let Some(sent) = sent else { return false };
    let (a, b) = (sent.as_bytes(), session.csrf.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A request from a logged-in administrator (else a redirect to the login page).
pub struct ConsoleAdmin {
    pub key: ApiKey,
    pub session: Session,
}

impl FromRequestParts<AppState> for ConsoleAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = cookie_value(parts, ADMIN_COOKIE).and_then(|t| state.sessions.get(&t, state.now()));
        match session {
            Some(session @ Session { who: Who::Admin(_), .. }) => {
                let Who::Admin(key) = session.who.clone() else { unreachable!("matched above") };
                Ok(ConsoleAdmin { key, session })
            }
            _ => Err(Redirect::to("/console/login").into_response()),
        }
    }
}

/// A request from a user logged in to the portal (else a redirect to its login page).
pub struct PortalUser {
    pub user_id: String,
    pub session: Session,
}

impl FromRequestParts<AppState> for PortalUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = cookie_value(parts, USER_COOKIE).and_then(|t| state.sessions.get(&t, state.now()));
        match session {
            Some(session @ Session { who: Who::User(_), .. }) => {
                let Who::User(user_id) = session.who.clone() else { unreachable!("matched above") };
                Ok(PortalUser { user_id, session })
            }
            _ => Err(Redirect::to("/portal/login").into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::default();
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20000);
        let token = s.open(Who::User("u1".into()), t0);
        assert!(s.get(&token, t0 + Duration::hours(1)).is_some());
        assert!(s.get(&token, t0 + LIFETIME).is_none(), "expired");
        assert!(s.get("not-a-token", t0).is_none());
        let t2 = s.open(Who::User("u2".into()), t0);
        s.close(&t2);
        assert!(s.get(&t2, t0).is_none(), "closed");
    }

    #[test]
    fn csrf_must_match_exactly() {
        let s = Session { who: Who::User("u".into()), csrf: "abcd".into(), expires: OffsetDateTime::UNIX_EPOCH };
        assert!(csrf_ok(&s, Some("abcd")));
        for bad in [None, Some(""), Some("abc"), Some("abce"), Some("abcde")] {
            assert!(!csrf_ok(&s, bad), "{bad:?}");
        }
    }
}
