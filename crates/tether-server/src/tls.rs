//! HTTPS for tetherd: a certificate that can be replaced while the server runs, and a
//! listener that completes TLS handshakes off the accept loop.
//!
//! The agent ↔ tetherd link carries agent tokens, new passwords and delegated-authentication
//! requests, so it must be encrypted and the server authenticated. Certificates expire and
//! are renewed by tools (certbot, an internal CA) that then signal the server: on
//! [`ServerTls::reload`] new handshakes get the new certificate while open connections keep
//! theirs, so a renewal drops nothing. A reload that fails (a half-written file, a key that
//! does not match) keeps the old certificate and says why.
//!
//! Handshakes run in tasks of their own with a deadline: a client that opens a connection
//! and sends nothing cannot hold up the others; a bounded number may be in progress, and a
//! bounded number from any one address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

/// Why a certificate or key could not be used; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Config(String),
}

/// The certificate tetherd serves, read from PEM files and replaceable at run time.
pub struct ServerTls {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: Arc<Resolver>,
    config: Arc<rustls::ServerConfig>,
    bare: Arc<rustls::ServerConfig>,
    eap: Arc<rustls::ServerConfig>,
}

#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().map(|k| k.clone()).unwrap_or_else(|p| p.into_inner().clone()))
    }
}

fn file_err(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.display().to_string(), reason: reason.to_string() }
}

/// Reads a certificate chain and its private key (PEM) and checks that they belong together.
fn certified_key(cert_path: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| file_err(cert_path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert_path, e))?;
    if certs.is_empty() {
        return Err(file_err(cert_path, "no PEM certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| file_err(key_path, e))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| file_err(key_path, format!("unsupported private key: {e}")))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match().map_err(|e| file_err(key_path, format!("the key does not match the certificate: {e}")))?;
    Ok(Arc::new(ck))
}

impl ServerTls {
    /// Loads `cert` (chain, leaf first) and `key`; TLS 1.2 and 1.3, HTTP/1.1.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let current = Arc::new(Resolver(RwLock::new(certified_key(cert, key)?)));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // The LDAP front ends negotiate no application protocol.
        let bare = Arc::new(config.clone());
        // EAP-TTLS: TLS 1.2, whose key derivation RFC 5281 defines, and no resumption (a
        // resumed tunnel would skip the password check).
        let mut eap = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        eap.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            current,
            config: Arc::new(config),
            bare,
            eap: Arc::new(eap),
        })
    }

    /// Reads the files again; new handshakes use the new certificate, open connections are
    /// left alone. On error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = certified_key(&self.cert_path, &self.key_path)?;
        *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// The rustls configuration of HTTPS.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// The same certificate for front ends that negotiate no ALPN protocol (LDAPS, StartTLS).
    pub fn config_without_alpn(&self) -> Arc<rustls::ServerConfig> {
        self.bare.clone()
    }

    /// The same certificate for EAP-TTLS (RADIUS): TLS 1.2 only, no session resumption.
    pub fn config_for_eap(&self) -> Arc<rustls::ServerConfig> {
        self.eap.clone()
    }
}

/// How long a client may take to complete its handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait in the kernel's backlog.
const HANDSHAKES_AT_ONCE: usize = 1024;
/// Handshakes in progress at once from one address (loopback excepted: local processes):
/// a few addresses that open connections and say nothing cannot take every slot.
const HANDSHAKES_PER_ADDRESS: usize = 16;

/// A listener whose connections have completed a TLS handshake (for `axum::serve`).
pub struct TlsListener {
    local: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(HANDSHAKES_AT_ONCE);
        let acceptor = tokio::spawn(accept_loop(listener, tokio_rustls::TlsAcceptor::from(config), tx));
        Ok(TlsListener { local, ready, acceptor })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    tx: tokio::sync::mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_AT_ONCE));
    let per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Default::default();
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
            _ = tx.closed() => return,
        };
        let Some(slot) = AddressSlot::take(&per_address, peer.ip()) else {
            tracing::debug!(%peer, "too many handshakes in progress from this address; connection dropped");
            continue;
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _slot = slot;
            let _ = tcp.set_nodelay(true);
            match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// One handshake in progress from an address, given back when dropped.
struct AddressSlot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl AddressSlot {
    /// `None` when the address has [`HANDSHAKES_PER_ADDRESS`] in progress already.
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<AddressSlot> {
        let mut m = counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= HANDSHAKES_PER_ADDRESS && !ip.is_loopback() {
            return None;
        }
        *n += 1;
        Some(AddressSlot { ip, counts: counts.clone() })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
