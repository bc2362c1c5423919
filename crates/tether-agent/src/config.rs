//! The agents' JSON config files (`importagent.config.json`, `syncagent.config.json`), with
//! the key names of CONTRACT.md. Unknown keys are errors, missing keys take the new-install
//! defaults, and every error names the key path and the reason. Secrets never appear in
//! `Debug` output.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tether_core::adi::*;

/// A string whose `Debug` is `<redacted>`.
#[derive(Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "<empty>" } else { "<redacted>" })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config {path}: key `{key}`: {reason}")]
    Invalid { path: String, key: String, reason: String },
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(rename = "Url")]
    pub url: String,
    #[serde(rename = "ConnectKey")]
    pub connect_key: Secret,
    #[serde(rename = "StateDir")]
    pub state_dir: Option<PathBuf>,
    /// PEM of a private CA that signed tetherd's certificate (trusted besides the system's roots).
    #[serde(rename = "CaFile", default)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum InstalledOn {
    #[default]
    Dc,
    MemberServer,
}

/// Whether the import agent holds a change-notification search open (`ChangeNotifications`).
/// `auto`, the default, does on Active Directory, which keeps them in memory and tells at
/// once, and not on Samba, which serves one by scanning the whole domain partition every 5
/// seconds while it is open (docs/decisions.md, "Agent loops and defaults").
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ChangeNotifications {
    #[default]
    Auto,
    On,
    Off,
}

impl ChangeNotifications {
    /// Whether to hold the search on a DC that is (or is not) Samba.
    pub fn hold(self, samba: bool) -> bool {
        match self {
            ChangeNotifications::Auto => !samba,
            ChangeNotifications::On => true,
            ChangeNotifications::Off => false,
        }
    }
}

/// Whether the import account may read the tombstones in `CN=Deleted Objects`
/// (`TombstonesReadable`: `true`, `false`, or `"auto"`, the default). When it may (an admin
/// granted it List Contents and Read Property there, or it is an administrator) and change
/// notifications are held, deletions are notified too, and the agent stops reading rootDSE
/// ten times a second, leaving only the safety-net check every `PollIntervalSeconds`
/// (docs/decisions.md). `auto` decides at start on Active Directory: one tombstone visible
/// to the account proves the grant; none visible (no grant, or no deletion yet in the
/// domain) keeps the check. On Samba `auto` keeps it always: Samba tells a search of a write
/// handled by another of its processes only at a 5-second retry, which the check beats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TombstonesReadable {
    #[default]
    Auto,
    Yes,
    No,
}

impl TombstonesReadable {
    /// Whether to look for a tombstone at start, on a DC that is (or is not) Samba: to
    /// decide (`auto`), or to warn when `true` sees none.
    pub fn looks(self, samba: bool) -> bool {
        match self {
            TombstonesReadable::Auto => !samba,
            TombstonesReadable::Yes => true,
            TombstonesReadable::No => false,
        }
    }

    /// Whether deletions are taken as notified, on a DC that is (or is not) Samba, given
    /// whether a tombstone was `visible` to the account at start (`true` trusts the admin's
    /// word either way).
    pub fn trusted(self, samba: bool, visible: bool) -> bool {
        match self {
            TombstonesReadable::Auto => !samba && visible,
            TombstonesReadable::Yes => true,
            TombstonesReadable::No => false,
        }
    }
}

impl<'de> Deserialize<'de> for TombstonesReadable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Written;
        impl serde::de::Visitor<'_> for Written {
            type Value = TombstonesReadable;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(if v { TombstonesReadable::Yes } else { TombstonesReadable::No })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "auto" => Ok(TombstonesReadable::Auto),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(Written)
    }
}

/// The LDAP section of the import agent.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImportLdap {
    #[serde(rename = "Url")]
    pub url: String,
    #[serde(rename = "BindDn")]
    pub bind_dn: String,
    #[serde(rename = "BindPassword")]
    pub bind_password: Secret,
    #[serde(rename = "CaFile", default)]
    pub ca_file: Option<String>,
    #[serde(rename = "InsecureSkipVerify", default)]
    pub insecure_skip_verify: bool,
    #[serde(rename = "RootUserContainer")]
    pub root_user_container: String,
    #[serde(rename = "AdiGroup")]
    pub adi_group: String,
    #[serde(rename = "AdminsGroup", default)]
    pub admins_group: Option<String>,
}

/// The LDAP section of the sync agent.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncLdap {
    #[serde(rename = "Url")]
    pub url: String,
    #[serde(rename = "BindDn")]
    pub bind_dn: String,
    #[serde(rename = "BindPassword")]
    pub bind_password: Secret,
    #[serde(rename = "CaFile", default)]
    pub ca_file: Option<String>,
    #[serde(rename = "InsecureSkipVerify", default)]
    pub insecure_skip_verify: bool,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeListener {
    #[serde(rename = "PollTimeMillis", default = "default_poll_millis")]
    pub poll_time_millis: u64,
}

fn default_poll_millis() -> u64 {
    5000
}

impl Default for PasswordChangeListener {
    fn default() -> Self {
        PasswordChangeListener { poll_time_millis: default_poll_millis() }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MainLoop {
    #[serde(rename = "PollIntervalSeconds")]
    pub poll_interval_seconds: f64,
    #[serde(rename = "SyncAdditionalAttributes")]
    pub sync_additional_attributes: bool,
    #[serde(rename = "UserDissociationAction", alias = "UserDissociateAction")]
    pub user_dissociation_action: UserDissociationAction,
    #[serde(rename = "UserFieldMapping")]
    pub user_field_mapping: UserFieldMapping,
    #[serde(rename = "UserTakeoverAction")]
    pub user_takeover_action: UserTakeoverAction,
    #[serde(rename = "UserDisableAction")]
    pub user_disable_action: UserDisableAction,
    #[serde(rename = "UserExpireAction")]
    pub user_expire_action: UserExpireAction,
    #[serde(rename = "SyncAccountLockedOutStatus")]
    pub sync_account_locked_out_status: bool,
    #[serde(rename = "PasswordChangeListener")]
    pub password_change_listener: PasswordChangeListener,
}

impl Default for MainLoop {
    fn default() -> Self {
        MainLoop {
            poll_interval_seconds: 90.0,
            sync_additional_attributes: true,
            user_dissociation_action: UserDissociationAction::default(),
            user_field_mapping: UserFieldMapping::default(),
            user_takeover_action: UserTakeoverAction::default(),
            user_disable_action: UserDisableAction::default(),
            user_expire_action: UserExpireAction::default(),
            sync_account_locked_out_status: false,
            password_change_listener: PasswordChangeListener::default(),
        }
    }
}

/// `importagent.config.json`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    #[serde(rename = "Server")]
    pub server: ServerSection,
    #[serde(rename = "Ldap")]
    pub ldap: ImportLdap,
    #[serde(rename = "InstalledOn", default)]
    pub installed_on: InstalledOn,
    #[serde(rename = "SambaSmbConf", default)]
    pub samba_smb_conf: Option<String>,
    #[serde(rename = "MainLoop", default)]
    pub main_loop: MainLoop,
    /// Where to serve the agent's metrics (`127.0.0.1:9464`); off when absent.
    #[serde(rename = "MetricsListen", default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    #[serde(rename = "ChangeNotifications", default)]
    pub change_notifications: ChangeNotifications,
    #[serde(rename = "TombstonesReadable", default)]
    pub tombstones_readable: TombstonesReadable,
    /// Not a key of the file: how many users each part of a first complete read carries
    /// (`import::read_in_parts`): a page of the LDAP read; tests make it smaller.
    #[serde(skip, default = "first_read_part")]
    pub first_read_part: usize,
}

fn first_read_part() -> usize {
    tether_ad::read::PAGE
}

/// `syncagent.config.json`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    #[serde(rename = "Server")]
    pub server: ServerSection,
    #[serde(rename = "Ldap")]
    pub ldap: SyncLdap,
    pub user_root_dn: String,
    #[serde(default = "default_sync_poll")]
    pub poll_interval_seconds: f64,
    pub sync_group: String,
    #[serde(default)]
    pub user_disconnection_action: UserDisconnectionAction,
    #[serde(default, alias = "membership_disconnection_action")]
    pub membership_disconnection: MembershipDisconnection,
    #[serde(default)]
    pub group_disconnection_action: GroupDisconnectionAction,
    /// `None`: by use case (see [`GroupMembershipSyncType::default_for`]).
    #[serde(default)]
    pub group_membership_sync_type: Option<GroupMembershipSyncType>,
    #[serde(rename = "SyncAccountLockedOutStatus", default)]
    pub sync_account_locked_out_status: bool,
    /// Where to serve the agent's metrics (`127.0.0.1:9465`); off when absent.
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

fn default_sync_poll() -> f64 {
    5.0
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Invalid {
            path: path.display().to_string(),
            key: if key == "." { "(top level)".into() } else { key },
            reason: e.into_inner().to_string(),
        }
    })
}

fn invalid(path: &Path, key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { path: path.display().to_string(), key: key.into(), reason: reason.into() }
}

fn check_common(
    path: &Path,
    server: &ServerSection,
    ldap_url: &str,
    bind_dn: &str,
    password: &Secret,
) -> Result<(), ConfigError> {
    tether_core::transport::check_server_url(&server.url).map_err(|reason| invalid(path, "Server.Url", reason))?;
    if let Some(ca) = &server.ca_file {
        server_ca(ca).map_err(|reason| invalid(path, "Server.CaFile", reason))?;
    }
    if server.connect_key.0.is_empty() {
        return Err(invalid(
            path,
            "Server.ConnectKey",
            "is empty: copy the connect key shown when the agent was added",
        ));
    }
    if !(ldap_url.starts_with("ldaps://") || ldap_url.starts_with("ldap://")) {
        return Err(invalid(
            path,
            "Ldap.Url",
            "must be ldaps://HOST[:636] or ldap://HOST[:389] (then StartTLS is used)",
        ));
    }
    if bind_dn.trim().is_empty() {
        return Err(invalid(path, "Ldap.BindDn", "is empty"));
    }
    if password.0.is_empty() {
        return Err(invalid(path, "Ldap.BindPassword", "is empty"));
    }
    Ok(())
}

fn target(url: &str, dn: &str, pw: &Secret, ca: &Option<String>, insecure: bool) -> tether_ad::LdapTarget {
    tether_ad::LdapTarget {
        url: url.to_string(),
        bind_dn: dn.to_string(),
        bind_password: pw.0.clone(),
        ca_file: ca.clone(),
        insecure_skip_verify: insecure,
    }
}

/// Reads a config file, refusing one that every user of the machine can read: it holds the
/// bind password and the connect key.
fn read(path: &Path) -> Result<String, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |reason: String| ConfigError::Read { path: path.display().to_string(), reason };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(err(format!(
            "it is readable by every user of this machine and holds secrets; run `chmod 600 {}`",
            path.display()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| err(e.to_string()))
}

fn check_interval(path: &Path, key: &str, v: f64) -> Result<(), ConfigError> {
    if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
        return Err(invalid(path, key, format!("must be a number of seconds above 0 and at most 86400, not {v}")));
    }
    Ok(())
}

impl ImportConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_str(path, &read(path)?)
    }

    pub fn from_str(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let c: ImportConfig = parse(path, text)?;
        check_common(path, &c.server, &c.ldap.url, &c.ldap.bind_dn, &c.ldap.bind_password)?;
        check_interval(path, "MainLoop.PollIntervalSeconds", c.main_loop.poll_interval_seconds)?;
        if c.ldap.root_user_container.trim().is_empty() {
            return Err(invalid(path, "Ldap.RootUserContainer", "is empty"));
        }
        if c.ldap.adi_group.trim().is_empty() {
            return Err(invalid(path, "Ldap.AdiGroup", "is empty"));
        }
        Ok(c)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.server.state_dir.clone().unwrap_or_else(|| PathBuf::from("./import-state"))
    }

    pub fn ldap_target(&self) -> tether_ad::LdapTarget {
        let l = &self.ldap;
        target(&l.url, &l.bind_dn, &l.bind_password, &l.ca_file, l.insecure_skip_verify)
    }
}

impl SyncConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_str(path, &read(path)?)
    }

    pub fn from_str(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let c: SyncConfig = parse(path, text)?;
        check_common(path, &c.server, &c.ldap.url, &c.ldap.bind_dn, &c.ldap.bind_password)?;
        check_interval(path, "poll_interval_seconds", c.poll_interval_seconds)?;
        if c.user_root_dn.trim().is_empty() {
            return Err(invalid(path, "user_root_dn", "is empty"));
        }
        if c.sync_group.trim().is_empty() {
            return Err(invalid(path, "sync_group", "is empty"));
        }
        Ok(c)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.server.state_dir.clone().unwrap_or_else(|| PathBuf::from("./sync-state"))
    }

    pub fn ldap_target(&self) -> tether_ad::LdapTarget {
        let l = &self.ldap;
        target(&l.url, &l.bind_dn, &l.bind_password, &l.ca_file, l.insecure_skip_verify)
    }
}

/// The certificates of a private CA file (PEM), or why they cannot be used.
pub fn server_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in the file", path.display()));
    }
    Ok(certs)
}
