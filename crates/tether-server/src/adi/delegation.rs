//! Delegated authentication: `POST /api/v2/auth/verify` for a user whose delegated
//! authority is Active Directory is answered by AD through an import agent.
//!
//! Agents only make outbound connections, so requests wait until an import agent of the
//! user's domain long-polls for them, binds to AD as the user and posts the result.
//!
//! Where the queue lives depends on who else may hold it:
//! - **In memory** when this process is its store's only writer (the embedded store: one
//!   tetherd). A login then costs no store write and no polling, and the password never
//!   reaches the disk, even sealed: a check's hop through tetherd is a hand-over between two
//!   waiting requests.
//! - **In the store's shared state** when other tetherd share the store (PostgreSQL): the
//!   agent may poll another tetherd than the one the login arrived at. The request (sealed
//!   with tetherd's key, password included, and removed when taken or given up), the domain
//!   it was asked of, and the answer. Each request is taken by exactly one poll (an atomic
//!   delete). Within one tetherd the waiting sides are also woken at once; across tetherd
//!   they look every [`POLL`].
//!
//! Either way an answer is accepted only from an agent of the domain the request was asked
//! of, and a request is withdrawn when its caller gives up (or goes away).

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

/// Queues `req` for `domain` in the store (with PostgreSQL): the domain asked, then the
/// request sealed with tetherd's key, both expiring a second after the caller gives up.
async fn enqueue(
    repo: Repo,
    key: Arc<SecretKey>,
    now: i64,
    domain: String,
    req: AuthRequest,
    timeout: Duration,
) -> Result<(), StoreError> {
    let store = repo.store();
    let expires = now + timeout.as_secs() as i64 + 1;
    store.expire_shared(now).await?;
    store.put_shared(&asked(&req.id), &json!(domain), expires).await?;
    let plain = serde_json::to_string(&json!({"dn": req.dn, "password": req.password.0})).expect("serializes");
    let sealed = json!({"sealed": key.seal(&plain, &req.id)});
    store.put_shared(&queued(&domain, &req.id), &sealed, expires).await
}

/// The queue of delegated checks, and this process's callers waiting for their results.
pub struct Broker {
    repo: Repo,
    key: Arc<SecretKey>,
    clock: Clock,
    /// This process is the store's only writer: the queue is [`Broker::pending`].
    alone: bool,
    /// By request id: the domain asked and the caller waiting in this process (answered at
    /// once when the agent's result reaches this process).
    waiting: Mutex<HashMap<String, (String, oneshot::Sender<AuthResult>)>>,
    /// When `alone`: the requests no agent has taken yet, by domain.
    pending: Mutex<HashMap<String, Vec<AuthRequest>>>,
    wake: Notify,
}

/// Withdraws a request when its caller stops waiting, answered or not, and also when the
/// caller goes away mid-wait (a client that disconnects drops the handler): no agent may pick
/// the request, and its password, up any more.
struct Withdraw<'a> {
    broker: &'a Broker,
    domain: &'a str,
    id: String,
    /// In the store: the write queuing the request while it runs. A caller that goes away
    /// meanwhile withdraws the request once that write has landed, not before (a delete run
    /// first would leave the request queued behind it until it expires).
    enqueuing: Option<tokio::task::JoinHandle<Result<(), StoreError>>>,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        let b = self.broker;
        b.waiting.lock().expect("lock").remove(&self.id);
        if b.alone {
            let mut pending = b.pending.lock().expect("lock");
            if let Some(q) = pending.get_mut(self.domain) {
                q.retain(|r| r.id != self.id);
                if q.is_empty() {
                    pending.remove(self.domain);
                }
            }
        } else {
            // Deleted by a task of its own: the caller's answer does not wait for it (and a
            // runtime shutting down leaves them to expire, within the timeout).
            let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
            let (store, domain, id) = (b.repo.clone(), self.domain.to_string(), self.id.clone());
            let enqueuing = self.enqueuing.take();
            runtime.spawn(async move {
                if let Some(write) = enqueuing {
                    let _ = write.await;
                }
                for k in [queued(&domain, &id), asked(&id), answered(&id)] {
                    let _ = store.store().delete_shared(&k).await;
                }
            });
        }
    }
}

impl Broker {
    pub fn new(repo: Repo, key: Arc<SecretKey>, clock: Clock) -> Self {
        // Only the embedded store has a single writer (see `Store::directory_version`).
        let alone = repo.store().directory_version().is_some();
        Broker { repo, key, clock, alone, waiting: Mutex::default(), pending: Mutex::default(), wake: Notify::new() }
    }

    fn now(&self) -> i64 {
        (self.clock)().unix_timestamp()
    }

    /// Queues a request for `domain` and waits up to `timeout` for an agent's answer.
    pub async fn verify(&self, domain: &str, req: AuthRequest, timeout: Duration) -> Option<AuthResult> {
        let id = req.id.clone();
        let (tx, mut rx) = oneshot::channel();
        self.waiting.lock().expect("lock").insert(id.clone(), (domain.to_string(), tx));
        let mut withdraw = Withdraw { broker: self, domain, id: id.clone(), enqueuing: None };
        if self.alone {
            self.pending.lock().expect("lock").entry(domain.to_string()).or_default().push(req);
            self.wake.notify_waiters();
            return tokio::time::timeout(timeout, rx).await.ok().and_then(Result::ok);
        }
        let write = enqueue(self.repo.clone(), self.key.clone(), self.now(), domain.to_string(), req, timeout);
        let queued = withdraw.enqueuing.insert(tokio::spawn(write)).await;
        withdraw.enqueuing = None;
        match queued {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "delegated check: the store is unavailable");
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "delegated check: queuing failed");
                return None;
            }
        }
        self.wake.notify_waiters();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                r = &mut rx => return r.ok(),
                _ = tokio::time::sleep(POLL) => {}
            }
            // Answered through another tetherd?
            match self.repo.store().shared(&answered(&id), self.now()).await {
                Ok(Some(v)) => return serde_json::from_value(v).ok(),
                Ok(None) if tokio::time::Instant::now() < deadline => {}
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "delegated check: the store is unavailable");
                    return None;
                }
            }
        }
    }

    /// Takes the pending requests of `domain`, waiting up to `wait` for one to arrive.
    pub async fn take(&self, domain: &str, wait: Duration) -> Result<Vec<AuthRequest>, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        if self.alone {
            loop {
                let notified = self.wake.notified();
                let taken = self.pending.lock().expect("lock").remove(domain).unwrap_or_default();
                if !taken.is_empty() {
                    return Ok(taken);
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return Ok(Vec::new());
                }
            }
        }
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
        if self.alone {
            let mut waiting = self.waiting.lock().expect("lock");
            match waiting.get(&r.id) {
                Some((asked, _)) if asked != domain => return Ok(false),
                Some(_) => {
                    let (_, tx) = waiting.remove(&r.id).expect("just seen");
                    let _ = tx.send(r);
                }
                None => {}
            }
            return Ok(true);
        }
        let store = self.repo.store();
        let now = self.now();
        match store.shared(&asked(&r.id), now).await? {
            Some(d) if d.as_str() != Some(domain) => return Ok(false),
            Some(_) => {}
            None => return Ok(true),
        }
        let local = self.waiting.lock().expect("lock").remove(&r.id);
        match local {
            Some((_, tx)) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A broker on a fresh embedded store; `alone: false` runs the store's queue (as with
    /// PostgreSQL) on it.
    async fn broker(alone: bool) -> (tempfile::TempDir, Broker) {
        let dir = tempfile::tempdir().unwrap();
        let store = tether_store::sqlite::SqliteStore::open(dir.path()).await.unwrap();
        let clock: Clock = Arc::new(time::OffsetDateTime::now_utc);
        let mut b = Broker::new(Repo::new(Arc::new(store)), Arc::new(SecretKey::ephemeral()), clock);
        assert!(b.alone, "the embedded store has one writer");
        b.alone = alone;
        (dir, b)
    }

    async fn queued_now(b: &Broker, domain: &str, id: &str) -> bool {
        if b.alone {
            b.pending.lock().unwrap().get(domain).is_some_and(|q| q.iter().any(|r| r.id == id))
        } else {
            b.repo.store().shared(&queued(domain, id), b.now()).await.unwrap().is_some()
        }
    }

    #[tokio::test]
    async fn a_check_whose_caller_goes_away_is_withdrawn() {
        for alone in [true, false] {
            let (_d, b) = broker(alone).await;
            let req = AuthRequest {
                id: "r1".into(),
                dn: "CN=ann,DC=x".into(),
                password: tether_core::wire::Secret("Pw-1".into()),
            };
            let mut caller = Box::pin(b.verify("d1", req, Duration::from_secs(30)));
            // The caller waits until its check is queued...
            while !queued_now(&b, "d1", "r1").await {
                tokio::select! {
                    _ = &mut caller => panic!("nobody answers"),
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
            assert!(b.waiting.lock().unwrap().contains_key("r1"));
            // ...then goes away (its handler is dropped), long before the timeout.
            drop(caller);
            for _ in 0..400 {
                if !queued_now(&b, "d1", "r1").await {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(!queued_now(&b, "d1", "r1").await, "alone={alone}: still queued");
            assert!(b.take("d1", Duration::ZERO).await.unwrap().is_empty(), "alone={alone}: an agent got it");
            assert!(b.waiting.lock().unwrap().is_empty() && b.pending.lock().unwrap().is_empty(), "alone={alone}");
        }
    }
}
