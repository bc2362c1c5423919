//! What changed in AD since the watermark, and how to read it: the notified objects when
//! they account for every USN from the watermark on (no gap), else the objects holding
//! exactly those USNs (up to [`EXACT_MAX`], one search the DC's `uSNChanged` index serves),
//! else a `(uSNChanged>=N)` range, which Samba answers by scanning the whole naming context.
//! Only users and groups account for their USN: one held by anything else (a deletion's
//! tombstone, an OU renamed or moved, a write outside the partition) stays unexplained,
//! and the cycle then runs the membership check (`import.rs`). A notified tombstone
//! (`TombstonesReadable`) is such a USN: it brings the check at once, which finds the
//! deleted object gone and the silent `member` change its deletion made.

use std::collections::{BTreeSet, HashMap};

use tether_ad::read::{guid_hex, paged_search, usn_changed, Entry, GroupEntry};
use tether_ad::Ldap;

use crate::AgentError;

/// The attributes read for each user (two of them, `msDS-User-Account-Control-Computed` and
/// `msDS-UserPasswordExpiryTimeComputed`, are computed by the DC for every entry).
pub const USER_ATTRS: &[&str] = &[
    "objectGUID",
    "sAMAccountName",
    "userPrincipalName",
    "givenName",
    "sn",
    "mail",
    "displayName",
    "description",
    "title",
    "department",
    "company",
    "physicalDeliveryOfficeName",
    "employeeType",
    "telephoneNumber",
    "mobile",
    "facsimileTelephoneNumber",
    "homePhone",
    "streetAddress",
    "l",
    "st",
    "postalCode",
    "co",
    "postOfficeBox",
    "manager",
    "whenChanged",
    "userAccountControl",
    "adminCount",
    "lockoutTime",
    "msDS-User-Account-Control-Computed",
    "msDS-UserPasswordExpiryTimeComputed",
    "pwdLastSet",
    "uSNChanged",
    "uidNumber",
    "gidNumber",
];

/// The attributes the notification search asks for: a notified user or group carries
/// everything a cycle would read of it, and its class, to tell which it is.
pub fn notified_attrs() -> Vec<&'static str> {
    let mut attrs: Vec<&str> = USER_ATTRS.to_vec();
    for a in ["objectClass", "objectCategory", "isDeleted"].iter().chain(tether_ad::read::GROUP_ATTRS) {
        if !attrs.contains(a) {
            attrs.push(a);
        }
    }
    attrs
}

/// How a cycle learnt what changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadKind {
    /// Nothing moved (or this agent is not the one that reads): rootDSE only.
    #[default]
    Idle,
    /// From the change notifications alone: no search of the scope.
    Notified,
    /// One indexed search for the objects holding exactly the USNs since the watermark
    /// (and the membership check when some USN is unexplained).
    Exact,
    /// `(uSNChanged>=N)` searches, which scan the scope on Samba (and the membership check
    /// when some USN is unexplained): after a gap of more than [`EXACT_MAX`] USNs.
    Scan,
    /// The complete read of the scope.
    Complete,
}

impl ReadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadKind::Idle => "idle",
            ReadKind::Notified => "notified",
            ReadKind::Exact => "exact",
            ReadKind::Scan => "scan",
            ReadKind::Complete => "complete",
        }
    }
}

pub(crate) const USERS: &str = "(&(objectCategory=person)(objectClass=user))";

/// Whether every USN from `since` to `highest` is the `uSNChanged` of an object read: if
/// one is not, something the agent could not see was written (a deletion among others).
pub(crate) fn explained(since: u64, highest: u64, read: impl IntoIterator<Item = u64>) -> bool {
    if highest < since {
        return true;
    }
    let seen: BTreeSet<u64> = read.into_iter().filter(|u| (since..=highest).contains(u)).collect();
    seen.len() as u64 == highest - since + 1
}

/// Whether a notified object is what the `uSNChanged` read of users finds: a person of
/// class user (not a computer, which is a user too, nor a contact).
fn is_user(e: &Entry) -> bool {
    let has = |k: &str, pred: &dyn Fn(&str) -> bool| e.attrs.get(k).is_some_and(|v| v.iter().any(|x| pred(x)));
    has("objectClass", &|c| c.eq_ignore_ascii_case("user"))
        && has("objectCategory", &|c| c.get(..10).is_some_and(|p| p.eq_ignore_ascii_case("CN=Person,")))
}

/// Whether a notified object is a tombstone (`isDeleted: TRUE`; a deleted user or group
/// keeps its classes, not its `objectCategory`).
fn is_deleted(e: &Entry) -> bool {
    e.attrs.get("isDeleted").is_some_and(|v| v.iter().any(|x| x.eq_ignore_ascii_case("TRUE")))
}

/// What a changed object is to a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A tombstone: its USN stays unexplained (the membership check finds the deletion),
    /// and it changes no other object's DN.
    Deleted,
    Group,
    User,
    /// An OU, a container, a computer, a contact...: its USN stays unexplained, and it may
    /// have changed the DNs under it.
    Other,
}

fn kind_of(e: &Entry) -> Kind {
    if is_deleted(e) {
        Kind::Deleted
    } else if is_group(e) {
        Kind::Group
    } else if is_user(e) {
        Kind::User
    } else {
        Kind::Other
    }
}

fn is_group(e: &Entry) -> bool {
    e.attrs.get("objectClass").is_some_and(|v| v.iter().any(|c| c.eq_ignore_ascii_case("group")))
}

/// The notified objects (in USN order) that account for every USN from `since` on without
/// a gap, each object once in its latest version, and the last USN they account for; `None`
/// when `since` itself is not accounted for. A group notified with only part of its members
/// ends the run.
pub(crate) fn notified_run(since: u64, entries: Vec<Entry>) -> Option<(u64, Vec<Entry>)> {
    let mut next = since;
    let mut latest: HashMap<String, usize> = HashMap::new();
    let mut run: Vec<Option<Entry>> = Vec::new();
    for e in entries {
        let usn = usn_changed(&e);
        if usn < since {
            continue;
        }
        // No object accounts for `next`; or this one carries only part of a group's members
        // (`member;range=…`), whose rest read now could be torn by later writes: the cycle
        // reads it afresh instead.
        if usn > next || e.attrs.keys().any(|k| k.contains(";range=")) {
            break;
        }
        next = next.max(usn + 1);
        if let Some(i) = latest.insert(guid_hex(&e), run.len()) {
            run[i] = None;
        }
        run.push(Some(e));
    }
    (next > since).then(|| (next - 1, run.into_iter().flatten().collect()))
}

/// The most USNs a cycle reads by exact value (one search, a filter of this many terms);
/// past it, by `(uSNChanged>=N)`.
pub const EXACT_MAX: u64 = 200;

/// `(|(uSNChanged=since)…(uSNChanged=highest))`: the objects whose latest write took one of
/// these USNs. An equality on `uSNChanged` is served by its index; on Samba (TDB) a
/// `uSNChanged>=` range is not, and scans the naming context (~150 ms at 10,000 users against
/// ~1 ms; docs/performance.md).
fn exact_usns_filter(since: u64, highest: u64) -> String {
    let mut f = String::from("(|");
    for u in since..=highest {
        f.push_str(&format!("(uSNChanged={u})"));
    }
    f.push(')');
    f
}

/// Where an incremental cycle's changed objects come from, decided once per cycle.
pub(crate) enum Changes {
    /// What the change notifications delivered (a run without a gap).
    Notified(Vec<Entry>),
    /// One search for the objects holding exactly the USNs since the watermark.
    Exact,
    /// `(uSNChanged>=N)` searches.
    Scan,
}

impl Changes {
    /// How a cycle without notifications reads the USNs `since..=highest`: by exact value up
    /// to [`EXACT_MAX`] of them, else by range (also when the USN went back, as on another
    /// DC after a failover: USNs are each DC's own).
    pub(crate) fn between(since: u64, highest: u64) -> Changes {
        if highest >= since && highest - since < EXACT_MAX {
            Changes::Exact
        } else {
            Changes::Scan
        }
    }

    pub(crate) fn kind(&self) -> ReadKind {
        match self {
            Changes::Notified(_) => ReadKind::Notified,
            Changes::Exact => ReadKind::Exact,
            Changes::Scan => ReadKind::Scan,
        }
    }
}

/// What an incremental cycle read of the objects changed since the watermark.
pub(crate) struct Changed {
    pub(crate) groups: Vec<GroupEntry>,
    pub(crate) users: Vec<Entry>,
    /// The USNs the users and groups account for.
    pub(crate) usns: Vec<u64>,
    /// Whether some other object may have changed too: an OU or a container was read (a
    /// rename or a move changes the DNs under it without moving their USNs), or the read
    /// (by range, users and groups only) cannot tell.
    pub(crate) others: bool,
}

/// The objects changed since the cached USN, as `changes` says: the notified ones; those
/// holding exactly the USNs up to `highest` (one indexed search); or those whose
/// `uSNChanged` passed `since` (groups, then users, anywhere in the naming context).
pub(crate) async fn changed_objects(
    ldap: &mut Ldap,
    nc: &str,
    since: u64,
    highest: u64,
    changes: Changes,
) -> Result<Changed, AgentError> {
    let objects = match changes {
        Changes::Notified(n) => n,
        Changes::Exact => paged_search(ldap, nc, &exact_usns_filter(since, highest), &notified_attrs()).await?,
        Changes::Scan => {
            let filter = format!("(&(objectClass=group)(uSNChanged>={since}))");
            let groups = tether_ad::read::read_groups_where(ldap, nc, &filter).await?;
            let users = paged_search(ldap, nc, &format!("(&{USERS}(uSNChanged>={since}))"), USER_ATTRS).await?;
            let usns = groups.iter().map(|g| g.usn).chain(users.iter().map(usn_changed)).collect();
            return Ok(Changed { groups, users, usns, others: true });
        }
    };
    // Only users and groups account for their USN, as in the range read: a USN held by an OU
    // or a container (a rename or a move, which changes no child's USN on AD) stays
    // unexplained, and so triggers the membership check, which then also finds the groups'
    // new DNs (`others`).
    let mut c = Changed { groups: Vec::new(), users: Vec::new(), usns: Vec::new(), others: false };
    for e in objects {
        match kind_of(&e) {
            Kind::Deleted => {}
            Kind::Group => {
                c.usns.push(usn_changed(&e));
                c.groups.push(tether_ad::read::group_entry(ldap, &e).await?);
            }
            Kind::User => {
                c.usns.push(usn_changed(&e));
                c.users.push(e);
            }
            Kind::Other => c.others = true,
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn usns_explained_by_the_objects_read() {
        #[rustfmt::skip]
        let rows: [(u64, u64, &[u64], bool); 7] = [
            // since, highest, uSNChanged of the objects read, explained
            (10, 9,  &[],           true),  // nothing moved
            (10, 10, &[10],         true),  // one edit, read
            (10, 12, &[10, 11, 12], true),  // three objects, each read
            (10, 12, &[12, 11, 10, 13], true), // and one written during the read
            (10, 10, &[],           false), // a deletion: the tombstone is not readable
            (10, 12, &[10, 12],     false), // a deletion among edits
            (10, 11, &[11, 11],     false), // one object written twice shows its last USN only
        ];
        for (since, highest, read, want) in rows {
            assert_eq!(super::explained(since, highest, read.iter().copied()), want, "{since}..={highest} {read:?}");
        }
    }

    /// A notified object: `guid` (one byte, repeated) at `usn`.
    fn obj(guid: u8, usn: u64) -> super::Entry {
        super::Entry {
            dn: format!("CN=o{guid},DC=x"),
            attrs: [("uSNChanged".to_string(), vec![usn.to_string()])].into(),
            bin_attrs: [("objectGUID".to_string(), vec![vec![guid; 16]])].into(),
        }
    }

    #[test]
    fn notified_objects_stand_in_for_a_read_up_to_the_first_gap() {
        type Objects = &'static [(u8, u64)];
        type Row = (u64, Objects, Option<(u64, Objects)>);
        #[rustfmt::skip]
        let rows: [Row; 8] = [
            // since, notified (object, USN) in USN order, (last USN accounted for, objects applied)
            (10, &[],                          None),                          // nothing notified
            (10, &[(1, 10)],                   Some((10, &[(1, 10)]))),        // one edit
            (10, &[(1, 10), (2, 11), (3, 12)], Some((12, &[(1, 10), (2, 11), (3, 12)]))),
            (10, &[(1, 11)],                   None),                          // 10 unexplained (a deletion)
            (10, &[(1, 10), (2, 12)],          Some((10, &[(1, 10)]))),        // a gap at 11: stop before it
            (10, &[(1, 8), (2, 9), (1, 10)],   Some((10, &[(1, 10)]))),        // already applied ones skipped
            (10, &[(1, 10), (2, 11), (1, 12)], Some((12, &[(2, 11), (1, 12)]))), // latest version once
            (10, &[(1, 10), (1, 10), (2, 11)], Some((11, &[(1, 10), (2, 11)]))), // notified twice
        ];
        // A group notified with part of its members ends the run before it.
        let mut ranged = obj(3, 11);
        ranged.attrs.insert("member;range=0-1499".into(), vec!["CN=a,DC=x".into()]);
        let run = super::notified_run(10, vec![obj(1, 10), ranged, obj(2, 12)]).map(|(last, es)| (last, es.len()));
        assert_eq!(run, Some((10, 1)));
        for (since, notified, want) in rows {
            let got = super::notified_run(since, notified.iter().map(|&(g, u)| obj(g, u)).collect());
            let got = got.map(|(last, es)| {
                (
                    last,
                    es.iter().map(|e| (super::guid_hex(e)[..2].to_string(), super::usn_changed(e))).collect::<Vec<_>>(),
                )
            });
            let want =
                want.map(|(last, es)| (last, es.iter().map(|&(g, u)| (format!("{g:02x}"), u)).collect::<Vec<_>>()));
            assert_eq!(got, want, "since {since}, notified {notified:?}");
        }
    }

    #[test]
    fn notified_objects_are_told_apart_tombstones_first() {
        use super::Kind::{Deleted, Group, Other, User};
        type Row = (&'static [&'static str], Option<&'static str>, Option<&'static str>, super::Kind);
        #[rustfmt::skip]
        let rows: [Row; 7] = [
            // objectClass, objectCategory, isDeleted, kind
            (&["top", "person", "organizationalPerson", "user"], Some("CN=Person,CN=Schema,CN=Configuration,DC=x"), None, User),
            (&["top", "group"], Some("CN=Group,CN=Schema,CN=Configuration,DC=x"), None, Group),
            // A tombstone keeps its classes, loses its category.
            (&["top", "person", "organizationalPerson", "user"], None, Some("TRUE"), Deleted),
            (&["top", "group"], None, Some("TRUE"), Deleted),
            (&["top", "person", "organizationalPerson", "user", "computer"], Some("CN=Computer,CN=Schema,CN=Configuration,DC=x"), None, Other),
            (&["top", "organizationalUnit"], Some("CN=Organizational-Unit,CN=Schema,CN=Configuration,DC=x"), None, Other),
            (&["top", "person", "organizationalPerson", "user"], Some("CN=Person,CN=Schema,CN=Configuration,DC=x"), Some("FALSE"), User),
        ];
        for (classes, category, deleted, want) in rows {
            let mut e = obj(1, 10);
            e.attrs.insert("objectClass".into(), classes.iter().map(|c| c.to_string()).collect());
            if let Some(c) = category {
                e.attrs.insert("objectCategory".into(), vec![c.into()]);
            }
            if let Some(d) = deleted {
                e.attrs.insert("isDeleted".into(), vec![d.into()]);
            }
            assert_eq!(super::kind_of(&e), want, "{classes:?} {category:?} {deleted:?}");
        }
    }

    #[test]
    fn a_few_usns_are_read_by_exact_value_and_many_by_range() {
        use super::ReadKind::{Exact, Scan};
        let rows = [
            (10, 10, Exact),
            (10, 12, Exact),
            (10, 10 + super::EXACT_MAX - 1, Exact),
            (10, 10 + super::EXACT_MAX, Scan),
            (10, 8, Scan), // the USN went back: no empty filter
        ];
        for (since, highest, want) in rows {
            assert_eq!(super::Changes::between(since, highest).kind(), want, "{since}..={highest}");
        }
        assert_eq!(super::exact_usns_filter(7, 9), "(|(uSNChanged=7)(uSNChanged=8)(uSNChanged=9))");
    }
}
