//! Browser sessions for the admin console and the user portal.
//!
//! A session is a random 256-bit token in an `HttpOnly`, `SameSite=Strict` cookie scoped to
//! its path (`/console` or `/portal`); the server keeps only the token's SHA-256, in memory
//! (a restart logs everyone out, which is the safe failure). Every form that changes
//! something carries the session's CSRF token (htmx sends it as `x-csrf-token`), checked in
//! constant time, on top of `SameSite=Strict`.
//!
//! A session lasts no longer than its principal's right to it: every request re-reads the
//! principal, so a console session ends when its API key is deleted or is no longer an
//! administrator's, and a portal session ends when the user is suspended, locked, deleted
//! or gets another password (by anyone: the portal re-opens the session of a user who
//! changed it there).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use time::{Duration, OffsetDateTime};

use crate::auth::{random_hex, sha256_hex, ApiKey, Role};
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
    /// A portal user's `passwordDate` at login: another password ends the session.
    password_stamp: Option<String>,
}

#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session; returns the token for the cookie.
    pub fn open(&self, who: Who, now: OffsetDateTime) -> String {
        self.open_stamped(who, None, now)
    }

    /// Opens a portal session for `user`, ended by a change of its password.
    pub fn open_user(&self, user: &tether_core::user::User, now: OffsetDateTime) -> String {
        self.open_stamped(Who::User(user.id.clone()), user.password_date.clone(), now)
    }

    fn open_stamped(&self, who: Who, password_stamp: Option<String>, now: OffsetDateTime) -> String {
        let token = random_hex(32);
        let s = Session { who, csrf: random_hex(16), expires: now + LIFETIME, password_stamp };
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

/// The `Set-Cookie` value that opens (or, with an empty token, clears) a session cookie;
/// `Secure` when the browser reaches tetherd over HTTPS.
pub fn cookie(state: &AppState, name: &str, token: &str, path: &str) -> String {
    let age = if token.is_empty() { 0 } else { LIFETIME.whole_seconds() };
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    format!("{name}={token}; Path={path}; Max-Age={age}; HttpOnly; SameSite=Strict{secure}")
}

/// A logout form (`name`'s cookie, under `path`): with the session's CSRF token it ends the
/// session and clears the cookie, then goes to `path`'s login page; without, nothing ends.
pub fn logout(
    state: &AppState,
    session: &Session,
    headers: &axum::http::HeaderMap,
    f: &super::Fields,
    name: &str,
    path: &str,
) -> Response {
    if let Some(r) = super::csrf(session, f) {
        return r;
    }
    if let Some(t) = cookie_in(headers, name) {
        state.sessions.close(&t);
    }
    let mut r = super::Notice::LoggedOut.message(&format!("{path}/login"));
    r.headers_mut().insert(axum::http::header::SET_COOKIE, cookie(state, name, "", path).parse().expect("ascii"));
    r
}

pub fn cookie_value(parts: &Parts, name: &str) -> Option<String> {
    cookie_in(&parts.headers, name)
}

pub fn cookie_in(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
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
        let token = cookie_value(parts, ADMIN_COOKIE).unwrap_or_default();
        let session = state.sessions.get(&token, state.now());
        let refused = || Redirect::to("/console/login").into_response();
        let Some(session @ Session { who: Who::Admin(_), .. }) = session else { return Err(refused()) };
        let Who::Admin(key) = session.who.clone() else { unreachable!("matched above") };
        // The key as it is now: deleted, or no longer an administrator's, ends the session.
        match state.repo.get::<ApiKey>(tether_store::Collection::ApiKeys, &key.id).await {
            Ok(Some(now)) if now.role == Role::Admin => Ok(ConsoleAdmin { key: now, session }),
            Ok(_) => {
                state.sessions.close(&token);
                Err(refused())
            }
            Err(_) => Err((axum::http::StatusCode::SERVICE_UNAVAILABLE, "storage unavailable").into_response()),
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
        let token = cookie_value(parts, USER_COOKIE).unwrap_or_default();
        let session = state.sessions.get(&token, state.now());
        let refused = || Redirect::to("/portal/login").into_response();
        let Some(session @ Session { who: Who::User(_), .. }) = session else { return Err(refused()) };
        let Who::User(user_id) = session.who.clone() else { unreachable!("matched above") };
        match state.repo.user(&user_id).await {
            // Activated (not suspended) and not locked, with the password of the login.
            Ok(Some(u)) if u.can_authenticate() && u.password_date == session.password_stamp => {
                Ok(PortalUser { user_id, session })
            }
            Ok(_) => {
                state.sessions.close(&token);
                Err(refused())
            }
            Err(_) => Err((axum::http::StatusCode::SERVICE_UNAVAILABLE, "storage unavailable").into_response()),
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
        let s = Session {
            who: Who::User("u".into()),
            csrf: "abcd".into(),
            expires: OffsetDateTime::UNIX_EPOCH,
            password_stamp: None,
        };
        assert!(csrf_ok(&s, Some("abcd")));
        for bad in [None, Some(""), Some("abc"), Some("abce"), Some("abcde")] {
            assert!(!csrf_ok(&s, bad), "{bad:?}");
        }
    }
}
