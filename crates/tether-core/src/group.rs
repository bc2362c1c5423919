//! User groups (v2 `usergroups`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::CoreError;

/// A user group, in the shape of JumpCloud's v2 `UserGroup`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Always `user_group`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `STATIC` (members are added explicitly).
    #[serde(rename = "membershipMethod")]
    pub membership_method: String,
    #[serde(rename = "memberQuery")]
    pub member_query: Option<Value>,
    /// Free-form attributes; groups mirrored from AD carry `activeDirectory {id, dn}`.
    #[schema(value_type = Object)]
    pub attributes: Value,
    /// Why the sync agent did not write the group to AD (absent once a write succeeds).
    #[serde(rename = "adSyncError", skip_serializing_if = "Option::is_none")]
    pub ad_sync_error: Option<String>,
    /// The stored revision (optimistic concurrency; never serialized).
    #[serde(rename = "_v", default, skip_serializing)]
    #[schema(ignore)]
    pub revision: crate::revision::Revision,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            revision: Default::default(),
            id: String::new(),
            name: String::new(),
            description: String::new(),
            kind: "user_group".into(),
            membership_method: "STATIC".into(),
            member_query: None,
            attributes: Value::Object(Map::new()),
            ad_sync_error: None,
        }
    }
}

const GROUP_READ_ONLY: [&str; 4] = ["id", "_id", "type", "adSyncError"];

/// Creates (`current = None`) or updates a group from a request body.
pub fn write_group(current: Option<&Group>, id: &str, body: &Value) -> Result<Group, CoreError> {
    let body = body.as_object().ok_or_else(|| CoreError::invalid("body", "expected a JSON object"))?;
    let base = current.cloned().unwrap_or_else(|| Group { id: id.to_string(), ..Group::default() });
    let mut doc = serde_json::to_value(&base).expect("a group serializes");
    let obj = doc.as_object_mut().expect("object");
    for (k, v) in body {
        if GROUP_READ_ONLY.contains(&k.as_str()) || !obj.contains_key(k) {
            continue;
        }
        let mut one = Map::new();
        one.insert(k.clone(), v.clone());
        serde_json::from_value::<Group>(Value::Object(one)).map_err(|e| CoreError::invalid(k, e.to_string()))?;
        obj.insert(k.clone(), v.clone());
    }
    let mut g: Group = serde_json::from_value(doc).map_err(|e| CoreError::invalid("body", e.to_string()))?;
    g.revision = base.revision.clone();
    if g.attributes.is_null() {
        g.attributes = Value::Object(Map::new());
    }
    if !g.attributes.is_object() {
        return Err(CoreError::invalid("attributes", "must be an object"));
    }
    if g.name.trim().is_empty() {
        return Err(CoreError::invalid("name", "is required"));
    }
    if g.name.chars().count() > 256 || g.name.chars().any(char::is_control) {
        return Err(CoreError::invalid("name", "at most 256 characters, no control characters"));
    }
    if g.membership_method != "STATIC" {
        return Err(CoreError::invalid("membershipMethod", "only STATIC is supported"));
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_and_update() {
        let g = write_group(None, "g1", &json!({"name": "Eng", "id": "evil", "type": "x"})).unwrap();
        assert_eq!((g.id.as_str(), g.name.as_str(), g.kind.as_str()), ("g1", "Eng", "user_group"));
        let g2 = write_group(Some(&g), "ignored", &json!({"description": "d"})).unwrap();
        assert_eq!((g2.name.as_str(), g2.description.as_str()), ("Eng", "d"));
        assert!(write_group(None, "g", &json!({"description": "no name"})).is_err());
        let e = write_group(None, "g", &json!({"name": 5})).unwrap_err();
        assert!(matches!(e, CoreError::InvalidField { ref field, .. } if field == "name"));
    }
}
