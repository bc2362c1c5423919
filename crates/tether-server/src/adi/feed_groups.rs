//! Group entries of the change feed: written small at the change, filled at delivery.
//!
//! A whole group entry tells the sync agent the group's whole membership, so applying any
//! one of them puts AD right whatever came before (the feed's rule: state, not diffs). Built
//! at each change, that made filling a group one member at a time quadratic: every addition
//! read every member and every membership of the domain's groups, and stored all of them
//! again (500 members at 10,000 users: 12 → 40 ms an addition, growing with the group). The
//! entry written at the change now holds only what the change knows and the state cannot
//! tell later: the users that left (`removed`), who joined (`joined`, for a membership
//! change) and the mass-change guard's counts. Its members, name and AD link are read when
//! the entry is delivered, once per group for a batch.
//!
//! Delivered whole, an entry still cost the group's size at every change (a group of 5,000:
//! ~190 ms a change, growing linearly). A group AD already holds as Tether last sent it (see
//! [`changes_only`] for when that is known) gets its membership changes as the changes alone
//! (`delta`): who joined and who left, as the state is at delivery. Applied twice, that
//! changes nothing (the agent checks each user's `memberOf`), so at-least-once delivery
//! stays safe. It goes whole again every [`WHOLE_EVERY`], which puts right what an admin
//! changed in AD by hand, after an error on it, and at once when the agent cannot apply a
//! change alone as such ([`resend_whole`]).
//!
//! Entries are never reordered. Of a run of adjacent entries of one group (a script adding
//! members one call at a time) only the last is delivered, carrying the others' `removed`
//! (and `joined`) less the users who are members again (not members now): nothing lies
//! between them, so the acknowledgement that covers the left-out entries (acknowledgements
//! are a cursor) is that of the last, applied with their changes. A whole entry with no
//! leavers is also left out when the group has a later entry in the batch with others
//! between (new hires: each addition binds the user, whose entry comes between the group's):
//! the later one brings the same state, and an acknowledgement of an entry between them
//! covers nothing the later one does not redo. An entry of the changes alone is never left
//! out so: the later one does not redo it.

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

/// A group entry's body as written: the group's name and AD link then, the users who left
/// (filled again at delivery, [`for_delivery`]).
fn written(g: &Group, removed: Vec<Value>) -> Value {
    let ad = &g.attributes["activeDirectory"];
    json!({"groupId": g.id, "name": g.name, "guid": ad["id"], "dn": ad["dn"], "removed": removed})
}

/// A removed member as the entry keeps it: the user may be gone by delivery.
fn removed_member(u: &User, domain: &str) -> Value {
    json!({"userId": u.id, "username": u.username, "guid": u.link_in(domain).map(|l| l.guid)})
}

/// What a change did to a group's members, as its entry records it.
#[derive(Clone, Copy)]
pub enum Membership<'a> {
    /// Anything else (the group associated with a domain, renamed): its entry goes whole.
    Other,
    /// A user joined.
    Joined(&'a str),
    /// Users left (the removed user's document, when it still exists).
    Left(&'a [User]),
}

/// Feeds a change of a group (its name, its association, a member who joined or left) to
/// every syncing domain it is associated with. An entry of a membership change names who
/// joined (`joined`) as well as who left, so that it can go as the change alone
/// ([`for_delivery`]); any other entry goes whole.
pub async fn group_changed(s: &AppState, g: &Group, change: Membership<'_>) -> Result<(), ApiError> {
    let domains = domains_of_group(s, &g.id).await?;
    let (joined, removed): (Option<&str>, &[User]) = match change {
        Membership::Other => (None, &[]),
        Membership::Joined(id) => (Some(id), &[]),
        Membership::Left(users) => (None, users),
    };
    for d in &domains {
        let removed: Vec<Value> = removed.iter().map(|u| removed_member(u, d)).collect();
        let leavers = removed.len();
        let mut b = written(g, removed);
        if !matches!(change, Membership::Other) {
            b["joined"] = json!(joined.into_iter().collect::<Vec<_>>());
        }
        let b = with_guard(b, &[(Category::MembershipRemovals, leavers)]);
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

/// How long a domain's sync agent may be sent a group's membership changes alone after it
/// was last sent the group whole: a whole entry puts right what an admin changed in AD
/// behind Tether's back (a member taken out by hand is put back).
pub const WHOLE_EVERY: time::Duration = time::Duration::minutes(10);

/// Where the last whole entry of a group delivered to a domain is kept, as its `seq` (shared
/// by every tetherd on the database, expiring after [`WHOLE_EVERY`]). It counts once it is
/// acknowledged: until then AD may not hold what it sent, nor what the entries it stood for
/// (left out before it) brought.
fn whole_key(domain: &str, group: &str) -> String {
    format!("feed.group-whole.{domain}.{group}")
}

/// The group must go whole to the domain at its next delivery: the agent reported an error
/// on it (the change alone may have left AD short of a member).
pub async fn forget_whole(s: &AppState, domain: &str, group: &str) -> Result<(), ApiError> {
    Ok(s.repo.store().delete_shared(&whole_key(domain, group)).await?)
}

/// Queues the group whole for the domain at once: its change alone could not be applied as
/// such (the agent asked, `SyncStatus::resend_whole`).
pub async fn resend_whole(s: &AppState, domain: &str, g: &Group) -> Result<(), ApiError> {
    forget_whole(s, domain, &g.id).await?;
    append(s, domain, "group", &g.id, &written(g, Vec::new()), None).await?;
    notify(s).await;
    Ok(())
}

/// A batch's entries of one group sent as the changes alone: who joined (each as a member
/// of a whole entry is) and who left, of the people they name.
struct Changes {
    group: Group,
    /// Each joiner who is still a member, as a member of a whole entry.
    joined: HashMap<String, Value>,
    /// Whether each person named is a member now.
    member: HashMap<String, bool>,
    /// The names of the domain's groups each person named is in now, in the order they were
    /// associated (for a leaver: under `minimal`, the groups above this one it belongs in
    /// directly now).
    groups: HashMap<String, Vec<String>>,
}

/// The batch's entries of group `id` (their bodies) as changes alone, when that is safe:
/// every one written by a membership change (it names who joined); the group sent whole to
/// this domain within [`WHOLE_EVERY`] and that entry acknowledged (its `seq` before the
/// batch's `first`: the batch starts just after the agent's cursor), with no error reported
/// on the group since (an error forgets the whole entry, [`forget_whole`]; nor is one shown
/// on it now); and every joiner who is still a member linked to its account in the domain
/// (a user whose account the batch is still to create, a new hire, sends the group whole,
/// as before). Otherwise `None`: the entries go whole.
async fn changes_only(
    s: &AppState,
    domain: &str,
    (id, first): (&str, i64),
    bodies: &[&Value],
    names: &mut HashMap<String, Option<String>>,
) -> Result<Option<Changes>, ApiError> {
    if bodies.iter().any(|b| !b["joined"].is_array()) {
        return Ok(None);
    }
    let Some(group) = s.repo.get::<Group>(Collection::Groups, id).await? else { return Ok(None) };
    if group.ad_sync_error.is_some() || !group.attributes["activeDirectory"]["id"].is_string() {
        return Ok(None);
    }
    let store = s.repo.store();
    let whole = store.shared(&whole_key(domain, id), s.now().unix_timestamp()).await?;
    let acknowledged = whole.and_then(|w| w["seq"].as_i64()).is_some_and(|seq| seq < first);
    if !acknowledged {
        return Ok(None);
    }
    let mut people: Vec<&str> = Vec::new();
    for b in bodies {
        let joined = b["joined"].as_array().into_iter().flatten().filter_map(Value::as_str);
        let left = b["removed"].as_array().into_iter().flatten().filter_map(|r| r["userId"].as_str());
        people.extend(joined.chain(left));
    }
    people.sort_unstable();
    people.dedup();
    // Each person's groups now: whether it is a member, and for a joiner the domain's
    // groups it is in (what `minimal` membership decides by), in the order associated.
    let in_domain = store.targets(Edge::DomainGroup, domain).await?;
    let mut member = HashMap::new();
    let mut groups_of = HashMap::new();
    for p in &people {
        let groups: HashSet<String> = store.sources(Edge::Member, p).await?.into_iter().collect();
        member.insert(p.to_string(), groups.contains(id));
        groups_of.insert(p.to_string(), groups);
    }
    let joiners: Vec<&str> = bodies
        .iter()
        .flat_map(|b| b["joined"].as_array().into_iter().flatten().filter_map(Value::as_str))
        .filter(|p| member.get(*p) == Some(&true))
        .collect();
    let mut groups = HashMap::new();
    for (p, of) in &groups_of {
        let mut named = Vec::new();
        for g in in_domain.iter().filter(|g| of.contains(*g)) {
            if !names.contains_key(g) {
                let name = s.repo.get::<Group>(Collection::Groups, g).await?.map(|g| g.name);
                names.insert(g.clone(), name);
            }
            named.extend(names[g].clone());
        }
        groups.insert(p.clone(), named);
    }
    let mut joined = HashMap::new();
    for u in s.repo.member_links(domain, &joiners).await? {
        if u.guid.is_none() {
            return Ok(None);
        }
        let m = json!({"userId": u.id, "username": u.username, "guid": u.guid, "groups": groups[&u.id]});
        joined.insert(u.id, m);
    }
    Ok(Some(Changes { group, joined, member, groups }))
}

/// The entries of a batch about to be delivered to `domain`'s sync agent, in the order
/// written. A group's entries go whole, each filled with the group's state now: of a run of
/// adjacent entries of one group only the last, carrying the others' `removed`, and of its
/// entries with no leavers none but its last in the batch. Or, when [`changes_only`] finds
/// it safe, as the changes alone (`delta`): only who joined and who left, so that a change
/// costs what it changed and not the group's size; of a run of adjacent entries only the
/// last, carrying the others' joiners and leavers, and every other entry in its place (an
/// acknowledgement between two of them must not cover a change the later one does not
/// redo). Other entries pass as they are.
pub async fn for_delivery(
    s: &AppState,
    domain: &AdDomain,
    entries: Vec<tether_store::FeedEntry>,
    deltas: bool,
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
    // Each group's entries as changes alone, where safe.
    let mut bodies: HashMap<&str, Vec<&Value>> = HashMap::new();
    for e in &entries {
        if let Some(g) = group_of(e) {
            bodies.entry(g).or_default().push(&e.body);
        }
    }
    let first = entries.first().map_or(0, |e| e.seq);
    let mut changes = HashMap::new();
    let mut names = HashMap::new();
    // (An older agent, which does not say it applies them, gets every group whole.)
    for (g, b) in bodies.into_iter().filter(|_| deltas) {
        if let Some(c) = changes_only(s, &domain.id, (g, first), &b, &mut names).await? {
            changes.insert(g.to_string(), c);
        }
    }
    // The members of each group sent whole and the domain's groups, read once for the batch.
    let mut now: HashMap<String, Option<(Group, Vec<Value>)>> = HashMap::new();
    let mut groups_of = None;
    let mut whole = HashMap::new();
    let (mut carried, mut joined): (Vec<Value>, Vec<String>) = (Vec::new(), Vec::new());
    let mut out = Vec::with_capacity(entries.len());
    for ((mut e, followed), later) in entries.into_iter().zip(followed).zip(later) {
        if e.kind != "group" {
            out.push(e);
            continue;
        }
        carried.extend(e.body["removed"].as_array().into_iter().flatten().cloned());
        let ids = e.body["joined"].as_array().into_iter().flatten().filter_map(Value::as_str);
        joined.extend(ids.map(str::to_string));
        let alone = changes.get(&e.object_id);
        if followed {
            continue;
        }
        // Sent whole and nobody left: the later entry delivers all this one would, and an
        // acknowledgement between them loses nothing (the later one stays queued).
        if alone.is_none() && later && carried.is_empty() {
            joined.clear();
            continue;
        }
        let (gone, came) = (std::mem::take(&mut carried), std::mem::take(&mut joined));
        if let Some(c) = alone {
            fill_changes(domain, &mut e.body, c, &came, gone);
            out.push(e);
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
        if now[&e.object_id].is_some() {
            whole.insert(e.object_id.clone(), e.seq);
        }
        // The leavers' groups in the domain (under `minimal`, a leaver still in a group
        // above this one belongs in it directly now).
        let groups_of = match (&mut groups_of, gone.is_empty()) {
            (_, true) => None,
            (Some(read), false) => Some(&*read),
            (unread, false) => Some(&*unread.insert(domain_groups(s, &domain.id).await?)),
        };
        fill(domain, &mut e.body, now[&e.object_id].as_ref(), gone, groups_of);
        out.push(e);
    }
    // Each group's last whole entry: the changes alone follow it once it is acknowledged.
    let expires = (s.now() + WHOLE_EVERY).unix_timestamp();
    for (g, seq) in whole {
        s.repo.store().put_shared(&whole_key(&domain.id, &g), &json!({"seq": seq}), expires).await?;
    }
    Ok(out)
}

/// The users who left and are not members again, each once, the latest record of each (it
/// has the freshest AD link), in the order they left.
fn leavers(gone: Vec<Value>, is_member: impl Fn(&str) -> bool) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    let mut left = Vec::new();
    for r in gone.into_iter().rev() {
        let Some(id) = r["userId"].as_str() else { continue };
        if !is_member(id) && seen.insert(id.to_string()) {
            left.push(r);
        }
    }
    left.reverse();
    left
}

/// Leavers, each with the names of the domain's groups it is still in (none if unknown).
fn with_groups<'a>(left: Vec<Value>, groups: impl Fn(&str) -> Option<&'a Vec<String>>) -> Value {
    let with = |mut r: Value| {
        let of = r["userId"].as_str().and_then(&groups);
        r["groups"] = json!(of.cloned().unwrap_or_default());
        r
    };
    Value::Array(left.into_iter().map(with).collect())
}

/// Fills a group entry's body with the group's state now: its name and AD link (the ones the
/// entry was written with if the group is gone), its members, the users who left and are not
/// members again (each once, with the domain's groups it is in now, `groups_of`), and the
/// domain's use case.
fn fill(
    domain: &AdDomain,
    body: &mut Value,
    now: Option<&(Group, Vec<Value>)>,
    gone: Vec<Value>,
    groups_of: Option<&HashMap<String, Vec<String>>>,
) {
    let members = match now {
        Some((g, members)) => {
            set_group(body, g);
            members.clone()
        }
        None => Vec::new(),
    };
    let now: HashSet<&str> = members.iter().filter_map(|m| m["userId"].as_str()).collect();
    let left = leavers(gone, |id| now.contains(id));
    body["removed"] = with_groups(left, |id| groups_of?.get(id));
    body["members"] = Value::Array(members);
    body["useCase"] = json!(domain.use_case);
    if let Some(b) = body.as_object_mut() {
        b.remove("joined");
    }
}

/// Fills a group entry's body with the changes alone: the group's name and AD link now, who
/// joined (`came`) and is still a member, who left and is not a member again, each once, each
/// with the domain's groups it is in now.
fn fill_changes(domain: &AdDomain, body: &mut Value, c: &Changes, came: &[String], gone: Vec<Value>) {
    set_group(body, &c.group);
    let mut seen = HashSet::new();
    let members: Vec<Value> =
        came.iter().filter(|id| seen.insert(id.as_str())).filter_map(|id| c.joined.get(id).cloned()).collect();
    let left = leavers(gone, |id| c.member.get(id) == Some(&true));
    body["removed"] = with_groups(left, |id| c.groups.get(id));
    body["members"] = Value::Array(members);
    body["delta"] = json!(true);
    body["useCase"] = json!(domain.use_case);
    if let Some(b) = body.as_object_mut() {
        b.remove("joined");
    }
}

fn set_group(body: &mut Value, g: &Group) {
    let ad = &g.attributes["activeDirectory"];
    body["name"] = json!(g.name);
    body["guid"] = ad["id"].clone();
    body["dn"] = ad["dn"].clone();
}
