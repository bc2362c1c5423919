//! The groups the sync agent manages: every group nested, at any depth, under the sync group.
//!
//! A group entry asks three questions of them (is this AD group one of them? which of them
//! are nested in this one? which contain it?) and a user's disconnection one. Reading them
//! costs two searches per group; on a 10,000-user Samba DC the three questions cost a group
//! entry ~36 of its ~45 ms, so filling a group one member at a time was paced by them
//! (docs/performance.md). They are therefore read once for a batch of feed entries and
//! answered from memory, and read again when the agent itself has changed the nesting (a
//! group it created, nested, renamed or deleted), or when a group is not found in it and no
//! read of the batch found it outside yet (an admin may have renamed or moved it since:
//! [`Managed::among`]). Any other change an admin makes to the nesting during a batch is seen
//! by the next batch, as a change made during one entry's reads is seen by the next entry.

use std::collections::{HashMap, HashSet, VecDeque};

use tether_ad::ldap3::{ldap_escape, Scope, SearchEntry};
use tether_ad::read::text;
use tether_ad::{AdError, Ldap};

/// A group and the groups nested in it, as AD showed them when read. DNs are lowercased.
#[derive(Debug, Default)]
pub struct Tree {
    root: String,
    /// The nested groups (the root excluded), in the order a breadth-first walk meets them,
    /// with their sAMAccountNames lowercased.
    order: Vec<(String, String)>,
    /// Each group's direct member groups, for every group the walk read (the root included).
    children: HashMap<String, Vec<String>>,
}

impl Tree {
    /// Reads `root` and every group nested in it: a base read of each group (one that cannot
    /// be read is left out, with what is below it) and one `memberOf` search for its member
    /// groups.
    pub async fn read(ldap: &mut Ldap, root: &str) -> Result<Tree, AdError> {
        let mut t = Tree { root: root.to_lowercase(), ..Tree::default() };
        let mut todo = VecDeque::from([root.to_string()]);
        while let Some(g) = todo.pop_front() {
            let key = g.to_lowercase();
            if t.children.contains_key(&key) {
                continue;
            }
            let (e, _) =
                ldap.search(&g, Scope::Base, "(objectClass=group)", vec!["sAMAccountName"]).await?.success()?;
            let Some(e) = e.into_iter().next().map(SearchEntry::construct) else { continue };
            if key != t.root {
                t.order.push((key.clone(), text(&e, "sAMAccountName").unwrap_or_default().to_lowercase()));
            }
            let kids = member_groups(ldap, &e.dn).await?;
            t.children.insert(key, kids.iter().map(|k| k.to_lowercase()).collect());
            todo.extend(kids);
        }
        Ok(t)
    }

    /// Whether `dn` is one of the nested groups.
    pub fn contains(&self, dn: &str) -> bool {
        let dn = dn.to_lowercase();
        dn != self.root && self.children.contains_key(&dn)
    }

    /// The groups nested (any depth) in `dn`, one of this tree's groups: what [`Tree::read`]
    /// of `dn` would give, from memory.
    pub fn below(&self, dn: &str) -> Vec<(String, String)> {
        let start = dn.to_lowercase();
        let names: HashMap<&str, &str> = self.order.iter().map(|(d, n)| (d.as_str(), n.as_str())).collect();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut todo = VecDeque::from([start.as_str()]);
        while let Some(g) = todo.pop_front() {
            if !seen.insert(g) {
                continue;
            }
            let Some(kids) = self.children.get(g) else { continue };
            if g != start {
                out.push((g.to_string(), names.get(g).copied().unwrap_or_default().to_string()));
            }
            todo.extend(kids.iter().map(String::as_str));
        }
        out
    }

    /// The sAMAccountName (lowercased) of `dn`, one of the nested groups.
    pub fn name_of(&self, dn: &str) -> Option<&str> {
        let dn = dn.to_lowercase();
        self.order.iter().find(|(g, _)| *g == dn).map(|(_, n)| n.as_str())
    }

    /// The nested groups that contain `dn` (at any depth), `dn` itself excluded.
    pub fn ancestors(&self, dn: &str) -> Vec<String> {
        let dn = dn.to_lowercase();
        self.order
            .iter()
            .filter(|(g, _)| *g != dn && self.below(g).iter().any(|(d, _)| *d == dn))
            .map(|(g, _)| g.clone())
            .collect()
    }
}

/// The groups that are direct members of the group `dn`: one search by their `memberOf`
/// (through the objectCategory index, so only groups are looked at), not one per member —
/// a sync group may hold every user of the domain.
async fn member_groups(ldap: &mut Ldap, dn: &str) -> Result<Vec<String>, AdError> {
    // The naming context: the DN's trailing `DC=` components.
    let nc = dn.to_ascii_lowercase().find(",dc=").map_or(dn, |i| &dn[i + 1..]);
    let f = format!("(&(objectCategory=group)(memberOf={}))", ldap_escape(dn));
    let (entries, _) = ldap.search(nc, Scope::Subtree, &f, vec!["1.1"]).await?.success()?;
    Ok(entries.into_iter().map(|e| SearchEntry::construct(e).dn).collect())
}

/// The sync group's tree for one batch of feed entries: read when first needed, kept until
/// the agent changes the nesting itself ([`Managed::forget`]).
#[derive(Debug, Default)]
pub struct Managed {
    tree: Option<Tree>,
    /// Groups (lowercased DNs) a read of this batch found outside the tree.
    outside: HashSet<String>,
    reads: u32,
}

impl Managed {
    /// The tree under `sync_group`, read now if it is not known.
    pub async fn get(&mut self, ldap: &mut Ldap, sync_group: &str) -> Result<&Tree, AdError> {
        if self.tree.as_ref().is_none_or(|t| t.root != sync_group.to_lowercase()) {
            // What an earlier read found outside is that read's answer.
            self.outside.clear();
            self.tree = Some(Tree::read(ldap, sync_group).await?);
            self.reads += 1;
        }
        Ok(self.tree.as_ref().expect("just read"))
    }

    /// Those of `dns` that are groups under `sync_group`. A miss on a tree read earlier in the
    /// batch is checked against AD once more (an admin may have renamed or moved a group
    /// since): a stale "no" would have the agent nest a group it manages again (AD refuses),
    /// refuse to write it, or leave a disconnected user in it. A group a read of this batch
    /// already found outside the tree is not asked about again: a renamed or moved group has
    /// a DN not seen yet, while a disconnected user's other groups (the ADI group, any group
    /// of AD's own) would otherwise have every disconnection read the tree again.
    pub async fn among(&mut self, ldap: &mut Ldap, sync_group: &str, dns: &[String]) -> Result<Vec<String>, AdError> {
        let before = self.reads;
        self.get(ldap, sync_group).await?;
        let tree = self.tree.as_ref().expect("just read");
        let known = |d: &String| tree.contains(d) || self.outside.contains(&d.to_lowercase());
        if self.reads == before && !dns.iter().all(known) {
            self.forget();
            self.get(ldap, sync_group).await?;
        }
        let tree = self.tree.as_ref().expect("just read");
        let (inside, outside): (Vec<&String>, Vec<&String>) = dns.iter().partition(|d| tree.contains(d));
        self.outside.extend(outside.into_iter().map(|d| d.to_lowercase()));
        Ok(inside.into_iter().cloned().collect())
    }

    /// Whether `dn` is a group under `sync_group` ([`Managed::among`]).
    pub async fn has(&mut self, ldap: &mut Ldap, sync_group: &str, dn: &str) -> Result<bool, AdError> {
        Ok(!self.among(ldap, sync_group, &[dn.to_string()]).await?.is_empty())
    }

    /// The agent changed the nesting (or a group's DN): the next question reads AD again.
    pub fn forget(&mut self) {
        self.tree = None;
    }

    /// How many times the tree was read ([`Managed::among`] tells a tree read in its own call by it;
    /// tests count them).
    pub fn reads(&self) -> u32 {
        self.reads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// root ⊃ a ⊃ b ⊃ c, root ⊃ d, b ⊃ a (a cycle), c ⊃ x (x could not be read).
    fn tree() -> Tree {
        let kids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Tree {
            root: "root".into(),
            order: ["a", "d", "b", "c"].iter().map(|g| (g.to_string(), format!("sam-{g}"))).collect(),
            children: HashMap::from([
                ("root".to_string(), kids(&["a", "d"])),
                ("a".to_string(), kids(&["b"])),
                ("b".to_string(), kids(&["c", "a"])),
                ("c".to_string(), kids(&["x"])),
                ("d".to_string(), kids(&[])),
            ]),
        }
    }

    #[test]
    fn below_walks_from_memory_as_a_read_would() {
        let t = tree();
        let names = |v: Vec<(String, String)>| v.into_iter().map(|(d, _)| d).collect::<Vec<_>>();
        for (dn, want) in [
            ("a", vec!["b", "c"]),
            ("A", vec!["b", "c"]),
            ("b", vec!["c", "a"]),
            ("c", vec![]),
            ("d", vec![]),
            ("x", vec![]),
            ("root", vec!["a", "d", "b", "c"]),
        ] {
            assert_eq!(names(t.below(dn)), want, "below {dn}");
        }
        assert_eq!(t.below("a")[0].1, "sam-b");
    }

    #[test]
    fn ancestors_and_membership() {
        let t = tree();
        for (dn, want) in [("c", vec!["a", "b"]), ("a", vec!["b"]), ("d", vec![]), ("root", vec![])] {
            assert_eq!(t.ancestors(dn), want, "ancestors of {dn}");
        }
        for (dn, want) in [("a", true), ("C", true), ("root", false), ("x", false), ("y", false)] {
            assert_eq!(t.contains(dn), want, "contains {dn}");
        }
        assert_eq!(t.order.len(), 4);
    }
}
