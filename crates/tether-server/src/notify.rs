//! The notifications outbox: the emails the seeds mention are recorded with their template
//! and recipient, so admins see what is sent; `--smtp-relay` delivers them (mail.rs).
//!
//! An activation email's link is a credential (it sets a password), so the outbox keeps only
//! a reference to the user (`activationFor`) and a placeholder in the body: the link is made
//! when the email is handed to the relay and exists nowhere else.

use serde_json::json;
use tether_core::ad::{AdDomain, AgentType};
use tether_core::user::User;
use tether_store::{Collection, Doc};

use crate::auth::new_id;
use crate::error::ApiError;
use crate::AppState;

/// Where an activation email's link goes when it is sent.
pub const LINK_PLACEHOLDER: &str = "[activation link]";

/// Queues one notification.
pub async fn queue(s: &AppState, template: &str, recipient: &str, subject: &str, body: &str) -> Result<(), ApiError> {
    queue_doc(s, json!({"template": template, "recipient": recipient, "subject": subject, "body": body})).await
}

async fn queue_doc(s: &AppState, mut doc: serde_json::Value) -> Result<(), ApiError> {
    let id = new_id();
    doc["id"] = json!(id);
    doc["status"] = json!("queued");
    doc["created"] = json!(s.now_str());
    s.repo.store().insert(Collection::Notifications, &Doc { id, key1: None, key2: None, body: doc }).await?;
    Ok(())
}

/// A user was bound to a domain by an admin: an active user with a password is told to sync
/// it by logging in to the user portal; a user without one gets the activation (welcome) email.
pub async fn user_bound(s: &AppState, u: &User, domain: &AdDomain) -> Result<(), ApiError> {
    if u.has_password {
        let body = format!(
            "You have been added to the directory {}. Log in to the user portal once to sync your password to it.",
            domain.domain
        );
        queue(s, "directory_bound", &u.email, "You have been added to a directory", &body).await
    } else {
        let body = format!(
            "Welcome to Tether. Open {LINK_PLACEHOLDER} on your Tether server within {} hours to set your \
             password and activate your account.",
            crate::console::ACTIVATION_LIFETIME.whole_hours()
        );
        queue_doc(
            s,
            json!({"template": "activation", "recipient": u.email, "subject": "Activate your account",
                   "body": body, "activationFor": u.id}),
        )
        .await
    }
}

/// Called after an agent was paused or deleted: when no agent of the domain is left
/// running, the administrator is told.
pub async fn agent_deactivated(s: &AppState, domain_id: &str) -> Result<(), ApiError> {
    let agents = s.repo.agents_of(domain_id).await?;
    if agents.iter().any(|a| !a.paused) {
        return Ok(());
    }
    let Some(d) = s.repo.get::<AdDomain>(Collection::Domains, domain_id).await? else { return Ok(()) };
    let to = s.repo.settings().await?.admin_email.unwrap_or_else(|| "administrators".into());
    let body = format!(
        "The last running agent of the Active Directory domain {} was deactivated: nothing syncs with it now.",
        d.domain
    );
    queue(s, "last_agent_deactivated", &to, "No Active Directory agent is running", &body).await
}

/// A user's password was expired by an admin. The seeds: no expiration notification when
/// both an import and a sync agent serve the user's domain.
pub async fn password_expired(s: &AppState, u: &User) -> Result<(), ApiError> {
    let domains = s.repo.store().sources(tether_store::Edge::DomainUser, &u.id).await?;
    for d in domains {
        let agents = s.repo.agents_of(&d).await?;
        let has = |t: AgentType| agents.iter().any(|a| a.agent_type == t);
        if has(AgentType::Import) && has(AgentType::Sync) {
            return Ok(());
        }
    }
    queue(
        s,
        "password_expired",
        &u.email,
        "Your password has expired",
        "Your password has expired: set a new one in the user portal.",
    )
    .await
}
