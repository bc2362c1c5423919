//! Request input: JSON bodies with clear errors, and the list parameters of the
//! JumpCloud API (`limit`, `skip`, repeated `filter`, `sort`, `fields`).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::Method;
use serde_json::Value;
use tether_core::query::{parse_filter_params, parse_sort, Field, ListQuery};

use tether_store::{Collection, Secret};

use crate::crypto::sha256_hex;
use crate::error::{ApiError, Code};
use crate::keys::{ApiKey, Role};
use crate::state::AppState;

/// A JSON body, any content type; malformed JSON is a 400 that says where and why.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(Code::InvalidJson, format!("cannot read the body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Object(Default::default())));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::new(Code::InvalidJson, format!("invalid JSON body: {e}")))
    }
}

/// The raw query string as (name, value) pairs, repeated names kept.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        Ok(QueryPairs(form_urlencoded::parse(q.as_bytes()).into_owned().collect()))
    }
}

impl QueryPairs {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// Builds a list query against `catalogue`; `max_limit` is 100 for lists.
    pub fn list_query(&self, catalogue: &[Field], max_limit: usize) -> Result<ListQuery, ApiError> {
        let limit = parse_window("limit", self.get("limit"), 10)?;
        if limit > max_limit {
            return Err(ApiError::new(Code::InvalidField, format!("limit must be at most {max_limit}")));
        }
        let skip = parse_window("skip", self.get("skip"), 0)?;
        // Each repeated `filter` parameter is one condition; they are combined with AND.
        let filter = parse_filter_params(catalogue, &self.all("filter"))?;
        let sort = match self.get("sort") {
            Some(s) => parse_sort(catalogue, s)?,
            None => None,
        };
        Ok(ListQuery { filter, sort, limit, skip })
    }

    /// `fields=a b c` (v1): the projection, if any.
    pub fn fields(&self) -> Option<Vec<String>> {
        self.get("fields").map(|f| f.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_string).collect())
    }
}

pub fn parse_window(name: &str, v: Option<&str>, default: usize) -> Result<usize, ApiError> {
    match v {
        None | Some("") => Ok(default),
        Some(s) => s.parse().map_err(|_| {
            ApiError::new(Code::InvalidField, format!("{name} must be a non-negative integer, not `{s}`"))
        }),
    }
}

/// Keeps only `fields` (plus `id` and `_id`) of a JSON object.
pub fn project(mut v: Value, fields: &Option<Vec<String>>) -> Value {
    if let (Some(fields), Value::Object(map)) = (fields, &mut v) {
        map.retain(|k, _| k == "id" || k == "_id" || fields.iter().any(|f| f == k));
    }
    v
}

/// An authenticated administrator request. Read-only keys pass only for GET/HEAD.
pub struct Admin(pub ApiKey);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::new(Code::MissingApiKey, "missing x-api-key header"))?;
        let owner = state.repo.store().secret_owner(Secret::ApiKey, &sha256_hex(key)).await?;
        let Some(owner) = owner else {
            return Err(ApiError::new(Code::InvalidApiKey, "invalid API key"));
        };
        let key: ApiKey = state
            .repo
            .get(Collection::ApiKeys, &owner)
            .await?
            .ok_or_else(|| ApiError::new(Code::InvalidApiKey, "invalid API key"))?;
        let reading = parts.method == Method::GET || parts.method == Method::HEAD;
        if key.role == Role::ReadOnly && !reading {
            return Err(ApiError::new(Code::Forbidden, "this API key is read-only"));
        }
        Ok(Admin(key))
    }
}

/// An administrator's read of one object's listing (members, associations, history): the
/// object's id from the path and the list parameters, checked in that order.
pub struct Listing {
    pub s: AppState,
    pub id: String,
    pub q: QueryPairs,
}

impl FromRequestParts<AppState> for Listing {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Admin::from_request_parts(parts, state).await?;
        let axum::extract::Path(id) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(Code::InvalidField, e.body_text()))?;
        let q = QueryPairs::from_request_parts(parts, state).await?;
        Ok(Listing { s: state.clone(), id, q })
    }
}
