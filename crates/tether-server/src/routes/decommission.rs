//! Retiring AD: the plan of the seeds' decommission transcript, for one domain. The plan is
//! read-only; `tether ad decommission --apply` carries it out through the ordinary API
//! (pause agents, wait for the grace, delete agents, delete the domain, convert one user,
//! verify, convert all), so every step is visible, resumable and never deletes a user.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use tether_core::ad::AgentType;
use tether_core::user::User;
use tether_store::Edge;

use crate::auth::Admin;
use crate::error::ApiResult;
use crate::routes::ad::{agent_json, load};
use crate::AppState;

/// Every user tied to the domain: imported from it (restricted by it), bound to it directly
/// or through a group, or with it as password/delegated authority.
pub async fn domain_users(s: &AppState, domain_id: &str) -> ApiResult<BTreeMap<String, User>> {
    let mut users: BTreeMap<String, User> = BTreeMap::new();
    for u in s.repo.users_of_domain(domain_id).await? {
        users.insert(u.id.clone(), u);
    }
    let store = s.repo.store();
    let mut ids: Vec<String> = store.targets(Edge::DomainUser, domain_id).await?;
    for g in store.targets(Edge::DomainGroup, domain_id).await? {
        ids.extend(store.targets(Edge::Member, &g).await?);
    }
    for id in ids {
        if let std::collections::btree_map::Entry::Vacant(slot) = users.entry(id) {
            if let Some(u) = s.repo.user(slot.key()).await? {
                slot.insert(u);
            }
        }
    }
    let restricted = |u: &User| u.restricted_fields.iter().any(|r| r.id == domain_id);
    let (_, all) =
        s.repo.list_users(&tether_core::query::ListQuery { limit: usize::MAX >> 1, ..Default::default() }).await?;
    for u in all {
        let authority = |a: &Option<tether_core::user::Authority>| a.as_ref().is_some_and(|a| a.id == domain_id);
        if restricted(&u) || authority(&u.password_authority) || authority(&u.delegated_authority) {
            users.entry(u.id.clone()).or_insert(u);
        }
    }
    Ok(users)
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/decommission", tag = "activedirectories",
    responses((status = 200, description = "{configuration, agents, usersAtRisk, restrictedUsers, steps}")))]
pub async fn plan(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let d = load(&s, &id).await?;
    let agents = s.repo.agents_of(&id).await?;
    let has = |t: AgentType| agents.iter().any(|a| a.agent_type == t);
    let configuration = match (has(AgentType::Import), has(AgentType::Sync)) {
        (true, true) => "import and sync",
        (true, false) => "import only",
        (false, true) => "sync only",
        (false, false) => "no agents",
    };
    let users = domain_users(&s, &id).await?;
    // Without AD, a user can log in only with a password stored in Tether.
    let at_risk: Vec<Value> = users
        .values()
        .filter(|u| !u.has_password)
        .map(|u| {
            let reason = if u.delegated_authority.is_some() {
                "delegated to AD only: no password stored in Tether"
            } else {
                "password pending: no password set in Tether"
            };
            json!({"id": u.id, "username": u.username, "email": u.email, "reason": reason})
        })
        .collect();
    let restricted =
        users.values().filter(|u| u.externally_managed && u.restricted_fields.iter().any(|r| r.id == id)).count();
    let running: Vec<&str> = agents.iter().filter(|a| !a.paused).map(|a| a.id.as_str()).collect();
    let steps = [
        format!("pause the running agents ({})", running.len()),
        format!(
            "wait {}s after pausing (the deletion grace), then delete the agents ({})",
            s.config.agent_delete_grace.whole_seconds(),
            agents.len()
        ),
        "uninstall the agents from the domain controllers".to_string(),
        format!("delete the domain {}", d.domain),
        "set externally_managed=false on one user and verify it".to_string(),
        format!(
            "set externally_managed=false on the others ({} restricted by this domain)",
            restricted.saturating_sub(1)
        ),
    ];
    Ok(Json(json!({
        "domain": d.domain,
        "id": d.id,
        "useCase": d.use_case,
        "configuration": configuration,
        "agents": agents.iter().map(|a| agent_json(&s, a)).collect::<Vec<_>>(),
        "users": users.len(),
        "usersAtRisk": at_risk,
        "restrictedUsers": restricted,
        "steps": steps,
    })))
}
