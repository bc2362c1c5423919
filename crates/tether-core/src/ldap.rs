//! The directory as LDAP sees it: the one LDAP server object (its policy for locked and
//! expired users) and the names of its tree under the base DN. Entries themselves are built
//! by the LDAP front end; the rules that decide who is in LDAP and who may bind live here.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::user::User;

/// What a front end does with a user whose account is locked, or whose password expired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum UserAction {
    /// Refused.
    #[default]
    #[serde(rename = "REMOVE")]
    Remove,
    /// Let through all the same.
    #[serde(rename = "MAINTAIN")]
    Maintain,
}

/// The directory's LDAP server (there is one), in the JumpCloud `ldapservers` shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct LdapServer {
    pub id: String,
    pub name: String,
    pub user_lockout_action: UserAction,
    pub user_password_expiration_action: UserAction,
}

impl LdapServer {
    /// Whether `u` may bind, its password being right: suspended users never; locked users
    /// and users whose password expired as the server's actions say.
    pub fn admits(&self, u: &User) -> bool {
        u.state == crate::user::UserState::Activated
            && (!u.account_locked || self.user_lockout_action == UserAction::Maintain)
            && (!u.password_expired || self.user_password_expiration_action == UserAction::Maintain)
    }
}

/// The names of the tree under a base DN `B`: `uid=NAME,ou=Users,B` and `cn=NAME,ou=Groups,B`.
#[derive(Clone, Debug)]
pub struct Tree {
    /// As configured (`o=tether`).
    pub base: String,
    norm_base: String,
}

/// What a DN names in the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Named {
    Base,
    Users,
    Groups,
    User(String),
    Group(String),
    /// Not in this tree.
    Outside,
}

/// A DN in a comparable form: attribute types lowercased, values lowercased, no spaces
/// around `,` and `=` (the forms clients send for one name). Escaped commas stay escaped.
pub fn normalize_dn(dn: &str) -> String {
    split_rdns(dn)
        .iter()
        .map(|rdn| match rdn.split_once('=') {
            Some((k, v)) => format!("{}={}", k.trim().to_lowercase(), v.trim().to_lowercase()),
            None => rdn.trim().to_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The DN of an entry's parent: what follows its first unescaped comma (`CN=a\,b,OU=x` →
/// `OU=x`); empty for a DN of one RDN.
pub fn parent_dn(dn: &str) -> &str {
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => return &dn[i + 1..],
            _ => {}
        }
    }
    ""
}

/// The RDNs of a DN, split on unescaped commas.
fn split_rdns(dn: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if !cur.trim().is_empty() || !out.is_empty() {
        out.push(cur);
    }
    out
}

/// An RDN value with RFC 4514 escapes removed (`\,` → `,`, `\2C` → `,`).
fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(b[i + 1]);
                    i += 2;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An RDN value escaped for a DN (RFC 4514).
pub fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == v.chars().count() - 1 => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
    out
}

impl Tree {
    pub fn new(base: &str) -> Tree {
        Tree { base: base.to_string(), norm_base: normalize_dn(base) }
    }

    /// A tree under `base`, which must be a DN (`o=tether`, `dc=example,dc=com`).
    pub fn parse(base: &str) -> Result<Tree, String> {
        let rdns = split_rdns(base);
        if rdns.is_empty() {
            return Err("a base DN is needed, e.g. o=tether".into());
        }
        for rdn in &rdns {
            match rdn.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {}
                _ => return Err(format!("`{}` is not an RDN (type=value)", rdn.trim())),
            }
        }
        Ok(Tree::new(base.trim()))
    }

    pub fn users(&self) -> String {
        format!("ou=Users,{}", self.base)
    }

    pub fn groups(&self) -> String {
        format!("ou=Groups,{}", self.base)
    }

    pub fn user_dn(&self, username: &str) -> String {
        format!("uid={},ou=Users,{}", escape_value(username), self.base)
    }

    pub fn group_dn(&self, name: &str) -> String {
        format!("cn={},ou=Groups,{}", escape_value(name), self.base)
    }

    /// What `dn` names.
    pub fn name(&self, dn: &str) -> Named {
        let n = normalize_dn(dn);
        if n == self.norm_base {
            return Named::Base;
        }
        let Some(rest) = n.strip_suffix(&self.norm_base).and_then(|r| r.strip_suffix(',')) else {
            return Named::Outside;
        };
        let rdns = split_rdns(rest);
        match rdns.as_slice() {
            [ou] if ou == "ou=users" => Named::Users,
            [ou] if ou == "ou=groups" => Named::Groups,
            [leaf, ou] => {
                // The value as the client wrote it (case kept: usernames compare without case
                // in the store anyway).
                let original = split_rdns(dn);
                let raw = original.first().and_then(|r| r.split_once('=')).map(|(_, v)| unescape(v.trim()));
                match (leaf.split_once('='), ou.as_str(), raw) {
                    (Some(("uid", _)), "ou=users", Some(v)) => Named::User(v),
                    (Some(("cn", _)), "ou=groups", Some(v)) => Named::Group(v),
                    _ => Named::Outside,
                }
            }
            _ => Named::Outside,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_of_a_dn_follows_its_first_unescaped_comma() {
        for (dn, want) in [
            ("CN=Ops,OU=Groups,DC=x", "OU=Groups,DC=x"),
            ("CN=Ops\\, Paris,OU=Groups,DC=x", "OU=Groups,DC=x"),
            ("CN=a\\\\,OU=x", "OU=x"),
            ("CN=a\\2C b,OU=x", "OU=x"),
            ("DC=x", ""),
            ("", ""),
        ] {
            assert_eq!(parent_dn(dn), want, "{dn}");
        }
    }

    #[test]
    fn names_in_the_tree() {
        let t = Tree::new("o=tether");
        let rows = [
            ("o=tether", Named::Base),
            (" O = Tether ", Named::Base),
            ("ou=Users,o=tether", Named::Users),
            ("OU=groups, O=TETHER", Named::Groups),
            ("uid=Ann.Lee,ou=Users,o=tether", Named::User("Ann.Lee".into())),
            ("UID = ann , OU=users,o=tether", Named::User("ann".into())),
            ("cn=Ops\\, Paris,ou=Groups,o=tether", Named::Group("Ops, Paris".into())),
            ("cn=ann,ou=Users,o=tether", Named::Outside),
            ("uid=ann,ou=Users,o=other", Named::Outside),
            ("uid=ann,ou=x,ou=Users,o=tether", Named::Outside),
            ("", Named::Outside),
        ];
        for (dn, want) in rows {
            assert_eq!(t.name(dn), want, "{dn}");
        }
        assert_eq!(t.group_dn("Ops, Paris"), "cn=Ops\\, Paris,ou=Groups,o=tether");
        for bad in ["", "tether", "o=", "o=tether,,dc=x", "=x"] {
            assert!(Tree::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Tree::parse(" dc=example,dc=com ").unwrap().base, "dc=example,dc=com");
        assert_eq!(t.name(&t.group_dn("Ops, Paris")), Named::Group("Ops, Paris".into()));
    }

    #[test]
    fn locked_and_expired_users_by_the_servers_actions() {
        let u = |locked, expired, state| User {
            account_locked: locked,
            password_expired: expired,
            state,
            ..User::default()
        };
        use crate::user::UserState::*;
        let remove = LdapServer::default();
        let maintain = LdapServer {
            user_lockout_action: UserAction::Maintain,
            user_password_expiration_action: UserAction::Maintain,
            ..LdapServer::default()
        };
        // (locked, expired, state, admitted by REMOVE, admitted by MAINTAIN)
        let rows = [
            (false, false, Activated, true, true),
            (true, false, Activated, false, true),
            (false, true, Activated, false, true),
            (false, false, Suspended, false, false),
            (false, false, Staged, false, false),
        ];
        for (locked, expired, state, r, m) in rows {
            let user = u(locked, expired, state);
            assert_eq!((remove.admits(&user), maintain.admits(&user)), (r, m), "{locked} {expired} {state:?}");
        }
    }
}
