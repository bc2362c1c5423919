//! The held plan of a domain: a cycle stopped by a mass-change guard, the import's first
//! (AD → Tether), else the sync's (Tether → AD); approving applies exactly what was shown,
//! rejecting drops it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tether_core::actor::Actor;

use crate::adi::{import, import_seq, sync_guard};
use crate::error::{ApiError, ApiResult, Code};
use crate::state::AppState;

/// Which way a held plan would change things.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// AD → Tether.
    Import,
    /// Tether → AD.
    Sync,
}

/// One change of a held plan, as the admin reviews it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PlanChange {
    pub category: String,
    pub object: String,
    pub action: String,
    pub reason: String,
    /// What a category adds (a count, a feed position, the object's id).
    #[serde(flatten)]
    pub more: serde_json::Map<String, Value>,
}

/// The domain's held plan, or none.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// `held` or `none`.
    pub status: &'static str,
    /// What stopped the cycle (absent when nothing is held).
    #[serde(flatten)]
    pub held: Option<Held>,
    pub changes: Vec<PlanChange>,
}

/// Why and since when a plan is held.
#[derive(Clone, Debug, Serialize)]
pub struct Held {
    pub direction: Direction,
    pub reason: String,
    pub created: String,
}

fn held(direction: Direction, reason: String, created: String, changes: Vec<Value>) -> Plan {
    let changes = changes.into_iter().map(|c| serde_json::from_value(c).unwrap_or_default()).collect();
    Plan { status: "held", held: Some(Held { direction, reason, created }), changes }
}

pub async fn plan(s: &AppState, id: &str) -> ApiResult<Plan> {
    crate::ops::domains::load(s, id).await?;
    if let Some(p) = import::held_plan(s, id).await? {
        return Ok(held(Direction::Import, p.reason, p.created, p.changes));
    }
    Ok(match sync_guard::held_plan(s, id).await? {
        Some(p) => held(Direction::Sync, p.reason, p.created, p.changes),
        None => Plan { status: "none", held: None, changes: vec![] },
    })
}

/// Applies the held plan exactly as shown (the import cycle first); answers the outcome.
pub async fn approve(s: &AppState, id: &str, key: &crate::keys::ApiKey) -> ApiResult<Value> {
    let d = crate::ops::domains::load(s, id).await?;
    if let Some(p) = import::held_plan(s, id).await? {
        let actor = Actor::plan(true, crate::history::admin(key));
        // Applied as held; the agent's next incremental report, made from before the hold, is
        // then refused as stale and it reads everything. A held incremental cycle whose own
        // base has moved since (applied alongside it) is dropped instead: it would apply
        // joined/left to a state it was not decided on.
        let seq = match import_seq::next_seq(s, &d.id, import_seq::base_of(&p.report)?, None).await {
            Err(e) if e.code == Code::StaleBase => {
                import::drop_plan(s, id).await?;
                return Err(ApiError::new(
                    Code::Conflict,
                    "the held cycle was decided on a state that has changed since: it is dropped, and the \
                     agent reads everything again",
                ));
            }
            r => r?,
        };
        import::drop_plan(s, id).await?;
        let r = import::execute(s, &d, &p.report, None, p.planned, Default::default(), &actor).await;
        let settled = import_seq::settle_seq(s, &d.id, seq).await;
        let out = tether_core::wire::ImportOutcome { seq, ..r? };
        settled?;
        return Ok(serde_json::to_value(out).expect("serializes"));
    }
    let Some(p) = sync_guard::held_plan(s, id).await? else {
        return Err(ApiError::new(Code::Conflict, "no cycle is held for this domain"));
    };
    sync_guard::approve(s, id, &p).await?;
    Ok(json!({"status": "approved", "direction": "sync", "released": p.changes.len()}))
}

/// Drops the held plan (the import cycle first): nothing of it is applied.
pub async fn reject(s: &AppState, id: &str, key: &crate::keys::ApiKey) -> ApiResult<()> {
    crate::ops::domains::load(s, id).await?;
    if import::held_plan(s, id).await?.is_some() {
        import::drop_plan(s, id).await?;
    } else if let Some(p) = sync_guard::held_plan(s, id).await? {
        let actor = Actor::plan(false, crate::history::admin(key));
        sync_guard::reject(s, id, &p, &actor).await?;
    } else {
        return Err(ApiError::new(Code::Conflict, "no cycle is held for this domain"));
    }
    Ok(())
}
