//! AD accounts a sync agent created with a system-generated password.
//!
//! Tether keeps only a hash of a user's password, so when a user who has one is bound to a
//! domain whose AD has no account for them, the sync agent creates the account with a
//! random password. On a domain controller the import agent captures every new password
//! (a new `pwdLastSet`), this one included; stored, it would replace the password the user
//! knows with one nobody knows. So the sync agent reports the new account's `pwdLastSet`,
//! a capture with that very `pwdLastSet` is the agent's own write and is ignored, and the
//! user's next successful login (any front end) carries the password they typed to AD
//! through the feed, like a password change. Until the sync agent has reported, the
//! account is not linked, and a capture for an unlinked account is ignored anyway.
//! Remembered in the store (one setting per user), so every tetherd sees it.

use std::collections::BTreeMap;

use serde_json::Value;
use tether_core::user::User;

use crate::error::ApiError;
use crate::state::AppState;

fn key(user_id: &str) -> String {
    format!("adGeneratedPassword:{user_id}")
}

/// Domain id → `pwdLastSet` of the generated password there.
async fn load(s: &AppState, user_id: &str) -> Result<BTreeMap<String, i64>, ApiError> {
    let v = s.repo.store().setting(&key(user_id)).await?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default())
}

async fn save(s: &AppState, user_id: &str, m: &BTreeMap<String, i64>) -> Result<(), ApiError> {
    let v = if m.is_empty() { Value::Null } else { serde_json::to_value(m).expect("serializes") };
    s.repo.store().put_setting(&key(user_id), &v).await?;
    Ok(())
}

/// The sync agent of `domain_id` created the user's account with a generated password,
/// set at `pwd_last_set`.
pub(crate) async fn remember(s: &AppState, user_id: &str, domain_id: &str, pwd_last_set: i64) -> Result<(), ApiError> {
    let mut m = load(s, user_id).await?;
    m.insert(domain_id.to_string(), pwd_last_set);
    save(s, user_id, &m).await
}

/// Whether a password captured in `domain_id` at `pwd_last_set` is the generated one. A
/// capture with another `pwdLastSet` is a password someone chose: the mark is dropped.
pub(crate) async fn is_generated(
    s: &AppState,
    user_id: &str,
    domain_id: &str,
    pwd_last_set: Option<i64>,
) -> Result<bool, ApiError> {
    let mut m = load(s, user_id).await?;
    let Some(set) = m.get(domain_id).copied() else { return Ok(false) };
    if pwd_last_set == Some(set) {
        return Ok(true);
    }
    m.remove(domain_id);
    save(s, user_id, &m).await?;
    Ok(false)
}

/// After a successful local login with `password`: when an AD account of the user still has
/// a generated password, the password goes to AD (every domain the user is bound to).
pub(crate) async fn carry_to_ad(s: &AppState, user: &User, password: &str) -> Result<(), ApiError> {
    if load(s, &user.id).await?.is_empty() {
        return Ok(());
    }
    tracing::info!(user = %user.username, "the user's password goes to AD in place of a system-generated one");
    crate::adi::feed::user_changed(s, user, Some(password), crate::adi::feed::Flags::default()).await?;
    save(s, &user.id, &BTreeMap::new()).await
}
