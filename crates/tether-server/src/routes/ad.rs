//! `/api/v2/activedirectories`: domains, their agents (with the pause-then-delete grace),
//! their associations with users and groups, and the plan of a held cycle.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use tether_core::ad::{new_domain, patch_domain, AdDomain, Agent, AgentType};
use tether_core::query::DOMAIN_FIELDS;
use tether_store::{Collection, Edge, Secret};

use crate::auth::{new_id, random_hex, sha256_hex, Admin};
use crate::body::{JsonBody, QueryPairs};
use crate::error::{ApiError, ApiResult, Code};
use crate::routes::groups::{connection, graph_op, v2_list, window, with_paths};
use crate::AppState;

/// The wire name of an enum value (e.g. `TWOWAYSYNC`).
fn name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

pub async fn load(s: &AppState, id: &str) -> ApiResult<AdDomain> {
    s.repo.get(Collection::Domains, id).await?.ok_or_else(|| ApiError::not_found("active directory", id))
}

async fn load_agent(s: &AppState, domain: &str, id: &str) -> ApiResult<Agent> {
    match s.repo.get::<Agent>(Collection::Agents, id).await? {
        Some(a) if a.domain_id == domain => Ok(a),
        _ => Err(ApiError::not_found("agent", id)),
    }
}

/// The API form of an agent, with its derived liveness and deletion time.
pub fn agent_json(s: &AppState, a: &Agent) -> Value {
    json!({
        "id": a.id,
        "agentType": a.agent_type,
        "hostname": a.hostname,
        "source_ip": a.source_ip,
        "state": a.state(s.now()),
        "version": a.version,
        "contactAt": a.contact_at,
        "paused": a.paused,
        "installedOn": a.installed_on,
        "deletableAt": a.deletable_at(s.config.agent_delete_grace).map(tether_core::timestamp),
        "adStatus": a.ad_status,
    })
}

#[utoipa::path(get, path = "/api/v2/activedirectories", tag = "activedirectories",
    responses((status = 200, body = Vec<AdDomain>, headers(("x-total-count" = u64)))))]
pub async fn list(_: Admin, State(s): State<AppState>, q: QueryPairs) -> ApiResult<(HeaderMap, Json<Value>)> {
    let (total, items): (u64, Vec<Value>) =
        s.repo.list(Collection::Domains, &q.list_query(DOMAIN_FIELDS, 100)?).await?;
    Ok(v2_list(total, items))
}

#[utoipa::path(post, path = "/api/v2/activedirectories", tag = "activedirectories",
    request_body(content = Object, description = "{domain, useCase}"),
    responses((status = 201, body = AdDomain), (status = 409, description = "domain exists")))]
pub async fn create(
    _: Admin,
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<AdDomain>)> {
    let d = new_domain(&new_id(), &body, &s.now_str())?;
    s.repo.insert_domain(&d).await?;
    Ok((StatusCode::CREATED, Json(d)))
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}", tag = "activedirectories", responses((status = 200, body = AdDomain)))]
pub async fn get(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<AdDomain>> {
    Ok(Json(load(&s, &id).await?))
}

#[utoipa::path(patch, path = "/api/v2/activedirectories/{id}", tag = "activedirectories",
    request_body(content = Object, description = "{useCase, delegationState, groupsEnabled, guards}"),
    responses((status = 200, description = "the domain, plus `steps` (agentsToRemove, agentTypesToInstall)")))]
pub async fn patch(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let cur = load(&s, &id).await?;
    let agents = s.repo.agents_of(&id).await?;
    let (d, steps) = patch_domain(&cur, &body, &agents, &s.now_str())?;
    s.repo.save_domain(&d).await?;
    let mut v = serde_json::to_value(&d).expect("serializes");
    v["steps"] = serde_json::to_value(&steps).expect("serializes");
    Ok(Json(v))
}

#[utoipa::path(delete, path = "/api/v2/activedirectories/{id}", tag = "activedirectories",
    responses((status = 204), (status = 409, description = "the domain still has agents")))]
pub async fn delete(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    load(&s, &id).await?;
    let agents = s.repo.agents_of(&id).await?;
    if !agents.is_empty() {
        return Err(ApiError::new(
            Code::Conflict,
            format!(
                "the domain still has {} agent(s): pause, wait for the grace period and delete them first",
                agents.len()
            ),
        ));
    }
    // Authorities pointing at a domain that no longer exists mean nothing: users keep their
    // Tether password (if any) and become manageable; their restrictions are lifted by the
    // decommission's conversion step (externally_managed=false), one user first.
    for mut u in crate::routes::decommission::domain_users(&s, &id).await?.into_values() {
        let is = |a: &Option<tether_core::user::Authority>| a.as_ref().is_some_and(|a| a.id == id);
        if is(&u.password_authority) || is(&u.delegated_authority) {
            u.password_authority = u.password_authority.filter(|a| a.id != id);
            u.delegated_authority = u.delegated_authority.filter(|a| a.id != id);
            u.refresh_derived();
            s.repo.save_user(&u, None).await?;
        }
    }
    s.repo.store().delete(Collection::Domains, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/agents", tag = "activedirectories",
    responses((status = 200, description = "agents", headers(("x-total-count" = u64)))))]
pub async fn list_agents(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    load(&s, &id).await?;
    let agents = s.repo.agents_of(&id).await?;
    window(&q, agents.iter().map(|a| agent_json(&s, a)).collect())
}

#[utoipa::path(post, path = "/api/v2/activedirectories/{id}/agents", tag = "activedirectories",
    request_body(content = Object, description = "{agentType: IMPORT|SYNC}"),
    responses((status = 201, description = "the agent with its one-time connectKey"),
              (status = 422, description = "the use case does not allow this agent type")))]
pub async fn create_agent(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let d = load(&s, &id).await?;
    let agent_type: AgentType = match body.get("agentType") {
        None | Some(Value::Null) => AgentType::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| ApiError::new(Code::InvalidField, "invalid value for `agentType`: must be IMPORT or SYNC"))?,
    };
    if !d.use_case.allowed_agents().contains(&agent_type) {
        return Err(ApiError::new(
            Code::NotAllowed,
            format!("a {} domain does not take {} agents", name(&d.use_case), name(&agent_type)),
        ));
    }
    let agent = Agent::new(&new_id(), &id, agent_type, &s.now_str());
    let key = format!("ck_{}", random_hex(32));
    s.repo.store().put_secret(&agent.id, Secret::ConnectKey, Some(&sha256_hex(&key))).await?;
    s.repo.insert_agent(&agent).await?;
    let mut v = agent_json(&s, &agent);
    v["connectKey"] = Value::String(key);
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/agents/{agent}", tag = "activedirectories", responses((status = 200)))]
pub async fn get_agent(
    _: Admin,
    State(s): State<AppState>,
    Path((id, agent)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(agent_json(&s, &load_agent(&s, &id, &agent).await?)))
}

#[utoipa::path(delete, path = "/api/v2/activedirectories/{id}/agents/{agent}", tag = "activedirectories",
    responses((status = 204), (status = 409, description = "not paused, or paused for less than the grace")))]
pub async fn delete_agent(
    _: Admin,
    State(s): State<AppState>,
    Path((id, agent)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let a = load_agent(&s, &id, &agent).await?;
    a.check_deletable(s.now(), s.config.agent_delete_grace)
        .map_err(|e| ApiError::new(Code::Conflict, e.to_string()))?;
    // Deleting the document also deletes its token: the running agent is refused from now on.
    s.repo.store().delete(Collection::Agents, &agent).await?;
    release_primary(&s, &a).await?;
    crate::notify::agent_deactivated(&s, &a.domain_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_paused(s: &AppState, id: &str, agent: &str, paused: bool) -> ApiResult<Json<Value>> {
    let mut a = load_agent(s, id, agent).await?;
    if a.paused != paused {
        a.paused = paused;
        a.paused_at = paused.then(|| s.now_str());
        s.repo.save_agent(&a).await?;
        if paused {
            release_primary(s, &a).await?;
            crate::notify::agent_deactivated(s, &a.domain_id).await?;
        }
    }
    Ok(Json(agent_json(s, &a)))
}

#[utoipa::path(post, path = "/api/v2/activedirectories/{id}/agents/{agent}/pause", tag = "activedirectories", responses((status = 200)))]
pub async fn pause_agent(
    _: Admin,
    State(s): State<AppState>,
    Path((id, agent)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    set_paused(&s, &id, &agent, true).await
}

#[utoipa::path(post, path = "/api/v2/activedirectories/{id}/agents/{agent}/resume", tag = "activedirectories", responses((status = 200)))]
pub async fn resume_agent(
    _: Admin,
    State(s): State<AppState>,
    Path((id, agent)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    set_paused(&s, &id, &agent, false).await
}

/// A paused or deleted import agent stops being primary: another takes over at its next
/// heartbeat.
async fn release_primary(s: &AppState, a: &Agent) -> ApiResult<()> {
    let mut d = load(s, &a.domain_id).await?;
    if d.release_primary(&a.id) {
        d.updated_at = s.now_str();
        s.repo.save_domain(&d).await?;
    }
    Ok(())
}

/// Binds (`add`) or unbinds a user or user group to a domain.
pub async fn set_association(s: &AppState, domain: &str, kind: &str, target: &str, add: bool) -> ApiResult<()> {
    load(s, domain).await?;
    let edge = match kind {
        "user" => {
            crate::routes::users::load(&s.repo, target).await?;
            Edge::DomainUser
        }
        "user_group" => {
            crate::routes::groups::load(s, target).await?;
            Edge::DomainGroup
        }
        other => {
            return Err(ApiError::new(
                Code::InvalidField,
                format!("invalid value for `type`: `{other}` (user or user_group)"),
            ))
        }
    };
    let users = match edge {
        Edge::DomainGroup => s.repo.store().targets(Edge::Member, target).await?,
        _ => vec![target.to_string()],
    };
    let before = crate::feed::snapshot(s, &users).await?;
    let group_before = match edge {
        Edge::DomainGroup => crate::feed::domains_of_group(s, target).await?,
        _ => Default::default(),
    };
    if add {
        s.repo.store().link(edge, domain, target).await?;
    } else if !s.repo.store().unlink(edge, domain, target).await? {
        return Err(ApiError::new(Code::NotFound, format!("{kind} `{target}` is not associated with this domain")));
    }
    if edge == Edge::DomainGroup {
        let g = crate::routes::groups::load(s, target).await?;
        if add {
            // The group first: it must exist in AD before its members' entries are applied.
            crate::feed::group_changed(s, &g, &[]).await?;
        } else {
            let lost: std::collections::BTreeSet<String> =
                group_before.difference(&crate::feed::domains_of_group(s, target).await?).cloned().collect();
            crate::feed::group_disconnected(s, &g, &lost).await?;
        }
    }
    crate::feed::rebind(s, before).await?;
    if add && edge == Edge::DomainGroup {
        // Again, now that its members' own entries are queued before it: membership last.
        let g = crate::routes::groups::load(s, target).await?;
        crate::feed::group_changed(s, &g, &[]).await?;
    }
    Ok(())
}

fn targets(q: &QueryPairs, required: bool) -> ApiResult<Option<&str>> {
    match q.get("targets") {
        Some(t @ ("user" | "user_group")) => Ok(Some(t)),
        Some(t) => {
            Err(ApiError::new(Code::InvalidField, format!("invalid value for `targets`: `{t}` (user or user_group)")))
        }
        None if required => Err(ApiError::new(Code::InvalidField, "`targets` is required (user or user_group)")),
        None => Ok(None),
    }
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/associations", tag = "activedirectories",
    params(("targets" = String, Query, description = "user or user_group")),
    responses((status = 200, description = "GraphConnection[]")))]
pub async fn associations(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    load(&s, &id).await?;
    let (edge, kind) = match targets(&q, true)? {
        Some("user") => (Edge::DomainUser, "user"),
        _ => (Edge::DomainGroup, "user_group"),
    };
    let ids = s.repo.store().targets(edge, &id).await?;
    window(&q, ids.iter().map(|t| connection(t, kind)).collect())
}

#[utoipa::path(post, path = "/api/v2/activedirectories/{id}/associations", tag = "activedirectories",
    request_body(content = Object, description = "{op, type: user|user_group, id}"), responses((status = 204)))]
pub async fn change_associations(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    let op = graph_op(&body)?;
    let kind = match (targets(&q, false)?, op.kind.as_str()) {
        (Some(t), "") => t.to_string(),
        (Some(t), k) if t != k => {
            return Err(ApiError::new(Code::InvalidField, format!("`targets={t}` contradicts `type: {k}`")))
        }
        (_, k) => k.to_string(),
    };
    set_association(&s, &id, &kind, &op.id, op.add).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/users", tag = "activedirectories",
    responses((status = 200, description = "GraphObjectWithPaths[]: users bound directly or through a group")))]
pub async fn users(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    load(&s, &id).await?;
    let store = s.repo.store();
    let mut out: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for u in store.targets(Edge::DomainUser, &id).await? {
        seen.insert(u.clone(), out.len());
        out.push(with_paths(&u, "user", &[(&u, "user")]));
    }
    for g in store.targets(Edge::DomainGroup, &id).await? {
        for u in store.targets(Edge::Member, &g).await? {
            let path = json!([connection(&g, "user_group"), connection(&u, "user")]);
            match seen.get(&u) {
                Some(i) => out[*i]["paths"].as_array_mut().expect("paths").push(path),
                None => {
                    seen.insert(u.clone(), out.len());
                    out.push(json!({"id": u, "type": "user", "paths": [path]}));
                }
            }
        }
    }
    window(&q, out)
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/usergroups", tag = "activedirectories",
    responses((status = 200, description = "GraphObjectWithPaths[]")))]
pub async fn usergroups(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    load(&s, &id).await?;
    let ids = s.repo.store().targets(Edge::DomainGroup, &id).await?;
    window(&q, ids.iter().map(|g| with_paths(g, "user_group", &[(g, "user_group")])).collect())
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/plan", tag = "activedirectories",
    responses((status = 200, description = "{status: held|none, direction: import|sync, reason, created, changes: [{category, object, action, reason}]}: the held import cycle first, else the held sync plan")))]
pub async fn plan(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    load(&s, &id).await?;
    if let Some(p) = crate::import::held_plan(&s, &id).await? {
        return Ok(Json(
            json!({"status": "held", "direction": "import", "reason": p.reason, "created": p.created, "changes": p.changes}),
        ));
    }
    Ok(Json(match crate::sync_guard::held_plan(&s, &id).await? {
        Some(p) => {
            json!({"status": "held", "direction": "sync", "reason": p.reason, "created": p.created, "changes": p.changes})
        }
        None => json!({"status": "none", "changes": []}),
    }))
}

#[utoipa::path(post, path = "/api/v2/activedirectories/{id}/plan/approve", tag = "activedirectories",
    responses((status = 200, description = "the outcome of applying the held plan exactly as shown (the import cycle first)"),
              (status = 409, description = "no plan is held")))]
pub async fn plan_approve(
    Admin(key): Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let d = load(&s, &id).await?;
    if let Some(p) = crate::import::held_plan(&s, &id).await? {
        crate::import::drop_plan(&s, &id).await?;
        let actor = json!({"type": "plan_approval", "apiKey": crate::history::admin(&key)});
        let out = crate::import::execute(&s, &d, &p.report, None, p.planned, Default::default(), &actor).await?;
        return Ok(Json(serde_json::to_value(out).expect("serializes")));
    }
    let Some(p) = crate::sync_guard::held_plan(&s, &id).await? else {
        return Err(ApiError::new(Code::Conflict, "no cycle is held for this domain"));
    };
    crate::sync_guard::approve(&s, &id, &p).await?;
    Ok(Json(json!({"status": "approved", "direction": "sync", "released": p.changes.len()})))
}

#[utoipa::path(post, path = "/api/v2/activedirectories/{id}/plan/reject", tag = "activedirectories",
    responses((status = 200, description = "the held plan was dropped (the import cycle first)"),
              (status = 409, description = "no plan is held")))]
pub async fn plan_reject(
    Admin(key): Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    load(&s, &id).await?;
    if crate::import::held_plan(&s, &id).await?.is_some() {
        crate::import::drop_plan(&s, &id).await?;
    } else if let Some(p) = crate::sync_guard::held_plan(&s, &id).await? {
        let actor = json!({"type": "plan_rejection", "apiKey": crate::history::admin(&key)});
        crate::sync_guard::reject(&s, &id, &p, &actor).await?;
    } else {
        return Err(ApiError::new(Code::Conflict, "no cycle is held for this domain"));
    }
    Ok(Json(json!({"status": "none", "changes": []})))
}
