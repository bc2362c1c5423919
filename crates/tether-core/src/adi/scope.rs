//! The import's scope: users who are members of the ADI group directly or through nested
//! groups (any depth), and the nested groups mirrored with flattened membership.
//!
//! AD's own transitive-membership matching rule is slow on Samba and breaks DirSync once
//! tombstones exist, so the closure is computed here from plain `member` values. Cycles in
//! the group graph (legal in AD) are tolerated.

use std::collections::{BTreeMap, BTreeSet};

/// A group read from AD: its DN and the DNs of its members (users and groups alike).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdGroup {
    pub dn: String,
    pub name: String,
    pub guid: String,
    pub members: Vec<String>,
}

/// The computed scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// DNs (lowercased) of every user reached from the ADI group.
    pub users: BTreeSet<String>,
    /// For each group nested (at any depth) in the ADI group: its DN (lowercased) and the
    /// lowercased DNs of all users it contains, directly or through its own nested groups.
    pub groups: BTreeMap<String, BTreeSet<String>>,
}

fn key(dn: &str) -> String {
    dn.to_lowercase()
}

/// Users reachable from `start` through `groups` (members that are not groups are users).
fn closure(start: &str, groups: &BTreeMap<String, &AdGroup>) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut users, mut seen) = (BTreeSet::new(), BTreeSet::new());
    let mut todo = vec![key(start)];
    while let Some(g) = todo.pop() {
        if !seen.insert(g.clone()) {
            continue;
        }
        let Some(group) = groups.get(&g) else { continue };
        for m in &group.members {
            let m = key(m);
            if groups.contains_key(&m) {
                todo.push(m);
            } else {
                users.insert(m);
            }
        }
    }
    seen.remove(&key(start));
    (users, seen)
}

/// Computes the scope of `adi_group` from all groups read (the ADI group and its nested
/// groups; members that are not among `groups` are treated as users).
pub fn compute(adi_group: &str, groups: &[AdGroup]) -> Scope {
    let by_dn: BTreeMap<String, &AdGroup> = groups.iter().map(|g| (key(&g.dn), g)).collect();
    let (users, nested) = closure(adi_group, &by_dn);
    let groups = nested.iter().map(|g| (g.clone(), closure(g, &by_dn).0)).collect();
    Scope { users, groups }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(dn: &str, members: &[&str]) -> AdGroup {
        AdGroup {
            dn: dn.into(),
            name: dn.into(),
            guid: dn.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    /// The seeds' example: Group1 (User1, User2, Group2) is in the JumpCloud group; Group2
    /// holds User3 and User4. Group2 is mirrored with User3, User4; Group1 with all four.
    #[test]
    fn seeds_group1_group2_example() {
        let groups = [
            g("CN=JumpCloud", &["CN=Group1"]),
            g("CN=Group1", &["CN=User1", "CN=User2", "CN=Group2"]),
            g("CN=Group2", &["CN=User3", "CN=User4"]),
        ];
        let s = compute("CN=JumpCloud", &groups);
        let set = |v: &[&str]| v.iter().map(|s| s.to_lowercase()).collect::<BTreeSet<_>>();
        assert_eq!(s.users, set(&["CN=User1", "CN=User2", "CN=User3", "CN=User4"]));
        assert_eq!(s.groups.len(), 2);
        assert_eq!(s.groups["cn=group2"], set(&["CN=User3", "CN=User4"]));
        assert_eq!(s.groups["cn=group1"], set(&["CN=User1", "CN=User2", "CN=User3", "CN=User4"]));
    }

    #[test]
    fn direct_members_cycles_and_case() {
        let groups = [
            g("CN=JumpCloud", &["CN=Direct", "cn=a"]),
            g("CN=A", &["CN=B", "CN=UA"]),
            g("CN=B", &["CN=A", "CN=UB"]), // a cycle
            g("CN=Outside", &["CN=Nobody"]),
        ];
        let s = compute("cn=jumpcloud", &groups);
        assert_eq!(s.users.len(), 3);
        assert!(!s.users.contains("cn=nobody"));
        assert_eq!(s.groups["cn=a"].len(), 2);
        assert_eq!(s.groups["cn=b"].len(), 2, "B reaches A's users through the cycle");
        assert!(!s.groups.contains_key("cn=outside"));
        assert!(!s.groups.contains_key("cn=jumpcloud"), "the ADI group itself is the scope, not a mirrored group");
    }
}
