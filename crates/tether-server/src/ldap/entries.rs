//! The entries LDAP clients see, computed from the directory on each search: users as
//! `inetOrgPerson`, groups as `groupOfNames`, and the three containers (CONTRACT, "LDAP
//! server"). Attribute names keep their schema spelling; clients may ask in any case.

use ldap3_proto::proto::{LdapPartialAttribute, LdapSearchResultEntry};
use tether_core::group::Group;
use tether_core::ldap::Tree;
use tether_core::user::User;

/// An entry: its DN and attributes (name → values), operational ones apart.
#[derive(Clone, Debug)]
pub struct Entry {
    pub dn: String,
    pub attrs: Vec<(&'static str, Vec<String>)>,
    /// Returned only when asked for by name or with `+`.
    pub operational: Vec<(&'static str, Vec<String>)>,
}

impl Entry {
    /// The values of `name` (any case), user or operational.
    pub fn values(&self, name: &str) -> Option<&[String]> {
        self.attrs
            .iter()
            .chain(self.operational.iter())
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The entry as sent for a search that asked for `requested` (RFC 4511: none or `*`
    /// for every user attribute, `+` for the operational ones, `1.1` for none).
    pub fn to_result(&self, requested: &[String], types_only: bool) -> LdapSearchResultEntry {
        let all_user = requested.is_empty() || requested.iter().any(|a| a == "*");
        let all_operational = requested.iter().any(|a| a == "+");
        let asked = |k: &str| requested.iter().any(|a| a.eq_ignore_ascii_case(k));
        let pick = |(k, v): &(&'static str, Vec<String>), all: bool| {
            (all || asked(k)).then(|| LdapPartialAttribute {
                atype: k.to_string(),
                vals: if types_only { Vec::new() } else { v.iter().map(|s| s.as_bytes().to_vec()).collect() },
            })
        };
        let attributes = self
            .attrs
            .iter()
            .filter_map(|a| pick(a, all_user))
            .chain(self.operational.iter().filter_map(|a| pick(a, all_operational)))
            .collect();
        LdapSearchResultEntry { dn: self.dn.clone(), attributes }
    }
}

fn one(v: &str) -> Vec<String> {
    if v.is_empty() {
        Vec::new()
    } else {
        vec![v.to_string()]
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A stable entryUUID from an object id (RFC 4530 syntax).
fn entry_uuid(id: &str) -> String {
    let h = crate::crypto::sha256_hex(&format!("entryUUID:{id}"));
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// RFC 3339 → LDAP generalized time (`20261126213501Z`).
fn generalized_time(rfc3339: &str) -> Option<String> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).ok()?;
    let t = t.to_offset(time::UtcOffset::UTC);
    Some(format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

fn without_empty(attrs: Vec<(&'static str, Vec<String>)>) -> Vec<(&'static str, Vec<String>)> {
    attrs.into_iter().filter(|(_, v)| !v.is_empty()).collect()
}

/// A user, with the names of the groups in LDAP it is in.
pub fn user(tree: &Tree, u: &User, groups: &[impl AsRef<str>]) -> Entry {
    let cn = if u.displayname.is_empty() { format!("{} {}", u.firstname, u.lastname) } else { u.displayname.clone() };
    // posixAccount only with both unix ids (users stored before them get theirs at start).
    let posix = u.unix_uid.zip(u.unix_guid);
    let mut classes = vec!["top", "person", "organizationalPerson", "inetOrgPerson"];
    if posix.is_some() {
        classes.push("posixAccount");
    }
    let number = |n: Option<u32>| n.map(|n| vec![n.to_string()]).unwrap_or_default();
    let attrs = vec![
        ("objectClass", strs(&classes)),
        ("uid", one(&u.username)),
        ("cn", one(cn.trim())),
        ("givenName", one(&u.firstname)),
        ("sn", one(&u.lastname)),
        ("mail", one(&u.email)),
        ("displayName", one(&u.displayname)),
        ("title", one(&u.job_title)),
        ("telephoneNumber", u.phone_numbers.iter().map(|p| p.number.clone()).filter(|n| !n.is_empty()).collect()),
        ("memberOf", groups.iter().map(|g| tree.group_dn(g.as_ref())).collect()),
        ("uidNumber", number(posix.map(|p| p.0))),
        ("gidNumber", number(posix.map(|p| p.1))),
        ("homeDirectory", if posix.is_some() { vec![format!("/home/{}", u.username)] } else { Vec::new() }),
        ("loginShell", if posix.is_some() { vec!["/bin/bash".to_string()] } else { Vec::new() }),
    ];
    let created = generalized_time(&u.created);
    let operational = vec![
        ("entryUUID", vec![entry_uuid(&u.id)]),
        ("createTimestamp", created.clone().into_iter().collect()),
        ("modifyTimestamp", created.into_iter().collect()),
    ];
    Entry { dn: tree.user_dn(&u.username), attrs: without_empty(attrs), operational: without_empty(operational) }
}

/// A group, with its members that are in LDAP.
pub fn group(tree: &Tree, g: &Group, members: &[&User]) -> Entry {
    let gid = crate::ops::unix_ids::unix_gid(g);
    let classes: &[&str] =
        if gid.is_some() { &["top", "groupOfNames", "posixGroup"] } else { &["top", "groupOfNames"] };
    let attrs = vec![
        ("objectClass", strs(classes)),
        ("cn", one(&g.name)),
        ("gidNumber", gid.map(|n| vec![n.to_string()]).unwrap_or_default()),
        ("description", one(&g.description)),
        ("member", members.iter().map(|u| tree.user_dn(&u.username)).collect()),
        ("memberUid", members.iter().map(|u| u.username.clone()).collect()),
    ];
    let operational = vec![("entryUUID", vec![entry_uuid(&g.id)])];
    Entry { dn: tree.group_dn(&g.name), attrs: without_empty(attrs), operational }
}

/// The base entry and the two containers.
pub fn containers(tree: &Tree) -> Vec<Entry> {
    let o = tree.base.split(',').next().and_then(|r| r.split_once('=')).map(|(_, v)| v.trim()).unwrap_or("tether");
    let base = Entry {
        dn: tree.base.clone(),
        attrs: vec![("objectClass", strs(&["top", "organization"])), ("o", vec![o.to_string()])],
        operational: Vec::new(),
    };
    let ou = |dn: String, name: &str| Entry {
        dn,
        attrs: vec![("objectClass", strs(&["top", "organizationalUnit"])), ("ou", vec![name.to_string()])],
        operational: Vec::new(),
    };
    vec![base, ou(tree.users(), "Users"), ou(tree.groups(), "Groups")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_chosen_as_rfc_4511_says() {
        let tree = Tree::new("o=tether");
        let u = User {
            id: "0123456789abcdef01234567".into(),
            username: "ann".into(),
            firstname: "Ann".into(),
            lastname: "Lee".into(),
            email: "ann@example.test".into(),
            created: "2026-11-26T21:35:01Z".into(),
            ..User::default()
        };
        let plain = user(&tree, &u, &[] as &[&str]);
        assert!(
            plain.values("uidNumber").is_none()
                && !plain.values("objectClass").unwrap().contains(&"posixAccount".into())
        );
        let u = User { unix_uid: Some(5001), unix_guid: Some(5001), ..u };
        let e = user(&tree, &u, &["ops"]);
        assert_eq!(e.values("objectClass").unwrap().last().unwrap(), "posixAccount");
        assert_eq!(
            (e.values("uidNumber").unwrap(), e.values("homeDirectory").unwrap()),
            (&["5001".to_string()][..], &["/home/ann".to_string()][..])
        );
        let names = |r: LdapSearchResultEntry| r.attributes.into_iter().map(|a| a.atype).collect::<Vec<_>>();
        let all = names(e.to_result(&[], false));
        assert!(all.contains(&"memberOf".to_string()) && !all.contains(&"entryUUID".to_string()), "{all:?}");
        assert!(!all.contains(&"title".to_string()), "empty attributes are left out");
        assert_eq!(names(e.to_result(&["MAIL".into(), "createtimestamp".into()], false)), ["mail", "createTimestamp"]);
        assert_eq!(names(e.to_result(&["1.1".into()], false)), Vec::<String>::new());
        let plus = names(e.to_result(&["+".into()], false));
        assert_eq!(plus, ["entryUUID", "createTimestamp", "modifyTimestamp"]);
        assert_eq!(e.values("createTimestamp").unwrap(), ["20261126213501Z"]);
        assert_eq!(e.values("memberof").unwrap(), ["cn=ops,ou=Groups,o=tether"]);
        assert!(e.to_result(&["*".into()], true).attributes.iter().all(|a| a.vals.is_empty()));
        let uuid = &e.values("entryUUID").unwrap()[0];
        assert_eq!((uuid.len(), uuid.matches('-').count()), (36, 4));
    }
}
