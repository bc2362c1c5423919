//! Who made a change, as the history records it: one closed set of kinds, one shape, and one
//! way to print it (the console and the CLI show the same words).

use serde::{Deserialize, Serialize};

/// The kinds of actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// An administrator's API key (the REST API, the console, the CLI).
    ApiKey,
    /// The import agent of a domain (AD → Tether).
    ImportAgent,
    /// The sync agent of a domain (what it wrote to AD).
    SyncAgent,
    /// A held plan applied by an administrator.
    PlanApproval,
    /// A held plan discarded by an administrator.
    PlanRejection,
    /// The user, in the portal.
    User,
}

/// The actor of a history entry: its kind and what identifies it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The administrator behind a plan's approval or rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Box<Actor>>,
    /// How a user acted (e.g. `activation link`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The AD object an agent read or wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_guid: Option<String>,
    /// The AD group an import applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_group: Option<String>,
}

impl Actor {
    fn of(kind: ActorKind) -> Actor {
        Actor { kind, id: None, name: None, api_key: None, via: None, ad_guid: None, ad_group: None }
    }

    pub fn api_key(id: &str, name: &str) -> Actor {
        Actor { id: Some(id.into()), name: Some(name.into()), ..Actor::of(ActorKind::ApiKey) }
    }

    pub fn import_agent(id: &str) -> Actor {
        Actor { id: Some(id.into()), ..Actor::of(ActorKind::ImportAgent) }
    }

    pub fn sync_agent(id: &str, ad_guid: Option<String>) -> Actor {
        Actor { id: Some(id.into()), ad_guid, ..Actor::of(ActorKind::SyncAgent) }
    }

    /// A plan approved (`approved`) or rejected by the administrator `key`.
    pub fn plan(approved: bool, key: Actor) -> Actor {
        let kind = if approved { ActorKind::PlanApproval } else { ActorKind::PlanRejection };
        Actor { api_key: Some(Box::new(key)), ..Actor::of(kind) }
    }

    pub fn user(id: &str, name: &str, via: Option<&str>) -> Actor {
        Actor { id: Some(id.into()), name: Some(name.into()), via: via.map(Into::into), ..Actor::of(ActorKind::User) }
    }

    /// The same actor, acting on the AD object `ad_guid` (of the AD group `ad_group`).
    pub fn on_ad(&self, ad_guid: Option<String>, ad_group: Option<String>) -> Actor {
        Actor { ad_guid, ad_group: ad_group.or(self.ad_group.clone()), ..self.clone() }
    }
}

/// `TYPE LABEL`, e.g. `api_key bootstrap`, `import_agent CN=Staff,…`, `plan_approval by
/// api_key ops`.
impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = crate::wire_name(&self.kind);
        match (&self.api_key, self.name.as_ref().or(self.ad_group.as_ref()).or(self.id.as_ref())) {
            (Some(key), _) => write!(f, "{kind} by {key}"),
            (None, Some(label)) => write!(f, "{kind} {label}"),
            (None, None) => f.write_str(&kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_words() {
        let key = Actor::api_key("k1", "bootstrap");
        let v = serde_json::to_value(&key).unwrap();
        assert_eq!(v, serde_json::json!({"type": "api_key", "id": "k1", "name": "bootstrap"}));
        assert_eq!(key.to_string(), "api_key bootstrap");
        let approval = Actor::plan(true, key.clone());
        assert_eq!(serde_json::to_value(&approval).unwrap()["apiKey"]["name"], "bootstrap");
        assert_eq!(approval.to_string(), "plan_approval by api_key bootstrap");
        let read = Actor::import_agent("a1").on_ad(Some("00ff".into()), Some("CN=Staff".into()));
        assert_eq!(read.to_string(), "import_agent CN=Staff");
        assert_eq!(serde_json::to_value(&read).unwrap()["adGuid"], "00ff");
        let back: Actor = serde_json::from_value(serde_json::to_value(&read).unwrap()).unwrap();
        assert_eq!(back, read);
    }
}
