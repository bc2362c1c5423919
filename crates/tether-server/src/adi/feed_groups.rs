//! Group entries of the change feed: written small at the change, filled at delivery.
//!
//! A group entry tells the sync agent the group's whole membership, so applying any one of
//! them puts AD right whatever came before (the feed's rule: state, not diffs). Built at each
//! change, that made filling a group one member at a time quadratic: every addition read
//! every member and every membership of the domain's groups, and stored all of them again
//! (500 members at 10,000 users: 12 → 40 ms an addition, growing with the group). The entry
//! written at the change now holds only what the change knows and the state cannot tell
//! later: the users that left (`removed`) and the mass-change guard's counts. Its members,
//! name and AD link are read when the entry is delivered, once per group for a batch.
//!
//! Entries are never reordered. Of a run of adjacent entries of one group (a script adding
//! members one call at a time) only the last is delivered, carrying the others' `removed`
//! less the users who are members again: nothing lies between them, so the acknowledgement
//! that covers the left-out entries (acknowledgements are a cursor) is that of the last,
//! applied with their leavers. An entry with no leavers is also left out when the group has
//! a later entry in the batch with others between (new hires: each addition binds the user,
//! whose entry comes between the group's): the later one brings the same state, and an
//! acknowledgement of an entry between them covers nothing the later one does not redo.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{json, Value};
use tether_core::ad::AdDomain;
use tether_core::adi::guard::Category;
use tether_core::group::Group;
use tether_core::user::User;
use tether_store::{Collection, Edge};

use super::feed::{append, domains_of_group, notify, with_guard};
use crate::error::ApiError;
use crate::state::AppState;

/// A removed member as the entry keeps it: the user may be gone by delivery.
fn removed_member(u: &User, domain: &str) -> Value {
    json!({"userId": u.id, "username": u.username, "guid": u.link_in(domain).map(|l| l.guid)})
}

/// Feeds a change of a group (its name, its association, a member who joined or, in
/// `removed`, left) to every syncing domain it is associated with.
pub async fn group_changed(s: &AppState, g: &Group, removed: &[User]) -> Result<(), ApiError> {
    let domains = domains_of_group(s, &g.id).await?;
    for d in &domains {
        let ad = &g.attributes["activeDirectory"];
        let removed: Vec<Value> = removed.iter().map(|u| removed_member(u, d)).collect();
        let b = json!({"groupId": g.id, "name": g.name, "guid": ad["id"], "dn": ad["dn"], "removed": removed});
        let b = with_guard(b, &[(Category::MembershipRemovals, removed.len())]);
        append(s, d, "group", &g.id, &b, None).await?;
    }
    if !domains.is_empty() {
        notify(s).await;
    }
    Ok(())
}

/// The names of the groups associated with `domain` that each user belongs to, in the order
/// the groups were associated: read per group, not per member (a group may hold thousands),
/// once for a batch.
async fn domain_groups(s: &AppState, domain: &str) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let store = s.repo.store();
    let mut groups_of: HashMap<String, Vec<String>> = HashMap::new();
    for gid in store.targets(Edge::DomainGroup, domain).await? {
        let Some(other) = s.repo.get::<Group>(Collection::Groups, &gid).await? else { continue };
        for member in store.targets(Edge::Member, &gid).await? {
            groups_of.entry(member).or_default().push(other.name.clone());
        }
    }
    Ok(groups_of)
}

/// The members of group `g` now, each with the names of all of the domain's groups it
/// belongs to (`groups_of`, so the agent can decide `minimal` membership without depending
/// on the order entries arrive in), its users read a few fields each, in batches.
async fn members_now(
    s: &AppState,
    g: &str,
    domain: &str,
    groups_of: &HashMap<String, Vec<String>>,
) -> Result<Vec<Value>, ApiError> {
    let store = s.repo.store();
    let ids = store.targets(Edge::Member, g).await?;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut members = Vec::with_capacity(ids.len());
    for u in s.repo.member_links(domain, &ids).await? {
        let groups = groups_of.get(&u.id).map_or(&[][..], Vec::as_slice);
        members.push(json!({"userId": u.id, "username": u.username, "guid": u.guid, "groups": groups}));
    }
    Ok(members)
}

/// The entries of a batch about to be delivered to `domain`'s sync agent, in the order
/// written, each group entry filled with the group's state now; of a run of adjacent entries
/// of one group, only the last, carrying the others' `removed`, and of a group's entries with
/// no leavers, none but its last in the batch. Other entries pass as they are.
pub async fn for_delivery(
    s: &AppState,
    domain: &AdDomain,
    entries: Vec<tether_store::FeedEntry>,
) -> Result<Vec<tether_store::FeedEntry>, ApiError> {
    fn group_of(e: &tether_store::FeedEntry) -> Option<&str> {
        (e.kind == "group").then_some(e.object_id.as_str())
    }
    // Whether the next entry is of the same group: only then is an entry with leavers left
    // out. An entry between them could be acknowledged before the group's next entry is
    // applied, and the acknowledgement would cover a left-out entry whose leavers were not
    // removed yet.
    let followed: Vec<bool> = entries
        .windows(2)
        .map(|w| group_of(&w[0]).is_some_and(|g| group_of(&w[1]) == Some(g)))
        .chain([false])
        .collect();
    // Whether an entry of the same group comes later in the batch.
    let mut seen = HashSet::new();
    let mut later: Vec<bool> = entries.iter().rev().map(|e| group_of(e).is_some_and(|g| !seen.insert(g))).collect();
    later.reverse();
    // The members of each group and the domain's groups, read once for the batch.
    let mut now: HashMap<String, Option<(Group, Vec<Value>)>> = HashMap::new();
    let mut groups_of = None;
    let mut carried: Vec<Value> = Vec::new();
    let mut out = Vec::with_capacity(entries.len());
    for ((mut e, followed), later) in entries.into_iter().zip(followed).zip(later) {
        if e.kind != "group" {
            out.push(e);
            continue;
        }
        carried.extend(e.body["removed"].as_array().into_iter().flatten().cloned());
        // Nobody left: the later entry delivers all this one would, and an acknowledgement
        // between them loses nothing (the later one stays queued).
        if followed || later && carried.is_empty() {
            continue;
        }
        if !now.contains_key(&e.object_id) {
            let state = match s.repo.get::<Group>(Collection::Groups, &e.object_id).await? {
                Some(g) => {
                    let groups_of = match &mut groups_of {
                        Some(read) => &*read,
                        unread => &*unread.insert(domain_groups(s, &domain.id).await?),
                    };
                    let members = members_now(s, &g.id, &domain.id, groups_of).await?;
                    Some((g, members))
                }
                None => None,
            };
            now.insert(e.object_id.clone(), state);
        }
        fill(domain, &mut e.body, now[&e.object_id].as_ref(), std::mem::take(&mut carried));
        out.push(e);
    }
    Ok(out)
}

/// Fills a group entry's body with the group's state now: its name and AD link (the ones the
/// entry was written with if the group is gone), its members, the users who left and are not
/// members again (each once), and the domain's use case.
fn fill(domain: &AdDomain, body: &mut Value, now: Option<&(Group, Vec<Value>)>, gone: Vec<Value>) {
    let members = match now {
        Some((g, members)) => {
            let ad = &g.attributes["activeDirectory"];
            body["name"] = json!(g.name);
            body["guid"] = ad["id"].clone();
            body["dn"] = ad["dn"].clone();
            members.clone()
        }
        None => Vec::new(),
    };
    let now: HashSet<&str> = members.iter().filter_map(|m| m["userId"].as_str()).collect();
    let mut seen = BTreeSet::new();
    let mut left = Vec::new();
    // The latest record of each user first: it has the freshest AD link.
    for r in gone.into_iter().rev() {
        let Some(id) = r["userId"].as_str() else { continue };
        if !now.contains(id) && seen.insert(id.to_string()) {
            left.push(r);
        }
    }
    left.reverse();
    body["removed"] = Value::Array(left);
    body["members"] = Value::Array(members);
    body["useCase"] = json!(domain.use_case);
}
