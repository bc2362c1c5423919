//! Reading and writing AD user objects.

use std::collections::HashSet;

use ldap3::{dn_escape, ldap_escape, Ldap, Mod, Scope, SearchEntry};

use crate::error::AdError;

/// `unicodePwd` value: the password in double quotes, UTF-16LE.
pub fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"").encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// A user as read from AD (the attributes Tether uses so far).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdUser {
    pub dn: String,
    pub object_guid: Vec<u8>,
    pub sam_account_name: String,
    pub given_name: Option<String>,
    pub sn: Option<String>,
    pub mail: Option<String>,
    pub user_account_control: u32,
}

impl AdUser {
    pub fn disabled(&self) -> bool {
        self.user_account_control & 0x2 != 0
    }
}

/// A user to create.
#[derive(Clone, Debug)]
pub struct NewUser<'a> {
    /// The container, e.g. `CN=Users,DC=corp,DC=example,DC=com`.
    pub container: &'a str,
    pub sam_account_name: &'a str,
    pub given_name: &'a str,
    pub sn: &'a str,
    pub mail: &'a str,
    pub password: Option<&'a str>,
}

impl NewUser<'_> {
    /// The CN: "Given Sn".
    pub fn cn(&self) -> String {
        format!("{} {}", self.given_name, self.sn).trim().to_string()
    }
}

fn check(dn: &str, res: ldap3::LdapResult) -> Result<(), AdError> {
    if res.rc != 0 {
        return Err(AdError::Refused { dn: dn.to_string(), rc: res.rc, message: res.text });
    }
    Ok(())
}

/// Creates a user (`CN=<given sn>` in the container); enabled when it has a password.
/// Returns its DN.
pub async fn create_user(ldap: &mut Ldap, u: &NewUser<'_>) -> Result<String, AdError> {
    create_user_as(ldap, u, &u.cn(), u.mail, true).await
}

/// Creates a user with the given CN and userPrincipalName, enabled (with its password) or
/// left disabled. Returns its DN.
///
/// With a password, in one add: AD takes `unicodePwd` in an add over an encrypted
/// connection and checks it against the password policy there, so the account never exists
/// without its password, and a refused password leaves no account behind. One add instead of
/// an add and two modifies (the password, then enabling) costs a 10,000-user Samba DC ~30 %
/// less time per user (measured side by side with `ldapmodify`, docs/performance.md).
/// Without a password the account is created disabled, with "password not required" (546).
pub async fn create_user_as(
    ldap: &mut Ldap,
    u: &NewUser<'_>,
    cn: &str,
    upn: &str,
    enabled: bool,
) -> Result<String, AdError> {
    let dn = format!("CN={},{}", dn_escape(cn), u.container);
    let pwd = u.password.map(unicode_pwd);
    // 512 = a normal account, 514 = the same disabled, 546 = disabled, password not required.
    let uac = match (&pwd, enabled) {
        (Some(_), true) => "512",
        (Some(_), false) => "514",
        (None, _) => "546",
    };
    let mut attrs: Vec<(&[u8], HashSet<&[u8]>)> = vec![
        (b"objectClass", ["top", "person", "organizationalPerson", "user"].iter().map(|c| c.as_bytes()).collect()),
        (b"sAMAccountName", HashSet::from([u.sam_account_name.as_bytes()])),
        (b"givenName", HashSet::from([u.given_name.as_bytes()])),
        (b"sn", HashSet::from([u.sn.as_bytes()])),
        (b"mail", HashSet::from([u.mail.as_bytes()])),
        (b"userPrincipalName", HashSet::from([upn.as_bytes()])),
        (b"userAccountControl", HashSet::from([uac.as_bytes()])),
    ];
    if let Some(p) = &pwd {
        attrs.push((b"unicodePwd", HashSet::from([p.as_slice()])));
    }
    check(&dn, ldap.add(&dn, attrs).await?)?;
    Ok(dn)
}

/// An administrator's password reset (`unicodePwd` replace; TLS is mandatory for it).
pub async fn set_password(ldap: &mut Ldap, dn: &str, password: &str) -> Result<(), AdError> {
    let pwd = unicode_pwd(password);
    let m = vec![Mod::Replace(&b"unicodePwd"[..], HashSet::from([pwd.as_slice()]))];
    check(dn, ldap.modify(dn, m).await?)
}

/// The filter of a user by `sAMAccountName`, that term first: Samba intersects an AND's
/// indexed terms in the order written and stops once one narrows the candidates to fewer
/// than two, so `(objectCategory=person)` first loads every person of the domain before the
/// name narrows it. Measured on this project's Samba with 10,000 users: 3 ms a search with
/// the category first, 0.5 ms with the name first (the sync agent makes one or two such
/// searches for each user it writes, and for each member of a group it mirrors).
pub fn by_username(sam: &str) -> String {
    format!("(&(sAMAccountName={})(objectCategory=person)(objectClass=user))", ldap_escape(sam))
}

/// Finds a user by `sAMAccountName` below `base` (the sync agent's lookup by name, with the
/// fields tests and the benchmark look at).
pub async fn find_user(ldap: &mut Ldap, base: &str, sam: &str) -> Result<Option<AdUser>, AdError> {
    let filter = by_username(sam);
    let attrs = ["objectGUID", "sAMAccountName", "givenName", "sn", "mail", "userAccountControl"];
    let (entries, _) = ldap.search(base, Scope::Subtree, &filter, attrs).await?.success()?;
    let Some(e) = entries.into_iter().next() else { return Ok(None) };
    let e = SearchEntry::construct(e);
    let one = |k: &str| e.attrs.get(k).and_then(|v| v.first()).cloned();
    Ok(Some(AdUser {
        dn: e.dn.clone(),
        object_guid: crate::read::binary(&e, "objectGUID").unwrap_or_default(),
        sam_account_name: one("sAMAccountName").unwrap_or_default(),
        given_name: one("givenName"),
        sn: one("sn"),
        mail: one("mail"),
        user_account_control: one("userAccountControl").and_then(|v| v.parse().ok()).unwrap_or(0),
    }))
}

/// Creates a global security group `CN=<name>` in `container`; returns its DN.
pub async fn create_group(ldap: &mut Ldap, container: &str, name: &str) -> Result<String, AdError> {
    let dn = format!("CN={},{}", dn_escape(name), container);
    let attrs: Vec<(&str, HashSet<&str>)> = vec![
        ("objectClass", HashSet::from(["top", "group"])),
        ("sAMAccountName", HashSet::from([name])),
        // Global security group.
        ("groupType", HashSet::from(["-2147483646"])),
    ];
    check(&dn, ldap.add(&dn, attrs).await?)?;
    Ok(dn)
}

/// Adds (`add`) or removes a member DN of a group.
pub async fn set_member(ldap: &mut Ldap, group_dn: &str, member_dn: &str, add: bool) -> Result<(), AdError> {
    let vals = HashSet::from([member_dn]);
    let m = if add { Mod::Add("member", vals) } else { Mod::Delete("member", vals) };
    check(group_dn, ldap.modify(group_dn, vec![m]).await?)
}

/// Replaces single-valued attributes of an entry.
pub async fn replace_attrs(ldap: &mut Ldap, dn: &str, attrs: &[(&str, &str)]) -> Result<(), AdError> {
    let mods = attrs.iter().map(|(k, v)| Mod::Replace(*k, HashSet::from([*v]))).collect();
    check(dn, ldap.modify(dn, mods).await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        assert_eq!(super::unicode_pwd("ab"), vec![b'"', 0, b'a', 0, b'b', 0, b'"', 0]);
        assert_eq!(super::unicode_pwd("é").len(), 6);
    }

    #[test]
    fn a_user_is_looked_up_by_its_name_first_and_escaped() {
        // The order is what makes the search cheap on Samba (see `by_username`).
        assert_eq!(
            super::by_username("ann*)"),
            "(&(sAMAccountName=ann\\2a\\29)(objectCategory=person)(objectClass=user))"
        );
    }
}
