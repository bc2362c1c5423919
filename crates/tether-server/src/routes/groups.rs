//! `/api/v2/usergroups`: groups, their members and their association with AD domains,
//! in JumpCloud's graph shapes (GraphConnection for edges, GraphObjectWithPaths for
//! memberships).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use tether_core::group::{write_group, Group};
use tether_core::query::GROUP_FIELDS;
use tether_store::{Collection, Edge};

use crate::auth::{new_id, Admin};
use crate::body::{JsonBody, QueryPairs};
use crate::error::{ApiError, ApiResult, Code};
use crate::feed;
use crate::history;
use crate::AppState;

/// A v2 list: the array, with the total in `x-total-count`.
pub fn v2_list(total: u64, items: Vec<Value>) -> (HeaderMap, Json<Value>) {
    let mut h = HeaderMap::new();
    h.insert("x-total-count", HeaderValue::from(total));
    (h, Json(Value::Array(items)))
}

/// Windows an in-memory list by `limit`/`skip` (for graph listings).
pub fn window(q: &QueryPairs, items: Vec<Value>) -> ApiResult<(HeaderMap, Json<Value>)> {
    let limit = crate::body::parse_window("limit", q.get("limit"), 10)?;
    if limit > 100 {
        return Err(ApiError::new(Code::InvalidField, "limit must be at most 100"));
    }
    let skip = crate::body::parse_window("skip", q.get("skip"), 0)?;
    let total = items.len() as u64;
    Ok(v2_list(total, items.into_iter().skip(skip).take(limit).collect()))
}

pub fn connection(id: &str, kind: &str) -> Value {
    json!({"to": {"id": id, "type": kind}, "attributes": null})
}

pub fn with_paths(id: &str, kind: &str, via: &[(&str, &str)]) -> Value {
    let path: Vec<Value> = via.iter().map(|(i, k)| connection(i, k)).collect();
    json!({"id": id, "type": kind, "paths": [path]})
}

pub async fn load(s: &AppState, id: &str) -> ApiResult<Group> {
    s.repo.get(Collection::Groups, id).await?.ok_or_else(|| ApiError::not_found("user group", id))
}

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
    let g = write_group(None, &new_id(), &body)?;
    s.repo.insert_group(&g).await?;
    let changes = history::diff_of(None, Some(&g));
    history::record_group(&s, &g.id, history::admin(&key), "create", changes, None).await?;
    Ok((StatusCode::CREATED, Json(g)))
}

#[utoipa::path(get, path = "/api/v2/usergroups/{id}", tag = "groups", responses((status = 200, body = Group)))]
pub async fn get(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Group>> {
    Ok(Json(load(&s, &id).await?))
}

#[utoipa::path(put, path = "/api/v2/usergroups/{id}", tag = "groups", request_body = Group, responses((status = 200, body = Group)))]
pub async fn update(
    Admin(key): Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Group>> {
    let cur = load(&s, &id).await?;
    let g = write_group(Some(&cur), &id, &body)?;
    s.repo.save_group(&g).await?;
    let changes = history::diff_of(Some(&cur), Some(&g));
    history::record_group(&s, &id, history::admin(&key), "update", changes, None).await?;
    if g.name != cur.name {
        feed::group_changed(&s, &g, &[]).await?;
    }
    Ok(Json(g))
}

#[utoipa::path(delete, path = "/api/v2/usergroups/{id}", tag = "groups", responses((status = 204)))]
pub async fn delete(Admin(key): Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let group = load(&s, &id).await?;
    let members = s.repo.store().targets(Edge::Member, &id).await?;
    let before = feed::snapshot(&s, &members).await?;
    let domains = feed::domains_of_group(&s, &id).await?;
    if !s.repo.store().delete(Collection::Groups, &id).await? {
        return Err(ApiError::not_found("user group", &id));
    }
    let changes = history::diff_of(Some(&group), None);
    history::record_group(&s, &id, history::admin(&key), "delete", changes, None).await?;
    feed::group_disconnected(&s, &group, &domains).await?;
    feed::rebind(&s, before).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `{op, type, id}` body of graph edits.
pub struct GraphOp {
    pub add: bool,
    pub kind: String,
    pub id: String,
}

pub fn graph_op(body: &Value) -> ApiResult<GraphOp> {
    let add = match body.get("op").and_then(Value::as_str) {
        Some("add") => true,
        Some("remove") => false,
        _ => return Err(ApiError::new(Code::InvalidField, "invalid value for `op`: must be add or remove")),
    };
    let kind = body.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::new(Code::InvalidField, "invalid value for `id`: is required"))?
        .to_string();
    Ok(GraphOp { add, kind, id })
}

#[utoipa::path(get, path = "/api/v2/usergroups/{id}/members", tag = "groups",
    responses((status = 200, description = "GraphConnection[]")))]
pub async fn members(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    load(&s, &id).await?;
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
    load(&s, &id).await?;
    let op = graph_op(&body)?;
    if op.kind != "user" {
        return Err(ApiError::new(Code::InvalidField, "invalid value for `type`: members of a user group are users"));
    }
    let group = load(&s, &id).await?;
    let before = feed::snapshot(&s, std::slice::from_ref(&op.id)).await?;
    let user = crate::routes::users::load(&s.repo, &op.id).await;
    let who = history::admin(&key);
    if op.add {
        let u = user?;
        if s.repo.store().link(Edge::Member, &id, &op.id).await? {
            let changes = json!({"memberOf": [null, group.name]});
            history::record(&s, &op.id, who.clone(), "membership", changes, None).await?;
            let changes = json!({"members": [null, u.username]});
            history::record_group(&s, &id, who, "membership", changes, None).await?;
        }
        feed::rebind(&s, before).await?;
        feed::group_changed(&s, &group, &[]).await?;
    } else {
        if !s.repo.store().unlink(Edge::Member, &id, &op.id).await? {
            return Err(ApiError::new(Code::NotFound, format!("user `{}` is not a member", op.id)));
        }
        let changes = json!({"memberOf": [group.name, null]});
        history::record(&s, &op.id, who.clone(), "membership", changes, None).await?;
        let name = user.as_ref().map(|u| u.username.clone()).unwrap_or_else(|_| op.id.clone());
        history::record_group(&s, &id, who, "membership", json!({"members": [name, null]}), None).await?;
        // The group's AD membership first, then the user's possible disconnection.
        feed::group_changed(&s, &group, user.ok().as_slice()).await?;
        feed::rebind(&s, before).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v2/usergroups/{id}/membership", tag = "groups",
    responses((status = 200, description = "GraphObjectWithPaths[]")))]
pub async fn membership(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    load(&s, &id).await?;
    let ids = s.repo.store().targets(Edge::Member, &id).await?;
    window(&q, ids.iter().map(|u| with_paths(u, "user", &[(u, "user")])).collect())
}

#[utoipa::path(get, path = "/api/v2/users/{id}/memberof", tag = "groups",
    responses((status = 200, description = "GraphObjectWithPaths[]")))]
pub async fn member_of(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    crate::routes::users::load(&s.repo, &id).await?;
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
pub async fn associations(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    load(&s, &id).await?;
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
    load(&s, &id).await?;
    targets_param(&q, &["active_directory"])?;
    let op = graph_op(&body)?;
    if op.kind != "active_directory" {
        return Err(ApiError::new(Code::InvalidField, "invalid value for `type`: must be active_directory"));
    }
    crate::routes::ad::set_association(&s, &op.id, "user_group", &id, op.add).await?;
    let changes =
        if op.add { json!({"activeDirectory": [null, op.id]}) } else { json!({"activeDirectory": [op.id, null]}) };
    history::record_group(&s, &id, history::admin(&key), "association", changes, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v2/usergroups/{id}/history", tag = "groups",
    responses((status = 200, description = "[{at, actor, action, changes: {field: [before, after]}, reason}], oldest first")))]
pub async fn history(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    crate::routes::users::history_of(&s, &id, &q).await
}
