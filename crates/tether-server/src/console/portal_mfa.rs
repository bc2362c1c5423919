//! The portal's second factor: enrollment (`/portal/mfa`: the secret as an `otpauth://` URI,
//! as text and as a QR code drawn here as SVG, confirmed by a code from the app) and the
//! login's second step (`/portal/login/code`) for users who enrolled.
//!
//! Between the password and the code nothing is a session: the password step leaves a
//! random token in a cookie and its hash in the store's shared state for five minutes (any
//! tetherd can take the code); only a right code opens the session.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use qrcodegen::{QrCode, QrCodeEcc};
use tether_core::user::User;

use super::page::{back, csrf, page, Fields, Flash, LoginQuery, Notice};
use super::session::{cookie, cookie_in, PortalUser, USER_COOKIE};
use crate::ops::mfa::{self, CodeCheck};
use crate::state::AppState;

const MFA_COOKIE: &str = "tether_mfa";
/// How long a right password waits for its code.
const PENDING_SECONDS: i64 = 300;

fn pending_key(token: &str) -> String {
    format!("portal-mfa:{}", crate::crypto::sha256_hex(token))
}

/// After a right password of a user with TOTP: the code page, the password step remembered.
pub async fn second_step(s: &AppState, u: &User) -> Response {
    let token = crate::crypto::random_hex(32);
    let expires = s.now().unix_timestamp() + PENDING_SECONDS;
    // The password it was checked against: a password changed meanwhile ends the step.
    let pending = serde_json::json!({"user": u.id, "passwordDate": u.password_date});
    if s.repo.store().put_shared(&pending_key(&token), &pending, expires).await.is_err() {
        return Notice::Unavailable.refusal("/portal/login");
    }
    let mut r = Redirect::to("/portal/login/code").into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie(s, MFA_COOKIE, &token, "/portal").parse().expect("ascii"));
    r
}

#[derive(Template)]
#[template(path = "portal_code.html")]
struct CodePage {
    err: Option<String>,
}

pub async fn code_page(Query(f): Query<LoginQuery>) -> Response {
    page(CodePage { err: f.err() })
}

/// The login's second step: a right code opens the session; a wrong one may be tried again
/// (counted by the login limits) while the password step lasts.
pub async fn code(State(s): State<AppState>, headers: axum::http::HeaderMap, f: Fields) -> Response {
    let Some(token) = cookie_in(&headers, MFA_COOKIE) else { return Redirect::to("/portal/login").into_response() };
    let key = pending_key(&token);
    let pending = match s.repo.store().shared(&key, s.now().unix_timestamp()).await {
        Ok(Some(p)) => p,
        Ok(None) => return Notice::WrongCredentials.refusal("/portal/login"),
        Err(_) => return Notice::Unavailable.refusal("/portal/login"),
    };
    let Some(user_id) = pending["user"].as_str() else { return Notice::WrongCredentials.refusal("/portal/login") };
    let Ok(Some(u)) = s.repo.user(user_id).await else { return Notice::WrongCredentials.refusal("/portal/login") };
    // Read again: a password changed, a suspension or a lock since the password step stands.
    if pending["passwordDate"] != serde_json::json!(u.password_date) || !u.can_authenticate() {
        let _ = s.repo.store().delete_shared(&key).await;
        return Notice::WrongCredentials.refusal("/portal/login");
    }
    match mfa::verify(&s, &u, f.get("code").unwrap_or_default()).await {
        Ok(CodeCheck::Right) => {}
        Ok(CodeCheck::Wrong) => return Notice::WrongCode.refusal("/portal/login/code"),
        Ok(CodeCheck::Throttled) => return Notice::Throttled.refusal("/portal/login"),
        Err(_) => return Notice::Unavailable.refusal("/portal/login"),
    }
    let _ = s.repo.store().delete_shared(&key).await;
    let Ok(session) = s.sessions.open_user(&u, s.now()).await else {
        return Notice::Unavailable.refusal("/portal/login");
    };
    let mut r = Redirect::to("/portal/profile").into_response();
    r.headers_mut().append(header::SET_COOKIE, cookie(&s, USER_COOKIE, &session, "/portal").parse().expect("ascii"));
    r.headers_mut().append(header::SET_COOKIE, cookie(&s, MFA_COOKIE, "", "/portal").parse().expect("ascii"));
    r
}

#[derive(Template)]
#[template(path = "portal_mfa.html")]
struct MfaPage {
    csrf: String,
    msg: Option<String>,
    err: Option<String>,
    enrolled: bool,
    uri: String,
    secret: String,
    qr_svg: String,
}

/// A QR code of `text` as an SVG image (black modules on white, a 4-module quiet zone).
fn qr_svg(text: &str) -> String {
    let Ok(qr) = QrCode::encode_text(text, QrCodeEcc::Medium) else { return String::new() };
    let (n, quiet) = (qr.size(), 4);
    let mut path = String::new();
    for y in 0..n {
        for x in 0..n {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + quiet, y + quiet));
            }
        }
    }
    let side = n + 2 * quiet;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" width=\"240\" height=\"240\" \
         role=\"img\" aria-label=\"QR code of the enrollment URI\" shape-rendering=\"crispEdges\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    )
}

pub async fn mfa_page(user: PortalUser, State(s): State<AppState>, Query(flash): Query<Flash>) -> Response {
    let Ok(Some(u)) = s.repo.user(&user.user_id).await else {
        return Redirect::to("/portal/login").into_response();
    };
    let (uri, secret) = if u.totp_enabled {
        (String::new(), String::new())
    } else {
        match mfa::enrollment(&s, &u).await {
            Ok(e) => (e.uri, e.secret_base32),
            Err(_) => return back("/portal/profile", Err("the directory cannot answer right now".into())),
        }
    };
    page(MfaPage {
        csrf: user.session.csrf.clone(),
        msg: flash.msg,
        err: flash.err,
        enrolled: u.totp_enabled,
        qr_svg: if uri.is_empty() { String::new() } else { qr_svg(&uri) },
        uri,
        secret,
    })
}

/// Confirms the enrollment with a code from the app and the user's password: a session
/// taken over (a cookie stolen, a computer left unlocked) must not be enough to tie the
/// account to someone else's app, which would then hold its second factor.
pub async fn confirm(user: PortalUser, State(s): State<AppState>, f: Fields) -> Response {
    if let Some(r) = csrf(&user.session, &f) {
        return r;
    }
    let here = "/portal/mfa";
    let Ok(Some(u)) = s.repo.user(&user.user_id).await else { return Redirect::to("/portal/login").into_response() };
    let password = f.get("password").unwrap_or_default().to_string();
    match crate::ops::auth::authenticate(&s, &u.username, password, None).await {
        Ok(crate::ops::auth::AuthOutcome::Accepted(_)) => {}
        Ok(crate::ops::auth::AuthOutcome::Throttled(_)) => return back(here, Err(Notice::Throttled.text().into())),
        Ok(_) => return back(here, Err("That password is not right: enter the one you log in with.".into())),
        Err(_) => return back(here, Err(Notice::Unavailable.text().into())),
    }
    match mfa::confirm(&s, &u, f.get("code").unwrap_or_default()).await {
        Ok(CodeCheck::Right) => {
            back(here, Ok("Two-step verification is on: logins ask for a code from your app.".into()))
        }
        Ok(CodeCheck::Wrong) => {
            back(here, Err("That code is not right: enter the 6 digits your app shows now.".into()))
        }
        Ok(CodeCheck::Throttled) => back(here, Err(Notice::Throttled.text().into())),
        Err(_) => back(here, Err(Notice::Unavailable.text().into())),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_qr_code_is_an_svg_of_modules() {
        let svg = super::qr_svg("otpauth://totp/Tether:ann?secret=ABC");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.matches("h1v1h-1z").count() > 100, "modules drawn");
    }
}
