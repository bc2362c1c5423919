//! The operations layer: what the directory does, whichever front end asks. REST routes, the
//! console and the portal (and the coming LDAP and RADIUS front ends) call these functions
//! with typed inputs and get typed outputs or an [`crate::error::ApiError`], which each
//! transport maps to its own answer once (HTTP: the public error table). No operation knows
//! HTTP; no front end writes to the store or the feed directly.

use std::future::Future;

use crate::error::{ApiResult, Code};

pub mod auth;
pub mod decommission;
pub mod domains;
pub mod groups;
pub mod plans;
pub mod users;

/// How many times an operation runs when the documents it read keep changing before it writes.
const ATTEMPTS: usize = 5;

/// Runs `attempt` (read, decide, write) again while its write finds that a document changed
/// since it was read (`STALE`: another request, agent or tetherd wrote it meanwhile), so the
/// decision is always made on the current document; past `ATTEMPTS` the caller gets 409.
pub async fn retrying<T, F, Fut>(mut attempt: F) -> ApiResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ApiResult<T>>,
{
    let mut n = 1;
    loop {
        match attempt().await {
            Err(e) if e.code == Code::Stale && n < ATTEMPTS => {
                tracing::debug!(attempt = n, "a document changed meanwhile; read again");
                n += 1;
            }
            r => return r,
        }
    }
}
