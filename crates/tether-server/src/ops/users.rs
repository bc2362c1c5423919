//! Users: create, update (the admin's, the portal's, a bulk job's), delete, and the state
//! endpoints (unlock, expire). Every write stores the user and its password hash, appends the
//! feed entry for the user's AD domains and records the history entry, whichever front end
//! asked.

use serde_json::{json, Value};
use tether_core::actor::Actor;
use tether_core::patch::{create_user, update_user, UserWrite};
use tether_core::user::User;
use tether_store::{Collection, Repo};

use crate::adi::feed::{self, Flags};
use crate::crypto::{hash_password, new_id, verify_password};
use crate::error::{ApiError, ApiResult, Code};
use crate::history;
use crate::state::AppState;

pub async fn load(repo: &Repo, id: &str) -> ApiResult<User> {
    repo.user(id).await?.ok_or_else(|| ApiError::not_found("user", id))
}

/// Checks references a write introduced (the manager must be an existing user).
async fn check_references(repo: &Repo, u: &User) -> ApiResult<()> {
    if let Some(m) = u.manager.as_deref().filter(|m| !m.is_empty()) {
        if repo.user(m).await?.is_none() {
            return Err(ApiError::new(Code::InvalidField, format!("invalid value for `manager`: no user `{m}`")));
        }
    }
    for (key, a) in [("passwordAuthority", &u.password_authority), ("delegatedAuthority", &u.delegated_authority)] {
        if let Some(a) = a {
            if repo.get::<Value>(Collection::Domains, &a.id).await?.is_none() {
                let msg = format!("invalid value for `{key}`: no Active Directory domain `{}`", a.id);
                return Err(ApiError::new(Code::InvalidField, msg));
            }
        }
    }
    Ok(())
}

/// Creates a user from a create body (the restricted fields and the password policy apply).
pub async fn create(s: &AppState, body: &Value, actor: Actor) -> ApiResult<User> {
    let settings = s.repo.settings().await?;
    let UserWrite { user, password } = create_user(body, &settings, &new_id(), &s.now_str())?;
    check_references(&s.repo, &user).await?;
    let mut user = user;
    super::unix_ids::assign_user(s, &mut user).await?;
    let hash = match password {
        Some(p) => {
            user.password_date = Some(s.now_str());
            Some(hash_password(p).await?)
        }
        None => None,
    };
    s.repo.insert_user(&user, hash.as_deref()).await?;
    history::record(s, history::Of::User(&user.id), actor, "create", history::diff(None, Some(&user)), None).await?;
    Ok(user)
}

/// Applies an update body to a stored user and saves it (on the user as it is then: read
/// again when it changed meanwhile).
pub async fn apply_update(s: &AppState, id: &str, body: &Value, actor: &Actor) -> ApiResult<User> {
    super::retrying(|| apply_update_once(s, id, body, actor)).await
}

async fn apply_update_once(s: &AppState, id: &str, body: &Value, actor: &Actor) -> ApiResult<User> {
    let current = load(&s.repo, id).await?;
    let settings = s.repo.settings().await?;
    // The restricted-field rule lets an unchanged password through; that needs a
    // verification, done up front only when a password was sent.
    let same = match (body.get("password").and_then(Value::as_str), s.repo.password_hash(id).await?) {
        (Some(p), Some(h)) => verify_password(p.to_string(), h).await,
        _ => false,
    };
    let write = update_user(&current, body, &settings, &|_| same)?;
    save_update(s, &current, write, actor).await
}

/// A user changes their own password (the portal, LDAP Password Modify): the directory's
/// policy applies, and the password reaches AD like any password change.
pub async fn change_own_password(s: &AppState, user: &User, new: &str, actor: &Actor) -> ApiResult<User> {
    let settings = s.repo.settings().await?;
    let write = tether_core::patch::change_own_password(user, new, &settings)?;
    save_update(s, user, write, actor).await
}

/// Stores a decided update: the user, its new password's hash, the feed entry for its AD
/// domains and the history entry.
pub async fn save_update(s: &AppState, current: &User, write: UserWrite, actor: &Actor) -> ApiResult<User> {
    let id = current.id.as_str();
    let UserWrite { mut user, password } = write;
    check_references(&s.repo, &user).await?;
    if (user.unix_uid, user.unix_guid) != (current.unix_uid, current.unix_guid) {
        super::unix_ids::assign_user(s, &mut user).await?;
    }
    let hash = match &password {
        Some(p) => {
            user.password_date = Some(s.now_str());
            Some(hash_password(p.clone()).await?)
        }
        None => None,
    };
    if !s.repo.save_user(&user, hash.as_deref()).await? {
        return Err(ApiError::not_found("user", id));
    }
    if &user != current || password.is_some() {
        let flags = Flags { suspending: user.suspended && !current.suspended, ..Flags::default() };
        feed::user_changed(s, &user, password.as_deref(), flags).await?;
        let mut changes = history::diff(Some(current), Some(&user));
        if password.is_some() {
            changes["password"] = json!(["…", "changed"]);
        }
        history::record(s, history::Of::User(id), actor.clone(), "update", changes, None).await?;
    }
    Ok(user)
}

/// Deletes a user; its AD domains are told it lost its connection.
pub async fn delete(s: &AppState, id: &str, actor: Actor) -> ApiResult<User> {
    let user = load(&s.repo, id).await?;
    let domains = feed::bound_domains(s, id).await?;
    s.repo.store().delete(Collection::Users, id).await?;
    feed::user_disconnected(s, &user, &domains).await?;
    history::record(s, history::Of::User(id), actor, "delete", history::diff(Some(&user), None), None).await?;
    Ok(user)
}

async fn modify(
    s: &AppState,
    id: &str,
    flags: Flags,
    actor: Actor,
    f: impl Fn(&mut User) -> ApiResult<()>,
) -> ApiResult<User> {
    let (before, user) = super::retrying(|| async {
        let mut user = load(&s.repo, id).await?;
        let before = user.clone();
        f(&mut user)?;
        user.refresh_derived();
        s.repo.save_user(&user, None).await?;
        Ok((before, user))
    })
    .await?;
    let action = if flags.expire {
        "expire"
    } else if flags.explicit_unlock {
        "unlock"
    } else {
        "update"
    };
    history::record(s, history::Of::User(id), actor, action, history::diff(Some(&before), Some(&user)), None).await?;
    feed::user_changed(s, &user, None, flags).await?;
    if flags.expire {
        crate::notify::password_expired(s, &user).await?;
    }
    Ok(user)
}

/// Activates a user (as `state: ACTIVATED` would).
pub async fn activate(s: &AppState, id: &str, actor: &Actor) -> ApiResult<User> {
    apply_update(s, id, &json!({"state": "ACTIVATED"}), actor).await
}

/// Clears a lockout (reaches AD as an explicit unlock).
pub async fn unlock(s: &AppState, id: &str, actor: Actor) -> ApiResult<User> {
    modify(s, id, Flags { explicit_unlock: true, ..Flags::default() }, actor, |u| {
        u.account_locked = false;
        u.account_locked_date = None;
        Ok(())
    })
    .await
}

/// Expires a user's password now (refused when AD is the password authority).
pub async fn expire(s: &AppState, id: &str, actor: Actor) -> ApiResult<User> {
    let now = s.now_str();
    modify(s, id, Flags { expire: true, ..Flags::default() }, actor, move |u| {
        if u.password_authority.is_some() {
            return Err(tether_core::CoreError::PasswordAuthority.into());
        }
        u.password_expired = true;
        u.password_expiration_date = Some(now.clone());
        Ok(())
    })
    .await
}

/// One item of a bulk update, as its job reports it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BulkResult {
    pub id: String,
    /// `finished` or `failed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The public error code of a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

/// Applies each `{id, ...fields}` (or `{id, attributes: {...}}`) item on its own: one bad item
/// fails alone.
pub async fn bulk_update(s: &AppState, items: &[Value], actor: &Actor) -> Vec<BulkResult> {
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let id = item.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let r = match item.get("attributes").filter(|a| a.is_object()) {
            Some(attrs) => apply_update(s, &id, attrs, actor).await,
            None => apply_update(s, &id, item, actor).await,
        };
        results.push(match r {
            Ok(_) => BulkResult { id, status: "finished", error: None, code: None },
            Err(e) => BulkResult { id, status: "failed", error: Some(e.message), code: Some(e.code.info().1) },
        });
    }
    results
}
