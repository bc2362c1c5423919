//! The sync agent's decisions: from the settings, a change in Tether and what the agent found
//! in AD, the LDAP operations to perform. Each branch is a row of the tables of the seeds'
//! *Advanced Configurations for Active Directory Integration (ADI)*: "Sync Unlock Status",
//! "User End States in AD Based on Disconnection Settings", and "UserDisableAction" (its
//! "Suspend Actions on the Sync Agent"); each decision function carries its table, and
//! `tests/sync_policy.rs` copies them.

use serde::{Deserialize, Serialize};

use super::*;

/// The sync agent's settings that shape decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncSettings {
    pub user_disconnection_action: UserDisconnectionAction,
    pub membership_disconnection: MembershipDisconnection,
    pub sync_account_locked_out_status: bool,
}

/// The Tether side of a user change, as the feed carries it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct UserChange {
    pub username: String,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
    pub suspended: bool,
    /// Whether the Tether user has a password (a random one in AD would replace it on the
    /// way back in a two-way domain: the takeover warning of the seeds).
    pub has_password: bool,
    /// A new password to write (kept only until the agent acknowledged the change).
    pub password: Option<String>,
    /// An admin explicitly unlocked the user.
    pub explicit_unlock: bool,
    /// An admin expired the user's password.
    pub expire: bool,
}

/// What the agent found in AD for the user.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdSide {
    pub privileged: bool,
    pub disabled: bool,
    pub locked: bool,
    pub given_name: Option<String>,
    pub sn: Option<String>,
    pub mail: Option<String>,
}

/// An operation on AD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdAction {
    /// Create the user; `random_password` when Tether sent none.
    Create {
        disabled: bool,
        random_password: bool,
    },
    /// Write first name, last name, email.
    SetAttributes,
    SetPassword,
    Disable,
    Enable,
    Unlock,
    /// `pwdLastSet: 0`: the user must change the password at next logon.
    ExpirePassword,
    Delete,
    /// Remove the user from the AD groups Tether manages.
    RemoveMemberships,
    /// Done, with a warning to show on the Tether user.
    Warn(String),
    /// Not done; the reason shows on the Tether user.
    Refuse(String),
}

/// `sAMAccountName` is at most 20 characters.
pub const MAX_SAM_LEN: usize = 20;

fn refuse_reason(c: &UserChange) -> Option<String> {
    if c.firstname.trim().is_empty() || c.lastname.trim().is_empty() {
        return Some("not written to AD: first name and last name are required".into());
    }
    if c.username.chars().count() > MAX_SAM_LEN {
        return Some(format!(
            "not written to AD: the username is longer than {MAX_SAM_LEN} characters (the sAMAccountName limit)"
        ));
    }
    None
}

/// A user bound to the domain changed in Tether (or was just bound).
///
/// "Suspend Actions on the Sync Agent":
///
/// | Tether user          | AD user  | in AD                      |
/// |----------------------|----------|----------------------------|
/// | suspended            | exists   | disabled                   |
/// | suspended            | none     | created, then disabled     |
/// | active (reactivated) | disabled | enabled                    |
///
/// "Sync Unlock Status" (the AD account is locked):
///
/// | SyncAccountLockedOutStatus | synced from Tether     | the AD account  |
/// |----------------------------|------------------------|-----------------|
/// | true                       | explicit unlock        | unlocked        |
/// | true                       | general profile update | remains locked  |
/// | false (default)            | explicit unlock        | unlocked        |
/// | false (default)            | general profile update | unlocked        |
pub fn decide_user(s: &SyncSettings, c: &UserChange, ad: Option<&AdSide>) -> Vec<AdAction> {
    use AdAction::*;
    if let Some(reason) = refuse_reason(c) {
        return vec![Refuse(reason)];
    }
    let Some(ad) = ad else {
        // Row "suspended / none" (created disabled), or a plain creation.
        let mut out = vec![Create { disabled: c.suspended, random_password: c.password.is_none() }];
        if c.password.is_none() && c.has_password {
            out.push(Warn(
                "created in AD with a system-generated password: the user's next login to Tether (or password \
                 change) sets their password in AD"
                    .into(),
            ));
        }
        if c.expire {
            out.push(ExpirePassword);
        }
        return out;
    };
    if ad.privileged {
        return vec![Refuse("the AD account is privileged (adminCount or an admin group): never modified".into())];
    }
    let mut out = Vec::new();
    let same = |a: &Option<String>, b: &str| a.as_deref().unwrap_or("") == b;
    if !same(&ad.given_name, &c.firstname) || !same(&ad.sn, &c.lastname) || !same(&ad.mail, &c.email) {
        out.push(SetAttributes);
    }
    if c.password.is_some() {
        out.push(SetPassword);
    }
    match (c.suspended, ad.disabled) {
        // Row "suspended / exists".
        (true, false) => out.push(Disable),
        // Row "active (reactivated) / disabled".
        (false, true) => out.push(Enable),
        _ => {}
    }
    // "Sync Unlock Status": rows "* / explicit unlock" and "false / general profile update"
    // unlock; row "true / general profile update" leaves the lock.
    if ad.locked && (c.explicit_unlock || !s.sync_account_locked_out_status) {
        out.push(Unlock);
    }
    if c.expire {
        out.push(ExpirePassword);
    }
    out
}

/// A user lost its last connection to the domain (deleted in Tether, unbound, or its only
/// group disconnected).
///
/// "User End States in AD Based on Disconnection Settings":
///
/// | user_disconnection_action | membership_disconnection | the AD account   | its memberships in managed groups |
/// |---------------------------|--------------------------|------------------|-----------------------------------|
/// | remove                    | remove (default)         | deleted          | end with the account              |
/// | remove                    | retain                   | deleted          | end with the account              |
/// | disable (default)         | remove (default)         | disabled         | removed                           |
/// | disable (default)         | retain                   | disabled         | kept                              |
/// | retain                    | remove (default)         | unchanged        | removed                           |
/// | retain                    | retain                   | unchanged        | kept                              |
pub fn decide_disconnect(s: &SyncSettings, ad: Option<&AdSide>) -> Vec<AdAction> {
    use AdAction::*;
    let Some(ad) = ad else { return vec![] };
    if ad.privileged {
        return vec![Refuse("the AD account is privileged (adminCount or an admin group): never modified".into())];
    }
    let memberships = s.membership_disconnection == MembershipDisconnection::Remove;
    match s.user_disconnection_action {
        // Rows "remove / *": deleting the account ends its memberships too.
        UserDisconnectionAction::Remove => vec![Delete],
        // Rows "disable / remove" and "disable / retain".
        UserDisconnectionAction::Disable => {
            let mut v = if ad.disabled { vec![] } else { vec![Disable] };
            if memberships {
                v.push(RemoveMemberships);
            }
            v
        }
        // Rows "retain / remove" and "retain / retain".
        UserDisconnectionAction::Retain => {
            if memberships {
                vec![RemoveMemberships]
            } else {
                vec![]
            }
        }
    }
}
