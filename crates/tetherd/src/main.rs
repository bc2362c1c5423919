//! `tetherd`: the directory server. Parses flags, opens storage, serves.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use tether_server::secrets::SecretKey;
use tether_server::tls::ServerTls;
use tether_server::{AppState, ServerConfig};
use tether_store::postgres::PgStore;
use tether_store::sqlite::SqliteStore;
use tether_store::{Repo, Store};

#[derive(Parser)]
#[command(name = "tetherd", version, about = "The Tether directory server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API and the agent API.
    Serve(Serve),
}

#[derive(clap::Args)]
struct Serve {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "TETHER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Directory of the embedded SQLite database.
    #[arg(long, env = "TETHER_DATA_DIR", default_value = "./tether-data")]
    data_dir: PathBuf,
    /// `postgres://…` selects PostgreSQL instead of the embedded store (several tetherd
    /// processes may share one database).
    #[arg(long, env = "TETHER_DATABASE_URL")]
    database_url: Option<String>,
    /// Creates, once, an administrator API key with this value if none exists yet.
    #[arg(long, env = "TETHER_BOOTSTRAP_API_KEY", hide_env_values = true)]
    bootstrap_api_key: Option<String>,
    /// Seconds a paused agent waits before it may be deleted.
    #[arg(long, env = "TETHER_AGENT_DELETE_GRACE", default_value_t = 900)]
    agent_delete_grace: u64,
    /// `host:port` of an SMTP relay that delivers the notifications outbox (off when unset).
    #[arg(long, env = "TETHER_SMTP_RELAY")]
    smtp_relay: Option<String>,
    /// Sender address of notification emails.
    #[arg(long, env = "TETHER_SMTP_FROM", default_value = "tether@localhost")]
    smtp_from: String,
    /// Certificate chain (PEM, leaf first) to serve HTTPS with; reloaded on SIGHUP.
    #[arg(long, env = "TETHER_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `--tls-cert`.
    #[arg(long, env = "TETHER_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// The key (64 hex digits, mode 0600) that seals passwords waiting for a sync agent;
    /// default `secret.key` in `--data-dir`, made on first start (a file given here must
    /// exist). Several tetherd on one PostgreSQL database must share one.
    #[arg(long, env = "TETHER_SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
    /// Days a password waits in the change feed for its sync agent before it is forgotten.
    #[arg(long, env = "TETHER_FEED_PASSWORD_DAYS", default_value_t = 7)]
    feed_password_days: u32,
    /// A token scrapers must send (`Authorization: Bearer …`) to read `GET /metrics`.
    #[arg(long, env = "TETHER_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Serve plain HTTP on a non-loopback address: only behind a TLS-terminating reverse proxy.
    #[arg(long, env = "TETHER_PLAIN_HTTP")]
    plain_http: bool,
    /// Serve LDAP (binds only after StartTLS) on this address; needs --tls-cert/--tls-key.
    #[arg(long, env = "TETHER_LDAP_LISTEN")]
    ldap_listen: Option<String>,
    /// Serve LDAP over TLS on this address; needs --tls-cert/--tls-key.
    #[arg(long, env = "TETHER_LDAPS_LISTEN")]
    ldaps_listen: Option<String>,
    /// The base DN of the LDAP tree (users under `ou=Users`, groups under `ou=Groups`).
    #[arg(long, env = "TETHER_LDAP_BASE_DN", default_value = "o=tether")]
    ldap_base_dn: String,
    /// Serve RADIUS (UDP) on this address, to the RADIUS servers' network source addresses.
    #[arg(long, env = "TETHER_RADIUS_LISTEN")]
    radius_listen: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tether_server::memory::return_large_blocks_to_the_system();
    // Logs go to stderr: human-readable, or one JSON object per line with TETHER_LOG_FORMAT=json.
    let filter = tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG").unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match std::env::var("TETHER_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().init(),
        Ok("text") | Err(_) => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        Ok(other) => anyhow::bail!("TETHER_LOG_FORMAT: `{other}` is not a log format (json or text)"),
    }
    let Command::Serve(args) = Cli::parse().command;
    serve(args).await
}

async fn serve(args: Serve) -> anyhow::Result<()> {
    // Bind first: a bad address fails before anything is written to disk.
    let listener =
        tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("--listen {}", args.listen))?;
    let addr = listener.local_addr()?;
    let tls = transport(&args, addr)?;
    let ldap = ldap_listeners(&args, tls.as_ref()).await?;
    let radius = match args.radius_listen.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => Some(tokio::net::UdpSocket::bind(a).await.with_context(|| format!("--radius-listen {a}"))?),
        None => None,
    };
    // Everything tetherd writes is for its own user only.
    unsafe { libc::umask(0o077) };
    let secret_key = match &args.secret_key_file {
        // Given explicitly, the file must exist: a typo or an unmounted volume must not make a
        // new key that the other tetherd of the database do not have.
        Some(path) => SecretKey::load_or_create(path, false).map_err(|e| anyhow::anyhow!("--secret-key-file: {e}"))?,
        None => {
            tether_store::private_dir(&args.data_dir).map_err(|e| anyhow::anyhow!("--data-dir: {e}"))?;
            SecretKey::load_or_create(&args.data_dir.join("secret.key"), true)
                .map_err(|e| anyhow::anyhow!("--data-dir: {e}"))?
        }
    };
    if args.feed_password_days == 0 {
        bail!("--feed-password-days: at least 1");
    }
    let embedded = matches!(args.database_url.as_deref(), None | Some(""));
    // Held until the process ends (with the embedded store only).
    let _data_dir_lock = if embedded { Some(lock_data_dir(&args.data_dir)?) } else { None };
    let (store, storage): (Arc<dyn Store>, String) = match args.database_url.as_deref() {
        None | Some("") => (
            Arc::new(
                SqliteStore::open(&args.data_dir)
                    .await
                    .with_context(|| format!("--data-dir {}", args.data_dir.display()))?,
            ),
            format!("sqlite:{}", args.data_dir.display()),
        ),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            // The URL may carry a password: neither the error nor the log repeats it.
            (Arc::new(PgStore::connect(url).await.context("--database-url")?), "postgres".to_string())
        }
        Some(_) => bail!("--database-url: expected a postgres:// URL"),
    };
    let config = ServerConfig {
        agent_delete_grace: time::Duration::seconds(
            i64::try_from(args.agent_delete_grace).context("--agent-delete-grace: too large")?,
        ),
        smtp: args
            .smtp_relay
            .filter(|r| !r.is_empty())
            .map(|relay| tether_server::mail::SmtpConfig { relay, from: args.smtp_from.clone() }),
        metrics_token: args.metrics_token.clone().filter(|t| !t.is_empty()),
        // Behind a TLS-terminating proxy the browser speaks HTTPS.
        secure_cookies: args.plain_http,
        behind_proxy: args.plain_http,
        secret_key: Arc::new(secret_key),
        feed_password_ttl: time::Duration::days(i64::from(args.feed_password_days)),
        ldap_base_dn: args.ldap_base_dn.clone(),
        ..ServerConfig::default()
    };
    let state = AppState::new(Repo::new(store), config);
    if let Some(key) = args.bootstrap_api_key.as_deref().filter(|k| !k.is_empty()) {
        if key.len() < 16 {
            bail!("--bootstrap-api-key: at least 16 characters");
        }
        let created = tether_server::bootstrap_api_key(&state, key)
            .await
            .map_err(|e| anyhow::anyhow!("--bootstrap-api-key: {}", e.message))?;
        if created {
            tracing::info!("created the bootstrap administrator API key");
        }
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}://{addr}", if tls.is_some() { "https" } else { "http" })?;
        for (l, mode) in &ldap {
            let name = if *mode == tether_server::ldap::Mode::Ldaps { "ldaps" } else { "ldap" };
            writeln!(out, "{name} on {}", l.local_addr()?)?;
        }
        if let Some(r) = &radius {
            writeln!(out, "radius on {}", r.local_addr()?)?;
        }
        out.flush()?;
    }
    if let Some(tls) = &tls {
        for (listener, mode) in ldap {
            let (state, config, base) = (state.clone(), tls.config_without_alpn(), args.ldap_base_dn.clone());
            tokio::spawn(async move {
                let r = tether_server::ldap::run(listener, config, mode, state, &base, std::future::pending()).await;
                if let Err(e) = r {
                    tracing::error!(error = %e, "the LDAP front end stopped");
                }
            });
        }
    }
    if let Some(socket) = radius {
        let state = state.clone();
        // EAP-TTLS uses tetherd's certificate (replaced on SIGHUP like the others).
        let eap = tls.as_ref().map(|t| t.config_for_eap());
        if eap.is_none() {
            tracing::warn!("RADIUS without --tls-cert: PAP only, EAP-TTLS (WPA-Enterprise) is refused");
        }
        tokio::spawn(async move {
            if let Err(e) = tether_server::radius::run(socket, state, eap, std::future::pending()).await {
                tracing::error!(error = %e, "the RADIUS front end stopped");
            }
        });
    }
    tracing::info!(%addr, %storage, tls = tls.is_some(), "tetherd serving");
    match tls {
        Some(tls) => {
            let tls = Arc::new(tls);
            tokio::spawn(reload_on_sighup(tls.clone()));
            tether_server::run_tls(listener, &tls, state, shutdown_signal()).await?
        }
        None => tether_server::run(listener, state, shutdown_signal()).await?,
    }
    tracing::info!("tetherd stopped");
    Ok(())
}

/// HTTPS with the given certificate, or plain HTTP where that is safe: on a loopback address,
/// or behind a TLS-terminating proxy the admin vouches for with `--plain-http`.
fn transport(args: &Serve, addr: std::net::SocketAddr) -> anyhow::Result<Option<ServerTls>> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = ServerTls::load(cert, key).context("--tls-cert/--tls-key")?;
            Ok(Some(tls))
        }
        (Some(_), None) => bail!("--tls-cert needs --tls-key (the certificate's private key, PEM)"),
        (None, Some(_)) => bail!("--tls-key needs --tls-cert (the certificate chain, PEM)"),
        (None, None) if addr.ip().is_loopback() || args.plain_http => Ok(None),
        (None, None) => bail!(
            "--listen {addr} is not a loopback address: plain HTTP there would carry agent tokens and \
             passwords in clear. Give --tls-cert FILE --tls-key FILE to serve HTTPS, or --plain-http \
             if a TLS-terminating reverse proxy stands in front"
        ),
    }
}

/// The LDAP listeners asked for, bound now: both need the HTTPS certificate.
async fn ldap_listeners(
    args: &Serve,
    tls: Option<&ServerTls>,
) -> anyhow::Result<Vec<(tokio::net::TcpListener, tether_server::ldap::Mode)>> {
    use tether_server::ldap::Mode;
    let mut out = Vec::new();
    for (flag, addr, mode) in
        [("--ldap-listen", &args.ldap_listen, Mode::StartTls), ("--ldaps-listen", &args.ldaps_listen, Mode::Ldaps)]
    {
        let Some(addr) = addr.as_deref().filter(|a| !a.is_empty()) else { continue };
        if tls.is_none() {
            bail!(
                "{flag} needs --tls-cert FILE --tls-key FILE: LDAP binds carry passwords and are served over TLS only"
            );
        }
        tether_server::ldap::Tree::parse(&args.ldap_base_dn).map_err(|e| anyhow::anyhow!("--ldap-base-dn: {e}"))?;
        let l = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("{flag} {addr}"))?;
        out.push((l, mode));
    }
    Ok(out)
}

/// SIGHUP re-reads the certificate and key: new connections get the new certificate, open
/// ones are not dropped; a bad file keeps the old certificate.
async fn reload_on_sighup(tls: Arc<ServerTls>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => tracing::error!(error = %e, "TLS certificate not reloaded; the previous one stays in use"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}

/// Takes `DIR/tetherd.lock` for the life of the process. The embedded store serves one
/// tetherd: its directory caches and the queue of delegated logins live in that process, so a
/// second tetherd on the same directory would answer from stale memory or leave logins
/// unanswered. It is refused instead (several tetherd share a PostgreSQL database).
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    tether_store::private_dir(dir).map_err(|e| anyhow::anyhow!("--data-dir: {e}"))?;
    let path = dir.join("tetherd.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("--data-dir: cannot open {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns; the lock goes with the file.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!(
            "--data-dir {}: in use by another tetherd (the embedded store serves one process; \
             several tetherd share a PostgreSQL database: --database-url)",
            dir.display()
        );
    }
    Ok(file)
}
