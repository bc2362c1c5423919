//! Active Directory domains and their agents: create, configure, delete (authorities lifted
//! first), agents with the pause-then-delete grace, and the binding of users and groups to a
//! domain, which feeds the domain's sync agents.

use std::collections::{BTreeMap, BTreeSet};
use tether_core::actor::Actor;

use serde::Serialize;
use serde_json::Value;
use tether_core::ad::{
    new_domain, patch_domain, AdDomain, AdStatus, Agent, AgentState, AgentType, InstalledOn, UseCaseChange,
};
use tether_core::user::User;
use tether_store::{Collection, Edge, Secret};

use crate::adi::{feed, feed_groups};
use crate::crypto::{new_id, random_hex, sha256_hex};
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

pub async fn load(s: &AppState, id: &str) -> ApiResult<AdDomain> {
    s.repo.get(Collection::Domains, id).await?.ok_or_else(|| ApiError::not_found("active directory", id))
}

/// An agent of the domain `domain` (another domain's agent is not found).
pub async fn load_agent(s: &AppState, domain: &str, id: &str) -> ApiResult<Agent> {
    match s.repo.get::<Agent>(Collection::Agents, id).await? {
        Some(a) if a.domain_id == domain => Ok(a),
        _ => Err(ApiError::not_found("agent", id)),
    }
}

/// An agent as admins see it: with its derived liveness and deletion time.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub id: String,
    pub agent_type: AgentType,
    pub hostname: Option<String>,
    /// Spelled as JumpCloud's API does.
    #[serde(rename = "source_ip")]
    pub source_ip: Option<String>,
    pub state: AgentState,
    pub version: Option<String>,
    pub contact_at: Option<String>,
    pub paused: bool,
    pub installed_on: Option<InstalledOn>,
    pub deletable_at: Option<String>,
    pub ad_status: Option<AdStatus>,
}

pub fn agent_view(s: &AppState, a: &Agent) -> AgentView {
    AgentView {
        id: a.id.clone(),
        agent_type: a.agent_type,
        hostname: a.hostname.clone(),
        source_ip: a.source_ip.clone(),
        state: a.state(s.now()),
        version: a.version.clone(),
        contact_at: a.contact_at.clone(),
        paused: a.paused,
        installed_on: a.installed_on,
        deletable_at: a.deletable_at(s.config.agent_delete_grace).map(tether_core::timestamp),
        ad_status: a.ad_status.clone(),
    }
}

pub async fn create(s: &AppState, body: &Value) -> ApiResult<AdDomain> {
    let d = new_domain(&new_id(), body, &s.now_str())?;
    s.repo.insert_domain(&d).await?;
    Ok(d)
}

/// Applies a configuration change; answers the domain and the steps a use-case change needs.
/// The change is made on the domain as it is when it is written (a heartbeat moving the
/// primary agent's lease meanwhile makes it read the domain again, never undo the other).
pub async fn configure(s: &AppState, id: &str, body: &Value) -> ApiResult<(AdDomain, UseCaseChange)> {
    super::retrying(|| async {
        let cur = load(s, id).await?;
        let agents = s.repo.agents_of(id).await?;
        let (d, steps) = patch_domain(&cur, body, &agents, &s.now_str())?;
        s.repo.save_domain(&d).await?;
        Ok((d, steps))
    })
    .await
}

/// Deletes a domain that has no agents left.
pub async fn delete(s: &AppState, id: &str) -> ApiResult<()> {
    load(s, id).await?;
    let agents = s.repo.agents_of(id).await?;
    if !agents.is_empty() {
        return Err(ApiError::new(
            Code::Conflict,
            format!(
                "the domain still has {} agent(s): pause, wait for the grace period and delete them first",
                agents.len()
            ),
        ));
    }
    // Authorities pointing at a domain that no longer exists mean nothing: users keep their
    // Tether password (if any) and become manageable; their restrictions are lifted by the
    // decommission's conversion step (externally_managed=false), one user first.
    for mut u in domain_users(s, id).await?.into_values() {
        let is = |a: &Option<tether_core::user::Authority>| a.as_ref().is_some_and(|a| a.id == id);
        if is(&u.password_authority) || is(&u.delegated_authority) {
            u.password_authority = u.password_authority.filter(|a| a.id != id);
            u.delegated_authority = u.delegated_authority.filter(|a| a.id != id);
            u.refresh_derived();
            s.repo.save_user(&u, None).await?;
        }
    }
    s.repo.store().delete(Collection::Domains, id).await?;
    Ok(())
}

/// Creates an agent of the domain; answers it with its one-time connect key.
pub async fn create_agent(s: &AppState, id: &str, agent_type: AgentType) -> ApiResult<(AgentView, String)> {
    let d = load(s, id).await?;
    if !d.use_case.allowed_agents().contains(&agent_type) {
        return Err(ApiError::new(
            Code::NotAllowed,
            format!(
                "a {} domain does not take {} agents",
                tether_core::wire_name(&d.use_case),
                tether_core::wire_name(&agent_type)
            ),
        ));
    }
    let agent = Agent::new(&new_id(), id, agent_type, &s.now_str());
    let key = format!("ck_{}", random_hex(32));
    s.repo.store().put_secret(&agent.id, Secret::ConnectKey, Some(&sha256_hex(&key))).await?;
    s.repo.insert_agent(&agent).await?;
    Ok((agent_view(s, &agent), key))
}

/// Deletes an agent paused for at least the grace; its token is refused from then on.
pub async fn delete_agent(s: &AppState, id: &str, agent: &str) -> ApiResult<()> {
    let a = load_agent(s, id, agent).await?;
    a.check_deletable(s.now(), s.config.agent_delete_grace)
        .map_err(|e| ApiError::new(Code::Conflict, e.to_string()))?;
    // Deleting the document also deletes its token: the running agent is refused from now on.
    s.repo.store().delete(Collection::Agents, agent).await?;
    release_primary(s, &a).await?;
    crate::notify::agent_deactivated(s, &a.domain_id).await?;
    Ok(())
}

/// Pauses or resumes an agent.
pub async fn set_paused(s: &AppState, id: &str, agent: &str, paused: bool) -> ApiResult<AgentView> {
    let mut a = load_agent(s, id, agent).await?;
    if a.paused != paused {
        let at = paused.then(|| s.now_str());
        a = s
            .update_agent(agent, |a| {
                a.paused = paused;
                a.paused_at = at.clone();
            })
            .await?
            .ok_or_else(|| ApiError::not_found("agent", agent))?;
        if paused {
            release_primary(s, &a).await?;
            crate::notify::agent_deactivated(s, &a.domain_id).await?;
        }
    }
    Ok(agent_view(s, &a))
}

/// A paused or deleted import agent stops being primary: another takes over at its next
/// heartbeat.
async fn release_primary(s: &AppState, a: &Agent) -> ApiResult<()> {
    super::retrying(|| async {
        let mut d = load(s, &a.domain_id).await?;
        if d.release_primary(&a.id) {
            d.updated_at = s.now_str();
            s.repo.save_domain(&d).await?;
        }
        Ok(())
    })
    .await
}

/// What can be bound to a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    User,
    UserGroup,
}

impl Target {
    /// The API's name (`user`, `user_group`); anything else is a clear 400.
    pub fn parse(kind: &str) -> ApiResult<Target> {
        match kind {
            "user" => Ok(Target::User),
            "user_group" => Ok(Target::UserGroup),
            other => Err(ApiError::new(
                Code::InvalidField,
                format!("invalid value for `type`: `{other}` (user or user_group)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Target::User => "user",
            Target::UserGroup => "user_group",
        }
    }
}

/// Binds (`add`) or unbinds a user or user group to a domain.
pub async fn set_association(s: &AppState, domain: &str, target: Target, id: &str, add: bool) -> ApiResult<()> {
    load(s, domain).await?;
    let edge = match target {
        Target::User => {
            crate::ops::users::load(&s.repo, id).await?;
            Edge::DomainUser
        }
        Target::UserGroup => {
            crate::ops::groups::load(s, id).await?;
            Edge::DomainGroup
        }
    };
    let users = match edge {
        Edge::DomainGroup => s.repo.store().targets(Edge::Member, id).await?,
        _ => vec![id.to_string()],
    };
    let before = feed::snapshot(s, &users).await?;
    let group_before = match edge {
        Edge::DomainGroup => feed::domains_of_group(s, id).await?,
        _ => Default::default(),
    };
    if add {
        s.repo.store().link(edge, domain, id).await?;
    } else if !s.repo.store().unlink(edge, domain, id).await? {
        let kind = target.as_str();
        return Err(ApiError::new(Code::NotFound, format!("{kind} `{id}` is not associated with this domain")));
    }
    if edge == Edge::DomainGroup {
        let g = crate::ops::groups::load(s, id).await?;
        if add {
            // The group first, so that it reaches AD even when its members' entries fill
            // more than one batch (delivered in the same batch as the entry below, it is
            // left out: `feed_groups::for_delivery`).
            feed_groups::group_changed(s, &g, feed_groups::Membership::Other).await?;
        } else {
            let lost: BTreeSet<String> =
                group_before.difference(&feed::domains_of_group(s, id).await?).cloned().collect();
            feed::group_disconnected(s, &g, &lost).await?;
        }
    }
    feed::rebind(s, before).await?;
    if add && edge == Edge::DomainGroup {
        // Again, now that its members' own entries are queued before it: membership last.
        let g = crate::ops::groups::load(s, id).await?;
        feed_groups::group_changed(s, &g, feed_groups::Membership::Other).await?;
    }
    Ok(())
}

/// Binds (`add`) or unbinds a group to an AD domain, recorded in the group's history.
pub async fn associate_group(s: &AppState, id: &str, domain: &str, add: bool, actor: Actor) -> ApiResult<()> {
    crate::ops::groups::load(s, id).await?;
    set_association(s, domain, Target::UserGroup, id, add).await?;
    let changes = if add {
        serde_json::json!({"activeDirectory": [null, domain]})
    } else {
        serde_json::json!({"activeDirectory": [domain, null]})
    };
    crate::history::record(s, crate::history::Of::Group(id), actor, "association", changes, None).await?;
    Ok(())
}

/// Every user tied to the domain: imported from it (restricted by it), bound to it directly
/// or through a group, or with it as password/delegated authority.
pub async fn domain_users(s: &AppState, domain_id: &str) -> ApiResult<BTreeMap<String, User>> {
    let mut users: BTreeMap<String, User> = BTreeMap::new();
    for u in s.repo.users_of_domain(domain_id).await? {
        users.insert(u.id.clone(), u);
    }
    let store = s.repo.store();
    let mut ids: Vec<String> = store.targets(Edge::DomainUser, domain_id).await?;
    for g in store.targets(Edge::DomainGroup, domain_id).await? {
        ids.extend(store.targets(Edge::Member, &g).await?);
    }
    for id in ids {
        if let std::collections::btree_map::Entry::Vacant(slot) = users.entry(id) {
            if let Some(u) = s.repo.user(slot.key()).await? {
                slot.insert(u);
            }
        }
    }
    let restricted = |u: &User| u.restricted_fields.iter().any(|r| r.id == domain_id);
    let (_, all) =
        s.repo.list_users(&tether_core::query::ListQuery { limit: usize::MAX >> 1, ..Default::default() }).await?;
    for u in all {
        let authority = |a: &Option<tether_core::user::Authority>| a.as_ref().is_some_and(|a| a.id == domain_id);
        if restricted(&u) || authority(&u.password_authority) || authority(&u.delegated_authority) {
            users.entry(u.id.clone()).or_insert(u);
        }
    }
    Ok(users)
}
