//! Delegated authentication: `POST /api/v2/auth/verify` for a user whose delegated
//! authority is Active Directory is answered by AD through an import agent.
//!
//! Agents only make outbound connections, so requests wait until an import agent of the
//! user's domain long-polls for them, binds to AD as the user and posts the result. The
//! agent may poll another tetherd than the one the login arrived at, so the queue is in the
//! store's shared state: the request (sealed with tetherd's key, password included, and
//! removed when taken or given up), the domain it was asked of, and the answer. Each
//! request is taken by exactly one poll (an atomic delete). Within one tetherd the waiting
//! sides are also woken at once; across tetherd they look every [`POLL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tether_store::{Repo, StoreError};
use tokio::sync::{oneshot, Notify};

pub use tether_core::wire::{AuthRequest, AuthResult};

use crate::secrets::SecretKey;

/// The server's clock (as `state::Clock`; named here so this module stays below the state).
type Clock = Arc<dyn Fn() -> time::OffsetDateTime + Send + Sync>;

/// How often a waiting side looks at the store for what another tetherd did.
pub const POLL: Duration = Duration::from_millis(25);

fn queued(domain: &str, id: &str) -> String {
    format!("authq:{domain}:{id}")
}

fn asked(id: &str) -> String {
    format!("authd:{id}")
}

fn answered(id: &str) -> String {
    format!("autha:{id}")
}

/// The queue of delegated checks, and this process's callers waiting for their results.
pub struct Broker {
    repo: Repo,
    key: Arc<SecretKey>,
    clock: Clock,
    /// By request id: the caller waiting in this process (answered at once when the agent's
    /// result reaches this process).
    waiting: Mutex<HashMap<String, oneshot::Sender<AuthResult>>>,
    wake: Notify,
}

impl Broker {
    pub fn new(repo: Repo, key: Arc<SecretKey>, clock: Clock) -> Self {
        Broker { repo, key, clock, waiting: Mutex::default(), wake: Notify::new() }
    }

    fn now(&self) -> i64 {
        (self.clock)().unix_timestamp()
    }

    /// Queues a request for `domain` and waits up to `timeout` for an agent's answer.
    pub async fn verify(&self, domain: &str, req: AuthRequest, timeout: Duration) -> Option<AuthResult> {
        let id = req.id.clone();
        let (tx, mut rx) = oneshot::channel();
        self.waiting.lock().expect("lock").insert(id.clone(), tx);
        let r = match self.enqueue(domain, &req, timeout).await {
            Ok(()) => {
                self.wake.notify_waiters();
                let deadline = tokio::time::Instant::now() + timeout;
                loop {
                    tokio::select! {
                        r = &mut rx => break r.ok(),
                        _ = tokio::time::sleep(POLL) => {}
                    }
                    // Answered through another tetherd?
                    match self.repo.store().shared(&answered(&id), self.now()).await {
                        Ok(Some(v)) => break serde_json::from_value(v).ok(),
                        Ok(None) if tokio::time::Instant::now() < deadline => {}
                        Ok(None) => break None,
                        Err(e) => {
                            tracing::warn!(error = %e, "delegated check: the store is unavailable");
                            break None;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "delegated check: the store is unavailable");
                None
            }
        };
        // Answered or given up: no agent may pick the request (and its password) up any more.
        self.waiting.lock().expect("lock").remove(&id);
        let store = self.repo.store();
        for k in [queued(domain, &id), asked(&id), answered(&id)] {
            let _ = store.delete_shared(&k).await;
        }
        r
    }

    async fn enqueue(&self, domain: &str, req: &AuthRequest, timeout: Duration) -> Result<(), StoreError> {
        let store = self.repo.store();
        let now = self.now();
        let expires = now + timeout.as_secs() as i64 + 1;
        store.expire_shared(now).await?;
        store.put_shared(&asked(&req.id), &json!(domain), expires).await?;
        let plain = serde_json::to_string(&json!({"dn": req.dn, "password": req.password.0})).expect("serializes");
        let sealed = json!({"sealed": self.key.seal(&plain, &req.id)});
        store.put_shared(&queued(domain, &req.id), &sealed, expires).await
    }

    /// Takes the pending requests of `domain`, waiting up to `wait` for one to arrive.
    pub async fn take(&self, domain: &str, wait: Duration) -> Result<Vec<AuthRequest>, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        let prefix = format!("authq:{domain}:");
        loop {
            let notified = self.wake.notified();
            let taken = self.repo.store().take_shared(&prefix, self.now()).await?;
            let requests: Vec<AuthRequest> =
                taken.into_iter().filter_map(|(k, v)| self.open(k.strip_prefix(&prefix)?, &v)).collect();
            if !requests.is_empty() {
                return Ok(requests);
            }
            // Woken at once within this tetherd; another's requests are looked for every POLL.
            let _ = tokio::time::timeout_at((tokio::time::Instant::now() + POLL).min(deadline), notified).await;
            if tokio::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    fn open(&self, id: &str, v: &Value) -> Option<AuthRequest> {
        let plain = self.key.open(v["sealed"].as_str()?, id)?;
        let p: Value = serde_json::from_str(&plain).ok()?;
        Some(AuthRequest {
            id: id.to_string(),
            dn: p["dn"].as_str()?.to_string(),
            password: tether_core::wire::Secret(p["password"].as_str()?.to_string()),
        })
    }

    /// Delivers the result of an agent of `domain` to the waiting caller (ignored if it gave
    /// up). `false` when the request belongs to another domain: an agent answers only for the
    /// users of its own domain, so a compromised agent cannot vouch for another domain's users.
    pub async fn answer(&self, domain: &str, r: AuthResult) -> Result<bool, StoreError> {
        let store = self.repo.store();
        let now = self.now();
        match store.shared(&asked(&r.id), now).await? {
            Some(d) if d.as_str() != Some(domain) => return Ok(false),
            Some(_) => {}
            None => return Ok(true),
        }
        let local = self.waiting.lock().expect("lock").remove(&r.id);
        match local {
            Some(tx) => {
                let _ = tx.send(r);
            }
            None => {
                let v = serde_json::to_value(&r).expect("serializes");
                store.put_shared(&answered(&r.id), &v, now + 60).await?;
            }
        }
        Ok(true)
    }
}
