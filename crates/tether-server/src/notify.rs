//! The notifications outbox: the emails the seeds mention are recorded with their template
//! and recipient, so admins see what is sent; with `--smtp-relay` they are delivered (each
//! sent once; failures retried a few times, then marked `failed` with the relay's answer).
//!
//! An activation email's link is a credential (it sets a password), so the outbox keeps only
//! a reference to the user (`activationFor`) and a placeholder in the body: the link is made
//! when the email is handed to the relay and exists nowhere else.

use crate::mail::SmtpConfig;
use serde_json::{json, Value};
use tether_core::ad::{AdDomain, AgentType};
use tether_core::query::{Filter, ListQuery, Op, Scalar};
use tether_core::user::User;
use tether_store::{Collection, Doc};

use crate::crypto::new_id;
use crate::error::ApiError;
use crate::state::AppState;

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
    s.repo
        .store()
        .insert(Collection::Notifications, &Doc { version: None, id, key1: None, key2: None, body: doc })
        .await?;
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
            crate::activation::LIFETIME.whole_hours()
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

/// Attempts to hand one notification to the relay before it is marked `failed`.
const MAX_ATTEMPTS: u64 = 5;

/// Sends queued notifications until the server stops.
pub async fn deliver(s: AppState, cfg: SmtpConfig) {
    loop {
        if let Err(e) = deliver_once(&s, &cfg).await {
            tracing::warn!(error = %e.message, "notification delivery");
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

pub async fn deliver_once(s: &AppState, cfg: &SmtpConfig) -> Result<(), crate::error::ApiError> {
    let q = ListQuery {
        filter: Some(Filter::Cmp { field: "status", op: Op::Eq, value: Scalar::Text("queued".into()) }),
        limit: 50,
        ..Default::default()
    };
    let (_, queued): (u64, Vec<Value>) = s.repo.list(Collection::Notifications, &q).await?;
    for mut n in queued {
        deliver_one(s, cfg, &mut n).await?;
        let id = text(&n, "id");
        s.repo
            .store()
            .replace(Collection::Notifications, &Doc { version: None, id, key1: None, key2: None, body: n })
            .await?;
    }
    Ok(())
}

fn text(n: &Value, k: &str) -> String {
    n[k].as_str().unwrap_or_default().to_string()
}

/// Hands one queued notification to the relay and records the outcome in it.
async fn deliver_one(s: &AppState, cfg: &SmtpConfig, n: &mut Value) -> Result<(), crate::error::ApiError> {
    let mut body = text(n, "body");
    if let Some(user_id) = n["activationFor"].as_str() {
        // The link is made now, for this email only (the outbox keeps the placeholder).
        match crate::activation::link_for_email(s, user_id).await? {
            Some(link) => body = body.replace(LINK_PLACEHOLDER, &link),
            None => {
                n["status"] = "cancelled".into();
                n["error"] = "the user has a password now, is suspended or was deleted".into();
                return Ok(());
            }
        }
    }
    let r = crate::mail::send(cfg, &text(n, "recipient"), &text(n, "subject"), &body).await;
    let attempts = n["attempts"].as_u64().unwrap_or(0) + 1;
    n["attempts"] = attempts.into();
    match r {
        Ok(()) => {
            n["status"] = "sent".into();
            n["sentAt"] = s.now_str().into();
        }
        Err(e) => {
            n["error"] = e.clone().into();
            if attempts >= MAX_ATTEMPTS || e.contains("not an email address") {
                n["status"] = "failed".into();
            }
        }
    }
    Ok(())
}
