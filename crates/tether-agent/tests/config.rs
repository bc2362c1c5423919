//! The agents' config files: defaults, aliases, and errors that name the key.

use std::path::Path;

use serde_json::{json, Value};
use tether_agent::config::{ChangeNotifications, ImportConfig, InstalledOn, SyncConfig, TombstonesReadable};
use tether_core::adi::*;

fn import_min() -> Value {
    json!({
        "Server": {"Url": "http://127.0.0.1:8080", "ConnectKey": "ck_1"},
        "Ldap": {"Url": "ldaps://dc1:636", "BindDn": "CN=jcimport,CN=Users,DC=c", "BindPassword": "pw",
                 "RootUserContainer": "CN=Users,DC=c", "AdiGroup": "CN=JumpCloud,CN=Users,DC=c"}
    })
}

fn sync_min() -> Value {
    json!({
        "Server": {"Url": "http://127.0.0.1:8080", "ConnectKey": "ck_2"},
        "Ldap": {"Url": "ldaps://dc1:636", "BindDn": "x@corp", "BindPassword": "pw"},
        "user_root_dn": "CN=Users,DC=c", "sync_group": "CN=JumpCloud,CN=Users,DC=c"
    })
}

fn import(v: &Value) -> Result<ImportConfig, String> {
    ImportConfig::from_str(Path::new("importagent.config.json"), &v.to_string()).map_err(|e| e.to_string())
}

fn sync(v: &Value) -> Result<SyncConfig, String> {
    SyncConfig::from_str(Path::new("syncagent.config.json"), &v.to_string()).map_err(|e| e.to_string())
}

#[test]
fn import_defaults_are_the_new_install_defaults() {
    let c = import(&import_min()).unwrap();
    let m = &c.main_loop;
    assert_eq!(m.poll_interval_seconds, 90.0);
    assert!(m.sync_additional_attributes);
    assert_eq!(m.user_dissociation_action, UserDissociationAction::Remove);
    assert_eq!(m.user_field_mapping, UserFieldMapping::SamAccountName);
    assert_eq!(m.user_takeover_action, UserTakeoverAction::Deactivate);
    assert_eq!(m.user_disable_action, UserDisableAction::Suspend);
    assert_eq!(m.user_expire_action, UserExpireAction::Expire);
    assert!(!m.sync_account_locked_out_status);
    assert_eq!(m.password_change_listener.poll_time_millis, 5000);
    assert_eq!(c.installed_on, InstalledOn::Dc);
    assert_eq!(c.ldap.admins_group, None);
    assert_eq!(c.state_dir(), Path::new("./import-state"));
    assert_eq!(c.change_notifications, ChangeNotifications::Auto);
    assert_eq!(c.tombstones_readable, TombstonesReadable::Auto);
}

#[test]
fn deletions_are_taken_as_notified_when_the_admin_says_so_or_a_tombstone_is_visible_on_ad() {
    // (setting, Samba DC, a tombstone visible to the account at start, looked for, trusted)
    let rows = [
        (json!("auto"), false, true, true, true),
        (json!("auto"), false, false, true, false),
        (json!("auto"), true, true, false, false), // Samba's 5-second retry: the check stays
        (json!(true), false, true, true, true),
        (json!(true), false, false, true, true), // the admin's word (a domain with no deletion yet)
        (json!(true), true, false, true, true),
        (json!(false), false, true, false, false),
        (json!(false), true, true, false, false),
    ];
    for (setting, samba, visible, looks, trusted) in rows {
        let mut v = import_min();
        v["TombstonesReadable"] = setting.clone();
        let t = import(&v).unwrap().tombstones_readable;
        assert_eq!(
            (t.looks(samba), t.trusted(samba, visible)),
            (looks, trusted),
            "{setting}, Samba {samba}, {visible}"
        );
    }
}

#[test]
fn change_notifications_are_held_on_active_directory_and_not_on_samba_by_default() {
    // (setting, Samba DC, held)
    let rows = [
        ("auto", false, true),
        ("auto", true, false),
        ("on", true, true),
        ("on", false, true),
        ("off", false, false),
        ("off", true, false),
    ];
    for (setting, samba, held) in rows {
        let mut v = import_min();
        v["ChangeNotifications"] = json!(setting);
        let c = import(&v).unwrap();
        assert_eq!(c.change_notifications.hold(samba), held, "{setting} on Samba: {samba}");
    }
}

#[test]
fn import_full_example_of_the_contract() {
    let mut v = import_min();
    v["InstalledOn"] = json!("member_server");
    v["SambaSmbConf"] = json!("/etc/samba/smb.conf");
    v["MainLoop"] = json!({
        "PollIntervalSeconds": 0.5, "SyncAdditionalAttributes": false, "UserDissociateAction": "unbind",
        "UserFieldMapping": "userPrincipalName", "UserTakeoverAction": "retain", "UserDisableAction": "remove",
        "UserExpireAction": "maintain", "SyncAccountLockedOutStatus": true, "PasswordChangeListener": {"PollTimeMillis": 100}
    });
    let c = import(&v).unwrap();
    assert_eq!(c.installed_on, InstalledOn::MemberServer);
    assert_eq!(c.main_loop.poll_interval_seconds, 0.5);
    assert_eq!(c.main_loop.user_dissociation_action, UserDissociationAction::Unbind, "seed spelling accepted");
    assert_eq!(c.main_loop.user_field_mapping, UserFieldMapping::UserPrincipalName);
    assert_eq!(c.main_loop.user_disable_action, UserDisableAction::Remove);
}

#[test]
fn sync_defaults_and_alias() {
    let c = sync(&sync_min()).unwrap();
    assert_eq!(c.poll_interval_seconds, 5.0);
    assert_eq!(c.user_disconnection_action, UserDisconnectionAction::Disable);
    assert_eq!(c.membership_disconnection, MembershipDisconnection::Remove);
    assert_eq!(c.group_disconnection_action, GroupDisconnectionAction::Retain);
    assert_eq!(c.group_membership_sync_type, None);
    let mut v = sync_min();
    v["membership_disconnection_action"] = json!("retain");
    v["group_membership_sync_type"] = json!("match");
    let c = sync(&v).unwrap();
    assert_eq!(c.membership_disconnection, MembershipDisconnection::Retain);
    assert_eq!(c.group_membership_sync_type, Some(GroupMembershipSyncType::Match));
}

#[test]
fn malformed_configs_name_key_and_reason() {
    // (mutation, text the error must contain)
    type Mutate = fn(&mut Value);
    let rows: Vec<(Mutate, &str)> = vec![
        (|v| v["MainLoop"] = json!({"UserDisableAction": "explode"}), "MainLoop.UserDisableAction"),
        (|v| v["MainLoop"] = json!({"UserDisableAction": "explode"}), "unknown variant `explode`"),
        (|v| v["MainLoop"] = json!({"Bogus": 1}), "unknown field `Bogus`"),
        (|v| v["Extra"] = json!(1), "unknown field `Extra`"),
        (|v| v["ChangeNotifications"] = json!("sometimes"), "ChangeNotifications"),
        (|v| v["TombstonesReadable"] = json!("yes"), "TombstonesReadable"),
        (|v| v["TombstonesReadable"] = json!(1), "expected true, false or \"auto\""),
        (|v| v["MainLoop"] = json!({"PollIntervalSeconds": 0}), "MainLoop.PollIntervalSeconds"),
        (|v| v["MainLoop"] = json!({"PollIntervalSeconds": "fast"}), "MainLoop.PollIntervalSeconds"),
        (|v| v["Ldap"]["Url"] = json!("ldapx://dc"), "Ldap.Url"),
        (|v| v["Ldap"]["BindPassword"] = json!(""), "Ldap.BindPassword"),
        (
            |v| {
                v["Ldap"].as_object_mut().unwrap().remove("AdiGroup");
            },
            "missing field `AdiGroup`",
        ),
        (|v| v["Server"]["ConnectKey"] = json!(""), "Server.ConnectKey"),
        // Plain HTTP only to a loopback host: tokens and passwords cross this link.
        (|v| v["Server"]["Url"] = json!("http://10.0.0.5:8080"), "Server.Url"),
        (|v| v["Server"]["Url"] = json!("http://tether.corp.example.com"), "only to a loopback host"),
        (|v| v["Server"]["Url"] = json!("tether.corp.example.com"), "Server.Url"),
        (|v| v["Server"]["CaFile"] = json!("/nonexistent/ca.pem"), "Server.CaFile"),
        (|v| v["Server"]["CaFile"] = json!("/etc/hostname"), "no PEM certificate"),
        (|v| v["InstalledOn"] = json!("laptop"), "InstalledOn"),
        (|v| v["MetricsListen"] = json!("localhost"), "MetricsListen"),
        (|v| v["MetricsListen"] = json!("localhost"), "invalid socket address"),
    ];
    for (mutate, want) in rows {
        let mut v = import_min();
        mutate(&mut v);
        let e = import(&v).expect_err(&v.to_string());
        assert!(e.contains(want), "{v}: {e}");
        assert!(e.contains("importagent.config.json"), "{e}");
    }
    let mut v = sync_min();
    v["user_disconnection_action"] = json!("delete");
    let e = sync(&v).unwrap_err();
    assert!(e.contains("user_disconnection_action") && e.contains("unknown variant"), "{e}");
    let mut v = sync_min();
    v["metrics_listen"] = json!("127.0.0.1:99999");
    assert!(sync(&v).unwrap_err().contains("metrics_listen"));
    let mut v = sync_min();
    v["Ldap"]["RootUserContainer"] = json!("x");
    assert!(sync(&v).unwrap_err().contains("unknown field `RootUserContainer`"));
    let e = ImportConfig::from_str(Path::new("c.json"), "{ not json").unwrap_err().to_string();
    assert!(e.contains("c.json"), "{e}");
}

#[test]
fn https_urls_and_a_private_ca_are_accepted() {
    let mut v = import_min();
    v["Server"]["Url"] = json!("https://tether.corp.example.com:8443");
    v["Server"]["CaFile"] = json!(tether_testkit::ca_file());
    let c = import(&v).unwrap();
    assert_eq!(c.server.ca_file.as_deref(), Some(tether_testkit::ca_file()));
    let mut v = sync_min();
    v["Server"]["Url"] = json!("http://10.1.2.3");
    assert!(sync(&v).unwrap_err().contains("Server.Url"));
}

#[test]
fn secrets_are_redacted_in_debug() {
    let mut v = import_min();
    v["Ldap"]["BindPassword"] = json!("Sup3r-Secret!");
    v["Server"]["ConnectKey"] = json!("ck_very_secret_key");
    let dbg = format!("{:?}", import(&v).unwrap());
    assert!(!dbg.contains("Sup3r-Secret!") && !dbg.contains("ck_very_secret_key"), "{dbg}");
    assert!(dbg.contains("<redacted>"));
}

#[test]
fn world_readable_config_files_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("importagent.config.json");
    std::fs::write(&path, import_min().to_string()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = ImportConfig::load(&path).unwrap_err().to_string();
    assert!(e.contains("readable by every user") && e.contains("chmod 600"), "{e}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    ImportConfig::load(&path).unwrap();
    let e = SyncConfig::load(&dir.path().join("missing.json")).unwrap_err().to_string();
    assert!(e.contains("missing.json"), "{e}");
}
