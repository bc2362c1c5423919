//! Health, the OpenAPI document, organisation settings, API keys and password verification.

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tether_core::policy::OrgSettings;
use tether_core::query::ListQuery;
use tether_store::Collection;

use crate::auth::{check_password, create_api_key as make_key, Admin, ApiKey, Role};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult, Code};
use crate::AppState;

#[utoipa::path(get, path = "/health", tag = "server", responses((status = 200, description = "{status: ok}")))]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn openapi() -> Response {
    ([("content-type", "application/json")], crate::openapi_json()).into_response()
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
    q: crate::body::QueryPairs,
) -> ApiResult<(axum::http::HeaderMap, Json<Value>)> {
    // Addresses and what was said to whom: for administrators, not read-only integrations.
    if me.role != Role::Admin {
        return Err(ApiError::new(Code::Forbidden, "reading the notifications outbox needs an admin key"));
    }
    let query = q.list_query(tether_core::query::NOTIFICATION_FIELDS, 100)?;
    let (total, items): (u64, Vec<Value>) = s.repo.list(Collection::Notifications, &query).await?;
    Ok(crate::routes::groups::v2_list(total, items))
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

/// The answer to "is this the user's password?" (for the API and the user portal).
pub(crate) enum AuthOutcome {
    /// Right; by `local` or `delegated` (AD) verification.
    Accepted(&'static str),
    /// Wrong, with AD's reason when it gave one.
    Denied(Option<String>),
    /// Too many recent failures for this username.
    Throttled(String),
}

/// Verifies a user's password (locally or through AD), with the failure lockouts: per
/// username, and per `source` address when the person logging in is that source (the portal,
/// the console; `None` for an integration calling the API on behalf of many users). The
/// attempt is counted before the password is checked.
pub(crate) async fn authenticate(
    s: &AppState,
    username: &str,
    password: String,
    source: Option<std::net::IpAddr>,
) -> ApiResult<AuthOutcome> {
    let now = s.now();
    let throttled = |until| {
        AuthOutcome::Throttled(format!("too many failed attempts; try again after {}", tether_core::timestamp(until)))
    };
    let source = crate::throttle::source_of(s, source);
    if let Some(ip) = &source {
        if let Err(until) = s.throttle.sources.attempt(ip, now) {
            return Ok(throttled(until));
        }
    }
    if let Err(until) = s.throttle.users.attempt(username, now) {
        return Ok(throttled(until));
    }
    let r = verify_user(s, username, password).await?;
    if matches!(r, AuthOutcome::Accepted(_)) {
        s.throttle.users.succeeded(username);
        if let Some(ip) = &source {
            s.throttle.sources.release(ip);
        }
    } else {
        s.throttle.users.failed(username, s.now());
        if let Some(ip) = &source {
            s.throttle.sources.failed(ip, s.now());
        }
    }
    Ok(r)
}

async fn verify_user(s: &AppState, username: &str, password: String) -> ApiResult<AuthOutcome> {
    let s = s.clone();
    let denied = || AuthOutcome::Denied(None);
    // Empty passwords never authenticate (some directories treat them as anonymous binds).
    if password.is_empty() {
        return Ok(denied());
    }
    // Whatever makes the user unable to log in, the answer costs one hash and reads the same.
    let Some(user) = s.repo.user_by_username(username).await?.filter(|u| u.can_authenticate()) else {
        crate::auth::check_no_password(password).await;
        return Ok(denied());
    };
    if let Some(auth) = &user.delegated_authority {
        match delegated(&s, &user, &auth.id, &password).await? {
            Delegated::Answered(true) => return Ok(AuthOutcome::Accepted("delegated")),
            // AD said no: never fall back to a (possibly older) password stored here.
            Delegated::Answered(false) => return Ok(denied()),
            Delegated::Refused => {}
            Delegated::Reason(reason) => return Ok(AuthOutcome::Denied(Some(reason))),
            // No agent answered: a password stored in Tether (captured on a DC) still works.
            Delegated::Unavailable => {}
        }
    }
    let Some(hash) = s.repo.password_hash(&user.id).await? else {
        crate::auth::check_no_password(password).await;
        return Ok(denied());
    };
    let Some(rehash) = check_password(password.clone(), hash).await else {
        return Ok(denied());
    };
    if user.password_expired {
        return Ok(denied());
    }
    if rehash {
        // A hash captured from AD: replace it with Tether's own now that the password is known.
        let h = crate::auth::hash_password(password).await?;
        s.repo.save_user(&user, Some(&h)).await?;
    }
    Ok(AuthOutcome::Accepted("local"))
}

enum Delegated {
    Answered(bool),
    Reason(String),
    Refused,
    Unavailable,
}

/// Asks AD (through an import agent of the domain) to validate the password.
async fn delegated(
    s: &AppState,
    user: &tether_core::user::User,
    domain_id: &str,
    password: &str,
) -> ApiResult<Delegated> {
    use tether_core::ad::{AdDomain, DelegationState};
    let Some(domain) = s.repo.get::<AdDomain>(Collection::Domains, domain_id).await? else {
        return Ok(Delegated::Unavailable);
    };
    match domain.delegation_state {
        DelegationState::Disabled => return Ok(Delegated::Refused),
        // Reads like any other failure: a distinct answer would tell who exists (and in which
        // domain). Admins see the state on the domain.
        DelegationState::Pending => {
            crate::auth::check_no_password(password.to_string()).await;
            return Ok(Delegated::Answered(false));
        }
        DelegationState::Enabled => {}
    }
    let Some(dn) = user.external_dn.clone() else { return Ok(Delegated::Refused) };
    let req = crate::delegation::AuthRequest { id: crate::auth::new_id(), dn, password: password.to_string() };
    let started = std::time::Instant::now();
    let answer = s.delegation.verify(domain_id, req, s.config.delegation_timeout).await;
    let outcome = match &answer {
        Some(r) if r.ok => "accepted",
        Some(r) => {
            s.metrics.ad_error("delegated_auth", r.code.as_deref().unwrap_or("other"));
            "refused"
        }
        None => "unanswered",
    };
    s.metrics.delegated_auth(outcome, started.elapsed().as_secs_f64());
    match answer {
        Some(r) if r.ok => {
            // On a DC install the password is kept in step with AD from the first login.
            if store_delegated_password(s, domain_id).await? {
                let hash = crate::auth::hash_password(password.to_string()).await?;
                let mut u = user.clone();
                u.has_password = true;
                u.refresh_derived();
                s.repo.save_user(&u, Some(&hash)).await?;
            }
            Ok(Delegated::Answered(true))
        }
        Some(r) => Ok(r.reason.map(Delegated::Reason).unwrap_or(Delegated::Answered(false))),
        None => Ok(Delegated::Unavailable),
    }
}

/// Whether the domain has an import agent installed on a domain controller.
async fn store_delegated_password(s: &AppState, domain_id: &str) -> ApiResult<bool> {
    use tether_core::ad::{AgentType, InstalledOn};
    Ok(s.repo
        .agents_of(domain_id)
        .await?
        .iter()
        .any(|a| a.agent_type == AgentType::Import && a.installed_on == Some(InstalledOn::Dc)))
}
