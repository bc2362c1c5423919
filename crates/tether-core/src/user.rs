//! The directory user and its state machine.
//!
//! A user's lifecycle state is stored three ways in the JumpCloud API (`state`, `suspended`,
//! `activated`); clients write any of them. Keeping them consistent is the job of
//! [`next_state`], the one place that decides which combination a write leads to.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Lifecycle state of a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum UserState {
    /// Created but not yet active: cannot log in, receives no access.
    Staged,
    /// Active.
    #[default]
    Activated,
    /// Suspended by an admin or by a policy (e.g. disabled in AD).
    Suspended,
}

impl UserState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "STAGED" => Some(Self::Staged),
            "ACTIVATED" => Some(Self::Activated),
            "SUSPENDED" => Some(Self::Suspended),
            _ => None,
        }
    }
}

/// How a user's password can be used, as shown to admins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum PasswordStatus {
    Active,
    #[default]
    Pending,
    Expired,
    Delegated,
}

/// An external authority (today only Active Directory) for passwords or authentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Authority {
    /// The id of the Active Directory domain in Tether.
    pub id: String,
    /// Always `ActiveDirectory`.
    pub name: String,
}

/// A field that an external directory owns; read-only through the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RestrictedField {
    pub field: String,
    /// `active_directory`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The id of the directory that owns it.
    pub id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(default)]
pub struct Address {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "streetAddress")]
    pub street_address: String,
    pub locality: String,
    pub region: String,
    #[serde(rename = "postalCode")]
    pub postal_code: String,
    pub country: String,
    #[serde(rename = "poBox")]
    pub po_box: String,
    #[serde(rename = "extendedAddress")]
    pub extended_address: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(default)]
pub struct PhoneNumber {
    #[serde(rename = "type")]
    pub kind: String,
    pub number: String,
}

/// A directory user, in the field names of the JumpCloud v1 `systemusers` API.
///
/// This is also the stored document: the password hash is kept apart, never in here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema, Default)]
#[serde(default)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: String,
    pub firstname: String,
    pub middlename: String,
    pub lastname: String,
    pub displayname: String,
    pub description: String,
    #[serde(rename = "jobTitle")]
    pub job_title: String,
    pub department: String,
    pub company: String,
    pub location: String,
    #[serde(rename = "employeeType")]
    pub employee_type: String,
    #[serde(rename = "employeeIdentifier")]
    pub employee_identifier: String,
    /// The id of the user's manager (another user).
    pub manager: Option<String>,
    pub addresses: Vec<Address>,
    #[serde(rename = "phoneNumbers")]
    pub phone_numbers: Vec<PhoneNumber>,
    pub state: UserState,
    pub suspended: bool,
    pub activated: bool,
    pub account_locked: bool,
    pub account_locked_date: Option<String>,
    pub password_date: Option<String>,
    pub password_expired: bool,
    pub password_expiration_date: Option<String>,
    pub password_never_expires: bool,
    pub external_password_expiration_date: Option<String>,
    pub externally_managed: bool,
    pub external_dn: Option<String>,
    pub external_source_type: Option<String>,
    #[serde(rename = "restrictedFields")]
    pub restricted_fields: Vec<RestrictedField>,
    #[serde(rename = "delegatedAuthority")]
    pub delegated_authority: Option<Authority>,
    #[serde(rename = "passwordAuthority")]
    pub password_authority: Option<Authority>,
    #[serde(rename = "passwordStatus")]
    pub password_status: PasswordStatus,
    /// Administrator (sudo) privilege on systems.
    pub sudo: bool,
    /// May search the directory over LDAP (every entry in LDAP, not only its own).
    pub ldap_binding_user: bool,
    /// The user's numeric id on Linux hosts (`uidNumber` over LDAP); unique, assigned from
    /// 5000 upward when not given.
    pub unix_uid: Option<u32>,
    /// The id of the user's primary group (`gidNumber`); unique, the same number as
    /// `unix_uid` when not given (a private group per user).
    pub unix_guid: Option<u32>,
    /// Why the last write of this user to AD by the sync agent failed or what it warned
    /// about (AD's reason), or `null` when it succeeded.
    #[serde(rename = "adSyncError")]
    pub ad_sync_error: Option<String>,
    /// Whether the user enrolled a TOTP second factor (read-only: enrollment is the user's,
    /// in the portal; `resetmfa` removes it).
    pub totp_enabled: bool,
    pub created: String,
    /// Whether a password is stored in Tether (derived from storage; not serialized).
    #[serde(skip)]
    pub has_password: bool,
    /// The objectGUID of the AD user this user is linked to: the stable anchor that keeps
    /// renames and moves in AD on the same Tether user (stored, not part of the API).
    #[serde(skip)]
    pub ad_guid: Option<String>,
    /// The user's account in each AD domain it has one in (domain id → link), each written
    /// only by that domain's agents, so binding a user imported from one domain to another
    /// never relinks it (stored, not part of the API).
    #[serde(skip)]
    pub ad_links: std::collections::BTreeMap<String, AdLink>,
    /// The stored revision (optimistic concurrency; never serialized).
    #[serde(rename = "_v", default, skip_serializing)]
    #[schema(ignore)]
    pub revision: crate::revision::Revision,
}

/// The fields Active Directory owns once a user is externally managed (without the
/// additional attributes, which only the import adds when it syncs them).
pub const AD_CORE_FIELDS: [&str; 5] = ["firstname", "lastname", "username", "email", "password"];

/// The additional attributes the import agent owns when `SyncAdditionalAttributes` is on.
pub const AD_ADDITIONAL_FIELDS: [&str; 10] = [
    "displayname",
    "description",
    "jobTitle",
    "department",
    "company",
    "location",
    "employeeType",
    "phoneNumbers",
    "addresses",
    "manager",
];

/// Fields a client may send but never sets: they are derived or assigned by the server.
pub const READ_ONLY_FIELDS: [&str; 9] = [
    "adSyncError",
    "totp_enabled",
    "id",
    "_id",
    "created",
    "passwordStatus",
    "restrictedFields",
    "password_date",
    "account_locked_date",
];

/// A user's account in one AD domain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdLink {
    /// objectGUID, lowercase hex.
    pub guid: String,
    pub dn: String,
}

impl User {
    /// The AD domain that imports this user (whose import owns its restricted fields), if any.
    pub fn import_domain(&self) -> Option<&str> {
        self.restricted_fields.iter().find(|r| r.kind == "active_directory").map(|r| r.id.as_str())
    }

    /// The user's account in `domain`: that domain's own link, or the user's AD link when
    /// `domain` imports the user (or when the link predates links per domain).
    pub fn link_in(&self, domain: &str) -> Option<AdLink> {
        self.ad_links.get(domain).cloned().or_else(|| {
            let guid = self.ad_guid.clone()?;
            let ours = User::own_link_in(self.import_domain(), !self.ad_links.is_empty(), domain);
            ours.then(|| AdLink { guid, dn: self.external_dn.clone().unwrap_or_default() })
        })
    }

    /// Whether a user's own AD link (`ad_guid`), absent from its links per domain, is its
    /// account in `domain`: when `domain` imports it (`import_domain`), or, imported by none,
    /// when it has no link per domain (a link older than links per domain). The rule of
    /// [`User::link_in`], for readers that have these parts without the whole user.
    pub fn own_link_in(import_domain: Option<&str>, has_links: bool, domain: &str) -> bool {
        match import_domain {
            Some(d) => d == domain,
            None => !has_links,
        }
    }

    /// Whether the AD account `guid` is this user's (its AD link, or its link in `domain`).
    pub fn is_linked_to(&self, domain: &str, guid: &str) -> bool {
        self.ad_guid.as_deref() == Some(guid) || self.ad_links.get(domain).is_some_and(|l| l.guid == guid)
    }

    /// Recomputes the fields derived from others. Called after every change.
    pub fn refresh_derived(&mut self) {
        self.password_status =
            if self.password_authority.is_some() || (self.delegated_authority.is_some() && !self.has_password) {
                PasswordStatus::Delegated
            } else if !self.has_password {
                PasswordStatus::Pending
            } else if self.password_expired {
                PasswordStatus::Expired
            } else {
                PasswordStatus::Active
            };
        if self.displayname.is_empty() {
            self.displayname = match (self.firstname.is_empty(), self.lastname.is_empty()) {
                (true, true) => String::new(),
                _ => format!("{} {}", self.firstname, self.lastname).trim().to_string(),
            };
        }
    }

    /// Is `field` read-only through the API for this user right now?
    pub fn is_restricted(&self, field: &str) -> bool {
        self.externally_managed && self.restricted_fields.iter().any(|r| r.field == field)
    }

    /// Marks the user as managed by the AD domain `domain_id` and restricts `fields`.
    pub fn restrict(&mut self, domain_id: &str, fields: &[&str]) {
        self.externally_managed = true;
        for f in fields {
            if !self.restricted_fields.iter().any(|r| r.field == *f) {
                self.restricted_fields.push(RestrictedField {
                    field: (*f).to_string(),
                    kind: "active_directory".into(),
                    id: domain_id.to_string(),
                });
            }
        }
    }

    /// Converts the user into a plain directory user: AD no longer owns any field.
    pub fn release_from_ad(&mut self) {
        self.externally_managed = false;
        self.restricted_fields.retain(|r| r.kind != "active_directory");
    }

    /// Can this user log in at all (independent of the password check)?
    pub fn can_authenticate(&self) -> bool {
        self.state == UserState::Activated && !self.account_locked
    }
}

/// A write to the lifecycle fields, as a client sent it (any of the three may be absent).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StateWrite {
    pub state: Option<UserState>,
    pub suspended: Option<bool>,
    pub activated: Option<bool>,
}

/// The state machine: from the current state and a write, the resulting
/// `(state, suspended, activated)`, always consistent:
/// STAGED ⇔ (!suspended, !activated); ACTIVATED ⇔ (!suspended, activated);
/// SUSPENDED ⇔ suspended (activated keeps whether the user had ever been activated).
pub fn next_state(
    current: UserState,
    was_activated: bool,
    w: StateWrite,
) -> Result<(UserState, bool, bool), crate::CoreError> {
    use UserState::*;
    let bad = |m: &str| Err(crate::CoreError::InvalidState(m.to_string()));
    // Conflicting words in one request are refused rather than guessed.
    match (w.state, w.suspended) {
        (Some(Suspended), Some(false)) => return bad("state SUSPENDED contradicts suspended=false"),
        (Some(Activated | Staged), Some(true)) => return bad("state ACTIVATED/STAGED contradicts suspended=true"),
        _ => {}
    }
    if let (Some(Staged), Some(true)) = (w.state, w.activated) {
        return bad("state STAGED contradicts activated=true");
    }
    if let (Some(Activated), Some(false)) = (w.state, w.activated) {
        return bad("state ACTIVATED contradicts activated=false");
    }
    let target = match (w.state, w.suspended, w.activated) {
        (Some(s), _, _) => s,
        (None, Some(true), _) => Suspended,
        // Lifting a suspension returns the user to where it was before it.
        (None, Some(false), a) => {
            if current == Suspended {
                if a.unwrap_or(was_activated) {
                    Activated
                } else {
                    Staged
                }
            } else if a == Some(true) {
                Activated
            } else {
                current
            }
        }
        (None, None, Some(true)) if current == Staged => Activated,
        (None, None, Some(false)) if current == Activated => {
            return bad("an activated user cannot be returned to STAGED; suspend it instead")
        }
        (None, None, _) => current,
    };
    if target == Staged && current != Staged && (was_activated || current == Activated) {
        return bad("an activated user cannot be returned to STAGED; suspend it instead");
    }
    Ok(match target {
        Staged => (Staged, false, false),
        Activated => (Activated, false, true),
        Suspended => (Suspended, true, was_activated || current == Activated),
    })
}
