//! The ADI policy settings of the seeds, as types. The agents' config files name them;
//! the policy decision functions (with the import and sync agents) take them as input.

use serde::{Deserialize, Serialize};

/// What happens to a Tether user when its AD user leaves the import's scope
/// (deleted in AD, removed from the ADI group, moved out of the root user container).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UserDissociationAction {
    #[default]
    Remove,
    Unbind,
}

/// What happens to an existing Tether user the import takes over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UserTakeoverAction {
    #[default]
    Deactivate,
    Retain,
}

/// What happens to a Tether user whose AD user is disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UserDisableAction {
    #[default]
    Suspend,
    Remove,
    Unbind,
}

/// Whether AD's password expiry is mirrored on the Tether user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UserExpireAction {
    #[default]
    Expire,
    Maintain,
}

/// Which AD attribute gives the Tether username.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum UserFieldMapping {
    #[default]
    #[serde(rename = "sAMAccountName")]
    SamAccountName,
    #[serde(rename = "userPrincipalName")]
    UserPrincipalName,
}

/// What the sync agent does to the AD user when a Tether user is disconnected from AD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UserDisconnectionAction {
    Remove,
    #[default]
    Disable,
    Retain,
}

/// Whether the sync agent removes a disconnected user's AD group memberships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MembershipDisconnection {
    #[default]
    Remove,
    Retain,
}

/// What the sync agent does to the AD group when a Tether group is disconnected from AD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GroupDisconnectionAction {
    Remove,
    #[default]
    Retain,
}

/// How the sync agent mirrors membership in nested AD groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupMembershipSyncType {
    /// Only the leaf group; AD's nesting gives the rest.
    Minimal,
    /// Every group of the nested structure.
    Match,
}

impl GroupMembershipSyncType {
    /// The default when the config does not say: `minimal` in a two-way domain, `match` when
    /// Tether is the authority (sync only).
    pub fn default_for(use_case: crate::ad::UseCase) -> Self {
        match use_case {
            crate::ad::UseCase::JcAsAuthority => GroupMembershipSyncType::Match,
            _ => GroupMembershipSyncType::Minimal,
        }
    }
}

pub mod import;
pub mod scope;
pub mod sync;

pub mod guard;

/// Whether `s` is an objectGUID as the agents send it: 32 hexadecimal digits. The agents put
/// GUIDs in LDAP filters, so anything else from the wire is refused where it enters.
pub fn is_guid_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
