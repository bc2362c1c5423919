//! The console's and the portal's side of browser sessions (the store is `crate::sessions`):
//! cookies, logout, and the extractors that re-read the session's principal on every request.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};

use crate::keys::{ApiKey, Role};
pub use crate::sessions::{Session, Who, LIFETIME};
use crate::state::AppState;

pub const ADMIN_COOKIE: &str = "tether_console";
pub const USER_COOKIE: &str = "tether_portal";

/// The `Set-Cookie` value that opens (or, with an empty token, clears) a session cookie;
/// `Secure` when the browser reaches tetherd over HTTPS.
pub fn cookie(state: &AppState, name: &str, token: &str, path: &str) -> String {
    let age = if token.is_empty() { 0 } else { LIFETIME.whole_seconds() };
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    format!("{name}={token}; Path={path}; Max-Age={age}; HttpOnly; SameSite=Strict{secure}")
}

/// A logout form (`name`'s cookie, under `path`): with the session's CSRF token it ends the
/// session and clears the cookie, then goes to `path`'s login page; without, nothing ends.
pub async fn logout(
    state: &AppState,
    session: &Session,
    headers: &axum::http::HeaderMap,
    f: &super::page::Fields,
    name: &str,
    path: &str,
) -> Response {
    if let Some(r) = super::page::csrf(session, f) {
        return r;
    }
    if let Some(t) = cookie_in(headers, name) {
        if state.sessions.close(&t).await.is_err() {
            return unavailable();
        }
    }
    let mut r = super::page::Notice::LoggedOut.message(&format!("{path}/login"));
    r.headers_mut().insert(axum::http::header::SET_COOKIE, cookie(state, name, "", path).parse().expect("ascii"));
    r
}

/// The answer when the store cannot be reached to check a session.
fn unavailable() -> Response {
    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "storage unavailable").into_response()
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

/// A request from a logged-in administrator (else a redirect to the login page).
pub struct ConsoleAdmin {
    pub key: ApiKey,
    pub session: Session,
}

impl FromRequestParts<AppState> for ConsoleAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = cookie_value(parts, ADMIN_COOKIE).unwrap_or_default();
        let session = state.sessions.get(&token, state.now()).await.map_err(|_| unavailable())?;
        let refused = || Redirect::to("/console/login").into_response();
        let Some(session @ Session { who: Who::Admin(_), .. }) = session else { return Err(refused()) };
        let Who::Admin(key_id) = session.who.clone() else { unreachable!("matched above") };
        // The key as it is now: deleted, or no longer an administrator's, ends the session.
        match state.repo.get::<ApiKey>(tether_store::Collection::ApiKeys, &key_id).await {
            Ok(Some(now)) if now.role == Role::Admin => Ok(ConsoleAdmin { key: now, session }),
            Ok(_) => {
                state.sessions.close(&token).await.map_err(|_| unavailable())?;
                Err(refused())
            }
            Err(_) => Err(unavailable()),
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
        let session = state.sessions.get(&token, state.now()).await.map_err(|_| unavailable())?;
        let refused = || Redirect::to("/portal/login").into_response();
        let Some(session @ Session { who: Who::User(_), .. }) = session else { return Err(refused()) };
        let Who::User(user_id) = session.who.clone() else { unreachable!("matched above") };
        match state.repo.user(&user_id).await {
            // Activated (not suspended) and not locked, with the password of the login.
            Ok(Some(u)) if u.can_authenticate() && u.password_date == session.password_stamp => {
                Ok(PortalUser { user_id, session })
            }
            Ok(_) => {
                state.sessions.close(&token).await.map_err(|_| unavailable())?;
                Err(refused())
            }
            Err(_) => Err(unavailable()),
        }
    }
}
