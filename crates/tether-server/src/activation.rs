//! Activation links: how a new user without a password chooses one. The link is made when
//! the email goes to the relay and exists nowhere else; it dies when a password is set
//! another way, on suspension or deletion.

use tether_store::Secret;

use crate::crypto::{random_hex, sha256_hex};
use crate::error::ApiError;
use crate::state::AppState;

/// How long an activation link works.
pub const LIFETIME: time::Duration = time::Duration::hours(72);

/// A new single-use activation link for a user without a password (replacing any earlier
/// one). The token carries its expiry in the clear; only its SHA-256 is stored, so the expiry
/// cannot be changed without invalidating it.
pub async fn link(s: &AppState, user_id: &str) -> Result<String, ApiError> {
    let expires = (s.now() + LIFETIME).unix_timestamp();
    let token = format!("{}{expires:x}", random_hex(24));
    s.repo.store().put_secret(user_id, Secret::Activation, Some(&sha256_hex(&token))).await?;
    Ok(format!("/portal/activate/{token}"))
}

/// A link for an activation email about to be sent, or `None` when the user no longer needs
/// one (has a password, is suspended, or is gone).
pub async fn link_for_email(s: &AppState, user_id: &str) -> Result<Option<String>, ApiError> {
    match s.repo.user(user_id).await? {
        Some(u) if may_activate(&u) => link(s, user_id).await.map(Some),
        _ => Ok(None),
    }
}

/// Only a user without a password, not suspended, may still be activated by a link.
fn may_activate(u: &tether_core::user::User) -> bool {
    !u.has_password && !u.suspended
}

/// The user an activation token belongs to, if it is known, not expired, and the user may
/// still be activated. A link found dead is forgotten, so it stays dead.
pub async fn owner(s: &AppState, token: &str) -> Option<tether_core::user::User> {
    let expires = token.get(48..).and_then(|h| i64::from_str_radix(h, 16).ok())?;
    if s.now().unix_timestamp() >= expires {
        return None;
    }
    let id = s.repo.store().secret_owner(Secret::Activation, &sha256_hex(token)).await.ok().flatten()?;
    match s.repo.user(&id).await.ok().flatten() {
        Some(u) if may_activate(&u) => Some(u),
        _ => {
            let _ = s.repo.store().put_secret(&id, Secret::Activation, None).await;
            None
        }
    }
}
