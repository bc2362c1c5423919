//! The import agent's decisions: from the settings, one AD user as observed (or its absence
//! from the scope) and the matching Tether user, what happens to the Tether user.
//!
//! Each branch is a row of the tables of the seeds' *Advanced Configurations for Active
//! Directory Integration (ADI)*, sections "UserDisableAction" (existing and new users),
//! "UserDissociationAction", "UserTakeoverAction", "UserExpireAction" and
//! "SyncAccountLockedOutStatus"; each decision function carries its table, and
//! `tests/import_policy.rs` copies those tables row by row.

use serde::{Deserialize, Serialize};

use super::*;
use crate::ad::UseCase;
use crate::user::{AdLink, Address, Authority, PhoneNumber, User, UserState, AD_ADDITIONAL_FIELDS, AD_CORE_FIELDS};

/// An AD user as the import agent read it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct AdUserObs {
    /// objectGUID, as lowercase hex of its 16 bytes.
    pub guid: String,
    pub dn: String,
    pub sam_account_name: String,
    pub user_principal_name: Option<String>,
    pub given_name: Option<String>,
    pub sn: Option<String>,
    pub mail: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub title: Option<String>,
    pub department: Option<String>,
    pub company: Option<String>,
    /// physicalDeliveryOfficeName.
    pub office: Option<String>,
    pub employee_type: Option<String>,
    pub phone_numbers: Vec<PhoneNumber>,
    pub addresses: Vec<Address>,
    pub manager_dn: Option<String>,
    pub disabled: bool,
    pub locked: bool,
    /// When the lockout started (RFC 3339), if locked.
    pub locked_at: Option<String>,
    pub password_expired: bool,
    /// When the password expires (RFC 3339), if it does.
    pub password_expires_at: Option<String>,
    /// adminCount=1, a (nested) member of a privileged group, krbtgt, or the bind account.
    pub privileged: bool,
    /// A direct member of the AdminsGroup: gets the sudo privilege.
    pub sudo: bool,
    /// AD's RFC 2307 `uidNumber` and `gidNumber`, when the account has them: kept as the
    /// user's `unix_uid` / `unix_guid`, so Linux hosts see the numbers they know from AD.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid_number: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid_number: Option<u32>,
    /// AD's `whenChanged` (RFC 3339, one-second resolution), for latency metrics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<String>,
}

/// The import settings (the `MainLoop` of the import agent's config).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ImportSettings {
    pub sync_additional_attributes: bool,
    pub user_dissociation_action: UserDissociationAction,
    pub user_field_mapping: UserFieldMapping,
    pub user_takeover_action: UserTakeoverAction,
    pub user_disable_action: UserDisableAction,
    pub user_expire_action: UserExpireAction,
    pub sync_account_locked_out_status: bool,
}

/// Facts of the directory a decision needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportContext {
    pub domain_id: String,
    pub use_case: UseCase,
    /// State given to newly created users (the org setting).
    pub new_user_state: UserState,
}

/// What to do with the Tether user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum UserDecision {
    /// Create this user (the server assigns the id).
    Create(User),
    /// Save this new state of the existing user; `clear_password` for a takeover that
    /// deactivates the Tether password.
    Update { user: User, clear_password: bool },
    /// Delete the Tether user.
    Delete,
    /// Keep the user but disconnect it from AD (restrictions cleared, removed from AD groups).
    Unbind(User),
    /// Nothing to do.
    Nothing,
    /// Not imported; the reason is reported.
    Skip(String),
}

/// The Tether username an AD user maps to.
pub fn username_of(obs: &AdUserObs, mapping: UserFieldMapping) -> Option<String> {
    match mapping {
        UserFieldMapping::SamAccountName => Some(obs.sam_account_name.clone()).filter(|s| !s.is_empty()),
        UserFieldMapping::UserPrincipalName => obs
            .user_principal_name
            .as_deref()
            .and_then(|u| u.rsplit_once('@').map(|(l, _)| l.to_string()).or(Some(u.to_string())))
            .filter(|s| !s.is_empty()),
    }
}

fn missing_data(obs: &AdUserObs) -> Option<String> {
    let missing: Vec<&str> = [("givenName", &obs.given_name), ("sn", &obs.sn), ("mail", &obs.mail)]
        .into_iter()
        .filter(|(_, v)| v.as_deref().is_none_or(|s| s.trim().is_empty()))
        .map(|(k, _)| k)
        .collect();
    (!missing.is_empty()).then(|| format!("{} has no {} in AD; it is not imported", obs.dn, missing.join(", ")))
}

fn ad_authority(domain_id: &str) -> Authority {
    Authority { id: domain_id.to_string(), name: "ActiveDirectory".into() }
}

/// Writes what AD owns into `u`: core fields, additional attributes, the link, the
/// restrictions, expiry and (if synced) lock state. Does not touch the lifecycle state.
///
/// "UserExpireAction":
///
/// | UserExpireAction | AD password expired             | `external_password_expiration_date` |
/// |------------------|---------------------------------|-------------------------------------|
/// | expire           | the Tether password expires     | AD's value                          |
/// | maintain         | the Tether password stays active| cleared                             |
///
/// "SyncAccountLockedOutStatus" (AD-initiated changes):
///
/// | SyncAccountLockedOutStatus | AD account locks / is unlocked       |
/// |----------------------------|--------------------------------------|
/// | true                       | the Tether user locks / is unlocked  |
/// | false (default)            | the Tether user's lock is unchanged  |
fn apply_ad(u: &mut User, obs: &AdUserObs, username: &str, s: &ImportSettings, ctx: &ImportContext) {
    u.username = username.to_string();
    u.firstname = obs.given_name.clone().unwrap_or_default();
    u.lastname = obs.sn.clone().unwrap_or_default();
    u.email = obs.mail.clone().unwrap_or_default();
    if s.sync_additional_attributes {
        let t = |v: &Option<String>| v.clone().unwrap_or_default();
        u.displayname = t(&obs.display_name);
        u.description = t(&obs.description);
        u.job_title = t(&obs.title);
        u.department = t(&obs.department);
        u.company = t(&obs.company);
        u.location = t(&obs.office);
        u.employee_type = t(&obs.employee_type);
        u.phone_numbers = obs.phone_numbers.clone();
        u.addresses = obs.addresses.clone();
    }
    u.sudo = obs.sudo;
    // AD's numbers when it has them; otherwise the ones Tether gave stay (files on Linux
    // hosts belong to them).
    if let Some(n) = obs.uid_number {
        u.unix_uid = Some(n);
    }
    if let Some(n) = obs.gid_number {
        u.unix_guid = Some(n);
    }
    u.externally_managed = true;
    u.external_dn = Some(obs.dn.clone());
    u.external_source_type = Some("active_directory".into());
    u.ad_guid = Some(obs.guid.clone());
    u.ad_links.insert(ctx.domain_id.clone(), AdLink { guid: obs.guid.clone(), dn: obs.dn.clone() });
    u.restricted_fields.retain(|r| r.kind != "active_directory");
    u.restrict(&ctx.domain_id, &AD_CORE_FIELDS);
    if s.sync_additional_attributes {
        u.restrict(&ctx.domain_id, &AD_ADDITIONAL_FIELDS);
    }
    match s.user_expire_action {
        // Row "expire".
        UserExpireAction::Expire => {
            u.password_expired = obs.password_expired;
            u.external_password_expiration_date = obs.password_expires_at.clone();
        }
        // Row "maintain".
        UserExpireAction::Maintain => u.external_password_expiration_date = None,
    }
    // Row "true"; with "false" the Tether lock is left as it is.
    if s.sync_account_locked_out_status {
        u.account_locked = obs.locked;
        u.account_locked_date = if obs.locked { obs.locked_at.clone() } else { None };
    }
}

/// The password side of a newly linked user: AD is the password authority when it is the
/// authority for everything; otherwise the user sets a password in Tether (or changes it
/// in AD on a DC install).
fn apply_authority(u: &mut User, ctx: &ImportContext) {
    if ctx.use_case == UseCase::AdAsAuthority {
        u.password_authority = Some(ad_authority(&ctx.domain_id));
        u.delegated_authority = Some(ad_authority(&ctx.domain_id));
    }
}

fn set_state(u: &mut User, state: UserState) {
    u.state = state;
    u.suspended = state == UserState::Suspended;
    u.activated = u.activated || state == UserState::Activated;
}

/// Clears everything that tied the user to the importing domain; the user's accounts in
/// other domains it is bound to stay linked.
pub fn unbind(u: &User) -> User {
    let mut u = u.clone();
    if let Some(d) = u.import_domain().map(str::to_string) {
        u.ad_links.remove(&d);
    }
    u.release_from_ad();
    u.external_dn = None;
    u.external_source_type = None;
    u.ad_guid = None;
    u.password_authority = None;
    u.delegated_authority = None;
    u.external_password_expiration_date = None;
    u.refresh_derived();
    u
}

/// Decides for one AD user in scope. `existing` is the Tether user linked to it by
/// objectGUID (owned by this domain), or else the one whose username matches.
///
/// "UserDisableAction" (a disabled AD user; it takes precedence over UserDissociationAction):
///
/// | UserDisableAction | in AD    | existing user, owned                  | new (or not owned) user |
/// |-------------------|----------|---------------------------------------|-------------------------|
/// | suspend           | disabled | suspended                             | created suspended       |
/// | suspend           | enabled  | not suspended / active                | created                 |
/// | remove            | disabled | deleted                               | not created             |
/// | remove            | enabled  | updated                               | created                 |
/// | unbind            | disabled | externally managed fields cleared     | not created             |
/// | unbind            | enabled  | updated                               | created                 |
///
/// "UserTakeoverAction" (an existing Tether user, not yet owned, matched by username):
///
/// | UserTakeoverAction   | the Tether user's password                     |
/// |----------------------|------------------------------------------------|
/// | deactivate (default) | removed: "Password Pending" until set in AD    |
/// | retain               | unchanged                                      |
pub fn decide_present(
    s: &ImportSettings,
    ctx: &ImportContext,
    obs: &AdUserObs,
    existing: Option<&User>,
) -> UserDecision {
    if obs.privileged {
        return UserDecision::Skip(format!(
            "{} is a privileged account (adminCount or an admin group); never imported",
            obs.dn
        ));
    }
    let owned = existing.is_some_and(|u| u.is_linked_to(&ctx.domain_id, &obs.guid));
    // A disabled AD user follows UserDisableAction (it takes precedence over dissociation).
    if obs.disabled {
        match (s.user_disable_action, existing) {
            // Row "remove / disabled / existing, owned".
            (UserDisableAction::Remove, Some(_)) if owned => return UserDecision::Delete,
            // Row "unbind / disabled / existing, owned".
            (UserDisableAction::Unbind, Some(u)) if owned => return UserDecision::Unbind(unbind(u)),
            // Rows "remove | unbind / disabled / new (or not owned)".
            (UserDisableAction::Remove | UserDisableAction::Unbind, _) => return UserDecision::Nothing,
            // Rows "suspend / disabled": below, with the state.
            (UserDisableAction::Suspend, _) => {}
        }
    }
    if let Some(reason) = missing_data(obs) {
        return UserDecision::Skip(reason);
    }
    let Some(username) = username_of(obs, s.user_field_mapping) else {
        return UserDecision::Skip(format!("{} has no {:?} to use as username", obs.dn, s.user_field_mapping));
    };
    match existing {
        None => {
            let mut u = User::default();
            apply_ad(&mut u, obs, &username, s, ctx);
            apply_authority(&mut u, ctx);
            // Rows "suspend / disabled / new" and "* / enabled / new".
            set_state(&mut u, if obs.disabled { UserState::Suspended } else { ctx.new_user_state });
            u.refresh_derived();
            UserDecision::Create(u)
        }
        Some(cur) => {
            let mut u = cur.clone();
            apply_ad(&mut u, obs, &username, s, ctx);
            let mut clear_password = false;
            if !owned {
                // Takeover of an existing Tether user.
                apply_authority(&mut u, ctx);
                // UserTakeoverAction row "deactivate" (row "retain": the password stays).
                if s.user_takeover_action == UserTakeoverAction::Deactivate {
                    clear_password = true;
                    u.has_password = false;
                }
            }
            if obs.disabled {
                // Row "suspend / disabled / existing".
                set_state(&mut u, UserState::Suspended);
            } else if u.state == UserState::Suspended {
                // Row "suspend / enabled / existing": not suspended.
                set_state(&mut u, UserState::Activated);
            }
            u.refresh_derived();
            if u == *cur && !clear_password {
                UserDecision::Nothing
            } else {
                UserDecision::Update { user: u, clear_password }
            }
        }
    }
}

/// Decides for a Tether user linked to AD whose AD user left the scope (deleted in AD,
/// removed from the ADI group, moved out of the root user container). Only called on a
/// complete read or an explicit removal: never on a partial or failed read.
///
/// "UserDissociationAction":
///
/// | UserDissociationAction | the Tether user                                        |
/// |------------------------|--------------------------------------------------------|
/// | remove (default)       | deleted                                                |
/// | unbind                 | kept, disconnected from the domain (managed in Tether) |
pub fn decide_absent(s: &ImportSettings, existing: &User) -> UserDecision {
    match s.user_dissociation_action {
        UserDissociationAction::Remove => UserDecision::Delete,
        UserDissociationAction::Unbind => UserDecision::Unbind(unbind(existing)),
    }
}
