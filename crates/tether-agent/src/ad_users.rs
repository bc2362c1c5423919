//! Finding the AD user of a Tether user: by objectGUID when linked, else by sAMAccountName,
//! with the attributes the sync decisions read; and the domain's privileged groups, whose
//! members the sync agent never writes.

use tether_ad::ldap3::{Scope, SearchEntry};
use tether_ad::read::{guid_filter_value, BUILTIN_ADMINISTRATORS};
use tether_ad::{AdError, Ldap};

/// The attributes read for each AD user the sync agent looks at.
pub const ATTRS: [&str; 10] = [
    "objectGUID",
    "sAMAccountName",
    "givenName",
    "sn",
    "mail",
    "userAccountControl",
    "adminCount",
    "memberOf",
    "msDS-User-Account-Control-Computed",
    "pwdLastSet",
];

async fn search_one(ldap: &mut Ldap, base: &str, filter: &str) -> Result<Option<SearchEntry>, AdError> {
    let (entries, _) = ldap.search(base, Scope::Subtree, filter, ATTRS.to_vec()).await?.success()?;
    Ok(entries.into_iter().next().map(SearchEntry::construct))
}

/// A user just written, read again for what AD set on it: at its DN `dn` (one entry read, no
/// subtree searched), else, moved or renamed meanwhile, as [`find_user`] finds it.
pub async fn read_again(
    ldap: &mut Ldap,
    dn: &str,
    nc: &str,
    guid: Option<&str>,
    username: &str,
) -> Result<Option<SearchEntry>, AdError> {
    let r = ldap.search(dn, Scope::Base, "(objectClass=user)", ATTRS.to_vec()).await?;
    // No such object (32): moved or renamed meanwhile.
    if r.1.rc != 32 {
        let (entries, _) = r.success()?;
        if let Some(e) = entries.into_iter().next() {
            return Ok(Some(SearchEntry::construct(e)));
        }
    }
    find_user(ldap, nc, guid, username).await
}

/// The AD user of a Tether user: by objectGUID when linked, else by sAMAccountName.
pub async fn find_user(
    ldap: &mut Ldap,
    nc: &str,
    guid: Option<&str>,
    username: &str,
) -> Result<Option<SearchEntry>, AdError> {
    if let Some(g) = guid.filter(|g| tether_core::adi::is_guid_hex(g)) {
        if let Some(e) = search_one(ldap, nc, &format!("(objectGUID={})", guid_filter_value(g))).await? {
            return Ok(Some(e));
        }
    }
    search_one(ldap, nc, &tether_ad::by_username(username)).await
}

/// The well-known relative ids of the domain's privileged groups: Domain Admins and
/// Enterprise Admins.
const PRIVILEGED_RIDS: [u32; 2] = [512, 519];

/// A SID with one more sub-authority, `rid` (a group's SID from its domain's SID).
fn with_rid(domain_sid: &[u8], rid: u32) -> Option<Vec<u8>> {
    let count = *domain_sid.get(1)?;
    let mut sid = domain_sid.to_vec();
    sid[1] = count.checked_add(1)?;
    sid.extend_from_slice(&rid.to_le_bytes());
    Some(sid)
}

fn sid_filter_value(sid: &[u8]) -> String {
    sid.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// The DNs of the privileged groups (Domain Admins, Enterprise Admins, Administrators), found
/// by SID: renamed or localised groups are found all the same. Empty when the account may not
/// read them.
pub async fn privileged_groups(ldap: &mut Ldap, nc: &str) -> Result<Vec<String>, AdError> {
    let (head, _) = ldap.search(nc, Scope::Base, "(objectClass=*)", vec!["objectSid"]).await?.success()?;
    let domain_sid =
        head.into_iter().next().map(SearchEntry::construct).and_then(|e| tether_ad::read::binary(&e, "objectSid"));
    let mut sids: Vec<Vec<u8>> = vec![BUILTIN_ADMINISTRATORS.to_vec()];
    if let Some(d) = domain_sid {
        sids.extend(PRIVILEGED_RIDS.iter().filter_map(|rid| with_rid(&d, *rid)));
    }
    let f = format!("(|{})", sids.iter().map(|s| format!("(objectSid={})", sid_filter_value(s))).collect::<String>());
    let (entries, _) = ldap.search(nc, Scope::Subtree, &f, vec!["1.1"]).await?.success()?;
    Ok(entries.into_iter().map(|e| SearchEntry::construct(e).dn).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn group_sids_from_the_domain_sid() {
        // S-1-5-21-1-2-3 → S-1-5-21-1-2-3-512
        let domain = [1, 4, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0];
        let group = super::with_rid(&domain, 512).unwrap();
        assert_eq!((group[1], &group[24..]), (5, &[0u8, 2, 0, 0][..]));
        assert_eq!(super::sid_filter_value(&[1, 0xab]), "\\01\\ab");
    }
}
