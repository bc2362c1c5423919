//! Finding the AD user of a Tether user: by objectGUID when linked, else by sAMAccountName,
//! with the attributes the sync decisions read.

use tether_ad::ldap3::{Scope, SearchEntry};
use tether_ad::read::guid_filter_value;
use tether_ad::{AdError, Ldap};

/// The attributes read for each AD user the sync agent looks at.
pub const ATTRS: [&str; 9] = [
    "objectGUID",
    "sAMAccountName",
    "givenName",
    "sn",
    "mail",
    "userAccountControl",
    "adminCount",
    "memberOf",
    "msDS-User-Account-Control-Computed",
];

async fn search_one(ldap: &mut Ldap, base: &str, filter: &str) -> Result<Option<SearchEntry>, AdError> {
    let (entries, _) = ldap.search(base, Scope::Subtree, filter, ATTRS.to_vec()).await?.success()?;
    Ok(entries.into_iter().next().map(SearchEntry::construct))
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
    let f = format!(
        "(&(objectCategory=person)(objectClass=user)(sAMAccountName={}))",
        tether_ad::ldap3::ldap_escape(username)
    );
    search_one(ldap, nc, &f).await
}
