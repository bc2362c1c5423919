//! The directory server's transports: the JumpCloud-shaped REST API and the agent API.
//!
//! A server is `run(listener, state, shutdown)`, so tests start it in-process on port 0
//! and binaries stay thin. Handlers only translate HTTP to the domain rules of
//! `tether-core` and the storage of `tether-store`.

pub mod auth;
pub mod body;
mod console;
mod delegation;
pub mod error;
mod feed;
mod history;
mod import;
mod import_groups;
mod import_plan;
pub mod mail;
pub mod memory;
mod metrics;
mod notify;
mod openapi;
mod routes;
pub mod secrets;
mod sync_guard;
mod throttle;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::Uri;
use tether_store::Repo;
use time::OffsetDateTime;
use tower::Layer;

/// The import agent's report, as `POST /api/agent/v1/import` reads it (public for the fuzz targets).
pub use import::{ImportReport, ObservedGroup};
pub use openapi::openapi_json;

/// A source of the current time, injectable so that grace periods are testable fast.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

/// Server settings that are not stored in the database.
#[derive(Clone)]
pub struct ServerConfig {
    /// How long a paused agent waits before it may be deleted.
    pub agent_delete_grace: time::Duration,
    pub clock: Clock,
    /// How long a delegated verification waits for an import agent's answer.
    pub delegation_timeout: std::time::Duration,
    /// Delivery of the notifications outbox; `None` (the default) records only.
    pub smtp: Option<mail::SmtpConfig>,
    /// When set, `GET /metrics` needs `Authorization: Bearer` with this token.
    pub metrics_token: Option<String>,
    /// Seals the passwords waiting in the change feed (see [`secrets`]).
    pub secret_key: Arc<secrets::SecretKey>,
    /// How long a password waits in the feed for its sync agent before it is forgotten.
    pub feed_password_ttl: time::Duration,
    /// Browsers reach tetherd over HTTPS (directly, or through a TLS-terminating proxy), so
    /// session cookies carry `Secure`. [`run_tls`] sets it.
    pub secure_cookies: bool,
    /// A reverse proxy stands in front (`--plain-http`): every peer address is the proxy's, so
    /// logins are not limited per address.
    pub behind_proxy: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            agent_delete_grace: time::Duration::seconds(900),
            clock: system_clock(),
            delegation_timeout: std::time::Duration::from_secs(10),
            smtp: None,
            metrics_token: None,
            secure_cookies: false,
            behind_proxy: false,
            secret_key: Arc::new(secrets::SecretKey::ephemeral()),
            feed_password_ttl: time::Duration::days(7),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub repo: Repo,
    pub config: ServerConfig,
    pub(crate) jobs: Arc<tokio::sync::Mutex<std::collections::HashMap<String, serde_json::Value>>>,
    pub(crate) delegation: Arc<delegation::Broker>,
    /// Wakes sync agents long-polling the change feed.
    pub(crate) feed_wake: Arc<tokio::sync::Notify>,
    pub(crate) throttle: Arc<throttle::Throttle>,
    pub(crate) metrics: Arc<metrics::Metrics>,
    /// Browser sessions of the console and the portal.
    pub(crate) sessions: Arc<console::Sessions>,
}

impl AppState {
    pub fn new(repo: Repo, config: ServerConfig) -> Self {
        AppState {
            repo,
            config,
            jobs: Default::default(),
            delegation: Default::default(),
            feed_wake: Default::default(),
            throttle: Default::default(),
            metrics: Default::default(),
            sessions: Default::default(),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.config.clock)()
    }

    pub fn now_str(&self) -> String {
        tether_core::timestamp(self.now())
    }
}

/// Creates, once, an administrator key with the given value if no administrator key exists
/// yet. Returns whether it created one.
pub async fn bootstrap_api_key(state: &AppState, key: &str) -> Result<bool, error::ApiError> {
    let q = tether_core::query::ListQuery { limit: usize::MAX >> 1, ..Default::default() };
    let (_, keys): (u64, Vec<auth::ApiKey>) = state.repo.list(tether_store::Collection::ApiKeys, &q).await?;
    if keys.iter().any(|k| k.role == auth::Role::Admin) {
        return Ok(false);
    }
    auth::create_api_key(state, "bootstrap", auth::Role::Admin, Some(key)).await?;
    Ok(true)
}

/// Paths are matched case-insensitively (as JumpCloud does): the path is lowercased
/// before routing. Ids are lowercase hex, so no parameter loses information.
fn lowercase_path(mut req: Request) -> Request {
    let uri = req.uri();
    let path = uri.path();
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        let lowered = match uri.query() {
            Some(q) => format!("{}?{q}", path.to_ascii_lowercase()),
            None => path.to_ascii_lowercase(),
        };
        if let Ok(pq) = lowered.parse() {
            let mut parts = uri.clone().into_parts();
            parts.path_and_query = Some(pq);
            if let Ok(u) = Uri::from_parts(parts) {
                *req.uri_mut() = u;
            }
        }
    }
    req
}

/// Serves the API in plain HTTP on `listener` until `shutdown` completes (loopback, or
/// behind a TLS-terminating proxy: `tetherd` decides which addresses may serve this).
pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _mail = MailDelivery::start(&state);
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}

/// Serves the API over HTTPS on `listener` with `tls` until `shutdown` completes.
pub async fn run_tls(
    listener: tokio::net::TcpListener,
    tls: &tls::ServerTls,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // `tap_io` makes the peer address available to handlers as `ConnectInfo<SocketAddr>`.
    let listener = tls::TlsListener::new(listener, tls.config())?.tap_io(|_| {});
    let mut state = state;
    state.config.secure_cookies = true;
    let _mail = MailDelivery::start(&state);
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}

type App = tower::util::MapRequest<axum::Router, fn(Request) -> Request>;

fn app(state: AppState) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<App, std::net::SocketAddr> {
    let router = routes::router(state);
    let app: App = tower::util::MapRequestLayer::new(lowercase_path as fn(Request) -> Request).layer(router);
    axum::ServiceExt::<Request>::into_make_service_with_connect_info::<std::net::SocketAddr>(app)
}

/// The server's background work while it runs: the notifications outbox's delivery (when an
/// SMTP relay is set) and the expiry of feed passwords.
struct MailDelivery(Vec<tokio::task::JoinHandle<()>>);

impl MailDelivery {
    fn start(state: &AppState) -> Self {
        let mut tasks = vec![tokio::spawn(feed::expire_passwords(state.clone()))];
        if let Some(cfg) = state.config.smtp.clone() {
            tasks.push(tokio::spawn(mail::deliver(state.clone(), cfg)));
        }
        MailDelivery(tasks)
    }
}

impl Drop for MailDelivery {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}
