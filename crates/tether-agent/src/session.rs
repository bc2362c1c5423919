//! The agent's identity with `tetherd`: registration with the one-time connect key, the
//! token kept in `StateDir`, and heartbeats.
//!
//! The token is made here and written to `StateDir` before the registration call, so a
//! crash at any point leaves either no token (register afresh) or a token the server has or
//! will accept with the same connect key (registration is idempotent for that pair).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tether_core::ad::AdStatus;
use tether_core::wire::{
    Ack, Acked, AuthRequest, AuthResult, CapturedPassword, FeedItem, Heartbeat, HeartbeatReply, ImportOutcome,
    ImportReport, PasswordsStored, Poll, Register, Registered, Secret, SyncStatus,
};

use crate::config::ServerSection;
use crate::AgentError;

#[derive(Clone, Serialize, Deserialize, Default)]
struct Saved {
    token: String,
    agent_id: Option<String>,
    domain_id: Option<String>,
}

#[derive(Clone)]
pub struct Session {
    client: reqwest::Client,
    url: String,
    token: String,
    pub agent_id: String,
    pub domain_id: String,
    /// The agent's AD connection as of its last attempt, sent with every heartbeat.
    ad: std::sync::Arc<std::sync::Mutex<Option<AdStatus>>>,
    pub metrics: std::sync::Arc<crate::metrics::AgentMetrics>,
}

/// What a heartbeat tells the agent: paused, primary, and the primary's fencing token.
pub type Beat = HeartbeatReply;

/// The short code of an error for status and metrics (`connect`, `52e`, `rc53`, …).
fn code_of(e: &AgentError) -> String {
    match e {
        AgentError::Ad(e) => e.code(),
        _ => "server".into(),
    }
}

fn state_err(path: &Path, e: impl std::fmt::Display) -> AgentError {
    AgentError::State { path: path.display().to_string(), reason: e.to_string() }
}

fn load(path: &Path) -> Result<Option<Saved>, AgentError> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t).map(Some).map_err(|e| state_err(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(state_err(path, e)),
    }
}

/// Writes a state file atomically (temporary file, fsync, rename) with mode 0600: state
/// files hold the token and what the agent saw in AD.
pub(crate) fn write_state(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| state_err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| state_err(&tmp, e))?;
    f.sync_all().map_err(|e| state_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| state_err(path, e))
}

fn save(path: &Path, s: &Saved) -> Result<(), AgentError> {
    write_state(path, serde_json::to_string_pretty(&serde_json::json!(s)).expect("serializes").as_bytes())
}

fn new_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("OS randomness");
    hex::encode(b)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Posts one message of the agent protocol and reads the typed answer.
async fn post<B: serde::Serialize + ?Sized, R: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &B,
) -> Result<R, AgentError> {
    let mut req = client.post(url).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp =
        req.send().await.map_err(|e| AgentError::Unreachable { url: url.to_string(), reason: error_chain(&e) })?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    if status == 200 {
        return serde_json::from_slice(&bytes).map_err(|e| AgentError::Server {
            url: url.to_string(),
            status,
            message: format!("unexpected answer: {e}"),
            reason: None,
        });
    }
    // An error's `message` and reason (the public error body), read from whatever came back.
    #[derive(Deserialize)]
    struct ErrorBody {
        message: Option<String>,
        status: Option<String>,
    }
    let body = serde_json::from_slice::<ErrorBody>(&bytes).ok();
    let reason = body.as_ref().and_then(|b| b.status.clone());
    let message = body.and_then(|b| b.message).unwrap_or_else(|| "no message".to_string());
    Err(AgentError::Server { url: url.to_string(), status, message, reason })
}

/// The HTTPS client of an agent: the system's roots plus `Server.CaFile`, TLS 1.2 or later.
fn http_client(server: &ServerSection) -> Result<reqwest::Client, AgentError> {
    let unreachable = |reason: String| AgentError::Unreachable { url: server.url.clone(), reason };
    // Checked when the config was loaded; checked again here, for what it says about TLS.
    let tls = tether_core::transport::check_server_url(&server.url).map_err(unreachable)?;
    let mut b = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .https_only(tls);
    if let Some(ca) = &server.ca_file {
        for cert in crate::config::server_ca(ca).map_err(unreachable)? {
            b = b.add_root_certificate(cert);
        }
    }
    b.build().map_err(|e| unreachable(error_chain(&e)))
}

/// An error with its causes ("error sending request: … invalid peer certificate: UnknownIssuer"):
/// reqwest's own message names only the URL.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text = format!("{text}: {next}");
        }
        cause = c.source();
    }
    text
}

/// Feed entries asked for per poll.
const SYNC_BATCH: u64 = 25;

impl Session {
    /// Registers (or resumes the registration kept in `state_dir`).
    pub async fn establish(
        server: &ServerSection,
        state_dir: &Path,
        installed_on: &str,
    ) -> Result<Session, AgentError> {
        std::fs::create_dir_all(state_dir).map_err(|e| state_err(state_dir, e))?;
        let path: PathBuf = state_dir.join("agent.json");
        let mut saved = match load(&path)? {
            Some(s) => s,
            None => {
                let s = Saved { token: new_token(), ..Saved::default() };
                save(&path, &s)?;
                s
            }
        };
        let client = http_client(server)?;
        let base = server.url.trim_end_matches('/').to_string();
        if let (Some(agent_id), Some(domain_id)) = (saved.agent_id.clone(), saved.domain_id.clone()) {
            return Ok(Session {
                client,
                url: base,
                token: saved.token,
                agent_id,
                domain_id,
                ad: Default::default(),
                metrics: Default::default(),
            });
        }
        let url = format!("{base}/api/agent/v1/register");
        let body = Register {
            connect_key: Some(Secret(server.connect_key.0.clone())),
            token: Some(Secret(saved.token.clone())),
            hostname: Some(hostname()),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
            installed_on: serde_json::from_value(Value::String(installed_on.to_string())).ok(),
        };
        let reply: Registered = match post(&client, &url, None, &body).await {
            Err(AgentError::Server { status: 401, message, reason, .. }) => {
                return Err(AgentError::Server {
                    url,
                    status: 401,
                    message: format!("{message} (check Server.ConnectKey)"),
                    reason,
                })
            }
            other => other?,
        };
        saved.agent_id = Some(reply.agent_id);
        saved.domain_id = Some(reply.domain_id);
        save(&path, &saved)?;
        tracing::info!(agent = ?saved.agent_id, domain = %reply.domain, "registered with tetherd");
        Ok(Session {
            client,
            url: base,
            token: saved.token,
            agent_id: saved.agent_id.unwrap_or_default(),
            domain_id: saved.domain_id.unwrap_or_default(),
            ad: Default::default(),
            metrics: Default::default(),
        })
    }

    /// Sends one import cycle's report; answers what the server applied.
    pub async fn report_import(&self, report: &ImportReport) -> Result<ImportOutcome, AgentError> {
        let url = format!("{}/api/agent/v1/import", self.url);
        match post(&self.client, &url, Some(&self.token), report).await {
            Err(AgentError::Server { status: 401, .. }) => Err(AgentError::Revoked),
            other => other,
        }
    }

    /// Sends captured password hashes.
    pub async fn send_passwords(&self, hashes: &[CapturedPassword]) -> Result<PasswordsStored, AgentError> {
        let url = format!("{}/api/agent/v1/passwords", self.url);
        match post(&self.client, &url, Some(&self.token), hashes).await {
            Err(AgentError::Server { status: 401, .. }) => Err(AgentError::Revoked),
            other => other,
        }
    }

    /// Long-polls the change feed of the agent's domain.
    pub async fn sync_poll(&self, wait_ms: u64) -> Result<Vec<FeedItem>, AgentError> {
        // A few entries at a time: one entry may carry a whole group's members, and each
        // costs an LDAP write or more, so a small batch neither starves nor swells the agent.
        let poll = Poll { wait_ms: Some(wait_ms), limit: Some(SYNC_BATCH), deltas: true };
        self.call("/api/agent/v1/sync/poll", &poll).await
    }

    /// Acknowledges the feed up to `seq` (applied in AD).
    pub async fn sync_ack(&self, seq: i64) -> Result<(), AgentError> {
        self.call::<_, Acked>("/api/agent/v1/sync/ack", &Ack { seq: Some(seq) }).await.map(|_| ())
    }

    /// Reports the outcome of writing a user to AD.
    pub async fn sync_status(&self, status: &SyncStatus) -> Result<(), AgentError> {
        self.call::<_, serde::de::IgnoredAny>("/api/agent/v1/sync/status", status).await.map(|_| ())
    }

    /// An authenticated call; a revoked token is [`AgentError::Revoked`].
    async fn call<B: Serialize + ?Sized, R: DeserializeOwned>(&self, path: &str, body: &B) -> Result<R, AgentError> {
        let url = format!("{}{path}", self.url);
        match post(&self.client, &url, Some(&self.token), body).await {
            Err(AgentError::Server { status: 401, .. }) => Err(AgentError::Revoked),
            other => other,
        }
    }

    /// Long-polls for delegated password checks.
    pub async fn auth_poll(&self, wait_ms: u64) -> Result<Vec<AuthRequest>, AgentError> {
        self.call("/api/agent/v1/auth/poll", &Poll { wait_ms: Some(wait_ms), limit: None, deltas: false }).await
    }

    /// Answers a delegated verification: accepted (`None`) or refused, with AD's reason.
    pub async fn auth_result(&self, id: &str, refused: Option<tether_ad::BindFailure>) -> Result<(), AgentError> {
        let url = format!("{}/api/agent/v1/auth/result", self.url);
        let body = AuthResult {
            id: id.to_string(),
            ok: refused.is_none(),
            reason: refused.map(|f| f.reason().to_string()),
            code: refused.map(|f| f.code().to_string()),
        };
        post::<_, serde::de::IgnoredAny>(&self.client, &url, Some(&self.token), &body).await.map(|_| ())
    }

    /// The registration kept in `state_dir`, without contacting the server (for dry runs,
    /// which must change nothing).
    pub fn resume(server: &ServerSection, state_dir: &Path) -> Result<Session, AgentError> {
        let path = state_dir.join("agent.json");
        let saved = load(&path)?.filter(|s| s.agent_id.is_some()).ok_or_else(|| AgentError::State {
            path: path.display().to_string(),
            reason: "the agent is not registered yet: run it once without --dry-run".into(),
        })?;
        let client = http_client(server)?;
        Ok(Session {
            client,
            url: server.url.trim_end_matches('/').to_string(),
            token: saved.token,
            agent_id: saved.agent_id.unwrap_or_default(),
            domain_id: saved.domain_id.unwrap_or_default(),
            ad: Default::default(),
            metrics: Default::default(),
        })
    }

    /// Records that AD answered (ends an outage).
    pub fn ad_reachable(&self) {
        let mut ad = self.ad.lock().expect("not poisoned");
        if ad.as_ref().is_some_and(|a| !a.reachable) {
            tracing::info!("AD is reachable again");
        }
        self.metrics.ad_reachable(true);
        *ad = Some(AdStatus { reachable: true, ..AdStatus::default() });
    }

    /// Records that AD could not be reached (starts or continues an outage).
    pub fn ad_unreachable(&self, error: &AgentError) {
        let mut ad = self.ad.lock().expect("not poisoned");
        let outage = ad.as_ref().filter(|a| !a.reachable);
        if outage.is_none() {
            self.metrics.ad_error(&code_of(error));
        }
        self.metrics.ad_reachable(false);
        let since = match outage.and_then(|a| a.since.clone()) {
            Some(s) => s,
            None => tether_core::timestamp(time::OffsetDateTime::now_utc()),
        };
        *ad = Some(AdStatus {
            reachable: false,
            since: Some(since),
            error: Some(error.to_string()),
            code: Some(code_of(error)),
        });
    }

    /// Tells the server the agent is alive (and how its AD connection is); learns whether it
    /// is paused.
    pub async fn heartbeat(&self) -> Result<Beat, AgentError> {
        let url = format!("{}/api/agent/v1/heartbeat", self.url);
        let body = Heartbeat { ad: self.ad.lock().expect("not poisoned").clone() };
        match post(&self.client, &url, Some(&self.token), &body).await {
            Err(AgentError::Server { status: 401, .. }) => Err(AgentError::Revoked),
            other => other,
        }
    }
}
