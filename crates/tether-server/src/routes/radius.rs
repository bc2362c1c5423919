//! `/api/radiusservers` (v1) and `/api/v2/radiusservers/{id}/…` (v2): the network devices
//! that may ask the RADIUS front end, and who may get in through each. `sharedSecret` is
//! written, never read back.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use tether_core::query::RADIUS_FIELDS;
use tether_core::radius::RadiusServer;
use tether_store::Edge;

use super::extract::{project, Admin, JsonBody, Listing, QueryPairs};
use super::shapes::{association_op, connection, targets, users_through, window, with_paths, V2List};
use crate::error::ApiResult;
use crate::ops::domains::Target;
use crate::ops::radius;
use crate::state::AppState;

#[utoipa::path(get, path = "/api/radiusservers", tag = "radiusservers",
    params(("limit" = Option<usize>, Query), ("skip" = Option<usize>, Query),
           ("filter" = Option<String>, Query, description = "field:$op:value, repeatable"),
           ("sort" = Option<String>, Query), ("fields" = Option<String>, Query)),
    responses((status = 200, description = "{totalCount, results}")))]
pub async fn list(_: Admin, State(s): State<AppState>, q: QueryPairs) -> ApiResult<Json<Value>> {
    let query = q.list_query(RADIUS_FIELDS, 100)?;
    let (total, servers) = radius::list(&s, &query).await?;
    let fields = q.fields();
    let results: Vec<Value> =
        servers.iter().map(|r| project(serde_json::to_value(r).expect("serializes"), &fields)).collect();
    Ok(Json(json!({"totalCount": total, "results": results})))
}

#[utoipa::path(post, path = "/api/radiusservers", tag = "radiusservers",
    request_body(content = Object, description = "{name, networkSourceIp, sharedSecret, mfa, userLockoutAction, userPasswordExpirationAction}"),
    responses((status = 200, body = RadiusServer)))]
pub async fn create(_: Admin, State(s): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<Json<RadiusServer>> {
    Ok(Json(radius::create(&s, &body).await?))
}

#[utoipa::path(get, path = "/api/radiusservers/{id}", tag = "radiusservers", responses((status = 200, body = RadiusServer)))]
pub async fn get(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<RadiusServer>> {
    Ok(Json(radius::load(&s, &id).await?))
}

#[utoipa::path(put, path = "/api/radiusservers/{id}", tag = "radiusservers",
    request_body(content = Object, description = "the fields to change"), responses((status = 200, body = RadiusServer)))]
pub async fn update(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<RadiusServer>> {
    Ok(Json(radius::update(&s, &id, &body).await?))
}

#[utoipa::path(delete, path = "/api/radiusservers/{id}", tag = "radiusservers", responses((status = 200, body = RadiusServer)))]
pub async fn delete(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<RadiusServer>> {
    Ok(Json(radius::delete(&s, &id).await?))
}

#[utoipa::path(get, path = "/api/v2/radiusservers/{id}/associations", tag = "radiusservers",
    params(("targets" = String, Query, description = "user or user_group")),
    responses((status = 200, description = "GraphConnection[]")))]
pub async fn associations(Listing { s, id, q }: Listing) -> V2List {
    let target = targets(&q, true)?.unwrap_or(Target::User);
    let ids = radius::associated(&s, &id, target).await?;
    window(&q, ids.iter().map(|t| connection(t, target.as_str())).collect())
}

#[utoipa::path(post, path = "/api/v2/radiusservers/{id}/associations", tag = "radiusservers",
    request_body(content = Object, description = "{op, type: user|user_group, id}"), responses((status = 204)))]
pub async fn change_associations(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    let (op, target) = association_op(&q, &body)?;
    radius::set_association(&s, &id, target, &op.id, op.add).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v2/radiusservers/{id}/users", tag = "radiusservers",
    responses((status = 200, description = "GraphObjectWithPaths[]: users associated directly or through a group")))]
pub async fn users(Listing { s, id, q }: Listing) -> V2List {
    radius::load(&s, &id).await?;
    window(&q, users_through(&s, Edge::RadiusUser, Edge::RadiusGroup, &id).await?)
}

#[utoipa::path(get, path = "/api/v2/radiusservers/{id}/usergroups", tag = "radiusservers",
    responses((status = 200, description = "GraphObjectWithPaths[]")))]
pub async fn usergroups(Listing { s, id, q }: Listing) -> V2List {
    let ids = radius::associated(&s, &id, Target::UserGroup).await?;
    window(&q, ids.iter().map(|g| with_paths(g, "user_group", &[(g, "user_group")])).collect())
}
