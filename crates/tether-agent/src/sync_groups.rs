//! Group entries of the change feed: Tether user groups associated with the domain exist in
//! AD as global security groups nested under `sync_group`; renames follow; membership
//! follows `group_membership_sync_type`:
//! - `match`: every member is a direct member of every AD group it is in within Tether;
//! - `minimal`: a member is put only in the deepest groups (AD's nesting gives it the
//!   parents), so it is not a direct member of a group when it is in one of that group's
//!   nested groups too.
//!
//! `sync_group` itself is never created, modified or deleted. When the configured sync group
//! was moved under one of its former children (the config now names a group that is nested
//! in the previous one), membership is synced as `match` and nothing is removed from the
//! former parent, as the seeds describe.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde_json::Value;
use tether_ad::ldap3::{dn_escape, ldap_escape, Scope, SearchEntry};
use tether_ad::read::{guid_hex, text};
use tether_ad::{AdError, Ldap};
use tether_core::ad::UseCase;
use tether_core::adi::{GroupDisconnectionAction, GroupMembershipSyncType};
use tether_core::wire::{GroupBody, GroupMember};

use crate::config::SyncConfig;
use crate::sync_tree::{Managed, Tree};
use crate::AgentError;

/// The outcome of a group entry, reported to tetherd.
pub struct GroupOutcome {
    pub guid: Option<String>,
    pub dn: Option<String>,
    pub error: Option<String>,
    /// The change alone could not be applied as such: tetherd is to send the group whole.
    pub resend_whole: bool,
}

/// What a group entry needs of the AD group it writes. Not `member`: its members are read
/// once, with their objectGUIDs (`members_with_guids`); asked here as well, a group of 5,000
/// sent them all twice.
const GROUP_ATTRS: [&str; 4] = ["objectGUID", "objectSid", "sAMAccountName", "cn"];

/// The first 12 bytes of every builtin SID (S-1-5-32-…): their RIDs are not the domain's.
const BUILTIN_PREFIX: [u8; 12] = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0];

/// Whether a group is one the sync agent never writes, by its SID: Domain Admins (RID 512),
/// Schema Admins (518), Enterprise Admins (519), or the builtin Administrators
/// (S-1-5-32-544). Renamed or localised, they are found all the same.
fn is_privileged(e: &SearchEntry) -> bool {
    let Some(sid) = tether_ad::read::binary(e, "objectSid") else { return false };
    sid[..] == tether_ad::read::BUILTIN_ADMINISTRATORS[..]
        || matches!(tether_ad::read::rid_of(&sid), Some(512 | 518 | 519)) && !sid.starts_with(&BUILTIN_PREFIX)
}

/// An AD group of a Tether group, and whether it was found by its link (objectGUID) rather
/// than by name.
struct Found {
    entry: SearchEntry,
    linked: bool,
}

async fn one(ldap: &mut Ldap, base: &str, scope: Scope, filter: &str) -> Result<Option<SearchEntry>, AdError> {
    let (e, _) = ldap.search(base, scope, filter, GROUP_ATTRS.to_vec()).await?.success()?;
    Ok(e.into_iter().next().map(SearchEntry::construct))
}

async fn find_group(ldap: &mut Ldap, nc: &str, guid: Option<&str>, name: &str) -> Result<Option<Found>, AdError> {
    if let Some(g) = guid.filter(|g| tether_core::adi::is_guid_hex(g)) {
        let f = format!("(&(objectGUID={})(objectClass=group))", tether_ad::read::guid_filter_value(g));
        if let Some(entry) = one(ldap, nc, Scope::Subtree, &f).await? {
            return Ok(Some(Found { entry, linked: true }));
        }
    }
    let f = format!("(&(sAMAccountName={})(objectClass=group))", ldap_escape(name));
    Ok(one(ldap, nc, Scope::Subtree, &f).await?.map(|entry| Found { entry, linked: false }))
}

/// Why the sync agent may not write the AD group it found for a Tether group, if it may not:
/// the sync_group itself, a privileged group, or a group found only by name outside the
/// sync_group's tree (an AD group the agent neither created nor was linked to).
async fn off_limits(
    cfg: &SyncConfig,
    ldap: &mut Ldap,
    managed: &mut Managed,
    found: &Found,
) -> Result<Option<&'static str>, AdError> {
    let g = &found.entry;
    if is_sync_group(cfg, &g.dn) {
        return Ok(Some("this group is the sync_group in AD: the sync agent never modifies it"));
    }
    if is_privileged(g) {
        return Ok(Some(
            "the AD group of this name is privileged (Domain Admins, Schema Admins, Enterprise Admins or \
             Administrators): the sync agent never modifies it",
        ));
    }
    if !found.linked && !managed.has(ldap, &cfg.sync_group, &g.dn).await? {
        return Ok(Some(
            "an AD group of this name exists outside sync_group and is not linked to this group: not taken over",
        ));
    }
    Ok(None)
}

/// The AD user of a group member, as its DN and the groups it is directly in (its
/// `memberOf`, lowercased).
async fn find_user(ldap: &mut Ldap, nc: &str, m: &GroupMember) -> Result<Option<(String, HashSet<String>)>, AdError> {
    let found = crate::ad_users::find_user(ldap, nc, m.guid.as_deref(), &m.username).await?;
    Ok(found.map(|e| {
        let of = e.attrs.get("memberOf").into_iter().flatten().map(|g| g.to_lowercase()).collect();
        (e.dn, of)
    }))
}

/// How a group entry knows whether a user is a direct member of a group.
enum Direct {
    /// A whole entry: the direct members of the group and of the managed groups above it
    /// (lowercased DNs), read once, and the group's members' DNs by objectGUID.
    Read { of: HashMap<String, HashSet<String>>, dn_of: HashMap<String, String> },
    /// An entry of the change alone: each user's own `memberOf`, read with it.
    Lookup,
}

impl Direct {
    /// The AD user of a member, as its DN and, when it was searched for, the groups it is
    /// directly in (a member already in a whole entry's group costs no search).
    async fn user(
        &self,
        ldap: &mut Ldap,
        nc: &str,
        m: &GroupMember,
    ) -> Result<Option<(String, HashSet<String>)>, AdError> {
        if let Direct::Read { dn_of, .. } = self {
            if let Some(dn) = m.guid.as_deref().and_then(|g| dn_of.get(&g.to_lowercase())) {
                return Ok(Some((dn.clone(), HashSet::new())));
            }
        }
        find_user(ldap, nc, m).await
    }

    /// Whether the user `udn` (directly in `member_of`) is a direct member of `group`.
    fn is_in(&self, group: &str, udn: &str, member_of: &HashSet<String>) -> bool {
        let group = group.to_lowercase();
        match self {
            Direct::Read { of, .. } if of.contains_key(&group) => of[&group].contains(&udn.to_lowercase()),
            _ => member_of.contains(&group),
        }
    }
}

/// Whether `sync_group` was moved under one of its former children: remembered in
/// `StateDir/sync.json` as the previous sync group, of which the configured one is now a
/// nested member.
pub async fn moved_under_former_child(ldap: &mut Ldap, cfg: &SyncConfig, state_dir: &Path) -> Result<bool, AgentError> {
    let path = state_dir.join("sync.json");
    let saved: Value =
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let former = saved["formerParent"].as_str().map(str::to_string);
    let previous = saved["syncGroup"].as_str().unwrap_or(&cfg.sync_group).to_string();
    let mut moved = former.is_some();
    let mut former_parent = former;
    if !previous.eq_ignore_ascii_case(&cfg.sync_group) && Tree::read(ldap, &previous).await?.contains(&cfg.sync_group) {
        moved = true;
        former_parent = Some(previous);
    }
    let state = serde_json::json!({"syncGroup": cfg.sync_group, "formerParent": former_parent});
    crate::session::write_state(&path, state.to_string().as_bytes())?;
    Ok(moved)
}

fn mode(cfg: &SyncConfig, body: &GroupBody, forced_match: bool) -> GroupMembershipSyncType {
    if forced_match {
        return GroupMembershipSyncType::Match;
    }
    let use_case: UseCase = body.use_case.unwrap_or_default();
    cfg.group_membership_sync_type.unwrap_or(GroupMembershipSyncType::default_for(use_case))
}

fn is_sync_group(cfg: &SyncConfig, dn: &str) -> bool {
    dn.eq_ignore_ascii_case(&cfg.sync_group)
}

/// Applies a `group` entry. AD refusing a write (rights, a constraint) is an outcome shown on
/// the group, and the entry is acknowledged: retrying it would refuse again and hold up
/// every later change of the domain. Only a lost connection is an error (retried).
pub async fn apply_group(
    cfg: &SyncConfig,
    ldap: &mut Ldap,
    nc: &str,
    managed: &mut Managed,
    body: &GroupBody,
    forced_match: bool,
) -> Result<GroupOutcome, AgentError> {
    match write_group(cfg, ldap, nc, managed, body, forced_match).await {
        Ok(o) => Ok(o),
        Err(e @ AdError::Refused { .. }) => {
            tracing::warn!(group = %body.name, error = %e, "AD refused a group write");
            Ok(GroupOutcome { guid: None, dn: None, error: Some(format!("AD refused: {e}")), resend_whole: false })
        }
        Err(e) => Err(e.into()),
    }
}

/// One membership write; AD's refusal of it is noted in `refused` and the other members
/// are still written.
async fn set_member_noting(
    ldap: &mut Ldap,
    group: &str,
    member: &str,
    add: bool,
    refused: &mut Vec<String>,
) -> Result<(), AdError> {
    match tether_ad::set_member(ldap, group, member, add).await {
        Err(AdError::Refused { message, .. }) => {
            let verb = if add { "adding" } else { "removing" };
            tracing::warn!(%group, %member, reason = %message, "AD refused a membership change");
            refused.push(format!("{verb} {member}: {message}"));
            Ok(())
        }
        r => r,
    }
}

async fn write_group(
    cfg: &SyncConfig,
    ldap: &mut Ldap,
    nc: &str,
    managed: &mut Managed,
    body: &GroupBody,
    forced_match: bool,
) -> Result<GroupOutcome, AdError> {
    let name = body.name.as_str();
    let refuse = |dn: Option<String>, why: &str| GroupOutcome {
        guid: None,
        dn,
        error: Some(why.to_string()),
        resend_whole: false,
    };
    let found = find_group(ldap, nc, body.guid.as_deref(), name).await?;
    if body.delta && !found.as_ref().is_some_and(|f| f.linked) {
        // Deleted, or replaced, in AD since: created or taken over with the joiners alone, it
        // would lack the group's other members. Nothing is written; the group comes whole.
        let why = "the AD group linked to this group was not found: the group is sent whole again";
        return Ok(GroupOutcome { resend_whole: true, ..refuse(found.map(|f| f.entry.dn), why) });
    }
    let group = match found {
        Some(found) => {
            if let Some(why) = off_limits(cfg, ldap, managed, &found).await? {
                tracing::error!(group = %found.entry.dn, reason = why, "a Tether group maps to an AD group the agent may not modify");
                return Ok(refuse(Some(found.entry.dn), why));
            }
            found.entry
        }
        None => {
            let dn = match tether_ad::create_group(ldap, &cfg.user_root_dn, name).await {
                Ok(dn) => dn,
                Err(e @ AdError::Refused { .. }) => return Ok(refuse(None, &format!("AD refused: {e}"))),
                Err(e) => return Err(e),
            };
            managed.forget();
            tether_ad::set_member(ldap, &cfg.sync_group, &dn, true).await?;
            one(ldap, &dn, Scope::Base, "(objectClass=group)").await?.ok_or_else(|| AdError::Refused {
                dn: dn.clone(),
                rc: 32,
                message: "created group not found".into(),
            })?
        }
    };
    let mut dn = group.dn.clone();
    // Renames follow.
    if text(&group, "cn").as_deref() != Some(name) {
        let rdn = format!("CN={}", dn_escape(name));
        managed.forget();
        let r = ldap.modifydn(&dn, &rdn, true, None).await.map_err(AdError::from)?;
        if r.rc != 0 {
            return Ok(refuse(Some(dn), &format!("AD refused the rename: {}", r.text)));
        }
        let parent = tether_core::ldap::parent_dn(&dn).to_string();
        dn = format!("{rdn},{parent}");
        tether_ad::replace_attrs(ldap, &dn, &[("sAMAccountName", name)]).await?;
        // As AD spells it (escapes), which the tree of managed groups is compared with.
        if let Some(e) = one(ldap, &dn, Scope::Base, "(objectClass=group)").await? {
            dn = e.dn;
        }
    }
    // Nested under the sync group.
    if !managed.has(ldap, &cfg.sync_group, &dn).await? {
        managed.forget();
        tether_ad::set_member(ldap, &cfg.sync_group, &dn, true).await?;
    }
    // Membership. A whole entry's members are checked against the group's direct members,
    // read once with their objectGUIDs, so a member already in place costs no search (a group
    // may hold thousands). An entry of the change alone (`delta`) names only who joined and
    // who left: each is looked up with the groups it is directly in (`memberOf`), and the
    // group's own members are not read, so the change costs what it changed.
    let minimal = mode(cfg, body, forced_match) == GroupMembershipSyncType::Minimal;
    let (below, above, deepest) = if minimal {
        let tree = managed.get(ldap, &cfg.sync_group).await?;
        let below: HashSet<String> = tree.below(&dn).into_iter().map(|(_, n)| n).collect();
        let above = tree.ancestors(&dn);
        // Each group above, by name, with the names of the groups below it: a leaver of this
        // one who is still in it belongs in it directly unless in one of those.
        let deepest: Vec<(String, String, HashSet<String>)> = above
            .iter()
            .map(|a| {
                let name = tree.name_of(a).unwrap_or_default().to_string();
                (a.clone(), name, tree.below(a).into_iter().map(|(_, n)| n).collect())
            })
            .collect();
        (below, above, deepest)
    } else {
        (HashSet::new(), Vec::new(), Vec::new())
    };
    let direct = if body.delta {
        Direct::Lookup
    } else {
        let members = tether_ad::read::members_with_guids(ldap, &dn, None).await?;
        let mut of = HashMap::from([(dn.to_lowercase(), members.iter().map(|(_, m)| m.to_lowercase()).collect())]);
        let dn_of = members.into_iter().filter_map(|(g, m)| g.map(|g| (g, m))).collect();
        // A direct membership in a managed group that contains this one is redundant under
        // `minimal`: those groups' direct members, read once.
        for a in &above {
            let members = tether_ad::read::members_with_guids(ldap, a, None).await?;
            of.insert(a.to_lowercase(), members.into_iter().map(|(_, m)| m.to_lowercase()).collect());
        }
        Direct::Read { of, dn_of }
    };
    let mut refused = Vec::new();
    // Joiners of an entry of the change alone whose account is gone from AD.
    let mut missing = Vec::new();
    for m in body.members.iter().flatten() {
        let Some((udn, member_of)) = direct.user(ldap, nc, m).await? else {
            if body.delta {
                missing.push(m.username.clone());
            }
            continue;
        };
        let is_in = |group: &str| direct.is_in(group, &udn, &member_of);
        let in_nested = m.groups.iter().flatten().any(|g| below.contains(&g.to_lowercase()));
        if minimal && in_nested {
            if is_in(&dn) {
                set_member_noting(ldap, &dn, &udn, false, &mut refused).await?;
            }
        } else {
            if !is_in(&dn) {
                set_member_noting(ldap, &dn, &udn, true, &mut refused).await?;
            }
            // Order-independent: a direct membership in a group that contains this one is
            // redundant under `minimal`.
            for a in above.iter().filter(|a| is_in(a)) {
                set_member_noting(ldap, a, &udn, false, &mut refused).await?;
            }
        }
    }
    for m in body.removed.iter().flatten() {
        let Some((udn, member_of)) = find_user(ldap, nc, m).await? else { continue };
        if direct.is_in(&dn, &udn, &member_of) {
            set_member_noting(ldap, &dn, &udn, false, &mut refused).await?;
        }
        // Under `minimal`, a leaver still in a group above this one no longer gets it through
        // AD's nesting: it becomes a direct member of the deepest such groups (a leaver comes
        // with the groups it is still in; from an older tetherd, without them, nothing).
        let groups: HashSet<String> = m.groups.iter().flatten().map(|g| g.to_lowercase()).collect();
        for (a, name, below_a) in &deepest {
            let deepest_of_its = groups.contains(name) && below_a.is_disjoint(&groups);
            if deepest_of_its && !direct.is_in(a, &udn, &member_of) {
                set_member_noting(ldap, a, &udn, true, &mut refused).await?;
            }
        }
    }
    let mut errors = Vec::new();
    if let Some(first) = refused.first() {
        errors.push(format!(
            "AD refused {} membership change(s), the others were made; the first: {first}",
            refused.len()
        ));
    }
    if let Some(first) = missing.first() {
        // tetherd sends the group whole at once, which tells whether the account is back
        // under its name (a whole entry skips a member without an account, as it always has).
        errors.push(format!(
            "{} joiner(s) with no account in AD, the first: {first}; the group is sent whole again",
            missing.len()
        ));
    }
    let error = (!errors.is_empty()).then(|| errors.join("; "));
    Ok(GroupOutcome { guid: Some(guid_hex(&group)), dn: Some(dn), error, resend_whole: !missing.is_empty() })
}

/// Applies a `group_disconnected` entry: `group_disconnection_action`, never on sync_group.
pub async fn apply_group_disconnected(
    cfg: &SyncConfig,
    ldap: &mut Ldap,
    nc: &str,
    managed: &mut Managed,
    body: &GroupBody,
) -> Result<(), AgentError> {
    let Some(found) = find_group(ldap, nc, body.guid.as_deref(), &body.name).await? else { return Ok(()) };
    if let Some(why) = off_limits(cfg, ldap, managed, &found).await? {
        tracing::error!(group = %found.entry.dn, reason = why, "refusing to delete an AD group (deletion guard)");
        return Ok(());
    }
    let g = found.entry;
    if cfg.group_disconnection_action == GroupDisconnectionAction::Remove {
        managed.forget();
        let r = ldap.delete(&g.dn).await.map_err(AdError::from)?;
        if r.rc != 0 && r.rc != 32 {
            tracing::warn!(group = %g.dn, error = %r.text, "AD refused to delete the group");
        }
    }
    Ok(())
}
