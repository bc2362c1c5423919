//! The LDAP front end: Linux hosts (SSSD, nslcd), VPN appliances and applications bind and
//! search the directory over LDAP, with the same users, groups, passwords and login limits
//! as the API and the portal (everything goes through `ops/`).
//!
//! Two listeners: plain LDAP, where nothing but the root DSE and StartTLS is served before
//! TLS, and LDAPS. Both present tetherd's HTTPS certificate. The codec is `ldap3_proto`
//! (Kanidm's); the messages it parses are bounded in size and depth.

mod conn;
pub mod entries;
pub mod filter;

/// The codec, for tools and fuzz targets that speak to the front end's parser directly.
pub use ldap3_proto;
pub use tokio_util::bytes::BytesMut;
pub use tokio_util::codec::Decoder;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use tether_core::ldap::Tree;
use tokio::net::TcpListener;

use crate::state::AppState;
use conn::{Ended, Session};

/// How long a client may take to complete the TLS handshake after StartTLS.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Which LDAP listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// LDAP; TLS by StartTLS.
    StartTls,
    /// LDAP over TLS from the first byte.
    Ldaps,
}

/// Serves LDAP on `listener` until `shutdown` completes; open connections finish on their own.
pub async fn run(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    mode: Mode,
    state: AppState,
    base_dn: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tree = Tree::new(base_dn);
    tokio::pin!(shutdown);
    match mode {
        Mode::StartTls => loop {
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "LDAP accept failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => return Ok(()),
            };
            let _ = tcp.set_nodelay(true);
            let (state, tree, tls) = (state.clone(), tree.clone(), tls.clone());
            tokio::spawn(async move {
                let mut session = Session::new(state, tree, peer, false);
                if let Ended::StartTls(tcp) = session.serve(tcp).await {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            session.tls = true;
                            session.serve(stream).await;
                        }
                        _ => tracing::debug!(%peer, "StartTLS handshake failed"),
                    }
                }
            });
        },
        Mode::Ldaps => {
            use axum::serve::Listener;
            let mut listener = crate::tls::TlsListener::new(listener, tls)?;
            loop {
                let (stream, peer) = tokio::select! {
                    c = listener.accept() => c,
                    _ = &mut shutdown => return Ok(()),
                };
                let (state, tree) = (state.clone(), tree.clone());
                tokio::spawn(async move {
                    Session::new(state, tree, peer, true).serve(stream).await;
                });
            }
        }
    }
}
