//! `/api/v2/ldapservers`: the directory's one LDAP server, its policy for locked and expired
//! users, and what is in LDAP (users and groups associated with it).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::Value;
use tether_core::ldap::LdapServer;
use tether_store::Edge;

use super::extract::{Admin, JsonBody, Listing, QueryPairs};
use super::shapes::{association_op, connection, targets, users_through, v2_list, window, with_paths, V2List};
use crate::error::ApiResult;
use crate::ops::domains::Target;
use crate::ops::ldap;
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v2/ldapservers", tag = "ldapservers",
    responses((status = 200, body = Vec<LdapServer>, headers(("x-total-count" = u64)))))]
pub async fn list(_: Admin, State(s): State<AppState>) -> ApiResult<(HeaderMap, Json<Value>)> {
    let server = serde_json::to_value(ldap::server(&s).await?).expect("serializes");
    Ok(v2_list(1, vec![server]))
}

#[utoipa::path(get, path = "/api/v2/ldapservers/{id}", tag = "ldapservers", responses((status = 200, body = LdapServer)))]
pub async fn get(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<LdapServer>> {
    Ok(Json(ldap::load(&s, &id).await?))
}

#[utoipa::path(patch, path = "/api/v2/ldapservers/{id}", tag = "ldapservers",
    request_body(content = Object, description = "{name, userLockoutAction, userPasswordExpirationAction}"),
    responses((status = 200, body = LdapServer)))]
pub async fn patch(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<LdapServer>> {
    Ok(Json(ldap::patch(&s, &id, &body).await?))
}

#[utoipa::path(get, path = "/api/v2/ldapservers/{id}/associations", tag = "ldapservers",
    params(("targets" = String, Query, description = "user or user_group")),
    responses((status = 200, description = "GraphConnection[]")))]
pub async fn associations(Listing { s, id, q }: Listing) -> V2List {
    let target = targets(&q, true)?.unwrap_or(Target::User);
    let ids = ldap::associated(&s, &id, target).await?;
    window(&q, ids.iter().map(|t| connection(t, target.as_str())).collect())
}

#[utoipa::path(post, path = "/api/v2/ldapservers/{id}/associations", tag = "ldapservers",
    request_body(content = Object, description = "{op, type: user|user_group, id}"), responses((status = 204)))]
pub async fn change_associations(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    let (op, target) = association_op(&q, &body)?;
    ldap::set_association(&s, &id, target, &op.id, op.add).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v2/ldapservers/{id}/users", tag = "ldapservers",
    responses((status = 200, description = "GraphObjectWithPaths[]: users in LDAP directly or through a group")))]
pub async fn users(Listing { s, id, q }: Listing) -> V2List {
    ldap::load(&s, &id).await?;
    window(&q, users_through(&s, Edge::LdapUser, Edge::LdapGroup, &id).await?)
}

#[utoipa::path(get, path = "/api/v2/ldapservers/{id}/usergroups", tag = "ldapservers",
    responses((status = 200, description = "GraphObjectWithPaths[]")))]
pub async fn usergroups(Listing { s, id, q }: Listing) -> V2List {
    let ids = ldap::associated(&s, &id, Target::UserGroup).await?;
    window(&q, ids.iter().map(|g| with_paths(g, "user_group", &[(g, "user_group")])).collect())
}
