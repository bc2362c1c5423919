//! Delegated authentication on the agent side: long-polls tetherd for password checks and
//! answers each by a simple bind as the user over a small pool of open TLS connections
//! (a re-bind on an open connection costs ~7 ms; a new TLS connection ~70 ms). Checks beyond
//! the pool's size wait for a connection instead of opening one: a burst of logins would
//! otherwise pay a TLS handshake each, and the DC (one process on Samba) answers binds one
//! at a time anyway.

use std::sync::{Arc, Mutex};

use tether_ad::{AdError, BindFailure, Ldap, LdapTarget};
use tether_core::wire::AuthRequest;

use crate::session::Session;
use crate::AgentError;

const POOL_SIZE: usize = 8;
const POLL_WAIT_MS: u64 = 20_000;

/// Open connections kept for re-binding.
struct Pool {
    target: LdapTarget,
    idle: Mutex<Vec<Ldap>>,
    /// One permit per connection of the pool.
    permits: tokio::sync::Semaphore,
}

impl Pool {
    async fn get(&self) -> Result<Ldap, AdError> {
        let pooled = self.idle.lock().expect("lock").pop();
        match pooled {
            Some(l) => Ok(l),
            None => tether_ad::open(&self.target).await,
        }
    }

    fn put(&self, l: Ldap) {
        let mut idle = self.idle.lock().expect("lock");
        if idle.len() < POOL_SIZE {
            idle.push(l);
        }
    }

    /// `Ok(None)` when AD accepted the password, `Ok(Some(reason))` when it refused it,
    /// `Err` when AD could not be asked (then nobody answers and tetherd decides).
    async fn check(&self, dn: &str, password: &str) -> Result<Option<BindFailure>, AdError> {
        if password.is_empty() {
            return Ok(Some(BindFailure::InvalidCredentials));
        }
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        for attempt in 0..2 {
            let mut l = self.get().await?;
            match tether_ad::bind(&mut l, dn, password).await {
                Ok(()) => {
                    self.put(l);
                    return Ok(None);
                }
                Err(AdError::Bind { failure, .. }) => {
                    self.put(l);
                    return Ok(Some(failure));
                }
                // A pooled connection may have been closed by the DC: retry on a fresh one.
                Err(e) if attempt == 1 => return Err(e),
                Err(_) => continue,
            }
        }
        unreachable!("the loop returns")
    }
}

/// Serves password checks until the agent is revoked.
pub async fn serve(session: Session, target: LdapTarget) -> Result<(), AgentError> {
    let pool = Arc::new(Pool { target, idle: Mutex::new(Vec::new()), permits: tokio::sync::Semaphore::new(POOL_SIZE) });
    let mut failures = 0u32;
    loop {
        let reqs = match session.auth_poll(POLL_WAIT_MS).await {
            Ok(r) => {
                failures = 0;
                r
            }
            Err(AgentError::Revoked) => return Err(AgentError::Revoked),
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "delegated authentication: poll failed");
                tokio::time::sleep(crate::retry::backoff(failures)).await;
                continue;
            }
        };
        for r in reqs {
            let (pool, session) = (pool.clone(), session.clone());
            tokio::spawn(async move {
                let AuthRequest { id, dn, password } = r;
                let password = password.0;
                let started = std::time::Instant::now();
                let checked = pool.check(&dn, &password).await;
                let outcome = match &checked {
                    Ok(None) => "accepted",
                    Ok(Some(f)) => {
                        session.metrics.ad_error(f.code());
                        "refused"
                    }
                    Err(_) => "unreachable",
                };
                session.metrics.delegated_auth(outcome, started.elapsed().as_secs_f64());
                match checked {
                    Ok(refused) => {
                        if let Err(e) = session.auth_result(&id, refused).await {
                            tracing::warn!(error = %e, "delegated authentication: cannot post the result");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "delegated authentication: AD unreachable"),
                }
            });
        }
    }
}
