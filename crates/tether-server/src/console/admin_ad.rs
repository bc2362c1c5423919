//! Console pages for Active Directory: the domains, a domain's configuration (use case and
//! its change flow: "Update Configuration"), its Domain Agents with live state (htmx polls a
//! fragment) and pause/resume/delete honouring the grace, its Users and User Groups tabs,
//! the pending plan of a guarded cycle, the decommission plan; and the sync activity page.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tether_core::ad::{AdDomain, Agent, AgentType, UseCase};
use tether_core::group::Group;
use tether_core::query::ListQuery;
use tether_core::wire_name;
use tether_store::{Collection, Edge};

use super::admin_users::Row;
use super::page::{back, csrf, page, reason, Chrome, Fields, Flash};
use super::session::ConsoleAdmin;
use crate::state::AppState;

pub struct DomainRow {
    pub id: String,
    pub domain: String,
    pub use_case: String,
    pub delegation: String,
    pub agents: usize,
}

#[derive(Template)]
#[template(path = "ad.html")]
struct AdPage {
    chrome: Chrome,
    rows: Vec<DomainRow>,
}

pub async fn list(admin: ConsoleAdmin, State(s): State<AppState>, Query(flash): Query<Flash>) -> Response {
    let q = ListQuery { limit: 1000, ..Default::default() };
    let domains = s.repo.list::<AdDomain>(Collection::Domains, &q).await.map(|(_, d)| d).unwrap_or_default();
    let mut rows = Vec::new();
    for d in domains {
        let agents = s.repo.agents_of(&d.id).await.map(|a| a.len()).unwrap_or(0);
        rows.push(DomainRow {
            id: d.id,
            domain: d.domain,
            use_case: wire_name(&d.use_case),
            delegation: format!("{:?}", d.delegation_state).to_uppercase(),
            agents,
        });
    }
    page(AdPage { chrome: Chrome::new("Active Directory", &admin.session.csrf, "ad", &flash), rows })
}

/// One agent as the Domain Agents tab shows it.
pub struct AgentRow {
    pub id: String,
    pub kind: &'static str,
    pub state: String,
    pub paused: bool,
    pub primary: bool,
    pub ad: &'static str,
    pub ad_error: String,
    pub hostname: String,
    pub contact: String,
    pub deletable_at: String,
}

async fn agent_rows(s: &AppState, d: &AdDomain) -> Vec<AgentRow> {
    let mut agents = s.repo.agents_of(&d.id).await.unwrap_or_default();
    agents.sort_by(|a, b| a.created.cmp(&b.created));
    agents.iter().map(|a| agent_row(s, d, a)).collect()
}

fn agent_row(s: &AppState, d: &AdDomain, a: &Agent) -> AgentRow {
    let v = serde_json::to_value(crate::ops::domains::agent_view(s, a)).expect("serializes");
    let (ad, ad_error) = match &a.ad_status {
        Some(st) if st.reachable => ("reachable", String::new()),
        Some(st) => ("unreachable", st.error.clone().unwrap_or_default()),
        None => ("unknown", String::new()),
    };
    AgentRow {
        id: a.id.clone(),
        kind: match a.agent_type {
            AgentType::Import => "Import",
            AgentType::Sync => "Sync",
        },
        state: v["state"].as_str().unwrap_or_default().to_string(),
        paused: a.paused,
        primary: d.primary_import_agent.as_deref() == Some(a.id.as_str()),
        ad,
        ad_error,
        hostname: a.hostname.clone().unwrap_or_default(),
        contact: a.contact_at.clone().unwrap_or_default(),
        deletable_at: v["deletableAt"].as_str().unwrap_or_default().to_string(),
    }
}

#[derive(Template)]
#[template(path = "ad_agents.html")]
struct AgentsFragment {
    domain_id: String,
    csrf: String,
    agents: Vec<AgentRow>,
}

/// The Domain Agents table body alone: htmx refreshes it every two seconds.
pub async fn agents_fragment(admin: ConsoleAdmin, State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let Ok(d) = crate::ops::domains::load(&s, &id).await else {
        return (axum::http::StatusCode::NOT_FOUND, "no such domain").into_response();
    };
    page(AgentsFragment { domain_id: id, csrf: admin.session.csrf.clone(), agents: agent_rows(&s, &d).await })
}

#[derive(Template)]
#[template(path = "ad_domain.html")]
struct DomainPage {
    chrome: Chrome,
    id: String,
    use_case: String,
    delegation: String,
    use_cases: Vec<(String, &'static str)>,
    /// The Domain Agents rows (the same template as the live fragment).
    domain_id: String,
    csrf: String,
    agents: Vec<AgentRow>,
    plan_status: String,
    plan_direction: String,
    plan_reason: String,
    plan: Vec<crate::ops::plans::PlanChange>,
    users: Vec<Row>,
    groups: Vec<(String, String)>,
    at_risk: Vec<(String, String)>,
    steps: Vec<String>,
    /// Where a decommission stands: running and paused agents, users still restricted.
    running: usize,
    paused: usize,
    restricted: u64,
}

pub async fn domain(
    admin: ConsoleAdmin,
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    let Ok(d) = crate::ops::domains::load(&s, &id).await else {
        return back("/console/ad", Err(format!("no domain `{id}`")));
    };
    let plan = crate::ops::plans::plan(&s, &id).await.ok();
    let held = plan.as_ref().and_then(|p| p.held.as_ref());
    let store = s.repo.store();
    let mut users = Vec::new();
    for u in crate::ops::domains::domain_users(&s, &id).await.unwrap_or_default().values() {
        users.push(Row::of(u));
    }
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let mut groups = Vec::new();
    for g in store.targets(Edge::DomainGroup, &id).await.unwrap_or_default() {
        if let Ok(Some(g)) = s.repo.get::<Group>(Collection::Groups, &g).await {
            groups.push((g.id, g.name));
        }
    }
    groups.sort_by(|a, b| a.1.cmp(&b.1));
    let decom = crate::ops::decommission::plan(&s, &id).await.ok();
    let at_risk = decom
        .as_ref()
        .map(|p| p.users_at_risk.iter().map(|u| (u.username.clone(), u.reason.to_string())).collect())
        .unwrap_or_default();
    let steps = decom.as_ref().map(|p| p.steps.clone());
    let agents_paused =
        |paused: bool| decom.as_ref().map_or(0, |p| p.agents.iter().filter(|a| a.paused == paused).count());
    let use_cases = [
        (UseCase::AdAsAuthority, "AD is the authority: import only"),
        (UseCase::TwoWaySync, "Manage in either: import and sync"),
        (UseCase::JcAsAuthority, "Tether is the authority: sync only"),
    ]
    .into_iter()
    .map(|(u, label)| (wire_name(&u), label))
    .collect();
    page(DomainPage {
        chrome: Chrome::new(d.domain.clone(), &admin.session.csrf, "ad", &flash),
        id: id.clone(),
        use_case: wire_name(&d.use_case),
        delegation: format!("{:?}", d.delegation_state).to_uppercase(),
        use_cases,
        domain_id: id.clone(),
        csrf: admin.session.csrf.clone(),
        agents: agent_rows(&s, &d).await,
        plan_status: plan.as_ref().map(|p| p.status.to_string()).unwrap_or_default(),
        plan_direction: held.map(|h| wire_name(&h.direction)).unwrap_or_default(),
        plan_reason: held.map(|h| h.reason.clone()).unwrap_or_default(),
        plan: plan.as_ref().map(|p| p.changes.clone()).unwrap_or_default(),
        users,
        groups,
        at_risk,
        steps: steps.unwrap_or_default(),
        running: agents_paused(false),
        paused: agents_paused(true),
        restricted: decom.as_ref().map_or(0, |p| p.restricted_users as u64),
    })
}

/// "Update Configuration": changes the use case, then says which agents must go and which
/// must be installed (the seeds' change table).
pub async fn configure(admin: ConsoleAdmin, State(s): State<AppState>, Path(id): Path<String>, f: Fields) -> Response {
    if let Some(r) = csrf(&admin.session, &f) {
        return r;
    }
    let here = format!("/console/ad/{id}");
    let body = json!({"useCase": f.get("useCase").unwrap_or_default()});
    match crate::ops::domains::configure(&s, &id, &body).await {
        Ok((d, steps)) => {
            let mut msg = format!("use case is now {}", wire_name(&d.use_case));
            let remove = steps.agents_to_remove.join(", ");
            if !remove.is_empty() {
                msg.push_str(&format!("; pause and delete these agents: {remove}"));
            }
            let install = steps.agent_types_to_install.iter().map(wire_name).collect::<Vec<_>>().join(", ");
            if !install.is_empty() {
                msg.push_str(&format!("; install: {install}"));
            }
            back(&here, Ok(msg))
        }
        Err(e) => back(&here, Err(reason(e))),
    }
}

/// Pause, resume or delete an agent (deletion only after the grace, as the API enforces).
pub async fn agent_action(
    admin: ConsoleAdmin,
    State(s): State<AppState>,
    Path((id, agent, verb)): Path<(String, String, String)>,
    f: Fields,
) -> Response {
    if let Some(r) = csrf(&admin.session, &f) {
        return r;
    }
    let here = format!("/console/ad/{id}");
    use crate::ops::domains;
    let r = match verb.as_str() {
        "pause" => domains::set_paused(&s, &id, &agent, true).await.map(|_| "paused"),
        "resume" => domains::set_paused(&s, &id, &agent, false).await.map(|_| "resumed"),
        "delete" => domains::delete_agent(&s, &id, &agent).await.map(|_| "deleted"),
        other => return back(&here, Err(format!("unknown action `{other}`"))),
    };
    back(&here, r.map(|done| format!("agent {agent} {done}")).map_err(reason))
}

/// Approve or reject the held plan exactly as shown.
pub async fn plan_action(
    admin: ConsoleAdmin,
    State(s): State<AppState>,
    Path((id, verb)): Path<(String, String)>,
    f: Fields,
) -> Response {
    if let Some(r) = csrf(&admin.session, &f) {
        return r;
    }
    let here = format!("/console/ad/{id}");
    let r = match verb.as_str() {
        "approve" => crate::ops::plans::approve(&s, &id, &admin.key).await.map(|_| "the plan was applied"),
        "reject" => crate::ops::plans::reject(&s, &id, &admin.key).await.map(|_| "the plan was discarded"),
        other => return back(&here, Err(format!("unknown action `{other}`"))),
    };
    back(&here, r.map(|m| m.into()).map_err(reason))
}

/// One bar of the latency chart.
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub height: f64,
    pub color: &'static str,
    pub label: String,
}

pub struct ChangeRow {
    pub at: String,
    pub direction: &'static str,
    pub object: String,
    pub latency: String,
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    chrome: Chrome,
    rows: Vec<ChangeRow>,
    bars: Vec<Bar>,
    max_label: String,
}

/// Recent changes both ways with their latency, newest first, and a chart of them.
pub async fn activity(admin: ConsoleAdmin, State(s): State<AppState>, Query(flash): Query<Flash>) -> Response {
    let recent = s.metrics.recent();
    let max = recent.iter().map(|r| r.seconds).fold(0.0f64, f64::max).max(0.001);
    let (w, h) = (600.0, 160.0);
    let step = w / recent.len().max(1) as f64;
    let bars = recent
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let height = (r.seconds / max * (h - 10.0)).max(1.0);
            Bar {
                x: i as f64 * step,
                y: h - height,
                height,
                color: if r.direction == "ad_to_tether" { "#2b6cb0" } else { "#c05621" },
                label: format!("{} {} {:.3} s", r.direction, r.object, r.seconds),
            }
        })
        .collect();
    let label = |d: &str| if d == "ad_to_tether" { "AD → Tether" } else { "Tether → AD" };
    let rows = recent
        .iter()
        .rev()
        .map(|r| ChangeRow {
            at: r.at.clone(),
            direction: label(r.direction),
            object: r.object.clone(),
            latency: format!("{:.3} s", r.seconds),
        })
        .collect();
    page(ActivityPage {
        chrome: Chrome::new("Sync activity", &admin.session.csrf, "activity", &flash),
        rows,
        bars,
        max_label: format!("{max:.3} s"),
    })
}
