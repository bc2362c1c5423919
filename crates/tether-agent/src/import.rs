//! One import cycle: observe AD, report to tetherd, remember the watermark.
//!
//! A cycle first reads rootDSE `highestCommittedUSN` (cheap, moves on every write but not on
//! binds): when it has not moved since the last applied cycle, nothing is read at all.
//! Otherwise the scope is read completely — every group (for the nested-group closure and
//! the privileged groups) and the users under the root user container — and sent as a
//! complete report. A read that fails part-way sends nothing, so a partial read can never
//! look like users leaving the scope. Time-based states (a password expiring, a lockout
//! ending) move no USN, so a complete read also runs every `RECONCILE_EVERY`.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tether_ad::read::{filetime_to_unix, guid_hex, paged_search, read_groups, root_dse, text, GroupEntry};
use tether_ad::Ldap;
use tether_core::adi::import::{AdUserObs, ImportSettings};
use tether_core::adi::scope::{compute, AdGroup};
use tether_core::user::{Address, PhoneNumber};

use crate::config::{ImportConfig, InstalledOn};
use crate::session::Session;
use crate::AgentError;

/// A complete read at least this often, for states that change with time alone.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(600);

/// Relative ids of the groups whose members are never imported: Domain Admins, Enterprise
/// Admins, (builtin) Administrators.
const PRIVILEGED_RIDS: [u32; 3] = [512, 519, 544];

const USER_ATTRS: &[&str] = &[
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
    "userAccountControl",
    "adminCount",
    "lockoutTime",
    "msDS-User-Account-Control-Computed",
    "msDS-UserPasswordExpiryTimeComputed",
    "pwdLastSet",
];

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
struct Watermark {
    usn: Option<u64>,
    last_complete: u64,
}

/// What a cycle did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CycleStats {
    /// User and group entries read from AD (0 on an idle cycle).
    pub entries_read: usize,
    /// The server's answer, when a report was sent.
    pub outcome: Option<Value>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn load(path: &Path) -> Watermark {
    std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

fn save(path: &Path, w: &Watermark) -> Result<(), AgentError> {
    let tmp = path.with_extension("tmp");
    let err = |e: std::io::Error| AgentError::State { path: path.display().to_string(), reason: e.to_string() };
    std::fs::write(&tmp, serde_json::to_vec(w).expect("serializes")).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn unix_to_rfc3339(secs: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(secs).ok().map(tether_core::timestamp)
}

/// The account names a bind DN stands for (`user@realm`, `NETBIOS\user`, or a DN).
fn bind_identity(bind_dn: &str) -> (Option<String>, Option<String>) {
    let b = bind_dn.trim();
    if let Some((_, user)) = b.split_once('\\') {
        (None, Some(user.to_lowercase()))
    } else if b.contains('@') && !b.contains('=') {
        (None, b.split('@').next().map(str::to_lowercase))
    } else {
        (Some(b.to_lowercase()), None)
    }
}

/// Users reachable from groups with the given RIDs (nested membership included).
fn privileged_members(groups: &[GroupEntry], ad_groups: &[AdGroup]) -> HashSet<String> {
    let mut out = HashSet::new();
    for g in groups.iter().filter(|g| g.rid.is_some_and(|r| PRIVILEGED_RIDS.contains(&r))) {
        out.extend(compute(&g.dn, ad_groups).users);
    }
    out
}

fn observe(
    e: &tether_ad::read::Entry,
    privileged: &HashSet<String>,
    admins: &HashSet<String>,
    bind: &(Option<String>, Option<String>),
) -> AdUserObs {
    let t = |k: &str| text(e, k).filter(|v| !v.is_empty());
    let num = |k: &str| t(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
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
    }
}

/// A complete read: the report, the number of entries read, and `(guid, sAMAccountName,
/// pwdLastSet)` of the users in scope (for password capture).
pub struct ScopeRead {
    pub report: Value,
    pub entries_read: usize,
    pub passwords: Vec<(String, String, i64)>,
}

/// Reads the whole scope from AD and builds a complete report.
pub async fn read_scope(cfg: &ImportConfig, ldap: &mut Ldap, naming_context: &str) -> Result<ScopeRead, AgentError> {
    let groups = read_groups(ldap, naming_context).await?;
    let ad_groups: Vec<AdGroup> = groups
        .iter()
        .map(|g| AdGroup { dn: g.dn.clone(), name: g.name.clone(), guid: g.guid.clone(), members: g.members.clone() })
        .collect();
    let adi = &cfg.ldap.adi_group;
    if !groups.iter().any(|g| g.dn.eq_ignore_ascii_case(adi)) {
        return Err(AgentError::Config(crate::config::ConfigError::Invalid {
            path: "config".into(),
            key: "Ldap.AdiGroup".into(),
            reason: format!("no group `{adi}` in AD"),
        }));
    }
    let scope = compute(adi, &ad_groups);
    let privileged = privileged_members(&groups, &ad_groups);
    let admins: HashSet<String> = match &cfg.ldap.admins_group {
        Some(a) => match groups.iter().find(|g| g.dn.eq_ignore_ascii_case(a)) {
            Some(g) => g.members.iter().map(|m| m.to_lowercase()).collect(),
            None => {
                tracing::warn!(group = %a, "Ldap.AdminsGroup does not exist in AD; nobody gets sudo from it");
                HashSet::new()
            }
        },
        None => HashSet::new(),
    };
    let users =
        paged_search(ldap, &cfg.ldap.root_user_container, "(&(objectCategory=person)(objectClass=user))", USER_ATTRS)
            .await?;
    let bind = bind_identity(&cfg.ldap.bind_dn);
    let in_scope: Vec<&tether_ad::read::Entry> =
        users.iter().filter(|e| scope.users.contains(&e.dn.to_lowercase())).collect();
    let observed: Vec<AdUserObs> = in_scope.iter().map(|e| observe(e, &privileged, &admins, &bind)).collect();
    let passwords = in_scope
        .iter()
        .zip(&observed)
        .filter(|(_, o)| !o.privileged)
        .map(|(e, o)| {
            let pls = text(e, "pwdLastSet").and_then(|v| v.parse().ok()).unwrap_or(0);
            (o.guid.clone(), o.sam_account_name.clone(), pls)
        })
        .collect();
    let guid_of: std::collections::HashMap<String, String> =
        observed.iter().filter(|o| !o.privileged).map(|o| (o.dn.to_lowercase(), o.guid.clone())).collect();
    let mirrored: Vec<Value> = scope
        .groups
        .iter()
        .filter_map(|(dn, members)| {
            let g = groups.iter().find(|g| g.dn.to_lowercase() == *dn)?;
            let members: BTreeSet<&String> = members.iter().filter_map(|m| guid_of.get(m)).collect();
            Some(serde_json::json!({"guid": g.guid, "dn": g.dn, "name": g.name, "members": members}))
        })
        .collect();
    let settings = ImportSettings {
        sync_additional_attributes: cfg.main_loop.sync_additional_attributes,
        user_dissociation_action: cfg.main_loop.user_dissociation_action,
        user_field_mapping: cfg.main_loop.user_field_mapping,
        user_takeover_action: cfg.main_loop.user_takeover_action,
        user_disable_action: cfg.main_loop.user_disable_action,
        user_expire_action: cfg.main_loop.user_expire_action,
        sync_account_locked_out_status: cfg.main_loop.sync_account_locked_out_status,
    };
    let report = serde_json::json!({
        "settings": settings,
        "complete": true,
        "users": observed,
        "groups": mirrored,
    });
    Ok(ScopeRead { report, entries_read: users.len() + groups.len(), passwords })
}

/// Runs one cycle. `force` reads even if the USN did not move.
pub async fn cycle(
    cfg: &ImportConfig,
    ldap: &mut Ldap,
    session: &Session,
    force: bool,
) -> Result<CycleStats, AgentError> {
    let path = cfg.state_dir().join("import.json");
    let mut mark = load(&path);
    let dse = root_dse(ldap).await?;
    let due = now_secs().saturating_sub(mark.last_complete) >= RECONCILE_EVERY.as_secs();
    if !force && !due && mark.usn == Some(dse.highest_committed_usn) {
        return Ok(CycleStats::default());
    }
    let read = read_scope(cfg, ldap, &dse.default_naming_context).await?;
    let outcome = session.report_import(&read.report).await?;
    if let (InstalledOn::Dc, Some(conf)) = (cfg.installed_on, cfg.samba_smb_conf.as_deref()) {
        let hashes = crate::passwords::capture(&cfg.state_dir(), Path::new(conf), &read.passwords).await?;
        if !hashes.is_empty() {
            session.send_passwords(&hashes).await?;
        }
    }
    let entries_read = read.entries_read;
    // The USN read before the scope: anything written during the read is seen next cycle.
    mark.usn = Some(dse.highest_committed_usn);
    mark.last_complete = now_secs();
    save(&path, &mark)?;
    Ok(CycleStats { entries_read, outcome: Some(outcome) })
}
