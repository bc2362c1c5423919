//! The user portal: a user logs in with their password (checked locally, or by AD through
//! the import agent when authentication is delegated), sees their profile, and changes their
//! password under the organisation's policy. The new password goes through the same update
//! as an admin's, so it is fed to the sync agents of the user's domains and reaches AD; when
//! AD is the user's password authority the change is refused with the reason.

use askama::Template;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use tether_core::actor::Actor;
use tether_core::group::Group;
use tether_store::{Collection, Edge};

use super::admin_users::password_status;
use super::page::{back, csrf, page, reason, Fields, Flash, LoginQuery, Notice};
use super::session::{cookie, cookie_in, PortalUser, USER_COOKIE};
use crate::ops::auth::{authenticate, AuthOutcome};
use crate::state::AppState;
use tether_store::Secret;

#[derive(Template)]
#[template(path = "portal_activate.html")]
struct ActivatePage {
    token: String,
    username: String,
    policy: String,
    err: Option<String>,
}

fn policy_text(p: &tether_core::policy::PasswordPolicy) -> String {
    format!(
        "At least {} characters, with at least {} of: lowercase letters, uppercase letters, digits, symbols.",
        p.min_length, p.min_character_classes
    )
}

/// The activation page: the new user chooses a password.
pub async fn activate_page(State(s): State<AppState>, Path(token): Path<String>, Query(f): Query<Flash>) -> Response {
    let Some(u) = crate::activation::owner(&s, &token).await else {
        return Notice::LinkExpired.refusal("/portal/login");
    };
    let policy = s.repo.settings().await.map(|o| o.password_policy).unwrap_or_default();
    page(ActivatePage { token, username: u.username, policy: policy_text(&policy), err: f.err })
}

/// Sets the first password (which reaches the user's AD domains like any other), ends the
/// link, and logs the user in.
pub async fn activate(State(s): State<AppState>, Path(token): Path<String>, f: Fields) -> Response {
    let here = format!("/portal/activate/{token}");
    let Some(u) = crate::activation::owner(&s, &token).await else {
        return Notice::LinkExpired.refusal("/portal/login");
    };
    let id = u.id.clone();
    let (new, again) = (f.get("new").unwrap_or_default(), f.get("again").unwrap_or_default());
    if new != again {
        return back(&here, Err("the two passwords differ".into()));
    }
    let settings = match s.repo.settings().await {
        Ok(o) => o,
        Err(e) => return back(&here, Err(e.to_string())),
    };
    let write = match tether_core::patch::change_own_password(&u, new, &settings) {
        Ok(w) => w,
        Err(e) => return back(&here, Err(e.to_string())),
    };
    let actor = Actor::user(&u.id, &u.username, Some("activation link"));
    if let Err(e) = crate::ops::users::save_update(&s, &u, write, &actor).await {
        return back(&here, Err(reason(e)));
    }
    let _ = s.repo.store().put_secret(&id, Secret::Activation, None).await;
    // The session is stamped with the password just set (read back as stored).
    let Ok(Some(u)) = s.repo.user(&id).await else { return Notice::LinkExpired.refusal("/portal/login") };
    let Ok(session) = s.sessions.open_user(&u, s.now()).await else {
        return Notice::Unavailable.refusal("/portal/login");
    };
    let mut r = back("/portal/profile", Ok("Welcome: your account is active.".into()));
    r.headers_mut().insert(header::SET_COOKIE, cookie(&s, USER_COOKIE, &session, "/portal").parse().expect("ascii"));
    r
}

#[derive(Template)]
#[template(path = "portal_login.html")]
struct LoginPage {
    err: Option<String>,
    msg: Option<String>,
}

pub async fn login_page(Query(f): Query<LoginQuery>) -> Response {
    page(LoginPage { err: f.err(), msg: f.msg() })
}

/// Every refusal reads the same ("wrong username or password"), whatever the cause: unknown
/// user, wrong password, suspended, AD's reason, delegation pending.
pub async fn login(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    f: Fields,
) -> Response {
    let username = f.get("username").unwrap_or_default().trim().to_string();
    let password = f.get("password").unwrap_or_default().to_string();
    let outcome = match authenticate(&s, &username, password, Some(peer.ip())).await {
        Ok(o) => o,
        Err(_) => return Notice::Unavailable.refusal("/portal/login"),
    };
    match outcome {
        AuthOutcome::Accepted(_) => {
            let Ok(Some(u)) = s.repo.user_by_username(&username).await else {
                return Notice::WrongCredentials.refusal("/portal/login");
            };
            if u.totp_enabled {
                return super::portal_mfa::second_step(&s, &u).await;
            }
            let Ok(token) = s.sessions.open_user(&u, s.now()).await else {
                return Notice::Unavailable.refusal("/portal/login");
            };
            let mut r = Redirect::to("/portal/profile").into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, cookie(&s, USER_COOKIE, &token, "/portal").parse().expect("ascii"));
            r
        }
        AuthOutcome::Denied(_) => Notice::WrongCredentials.refusal("/portal/login"),
        AuthOutcome::Throttled(_) => Notice::Throttled.refusal("/portal/login"),
    }
}

/// A logout is a form like any other (CSRF checked): a page elsewhere cannot end the session.
pub async fn logout(
    State(s): State<AppState>,
    user: PortalUser,
    headers: axum::http::HeaderMap,
    f: Fields,
) -> Response {
    super::session::logout(&s, &user.session, &headers, &f, USER_COOKIE, "/portal").await
}

#[derive(Template)]
#[template(path = "portal.html")]
struct ProfilePage {
    csrf: String,
    msg: Option<String>,
    err: Option<String>,
    username: String,
    name: String,
    email: String,
    job: String,
    department: String,
    password_status: &'static str,
    /// Why the password cannot be changed here (AD is its authority), if so.
    locked_by_ad: Option<String>,
    policy: String,
    groups: Vec<String>,
    totp_enabled: bool,
}

pub async fn profile(user: PortalUser, State(s): State<AppState>, Query(flash): Query<Flash>) -> Response {
    let Ok(Some(u)) = s.repo.user(&user.user_id).await else {
        return Redirect::to("/portal/login").into_response();
    };
    let policy = s.repo.settings().await.map(|o| o.password_policy).unwrap_or_default();
    let mut groups = Vec::new();
    for g in s.repo.store().sources(Edge::Member, &u.id).await.unwrap_or_default() {
        if let Ok(Some(g)) = s.repo.get::<Group>(Collection::Groups, &g).await {
            groups.push(g.name);
        }
    }
    groups.sort();
    page(ProfilePage {
        csrf: user.session.csrf.clone(),
        msg: flash.msg,
        err: flash.err,
        username: u.username.clone(),
        name: format!("{} {}", u.firstname, u.lastname).trim().to_string(),
        email: u.email.clone(),
        job: u.job_title.clone(),
        department: u.department.clone(),
        password_status: password_status(&u),
        locked_by_ad: u.password_authority.as_ref().map(|_| {
            "Active Directory manages your password: change it in Windows (Ctrl+Alt+Del, Change a password) \
             and it will be used here too."
                .to_string()
        }),
        policy: policy_text(&policy),
        groups,
        totp_enabled: u.totp_enabled,
    })
}

/// Changes the user's own password after checking the current one.
pub async fn change_password(
    user: PortalUser,
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    f: Fields,
) -> Response {
    if let Some(r) = csrf(&user.session, &f) {
        return r;
    }
    let here = "/portal/profile";
    let Ok(Some(u)) = s.repo.user(&user.user_id).await else { return Redirect::to("/portal/login").into_response() };
    let (current, new, again) =
        (f.get("current").unwrap_or_default(), f.get("new").unwrap_or_default(), f.get("again").unwrap_or_default());
    if new != again {
        return back(here, Err("the two new passwords differ".into()));
    }
    match authenticate(&s, &u.username, current.to_string(), None).await {
        Ok(AuthOutcome::Accepted(_)) => {}
        Ok(_) => return back(here, Err("the current password is wrong".into())),
        Err(e) => return back(here, Err(reason(e))),
    }
    let actor = Actor::user(&u.id, &u.username, None);
    match crate::ops::users::change_own_password(&s, &u, new, &actor).await {
        Ok(_) => {
            let to_ad = !crate::adi::feed::bound_domains(&s, &u.id).await.unwrap_or_default().is_empty();
            let msg =
                if to_ad { "Password changed. It is on its way to Active Directory too." } else { "Password changed." };
            let mut r = back(here, Ok(msg.into()));
            // Another password ends every session of the user: this one goes on in a new one.
            if let Some(t) = cookie_in(&headers, USER_COOKIE) {
                let _ = s.sessions.close(&t).await;
            }
            if let Ok(Some(changed)) = s.repo.user(&u.id).await {
                if let Ok(token) = s.sessions.open_user(&changed, s.now()).await {
                    r.headers_mut()
                        .insert(header::SET_COOKIE, cookie(&s, USER_COOKIE, &token, "/portal").parse().expect("ascii"));
                }
            }
            r
        }
        Err(e) => back(here, Err(reason(e))),
    }
}
