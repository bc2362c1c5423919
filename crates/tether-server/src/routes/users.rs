//! `/api/systemusers` (v1), the user search, the state endpoints and bulk updates.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use tether_core::query::{parse_search_filter, parse_search_term, Filter, ListQuery, USER_FIELDS};
use tether_core::user::User;

use super::extract::{parse_window, project, Admin, JsonBody, Listing, QueryPairs};
use super::shapes::V2List;
use crate::crypto::new_id;
use crate::error::{ApiError, ApiResult, Code};
use crate::history;
use crate::ops::users;
use crate::state::AppState;

/// The API form of a user: the stored fields plus `_id`.
pub fn user_json(u: &User) -> Value {
    let mut v = serde_json::to_value(u).expect("a user serializes");
    v["_id"] = Value::String(u.id.clone());
    v
}

fn v1_list(total: u64, users: &[User], fields: &Option<Vec<String>>) -> Json<Value> {
    let results: Vec<Value> = users.iter().map(|u| project(user_json(u), fields)).collect();
    Json(json!({ "totalCount": total, "results": results }))
}

#[utoipa::path(get, path = "/api/systemusers", tag = "users",
    params(("limit" = Option<usize>, Query), ("skip" = Option<usize>, Query),
           ("filter" = Option<String>, Query, description = "field:$op:value, repeatable"),
           ("sort" = Option<String>, Query), ("fields" = Option<String>, Query)),
    responses((status = 200, description = "{totalCount, results}")))]
pub async fn list(_: Admin, State(s): State<AppState>, q: QueryPairs) -> ApiResult<Json<Value>> {
    let query = q.list_query(USER_FIELDS, 100)?;
    let (total, users) = s.repo.list_users(&query).await?;
    Ok(v1_list(total, &users, &q.fields()))
}

#[utoipa::path(post, path = "/api/search/systemusers", tag = "users",
    request_body(content = Object, description = "{filter, searchFilter, fields, limit, skip, sort}"),
    responses((status = 200, description = "{totalCount, results}")))]
pub async fn search(
    _: Admin,
    State(s): State<AppState>,
    q: QueryPairs,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let mut parts: Vec<Filter> = Vec::new();
    if let Some(f) = parse_search_filter(USER_FIELDS, body.get("filter").unwrap_or(&Value::Null))? {
        parts.push(f);
    }
    if let Some(sf) = body.get("searchFilter") {
        if let Some(f) = parse_search_term(USER_FIELDS, sf)? {
            parts.push(f);
        }
    }
    let num = |k: &str| -> ApiResult<Option<String>> {
        Ok(match body.get(k) {
            None | Some(Value::Null) => q.get(k).map(str::to_string),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ApiError::new(Code::InvalidField, format!("{k} must be a number"))),
        })
    };
    let limit = parse_window("limit", num("limit")?.as_deref(), 10)?;
    if limit > 1000 {
        return Err(ApiError::new(Code::InvalidField, "limit must be at most 1000"));
    }
    let skip = parse_window("skip", num("skip")?.as_deref(), 0)?;
    let sort = match body.get("sort").and_then(Value::as_str).or(q.get("sort")) {
        Some(s) => tether_core::query::parse_sort(USER_FIELDS, s)?,
        None => None,
    };
    let fields = match body.get("fields") {
        Some(Value::String(f)) => Some(f.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_string).collect()),
        Some(Value::Array(a)) => Some(a.iter().filter_map(Value::as_str).map(str::to_string).collect()),
        _ => q.fields(),
    };
    let filter = match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Filter::And(parts)),
    };
    let (total, users) = s.repo.list_users(&ListQuery { filter, sort, limit, skip }).await?;
    Ok(v1_list(total, &users, &fields))
}

#[utoipa::path(get, path = "/api/systemusers/{id}", tag = "users", responses((status = 200, body = User)))]
pub async fn get(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(user_json(&users::load(&s.repo, &id).await?)))
}

#[utoipa::path(post, path = "/api/systemusers", tag = "users", request_body = User,
    responses((status = 200, body = User), (status = 409, description = "duplicate username or email"),
              (status = 422, description = "password policy")))]
pub async fn create(Admin(key): Admin, State(s): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    Ok(Json(user_json(&users::create(&s, &body, history::admin(&key)).await?)))
}

#[utoipa::path(put, path = "/api/systemusers/{id}", tag = "users", request_body = User,
    responses((status = 200, body = User), (status = 422, description = "restricted field or password policy")))]
pub async fn update(
    Admin(key): Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    Ok(Json(user_json(&users::apply_update(&s, &id, &body, &history::admin(&key)).await?)))
}

#[utoipa::path(delete, path = "/api/systemusers/{id}", tag = "users", responses((status = 200, body = User)))]
pub async fn delete(Admin(key): Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(user_json(&users::delete(&s, &id, history::admin(&key)).await?)))
}

#[utoipa::path(post, path = "/api/systemusers/{id}/state/activate", tag = "users", responses((status = 200, body = User)))]
pub async fn activate(Admin(key): Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(user_json(&users::activate(&s, &id, &history::admin(&key)).await?)))
}

#[utoipa::path(post, path = "/api/systemusers/{id}/resetmfa", tag = "users", responses((status = 200, body = User)))]
pub async fn reset_mfa(Admin(key): Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(user_json(&crate::ops::mfa::reset(&s, &id, history::admin(&key)).await?)))
}

#[utoipa::path(post, path = "/api/systemusers/{id}/unlock", tag = "users", responses((status = 200, body = User)))]
pub async fn unlock(Admin(key): Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(user_json(&users::unlock(&s, &id, history::admin(&key)).await?)))
}

#[utoipa::path(post, path = "/api/systemusers/{id}/expire", tag = "users", responses((status = 200, body = User)))]
pub async fn expire(Admin(key): Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(user_json(&users::expire(&s, &id, history::admin(&key)).await?)))
}

#[utoipa::path(patch, path = "/api/v2/bulk/users", tag = "users",
    request_body(content = Vec<Object>, description = "[{id, ...fields}]"),
    responses((status = 200, description = "{jobId}")))]
pub async fn bulk(Admin(key): Admin, State(s): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    let actor = history::admin(&key);
    let Value::Array(items) = body else {
        return Err(ApiError::new(Code::InvalidField, "expected an array of {id, ...fields}"));
    };
    let results = serde_json::to_value(users::bulk_update(&s, &items, &actor).await).expect("serializes");
    let job = new_id();
    // In the store's shared state, so any tetherd answers for the results (for a day).
    let expires = (s.now() + time::Duration::days(1)).unix_timestamp();
    s.repo.store().put_shared(&format!("bulkJob:{job}"), &results, expires).await?;
    Ok(Json(json!({ "jobId": job })))
}

#[utoipa::path(get, path = "/api/v2/bulk/users/{job}/results", tag = "users",
    responses((status = 200, description = "[{id, status, error?}]")))]
pub async fn bulk_results(_: Admin, State(s): State<AppState>, Path(job): Path<String>) -> ApiResult<Json<Value>> {
    let results = s.repo.store().shared(&format!("bulkJob:{job}"), s.now().unix_timestamp()).await?;
    results.map(Json).ok_or_else(|| ApiError::not_found("job", &job))
}

#[utoipa::path(get, path = "/api/v2/users/{id}/history", tag = "users",
    responses((status = 200, description = "[{at, actor, action, changes: {field: [before, after]}, reason}], oldest first")))]
pub async fn history(Listing { s, id, q }: Listing) -> V2List {
    super::shapes::history_of(&s, &id, &q).await
}
