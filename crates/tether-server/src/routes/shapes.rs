//! The JumpCloud API's response and edit shapes: v2 lists with `x-total-count`, windows over
//! graph listings, GraphConnection and GraphObjectWithPaths, the `{op, type, id}` edit body,
//! and an object's history as a v2 list.

use axum::http::{HeaderMap, HeaderValue};
use axum::Json;
use serde_json::{json, Value};
use tether_store::{Collection, Edge};

use super::extract::QueryPairs;
use crate::error::{ApiError, ApiResult, Code};
use crate::ops::domains::Target;
use crate::state::AppState;

/// The answer of a v2 listing.
pub type V2List = ApiResult<(HeaderMap, Json<Value>)>;

/// A v2 list: the array, with the total in `x-total-count`.
pub fn v2_list(total: u64, items: Vec<Value>) -> (HeaderMap, Json<Value>) {
    let mut h = HeaderMap::new();
    h.insert("x-total-count", HeaderValue::from(total));
    (h, Json(Value::Array(items)))
}

/// Windows an in-memory list by `limit`/`skip` (for graph listings).
pub fn window(q: &QueryPairs, items: Vec<Value>) -> ApiResult<(HeaderMap, Json<Value>)> {
    let limit = super::extract::parse_window("limit", q.get("limit"), 10)?;
    if limit > 100 {
        return Err(ApiError::new(Code::InvalidField, "limit must be at most 100"));
    }
    let skip = super::extract::parse_window("skip", q.get("skip"), 0)?;
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
    Ok(v2_list(total, items))
}

/// The `targets` query parameter of associations (`user` or `user_group`).
pub fn targets(q: &QueryPairs, required: bool) -> ApiResult<Option<Target>> {
    match q.get("targets") {
        Some(t @ ("user" | "user_group")) => Target::parse(t).map(Some),
        Some(t) => {
            Err(ApiError::new(Code::InvalidField, format!("invalid value for `targets`: `{t}` (user or user_group)")))
        }
        None if required => Err(ApiError::new(Code::InvalidField, "`targets` is required (user or user_group)")),
        None => Ok(None),
    }
}

/// The `{op, type, id}` body of an association change and what it targets (`targets` and
/// `type` must agree when both are given).
pub fn association_op(q: &QueryPairs, body: &Value) -> ApiResult<(GraphOp, Target)> {
    let op = graph_op(body)?;
    let target = match (targets(q, false)?, op.kind.as_str()) {
        (Some(t), "") => t,
        (Some(t), k) if t.as_str() != k => {
            let t = t.as_str();
            return Err(ApiError::new(Code::InvalidField, format!("`targets={t}` contradicts `type: {k}`")));
        }
        (_, k) => Target::parse(k)?,
    };
    Ok((op, target))
}

/// The users reached from `id` directly (`user_edge`) or through its groups (`group_edge`),
/// each with the paths it is reached by (GraphObjectWithPaths).
pub async fn users_through(s: &AppState, user_edge: Edge, group_edge: Edge, id: &str) -> ApiResult<Vec<Value>> {
    let store = s.repo.store();
    let mut out: Vec<Value> = Vec::new();
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for u in store.targets(user_edge, id).await? {
        seen.insert(u.clone(), out.len());
        out.push(with_paths(&u, "user", &[(&u, "user")]));
    }
    for g in store.targets(group_edge, id).await? {
        for u in store.targets(Edge::Member, &g).await? {
            let path = json!([connection(&g, "user_group"), connection(&u, "user")]);
            match seen.get(&u) {
                Some(i) => out[*i]["paths"].as_array_mut().expect("paths").push(path),
                None => {
                    seen.insert(u.clone(), out.len());
                    out.push(json!({"id": u, "type": "user", "paths": [path]}));
                }
            }
        }
    }
    Ok(out)
}
