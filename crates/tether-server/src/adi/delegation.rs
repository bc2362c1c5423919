//! Delegated authentication: `POST /api/v2/auth/verify` for a user whose delegated
//! authority is Active Directory is answered by AD through an import agent.
//!
//! Agents only make outbound connections, so requests wait here until an import agent of the
//! user's domain long-polls for them, binds to AD as the user and posts the result. The
//! password is held in memory only for the time of the request.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

pub use tether_core::wire::{AuthRequest, AuthResult};

#[derive(Default)]
struct Domain {
    queue: VecDeque<AuthRequest>,
}

/// Pending requests per domain, and the callers waiting for their results.
#[derive(Default)]
pub struct Broker {
    domains: Mutex<HashMap<String, Domain>>,
    /// By request id: the domain asked and the caller waiting for its answer.
    waiting: Mutex<HashMap<String, (String, oneshot::Sender<AuthResult>)>>,
    wake: Notify,
}

impl Broker {
    /// Queues a request for `domain` and waits up to `timeout` for an agent's answer.
    pub async fn verify(&self, domain: &str, req: AuthRequest, timeout: Duration) -> Option<AuthResult> {
        let (tx, rx) = oneshot::channel();
        let id = req.id.clone();
        self.waiting.lock().expect("lock").insert(id.clone(), (domain.to_string(), tx));
        self.domains.lock().expect("lock").entry(domain.to_string()).or_default().queue.push_back(req);
        self.wake.notify_waiters();
        let r = tokio::time::timeout(timeout, rx).await.ok().and_then(Result::ok);
        // On timeout, make sure no agent picks the stale request (and its password) up.
        self.waiting.lock().expect("lock").remove(&id);
        if let Some(d) = self.domains.lock().expect("lock").get_mut(domain) {
            d.queue.retain(|q| q.id != id);
        }
        r
    }

    /// Takes the pending requests of `domain`, waiting up to `wait` for one to arrive.
    pub async fn take(&self, domain: &str, wait: Duration) -> Vec<AuthRequest> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.wake.notified();
            {
                let mut d = self.domains.lock().expect("lock");
                if let Some(q) = d.get_mut(domain).filter(|q| !q.queue.is_empty()) {
                    return q.queue.drain(..).collect();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Vec::new();
            }
        }
    }

    /// Delivers the result of an agent of `domain` to the waiting caller (ignored if it gave
    /// up). `false` when the request belongs to another domain: an agent answers only for the
    /// users of its own domain, so a compromised agent cannot vouch for another domain's users.
    pub fn answer(&self, domain: &str, r: AuthResult) -> bool {
        let mut waiting = self.waiting.lock().expect("lock");
        match waiting.get(&r.id) {
            Some((asked, _)) if asked != domain => false,
            Some(_) => {
                if let Some((_, tx)) = waiting.remove(&r.id) {
                    let _ = tx.send(r);
                }
                true
            }
            None => true,
        }
    }
}
