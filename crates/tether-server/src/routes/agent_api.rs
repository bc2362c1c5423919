//! The agent protocol. Agents only make outbound calls: they register once with the
//! one-time connect key and from then on authenticate with their token.
//!
//! Registration is idempotent so an agent killed mid-registration can retry with the same
//! key: the agent makes its token itself and sends it with the key; the server stores the
//! token's hash while consuming the key, and a retry that presents the same key and token
//! succeeds again.

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use tether_core::actor::Actor;
use tether_core::ad::{Agent, AgentType, DelegationState, InstalledOn};
use tether_core::user::User;
use tether_core::wire::{
    Ack, Acked, AuthRequest, AuthResult, CapturedPassword, FeedEntry, Heartbeat, HeartbeatReply, ImportOutcome,
    ImportReport, PasswordsStored, Poll, Refused, Register, Registered, SyncStatus,
};
use tether_store::{Collection, Secret};

use crate::crypto::sha256_hex;
use crate::error::{ApiError, ApiResult, Code};
use crate::routes::extract::JsonBody;
use crate::state::AppState;

/// A message of the agent protocol (`tether_core::wire`), or a clear 400.
fn message<T: serde::de::DeserializeOwned>(body: Value) -> ApiResult<T> {
    serde_json::from_value(body).map_err(|e| ApiError::new(Code::InvalidField, format!("invalid message: {e}")))
}

/// At most 256 characters of an agent-supplied label.
fn label(s: Option<String>) -> Option<String> {
    s.map(|s| s.chars().take(256).collect())
}

pub async fn register(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Registered>> {
    let body: Register = message(body)?;
    let key = label(body.connect_key.map(|k| k.0))
        .ok_or_else(|| ApiError::new(Code::InvalidField, "invalid value for `connectKey`: is required"))?;
    let token = label(body.token.map(|t| t.0))
        .filter(|t| t.len() >= 32)
        .ok_or_else(|| ApiError::new(Code::InvalidField, "invalid value for `token`: at least 32 random characters"))?;
    let store = s.repo.store();
    let key_hash = sha256_hex(&key);
    let token_hash = sha256_hex(&token);
    let agent_id = match store.secret_owner(Secret::ConnectKey, &key_hash).await? {
        Some(id) => id,
        None => return Err(ApiError::new(Code::InvalidApiKey, "unknown or revoked connect key")),
    };
    match store.secret(&agent_id, Secret::AgentToken).await? {
        Some(h) if h != token_hash => {
            return Err(ApiError::new(Code::InvalidApiKey, "this connect key was already used by another agent"))
        }
        _ => {}
    }
    let mut agent: Agent =
        s.repo.get(Collection::Agents, &agent_id).await?.ok_or_else(|| ApiError::not_found("agent", &agent_id))?;
    store.put_secret(&agent_id, Secret::AgentToken, Some(&token_hash)).await?;
    agent.hostname = label(body.hostname);
    agent.version = label(body.version);
    agent.installed_on = body.installed_on;
    agent.source_ip = Some(peer.ip().to_string());
    agent.contact_at = Some(s.now_str());
    s.repo.save_agent(&agent).await?;
    let domain = crate::ops::domains::load(&s, &agent.domain_id).await?;
    Ok(Json(Registered {
        agent_id: agent.id,
        agent_type: agent.agent_type,
        domain_id: domain.id,
        domain: domain.domain,
        use_case: domain.use_case,
    }))
}

/// Resolves the agent of an `Authorization: Bearer <token>` header.
pub async fn agent_from(s: &AppState, headers: &HeaderMap) -> ApiResult<Agent> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(Code::MissingApiKey, "missing agent token"))?;
    let id =
        s.repo.store().secret_owner(Secret::AgentToken, &sha256_hex(token)).await?.ok_or_else(|| {
            ApiError::new(Code::InvalidApiKey, "agent token revoked or unknown: the agent was deleted")
        })?;
    s.repo.get(Collection::Agents, &id).await?.ok_or_else(|| ApiError::new(Code::InvalidApiKey, "agent deleted"))
}

/// The largest import report accepted: a complete report carries every user in scope
/// (~1 KiB each), so this allows about half a million users. Only an authenticated agent's
/// body is read (the token is checked first); every other request keeps the 2 MiB bound.
pub const MAX_REPORT_BYTES: usize = 512 * 1024 * 1024;

/// An agent authenticated from its headers, before any body is read.
pub struct AuthedAgent(pub Agent);

impl axum::extract::FromRequestParts<AppState> for AuthedAgent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, s: &AppState) -> ApiResult<Self> {
        agent_from(s, &parts.headers).await.map(AuthedAgent)
    }
}

/// `POST /api/agent/v1/import`: one import cycle's observations.
pub async fn import(
    State(s): State<AppState>,
    AuthedAgent(agent): AuthedAgent,
    body: axum::body::Bytes,
) -> ApiResult<Json<ImportOutcome>> {
    if agent.agent_type != AgentType::Import {
        return Err(ApiError::new(Code::Forbidden, "only import agents report imports"));
    }
    // Decoded straight into the report (no intermediate JSON tree: a complete report of
    // 10,000 users is ~10 MB of text).
    let report: ImportReport = serde_json::from_slice(&body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::new(Code::InvalidField, format!("invalid import report: {e}")),
        _ => ApiError::new(Code::InvalidJson, format!("invalid JSON body: {e}")),
    })?;
    drop(body);
    // Who joined and who left is relative to the agent's last applied report: only an
    // incremental report with the agent's fencing token can carry it (its base is checked
    // as it is applied, `adi::import_seq`).
    if report.groups_as_changes() > 0 && (report.complete || report.fencing.is_none()) {
        return Err(ApiError::new(
            Code::InvalidField,
            "a group's `members` as joined and left needs an incremental report with its fencing token",
        ));
    }
    // A part of a first complete read carries users and nothing else (it only creates).
    if report.part
        && (report.complete
            || report.dry_run
            || !report.groups.is_empty()
            || !report.gone.is_empty()
            || !report.gone_groups.is_empty()
            || !report.user_groups.is_empty())
    {
        return Err(ApiError::new(
            Code::InvalidField,
            "a `part` of a first read is an incremental report of users only (no groups, nobody gone, no userGroups)",
        ));
    }
    if agent.paused {
        return Err(ApiError::new(Code::Conflict, "the agent is paused: nothing is applied"));
    }
    let domain = crate::ops::domains::load(&s, &agent.domain_id).await?;
    if !domain.use_case.allowed_agents().contains(&AgentType::Import) {
        return Err(ApiError::new(Code::NotAllowed, "the domain's use case no longer takes an import agent"));
    }
    // Only the primary import agent applies cycles, with its current fencing token (a dry
    // run applies nothing, so any import agent may ask for one).
    if !report.dry_run
        && (domain.primary_import_agent.as_deref() != Some(agent.id.as_str())
            || report.fencing.is_some_and(|f| f != domain.primary_fencing_token))
    {
        return Err(ApiError::new(Code::Conflict, "this agent is not the primary import agent of the domain"));
    }
    let actor = Actor::import_agent(&agent.id);
    Ok(Json(crate::adi::import::apply(&s, &domain, &report, &actor).await?))
}

async fn import_agent(s: &AppState, headers: &HeaderMap) -> ApiResult<Agent> {
    let agent = agent_from(s, headers).await?;
    if agent.agent_type != AgentType::Import {
        return Err(ApiError::new(Code::Forbidden, "only import agents validate passwords"));
    }
    Ok(agent)
}

/// `POST /api/agent/v1/auth/poll {waitMs}`: the delegated verifications waiting for this
/// agent's domain (long-poll; an empty list after the wait). A paused agent gets none.
pub async fn auth_poll(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Vec<AuthRequest>>> {
    let agent = import_agent(&s, &headers).await?;
    let poll: Poll = message(body)?;
    let wait = poll.wait_ms.unwrap_or(20_000).min(30_000);
    if agent.paused {
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        return Ok(Json(vec![]));
    }
    Ok(Json(s.delegation.take(&agent.domain_id, std::time::Duration::from_millis(wait)).await?))
}

/// `POST /api/agent/v1/passwords [{guid, hash}]`: password hashes captured on a domain
/// controller (`{CRYPT}$6$…`). Refused from agents on member servers: their passwords never
/// leave AD.
pub async fn passwords(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<PasswordsStored>> {
    let agent = import_agent(&s, &headers).await?;
    if agent.installed_on != Some(InstalledOn::Dc) {
        return Err(ApiError::new(
            Code::Forbidden,
            "only import agents installed on a domain controller send passwords",
        ));
    }
    if agent.paused {
        return Err(ApiError::new(Code::Conflict, "the agent is paused: nothing is applied"));
    }
    let Value::Array(items) = body else {
        return Err(ApiError::new(Code::InvalidField, "expected an array of {guid, hash}"));
    };
    let (mut stored, mut ignored, mut refused) = (0, 0, Vec::new());
    for item in items {
        // One malformed item is passed over, not the whole batch.
        let Ok(CapturedPassword { guid, hash, pwd_last_set }) = serde_json::from_value::<CapturedPassword>(item) else {
            continue;
        };
        let (guid, hash) = (guid.as_str(), hash.0.as_str());
        let hash = hash.strip_prefix("{CRYPT}").unwrap_or(hash);
        if !hash.starts_with("$6$") {
            continue;
        }
        if let Err(why) = crate::crypto::acceptable_crypt_hash(hash) {
            // Every later login would run this hash: refused here, once.
            tracing::warn!(guid, reason = %why, "captured password hash refused");
            refused.push(Refused { guid: guid.to_string(), reason: why });
            continue;
        }
        let Some(mut user) = s.repo.user_by_ad_guid(guid).await? else { continue };
        if user.restricted_fields.first().map(|r| r.id.as_str()) != Some(agent.domain_id.as_str()) {
            continue; // another domain's user
        }
        if crate::adi::generated::is_generated(&s, &user.id, &agent.domain_id, pwd_last_set).await? {
            // The sync agent's own random password: the user's Tether password stays.
            ignored += 1;
            continue;
        }
        user.has_password = true;
        user.password_expired = false;
        user.password_date = Some(s.now_str());
        user.refresh_derived();
        s.repo.save_user(&user, Some(hash)).await?;
        stored += 1;
    }
    Ok(Json(PasswordsStored { stored, ignored, refused }))
}

/// `POST /api/agent/v1/auth/result {id, ok, reason}`.
pub async fn auth_result(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let agent = import_agent(&s, &headers).await?;
    let r: AuthResult =
        serde_json::from_value(body).map_err(|e| ApiError::new(Code::InvalidField, format!("invalid result: {e}")))?;
    if !s.delegation.answer(&agent.domain_id, r).await? {
        tracing::warn!(agent = %agent.id, "an import agent answered a verification of another domain's user");
        return Err(ApiError::new(Code::Forbidden, "this verification belongs to another domain's agents"));
    }
    Ok(Json(json!({})))
}

async fn sync_agent(s: &AppState, headers: &HeaderMap) -> ApiResult<Agent> {
    let agent = agent_from(s, headers).await?;
    if agent.agent_type != AgentType::Sync {
        return Err(ApiError::new(Code::Forbidden, "only sync agents read the change feed"));
    }
    Ok(agent)
}

/// `POST /api/agent/v1/sync/poll {waitMs, limit}`: the domain's feed entries after the
/// agent's acknowledged cursor, in order (long-poll; an empty list after the wait). A paused
/// agent receives nothing: its changes stay queued.
pub async fn sync_poll(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Vec<FeedEntry>>> {
    let agent = sync_agent(&s, &headers).await?;
    let poll: Poll = message(body)?;
    let wait = std::time::Duration::from_millis(poll.wait_ms.unwrap_or(20_000).min(30_000));
    let limit = poll.limit.unwrap_or(100).clamp(1, 1000) as usize;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = s.feed_wake.notified();
        let agent: Agent =
            s.repo.get(Collection::Agents, &agent.id).await?.ok_or_else(|| ApiError::not_found("agent", &agent.id))?;
        if !agent.paused {
            let entries = s.repo.store().read_feed(&agent.domain_id, agent.cursor, limit).await?;
            let domain = crate::ops::domains::load(&s, &agent.domain_id).await?;
            if !entries.is_empty() && crate::adi::sync_guard::may_deliver(&s, &domain, agent.cursor).await? {
                let last = entries.last().map_or(agent.cursor, |e| e.seq);
                if last > delivered_upto(&s, &agent.id).await? {
                    s.repo.store().put_setting(&delivered_key(&agent.id), &json!(last)).await?;
                }
                // Group entries are filled with the group's state now, one per group (the
                // batch's last entry is always among them).
                let started = std::time::Instant::now();
                let entries = crate::adi::feed_groups::for_delivery(&s, &domain, entries, poll.deltas).await?;
                let filled_ms = started.elapsed().as_millis() as u64;
                let mut out = Vec::with_capacity(entries.len());
                for e in entries {
                    let password = crate::adi::feed::deliverable_password(&s, &e).await?;
                    // A malformed entry (never written by this version) is passed over, not
                    // allowed to stall the queue: the next acknowledgement moves past it.
                    match crate::adi::feed::wire_entry(e, password) {
                        Ok(w) => out.push(w),
                        Err(err) => tracing::error!(error = %err.message, "change feed: entry not delivered"),
                    }
                }
                // What a batch costs tetherd before it is sent (a group entry of thousands of
                // members is most of it).
                tracing::debug!(
                    entries = out.len(),
                    filled_ms,
                    ms = started.elapsed().as_millis() as u64,
                    "change feed: batch prepared"
                );
                if !out.is_empty() {
                    return Ok(Json(out));
                }
            }
        }
        // The notification covers appends made by this process only; another tetherd on the
        // same (PostgreSQL) database appends unseen, so the store is also re-read every 200 ms.
        let recheck = deadline.min(tokio::time::Instant::now() + std::time::Duration::from_millis(200));
        if tokio::time::timeout_at(recheck, notified).await.is_err() && recheck == deadline {
            return Ok(Json(vec![]));
        }
    }
}

/// Where the highest feed entry delivered to a sync agent is kept (in the store, so an agent
/// may poll one tetherd and acknowledge on another).
fn delivered_key(agent_id: &str) -> String {
    format!("feed.delivered.{agent_id}")
}

async fn delivered_upto(s: &AppState, agent_id: &str) -> ApiResult<i64> {
    Ok(s.repo.store().setting(&delivered_key(agent_id)).await?.and_then(|v| v.as_i64()).unwrap_or(0))
}

/// `POST /api/agent/v1/sync/ack {seq}`: everything up to `seq` is applied in AD.
pub async fn sync_ack(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Acked>> {
    let mut agent = sync_agent(&s, &headers).await?;
    let ack: Ack = message(body).map_err(|_| ApiError::new(Code::InvalidField, "invalid value for `seq`"))?;
    let seq = ack.seq.ok_or_else(|| ApiError::new(Code::InvalidField, "invalid value for `seq`"))?;
    let delivered = delivered_upto(&s, &agent.id).await?;
    if seq > delivered.max(agent.cursor) {
        // An agent acknowledges what it applied, so never more than it was given: otherwise an
        // ack could skip entries held back by a mass-change guard, or never delivered at all.
        return Err(ApiError::new(
            Code::Conflict,
            format!("cannot acknowledge entry {seq}: entries up to {delivered} were delivered to this agent"),
        ));
    }
    if seq > agent.cursor {
        // Tether → AD latency: from each entry's creation to its acknowledgement.
        let applied = s.repo.store().read_feed(&agent.domain_id, agent.cursor, (seq - agent.cursor) as usize).await?;
        let now = s.now();
        for e in applied.iter().filter(|e| e.seq <= seq) {
            if let Ok(at) = time::OffsetDateTime::parse(&e.created, &time::format_description::well_known::Rfc3339) {
                let object = e.body["change"]["username"].as_str().or(e.body["name"].as_str()).unwrap_or(&e.object_id);
                s.metrics.change_visible("tether_to_ad", object, (now - at).as_seconds_f64(), s.now_str());
            }
        }
        agent = s
            .update_agent(&agent.id, |a| a.cursor = a.cursor.max(seq))
            .await?
            .ok_or_else(|| ApiError::new(Code::InvalidApiKey, "agent deleted"))?;
        s.repo.store().clear_feed_secrets(&agent.domain_id, seq).await?;
    }
    Ok(Json(Acked { cursor: agent.cursor }))
}

/// `POST /api/agent/v1/sync/status {userId, guid, dn, error}`: the outcome of writing a user
/// to AD. A created or taken-over AD user is linked at once (objectGUID), so the import
/// agent recognises it and imports no duplicate; `error` (AD's reason or a warning) shows on
/// the user as `adSyncError`.
pub async fn sync_status(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let agent = sync_agent(&s, &headers).await?;
    let status: SyncStatus = message(body)?;
    // An objectGUID goes into the agents' LDAP filters later: only 32 hex digits are kept.
    if status.guid.clone().is_some_and(|g| !tether_core::adi::is_guid_hex(&g)) {
        return Err(ApiError::new(Code::InvalidField, "invalid value for `guid`: expected 32 hexadecimal digits"));
    }
    if let Some(gid) = status.group_id.clone() {
        // A group created or found in AD: linked by objectGUID (without a domain, so the
        // import never takes it for one of its mirrored groups to clean up).
        if !crate::adi::feed::domains_of_group(&s, &gid).await?.contains(&agent.domain_id) {
            return Err(ApiError::new(Code::Forbidden, "this group is not associated with the agent's domain"));
        }
        let Some(mut g) = s.repo.get::<tether_core::group::Group>(Collection::Groups, &gid).await? else {
            return Ok(Json(json!({})));
        };
        if let (Some(guid), Some(dn)) = (status.guid.clone(), status.dn.clone()) {
            if g.attributes["activeDirectory"]["id"].as_str() != Some(guid.as_str()) {
                let before = g.clone();
                g.attributes["activeDirectory"] = json!({"id": guid, "dn": dn});
                s.repo.save_group(&g).await?;
                let actor = Actor::sync_agent(&agent.id, Some(guid.clone()));
                let changes = crate::history::diff_of(Some(&before), Some(&g));
                crate::history::record(
                    &s,
                    crate::history::Of::Group(&gid),
                    actor,
                    "ad_sync",
                    changes,
                    Some("written to AD"),
                )
                .await?;
            }
        }
        // An error may have left AD short of a member: the group goes whole to this domain
        // next (at once if the agent asks: a change alone it could not apply as such).
        if status.error.is_some() {
            crate::adi::feed_groups::forget_whole(&s, &agent.domain_id, &gid).await?;
        }
        if status.resend_whole {
            crate::adi::feed_groups::resend_whole(&s, &agent.domain_id, &g).await?;
        }
        // A refused write shows on the group (and goes away once a write succeeds).
        if g.ad_sync_error != status.error {
            let before = g.clone();
            g.ad_sync_error = status.error.clone();
            s.repo.save_group(&g).await?;
            let what = match &g.ad_sync_error {
                Some(e) => format!("not written to AD: {e}"),
                None => "written to AD".to_string(),
            };
            let actor = Actor::sync_agent(&agent.id, status.guid.clone());
            let changes = crate::history::diff_of(Some(&before), Some(&g));
            crate::history::record(&s, crate::history::Of::Group(&gid), actor, "ad_sync", changes, Some(&what)).await?;
        }
        return Ok(Json(json!({})));
    }
    let id = status.user_id.clone().ok_or_else(|| ApiError::new(Code::InvalidField, "invalid value for `userId`"))?;
    let Some(mut user) = s.repo.user(&id).await? else { return Ok(Json(json!({}))) };
    if !crate::adi::feed::bound_domains(&s, &id).await?.contains(&agent.domain_id) {
        return Err(ApiError::new(Code::Forbidden, "this user is not bound to the agent's domain"));
    }
    if let Some(set) = status.generated_password_set {
        crate::adi::generated::remember(&s, &id, &agent.domain_id, set).await?;
    }
    let before = user.clone();
    user.ad_sync_error = status.error.clone();
    if user.ad_sync_error.is_some() {
        s.metrics.ad_error("sync", status.code.clone().as_deref().unwrap_or("other"));
    }
    if let (Some(guid), Some(dn)) = (status.guid.clone(), status.dn.clone()) {
        link_account(&mut user, &agent.domain_id, tether_core::user::AdLink { guid, dn });
    }
    let relinked = user.ad_guid != before.ad_guid || user.ad_links != before.ad_links;
    if user.ad_sync_error != before.ad_sync_error || relinked {
        let actor = Actor::sync_agent(&agent.id, status.guid.clone());
        let what = match &user.ad_sync_error {
            Some(e) => format!("written to AD with an error: {e}"),
            None => "written to AD".to_string(),
        };
        crate::history::record(
            &s,
            crate::history::Of::User(&id),
            actor,
            "ad_sync",
            crate::history::diff(Some(&before), Some(&user)),
            Some(&what),
        )
        .await?;
    }
    if user != before {
        // Linked by objectGUID only: the user is not externally managed until the import
        // (if any) finds it in its scope; then it is the same user, never a duplicate.
        s.repo.save_user(&user, None).await?;
    }
    Ok(Json(json!({})))
}

/// Records the account a domain's sync agent created or took over as the user's link in
/// that domain. The user's AD link (`external_dn`) stays the importing domain's; a user no
/// domain imports takes the first domain's account as it, as before links were per domain.
fn link_account(user: &mut User, domain: &str, link: tether_core::user::AdLink) {
    let primary_here = match user.import_domain() {
        Some(d) => d == domain,
        None => user.ad_guid.is_none() || user.link_in(domain).is_some_and(|l| user.ad_guid.as_ref() == Some(&l.guid)),
    };
    if primary_here && user.ad_guid.as_deref() != Some(link.guid.as_str()) {
        user.ad_guid = Some(link.guid.clone());
        user.external_dn = Some(link.dn.clone());
        user.external_source_type = Some("active_directory".into());
    }
    user.ad_links.insert(domain.to_string(), link);
}

pub async fn heartbeat(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<HeartbeatReply>> {
    let agent = agent_from(&s, &headers).await?;
    let beat: Heartbeat = message(body)
        .map_err(|e| ApiError::new(Code::InvalidField, format!("invalid value for `ad`: {}", e.message)))?;
    if let Some(status) = &beat.ad {
        if !status.reachable && agent.ad_status.as_ref().is_none_or(|a| a.reachable) {
            tracing::warn!(agent = %agent.id, error = ?status.error, "agent cannot reach AD");
            s.metrics.ad_error("agent", status.code.as_deref().unwrap_or("other"));
        }
    }
    // Only the agent's own fields: a pause made since the token was checked stands.
    let (contact, ip) = (s.now_str(), peer.ip().to_string());
    let agent = s
        .update_agent(&agent.id, |a| {
            a.contact_at = Some(contact.clone());
            a.source_ip = Some(ip.clone());
            if let Some(status) = beat.ad.clone() {
                a.ad_status = Some(status);
            }
        })
        .await?
        .ok_or_else(|| ApiError::new(Code::InvalidApiKey, "agent deleted"))?;
    let (mut primary, mut fencing) = (false, 0);
    if agent.agent_type == AgentType::Import && !agent.paused {
        // On the domain as it is when written: an administrator's change made meanwhile
        // (guards, delegation, use case) makes the claim read the domain again.
        (primary, fencing) = crate::ops::retrying(|| async {
            let mut d = crate::ops::domains::load(&s, &agent.domain_id).await?;
            let (is_primary, changed) = d.claim_primary(&agent.id, s.now());
            // Delegated password validation waits for a capable (import) agent to connect.
            let enable = d.delegation_state == DelegationState::Pending;
            if enable {
                d.delegation_state = DelegationState::Enabled;
            }
            if changed || enable {
                d.updated_at = s.now_str();
                s.repo.save_domain(&d).await?;
            }
            Ok((is_primary, d.primary_fencing_token))
        })
        .await?;
    }
    Ok(Json(HeartbeatReply { paused: agent.paused, primary, fencing, parts: true }))
}
