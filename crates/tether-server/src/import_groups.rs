//! The AD groups an import mirrors: each group in the ADI scope becomes a Tether group with
//! the flattened membership of its nested groups; the guard counts the memberships a report
//! would remove before anything is applied.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Value};
use tether_core::ad::AdDomain;
use tether_core::group::Group;
use tether_core::user::User;
use tether_store::{Collection, Edge, StoreError, WriteOp};

use crate::auth::new_id;
use crate::error::ApiError;
use crate::import::{ImportOutcome, ImportReport};
use crate::AppState;

/// The memberships of the domain's users that each mirrored group of `report` would lose, as
/// plan lines with a `count` (for the mass-change guard; [`apply_groups`] does the removing).
pub(crate) async fn membership_removals(
    s: &AppState,
    domain: &AdDomain,
    report: &ImportReport,
    in_scope: &[User],
) -> Result<Vec<Value>, ApiError> {
    if !domain.groups_enabled {
        return Ok(Vec::new());
    }
    let by_guid: HashMap<&str, &str> =
        in_scope.iter().filter_map(|u| u.ad_guid.as_deref().map(|g| (g, u.id.as_str()))).collect();
    let domain_users: HashSet<&str> = in_scope.iter().map(|u| u.id.as_str()).collect();
    let mut out = Vec::new();
    for og in &report.groups {
        let Some(group) = s.repo.group_by_ad_guid(&og.guid).await? else { continue };
        let want: HashSet<&str> = og.members.iter().filter_map(|m| by_guid.get(m.as_str()).copied()).collect();
        let n = s
            .repo
            .store()
            .targets(Edge::Member, &group.id)
            .await?
            .iter()
            .filter(|id| domain_users.contains(id.as_str()) && !want.contains(id.as_str()))
            .count();
        if n > 0 {
            out.push(json!({"category": "membershipRemovals", "object": group.name, "count": n,
                            "action": format!("remove {n} member(s)"), "reason": "no longer members of the AD group"}));
        }
    }
    Ok(out)
}

/// Mirrors the nested groups with their flattened membership.
pub(crate) async fn apply_groups(
    s: &AppState,
    domain: &AdDomain,
    report: &ImportReport,
    linked: &HashMap<String, String>,
    out: &mut ImportOutcome,
    actor: &Value,
) -> Result<(), ApiError> {
    if !domain.groups_enabled {
        return Ok(());
    }
    let store = s.repo.store();
    let mut seen = HashSet::new();
    // Only users that belong to this domain are removed from mirrored groups: Tether-only
    // members an admin added stay.
    let in_domain = s.repo.users_of_domain(&domain.id).await?;
    let domain_users: HashSet<String> = in_domain.iter().map(|u| u.id.clone()).collect();
    let usernames: HashMap<&str, &str> = in_domain.iter().map(|u| (u.id.as_str(), u.username.as_str())).collect();
    // Members are objectGUIDs. An incremental report carries only the users that changed, but
    // every group's full membership: the others are found among the domain's linked users.
    let mut ids: HashMap<String, String> = linked.clone();
    for u in &in_domain {
        if let Some(g) = &u.ad_guid {
            ids.entry(g.clone()).or_insert_with(|| u.id.clone());
        }
    }
    for og in &report.groups {
        seen.insert(og.guid.clone());
        let ad = json!({"id": og.guid, "dn": og.dn, "domain": domain.id});
        let mut who = actor.clone();
        who["adGuid"] = json!(og.guid);
        who["adGroup"] = json!(og.dn);
        let group = match s.repo.group_by_ad_guid(&og.guid).await? {
            Some(mut g) => {
                if g.name != og.name || g.attributes.get("activeDirectory") != Some(&ad) {
                    let before = g.clone();
                    g.name = og.name.clone();
                    g.attributes["activeDirectory"] = ad;
                    s.repo.save_group(&g).await?;
                    let changes = crate::history::diff_of(Some(&before), Some(&g));
                    crate::history::record_group(
                        s,
                        &g.id,
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
            None => {
                let g = Group {
                    id: new_id(),
                    name: og.name.clone(),
                    attributes: json!({"activeDirectory": ad}),
                    ..Group::default()
                };
                match s.repo.insert_group(&g).await {
                    Ok(()) => {
                        out.groups_created += 1;
                        let changes = crate::history::diff_of(None, Some(&g));
                        let why = Some("mirrored from AD (a group in the ADI scope)");
                        crate::history::record_group(s, &g.id, who.clone(), "create", changes, why).await?;
                    }
                    Err(StoreError::Conflict { .. }) => {
                        out.skipped.push(json!({"dn": og.dn, "reason": format!("a Tether group named `{}` already exists; not mirrored", og.name)}));
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
                g
            }
        };
        store.link(Edge::DomainGroup, &domain.id, &group.id).await?;
        let want: HashSet<&String> = og.members.iter().filter_map(|m| ids.get(m)).collect();
        let have: HashSet<String> = store.targets(Edge::Member, &group.id).await?.into_iter().collect();
        // Membership changes and their history entries (on the user and on the group), in
        // one batch.
        let mut ops = Vec::new();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for id in want.iter().filter(|id| !have.contains(**id)) {
            let changes = json!({"memberOf": [null, group.name]});
            let why = Some("member of the AD group (nested groups flattened)");
            ops.extend(
                crate::history::entry(s, id, who.clone(), "membership", changes, why)
                    .map(|h| WriteOp::Insert(Collection::History, h)),
            );
            ops.push(WriteOp::Link(Edge::Member, group.id.clone(), (*id).clone()));
            added.push((*id).clone());
        }
        for id in have.iter().filter(|id| !want.contains(id) && domain_users.contains(*id)) {
            let changes = json!({"memberOf": [group.name, null]});
            let why = Some("no longer a member of the AD group");
            ops.extend(
                crate::history::entry(s, id, who.clone(), "membership", changes, why)
                    .map(|h| WriteOp::Insert(Collection::History, h)),
            );
            ops.push(WriteOp::Unlink(Edge::Member, group.id.clone(), id.clone()));
            removed.push(id.clone());
        }
        if !added.is_empty() || !removed.is_empty() {
            // One entry for the group per cycle: who joined and who left (by username; the
            // domain's users were read after this cycle's users were written).
            let names = |ids: &[String]| -> Vec<String> {
                ids.iter().map(|id| usernames.get(id.as_str()).map_or_else(|| id.clone(), |n| n.to_string())).collect()
            };
            let changes = json!({"members": {"added": names(&added), "removed": names(&removed)}});
            let why = Some("membership of the AD group (nested groups flattened)");
            ops.extend(
                crate::history::entry_of(s, "group", &group.id, who.clone(), "membership", changes, why)
                    .map(|h| WriteOp::Insert(Collection::History, h)),
            );
        }
        if !ops.is_empty() {
            store.write_batch(&ops).await?;
        }
    }
    if report.complete {
        let stale: BTreeMap<String, Group> = s
            .repo
            .groups_of_domain(&domain.id)
            .await?
            .into_iter()
            .filter(|g| g.attributes["activeDirectory"]["id"].as_str().is_some_and(|id| !seen.contains(id)))
            .map(|g| (g.id.clone(), g))
            .collect();
        for (id, g) in &stale {
            store.delete(Collection::Groups, id).await?;
            let mut who = actor.clone();
            who["adGuid"] = g.attributes["activeDirectory"]["id"].clone();
            let why = Some("no longer in the ADI scope (complete read)");
            crate::history::record_group(s, id, who, "delete", crate::history::diff_of(Some(g), None), why).await?;
            out.groups_deleted += 1;
        }
    }
    Ok(())
}
