//! The admin console (`/console`) and the user portal (`/portal`): server-rendered HTML
//! (askama templates compiled into the binary) with htmx, vendored, for the few live parts.
//! Every page works without JavaScript: forms post and redirect back with a message.
//!
//! Handlers here only translate forms to the operations the REST API calls too (`crate::ops`),
//! never to route handlers, so the console can do nothing the API could not, and every
//! change lands in the same history with the administrator's key as the actor.

mod admin_ad;
mod admin_ldap;
mod admin_radius;
mod admin_users;
mod page;
mod portal;
mod portal_mfa;
pub mod session;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

const HTMX: &str = include_str!("../../assets/htmx.min.js");
const CSS: &str = include_str!("../../assets/console.css");

async fn htmx() -> impl IntoResponse {
    static_asset("text/javascript; charset=utf-8", HTMX)
}

async fn css() -> impl IntoResponse {
    static_asset("text/css; charset=utf-8", CSS)
}

fn static_asset(kind: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    r
}

/// Pages are never framed by other sites, and load nothing from elsewhere.
async fn security_headers(req: Request, next: axum::middleware::Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    r
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/users") }))
        .route("/console/", get(|| async { Redirect::to("/console/users") }))
        .route("/console/static/htmx.min.js", get(htmx))
        .route("/console/static/console.css", get(css))
        .route("/console/login", get(admin_users::login_page).post(admin_users::login))
        .route("/console/logout", post(admin_users::logout))
        .route("/console/users", get(admin_users::list))
        .route("/console/users/bulk", post(admin_users::bulk))
        .route("/console/users/{id}", get(admin_users::detail).post(admin_users::edit))
        .route("/console/users/{id}/action", post(admin_users::action))
        .route("/console/users/{id}/directories", post(admin_users::directories))
        .route("/console/groups", get(admin_users::groups))
        .route("/console/groups/{id}", get(admin_users::group))
        .route("/console/ad", get(admin_ad::list))
        .route("/console/ad/{id}", get(admin_ad::domain))
        .route("/console/ad/{id}/configuration", post(admin_ad::configure))
        .route("/console/ad/{id}/agents", get(admin_ad::agents_fragment))
        .route("/console/ad/{id}/agents/{agent}/{verb}", post(admin_ad::agent_action))
        .route("/console/ad/{id}/plan/{verb}", post(admin_ad::plan_action))
        .route("/console/activity", get(admin_ad::activity))
        .route("/console/ldap", get(admin_ldap::server))
        .route("/console/radius", get(admin_radius::servers))
        .route("/portal", get(|| async { Redirect::to("/portal/profile") }))
        .route("/portal/login", get(portal::login_page).post(portal::login))
        .route("/portal/login/code", get(portal_mfa::code_page).post(portal_mfa::code))
        .route("/portal/mfa", get(portal_mfa::mfa_page).post(portal_mfa::confirm))
        .route("/portal/logout", post(portal::logout))
        .route("/portal/profile", get(portal::profile))
        .route("/portal/password", post(portal::change_password))
        .route("/portal/activate/{token}", get(portal::activate_page).post(portal::activate))
        .layer(axum::middleware::from_fn(security_headers))
}
