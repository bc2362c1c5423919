//! The import's scope: users who are members of the ADI group directly or through nested
//! groups (any depth), and the nested groups mirrored with flattened membership.
//!
//! AD's own transitive-membership matching rule is slow on Samba and breaks DirSync once
//! tombstones exist, so the closure is computed here from plain `member` values. Cycles in
//! the group graph (legal in AD) are tolerated.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A group read from AD: its DN and the DNs of its members (users and groups alike),
/// borrowed from wherever the groups are kept (at 10,000 users, copying them cost more than
/// the closure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdGroup<'a> {
    pub dn: &'a str,
    pub members: &'a [String],
}

/// The computed scope. Sets, not ordered sets: an agent computes it again after every group
/// change, and at 10,000 users the ordered sets' string comparisons were most of that.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// DNs (lowercased) of every user reached from the ADI group.
    pub users: HashSet<String>,
    /// For each group nested (at any depth) in the ADI group: its DN (lowercased) and the
    /// lowercased DNs of all users it contains, directly or through its own nested groups.
    pub groups: BTreeMap<String, HashSet<String>>,
}

/// The DN lowercased, borrowed when it already is (an agent keeps its member DNs so).
fn key(dn: &str) -> Cow<'_, str> {
    let lower = if dn.is_ascii() {
        !dn.bytes().any(|b| b.is_ascii_uppercase())
    } else {
        dn.chars().all(|c| c.to_lowercase().eq(std::iter::once(c)))
    };
    if lower {
        Cow::Borrowed(dn)
    } else {
        Cow::Owned(dn.to_lowercase())
    }
}

type Keyed<'a> = HashSet<Cow<'a, str>>;

/// Users reachable from `start` through `groups` (members that are not groups are users),
/// and the groups walked (`start` not among them).
fn closure<'a>(start: &str, groups: &HashMap<Cow<'a, str>, &AdGroup<'a>>) -> (HashSet<String>, Keyed<'a>) {
    let (mut users, mut seen) = (HashSet::new(), HashSet::new());
    let start: Cow<'a, str> = Cow::Owned(key(start).into_owned());
    let mut todo = vec![start.clone()];
    while let Some(g) = todo.pop() {
        if seen.contains(&g) {
            continue;
        }
        let group = groups.get(&g).copied();
        seen.insert(g);
        let Some(group) = group else { continue };
        users.reserve(group.members.len());
        for m in group.members {
            let m = key(m);
            if groups.contains_key(&m) {
                todo.push(m);
            } else {
                users.insert(m.into_owned());
            }
        }
    }
    seen.remove(&start);
    (users, seen)
}

/// Computes the scope of `adi_group` from all groups read (the ADI group and its nested
/// groups; members that are not among `groups` are treated as users).
pub fn compute(adi_group: &str, groups: &[AdGroup]) -> Scope {
    let by_dn: HashMap<Cow<str>, &AdGroup> = groups.iter().map(|g| (key(g.dn), g)).collect();
    let (users, nested) = closure(adi_group, &by_dn);
    let groups = nested.iter().map(|g| (g.to_string(), closure(g, &by_dn).0)).collect();
    Scope { users, groups }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(dn: &str, members: &[&str]) -> (String, Vec<String>) {
        (dn.to_string(), members.iter().map(|m| m.to_string()).collect())
    }

    fn g((dn, members): &(String, Vec<String>)) -> AdGroup<'_> {
        AdGroup { dn, members }
    }

    /// The seeds' example: Group1 (User1, User2, Group2) is in the JumpCloud group; Group2
    /// holds User3 and User4. Group2 is mirrored with User3, User4; Group1 with all four.
    #[test]
    fn seeds_group1_group2_example() {
        let owned = [
            owned("CN=JumpCloud", &["CN=Group1"]),
            owned("CN=Group1", &["CN=User1", "CN=User2", "CN=Group2"]),
            owned("CN=Group2", &["CN=User3", "CN=User4"]),
        ];
        let groups: Vec<AdGroup> = owned.iter().map(g).collect();
        let s = compute("CN=JumpCloud", &groups);
        let set = |v: &[&str]| v.iter().map(|s| s.to_lowercase()).collect::<HashSet<_>>();
        assert_eq!(s.users, set(&["CN=User1", "CN=User2", "CN=User3", "CN=User4"]));
        assert_eq!(s.groups.len(), 2);
        assert_eq!(s.groups["cn=group2"], set(&["CN=User3", "CN=User4"]));
        assert_eq!(s.groups["cn=group1"], set(&["CN=User1", "CN=User2", "CN=User3", "CN=User4"]));
    }

    #[test]
    fn direct_members_cycles_and_case() {
        let owned = [
            owned("CN=JumpCloud", &["CN=Direct", "cn=a", "CN=Émile", "cn=zoë", "CN=ZOË"]),
            owned("CN=A", &["CN=B", "CN=UA"]),
            owned("CN=B", &["CN=A", "CN=UB"]), // a cycle
            owned("CN=Outside", &["CN=Nobody"]),
        ];
        let groups: Vec<AdGroup> = owned.iter().map(g).collect();
        let s = compute("cn=jumpcloud", &groups);
        assert!(s.users.contains("cn=émile"), "non-ASCII DNs lowercased: {:?}", s.users);
        assert!(s.users.contains("cn=zoë") && !s.users.contains("CN=ZOË"), "one user whatever the case");
        assert_eq!(s.users.len(), 5);
        assert!(!s.users.contains("cn=nobody"));
        assert_eq!(s.groups["cn=a"].len(), 2);
        assert_eq!(s.groups["cn=b"].len(), 2, "B reaches A's users through the cycle");
        assert!(!s.groups.contains_key("cn=outside"));
        assert!(!s.groups.contains_key("cn=jumpcloud"), "the ADI group itself is the scope, not a mirrored group");
    }
}
