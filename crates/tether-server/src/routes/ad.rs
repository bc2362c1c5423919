//! `/api/v2/activedirectories`: domains, their agents (with the pause-then-delete grace),
//! their associations with users and groups, and the plan of a held cycle.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use tether_core::ad::{AdDomain, AgentType};
use tether_core::query::DOMAIN_FIELDS;
use tether_store::{Collection, Edge};

use super::extract::{Admin, JsonBody, Listing, QueryPairs};
use super::shapes::{association_op, connection, targets, users_through, v2_list, window, with_paths, V2List};
use crate::error::{ApiError, ApiResult, Code};
use crate::ops::domains::{self, agent_view, Target};
use crate::ops::plans::{self, Plan};
use crate::state::AppState;

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serializes")
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
    Ok((StatusCode::CREATED, Json(domains::create(&s, &body).await?)))
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}", tag = "activedirectories", responses((status = 200, body = AdDomain)))]
pub async fn get(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<AdDomain>> {
    Ok(Json(domains::load(&s, &id).await?))
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
    let (d, steps) = domains::configure(&s, &id, &body).await?;
    let mut v = serde_json::to_value(&d).expect("serializes");
    v["steps"] = serde_json::to_value(&steps).expect("serializes");
    Ok(Json(v))
}

#[utoipa::path(delete, path = "/api/v2/activedirectories/{id}", tag = "activedirectories",
    responses((status = 204), (status = 409, description = "the domain still has agents")))]
pub async fn delete(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    domains::delete(&s, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/agents", tag = "activedirectories",
    responses((status = 200, description = "agents", headers(("x-total-count" = u64)))))]
pub async fn list_agents(Listing { s, id, q }: Listing) -> V2List {
    domains::load(&s, &id).await?;
    let agents = s.repo.agents_of(&id).await?;
    window(&q, agents.iter().map(|a| to_json(&agent_view(&s, a))).collect())
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
    domains::load(&s, &id).await?;
    let agent_type: AgentType = match body.get("agentType") {
        None | Some(Value::Null) => AgentType::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| ApiError::new(Code::InvalidField, "invalid value for `agentType`: must be IMPORT or SYNC"))?,
    };
    let (agent, key) = domains::create_agent(&s, &id, agent_type).await?;
    let mut v = to_json(&agent);
    v["connectKey"] = Value::String(key);
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/agents/{agent}", tag = "activedirectories", responses((status = 200)))]
pub async fn get_agent(
    _: Admin,
    State(s): State<AppState>,
    Path((id, agent)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(to_json(&agent_view(&s, &domains::load_agent(&s, &id, &agent).await?))))
}

#[utoipa::path(delete, path = "/api/v2/activedirectories/{id}/agents/{agent}", tag = "activedirectories",
    responses((status = 204), (status = 409, description = "not paused, or paused for less than the grace")))]
pub async fn delete_agent(
    _: Admin,
    State(s): State<AppState>,
    Path((id, agent)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    domains::delete_agent(&s, &id, &agent).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v2/activedirectories/{id}/agents/{agent}/pause", tag = "activedirectories", responses((status = 200)))]
pub async fn pause_agent(
    _: Admin,
    State(s): State<AppState>,
    Path((id, agent)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(to_json(&domains::set_paused(&s, &id, &agent, true).await?)))
}

#[utoipa::path(post, path = "/api/v2/activedirectories/{id}/agents/{agent}/resume", tag = "activedirectories", responses((status = 200)))]
pub async fn resume_agent(
    _: Admin,
    State(s): State<AppState>,
    Path((id, agent)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(to_json(&domains::set_paused(&s, &id, &agent, false).await?)))
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/associations", tag = "activedirectories",
    params(("targets" = String, Query, description = "user or user_group")),
    responses((status = 200, description = "GraphConnection[]")))]
pub async fn associations(Listing { s, id, q }: Listing) -> V2List {
    domains::load(&s, &id).await?;
    let (edge, kind) = match targets(&q, true)? {
        Some(Target::User) => (Edge::DomainUser, "user"),
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
    let (op, target) = association_op(&q, &body)?;
    domains::set_association(&s, &id, target, &op.id, op.add).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/users", tag = "activedirectories",
    responses((status = 200, description = "GraphObjectWithPaths[]: users bound directly or through a group")))]
pub async fn users(Listing { s, id, q }: Listing) -> V2List {
    domains::load(&s, &id).await?;
    window(&q, users_through(&s, Edge::DomainUser, Edge::DomainGroup, &id).await?)
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/usergroups", tag = "activedirectories",
    responses((status = 200, description = "GraphObjectWithPaths[]")))]
pub async fn usergroups(Listing { s, id, q }: Listing) -> V2List {
    domains::load(&s, &id).await?;
    let ids = s.repo.store().targets(Edge::DomainGroup, &id).await?;
    window(&q, ids.iter().map(|g| with_paths(g, "user_group", &[(g, "user_group")])).collect())
}

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/plan", tag = "activedirectories",
    responses((status = 200, description = "{status: held|none, direction: import|sync, reason, created, changes: [{category, object, action, reason}]}: the held import cycle first, else the held sync plan")))]
pub async fn plan(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Plan>> {
    Ok(Json(plans::plan(&s, &id).await?))
}

#[utoipa::path(post, path = "/api/v2/activedirectories/{id}/plan/approve", tag = "activedirectories",
    responses((status = 200, description = "the outcome of applying the held plan exactly as shown (the import cycle first)"),
              (status = 409, description = "no plan is held")))]
pub async fn plan_approve(
    Admin(key): Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(plans::approve(&s, &id, &key).await?))
}

#[utoipa::path(post, path = "/api/v2/activedirectories/{id}/plan/reject", tag = "activedirectories",
    responses((status = 200, description = "the held plan was dropped (the import cycle first)"),
              (status = 409, description = "no plan is held")))]
pub async fn plan_reject(
    Admin(key): Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    plans::reject(&s, &id, &key).await?;
    Ok(Json(json!({"status": "none", "changes": []})))
}
