//! The admin console (`/console`) and the user portal (`/portal`): server-rendered HTML
//! (askama templates compiled into the binary) with htmx, vendored, for the few live parts.
//! Every page works without JavaScript: forms post and redirect back with a message.
//!
//! Handlers here only translate forms to the same operations the REST API performs (often by
//! calling its handlers), so the console can do nothing the API could not, and every change
//! lands in the same history with the administrator's key as the actor.

mod admin_ad;
mod admin_users;
mod portal;
pub mod session;

use askama::Template;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::AppState;

pub use portal::{activation_link_for_email, ACTIVATION_LIFETIME};
pub use session::Sessions;

/// The frame every console page shares.
pub struct Chrome {
    pub title: String,
    pub csrf: String,
    /// The navigation entry to mark as current.
    pub section: &'static str,
    pub msg: Option<String>,
    pub err: Option<String>,
}

impl Chrome {
    pub fn new(title: impl Into<String>, csrf: &str, section: &'static str, flash: &Flash) -> Self {
        Chrome { title: title.into(), csrf: csrf.to_string(), section, msg: flash.msg.clone(), err: flash.err.clone() }
    }
}

/// A message carried over a redirect (`?msg=` or `?err=`).
#[derive(Default, serde::Deserialize)]
pub struct Flash {
    pub msg: Option<String>,
    pub err: Option<String>,
}

/// Renders a template, or a plain error page if it cannot be rendered.
pub fn page<T: Template>(t: T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render the page: {e}")).into_response(),
    }
}

/// Redirects to `path` with a message (`ok`) or an error.
pub fn back(path: &str, outcome: Result<String, String>) -> Response {
    let (k, v) = match outcome {
        Ok(m) => ("msg", m),
        Err(e) => ("err", e),
    };
    let q: String = form_urlencoded::Serializer::new(String::new()).append_pair(k, &v).finish();
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{sep}{q}")).into_response()
}

/// What a login page may say. The page takes a code from its query string and shows the
/// fixed text chosen here: a link crafted by someone else cannot put words on a login page
/// (say, "call this number"). An unknown code shows nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    WrongCredentials,
    UnknownKey,
    Throttled,
    ReadOnlyKey,
    LinkExpired,
    Unavailable,
    LoggedOut,
}

impl Notice {
    const ALL: [Notice; 7] = [
        Notice::WrongCredentials,
        Notice::UnknownKey,
        Notice::Throttled,
        Notice::ReadOnlyKey,
        Notice::LinkExpired,
        Notice::Unavailable,
        Notice::LoggedOut,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Notice::WrongCredentials => "denied",
            Notice::UnknownKey => "key",
            Notice::Throttled => "throttled",
            Notice::ReadOnlyKey => "readonly",
            Notice::LinkExpired => "expired",
            Notice::Unavailable => "unavailable",
            Notice::LoggedOut => "bye",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Notice::WrongCredentials => "Wrong username or password.",
            Notice::UnknownKey => "Unknown API key.",
            Notice::Throttled => "Too many failed attempts. Try again in 15 minutes.",
            Notice::ReadOnlyKey => "This API key is read-only; the console needs an administrator key.",
            Notice::LinkExpired => {
                "This activation link is unknown or has expired: ask your administrator for a new one."
            }
            Notice::Unavailable => "The directory cannot answer right now. Try again in a moment.",
            Notice::LoggedOut => "You are logged out.",
        }
    }

    pub fn from_code(code: Option<&str>) -> Option<Notice> {
        Notice::ALL.into_iter().find(|n| Some(n.code()) == code)
    }

    /// Redirects to the login page `path` with this notice as an error.
    pub fn refusal(self, path: &str) -> Response {
        Redirect::to(&format!("{path}?err={}", self.code())).into_response()
    }

    /// Redirects to the login page `path` with this notice as a message.
    pub fn message(self, path: &str) -> Response {
        Redirect::to(&format!("{path}?msg={}", self.code())).into_response()
    }
}

/// A login page's query: codes only (see [`Notice`]).
#[derive(serde::Deserialize, Default)]
pub struct LoginQuery {
    pub err: Option<String>,
    pub msg: Option<String>,
}

impl LoginQuery {
    pub fn err(&self) -> Option<String> {
        Notice::from_code(self.err.as_deref()).map(|n| n.text().to_string())
    }

    pub fn msg(&self) -> Option<String> {
        Notice::from_code(self.msg.as_deref()).map(|n| n.text().to_string())
    }
}

/// An API error as a line an admin can read.
pub fn reason(e: ApiError) -> String {
    e.message
}

/// The fields of a posted form, in order (a key may repeat, as checkboxes do).
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, k: &str) -> Vec<String> {
        self.0.iter().filter(|(key, _)| key == k).map(|(_, v)| v.clone()).collect()
    }
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers: HeaderMap = req.headers().clone();
        let axum::Form(pairs) = axum::Form::<Vec<(String, String)>>::from_request(req, state)
            .await
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()).into_response())?;
        let mut pairs = pairs;
        // htmx sends the token as a header instead of a field.
        if let Some(t) = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()) {
            pairs.push(("csrf".into(), t.to_string()));
        }
        Ok(Fields(pairs))
    }
}

/// The refusal of a form without the session's CSRF token (`None`: the token is right).
pub fn csrf(session: &session::Session, f: &Fields) -> Option<Response> {
    if session::csrf_ok(session, f.get("csrf")) {
        None
    } else {
        Some(
            (StatusCode::FORBIDDEN, "the form has expired or did not come from this console: reload the page")
                .into_response(),
        )
    }
}

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
        .route("/portal", get(|| async { Redirect::to("/portal/profile") }))
        .route("/portal/login", get(portal::login_page).post(portal::login))
        .route("/portal/logout", post(portal::logout))
        .route("/portal/profile", get(portal::profile))
        .route("/portal/password", post(portal::change_password))
        .route("/portal/activate/{token}", get(portal::activate_page).post(portal::activate))
        .layer(axum::middleware::from_fn(security_headers))
}
