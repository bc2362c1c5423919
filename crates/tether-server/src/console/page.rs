//! What every console and portal page shares: the frame, flash messages and fixed notices,
//! form fields, the CSRF check, and rendering.

use askama::Template;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::error::ApiError;

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
    WrongCode,
}

impl Notice {
    const ALL: [Notice; 8] = [
        Notice::WrongCredentials,
        Notice::UnknownKey,
        Notice::Throttled,
        Notice::ReadOnlyKey,
        Notice::LinkExpired,
        Notice::Unavailable,
        Notice::LoggedOut,
        Notice::WrongCode,
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
            Notice::WrongCode => "code",
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
            Notice::WrongCode => "That code is not right: enter the 6 digits your app shows now.",
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
pub fn csrf(session: &crate::sessions::Session, f: &Fields) -> Option<Response> {
    if crate::sessions::csrf_ok(session, f.get("csrf")) {
        None
    } else {
        Some(
            (StatusCode::FORBIDDEN, "the form has expired or did not come from this console: reload the page")
                .into_response(),
        )
    }
}
