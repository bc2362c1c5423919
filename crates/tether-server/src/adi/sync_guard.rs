//! Mass-change guards on the Tether → AD side. The change feed is delivered in real time,
//! so a runaway script (or a wrong bulk edit) against the API reaches AD as a stream of small
//! batches, never as one big cycle: bounding each batch would let it through. The guard
//! therefore counts the guarded changes fed to a domain over a sliding window
//! ([`WINDOW`]), delivered or not, since the admin last cleared the domain. When a change
//! would take a category over its bound, delivery stops before anything else reaches AD,
//! and every entry not yet applied becomes the domain's held sync plan: approving delivers
//! exactly those entries (later ones are judged afresh), rejecting discards them (Tether
//! keeps its state; AD is not touched; the users' history says so).
//!
//! Each feed entry carries its categories in `body.guard`, set when it was appended.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tether_core::actor::Actor;
use tether_core::ad::{AdDomain, AgentType};
use tether_core::adi::guard::{exceeded, Category, Counts};
use tether_store::{Edge, FeedEntry};

use crate::error::ApiError;
use crate::state::AppState;

/// How far back delivered changes still count against a domain's bounds.
pub const WINDOW: time::Duration = time::Duration::minutes(10);
/// The most entries one evaluation reads.
const MAX_READ: usize = 100_000;

/// A sync plan held by a guard, until an admin approves or rejects it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPlan {
    pub status: String,
    pub reason: String,
    pub created: String,
    /// The held entries: those after `after` up to `through`.
    pub after: i64,
    pub through: i64,
    pub changes: Vec<Value>,
}

/// Where the guard of a domain stands. Entries are read once, when new: each evaluation
/// reads only what was appended since the last one (a window may hold thousands of entries,
/// some carrying a whole group), and the few that count are remembered with their counts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
struct Cursor {
    /// Entries up to here were approved (or rejected): they no longer count.
    cleared: i64,
    /// Entries up to here were read.
    seen: i64,
    /// The read entries that count, not yet out of the window: `(seq, created, counts)`.
    counted: Vec<(i64, String, Counts)>,
}

fn plan_key(domain: &str) -> String {
    format!("syncplan:{domain}")
}

fn cursor_key(domain: &str) -> String {
    format!("syncguard:{domain}")
}

pub async fn held_plan(s: &AppState, domain: &str) -> Result<Option<SyncPlan>, ApiError> {
    match s.repo.store().setting(&plan_key(domain)).await? {
        Some(v) if !v.is_null() => Ok(serde_json::from_value(v).ok()),
        _ => Ok(None),
    }
}

async fn cursor(s: &AppState, domain: &str) -> Result<Cursor, ApiError> {
    Ok(s.repo
        .store()
        .setting(&cursor_key(domain))
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

async fn put_cursor(s: &AppState, domain: &str, c: &Cursor) -> Result<(), ApiError> {
    s.repo.store().put_setting(&cursor_key(domain), &serde_json::to_value(c).expect("serializes")).await?;
    Ok(())
}

fn counts_of(e: &FeedEntry) -> Counts {
    let mut c = Counts::default();
    if let Some(g) = e.body.get("guard").and_then(Value::as_object) {
        for (name, n) in g {
            if let Some(category) = Category::parse(name) {
                c.add(category, n.as_u64().unwrap_or(0));
            }
        }
    }
    c
}

/// Users bound to the domain, directly or through its groups (the scope of percent bounds).
async fn scope(s: &AppState, domain: &str) -> Result<u64, ApiError> {
    let store = s.repo.store();
    let mut users: std::collections::HashSet<String> =
        store.targets(Edge::DomainUser, domain).await?.into_iter().collect();
    for g in store.targets(Edge::DomainGroup, domain).await? {
        users.extend(store.targets(Edge::Member, &g).await?);
    }
    Ok(users.len() as u64)
}

/// One line of a held plan, for the admin.
fn describe(e: &FeedEntry) -> Option<Value> {
    let c = counts_of(e);
    let name = e.body["change"]["username"].as_str().or(e.body["name"].as_str()).unwrap_or(&e.object_id);
    let (category, action) = if c.suspends > 0 {
        (Category::Suspends, "suspend in AD".to_string())
    } else if c.password_resets > 0 {
        (Category::PasswordResets, "write a new password to AD".to_string())
    } else if c.unbinds > 0 {
        (Category::Unbinds, "disconnect from AD (the domain's disconnection policy)".to_string())
    } else if c.membership_removals > 0 {
        (Category::MembershipRemovals, format!("remove {} member(s) from the AD group", c.membership_removals))
    } else {
        return None;
    };
    Some(json!({"category": category, "object": name, "action": action, "seq": e.seq,
                "reason": "changed in Tether", "objectId": e.object_id}))
}

/// Decides whether the domain's entries after `applied` may be delivered now. `false` when a
/// plan is held (already, or as of this call).
pub async fn may_deliver(s: &AppState, domain: &AdDomain, applied: i64) -> Result<bool, ApiError> {
    if held_plan(s, &domain.id).await?.is_some() {
        return Ok(false);
    }
    let before = cursor(s, &domain.id).await?;
    let mut cur = before.clone();
    let store = s.repo.store();
    loop {
        let fresh = store.read_feed(&domain.id, cur.seen.max(cur.cleared), MAX_READ).await?;
        let Some(last) = fresh.last().map(|e| e.seq) else { break };
        for e in &fresh {
            let c = counts_of(e);
            if c != Counts::default() {
                cur.counted.push((e.seq, e.created.clone(), c));
            }
        }
        cur.seen = last;
        if fresh.len() < MAX_READ {
            break;
        }
    }
    // Applied entries that fell out of the window, and cleared ones, no longer count.
    let horizon = tether_core::timestamp(s.now() - WINDOW);
    let cleared = cur.cleared;
    cur.counted.retain(|(seq, created, _)| *seq > cleared && !(*seq <= applied && *created < horizon));
    if cur != before {
        put_cursor(s, &domain.id, &cur).await?;
    }
    let mut counts = Counts::default();
    for (_, _, c) in &cur.counted {
        counts += *c;
    }
    if counts == Counts::default() {
        return Ok(true);
    }
    let n = scope(s, &domain.id).await?;
    let Some(reason) = exceeded(&domain.guards, &counts, n) else { return Ok(true) };
    let pending = store.read_feed(&domain.id, applied, MAX_READ).await?;
    let Some(last) = pending.last() else { return Ok(true) };
    let reason = format!("{reason} within {} minutes", WINDOW.whole_minutes());
    tracing::warn!(domain = %domain.domain, %reason, "changes to AD held by a mass-change guard");
    let plan = SyncPlan {
        status: "held".into(),
        reason,
        created: s.now_str(),
        after: applied,
        through: last.seq,
        changes: pending.iter().filter_map(describe).collect(),
    };
    s.repo.store().put_setting(&plan_key(&domain.id), &serde_json::to_value(&plan).expect("serializes")).await?;
    Ok(false)
}

/// Approving delivers exactly the held entries; the guard counts afresh after them.
pub async fn approve(s: &AppState, domain: &str, plan: &SyncPlan) -> Result<(), ApiError> {
    let mut cur = cursor(s, domain).await?;
    cur.cleared = cur.cleared.max(plan.through);
    put_cursor(s, domain, &cur).await?;
    s.repo.store().put_setting(&plan_key(domain), &Value::Null).await?;
    s.feed_wake.notify_waiters();
    Ok(())
}

/// Rejecting discards the held entries: every sync agent of the domain moves past them.
pub async fn reject(s: &AppState, domain: &str, plan: &SyncPlan, actor: &Actor) -> Result<(), ApiError> {
    for a in s.repo.agents_of(domain).await?.into_iter().filter(|a| a.agent_type == AgentType::Sync) {
        if a.cursor < plan.through {
            s.update_agent(&a.id, |a| a.cursor = a.cursor.max(plan.through)).await?;
        }
    }
    s.repo.store().clear_feed_secrets(domain, plan.through).await?;
    // A whole group entry among those skipped was never applied: the domain's groups go
    // whole next (`feed_groups`).
    for g in s.repo.store().targets(tether_store::Edge::DomainGroup, domain).await? {
        crate::adi::feed_groups::forget_whole(s, domain, &g).await?;
    }
    for c in &plan.changes {
        if let Some(id) = c["objectId"].as_str() {
            let why =
                format!("not written to AD: the held sync plan was rejected ({})", c["action"].as_str().unwrap_or(""));
            crate::history::record(
                s,
                crate::history::Of::User(id),
                actor.clone(),
                "sync_rejected",
                json!({}),
                Some(&why),
            )
            .await?;
        }
    }
    let mut cur = cursor(s, domain).await?;
    cur.cleared = cur.cleared.max(plan.through);
    put_cursor(s, domain, &cur).await?;
    s.repo.store().put_setting(&plan_key(domain), &Value::Null).await?;
    Ok(())
}
