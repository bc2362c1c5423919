//! What an import report says, built from what a cycle read: the closure facts of the
//! cached groups (scope, mirrored groups with their flattened members, privileged and sudo
//! standing), and the report itself, whose changed groups go whole or, relative to the
//! agent's last applied report (its `base`), as who joined and who left them. No I/O: the
//! cycle (`import.rs`) reads AD and talks to tetherd.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use tether_ad::read::{number, GroupEntry};
use tether_core::adi::import::{AdUserObs, ImportSettings};
use tether_core::adi::scope::{compute, AdGroup};
use tether_core::wire::{ImportReport, Members, ObservedGroup};

use crate::config::ImportConfig;
use crate::observe::{bind_identity, observe};
use crate::AgentError;

/// Relative ids of the groups whose members are never imported: Domain Admins, Enterprise
/// Admins, (builtin) Administrators.
const PRIVILEGED_RIDS: [u32; 3] = [512, 519, 544];

/// Users reachable from groups with the given RIDs (nested membership included), and the
/// DNs (lowercased) of those groups and of the groups nested in them.
fn privileged_members<'a>(
    groups: impl Iterator<Item = &'a GroupEntry>,
    ad_groups: &[AdGroup],
) -> (HashSet<String>, Vec<String>) {
    let (mut users, mut read) = (HashSet::new(), Vec::new());
    for g in groups.filter(|g| g.rid.is_some_and(|r| PRIVILEGED_RIDS.contains(&r))) {
        let s = compute(&g.dn, ad_groups);
        users.extend(s.users);
        read.push(g.dn.to_lowercase());
        read.extend(s.groups.into_keys());
    }
    (users, read)
}

/// A group as the cache keeps it: its member DNs lowercased once when read, so the closure
/// (every cycle a group changes) does not lowercase 10,000 of them again.
pub(crate) fn keyed(mut g: GroupEntry) -> GroupEntry {
    for m in g.members.iter_mut() {
        if m.bytes().any(|b| b.is_ascii_uppercase()) || !m.is_ascii() {
            *m = m.to_lowercase();
        }
    }
    g
}

fn settings_of(cfg: &ImportConfig) -> ImportSettings {
    let m = &cfg.main_loop;
    ImportSettings {
        sync_additional_attributes: m.sync_additional_attributes,
        user_dissociation_action: m.user_dissociation_action,
        user_field_mapping: m.user_field_mapping,
        user_takeover_action: m.user_takeover_action,
        user_disable_action: m.user_disable_action,
        user_expire_action: m.user_expire_action,
        sync_account_locked_out_status: m.sync_account_locked_out_status,
    }
}

/// The closure facts of the cached groups.
#[derive(Clone, Debug)]
pub(crate) struct Facts {
    /// Users (DN, lowercased) in scope and under the root user container.
    pub(crate) scope: HashSet<String>,
    /// Mirrored groups: DN (lowercased) → member DNs (lowercased).
    pub(crate) mirrored: BTreeMap<String, HashSet<String>>,
    pub(crate) privileged: HashSet<String>,
    pub(crate) admins: HashSet<String>,
    /// The objectGUIDs of the groups whose members these facts were computed from (the ADI
    /// group and those nested in it, the privileged groups and theirs, the admins group):
    /// the groups the membership check reads, of all the cached ones.
    pub(crate) counted: BTreeSet<String>,
}

pub(crate) fn facts(cfg: &ImportConfig, groups: &BTreeMap<String, GroupEntry>) -> Result<Facts, AgentError> {
    let adi = &cfg.ldap.adi_group;
    if !groups.values().any(|g| g.dn.eq_ignore_ascii_case(adi)) {
        return Err(AgentError::Config(crate::config::ConfigError::Invalid {
            path: "config".into(),
            key: "Ldap.AdiGroup".into(),
            reason: format!("no group `{adi}` in AD"),
        }));
    }
    let ad_groups: Vec<AdGroup> = groups.values().map(|g| AdGroup { dn: &g.dn, members: &g.members }).collect();
    let mut scope = compute(adi, &ad_groups);
    let root = format!(",{}", cfg.ldap.root_user_container.to_lowercase());
    // In place: collecting the users again into another set cost ~3 ms at 10,000 users.
    scope.users.retain(|dn| dn.ends_with(&root));
    let mut read: Vec<String> = vec![adi.to_lowercase()];
    let admins = match &cfg.ldap.admins_group {
        Some(a) => match groups.values().find(|g| g.dn.eq_ignore_ascii_case(a)) {
            Some(g) => {
                read.push(a.to_lowercase());
                g.members.iter().map(|m| m.to_lowercase()).collect()
            }
            None => {
                tracing::warn!(group = %a, "Ldap.AdminsGroup does not exist in AD; nobody gets sudo from it");
                HashSet::new()
            }
        },
        None => HashSet::new(),
    };
    let (privileged, privileged_groups) = privileged_members(groups.values(), &ad_groups);
    read.extend(privileged_groups);
    read.extend(scope.groups.keys().cloned());
    let read: HashSet<String> = read.into_iter().collect();
    Ok(Facts {
        privileged,
        scope: scope.users,
        mirrored: scope.groups,
        admins,
        counted: groups.values().filter(|g| read.contains(&g.dn.to_lowercase())).map(|g| g.guid.clone()).collect(),
    })
}

/// Which mirrored groups a report carries: all of them (a complete read), or those whose
/// flattened membership, name or DN moved (lowercased DNs), each reported user then listing
/// the mirrored groups it is in, so a user imported for the first time in an incremental
/// cycle joins groups that did not change. A changed group that was already mirrored at the
/// [`Base`] is sent as who joined and who left it.
pub(crate) enum GroupsToReport<'a> {
    All,
    Changed(BTreeSet<String>, Base<'a>),
}

/// What tetherd holds of the mirrored groups (the agent's last applied report, the report's
/// `base`): their members then (lowercased DNs), and the objectGUIDs
/// of users known then by a DN that is no longer theirs (they left the scope or were
/// renamed since: lowercased old DN → objectGUID).
pub(crate) struct Base<'a> {
    pub(crate) mirrored: &'a BTreeMap<String, HashSet<String>>,
    /// The objectGUIDs of those groups (a group deleted and made again under the same DN is
    /// another group: sent whole).
    pub(crate) guids: &'a BTreeSet<String>,
    pub(crate) old_dns: HashMap<String, String>,
}

/// What an incremental read found gone from the scope (objectGUIDs).
#[derive(Default)]
pub(crate) struct Gone {
    pub(crate) users: Vec<String>,
    /// Mirrored groups deleted in AD or no longer nested in the ADI group.
    pub(crate) groups: Vec<String>,
}

/// Builds the report for `entries` (the users to report) given the closure facts.
pub(crate) fn assemble(
    cfg: &ImportConfig,
    groups: &BTreeMap<String, GroupEntry>,
    f: &Facts,
    entries: &[tether_ad::read::Entry],
    scope_guids: &BTreeMap<String, String>,
    which: GroupsToReport,
    gone: Gone,
) -> (ImportReport, Vec<(String, String, i64)>) {
    let complete = matches!(which, GroupsToReport::All);
    let bind = bind_identity(&cfg.ldap.bind_dn);
    let observed: Vec<AdUserObs> = entries.iter().map(|e| observe(e, &f.privileged, &f.admins, &bind)).collect();
    let passwords = entries
        .iter()
        .zip(&observed)
        .filter(|(_, o)| !o.privileged)
        .map(|(e, o)| {
            let pls = number(e, "pwdLastSet").unwrap_or(0);
            (o.guid.clone(), o.sam_account_name.clone(), pls)
        })
        .collect();
    let by_dn: HashMap<String, &GroupEntry> = groups.values().map(|g| (g.dn.to_lowercase(), g)).collect();
    let (dns, base) = match &which {
        GroupsToReport::All => (None, None),
        GroupsToReport::Changed(dns, base) => (Some(dns), Some(base)),
    };
    // (Lowercased DN, objectGUID) of the users reported privileged.
    let priv_now: Vec<(String, &str)> = entries
        .iter()
        .zip(&observed)
        .filter(|(_, o)| o.privileged)
        .map(|(e, o)| (e.dn.to_lowercase(), o.guid.as_str()))
        .collect();
    // A changed group goes in the report; so does one with a member reported privileged now
    // (a new Domain Admin, or `adminCount`), which that member leaves, as a complete report
    // would have it. (One no longer privileged joins its groups through `userGroups`.)
    let to_report: Vec<(&String, &HashSet<String>)> = f
        .mirrored
        .iter()
        .filter(|(dn, members)| {
            dns.is_none_or(|d| d.contains(*dn)) || priv_now.iter().any(|(p, _)| members.contains(p))
        })
        .collect();
    // DN (lowercased) → objectGUID of every user in scope (a walk over the whole scope: only
    // when a group is reported); a user reported privileged joins no group.
    let guid_of: HashMap<&str, &String> = if to_report.is_empty() {
        HashMap::new()
    } else {
        scope_guids.iter().map(|(g, dn)| (dn.as_str(), g)).collect()
    };
    let skip: HashSet<&str> = observed.iter().filter(|o| o.privileged).map(|o| o.guid.as_str()).collect();
    let member = |dn: &String| {
        let g = guid_of.get(dn.as_str()).filter(|g| !skip.contains(g.as_str()) && !f.privileged.contains(dn));
        g.map(|g| g.to_string())
    };
    let mirrored: Vec<ObservedGroup> = to_report
        .into_iter()
        .filter_map(|(dn, now)| {
            let g = by_dn.get(dn)?;
            // Sorted and each once, whatever the order of the DNs.
            let members = match base.filter(|b| b.guids.contains(&g.guid)).and_then(|b| Some((b, b.mirrored.get(dn)?)))
            {
                Some((b, then)) => {
                    let joined: BTreeSet<String> = now.difference(then).filter_map(member).collect();
                    let former = |dn: &String| b.old_dns.get(dn).or_else(|| guid_of.get(dn.as_str()).copied()).cloned();
                    let mut left: BTreeSet<String> = then.difference(now).filter_map(former).collect();
                    // Reported privileged now while still in the group: out of it, as a full
                    // list (which leaves them out) would have it.
                    left.extend(priv_now.iter().filter(|(d, _)| now.contains(d)).map(|(_, g)| g.to_string()));
                    // A user renamed in AD is on both sides under two DNs: no change.
                    Members::Changed {
                        joined: joined.difference(&left).cloned().collect(),
                        left: left.difference(&joined).cloned().collect(),
                    }
                }
                None => Members::All(now.iter().filter_map(member).collect::<BTreeSet<_>>().into_iter().collect()),
            };
            Some(ObservedGroup { guid: g.guid.clone(), dn: g.dn.clone(), name: g.name.clone(), members })
        })
        .collect();
    // objectGUID → the mirrored groups (objectGUIDs) of each reported user.
    let user_groups: BTreeMap<String, Vec<String>> = if complete {
        BTreeMap::new()
    } else {
        entries
            .iter()
            .zip(&observed)
            .filter(|(_, o)| !o.privileged)
            .map(|(e, o)| {
                let dn = e.dn.to_lowercase();
                let of = f
                    .mirrored
                    .iter()
                    .filter(|(_, members)| members.contains(&dn))
                    .filter_map(|(g, _)| by_dn.get(g).map(|g| g.guid.clone()))
                    .collect();
                (o.guid.clone(), of)
            })
            .collect()
    };
    let report = ImportReport {
        settings: settings_of(cfg),
        complete,
        users: observed,
        gone: gone.users,
        gone_groups: gone.groups,
        groups: mirrored,
        user_groups,
        fencing: None,
        base: None,
        dry_run: false,
        part: false,
    };
    (report, passwords)
}

/// A part of a first complete read: the users of `entries` (those in scope), reported
/// incrementally with nothing else (no group, nobody gone, no group to join: the complete
/// report that follows the read carries those), so tetherd creates the new ones while the
/// agent reads the next ones (`import::read_in_parts`).
pub(crate) fn part(cfg: &ImportConfig, f: &Facts, entries: &[tether_ad::read::Entry]) -> ImportReport {
    let bind = bind_identity(&cfg.ldap.bind_dn);
    let users = entries
        .iter()
        .filter(|e| f.scope.contains(&e.dn.to_lowercase()))
        .map(|e| observe(e, &f.privileged, &f.admins, &bind))
        .collect();
    ImportReport { settings: settings_of(cfg), complete: false, users, part: true, ..ImportReport::default() }
}

/// The objectGUIDs of the mirrored groups.
pub(crate) fn mirrored_guids(groups: &BTreeMap<String, GroupEntry>, f: &Facts) -> BTreeSet<String> {
    groups.values().filter(|g| f.mirrored.contains_key(&g.dn.to_lowercase())).map(|g| g.guid.clone()).collect()
}
