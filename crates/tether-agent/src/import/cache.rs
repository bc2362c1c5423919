//! What the import agent remembers between cycles, and the upkeep of its copy of AD's
//! groups: the closure is computed from this copy, so it must never hold a member AD no
//! longer has where that member counts.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tether_ad::read::{guid_hex, paged_search, read_groups_by_guid, text, GroupEntry};
use tether_ad::Ldap;

use crate::config::ImportConfig;
use crate::report::{facts, keyed, Facts};
use crate::AgentError;

/// What the agent remembers between cycles (in `StateDir/import.json`): the USN watermark,
/// every group (for the nested-group closure; AD's transitive rule is too slow on Samba),
/// and the users in scope by objectGUID.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct Cache {
    pub(super) usn: Option<u64>,
    pub(super) last_complete: u64,
    /// Groups by objectGUID, member DNs lowercased ([`keyed`]).
    pub(super) groups: BTreeMap<String, GroupEntry>,
    /// Users in scope: objectGUID → DN (lowercased, as the closure's).
    pub(super) scope: BTreeMap<String, String>,
    /// The DC (`dsServiceName`) the watermark is a USN of.
    #[serde(default)]
    pub(super) server: Option<String>,
    /// The domain's import sequence number the last report was applied as: the `base` of the
    /// next incremental report, which tetherd takes only if nothing was applied since (so a
    /// changed group can be sent as who joined and who left it, `Members::Changed`). None: the
    /// next cycle reads everything.
    #[serde(default)]
    pub(super) applied: Option<u64>,
    /// The closure facts of `groups`, while they are known to hold (a running agent keeps
    /// them between cycles: at 10,000 users computing them took most of a one-change cycle).
    #[serde(skip)]
    pub(super) facts: Option<Facts>,
    /// Groups (objectGUIDs) the membership check did not read since it last ran (it reads the
    /// groups that count, `Facts::counted`): their cached members may still name an object
    /// deleted since, so each is read again before its members count (see
    /// [`Cache::read_stale`]). A complete read empties it.
    #[serde(default)]
    pub(super) unchecked: BTreeSet<String>,
}

impl Cache {
    /// Keeps `g` as just read from AD: its members are as AD has them now.
    pub(super) fn put_group(&mut self, g: GroupEntry) {
        self.unchecked.remove(&g.guid);
        self.groups.insert(g.guid.clone(), keyed(g));
    }

    /// Replaces the cached groups `guids` by what AD holds of them now (those no longer
    /// found were deleted); the DNs (lowercased) of those whose DN or name moved go in
    /// `moved`. Returns how many were read.
    pub(super) async fn reread(
        &mut self,
        ldap: &mut Ldap,
        nc: &str,
        guids: &[String],
        moved: &mut HashSet<String>,
    ) -> Result<usize, AgentError> {
        let wanted: Vec<&str> = guids.iter().map(String::as_str).collect();
        let fresh = read_groups_by_guid(ldap, nc, &wanted).await?;
        for g in &fresh {
            if self.groups.get(&g.guid).is_none_or(|o| o.dn != g.dn || o.name != g.name) {
                moved.insert(g.dn.to_lowercase());
            }
        }
        for guid in guids {
            self.groups.remove(guid);
            self.unchecked.remove(guid);
        }
        let read = fresh.len();
        for g in fresh {
            self.put_group(g);
        }
        Ok(read)
    }

    /// Brings every cached group's DN and name up to date, without reading members (one
    /// search of the domain's groups, two attributes each): renaming or moving an OU changes
    /// the DNs of the groups under it without moving their USNs, and the closure finds
    /// groups by DN, so a group the membership check does not read must not keep its old
    /// one. Groups no longer found were deleted. Renamed ones go in `moved`.
    pub(super) async fn follow_moves(
        &mut self,
        ldap: &mut Ldap,
        nc: &str,
        moved: &mut HashSet<String>,
    ) -> Result<(), AgentError> {
        let listed = paged_search(ldap, nc, "(objectClass=group)", &["objectGUID", "cn"]).await?;
        let now: HashMap<String, (String, String)> =
            listed.into_iter().map(|e| (guid_hex(&e), (e.dn.clone(), text(&e, "cn").unwrap_or_default()))).collect();
        let gone: Vec<String> = self.groups.keys().filter(|k| !now.contains_key(*k)).cloned().collect();
        for k in gone {
            self.groups.remove(&k);
            self.unchecked.remove(&k);
        }
        let renamed: Vec<(String, String, String, String)> = self
            .groups
            .iter()
            .filter_map(|(k, g)| {
                let (dn, name) = &now[k];
                (dn != &g.dn || name != &g.name).then(|| (k.clone(), g.dn.clone(), dn.clone(), name.clone()))
            })
            .collect();
        for (k, old, dn, name) in renamed {
            if !old.eq_ignore_ascii_case(&dn) {
                rename_member(&mut self.groups, &old, &dn);
            }
            moved.insert(dn.to_lowercase());
            if let Some(g) = self.groups.get_mut(&k) {
                (g.dn, g.name) = (dn, name);
            }
        }
        Ok(())
    }

    /// The closure facts of the cached groups, each group they count read again first when
    /// the membership check left it unread (`unchecked`): a group outside the scope that now
    /// joins it must not bring in a deleted member's DN, which a new object may hold by now.
    /// Returns the facts and how many groups were read.
    pub(super) async fn read_stale(
        &mut self,
        cfg: &ImportConfig,
        ldap: &mut Ldap,
        nc: &str,
        moved: &mut HashSet<String>,
    ) -> Result<(Facts, usize), AgentError> {
        let mut read = 0;
        loop {
            let f = facts(cfg, &self.groups)?;
            let stale: Vec<String> = f.counted.intersection(&self.unchecked).cloned().collect();
            if stale.is_empty() {
                return Ok((f, read));
            }
            // Each pass takes at least one group out of `unchecked`, which nothing here adds to.
            read += self.reread(ldap, nc, &stale, moved).await?;
        }
    }
}

/// Replaces `old` by `new` (case-insensitively) in every cached member list: AD renames
/// members in place without moving the groups' USNs.
pub(super) fn rename_member(groups: &mut BTreeMap<String, GroupEntry>, old: &str, new: &str) {
    let (old, new) = (old.to_lowercase(), new.to_lowercase());
    for g in groups.values_mut() {
        for m in g.members.iter_mut() {
            if *m == old {
                m.clone_from(&new);
            }
        }
    }
}

pub(super) fn load_cache(path: &Path) -> Cache {
    let mut c: Cache =
        std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    // A state saved by an earlier version keeps DNs as AD spells them.
    c.groups = std::mem::take(&mut c.groups).into_iter().map(|(k, g)| (k, keyed(g))).collect();
    for dn in c.scope.values_mut() {
        *dn = dn.to_lowercase();
    }
    c
}

pub(super) fn save_cache(path: &Path, c: &Cache) -> Result<(), AgentError> {
    crate::session::write_state(path, &serde_json::to_vec(c).expect("serializes"))
}
