//! The AD groups an import mirrors: each group in the ADI scope becomes a Tether group with
//! the flattened membership of its nested groups; the guard counts the memberships a report
//! would remove before anything is applied. A group comes with all its members, or (an
//! incremental report) with who joined and who left: then only those users are looked up,
//! whatever the group's size.

use std::collections::{HashMap, HashSet};
use tether_core::actor::Actor;

use serde_json::{json, Value};
use tether_core::ad::AdDomain;
use tether_core::group::Group;
use tether_store::{Collection, Edge, StoreError, WriteOp};

use crate::crypto::new_id;
use crate::error::ApiError;
use crate::state::AppState;
use tether_core::wire::{ImportOutcome, ImportReport, Members, ObservedGroup, Skipped};

/// The domain's linked users a report's groups touch: the objectGUIDs of their members, and
/// the Tether members that may leave them. Looked up for those users only, so an
/// incremental cycle costs what its groups hold, not what the domain holds; looked up once
/// per cycle, for the guard and then for the writing.
#[derive(Default)]
pub(crate) struct Touched {
    /// objectGUID → Tether id.
    by_guid: HashMap<String, String>,
    /// Tether id → username, of users linked to the domain.
    in_domain: HashMap<String, String>,
}

impl Touched {
    /// The linked users among the members (objectGUIDs) of every reported group.
    pub(crate) async fn of_members(
        s: &AppState,
        domain: &AdDomain,
        report: &ImportReport,
    ) -> Result<Touched, ApiError> {
        let mut t = Touched::default();
        if !domain.groups_enabled || report.groups.is_empty() {
            return Ok(t);
        }
        let guids: HashSet<&str> = report.groups.iter().flat_map(|g| g.members.named().map(String::as_str)).collect();
        let guids: Vec<&str> = guids.into_iter().collect();
        for u in s.repo.ad_linked(&guids).await? {
            if u.domain.as_deref() == Some(domain.id.as_str()) {
                t.in_domain.insert(u.id.clone(), u.username);
            }
            t.by_guid.insert(u.guid, u.id);
        }
        Ok(t)
    }

    /// This cycle's users, as written: `linked` (objectGUID → id), all linked to the domain,
    /// with their `names`.
    pub(crate) fn add_cycle_users(&mut self, linked: &HashMap<String, String>, names: &HashMap<String, String>) {
        for (g, id) in linked {
            self.by_guid.insert(g.clone(), id.clone());
            self.in_domain.insert(id.clone(), names.get(id).cloned().unwrap_or_else(|| id.clone()));
        }
    }

    /// Finds which of `ids` are linked to the domain (and their usernames).
    async fn learn(&mut self, s: &AppState, domain: &AdDomain, ids: &[&str]) -> Result<(), ApiError> {
        let unknown: Vec<&str> = ids.iter().copied().filter(|id| !self.in_domain.contains_key(*id)).collect();
        if !unknown.is_empty() {
            for u in s.repo.ad_linked_among(&domain.id, &unknown).await? {
                self.in_domain.insert(u.id, u.username);
            }
        }
        Ok(())
    }

    fn name(&self, id: &str) -> String {
        self.in_domain.get(id).cloned().unwrap_or_else(|| id.to_string())
    }

    fn ids<'a>(&'a self, guids: &'a [String]) -> impl Iterator<Item = &'a String> {
        guids.iter().filter_map(|m| self.by_guid.get(m))
    }
}

/// What a reported group changes in the Tether group `group_id`: the users (Tether ids) to
/// add, and those to remove if they belong to the domain (sorted). With all the members,
/// against the group's current members; with who joined and who left, against those users'
/// current groups only.
async fn change_of(
    s: &AppState,
    group_id: &str,
    og: &ObservedGroup,
    t: &Touched,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let store = s.repo.store();
    let (mut add, mut leave) = match &og.members {
        Members::All(members) => {
            let want: HashSet<&String> = t.ids(members).collect();
            let have: HashSet<String> = store.targets(Edge::Member, group_id).await?.into_iter().collect();
            let add: Vec<String> = want.iter().filter(|id| !have.contains(**id)).map(|id| id.to_string()).collect();
            let leave: Vec<String> = have.iter().filter(|id| !want.contains(id)).cloned().collect();
            (add, leave)
        }
        Members::Changed { joined, left } => {
            let joined: HashSet<&String> = t.ids(joined).collect();
            let left: HashSet<&String> = t.ids(left).collect();
            let (mut add, mut leave) = (Vec::new(), Vec::new());
            // Named on both sides (a user renamed in AD): no change.
            for id in joined.symmetric_difference(&left) {
                let member = store.sources(Edge::Member, id).await?.iter().any(|g| g == group_id);
                match (joined.contains(id), member) {
                    (true, false) => add.push(id.to_string()),
                    (false, true) => leave.push(id.to_string()),
                    _ => {}
                }
            }
            (add, leave)
        }
    };
    add.sort();
    leave.sort();
    Ok((add, leave))
}

/// The memberships of the domain's users that each mirrored group of `report` would lose, as
/// plan lines with a `count` (for the mass-change guard; [`apply_groups`] does the removing).
pub(crate) async fn membership_removals(
    s: &AppState,
    domain: &AdDomain,
    report: &ImportReport,
    t: &mut Touched,
) -> Result<Vec<Value>, ApiError> {
    if !domain.groups_enabled {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for og in &report.groups {
        let Some(group) = s.repo.group_by_ad_guid(&og.guid).await? else { continue };
        let (_, leaving) = change_of(s, &group.id, og, t).await?;
        let leaving: Vec<&str> = leaving.iter().map(String::as_str).collect();
        t.learn(s, domain, &leaving).await?;
        let n = leaving.iter().filter(|id| t.in_domain.contains_key(**id)).count();
        if n > 0 {
            out.push(json!({"category": tether_core::adi::guard::Category::MembershipRemovals, "object": group.name, "count": n,
                            "action": format!("remove {n} member(s)"), "reason": "no longer members of the AD group"}));
        }
    }
    Ok(out)
}

/// The domain's mirrored groups a report removes: on a complete read every one it does not
/// carry; on an incremental one those it names gone (deleted in AD, or out of the scope).
pub(crate) async fn stale_groups(
    s: &AppState,
    domain: &AdDomain,
    report: &ImportReport,
) -> Result<Vec<Group>, ApiError> {
    if !domain.groups_enabled || (!report.complete && report.gone_groups.is_empty()) {
        return Ok(Vec::new());
    }
    let reported: HashSet<&str> = report.groups.iter().map(|g| g.guid.as_str()).collect();
    let gone: HashSet<&str> = report.gone_groups.iter().map(String::as_str).collect();
    let removed = |id: &str| !reported.contains(id) && (report.complete || gone.contains(id));
    Ok(s.repo
        .groups_of_domain(&domain.id)
        .await?
        .into_iter()
        .filter(|g| g.attributes["activeDirectory"]["id"].as_str().is_some_and(removed))
        .collect())
}

/// The reason a mirrored group is removed, for plans and history.
pub(crate) fn stale_reason(report: &ImportReport) -> &'static str {
    if report.complete {
        "no longer in the ADI scope (complete read)"
    } else {
        "deleted in AD or no longer in the ADI scope"
    }
}

/// Mirrors the nested groups with their flattened membership; `t` is the cycle's lookup of
/// the groups' members with [`Touched::add_cycle_users`] applied.
pub(crate) async fn apply_groups(
    s: &AppState,
    domain: &AdDomain,
    report: &ImportReport,
    mut t: Touched,
    linked: &HashMap<String, String>,
    out: &mut ImportOutcome,
    actor: &Actor,
) -> Result<(), ApiError> {
    if !domain.groups_enabled {
        return Ok(());
    }
    let store = s.repo.store();
    // The groups reported with all their members: this cycle's new users are among them.
    let mut whole = HashSet::new();
    // Members are objectGUIDs: this cycle's users are in `linked`, the others were looked up.
    // Only users that belong to this domain are removed from mirrored groups: Tether-only
    // members an admin added stay.
    for og in &report.groups {
        let changed_only = matches!(og.members, Members::Changed { .. });
        if !changed_only {
            whole.insert(og.guid.clone());
        }
        let ad = json!({"id": og.guid, "dn": og.dn, "domain": domain.id});
        let who = actor.on_ad(Some(og.guid.clone()), Some(og.dn.clone()));
        let group = match s.repo.group_by_ad_guid(&og.guid).await? {
            Some(mut g) => {
                if g.name != og.name || g.attributes.get("activeDirectory") != Some(&ad) {
                    let before = g.clone();
                    g.name = og.name.clone();
                    g.attributes["activeDirectory"] = ad;
                    s.repo.save_group(&g).await?;
                    let changes = crate::history::diff_of(Some(&before), Some(&g));
                    crate::history::record(
                        s,
                        crate::history::Of::Group(&g.id),
                        who.clone(),
                        "update",
                        changes,
                        Some("renamed or moved in AD"),
                    )
                    .await?;
                    out.groups_updated += 1;
                }
                g
            }
            None if changed_only => {
                // Deleted in Tether, or never mirrored (its name was taken): who joined and
                // who left is not a membership to start from. The next complete read (within
                // `RECONCILE_EVERY`) mirrors it with all its members.
                out.skipped.push(Skipped {
                    dn: og.dn.clone(),
                    sam_account_name: None,
                    reason: "not mirrored in Tether; mirrored with all its members at the next complete read".into(),
                });
                continue;
            }
            None => {
                let mut g = Group {
                    id: new_id(),
                    name: og.name.clone(),
                    attributes: json!({"activeDirectory": ad}),
                    ..Group::default()
                };
                crate::ops::unix_ids::assign_group(s, &mut g, None).await?;
                match s.repo.insert_group(&g).await {
                    Ok(()) => {
                        out.groups_created += 1;
                        let changes = crate::history::diff_of(None, Some(&g));
                        let why = Some("mirrored from AD (a group in the ADI scope)");
                        crate::history::record(
                            s,
                            crate::history::Of::Group(&g.id),
                            who.clone(),
                            "create",
                            changes,
                            why,
                        )
                        .await?;
                    }
                    Err(StoreError::Conflict { .. }) => {
                        out.skipped.push(Skipped {
                            dn: og.dn.clone(),
                            sam_account_name: None,
                            reason: format!("a Tether group named `{}` already exists; not mirrored", og.name),
                        });
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
                g
            }
        };
        store.link(Edge::DomainGroup, &domain.id, &group.id).await?;
        let (joining, leaving) = change_of(s, &group.id, og, &t).await?;
        let leaving_ids: Vec<&str> = leaving.iter().map(String::as_str).collect();
        t.learn(s, domain, &leaving_ids).await?;
        // Membership changes and their history entries (on the user and on the group), in
        // one batch.
        let mut ops = Vec::new();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for id in &joining {
            let changes = json!({"memberOf": [null, group.name]});
            let why = Some("member of the AD group (nested groups flattened)");
            ops.extend(
                crate::history::entry(s, crate::history::Of::User(id), who.clone(), "membership", changes, why)
                    .map(|h| WriteOp::Insert(Collection::History, h)),
            );
            ops.push(WriteOp::Link(Edge::Member, group.id.clone(), id.clone()));
            added.push(id.clone());
        }
        for id in leaving.iter().filter(|id| t.in_domain.contains_key(*id)) {
            let changes = json!({"memberOf": [group.name, null]});
            let why = Some("no longer a member of the AD group");
            ops.extend(
                crate::history::entry(s, crate::history::Of::User(id), who.clone(), "membership", changes, why)
                    .map(|h| WriteOp::Insert(Collection::History, h)),
            );
            ops.push(WriteOp::Unlink(Edge::Member, group.id.clone(), id.clone()));
            removed.push(id.clone());
        }
        if !added.is_empty() || !removed.is_empty() {
            // One entry for the group per cycle: who joined and who left (by username; this
            // cycle's users under the names it gave them).
            let names = |ids: &[String]| -> Vec<String> { ids.iter().map(|id| t.name(id)).collect() };
            let changes = json!({"members": {"added": names(&added), "removed": names(&removed)}});
            let why = Some("membership of the AD group (nested groups flattened)");
            ops.extend(
                crate::history::entry(s, crate::history::Of::Group(&group.id), who.clone(), "membership", changes, why)
                    .map(|h| WriteOp::Insert(Collection::History, h)),
            );
        }
        if !ops.is_empty() {
            store.write_batch(&ops).await?;
        }
    }
    if !report.complete {
        join_unchanged_groups(s, report, linked, &t, &whole, actor).await?;
    }
    for g in stale_groups(s, domain, report).await? {
        store.delete(Collection::Groups, &g.id).await?;
        let who = actor.on_ad(g.attributes["activeDirectory"]["id"].as_str().map(str::to_string), None);
        let why = Some(stale_reason(report));
        crate::history::record(
            s,
            crate::history::Of::Group(&g.id),
            who,
            "delete",
            crate::history::diff_of(Some(&g), None),
            why,
        )
        .await?;
        out.groups_deleted += 1;
    }
    Ok(())
}

/// An incremental report carries only the groups that changed: a user it imports for the
/// first time (say, once AD gives it the missing email) joins the mirrored groups it is in
/// from the report's `userGroups`, unless a group came with all its members (`reported`): it
/// was already a member in AD, so it is in no group's `joined`. Leaving a group changes that
/// group, so it is reported and handled above.
async fn join_unchanged_groups(
    s: &AppState,
    report: &ImportReport,
    linked: &HashMap<String, String>,
    t: &Touched,
    reported: &HashSet<String>,
    actor: &Actor,
) -> Result<(), ApiError> {
    let store = s.repo.store();
    let mut groups: HashMap<&str, Option<Group>> = HashMap::new();
    for (guid, of) in &report.user_groups {
        let Some(uid) = linked.get(guid) else { continue };
        let of: Vec<&String> = of.iter().filter(|g| !reported.contains(*g)).collect();
        if of.is_empty() {
            continue;
        }
        let current: HashSet<String> = store.sources(Edge::Member, uid).await?.into_iter().collect();
        for g in of {
            if !groups.contains_key(g.as_str()) {
                groups.insert(g, s.repo.group_by_ad_guid(g).await?);
            }
            let Some(group) = groups.get(g.as_str()).and_then(Option::as_ref) else { continue };
            if current.contains(&group.id) {
                continue;
            }
            let who = actor
                .on_ad(Some(g.to_string()), group.attributes["activeDirectory"]["dn"].as_str().map(str::to_string));
            let mut ops = vec![WriteOp::Link(Edge::Member, group.id.clone(), uid.clone())];
            let why = Some("member of the AD group (nested groups flattened)");
            let changes = json!({"memberOf": [null, group.name]});
            ops.extend(
                crate::history::entry(s, crate::history::Of::User(uid), who.clone(), "membership", changes, why)
                    .map(|h| WriteOp::Insert(Collection::History, h)),
            );
            let changes = json!({"members": {"added": [t.name(uid)], "removed": []}});
            ops.extend(
                crate::history::entry(s, crate::history::Of::Group(&group.id), who, "membership", changes, why)
                    .map(|h| WriteOp::Insert(Collection::History, h)),
            );
            store.write_batch(&ops).await?;
        }
    }
    Ok(())
}
