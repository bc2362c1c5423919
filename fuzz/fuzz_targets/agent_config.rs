//! The agents' config files (`ImportConfig::from_str`, `SyncConfig::from_str`), fed the input
//! as the file's text, and a valid minimal config edited by the input (keys set to generated
//! values or removed), which reaches the checks after deserialization.
//!
//! Properties: nothing panics; an error is `Invalid` with the file's path, a key and a
//! reason; an accepted config satisfies every documented check (URL schemes, non-empty
//! secrets and DNs, a poll interval in (0, 86400]); its `Debug` never shows the secrets.

#![no_main]

use std::path::Path;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tether_agent::config::{ConfigError, ImportConfig, Secret, ServerSection, SyncConfig};
use tether_fuzz::{edit, Vocabulary};

const IMPORT_PATH: &str = "/etc/tether/importagent.config.json";
const SYNC_PATH: &str = "/etc/tether/syncagent.config.json";

fn check_error(path: &str, e: &ConfigError) {
    match e {
        ConfigError::Invalid { path: p, key, reason } => {
            assert_eq!(p, path);
            // The key is the path to the offending value; it is empty only when that is a
            // key named "" (then the reason names it: unknown field ``).
            assert!(!reason.trim().is_empty(), "an error without a reason: {e}");
            assert!(!key.is_empty() || reason.contains("``"), "an error without a key: {e}");
        }
        ConfigError::Read { .. } => panic!("from_str reads no file, yet: {e}"),
    }
    assert!(e.to_string().contains(path), "{e}");
}

fn check_common(server: &ServerSection, url: &str, bind_dn: &str, pw: &Secret) {
    // The scheme as written, `//` included (case-insensitive, as HTTP clients read it).
    let written = server.url.trim_start().to_ascii_lowercase();
    assert!(written.starts_with("http://") || written.starts_with("https://"), "{}", server.url);
    assert!(!server.connect_key.0.is_empty());
    assert!(url.starts_with("ldaps://") || url.starts_with("ldap://"), "{url}");
    assert!(!bind_dn.trim().is_empty());
    assert!(!pw.0.is_empty());
}

fn check_interval(v: f64) {
    assert!(v.is_finite() && v > 0.0 && v <= 86_400.0, "poll interval {v}");
}

/// Debug output must not depend on the secrets' values.
fn redacted<T: std::fmt::Debug + Clone>(c: &T, blank: impl Fn(&mut T)) {
    let mut other = c.clone();
    blank(&mut other);
    assert_eq!(format!("{c:?}"), format!("{other:?}"), "a secret shows in Debug");
}

fn import(text: &str) {
    match ImportConfig::from_str(Path::new(IMPORT_PATH), text) {
        Ok(c) => {
            check_common(&c.server, &c.ldap.url, &c.ldap.bind_dn, &c.ldap.bind_password);
            check_interval(c.main_loop.poll_interval_seconds);
            assert!(!c.ldap.root_user_container.trim().is_empty());
            assert!(!c.ldap.adi_group.trim().is_empty());
            redacted(&c, |o| {
                o.ldap.bind_password = Secret("other password".into());
                o.server.connect_key = Secret("other key".into());
            });
            assert_eq!(c.ldap_target().bind_password, c.ldap.bind_password.0);
            let _ = c.state_dir();
        }
        Err(e) => check_error(IMPORT_PATH, &e),
    }
}

fn sync(text: &str) {
    match SyncConfig::from_str(Path::new(SYNC_PATH), text) {
        Ok(c) => {
            check_common(&c.server, &c.ldap.url, &c.ldap.bind_dn, &c.ldap.bind_password);
            check_interval(c.poll_interval_seconds);
            assert!(!c.user_root_dn.trim().is_empty());
            assert!(!c.sync_group.trim().is_empty());
            redacted(&c, |o| {
                o.ldap.bind_password = Secret("other password".into());
                o.server.connect_key = Secret("other key".into());
            });
            assert_eq!(c.ldap_target().bind_password, c.ldap.bind_password.0);
            let _ = c.state_dir();
        }
        Err(e) => check_error(SYNC_PATH, &e),
    }
}

const SECTIONS: &[&str] = &["", "Server", "Ldap", "MainLoop", "MainLoop.PasswordChangeListener"];
const KEYS: &[&str] = &[
    "Server",
    "Ldap",
    "MainLoop",
    "InstalledOn",
    "SambaSmbConf",
    "Url",
    "ConnectKey",
    "StateDir",
    "BindDn",
    "BindPassword",
    "CaFile",
    "InsecureSkipVerify",
    "RootUserContainer",
    "AdiGroup",
    "AdminsGroup",
    "PollIntervalSeconds",
    "SyncAdditionalAttributes",
    "UserDissociationAction",
    "UserDissociateAction",
    "UserFieldMapping",
    "UserTakeoverAction",
    "UserDisableAction",
    "UserExpireAction",
    "SyncAccountLockedOutStatus",
    "PasswordChangeListener",
    "PollTimeMillis",
    "user_root_dn",
    "poll_interval_seconds",
    "sync_group",
    "user_disconnection_action",
    "membership_disconnection",
    "membership_disconnection_action",
    "group_disconnection_action",
    "group_membership_sync_type",
];
const STRINGS: &[&str] = &[
    "",
    " ",
    "http://127.0.0.1:8080",
    "https://tether.example",
    "ldaps://dc1:636",
    "ldap://dc1",
    "ldapx://dc",
    "CN=Users,DC=c",
    "ck_1",
    "pw",
    "dc",
    "member_server",
    "laptop",
    "remove",
    "unbind",
    "suspend",
    "retain",
    "deactivate",
    "expire",
    "maintain",
    "disable",
    "delete",
    "match",
    "sAMAccountName",
    "userPrincipalName",
    "/var/lib/tether",
    "NaN",
    "1e400",
];

fn minimal(sync: bool) -> Value {
    let mut v = json!({
        "Server": {"Url": "http://127.0.0.1:8080", "ConnectKey": "ck_1"},
        "Ldap": {"Url": "ldaps://dc1:636", "BindDn": "CN=jcimport,CN=Users,DC=c", "BindPassword": "pw"}
    });
    if sync {
        v["user_root_dn"] = json!("CN=Users,DC=c");
        v["sync_group"] = json!("CN=JumpCloud,CN=Users,DC=c");
    } else {
        v["Ldap"]["RootUserContainer"] = json!("CN=Users,DC=c");
        v["Ldap"]["AdiGroup"] = json!("CN=JumpCloud,CN=Users,DC=c");
    }
    v
}

/// A minimal valid config with some keys set to generated values or removed.
fn edited(u: &mut Unstructured, sync: bool) -> Result<Value> {
    let mut v = minimal(sync);
    edit(u, &mut v, SECTIONS, &Vocabulary { keys: KEYS, strings: STRINGS }, 4)?;
    Ok(v)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        import(text);
        sync(text);
    }
    let mut u = Unstructured::new(data);
    if let Ok(v) = edited(&mut u, false) {
        import(&v.to_string());
    }
    if let Ok(v) = edited(&mut u, true) {
        sync(&v.to_string());
    }
});
