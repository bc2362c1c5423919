//! `/api/v2/usergroups`: groups, their members and their association with AD domains,
//! in JumpCloud's graph shapes (GraphConnection for edges, GraphObjectWithPaths for
//! memberships).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::Value;
use tether_core::group::Group;
use tether_core::query::GROUP_FIELDS;
use tether_store::{Collection, Edge};

use super::extract::{Admin, JsonBody, Listing, QueryPairs};
use super::shapes::{connection, graph_op, history_of, v2_list, window, with_paths, V2List};
use crate::error::{ApiError, ApiResult, Code};
use crate::history;
use crate::ops::groups;
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v2/usergroups", tag = "groups",
    responses((status = 200, body = Vec<Group>, headers(("x-total-count" = u64)))))]
pub async fn list(_: Admin, State(s): State<AppState>, q: QueryPairs) -> ApiResult<(HeaderMap, Json<Value>)> {
    let (total, groups): (u64, Vec<Value>) = s.repo.list(Collection::Groups, &q.list_query(GROUP_FIELDS, 100)?).await?;
    Ok(v2_list(total, groups))
}

#[utoipa::path(post, path = "/api/v2/usergroups", tag = "groups", request_body = Group,
    responses((status = 201, body = Group), (status = 409, description = "duplicate name")))]
pub async fn create(
    Admin(key): Admin,
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Group>)> {
    Ok((StatusCode::CREATED, Json(groups::create(&s, &body, history::admin(&key)).await?)))
}

#[utoipa::path(get, path = "/api/v2/usergroups/{id}", tag = "groups", responses((status = 200, body = Group)))]
pub async fn get(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Group>> {
    Ok(Json(groups::load(&s, &id).await?))
}

#[utoipa::path(put, path = "/api/v2/usergroups/{id}", tag = "groups", request_body = Group, responses((status = 200, body = Group)))]
pub async fn update(
    Admin(key): Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Group>> {
    Ok(Json(groups::update(&s, &id, &body, history::admin(&key)).await?))
}

#[utoipa::path(delete, path = "/api/v2/usergroups/{id}", tag = "groups", responses((status = 204)))]
pub async fn delete(Admin(key): Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    groups::delete(&s, &id, history::admin(&key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v2/usergroups/{id}/members", tag = "groups",
    responses((status = 200, description = "GraphConnection[]")))]
pub async fn members(Listing { s, id, q }: Listing) -> V2List {
    groups::load(&s, &id).await?;
    let ids = s.repo.store().targets(Edge::Member, &id).await?;
    window(&q, ids.iter().map(|u| connection(u, "user")).collect())
}

#[utoipa::path(post, path = "/api/v2/usergroups/{id}/members", tag = "groups",
    request_body(content = Object, description = "{op: add|remove, type: user, id}"), responses((status = 204)))]
pub async fn change_members(
    Admin(key): Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    groups::load(&s, &id).await?;
    let op = graph_op(&body)?;
    if op.kind != "user" {
        return Err(ApiError::new(Code::InvalidField, "invalid value for `type`: members of a user group are users"));
    }
    groups::change_member(&s, &id, &op.id, op.add, history::admin(&key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v2/usergroups/{id}/membership", tag = "groups",
    responses((status = 200, description = "GraphObjectWithPaths[]")))]
pub async fn membership(Listing { s, id, q }: Listing) -> V2List {
    groups::load(&s, &id).await?;
    let ids = s.repo.store().targets(Edge::Member, &id).await?;
    window(&q, ids.iter().map(|u| with_paths(u, "user", &[(u, "user")])).collect())
}

#[utoipa::path(get, path = "/api/v2/users/{id}/memberof", tag = "groups",
    responses((status = 200, description = "GraphObjectWithPaths[]")))]
pub async fn member_of(Listing { s, id, q }: Listing) -> V2List {
    crate::ops::users::load(&s.repo, &id).await?;
    let ids = s.repo.store().sources(Edge::Member, &id).await?;
    window(&q, ids.iter().map(|g| with_paths(g, "user_group", &[(g, "user_group")])).collect())
}

fn targets_param(q: &QueryPairs, allowed: &[&str]) -> ApiResult<Option<String>> {
    match q.get("targets") {
        None => Ok(None),
        Some(t) if allowed.contains(&t) => Ok(Some(t.to_string())),
        Some(t) => Err(ApiError::new(
            Code::InvalidField,
            format!("invalid value for `targets`: `{t}` (allowed: {})", allowed.join(", ")),
        )),
    }
}

#[utoipa::path(get, path = "/api/v2/usergroups/{id}/associations", tag = "groups",
    params(("targets" = String, Query, description = "active_directory")),
    responses((status = 200, description = "GraphConnection[]")))]
pub async fn associations(Listing { s, id, q }: Listing) -> V2List {
    groups::load(&s, &id).await?;
    targets_param(&q, &["active_directory"])?;
    let ids = s.repo.store().sources(Edge::DomainGroup, &id).await?;
    window(&q, ids.iter().map(|d| connection(d, "active_directory")).collect())
}

#[utoipa::path(post, path = "/api/v2/usergroups/{id}/associations", tag = "groups",
    request_body(content = Object, description = "{op, type: active_directory, id}"), responses((status = 204)))]
pub async fn change_associations(
    Admin(key): Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    groups::load(&s, &id).await?;
    targets_param(&q, &["active_directory"])?;
    let op = graph_op(&body)?;
    if op.kind != "active_directory" {
        return Err(ApiError::new(Code::InvalidField, "invalid value for `type`: must be active_directory"));
    }
    crate::ops::domains::associate_group(&s, &id, &op.id, op.add, history::admin(&key)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v2/usergroups/{id}/history", tag = "groups",
    responses((status = 200, description = "[{at, actor, action, changes: {field: [before, after]}, reason}], oldest first")))]
pub async fn history(Listing { s, id, q }: Listing) -> V2List {
    history_of(&s, &id, &q).await
}
