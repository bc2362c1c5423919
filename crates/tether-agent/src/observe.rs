//! One AD user entry as tetherd's `AdUserObs`: its attributes, states and times in the
//! wire's terms, and whether it is privileged, an admin (sudo) or the import account itself.
//! Kept apart from the cycle (`import.rs`) because it is a pure translation: no reads, no
//! state.

use std::collections::HashSet;

use tether_ad::read::{filetime_to_unix, guid_hex, number, text};
use tether_core::adi::import::AdUserObs;
use tether_core::user::{Address, PhoneNumber};

fn unix_to_rfc3339(secs: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(secs).ok().map(tether_core::timestamp)
}

/// The account names a bind DN stands for (`user@realm`, `NETBIOS\user`, or a DN).
pub(crate) fn bind_identity(bind_dn: &str) -> (Option<String>, Option<String>) {
    let b = bind_dn.trim();
    if let Some((_, user)) = b.split_once('\\') {
        (None, Some(user.to_lowercase()))
    } else if b.contains('@') && !b.contains('=') {
        (None, b.split('@').next().map(str::to_lowercase))
    } else {
        (Some(b.to_lowercase()), None)
    }
}

pub(crate) fn observe(
    e: &tether_ad::read::Entry,
    privileged: &HashSet<String>,
    admins: &HashSet<String>,
    bind: &(Option<String>, Option<String>),
) -> AdUserObs {
    let t = |k: &str| text(e, k).filter(|v| !v.is_empty());
    let num = |k: &str| number::<i64>(e, k).unwrap_or(0);
    let uac = num("userAccountControl");
    let computed = num("msDS-User-Account-Control-Computed");
    let sam = t("sAMAccountName").unwrap_or_default();
    let dn_l = e.dn.to_lowercase();
    let is_bind = bind.0.as_deref() == Some(dn_l.as_str()) || bind.1.as_deref() == Some(sam.to_lowercase().as_str());
    let phones = [
        ("work", "telephoneNumber"),
        ("mobile", "mobile"),
        ("work_fax", "facsimileTelephoneNumber"),
        ("home", "homePhone"),
    ]
    .into_iter()
    .filter_map(|(kind, k)| t(k).map(|n| PhoneNumber { kind: kind.into(), number: n }))
    .collect();
    let address = Address {
        kind: "work".into(),
        street_address: t("streetAddress").unwrap_or_default(),
        locality: t("l").unwrap_or_default(),
        region: t("st").unwrap_or_default(),
        postal_code: t("postalCode").unwrap_or_default(),
        country: t("co").unwrap_or_default(),
        po_box: t("postOfficeBox").unwrap_or_default(),
        extended_address: String::new(),
    };
    let has_address = address != Address { kind: "work".into(), ..Address::default() };
    AdUserObs {
        guid: guid_hex(e),
        dn: e.dn.clone(),
        sam_account_name: sam.clone(),
        user_principal_name: t("userPrincipalName"),
        given_name: t("givenName"),
        sn: t("sn"),
        mail: t("mail"),
        display_name: t("displayName"),
        description: t("description"),
        title: t("title"),
        department: t("department"),
        company: t("company"),
        office: t("physicalDeliveryOfficeName"),
        employee_type: t("employeeType"),
        phone_numbers: phones,
        addresses: if has_address { vec![address] } else { vec![] },
        manager_dn: t("manager"),
        disabled: uac & 0x2 != 0,
        locked: computed & 0x10 != 0,
        locked_at: filetime_to_unix(num("lockoutTime")).and_then(unix_to_rfc3339),
        password_expired: computed & 0x80_0000 != 0,
        password_expires_at: filetime_to_unix(num("msDS-UserPasswordExpiryTimeComputed")).and_then(unix_to_rfc3339),
        privileged: num("adminCount") == 1
            || privileged.contains(&dn_l)
            || sam.eq_ignore_ascii_case("krbtgt")
            || is_bind,
        sudo: admins.contains(&dn_l),
        uid_number: number::<u32>(e, "uidNumber"),
        gid_number: number::<u32>(e, "gidNumber"),
        changed_at: t("whenChanged").and_then(|g| generalized_to_rfc3339(&g)),
    }
}

/// `20261122023100.0Z` (LDAP GeneralizedTime, UTC) as RFC 3339.
fn generalized_to_rfc3339(g: &str) -> Option<String> {
    let d = g.get(..14)?;
    if !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("{}-{}-{}T{}:{}:{}Z", &d[..4], &d[4..6], &d[6..8], &d[8..10], &d[10..12], &d[12..14]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn generalized_time() {
        let rows = [
            ("20261122023100.0Z", Some("2026-11-22T02:31:00Z")),
            ("19991231235959Z", Some("1999-12-31T23:59:59Z")),
            ("2026112202", None),
            ("2026x122023100.0Z", None),
        ];
        for (g, want) in rows {
            assert_eq!(super::generalized_to_rfc3339(g).as_deref(), want, "{g}");
        }
    }
}
