//! Per-object history: every change to a user or a group records when, what (field: before
//! → after), who or what caused it (an admin's API key, the import agent with the AD
//! objectGUID and the policy row applied, the sync agent), so "why was this user suspended?"
//! and "who emptied this group?" have an answer. A membership change is recorded on both
//! the user (`memberOf`) and the group (`members`).

use serde_json::{json, Map, Value};
use tether_core::actor::Actor;
use tether_core::user::User;
use tether_store::{Collection, Doc};

use crate::crypto::new_id;
use crate::error::ApiResult;
use crate::state::AppState;

/// The fields that differ between two states of a document: `{field: [before, after]}`.
pub fn diff_of<T: serde::Serialize>(before: Option<&T>, after: Option<&T>) -> Value {
    let b = before.map(|u| serde_json::to_value(u).expect("serializes")).unwrap_or(Value::Null);
    let a = after.map(|u| serde_json::to_value(u).expect("serializes")).unwrap_or(Value::Null);
    let mut out = Map::new();
    let keys: std::collections::BTreeSet<&String> =
        b.as_object().into_iter().chain(a.as_object()).flat_map(|m| m.keys()).collect();
    for k in keys {
        let (x, y) = (b.get(k).cloned().unwrap_or(Value::Null), a.get(k).cloned().unwrap_or(Value::Null));
        if x != y {
            out.insert(k.clone(), json!([x, y]));
        }
    }
    Value::Object(out)
}

/// The fields that differ between two states of a user.
pub fn diff(before: Option<&User>, after: Option<&User>) -> Value {
    let mut out = match diff_of(before, after) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    // Passwords never appear, only that one was set or removed.
    if before.is_some_and(|u| u.has_password) != after.is_some_and(|u| u.has_password) {
        let state = |u: Option<&User>| if u.is_some_and(|u| u.has_password) { "set" } else { "none" };
        out.insert("password".into(), json!([state(before), state(after)]));
    }
    Value::Object(out)
}

/// What a history entry is about.
#[derive(Clone, Copy, Debug)]
pub enum Of<'a> {
    User(&'a str),
    Group(&'a str),
}

/// The stored entry of one change (for batch writes), or `None` when nothing changed.
pub fn entry(s: &AppState, of: Of<'_>, actor: Actor, action: &str, changes: Value, why: Option<&str>) -> Option<Doc> {
    if changes.as_object().is_some_and(Map::is_empty) && action == "update" {
        return None;
    }
    let (object_type, object_id) = match of {
        Of::User(id) => ("user", id),
        Of::Group(id) => ("group", id),
    };
    let id = new_id();
    let doc = json!({"id": id, "objectId": object_id, "objectType": object_type, "at": s.now_str(), "actor": actor,
                     "action": action, "changes": changes, "reason": why});
    Some(Doc { version: None, id, key1: None, key2: None, body: doc })
}

/// Records one change of a user or a group.
pub async fn record(
    s: &AppState,
    of: Of<'_>,
    actor: Actor,
    action: &str,
    changes: Value,
    why: Option<&str>,
) -> ApiResult<()> {
    if let Some(doc) = entry(s, of, actor, action, changes, why) {
        s.repo.store().insert(Collection::History, &doc).await?;
    }
    Ok(())
}

/// The actor of an admin request.
pub fn admin(key: &crate::keys::ApiKey) -> Actor {
    Actor::api_key(&key.id, &key.name)
}
