//! Health, the OpenAPI document, organisation settings, API keys and password verification.

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tether_core::policy::OrgSettings;
use tether_core::query::ListQuery;
use tether_store::Collection;

use super::extract::{Admin, JsonBody};
use crate::error::{ApiError, ApiResult, Code};
use crate::keys::{create_api_key as make_key, ApiKey, Role};
use crate::ops::auth::{authenticate, AuthOutcome};
use crate::state::AppState;

#[utoipa::path(get, path = "/health", tag = "server", responses((status = 200, description = "{status: ok}")))]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(Code::NotFound, format!("no route for {}", uri.path()))
}

#[utoipa::path(get, path = "/api/settings", tag = "server", responses((status = 200, body = OrgSettings)))]
pub async fn get_settings(_: Admin, State(s): State<AppState>) -> ApiResult<Json<OrgSettings>> {
    Ok(Json(s.repo.settings().await?))
}

#[utoipa::path(put, path = "/api/settings", tag = "server", request_body = OrgSettings, responses((status = 200, body = OrgSettings)))]
pub async fn put_settings(
    _: Admin,
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<OrgSettings>> {
    // Partial update: merge the sent keys over the current settings, then validate the whole.
    let mut cur = serde_json::to_value(s.repo.settings().await?).expect("serializes");
    merge(&mut cur, body);
    let new: OrgSettings =
        serde_json::from_value(cur).map_err(|e| ApiError::new(Code::InvalidField, format!("invalid settings: {e}")))?;
    new.validate()?;
    s.repo.put_settings(&new).await?;
    Ok(Json(new))
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

#[utoipa::path(get, path = "/api/v2/notifications", tag = "server",
    responses((status = 200, description = "the outbox: [{id, template, recipient, subject, body, status, created}]")))]
pub async fn notifications(
    Admin(me): Admin,
    State(s): State<AppState>,
    q: crate::routes::extract::QueryPairs,
) -> ApiResult<(axum::http::HeaderMap, Json<Value>)> {
    // Addresses and what was said to whom: for administrators, not read-only integrations.
    if me.role != Role::Admin {
        return Err(ApiError::new(Code::Forbidden, "reading the notifications outbox needs an admin key"));
    }
    let query = q.list_query(tether_core::query::NOTIFICATION_FIELDS, 100)?;
    let (total, items): (u64, Vec<Value>) = s.repo.list(Collection::Notifications, &query).await?;
    Ok(super::shapes::v2_list(total, items))
}

#[utoipa::path(get, path = "/api/v2/apikeys", tag = "server", responses((status = 200, body = Vec<ApiKey>)))]
pub async fn list_api_keys(Admin(me): Admin, State(s): State<AppState>) -> ApiResult<Json<Vec<ApiKey>>> {
    if me.role != Role::Admin {
        return Err(ApiError::new(Code::Forbidden, "listing API keys needs an admin key"));
    }
    let q = ListQuery { limit: 10_000, ..Default::default() };
    Ok(Json(s.repo.list(Collection::ApiKeys, &q).await?.1))
}

#[utoipa::path(post, path = "/api/v2/apikeys", tag = "server",
    request_body(content = Object, description = "{name, role: admin|read_only}"),
    responses((status = 201, description = "the key record with `key`, shown once")))]
pub async fn create_api_key(
    _: Admin,
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = body.get("name").and_then(Value::as_str).unwrap_or("unnamed").to_string();
    let role: Role = match body.get("role") {
        None | Some(Value::Null) => Role::Admin,
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| ApiError::new(Code::InvalidField, "invalid value for `role`: admin or read_only"))?,
    };
    let (rec, key) = make_key(&s, &name, role, None).await?;
    let mut v = serde_json::to_value(rec).expect("serializes");
    v["key"] = Value::String(key);
    Ok((StatusCode::CREATED, Json(v)))
}

#[utoipa::path(delete, path = "/api/v2/apikeys/{id}", tag = "server", responses((status = 204)))]
pub async fn delete_api_key(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    if !s.repo.store().delete(Collection::ApiKeys, &id).await? {
        return Err(ApiError::not_found("api key", &id));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v2/auth/verify", tag = "auth",
    request_body(content = Object, description = "{username, password}"),
    responses((status = 200, description = "{authenticated: true, method}"), (status = 401, description = "{authenticated: false}")))]
pub async fn verify(_: Admin, State(s): State<AppState>, JsonBody(body): JsonBody) -> ApiResult<Response> {
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ApiError::new(Code::InvalidField, format!("invalid value for `{k}`: is required")))
    };
    let (username, password) = (field("username")?, field("password")?);
    Ok(match authenticate(&s, &username, password, None).await? {
        AuthOutcome::Accepted(method) => Json(json!({"authenticated": true, "method": method})).into_response(),
        AuthOutcome::Denied(None) => (StatusCode::UNAUTHORIZED, Json(json!({"authenticated": false}))).into_response(),
        AuthOutcome::Denied(Some(reason)) => {
            (StatusCode::UNAUTHORIZED, Json(json!({"authenticated": false, "reason": reason}))).into_response()
        }
        AuthOutcome::Throttled(reason) => {
            (StatusCode::TOO_MANY_REQUESTS, Json(json!({"authenticated": false, "reason": reason}))).into_response()
        }
    })
}

/// `GET /metrics`: the Prometheus text exposition. No API key (scrapers rarely carry one; it
/// names agents and domains by id only, never users), but with `--metrics-token` the scraper
/// must send `Authorization: Bearer TOKEN`.
pub async fn metrics(
    axum::extract::State(s): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<([(axum::http::header::HeaderName, &'static str); 1], String), ApiError> {
    if let Some(want) = &s.config.metrics_token {
        let got = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::crypto::same_secret(got, want) {
            return Err(ApiError::new(
                Code::InvalidApiKey,
                "GET /metrics needs `Authorization: Bearer` with the metrics token",
            ));
        }
    }
    let body = s.metrics.render(&s.repo, s.now()).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body))
}
