//! What an import cycle decided, kept as a plan: the changes a cycle will apply, and the
//! whole cycle held by a mass-change guard until an admin approves (applied exactly as held)
//! or rejects it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tether_core::actor::Actor;
use tether_core::adi::guard::Category;
use tether_core::adi::import::{AdUserObs, UserDecision};
use tether_core::user::User;

use crate::error::ApiError;
use crate::state::AppState;
use tether_core::wire::ImportReport;

/// One decided change, as held in a plan (the user's stored-only fields kept alongside).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    /// objectGUID and DN of the AD user, when observed.
    pub obs_guid: Option<String>,
    pub obs_dn: Option<String>,
    /// The Tether user the decision applies to, when it exists.
    pub existing: Option<User>,
    pub existing_ad_guid: Option<String>,
    #[serde(default)]
    pub existing_ad_links: AdLinks,
    pub existing_has_password: bool,
    pub decision: UserDecision,
    pub decision_ad_guid: Option<String>,
    #[serde(default)]
    pub decision_ad_links: AdLinks,
    pub decision_has_password: bool,
}

type AdLinks = std::collections::BTreeMap<String, tether_core::user::AdLink>;

/// The user a decision writes (for create, update and unbind).
pub(crate) fn decided_user(d: &UserDecision) -> Option<&User> {
    match d {
        UserDecision::Create(u) | UserDecision::Update { user: u, .. } | UserDecision::Unbind(u) => Some(u),
        _ => None,
    }
}

impl Planned {
    pub(crate) fn new(obs: Option<&AdUserObs>, existing: Option<User>, decision: UserDecision) -> Self {
        let inner = decided_user(&decision);
        Planned {
            obs_guid: obs.map(|o| o.guid.clone()),
            obs_dn: obs.map(|o| o.dn.clone()),
            existing_ad_guid: existing.as_ref().and_then(|u| u.ad_guid.clone()),
            existing_ad_links: existing.as_ref().map(|u| u.ad_links.clone()).unwrap_or_default(),
            existing_has_password: existing.as_ref().is_some_and(|u| u.has_password),
            existing,
            decision_ad_guid: inner.and_then(|u| u.ad_guid.clone()),
            decision_ad_links: inner.map(|u| u.ad_links.clone()).unwrap_or_default(),
            decision_has_password: inner.is_some_and(|u| u.has_password),
            decision,
        }
    }

    /// Restores the fields a plan's JSON does not carry.
    pub(crate) fn restored(mut self) -> Self {
        if let Some(u) = self.existing.as_mut() {
            u.ad_guid = self.existing_ad_guid.clone();
            u.ad_links = self.existing_ad_links.clone();
            u.has_password = self.existing_has_password;
        }
        if let UserDecision::Create(u) | UserDecision::Update { user: u, .. } | UserDecision::Unbind(u) =
            &mut self.decision
        {
            u.ad_guid = self.decision_ad_guid.clone();
            u.ad_links = self.decision_ad_links.clone();
            u.has_password = self.decision_has_password;
        }
        self
    }

    /// The action name and the user's new state, for a decision that changes something.
    pub(crate) fn action(&self) -> Option<(&'static str, Option<&User>)> {
        let name = match &self.decision {
            UserDecision::Create(_) => "create",
            UserDecision::Update { .. } => "update",
            UserDecision::Unbind(_) => "unbind",
            UserDecision::Delete => "delete",
            _ => return None,
        };
        Some((name, decided_user(&self.decision)))
    }

    /// The policy row behind the decision.
    pub(crate) fn reason(&self) -> String {
        self.change()
            .and_then(|c| c["reason"].as_str().map(str::to_string))
            .unwrap_or_else(|| "AD state imported".into())
    }

    /// Every decision for a dry run: `{object, dn, action, reason, changes}`.
    pub(crate) fn describe(&self) -> Option<Value> {
        let who = self.existing.as_ref().map(|u| u.username.clone()).or(self.obs_dn.clone()).unwrap_or_default();
        let (action, after) = self.action()?;
        Some(json!({"object": who, "dn": self.obs_dn, "action": action, "reason": self.reason(),
                    "changes": crate::history::diff(self.existing.as_ref(), after)}))
    }

    /// The history entry of the decision (`None` for no change).
    pub(crate) fn history(&self, s: &AppState, actor: &Actor) -> Option<tether_store::Doc> {
        let before = self.existing.as_ref();
        let (action, after) = self.action()?;
        let uid = after.or(before).map(|u| u.id.clone()).unwrap_or_default();
        let who = actor.on_ad(self.obs_guid.clone().or(before.and_then(|u| u.ad_guid.clone())), None);
        crate::history::entry(
            s,
            crate::history::Of::User(&uid),
            who,
            action,
            crate::history::diff(before, after),
            Some(&self.reason()),
        )
    }

    /// The plan line an admin reviews: `{category, object, action, reason}`.
    pub(crate) fn change(&self) -> Option<Value> {
        let who = self.existing.as_ref().map(|u| u.username.clone()).or(self.obs_dn.clone()).unwrap_or_default();
        let (category, action, reason) = match &self.decision {
            UserDecision::Delete => (
                Category::Deletes,
                "delete",
                if self.obs_guid.is_some() {
                    "disabled in AD (UserDisableAction=remove)"
                } else {
                    "left the scope (UserDissociationAction=remove)"
                },
            ),
            UserDecision::Unbind(_) => (
                Category::Unbinds,
                "unbind",
                if self.obs_guid.is_some() {
                    "disabled in AD (UserDisableAction=unbind)"
                } else {
                    "left the scope (UserDissociationAction=unbind)"
                },
            ),
            UserDecision::Update { user, .. }
                if user.suspended && !self.existing.as_ref().is_some_and(|u| u.suspended) =>
            {
                (Category::Suspends, "suspend", "disabled in AD (UserDisableAction=suspend)")
            }
            UserDecision::Update { clear_password: true, .. } => (
                Category::PasswordClears,
                "take over, password pending",
                "found in AD (UserTakeoverAction=deactivate): the Tether password is removed",
            ),
            _ => return None,
        };
        Some(json!({"category": category, "object": who, "action": action, "reason": reason}))
    }
}

/// A cycle held by a mass-change guard, stored until an admin approves or rejects it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldPlan {
    pub status: String,
    pub reason: String,
    pub created: String,
    pub changes: Vec<Value>,
    pub planned: Vec<Planned>,
    pub report: ImportReport,
}

fn plan_key(domain_id: &str) -> String {
    format!("plan:{domain_id}")
}

pub async fn held_plan(s: &AppState, domain_id: &str) -> Result<Option<HeldPlan>, ApiError> {
    match s.repo.store().setting(&plan_key(domain_id)).await? {
        Some(v) if !v.is_null() => Ok(serde_json::from_value(v).ok()),
        _ => Ok(None),
    }
}

/// Stores `plan` as the domain's held plan.
pub(crate) async fn hold(s: &AppState, domain_id: &str, plan: &HeldPlan) -> Result<(), ApiError> {
    s.repo.store().put_setting(&plan_key(domain_id), &serde_json::to_value(plan).expect("serializes")).await?;
    Ok(())
}

pub async fn drop_plan(s: &AppState, domain_id: &str) -> Result<(), ApiError> {
    s.repo.store().put_setting(&plan_key(domain_id), &Value::Null).await?;
    Ok(())
}
