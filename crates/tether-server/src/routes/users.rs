//! `/api/systemusers` (v1), the user search, the state endpoints and bulk updates.

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use tether_core::patch::{create_user, update_user, UserWrite};
use tether_core::query::{parse_search_filter, parse_search_term, Filter, ListQuery, USER_FIELDS};
use tether_core::user::User;
use tether_store::{Collection, Repo};

use crate::auth::{hash_password, new_id, verify_password, Admin};
use crate::body::{parse_window, project, JsonBody, QueryPairs};
use crate::error::{ApiError, ApiResult, Code};
use crate::feed::{self, Flags};
use crate::history;
use crate::AppState;

/// The API form of a user: the stored fields plus `_id`.
pub fn user_json(u: &User) -> Value {
    let mut v = serde_json::to_value(u).expect("a user serializes");
    v["_id"] = Value::String(u.id.clone());
    v
}

pub async fn load(repo: &Repo, id: &str) -> ApiResult<User> {
    repo.user(id).await?.ok_or_else(|| ApiError::not_found("user", id))
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
    Ok(Json(user_json(&load(&s.repo, &id).await?)))
}

/// Checks references a write introduced (the manager must be an existing user).
async fn check_references(repo: &Repo, u: &User) -> ApiResult<()> {
    if let Some(m) = u.manager.as_deref().filter(|m| !m.is_empty()) {
        if repo.user(m).await?.is_none() {
            return Err(ApiError::new(Code::InvalidField, format!("invalid value for `manager`: no user `{m}`")));
        }
    }
    for (key, a) in [("passwordAuthority", &u.password_authority), ("delegatedAuthority", &u.delegated_authority)] {
        if let Some(a) = a {
            if repo.get::<Value>(Collection::Domains, &a.id).await?.is_none() {
                let msg = format!("invalid value for `{key}`: no Active Directory domain `{}`", a.id);
                return Err(ApiError::new(Code::InvalidField, msg));
            }
        }
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/systemusers", tag = "users", request_body = User,
    responses((status = 200, body = User), (status = 409, description = "duplicate username or email"),
              (status = 422, description = "password policy")))]
pub async fn create(Admin(key): Admin, State(s): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    let settings = s.repo.settings().await?;
    let UserWrite { user, password } = create_user(&body, &settings, &new_id(), &s.now_str())?;
    check_references(&s.repo, &user).await?;
    let mut user = user;
    let hash = match password {
        Some(p) => {
            user.password_date = Some(s.now_str());
            Some(hash_password(p).await?)
        }
        None => None,
    };
    s.repo.insert_user(&user, hash.as_deref()).await?;
    history::record(&s, &user.id, history::admin(&key), "create", history::diff(None, Some(&user)), None).await?;
    Ok(Json(user_json(&user)))
}

/// Applies an update body to a stored user and saves it.
pub async fn apply_update(s: &AppState, id: &str, body: &Value, actor: &Value) -> ApiResult<User> {
    let current = load(&s.repo, id).await?;
    let settings = s.repo.settings().await?;
    // The restricted-field rule lets an unchanged password through; that needs a
    // verification, done up front only when a password was sent.
    let same = match (body.get("password").and_then(Value::as_str), s.repo.password_hash(id).await?) {
        (Some(p), Some(h)) => verify_password(p.to_string(), h).await,
        _ => false,
    };
    let write = update_user(&current, body, &settings, &|_| same)?;
    save_update(s, &current, write, actor).await
}

/// Stores a decided update: the user, its new password's hash, the feed entry for its AD
/// domains and the history entry.
pub async fn save_update(s: &AppState, current: &User, write: UserWrite, actor: &Value) -> ApiResult<User> {
    let id = current.id.as_str();
    let UserWrite { mut user, password } = write;
    check_references(&s.repo, &user).await?;
    let hash = match &password {
        Some(p) => {
            user.password_date = Some(s.now_str());
            Some(hash_password(p.clone()).await?)
        }
        None => None,
    };
    if !s.repo.save_user(&user, hash.as_deref()).await? {
        return Err(ApiError::not_found("user", id));
    }
    if &user != current || password.is_some() {
        let flags = Flags { suspending: user.suspended && !current.suspended, ..Flags::default() };
        feed::user_changed(s, &user, password.as_deref(), flags).await?;
        let mut changes = history::diff(Some(current), Some(&user));
        if password.is_some() {
            changes["password"] = serde_json::json!(["…", "changed"]);
        }
        history::record(s, id, actor.clone(), "update", changes, None).await?;
    }
    Ok(user)
}

#[utoipa::path(put, path = "/api/systemusers/{id}", tag = "users", request_body = User,
    responses((status = 200, body = User), (status = 422, description = "restricted field or password policy")))]
pub async fn update(
    Admin(key): Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    Ok(Json(user_json(&apply_update(&s, &id, &body, &history::admin(&key)).await?)))
}

#[utoipa::path(delete, path = "/api/systemusers/{id}", tag = "users", responses((status = 200, body = User)))]
pub async fn delete(Admin(key): Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let user = load(&s.repo, &id).await?;
    let domains = feed::bound_domains(&s, &id).await?;
    s.repo.store().delete(Collection::Users, &id).await?;
    feed::user_disconnected(&s, &user, &domains).await?;
    history::record(&s, &id, history::admin(&key), "delete", history::diff(Some(&user), None), None).await?;
    Ok(Json(user_json(&user)))
}

async fn modify(
    s: &AppState,
    id: &str,
    flags: Flags,
    actor: Value,
    f: impl FnOnce(&mut User) -> ApiResult<()>,
) -> ApiResult<Json<Value>> {
    let mut user = load(&s.repo, id).await?;
    let before = user.clone();
    f(&mut user)?;
    user.refresh_derived();
    s.repo.save_user(&user, None).await?;
    let action = if flags.expire {
        "expire"
    } else if flags.explicit_unlock {
        "unlock"
    } else {
        "update"
    };
    history::record(s, id, actor, action, history::diff(Some(&before), Some(&user)), None).await?;
    feed::user_changed(s, &user, None, flags).await?;
    if flags.expire {
        crate::notify::password_expired(s, &user).await?;
    }
    Ok(Json(user_json(&user)))
}

#[utoipa::path(post, path = "/api/systemusers/{id}/state/activate", tag = "users", responses((status = 200, body = User)))]
pub async fn activate(Admin(key): Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(user_json(&apply_update(&s, &id, &json!({"state": "ACTIVATED"}), &history::admin(&key)).await?)))
}

#[utoipa::path(post, path = "/api/systemusers/{id}/unlock", tag = "users", responses((status = 200, body = User)))]
pub async fn unlock(Admin(key): Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    modify(&s, &id, Flags { explicit_unlock: true, ..Flags::default() }, history::admin(&key), |u| {
        u.account_locked = false;
        u.account_locked_date = None;
        Ok(())
    })
    .await
}

#[utoipa::path(post, path = "/api/systemusers/{id}/expire", tag = "users", responses((status = 200, body = User)))]
pub async fn expire(Admin(key): Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let now = s.now_str();
    modify(&s, &id, Flags { expire: true, ..Flags::default() }, history::admin(&key), move |u| {
        if u.password_authority.is_some() {
            return Err(tether_core::CoreError::PasswordAuthority.into());
        }
        u.password_expired = true;
        u.password_expiration_date = Some(now);
        Ok(())
    })
    .await
}

#[utoipa::path(patch, path = "/api/v2/bulk/users", tag = "users",
    request_body(content = Vec<Object>, description = "[{id, ...fields}]"),
    responses((status = 200, description = "{jobId}")))]
pub async fn bulk(Admin(key): Admin, State(s): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<Json<Value>> {
    let actor = history::admin(&key);
    let Value::Array(items) = body else {
        return Err(ApiError::new(Code::InvalidField, "expected an array of {id, ...fields}"));
    };
    let mut results = Vec::with_capacity(items.len());
    for item in &items {
        let id = item.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let r = match item.get("attributes").filter(|a| a.is_object()) {
            Some(attrs) => apply_update(&s, &id, attrs, &actor).await,
            None => apply_update(&s, &id, item, &actor).await,
        };
        results.push(match r {
            Ok(_) => json!({"id": id, "status": "finished"}),
            Err(e) => json!({"id": id, "status": "failed", "error": e.message, "code": e.code.info().1}),
        });
    }
    let job = new_id();
    s.jobs.lock().await.insert(job.clone(), Value::Array(results));
    Ok(Json(json!({ "jobId": job })))
}

#[utoipa::path(get, path = "/api/v2/bulk/users/{job}/results", tag = "users",
    responses((status = 200, description = "[{id, status, error?}]")))]
pub async fn bulk_results(_: Admin, State(s): State<AppState>, Path(job): Path<String>) -> ApiResult<Json<Value>> {
    s.jobs.lock().await.get(&job).cloned().map(Json).ok_or_else(|| ApiError::not_found("job", &job))
}

#[utoipa::path(get, path = "/api/v2/users/{id}/history", tag = "users",
    responses((status = 200, description = "[{at, actor, action, changes: {field: [before, after]}, reason}], oldest first")))]
pub async fn history(
    _: Admin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<(axum::http::HeaderMap, Json<Value>)> {
    history_of(&s, &id, &q).await
}

/// The history entries of one object (user or group), oldest first.
pub async fn history_of(s: &AppState, id: &str, q: &QueryPairs) -> ApiResult<(axum::http::HeaderMap, Json<Value>)> {
    use tether_core::query::{Filter, Op, Scalar, HISTORY_FIELDS};
    let id = id.to_string();
    let mut query = q.list_query(HISTORY_FIELDS, 100)?;
    let own = Filter::Cmp { field: "objectId", op: Op::Eq, value: Scalar::Text(id) };
    query.filter = Some(match query.filter.take() {
        Some(f) => Filter::And(vec![own, f]),
        None => own,
    });
    let (total, items): (u64, Vec<Value>) = s.repo.list(Collection::History, &query).await?;
    Ok(crate::routes::groups::v2_list(total, items))
}
