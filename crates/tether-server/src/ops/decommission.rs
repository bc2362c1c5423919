//! Retiring AD: the plan of the seeds' decommission transcript, for one domain. The plan is
//! read-only; `tether ad decommission --apply` carries it out through the ordinary API
//! (pause agents, wait for the grace, delete agents, delete the domain, convert one user,
//! verify, convert all), so every step is visible, resumable and never deletes a user.

use serde::Serialize;
use tether_core::ad::{AgentType, UseCase};

use crate::error::ApiResult;
use crate::ops::domains::{agent_view, domain_users, load, AgentView};
use crate::state::AppState;

/// A user who could not log in once AD is gone, and why.
#[derive(Clone, Debug, Serialize)]
pub struct AtRisk {
    pub id: String,
    pub username: String,
    pub email: String,
    pub reason: &'static str,
}

/// What retiring the domain involves.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecommissionPlan {
    pub domain: String,
    pub id: String,
    pub use_case: UseCase,
    /// `import and sync`, `import only`, `sync only` or `no agents`.
    pub configuration: &'static str,
    pub agents: Vec<AgentView>,
    /// How many users are tied to the domain.
    pub users: usize,
    pub users_at_risk: Vec<AtRisk>,
    /// Users whose fields the domain still restricts.
    pub restricted_users: usize,
    pub steps: Vec<String>,
}

pub async fn plan(s: &AppState, id: &str) -> ApiResult<DecommissionPlan> {
    let d = load(s, id).await?;
    let agents = s.repo.agents_of(id).await?;
    let has = |t: AgentType| agents.iter().any(|a| a.agent_type == t);
    let configuration = match (has(AgentType::Import), has(AgentType::Sync)) {
        (true, true) => "import and sync",
        (true, false) => "import only",
        (false, true) => "sync only",
        (false, false) => "no agents",
    };
    let users = domain_users(s, id).await?;
    // Without AD, a user can log in only with a password stored in Tether.
    let users_at_risk = users
        .values()
        .filter(|u| !u.has_password)
        .map(|u| AtRisk {
            id: u.id.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            reason: if u.delegated_authority.is_some() {
                "delegated to AD only: no password stored in Tether"
            } else {
                "password pending: no password set in Tether"
            },
        })
        .collect();
    let restricted_users =
        users.values().filter(|u| u.externally_managed && u.restricted_fields.iter().any(|r| r.id == id)).count();
    let running = agents.iter().filter(|a| !a.paused).count();
    let steps = vec![
        format!("pause the running agents ({running})"),
        format!(
            "wait {}s after pausing (the deletion grace), then delete the agents ({})",
            s.config.agent_delete_grace.whole_seconds(),
            agents.len()
        ),
        "uninstall the agents from the domain controllers".to_string(),
        format!("delete the domain {}", d.domain),
        "set externally_managed=false on one user and verify it".to_string(),
        format!(
            "set externally_managed=false on the others ({} restricted by this domain)",
            restricted_users.saturating_sub(1)
        ),
    ];
    Ok(DecommissionPlan {
        domain: d.domain,
        id: d.id,
        use_case: d.use_case,
        configuration,
        agents: agents.iter().map(|a| agent_view(s, a)).collect(),
        users: users.len(),
        users_at_risk,
        restricted_users,
        steps,
    })
}
