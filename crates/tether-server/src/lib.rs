//! The directory server: the operations every front end calls (`ops`), the ADI engine
//! (`adi`), and the transports on top: the JumpCloud-shaped REST API and the agent API
//! (`routes`), the console and the portal (`console`).
//!
//! A server is `run(listener, state, shutdown)`, so tests start it in-process on port 0
//! and binaries stay thin. Transports translate their protocol to operations; operations
//! apply the domain rules of `tether-core` to the storage of `tether-store`.

// The layers, lowest first; a module uses only those above it in this list (checked by
// tests/layers.rs). See ARCHITECTURE.md's code map.
mod activation;
mod adi;
mod console;
pub mod crypto;
pub mod error;
mod history;
mod keys;
pub mod ldap;
pub mod mail;
pub mod memory;
mod metrics;
mod notify;
mod ops;
pub mod radius;
mod routes;
pub mod secrets;
mod sessions;
mod state;
mod throttle;
pub mod tls;
mod verified;

use std::future::Future;

use axum::extract::Request;
use axum::http::Uri;
use tower::Layer;

/// The import agent's report, as `POST /api/agent/v1/import` reads it (public for the fuzz targets).
pub use adi::import::{ImportReport, ObservedGroup};
pub use keys::bootstrap_api_key;
/// Request extractors (public for the fuzz targets).
pub use routes::extract;
pub use routes::openapi::openapi_json;
pub use state::{system_clock, AppState, Clock, ServerConfig};

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
    let router = routes::router().merge(console::router()).fallback(routes::not_found).with_state(state);
    let app: App = tower::util::MapRequestLayer::new(lowercase_path as fn(Request) -> Request).layer(router);
    axum::ServiceExt::<Request>::into_make_service_with_connect_info::<std::net::SocketAddr>(app)
}

/// The server's background work while it runs: the notifications outbox's delivery (when an
/// SMTP relay is set), the expiry of feed passwords, and unix ids for users stored before
/// users had them (once).
struct MailDelivery(Vec<tokio::task::JoinHandle<()>>);

impl MailDelivery {
    fn start(state: &AppState) -> Self {
        let mut tasks = vec![tokio::spawn(adi::feed::expire_passwords(state.clone()))];
        let backfill = state.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = ops::unix_ids::backfill(&backfill).await {
                tracing::warn!(error = %e.message, "giving unix ids to the users stored before them");
            }
        }));
        if let Some(cfg) = state.config.smtp.clone() {
            tasks.push(tokio::spawn(notify::deliver(state.clone(), cfg)));
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
