//! Applies an import agent's report: the observed AD users and groups of one cycle are
//! turned into decisions by `tether_core::adi::import` and applied to the directory.
//!
//! Decisions are made here, next to the directory state they depend on, so two reports
//! never race on stale copies; the agent only observes. Absence from the scope is taken as
//! a dissociation only when the agent says its read was complete.

use std::collections::{HashMap, HashSet};
use tether_core::actor::Actor;

use serde_json::Value;
use tether_core::ad::AdDomain;
use tether_core::adi::import::{
    decide_absent, decide_present, username_of, AdUserObs, ImportContext, ImportSettings, UserDecision,
};
use tether_core::user::User;
use tether_store::{Collection, Edge, StoreError, WriteOp};

use crate::adi::import_plan::decided_user;
pub use crate::adi::import_plan::{drop_plan, held_plan, HeldPlan, Planned};
use crate::crypto::new_id;
use crate::error::ApiError;
use crate::state::AppState;
use tether_core::adi::guard::Category;
use tether_core::wire::Skipped;
pub use tether_core::wire::{ImportOutcome, ImportReport, ObservedGroup};

/// Why an AD user of a report is not imported before any policy applies.
enum NotImported {
    /// The account in this domain of a user another domain imports (the sync agent created
    /// or took it over): the importing domain owns the user, this one leaves it alone.
    BoundHere,
    /// The username is linked to another AD user (of this domain or another): a conflict,
    /// reported on both sides.
    Conflict(String),
}

/// The Tether user an AD user is (linked by objectGUID, from `linked`), or would take over
/// by username (from `by_name`, lowercased), or none. Both maps hold the report's users
/// looked up at once.
fn find_existing(
    obs: &AdUserObs,
    settings: &ImportSettings,
    domain_id: &str,
    linked: &mut HashMap<String, User>,
    by_name: &HashMap<String, User>,
) -> Result<Option<User>, NotImported> {
    // Taken out of the map: each user is held once (a complete read holds every user).
    if let Some(u) = linked.remove(&obs.guid) {
        return Ok(Some(u));
    }
    let Some(name) = username_of(obs, settings.user_field_mapping) else { return Ok(None) };
    match by_name.get(&name.to_lowercase()) {
        Some(u) if u.is_linked_to(domain_id, &obs.guid) => match u.import_domain() {
            Some(d) if d != domain_id => Err(NotImported::BoundHere),
            _ => Ok(Some(u.clone())),
        },
        Some(u) if u.ad_guid.is_some() => Err(NotImported::Conflict(format!(
            "username `{name}` is already linked to another AD user ({}); not imported",
            u.external_dn.clone().unwrap_or_default()
        ))),
        other => Ok(other.cloned()),
    }
}

/// The report's users already in Tether: linked by objectGUID, and by username (lowercased)
/// for those not linked. A complete read passes the domain's users, loaded anyway.
async fn lookup_report_users(
    s: &AppState,
    report: &ImportReport,
    in_scope: Vec<User>,
) -> Result<(HashMap<String, User>, HashMap<String, User>), ApiError> {
    let mut linked: HashMap<String, User> =
        in_scope.into_iter().filter_map(|u| u.ad_guid.clone().map(|g| (g, u))).collect();
    let missing: Vec<&str> =
        report.users.iter().map(|o| o.guid.as_str()).filter(|g| !linked.contains_key(*g)).collect();
    linked.extend(s.repo.users_by_ad_guids(&missing).await?);
    let names: Vec<String> = report
        .users
        .iter()
        .filter(|o| !linked.contains_key(&o.guid))
        .filter_map(|o| username_of(o, report.settings.user_field_mapping))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let by_name =
        s.repo.users_by_keys(false, &names).await?.into_iter().map(|u| (u.username.to_lowercase(), u)).collect();
    Ok((linked, by_name))
}

/// Users with change-feed entries the domain's sync agents have not acknowledged yet.
async fn pending_in_feed(s: &AppState, domain_id: &str) -> Result<HashSet<String>, ApiError> {
    let cursor = s
        .repo
        .agents_of(domain_id)
        .await?
        .iter()
        .filter(|a| a.agent_type == tether_core::ad::AgentType::Sync)
        .map(|a| a.cursor)
        .min();
    let Some(cursor) = cursor else { return Ok(HashSet::new()) };
    let entries = s.repo.store().read_feed(domain_id, cursor, 100_000).await?;
    Ok(entries.into_iter().map(|e| e.object_id).collect())
}

/// A conflict is reported on both sides: in the cycle's outcome for the AD user, and on the
/// Tether user(s) it collides with (`adSyncError`), whose data is left untouched.
async fn flag_conflict(s: &AppState, domain_id: &str, obs: &AdUserObs) -> Result<(), ApiError> {
    use tether_core::query::{Filter, ListQuery, Op, Scalar};
    let mut by = vec![("username", obs.sam_account_name.clone())];
    if let Some(m) = &obs.mail {
        by.push(("email", m.clone()));
    }
    for (field, value) in by {
        let q = ListQuery {
            filter: Some(Filter::Cmp { field, op: Op::Eq, value: Scalar::Text(value) }),
            limit: 5,
            ..Default::default()
        };
        for mut u in s.repo.list_users(&q).await?.1 {
            if u.is_linked_to(domain_id, &obs.guid) {
                continue;
            }
            let note = format!("conflicts with the AD user {} (same {field}); that user was not imported", obs.dn);
            if u.ad_sync_error.as_deref() != Some(note.as_str()) {
                u.ad_sync_error = Some(note);
                s.repo.save_user(&u, None).await?;
            }
        }
    }
    Ok(())
}

fn skip(obs: &AdUserObs, reason: &str) -> Skipped {
    Skipped { dn: obs.dn.clone(), sam_account_name: Some(obs.sam_account_name.clone()), reason: reason.to_string() }
}

fn conflict_reason(obs: &AdUserObs, e: &StoreError) -> Option<String> {
    match e {
        StoreError::Conflict { field, .. } => {
            Some(format!("{}: its {field} is already used by another Tether user; nothing overwritten", obs.dn))
        }
        _ => None,
    }
}

/// Applies `report` for `domain`: decides every change, holds the whole cycle if it exceeds
/// a mass-change guard, applies it otherwise.
pub async fn apply(
    s: &AppState,
    domain: &AdDomain,
    report: &ImportReport,
    actor: &Actor,
) -> Result<ImportOutcome, ApiError> {
    if let Some(p) = held_plan(s, &domain.id).await?.filter(|_| !report.dry_run) {
        // Nothing is applied while a plan waits for the admin.
        return Ok(ImportOutcome { held: true, held_reason: Some(p.reason), ..ImportOutcome::default() });
    }
    // A report relative to a state tetherd no longer holds is neither decided nor held (an
    // approval would apply it to that other state); `next_seq` checks again as it writes.
    let base = crate::adi::import_seq::base_of(report)?;
    if base.is_some_and(|b| b != domain.import_seq) && !report.dry_run {
        return Err(crate::adi::import_seq::stale_base());
    }
    // Parts fill a new domain only: the first without a base, to a domain without users,
    // each next one relative to the last (checked above, and again as the number moves), so
    // a domain's users are then only those its parts created and a complete report's guards
    // still weigh everything else whole.
    if report.part && base.is_none() && s.repo.count_users_of_domain(&domain.id).await? > 0 {
        return Err(ApiError::new(
            crate::error::Code::Conflict,
            "the domain has users: a first read goes to it in parts only when it has none; send the complete report",
        ));
    }
    let decide_started = std::time::Instant::now();
    let settings = report.settings;
    let org = s.repo.settings().await?;
    let ctx =
        ImportContext { domain_id: domain.id.clone(), use_case: domain.use_case, new_user_state: org.new_user_state };
    let mut out = ImportOutcome::default();
    let mut planned: Vec<Planned> = Vec::new();
    let pending = pending_in_feed(s, &domain.id).await?;
    // The users in scope, for the guards' percentages: counted, and loaded only when a
    // complete read must find who is missing.
    let in_scope = if report.complete { s.repo.users_of_domain(&domain.id).await? } else { Vec::new() };
    let scope_size =
        if report.complete { in_scope.len() as u64 } else { s.repo.count_users_of_domain(&domain.id).await? };
    // Dissociations: explicit removals always; absence only on a complete read.
    let present: HashSet<&str> = report.users.iter().map(|o| o.guid.as_str()).collect();
    let mut gone: Vec<User> = Vec::new();
    for g in &report.gone {
        // Only this domain's own users: an agent is confined to its domain.
        if let Some(u) = s.repo.user_by_ad_guid(g).await?.filter(|u| u.import_domain() == Some(domain.id.as_str())) {
            gone.push(u);
        }
    }
    if report.complete {
        for u in &in_scope {
            if u.ad_guid.as_deref().is_some_and(|g| !present.contains(g)) && !gone.iter().any(|x| x.id == u.id) {
                gone.push(u.clone());
            }
        }
    }
    let (mut linked, by_name) = lookup_report_users(s, report, in_scope).await?;
    let mut seen = HashSet::new();
    for obs in &report.users {
        if !tether_core::adi::is_guid_hex(&obs.guid) {
            out.skipped.push(skip(obs, "its objectGUID is not 32 hexadecimal digits; not imported"));
            continue;
        }
        if !seen.insert(obs.guid.as_str()) {
            out.skipped.push(skip(obs, "its objectGUID is reported twice in one cycle; the first is imported"));
            continue;
        }
        let existing = match find_existing(obs, &settings, &domain.id, &mut linked, &by_name) {
            Ok(e) => e,
            Err(NotImported::BoundHere) => continue,
            Err(NotImported::Conflict(reason)) => {
                out.skipped.push(skip(obs, &reason));
                flag_conflict(s, &domain.id, obs).await?;
                continue;
            }
        };
        // A Tether change still queued for AD is not undone by importing the older AD state:
        // the user is left alone until the sync agent has applied it.
        if existing.as_ref().is_some_and(|u| pending.contains(&u.id)) {
            planned.push(Planned::new(Some(obs), existing, UserDecision::Nothing));
            continue;
        }
        let decision = decide_present(&settings, &ctx, obs, existing.as_ref());
        if let UserDecision::Skip(reason) = &decision {
            out.skipped.push(skip(obs, reason));
            let linked = existing.filter(|u| u.is_linked_to(&domain.id, &obs.guid));
            planned.push(Planned::new(Some(obs), linked, UserDecision::Nothing));
            continue;
        }
        planned.push(Planned::new(Some(obs), existing, decision));
    }
    for u in gone.into_iter().filter(|u| !pending.contains(&u.id)) {
        let d = decide_absent(&settings, &u);
        planned.push(Planned::new(None, Some(u), d));
    }
    if report.part {
        // A part of a first complete read only creates users: an update, a takeover or a
        // suspension of a user Tether holds waits for the complete report and its guards
        // (parts must not split a mass change under a guard's threshold).
        planned.retain(|p| matches!(p.decision, UserDecision::Create(_)));
    }

    if report.dry_run {
        // Every decision with its policy row, and nothing applied.
        out.dry_run = planned.iter().filter_map(Planned::describe).collect();
        return Ok(out);
    }
    // The mass-change guard.
    let changes: Vec<Value> = planned.iter().filter_map(Planned::change).collect();
    let mut counts = tether_core::adi::guard::Counts::default();
    for c in &changes {
        if let Some(category) = c["category"].as_str().and_then(Category::parse) {
            counts.add(category, 1);
        }
    }
    let groups_started = std::time::Instant::now();
    let mut touched = crate::adi::import_groups::Touched::of_members(s, domain, report).await?;
    let members_ms = groups_started.elapsed().as_millis() as u64;
    let removals = crate::adi::import_groups::membership_removals(s, domain, report, &mut touched).await?;
    counts.membership_removals = removals.iter().filter_map(|c| c["count"].as_u64()).sum();
    let stale = crate::adi::import_groups::stale_groups(s, domain, report).await?;
    let groups_ms = groups_started.elapsed().as_millis() as u64;
    counts.add(Category::GroupDeletes, stale.len() as u64);
    let group_deletes = stale.iter().map(|g| {
        serde_json::json!({"category": Category::GroupDeletes, "object": g.name, "action": "delete",
               "reason": crate::adi::import_groups::stale_reason(report)})
    });
    let changes: Vec<Value> = changes.into_iter().chain(removals).chain(group_deletes).collect();
    if let Some(reason) = tether_core::adi::guard::exceeded(&domain.guards, &counts, scope_size) {
        tracing::warn!(domain = %domain.domain, %reason, "import cycle held by a mass-change guard");
        let plan = HeldPlan {
            status: "held".into(),
            reason: reason.clone(),
            created: s.now_str(),
            changes,
            planned,
            report: report.clone(),
        };
        crate::adi::import_plan::hold(s, &domain.id, &plan).await?;
        return Ok(ImportOutcome {
            held: true,
            held_reason: Some(reason),
            skipped: out.skipped,
            ..ImportOutcome::default()
        });
    }
    tracing::debug!(
        users = report.users.len(),
        groups = report.groups.len(),
        complete = report.complete,
        ms = decide_started.elapsed().as_millis() as u64,
        groups_ms,
        members_ms,
        "import cycle decided"
    );
    // An incremental report is relative to the agent's last applied one: taken only if
    // nothing was applied since (the number moves before anything is written).
    let seq = crate::adi::import_seq::next_seq(s, &domain.id, base, report.fencing).await?;
    let started = std::time::Instant::now();
    let r = execute(s, domain, report, Some(touched), planned, out, actor).await;
    let settled = crate::adi::import_seq::settle_seq(s, &domain.id, seq).await;
    s.metrics.import_applied(started.elapsed().as_secs_f64());
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "import cycle applied");
    let out = r?;
    settled?;
    Ok(ImportOutcome { seq, ..out })
}

/// Applies decided changes (a cycle within its guards, or an approved plan exactly as held).
/// `touched` is the cycle's lookup of its groups' members, when the guard made one.
pub(crate) async fn execute(
    s: &AppState,
    domain: &AdDomain,
    report: &ImportReport,
    touched: Option<crate::adi::import_groups::Touched>,
    planned: Vec<Planned>,
    mut out: ImportOutcome,
    actor: &Actor,
) -> Result<ImportOutcome, ApiError> {
    let settings = report.settings;
    // objectGUID → Tether id of every user in scope after this cycle.
    let mut linked: HashMap<String, String> = HashMap::new();
    let obs_by_guid: HashMap<&str, &AdUserObs> = report.users.iter().map(|o| (o.guid.as_str(), o)).collect();
    // Creates and plain updates (the bulk of a cycle) are written in batches of
    // `BATCH_USERS`: each with its history entry, the user document and its domain edge, in
    // one transaction per batch (and only one batch's documents in memory). The rest, and a
    // batch again one by one should it fail, go through `apply_decision`.
    let mut batch: Vec<WriteOp> = Vec::new();
    let mut batched: Vec<Planned> = Vec::new();
    let mut rest: Vec<Planned> = Vec::new();
    let mut batch_ms = 0;
    // When each changed user changed in AD, for the AD → Tether latency.
    let changed_at: Vec<(String, String)> = planned
        .iter()
        .filter(|p| p.action().is_some())
        .filter_map(|p| p.obs_guid.as_deref().and_then(|g| obs_by_guid.get(g)))
        .filter_map(|o| o.changed_at.clone().map(|t| (o.sam_account_name.clone(), t)))
        .collect();
    let mut taken = Taken::of(s, &planned).await?;
    // Numbers AD gives (RFC 2307 uidNumber / gidNumber) raise the counter past them first.
    let ad_numbers = report.users.iter().flat_map(|o| [o.uid_number, o.gid_number]).flatten().max();
    if let Some(n) = ad_numbers {
        crate::ops::unix_ids::raise_past(s, n).await?;
    }
    // Unix ids for the cycle's new users, taken as one block.
    let new_users =
        planned.iter().filter(|p| matches!(&p.decision, UserDecision::Create(u) if u.unix_uid.is_none())).count();
    let mut next_unix_id = if new_users > 0 { crate::ops::unix_ids::take(s, new_users).await? } else { 0 };
    // What this domain's import changes reaches the other domains the user is bound to.
    let others = other_syncing_domains(s, &domain.id).await?;
    let mut to_feed: Vec<String> = Vec::new();
    // Tether id → username of the cycle's users, for the groups' history.
    let mut names: HashMap<String, String> = HashMap::new();
    for p in planned {
        let mut p = p.restored();
        if others {
            match (&p.decision, &p.existing) {
                (UserDecision::Update { user, .. }, _) => to_feed.push(user.id.clone()),
                (UserDecision::Delete, Some(u)) => {
                    let mut lost = crate::adi::feed::bound_domains(s, &u.id).await?;
                    lost.remove(&domain.id);
                    crate::adi::feed::user_disconnected(s, u, &lost).await?;
                }
                _ => {}
            }
        }
        // A new user gets its id now, so its history can be written first.
        if let UserDecision::Create(u) = &mut p.decision {
            if u.id.is_empty() {
                u.id = new_id();
                u.created = s.now_str();
            }
            if u.unix_uid.is_none() {
                u.unix_uid = Some(next_unix_id);
                next_unix_id += 1;
            }
            // A private group per user unless AD gave a gidNumber.
            u.unix_guid = u.unix_guid.or(u.unix_uid);
        }
        if let Some(u) = decided_user(&p.decision).or(p.existing.as_ref()) {
            names.insert(u.id.clone(), u.username.clone());
        }
        let user = match &p.decision {
            UserDecision::Create(u) | UserDecision::Update { user: u, clear_password: false } => u,
            _ => {
                rest.push(p);
                continue;
            }
        };
        let obs = p.obs_guid.as_deref().and_then(|g| obs_by_guid.get(g)).copied();
        if let Some(field) = taken.claim(user) {
            if let Some(o) = obs {
                out.skipped.push(skip(
                    o,
                    &format!("{}: its {field} is already used by another Tether user; nothing overwritten", o.dn),
                ));
                flag_conflict(s, &domain.id, o).await?;
            }
            continue;
        }
        if let Some(h) = p.history(s, actor) {
            batch.push(WriteOp::Insert(Collection::History, h));
        }
        let doc = tether_store::user_doc(user);
        batch.push(if matches!(p.decision, UserDecision::Create(_)) {
            WriteOp::Insert(Collection::Users, doc)
        } else {
            WriteOp::Replace(Collection::Users, doc)
        });
        batch.push(WriteOp::Link(Edge::DomainUser, domain.id.clone(), user.id.clone()));
        batched.push(p);
        if batched.len() == BATCH_USERS {
            batch_ms += flush(s, &mut batch, &mut batched, &mut out, &mut linked, &mut rest).await;
        }
    }
    batch_ms += flush(s, &mut batch, &mut batched, &mut out, &mut linked, &mut rest).await;
    for p in rest {
        // Write-ahead: the history entry is stored before the change, so a crash between the
        // two can leave an entry for a change that did not happen (and is redone, with its
        // own entry, next cycle) but never a change without its entry.
        if let Some(h) = p.history(s, actor) {
            s.repo.store().insert(Collection::History, &h).await?;
        }
        let again = p.decision.clone();
        let mut result = apply_decision(s, domain, p.existing.as_ref(), p.decision, &mut out).await;
        if matches!(&result, Err(StoreError::Conflict { field: "unix_uid", .. })) {
            // AD's uidNumber is another Tether user's: the user is imported all the same and
            // keeps the number Tether gave it (or a new one); the clash is logged.
            if let Some(d) = keep_tether_uid(s, again, p.existing.as_ref()).await? {
                result = apply_decision(s, domain, p.existing.as_ref(), d, &mut out).await;
            }
        }
        match (result, p.obs_guid) {
            (Ok(Some(id)), Some(g)) => {
                linked.insert(g, id);
            }
            (Ok(_), _) => {}
            (Err(e), g) => {
                match g.as_deref().and_then(|g| obs_by_guid.get(g)).and_then(|o| conflict_reason(o, &e).map(|r| (o, r)))
                {
                    Some((o, reason)) => {
                        out.skipped.push(skip(o, &reason));
                        flag_conflict(s, &domain.id, o).await?;
                    }
                    None => return Err(e.into()),
                }
            }
        }
    }

    // Fed as stored now (a write refused above feeds the unchanged user: harmless).
    let ids: Vec<&str> = to_feed.iter().map(String::as_str).collect();
    for u in s.repo.users_by_ids(&ids).await? {
        crate::adi::feed::imported_change(s, &u, &domain.id).await?;
    }

    // Managers, once every user of the cycle exists.
    if settings.sync_additional_attributes {
        for obs in &report.users {
            let (Some(id), Some(mdn)) = (linked.get(&obs.guid), obs.manager_dn.as_deref()) else { continue };
            let Some(mut u) = s.repo.user(id).await? else { continue };
            let manager =
                report.users.iter().find(|m| m.dn.eq_ignore_ascii_case(mdn)).and_then(|m| linked.get(&m.guid)).cloned();
            if u.manager != manager {
                u.manager = manager;
                s.repo.save_user(&u, None).await?;
            }
        }
    }

    let groups_started = std::time::Instant::now();
    let mut touched = match touched {
        Some(t) => t,
        None => crate::adi::import_groups::Touched::of_members(s, domain, report).await?,
    };
    touched.add_cycle_users(&linked, &names);
    crate::adi::import_groups::apply_groups(s, domain, report, touched, &linked, &mut out, actor).await?;
    tracing::debug!(batch_ms, groups_ms = groups_started.elapsed().as_millis() as u64, "import cycle applied");
    let now = s.now();
    for (who, t) in changed_at {
        let Ok(at) = time::OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339) else { continue };
        let secs = (now - at).as_seconds_f64();
        // A complete reconcile also reads long-unchanged users: only fresh changes count.
        if secs < 3600.0 {
            s.metrics.change_visible("ad_to_tether", &who, secs, s.now_str());
        }
    }
    Ok(out)
}

/// Whether any domain but `domain` has a sync agent (only then can an imported user be
/// bound elsewhere; one lookup per cycle spares the common single-domain case any more).
async fn other_syncing_domains(s: &AppState, domain: &str) -> Result<bool, ApiError> {
    let q = tether_core::query::ListQuery { limit: 1000, ..Default::default() };
    let (_, all) = s.repo.list::<AdDomain>(Collection::Domains, &q).await?;
    Ok(all.iter().any(|d| d.id != domain && d.use_case.allowed_agents().contains(&tether_core::ad::AgentType::Sync)))
}

/// Users written per batch transaction.
const BATCH_USERS: usize = 500;

/// Writes one batch of creates and plain updates in one transaction, counts them and links
/// their objectGUIDs; a batch that fails goes to `retry` (applied one by one). Returns the
/// milliseconds spent writing.
async fn flush(
    s: &AppState,
    batch: &mut Vec<WriteOp>,
    batched: &mut Vec<Planned>,
    out: &mut ImportOutcome,
    linked: &mut HashMap<String, String>,
    retry: &mut Vec<Planned>,
) -> u64 {
    if batch.is_empty() {
        return 0;
    }
    let started = std::time::Instant::now();
    let written = s.repo.store().write_batch(batch).await;
    batch.clear();
    match written {
        Ok(()) => {
            for p in batched.drain(..) {
                let (UserDecision::Create(u) | UserDecision::Update { user: u, .. }) = &p.decision else { continue };
                if matches!(p.decision, UserDecision::Create(_)) {
                    out.created += 1;
                } else {
                    out.updated += 1;
                }
                if let Some(g) = &p.obs_guid {
                    linked.insert(g.clone(), u.id.clone());
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "batch write failed; applying its users one by one");
            retry.append(batched);
        }
    }
    started.elapsed().as_millis() as u64
}

/// Who holds each username and email (lowercased, as the store's unique keys): the Tether
/// users looked up at once for every user a cycle writes, then the cycle's own users as
/// they are claimed, so two AD users with one email do not both reach the batch.
struct Taken {
    usernames: HashMap<String, String>,
    emails: HashMap<String, String>,
}

impl Taken {
    async fn of(s: &AppState, planned: &[Planned]) -> Result<Taken, ApiError> {
        let written: Vec<&User> = planned.iter().filter_map(|p| decided_user(&p.decision)).collect();
        let names: Vec<&str> = written.iter().map(|u| u.username.as_str()).collect();
        let emails: Vec<&str> = written.iter().map(|u| u.email.as_str()).collect();
        let usernames =
            s.repo.users_by_keys(false, &names).await?.into_iter().map(|u| (u.username.to_lowercase(), u.id));
        let emails = s.repo.users_by_keys(true, &emails).await?.into_iter().map(|u| (u.email.to_lowercase(), u.id));
        Ok(Taken { usernames: usernames.collect(), emails: emails.collect() })
    }

    /// Which of `u`'s keys another user holds; otherwise `u` now holds both.
    fn claim(&mut self, u: &User) -> Option<&'static str> {
        let (name, email) = (u.username.to_lowercase(), u.email.to_lowercase());
        if self.usernames.get(&name).is_some_and(|id| *id != u.id) {
            return Some("username");
        }
        if self.emails.get(&email).is_some_and(|id| *id != u.id) {
            return Some("email");
        }
        self.usernames.insert(name, u.id.clone());
        self.emails.insert(email, u.id.clone());
        None
    }
}

/// `d` with the unix id Tether gave the user instead of AD's (held by another user), or a
/// new one for a new user; `None` if `d` writes no user.
async fn keep_tether_uid(
    s: &AppState,
    mut d: UserDecision,
    existing: Option<&User>,
) -> Result<Option<UserDecision>, ApiError> {
    let (UserDecision::Create(u) | UserDecision::Update { user: u, .. }) = &mut d else { return Ok(None) };
    let ad_uid = u.unix_uid;
    u.unix_uid = match existing.and_then(|e| e.unix_uid).filter(|n| Some(*n) != ad_uid) {
        Some(n) => Some(n),
        None => Some(crate::ops::unix_ids::take(s, 1).await?),
    };
    if u.unix_guid == ad_uid {
        // The private group went with the number.
        u.unix_guid = u.unix_uid;
    }
    tracing::warn!(
        user = %u.username,
        ad_uid_number = ?ad_uid,
        kept = ?u.unix_uid,
        "AD's uidNumber is another Tether user's unix_uid; the user keeps Tether's number"
    );
    Ok(Some(d))
}

/// Applies one decision; returns the Tether id of the user if it stays linked.
async fn apply_decision(
    s: &AppState,
    domain: &AdDomain,
    existing: Option<&User>,
    d: UserDecision,
    out: &mut ImportOutcome,
) -> Result<Option<String>, StoreError> {
    let store = s.repo.store();
    match d {
        UserDecision::Create(mut u) => {
            if u.id.is_empty() {
                u.id = new_id();
                u.created = s.now_str();
            }
            s.repo.insert_user(&u, None).await?;
            store.link(Edge::DomainUser, &domain.id, &u.id).await?;
            out.created += 1;
            Ok(Some(u.id))
        }
        UserDecision::Update { user, clear_password } => {
            if clear_password {
                s.repo.remove_password(&user.id).await?;
            }
            s.repo.save_user(&user, None).await?;
            store.link(Edge::DomainUser, &domain.id, &user.id).await?;
            out.updated += 1;
            Ok(Some(user.id))
        }
        UserDecision::Delete => {
            if let Some(u) = existing {
                store.delete(Collection::Users, &u.id).await?;
                out.deleted += 1;
            }
            Ok(None)
        }
        UserDecision::Unbind(user) => {
            s.repo.save_user(&user, None).await?;
            store.unlink(Edge::DomainUser, &domain.id, &user.id).await?;
            for g in s.repo.groups_of_domain(&domain.id).await? {
                store.unlink(Edge::Member, &g.id, &user.id).await?;
            }
            out.unbound += 1;
            Ok(None)
        }
        UserDecision::Nothing => {
            out.unchanged += usize::from(existing.is_some());
            Ok(existing.filter(|u| u.ad_guid.is_some()).map(|u| u.id.clone()))
        }
        UserDecision::Skip(_) => Ok(None), // reported by the caller, which knows the AD user
    }
}
