//! Search filters (RFC 4515) evaluated on computed entries, and the shortcut that keeps an
//! indexed lookup (`(uid=x)`, as SSSD and every application send at each login) from
//! reading every user.
//!
//! Matching is case-insensitive for every attribute here (the schema's rules for the
//! attributes served: names, mail, DNs, object classes), and DN-valued attributes compare in
//! their normalized form. Extensible matches are not supported and match nothing.

use ldap3_proto::proto::{LdapFilter, LdapSubstringFilter};
use tether_core::ldap::normalize_dn;

use super::entries::Entry;
use crate::ops::ldap::GroupsOf;
use tether_store::UserKey;

const DN_VALUED: [&str; 2] = ["member", "memberOf"];

fn is_dn_valued(attr: &str) -> bool {
    DN_VALUED.iter().any(|a| a.eq_ignore_ascii_case(attr))
}

fn fold(attr: &str, v: &str) -> String {
    if is_dn_valued(attr) {
        normalize_dn(v)
    } else {
        v.to_lowercase()
    }
}

/// Whether `e` matches `f`.
pub fn matches(f: &LdapFilter, e: &Entry) -> bool {
    match f {
        LdapFilter::And(fs) => fs.iter().all(|f| matches(f, e)),
        LdapFilter::Or(fs) => fs.iter().any(|f| matches(f, e)),
        LdapFilter::Not(f) => !matches(f, e),
        LdapFilter::Present(a) => a.eq_ignore_ascii_case("objectClass") || e.values(a).is_some(),
        LdapFilter::Equality(a, v) | LdapFilter::Approx(a, v) => {
            let want = fold(a, v);
            e.values(a).is_some_and(|vs| vs.iter().any(|x| fold(a, x) == want))
        }
        LdapFilter::Substring(a, sub) => e.values(a).is_some_and(|vs| vs.iter().any(|x| substring(&fold(a, x), sub))),
        LdapFilter::GreaterOrEqual(a, v) => e.values(a).is_some_and(|vs| vs.iter().any(|x| order(x, v).is_ge())),
        LdapFilter::LessOrEqual(a, v) => e.values(a).is_some_and(|vs| vs.iter().any(|x| order(x, v).is_le())),
        LdapFilter::Extensible(_) => false,
    }
}

/// Numbers compare as numbers, anything else as lowercased text.
fn order(x: &str, v: &str) -> std::cmp::Ordering {
    match (x.parse::<i64>(), v.parse::<i64>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => x.to_lowercase().cmp(&v.to_lowercase()),
    }
}

fn substring(value: &str, sub: &LdapSubstringFilter) -> bool {
    let mut rest = value;
    if let Some(i) = &sub.initial {
        let Some(r) = rest.strip_prefix(i.to_lowercase().as_str()) else { return false };
        rest = r;
    }
    for any in &sub.any {
        let any = any.to_lowercase();
        let Some(at) = rest.find(any.as_str()) else { return false };
        rest = &rest[at + any.len()..];
    }
    match &sub.final_ {
        Some(f) => rest.ends_with(f.to_lowercase().as_str()),
        None => true,
    }
}

/// The users a filter can only match, by username (`(uid=x)`) or by number
/// (`(uidNumber=n)`, as `getent passwd 1234` and `ls -l` ask), alone, in an `&`, or `|` of
/// them, so a search looks those users up instead of reading everyone; `None` when it may
/// match others. A `uidNumber` that is no number names nobody.
pub fn only_users(f: &LdapFilter) -> Option<Vec<(String, UserKey)>> {
    match f {
        LdapFilter::Equality(a, v) if a.eq_ignore_ascii_case("uid") => Some(vec![(v.clone(), UserKey::Username)]),
        LdapFilter::Equality(a, v) if a.eq_ignore_ascii_case("uidNumber") => {
            Some(v.trim().parse::<u32>().map(|n| vec![(n.to_string(), UserKey::UnixUid)]).unwrap_or_default())
        }
        LdapFilter::And(fs) => fs.iter().find_map(only_users),
        LdapFilter::Or(fs) => {
            let all: Option<Vec<Vec<(String, UserKey)>>> = fs.iter().map(only_users).collect();
            all.map(|v| v.concat())
        }
        _ => None,
    }
}

/// The groups a filter can only match, so a search reads those instead of everything in
/// LDAP: an `&` that names a group class (`posixGroup`, `groupOfNames`: no user entry has
/// them) and a member (`memberUid=x`, or `member=` a user's DN), a gid (`gidNumber=n`) or a
/// name (`cn=x`), as SSSD and nslcd ask at each login. `None` when it may match other
/// entries.
pub fn only_groups(f: &LdapFilter, tree: &tether_core::ldap::Tree) -> Option<GroupsOf> {
    let LdapFilter::And(fs) = f else { return None };
    let eq = |attr: &str| {
        fs.iter().find_map(|f| match f {
            LdapFilter::Equality(a, v) if a.eq_ignore_ascii_case(attr) => Some(v.clone()),
            _ => None,
        })
    };
    let group_class = fs.iter().any(|f| {
        matches!(f, LdapFilter::Equality(a, v) if a.eq_ignore_ascii_case("objectClass")
            && (v.eq_ignore_ascii_case("posixGroup") || v.eq_ignore_ascii_case("groupOfNames")))
    });
    if !group_class {
        return None;
    }
    if let Some(name) = eq("memberUid") {
        return Some(GroupsOf::Member(name));
    }
    if let Some(dn) = eq("member") {
        return Some(match tree.name(&dn) {
            tether_core::ldap::Named::User(name) => GroupsOf::Member(name),
            // No user of this tree: no group has it as a member.
            _ => GroupsOf::Member(String::new()),
        });
    }
    if let Some(gid) = eq("gidNumber") {
        return Some(match gid.trim().parse::<u32>() {
            Ok(n) => GroupsOf::Gid(n),
            // No group has a gid that is no number, nor an empty name.
            Err(_) => GroupsOf::Named(String::new()),
        });
    }
    eq("cn").map(GroupsOf::Named)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3_proto::parse_ldap_filter_str;

    fn entry() -> Entry {
        Entry {
            dn: "uid=ann,ou=Users,o=tether".into(),
            attrs: vec![
                ("objectClass", vec!["top".into(), "inetOrgPerson".into()]),
                ("uid", vec!["ann".into()]),
                ("cn", vec!["Ann Lee".into()]),
                ("mail", vec!["Ann.Lee@Example.test".into()]),
                ("memberOf", vec!["cn=Ops,ou=Groups,o=tether".into()]),
                ("uidNumber", vec!["5001".into()]),
            ],
            operational: vec![("entryUUID", vec!["u-1".into()])],
        }
    }

    #[test]
    fn rfc_4515_forms() {
        let e = entry();
        let rows = [
            ("(uid=ann)", true),
            ("(UID=ANN)", true),
            ("(uid=bob)", false),
            ("(objectClass=*)", true),
            ("(objectclass=inetorgperson)", true),
            ("(title=*)", false),
            ("(cn=ann*)", true),
            ("(cn=*lee)", true),
            ("(cn=a*n*e*)", true),
            ("(cn=*x*)", false),
            ("(mail=ann.lee@example.test)", true),
            ("(uidNumber>=5000)", true),
            ("(uidNumber<=999)", false),
            ("(uidNumber>=10000)", false),
            ("(&(objectClass=inetOrgPerson)(uid=ann))", true),
            ("(|(uid=bob)(mail=ann.lee@example.test))", true),
            ("(!(uid=ann))", false),
            ("(entryUUID=u-1)", true),
            ("(mail~=ANN.LEE@example.test)", true),
            ("(cn:caseExactMatch:=Ann)", false),
        ];
        for (f, want) in rows {
            let parsed = parse_ldap_filter_str(f).unwrap_or_else(|e| panic!("{f}: {e:?}"));
            assert_eq!(matches(&parsed, &e), want, "{f}");
        }
        // DN values compare normalized (built directly: the crate's text parser takes no `=`
        // in a value, which clients send in BER anyway).
        let member_of = |v: &str| LdapFilter::Equality("memberof".into(), v.into());
        assert!(matches(&member_of("CN=ops, OU=groups,O=Tether"), &e));
        assert!(!matches(&member_of("cn=dev,ou=Groups,o=tether"), &e));
    }

    #[test]
    fn group_lookups_are_recognised() {
        let tree = tether_core::ldap::Tree::new("o=tether");
        let member = |m: &str| Some(GroupsOf::Member(m.into()));
        let rows = [
            ("(&(objectClass=posixGroup)(memberUid=ann))", member("ann")),
            ("(&(memberUid=ann)(objectclass=GROUPOFNAMES))", member("ann")),
            ("(&(objectClass=posixGroup)(cn=ops))", Some(GroupsOf::Named("ops".into()))),
            ("(&(objectClass=posixGroup)(gidNumber=5001))", Some(GroupsOf::Gid(5001))),
            ("(&(objectClass=posixGroup)(gidNumber=x1))", Some(GroupsOf::Named(String::new()))),
            ("(gidNumber=5001)", None),
            ("(memberUid=ann)", None),
            ("(&(objectClass=inetOrgPerson)(cn=ops))", None),
            ("(|(objectClass=posixGroup)(memberUid=ann))", None),
        ];
        for (f, want) in rows {
            assert_eq!(only_groups(&parse_ldap_filter_str(f).unwrap(), &tree), want, "{f}");
        }
        // member= a DN (built directly: the text parser takes no `=` in a value).
        let by_dn = |dn: &str| {
            LdapFilter::And(vec![
                LdapFilter::Equality("objectClass".into(), "posixGroup".into()),
                LdapFilter::Equality("member".into(), dn.into()),
            ])
        };
        assert_eq!(only_groups(&by_dn("uid=Ann,ou=Users,o=tether"), &tree), member("Ann"));
        assert_eq!(only_groups(&by_dn("cn=x,ou=Groups,o=tether"), &tree), member(""));
    }

    #[test]
    fn user_lookups_are_recognised() {
        use UserKey::{UnixUid, Username};
        let rows = [
            ("(uid=ann)", Some(vec![("ann", Username)])),
            ("(&(objectClass=posixAccount)(uid=ann))", Some(vec![("ann", Username)])),
            ("(|(uid=ann)(uid=bob))", Some(vec![("ann", Username), ("bob", Username)])),
            ("(&(objectClass=posixAccount)(uidNumber=70123))", Some(vec![("70123", UnixUid)])),
            ("(|(uid=ann)(uidNumber=5001))", Some(vec![("ann", Username), ("5001", UnixUid)])),
            ("(uidNumber=abc)", Some(vec![])),
            ("(uidNumber>=5000)", None),
            ("(|(uid=ann)(mail=x))", None),
            ("(objectClass=*)", None),
            ("(!(uid=ann))", None),
        ];
        for (f, want) in rows {
            let got = only_users(&parse_ldap_filter_str(f).unwrap());
            let want = want.map(|v| v.into_iter().map(|(k, by)| (k.to_string(), by)).collect::<Vec<_>>());
            assert_eq!(got, want, "{f}");
        }
    }
}
