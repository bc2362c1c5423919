//! Active Directory domains and their agents: use cases, which agent types each allows,
//! the delegation state, and the agent liveness and deletion-grace rules.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

use crate::CoreError;

/// Which system is the authority for users, groups and passwords.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum UseCase {
    /// AD is the authority: import only.
    #[serde(rename = "ADASAUTHORITY")]
    AdAsAuthority,
    /// Manage in either: import and sync.
    #[default]
    #[serde(rename = "TWOWAYSYNC")]
    TwoWaySync,
    /// Tether is the authority: sync only.
    #[serde(rename = "JCASAUTHORITY")]
    JcAsAuthority,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum AgentType {
    #[default]
    #[serde(rename = "IMPORT")]
    Import,
    #[serde(rename = "SYNC")]
    Sync,
}

impl UseCase {
    /// The agent types a domain of this use case accepts.
    pub fn allowed_agents(self) -> &'static [AgentType] {
        match self {
            UseCase::AdAsAuthority => &[AgentType::Import],
            UseCase::TwoWaySync => &[AgentType::Import, AgentType::Sync],
            UseCase::JcAsAuthority => &[AgentType::Sync],
        }
    }

    /// Delegated password validation of a new domain: always on (pending until a capable
    /// agent connects) when AD is the authority, off by default otherwise.
    pub fn initial_delegation(self) -> DelegationState {
        match self {
            UseCase::AdAsAuthority => DelegationState::Pending,
            _ => DelegationState::Disabled,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum DelegationState {
    Enabled,
    Pending,
    #[default]
    Disabled,
}

/// A mass-change bound for one category of change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
}

/// A category of change a mass-change guard bounds, named in the API as `deletes`,
/// `groupDeletes` (mirrored groups removed by an import), `membershipRemovals`,
/// `passwordClears` (takeovers that leave the password pending), `passwordResets`,
/// `suspends`, `unbinds`. Declared in that order, which is the order bounds
/// are checked in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Category {
    Deletes,
    GroupDeletes,
    MembershipRemovals,
    PasswordClears,
    PasswordResets,
    Suspends,
    Unbinds,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Deletes,
        Category::GroupDeletes,
        Category::MembershipRemovals,
        Category::PasswordClears,
        Category::PasswordResets,
        Category::Suspends,
        Category::Unbinds,
    ];

    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Deletes => "deletes",
            Category::GroupDeletes => "groupDeletes",
            Category::MembershipRemovals => "membershipRemovals",
            Category::PasswordClears => "passwordClears",
            Category::PasswordResets => "passwordResets",
            Category::Suspends => "suspends",
            Category::Unbinds => "unbinds",
        }
    }

    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The guards of a fresh domain: 100 of each category per cycle.
pub fn default_guards() -> BTreeMap<Category, Guard> {
    Category::ALL.into_iter().map(|c| (c, Guard { count: Some(100), percent: None })).collect()
}

/// An Active Directory domain connected to Tether.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdDomain {
    pub id: String,
    /// The domain's naming context, e.g. `DC=corp,DC=example,DC=com`.
    pub domain: String,
    #[serde(rename = "useCase")]
    pub use_case: UseCase,
    #[serde(rename = "delegationState")]
    pub delegation_state: DelegationState,
    #[serde(rename = "groupsEnabled")]
    pub groups_enabled: bool,
    #[serde(rename = "primaryAgent")]
    pub primary_agent: Option<String>,
    #[serde(rename = "primaryImportAgent")]
    pub primary_import_agent: Option<String>,
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
    pub guards: BTreeMap<Category, Guard>,
    /// Until when the primary import agent holds its lease.
    #[serde(rename = "primaryLeaseExpiresAt", default)]
    pub primary_lease_expires_at: Option<String>,
    /// Incremented each time another import agent becomes primary; reports carrying an
    /// older token are refused, so two agents never both apply a cycle.
    #[serde(rename = "primaryFencingToken", default)]
    pub primary_fencing_token: u64,
    /// Incremented before each import report (or approved plan) is applied: an incremental
    /// report is relative to the agent's last applied one and is taken only if nothing was
    /// applied since (`ImportReport::base`).
    #[serde(rename = "importSeq", default)]
    pub import_seq: u64,
    /// The stored revision (optimistic concurrency; never serialized).
    #[serde(rename = "_v", default, skip_serializing)]
    #[schema(ignore)]
    pub revision: crate::revision::Revision,
}

/// How long a primary import agent's lease lasts without a heartbeat.
pub const PRIMARY_LEASE: time::Duration = time::Duration::seconds(45);

impl AdDomain {
    /// An import agent (not paused) heartbeats: it renews its lease if primary, or takes the
    /// lease when there is no primary or the primary's lease expired. Returns whether it is
    /// primary now, and whether anything changed.
    pub fn claim_primary(&mut self, agent_id: &str, now: time::OffsetDateTime) -> (bool, bool) {
        let expires = self.primary_lease_expires_at.as_deref().and_then(parse_ts);
        let held_by_other =
            self.primary_import_agent.as_deref().is_some_and(|p| p != agent_id) && expires.is_some_and(|t| t > now);
        if held_by_other {
            return (false, false);
        }
        if self.primary_import_agent.as_deref() != Some(agent_id) {
            self.primary_import_agent = Some(agent_id.to_string());
            self.primary_fencing_token += 1;
        }
        self.primary_lease_expires_at = Some(crate::timestamp(now + PRIMARY_LEASE));
        (true, true)
    }

    /// A paused or deleted agent gives the lease up at once.
    pub fn release_primary(&mut self, agent_id: &str) -> bool {
        if self.primary_import_agent.as_deref() == Some(agent_id) {
            self.primary_import_agent = None;
            self.primary_lease_expires_at = None;
            return true;
        }
        false
    }
}

/// Validates and normalises a domain naming context (`DC=a,DC=b`; case and spaces tidied).
pub fn normalize_domain_dn(s: &str) -> Result<String, CoreError> {
    let parts: Vec<String> = s
        .split(',')
        .map(|p| {
            let (k, v) = p.split_once('=').ok_or_else(|| bad_dn(s))?;
            let (k, v) = (k.trim(), v.trim());
            let label_ok = !v.is_empty()
                && v.len() <= 63
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !v.starts_with('-');
            if !k.eq_ignore_ascii_case("DC") || !label_ok {
                return Err(bad_dn(s));
            }
            Ok(format!("DC={v}"))
        })
        .collect::<Result<_, _>>()?;
    Ok(parts.join(","))
}

fn bad_dn(s: &str) -> CoreError {
    CoreError::invalid("domain", format!("`{s}` is not a domain naming context like DC=corp,DC=example,DC=com"))
}

/// Creates a domain from a POST body (`domain` required; `useCase` defaults to TWOWAYSYNC
/// for older clients that do not send it).
pub fn new_domain(id: &str, body: &Value, now: &str) -> Result<AdDomain, CoreError> {
    let domain =
        body.get("domain").and_then(Value::as_str).ok_or_else(|| CoreError::invalid("domain", "is required"))?;
    let use_case: UseCase = match body.get("useCase") {
        None | Some(Value::Null) => UseCase::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| CoreError::invalid("useCase", "must be ADASAUTHORITY, TWOWAYSYNC or JCASAUTHORITY"))?,
    };
    Ok(AdDomain {
        revision: Default::default(),
        id: id.to_string(),
        domain: normalize_domain_dn(domain)?,
        use_case,
        delegation_state: use_case.initial_delegation(),
        groups_enabled: body.get("groupsEnabled").and_then(Value::as_bool).unwrap_or(true),
        primary_agent: None,
        primary_import_agent: None,
        updated_at: now.to_string(),
        guards: default_guards(),
        primary_lease_expires_at: None,
        primary_fencing_token: 0,
        import_seq: 0,
    })
}

/// What a PATCH of a domain changed and what the admin still has to do.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct UseCaseChange {
    /// Agents whose type the new use case no longer allows: pause, delete and uninstall them.
    #[serde(rename = "agentsToRemove")]
    pub agents_to_remove: Vec<String>,
    /// Agent types the new use case needs and the domain does not have yet.
    #[serde(rename = "agentTypesToInstall")]
    pub agent_types_to_install: Vec<AgentType>,
}

/// Applies a PATCH to a domain. `agents` are the domain's current agents.
pub fn patch_domain(
    current: &AdDomain,
    body: &Value,
    agents: &[Agent],
    now: &str,
) -> Result<(AdDomain, UseCaseChange), CoreError> {
    let obj = body.as_object().ok_or_else(|| CoreError::invalid("body", "expected a JSON object"))?;
    let mut d = current.clone();
    if let Some(v) = obj.get("useCase") {
        d.use_case = serde_json::from_value(v.clone())
            .map_err(|_| CoreError::invalid("useCase", "must be ADASAUTHORITY, TWOWAYSYNC or JCASAUTHORITY"))?;
    }
    if d.use_case != current.use_case {
        d.delegation_state = match d.use_case {
            UseCase::AdAsAuthority => {
                if agents.iter().any(|a| a.agent_type == AgentType::Import && a.contact_at.is_some()) {
                    DelegationState::Enabled
                } else {
                    DelegationState::Pending
                }
            }
            _ => DelegationState::Disabled,
        };
    }
    if let Some(v) = obj.get("delegationState") {
        let want: DelegationState = serde_json::from_value(v.clone())
            .map_err(|_| CoreError::invalid("delegationState", "must be ENABLED or DISABLED"))?;
        if want != d.delegation_state {
            if d.use_case == UseCase::AdAsAuthority {
                return Err(CoreError::NotAllowed(
                    "delegated authentication is always on when AD is the authority (ADASAUTHORITY)".into(),
                ));
            }
            if d.use_case == UseCase::JcAsAuthority && want != DelegationState::Disabled {
                return Err(CoreError::NotAllowed(
                    "delegated authentication needs an import agent, which JCASAUTHORITY does not have".into(),
                ));
            }
            if want == DelegationState::Pending {
                return Err(CoreError::invalid("delegationState", "must be ENABLED or DISABLED"));
            }
            d.delegation_state = want;
        }
    }
    if let Some(v) = obj.get("groupsEnabled") {
        d.groups_enabled = v.as_bool().ok_or_else(|| CoreError::invalid("groupsEnabled", "must be true or false"))?;
    }
    if let Some(v) = obj.get("guards") {
        let g: BTreeMap<String, Guard> =
            serde_json::from_value(v.clone()).map_err(|e| CoreError::invalid("guards", e.to_string()))?;
        for (cat, guard) in g {
            let Some(category) = Category::parse(&cat) else {
                return Err(CoreError::invalid("guards", format!("unknown category `{cat}`")));
            };
            if guard.percent.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
                return Err(CoreError::invalid("guards", format!("`{cat}.percent` must be between 0 and 100")));
            }
            d.guards.insert(category, guard);
        }
    }
    if let Some(v) = obj.get("domain") {
        if v.as_str().map(normalize_domain_dn).transpose()?.as_deref() != Some(current.domain.as_str()) {
            return Err(CoreError::NotAllowed("a domain's naming context cannot change; add a new domain".into()));
        }
    }
    d.updated_at = now.to_string();
    let allowed = d.use_case.allowed_agents();
    let change = UseCaseChange {
        agents_to_remove: agents.iter().filter(|a| !allowed.contains(&a.agent_type)).map(|a| a.id.clone()).collect(),
        agent_types_to_install: allowed
            .iter()
            .filter(|t| !agents.iter().any(|a| a.agent_type == **t))
            .copied()
            .collect(),
    };
    Ok((d, change))
}

/// Where an agent runs: on a domain controller (can capture passwords) or a member server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum InstalledOn {
    #[default]
    Dc,
    MemberServer,
}

/// An agent of a domain, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: String,
    #[serde(rename = "domainId")]
    pub domain_id: String,
    #[serde(rename = "agentType")]
    pub agent_type: AgentType,
    pub hostname: Option<String>,
    pub source_ip: Option<String>,
    pub version: Option<String>,
    #[serde(rename = "contactAt")]
    pub contact_at: Option<String>,
    pub paused: bool,
    #[serde(rename = "pausedAt")]
    pub paused_at: Option<String>,
    #[serde(rename = "installedOn")]
    pub installed_on: Option<InstalledOn>,
    pub created: String,
    /// The last change-feed entry a sync agent acknowledged.
    #[serde(default)]
    pub cursor: i64,
    /// Whether the agent reached AD at its last attempt, as its heartbeat reports.
    #[serde(rename = "adStatus", default, skip_serializing_if = "Option::is_none")]
    pub ad_status: Option<AdStatus>,
    /// The stored revision (optimistic concurrency; never serialized).
    #[serde(rename = "_v", default, skip_serializing)]
    #[schema(ignore)]
    pub revision: crate::revision::Revision,
}

/// An agent's view of its AD connection: an outage shows here (and in the metrics) while
/// the agent backs off, so an admin sees why changes are waiting.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdStatus {
    pub reachable: bool,
    /// When the current outage began (absent while AD is reachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The last error talking to AD during the outage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its short code (`connect`, `52e`, `rc53`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// An agent not heard from for this long is `inactive`.
pub const AGENT_INACTIVE_AFTER: time::Duration = time::Duration::minutes(5);

/// Agent liveness as the API shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    Unsealed,
    Active,
    Inactive,
}

fn parse_ts(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

impl Agent {
    /// A new agent of a domain: unsealed until its first contact.
    pub fn new(id: &str, domain_id: &str, agent_type: AgentType, created: &str) -> Self {
        Agent {
            revision: Default::default(),
            id: id.to_string(),
            domain_id: domain_id.to_string(),
            agent_type,
            hostname: None,
            source_ip: None,
            version: None,
            contact_at: None,
            paused: false,
            paused_at: None,
            installed_on: None,
            created: created.to_string(),
            cursor: 0,
            ad_status: None,
        }
    }

    pub fn state(&self, now: time::OffsetDateTime) -> AgentState {
        match self.contact_at.as_deref().and_then(parse_ts) {
            None => AgentState::Unsealed,
            Some(t) if now - t <= AGENT_INACTIVE_AFTER => AgentState::Active,
            Some(_) => AgentState::Inactive,
        }
    }

    /// When a paused agent may be deleted (`None` while it is not paused).
    pub fn deletable_at(&self, grace: time::Duration) -> Option<time::OffsetDateTime> {
        if !self.paused {
            return None;
        }
        self.paused_at.as_deref().and_then(parse_ts).map(|t| t + grace)
    }

    /// Whether it may be deleted now; the error says why not.
    pub fn check_deletable(&self, now: time::OffsetDateTime, grace: time::Duration) -> Result<(), CoreError> {
        match self.deletable_at(grace) {
            None => Err(CoreError::NotAllowed("pause the agent before deleting it".into())),
            Some(t) if now < t => Err(CoreError::NotAllowed(format!(
                "the agent was paused less than {}s ago; it can be deleted at {}",
                grace.whole_seconds(),
                crate::timestamp(t)
            ))),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn agent(t: AgentType) -> Agent {
        Agent::new(&format!("{t:?}"), "d", t, "")
    }

    #[test]
    fn allowed_agent_types_table() {
        use AgentType::*;
        let rows = [
            (UseCase::AdAsAuthority, vec![Import]),
            (UseCase::TwoWaySync, vec![Import, Sync]),
            (UseCase::JcAsAuthority, vec![Sync]),
        ];
        for (uc, want) in rows {
            assert_eq!(uc.allowed_agents(), want.as_slice(), "{uc:?}");
        }
    }

    #[test]
    fn domain_defaults_for_old_clients() {
        let d = new_domain("x", &json!({"domain": "dc=corp, dc=example,DC=com"}), "now").unwrap();
        assert_eq!(d.domain, "DC=corp,DC=example,DC=com");
        assert_eq!(d.use_case, UseCase::TwoWaySync);
        assert_eq!(d.delegation_state, DelegationState::Disabled);
        assert_eq!(d.guards[&Category::Deletes].count, Some(100));
        let d = new_domain("x", &json!({"domain": "DC=a", "useCase": "ADASAUTHORITY"}), "now").unwrap();
        assert_eq!(d.delegation_state, DelegationState::Pending);
        for bad in ["", "corp.example.com", "OU=x,DC=a", "DC=", "DC=a b"] {
            assert!(new_domain("x", &json!({"domain": bad}), "now").is_err(), "{bad}");
        }
    }

    #[test]
    fn use_case_change_lists_steps() {
        let d = new_domain("x", &json!({"domain": "DC=a"}), "t").unwrap();
        let agents = [agent(AgentType::Import), agent(AgentType::Sync)];
        let (d2, ch) = patch_domain(&d, &json!({"useCase": "ADASAUTHORITY"}), &agents, "t2").unwrap();
        assert_eq!(d2.use_case, UseCase::AdAsAuthority);
        assert_eq!(ch.agents_to_remove, vec!["Sync".to_string()]);
        assert!(ch.agent_types_to_install.is_empty());
        let (_, ch) = patch_domain(&d, &json!({"useCase": "JCASAUTHORITY"}), &agents[..1], "t2").unwrap();
        assert_eq!(ch.agents_to_remove, vec!["Import".to_string()]);
        assert_eq!(ch.agent_types_to_install, vec![AgentType::Sync]);
        assert!(patch_domain(&d2, &json!({"delegationState": "DISABLED"}), &[], "t").is_err());
        assert!(patch_domain(&d, &json!({"guards": {"bogus": {"count": 1}}}), &[], "t").is_err());
    }

    #[test]
    fn liveness_and_grace() {
        let now = datetime!(2026-01-01 12:00 UTC);
        let mut a = agent(AgentType::Import);
        assert_eq!(a.state(now), AgentState::Unsealed);
        a.contact_at = Some("2026-01-01T11:58:00Z".into());
        assert_eq!(a.state(now), AgentState::Active);
        a.contact_at = Some("2026-01-01T11:50:00Z".into());
        assert_eq!(a.state(now), AgentState::Inactive);
        let grace = time::Duration::seconds(900);
        assert!(a.check_deletable(now, grace).is_err());
        a.paused = true;
        a.paused_at = Some("2026-01-01T11:50:00Z".into());
        assert!(a.check_deletable(now, grace).is_err());
        assert!(a.check_deletable(now + time::Duration::minutes(5), grace).is_ok());
    }

    /// The seeds' "To change ADI Use Case" table: from each use case (with its agents) to
    /// each other, the agents to delete and uninstall and the agent types to install.
    #[test]
    fn every_transition_of_the_seeds_table() {
        use AgentType::{Import as I, Sync as S};
        use UseCase::*;
        let agents = |uc: UseCase| uc.allowed_agents().iter().map(|t| agent(*t)).collect::<Vec<_>>();
        // (from, to, remove, install)
        let rows: [(UseCase, UseCase, Vec<&str>, Vec<AgentType>); 6] = [
            (AdAsAuthority, TwoWaySync, vec![], vec![S]), // install sync agent(s)
            (AdAsAuthority, JcAsAuthority, vec!["Import"], vec![S]), // remove import, install sync
            (TwoWaySync, AdAsAuthority, vec!["Sync"], vec![]), // delete + uninstall sync agents
            (TwoWaySync, JcAsAuthority, vec!["Import"], vec![]), // delete + uninstall import agents
            (JcAsAuthority, AdAsAuthority, vec!["Sync"], vec![I]), // remove sync, install import
            (JcAsAuthority, TwoWaySync, vec![], vec![I]), // install import agent(s)
        ];
        for (from, to, remove, install) in rows {
            let d = new_domain("d", &json!({"domain": "DC=a", "useCase": from}), "t").unwrap();
            let (d2, steps) = patch_domain(&d, &json!({"useCase": to}), &agents(from), "t2").unwrap();
            assert_eq!(d2.use_case, to);
            assert_eq!(steps.agents_to_remove, remove, "{from:?} → {to:?}");
            assert_eq!(steps.agent_types_to_install, install, "{from:?} → {to:?}");
        }
    }
}
