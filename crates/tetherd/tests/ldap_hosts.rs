//! The documented configurations of LDAP clients, run as documented against an in-process
//! tetherd: nslcd (Debian's nslcd and libnss-ldapd, from `docs/ldap/nslcd.conf`) resolving
//! users and groups, and an application's login (the Gitea flags of `docs/ldap/apps.md`:
//! bind as the reading account, the user filter, the user's own bind, the admin filter).
//!
//! nslcd reads /etc/nslcd.conf and serves one socket per machine (/run/nslcd), so this is the
//! one test that starts nslcd; it runs as root, as CI does, and puts the file back after.

use std::time::Duration;

use serde_json::{json, Value};
use tether_testkit::{pki, workspace_root, TestServer};

const READER_PASSWORD: &str = "Reader-Passw0rd!";

async fn run(cmd: &str, args: &[&str]) -> (i32, String) {
    let out = tether_testkit::ldap_tool(cmd)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{cmd} cannot run (Debian's ldap-utils, nslcd, libnss-ldapd): {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

async fn user(s: &TestServer, name: &str, password: &str, more: Value) -> String {
    let mut body = json!({"username": name, "email": format!("{name}@example.test"), "firstname": "Host",
                          "lastname": name, "password": password});
    body.as_object_mut().unwrap().extend(more.as_object().cloned().unwrap_or_default());
    s.user(body).await
}

async fn associate(s: &TestServer, kind: &str, id: &str) {
    let server = s.call("GET", "/api/v2/ldapservers", None).await.body[0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v2/ldapservers/{server}/associations");
    let r = s.call("POST", &path, Some(json!({"op": "add", "type": kind, "id": id}))).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
}

/// nslcd in the foreground with the documented configuration; on drop it is stopped and the
/// machine's /etc/nslcd.conf put back.
struct Nslcd {
    child: tokio::process::Child,
    saved: Option<Vec<u8>>,
    ca: std::path::PathBuf,
}

impl Drop for Nslcd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        match &self.saved {
            Some(b) => drop(std::fs::write("/etc/nslcd.conf", b)),
            None => drop(std::fs::remove_file("/etc/nslcd.conf")),
        }
        let _ = std::fs::remove_file(&self.ca);
    }
}

async fn nslcd(ldap_url: &str, reader: &str) -> Nslcd {
    let _ = tokio::process::Command::new("pkill").args(["-x", "nslcd"]).status().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // nslcd reads the CA as its own user: a copy it may read (a CA certificate is public).
    let ca = std::env::temp_dir().join(format!("tether-nslcd-ca-{}.pem", std::process::id()));
    std::fs::copy(&pki().ca_file, &ca).unwrap();
    std::fs::set_permissions(&ca, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let template = std::fs::read_to_string(workspace_root().join("docs/ldap/nslcd.conf")).unwrap();
    let text = template
        .replace("@LDAP_URI@", &format!("{ldap_url}/"))
        .replace("@CA_FILE@", &ca.display().to_string())
        .replace("@READER@", reader)
        .replace("@READER_PASSWORD@", READER_PASSWORD);
    assert!(!text.contains('@'), "every placeholder filled: {text}");
    let saved = std::fs::read("/etc/nslcd.conf").ok();
    std::fs::write("/etc/nslcd.conf", text).expect("write /etc/nslcd.conf (as root)");
    std::fs::set_permissions("/etc/nslcd.conf", std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    std::fs::create_dir_all("/run/nslcd").unwrap();
    let _ = tokio::process::Command::new("chown").args(["nslcd:nslcd", "/run/nslcd", "/etc/nslcd.conf"]).status().await;
    let _ = tokio::process::Command::new("chown").args(["root:nslcd", "/etc/nslcd.conf"]).status().await;
    let child = tokio::process::Command::new("/usr/sbin/nslcd")
        .arg("-d")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nslcd (Debian's nslcd) runs");
    Nslcd { child, saved, ca }
}

#[tokio::test]
async fn nslcd_resolves_users_and_groups_with_the_documented_configuration() {
    let s = TestServer::start().await;
    let reader = user(&s, "nss-reader", READER_PASSWORD, json!({"ldap_binding_user": true})).await;
    associate(&s, "user", &reader).await;
    let nina = user(&s, "nina", "Nina-Passw0rd!", json!({"unix_uid": 71001, "unix_guid": 71001})).await;
    let devs = s.create("/api/v2/usergroups", json!({"name": "devs"})).await;
    s.add_member(&devs, &nina).await;
    associate(&s, "user_group", &devs).await;
    let _nslcd = nslcd(&s.ldap, "nss-reader").await;

    let mut passwd = (0, String::new());
    for _ in 0..50 {
        passwd = run("getent", &["-s", "ldap", "passwd", "nina"]).await;
        if passwd.0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(passwd.0, 0, "getent passwd nina: {}", passwd.1);
    let fields: Vec<&str> = passwd.1.trim().split(':').collect();
    assert_eq!(
        (fields[0], fields[2], fields[3], fields[5], fields[6]),
        ("nina", "71001", "71001", "/home/nina", "/bin/bash"),
        "{passwd:?}"
    );
    let (code, by_uid) = run("getent", &["-s", "ldap", "passwd", "71001"]).await;
    assert!(code == 0 && by_uid.starts_with("nina:"), "{by_uid}");
    let (code, group) = run("getent", &["-s", "ldap", "group", "devs"]).await;
    assert!(code == 0 && group.starts_with("devs:") && group.trim().ends_with(":nina"), "{group}");
    // Out of LDAP: no longer resolved.
    let r = s
        .call(
            "POST",
            &format!("/api/v2/usergroups/{devs}/members"),
            Some(json!({"op": "remove", "type": "user", "id": nina})),
        )
        .await;
    assert_eq!(r.status, 204);
    let (code, out) = run("getent", &["-s", "ldap", "passwd", "nina"]).await;
    assert_ne!(code, 0, "{out}");
}

/// The values of the flags of the Gitea example in docs/ldap/apps.md.
fn gitea_flags() -> std::collections::HashMap<String, String> {
    let doc = std::fs::read_to_string(workspace_root().join("docs/ldap/apps.md")).unwrap();
    let block = doc.split("gitea admin auth add-ldap").nth(1).unwrap().split("```").next().unwrap();
    let mut flags = std::collections::HashMap::new();
    for line in block.lines().map(|l| l.trim().trim_end_matches('\\').trim()).filter(|l| l.starts_with("--")) {
        let (flag, value) = line.split_once(' ').unwrap_or((line, ""));
        flags.insert(flag.trim_start_matches('-').to_string(), value.trim_matches('\'').to_string());
    }
    flags
}

#[tokio::test]
async fn an_application_logs_users_in_with_the_documented_settings() {
    let f = gitea_flags();
    let s = TestServer::start().await;
    let reader_name = f["bind-dn"].strip_prefix("uid=").unwrap().split(',').next().unwrap().to_string();
    let reader = user(&s, &reader_name, READER_PASSWORD, json!({"ldap_binding_user": true})).await;
    associate(&s, "user", &reader).await;
    let admins_name = f["admin-filter"].split("cn=").nth(1).unwrap().split(',').next().unwrap().to_string();
    let admins = s.create("/api/v2/usergroups", json!({"name": admins_name})).await;
    let gus = user(&s, "gus", "Gus-Passw0rd!", json!({})).await;
    s.add_member(&admins, &gus).await;
    associate(&s, "user_group", &admins).await;
    let hal = user(&s, "hal", "Hal-Passw0rd!", json!({})).await;
    associate(&s, "user", &hal).await;
    assert_eq!(f["security-protocol"], "StartTLS");
    // The documented host and port stand for this tetherd's.
    let url = s.ldap.clone();

    let app_search = |base: String, scope: &'static str, filter: String, attrs: Vec<String>| {
        let (url, bind_dn) = (url.clone(), f["bind-dn"].clone());
        async move {
            let mut args: Vec<String> = [
                "-x",
                "-ZZ",
                "-LLL",
                "-H",
                &url,
                "-D",
                &bind_dn,
                "-w",
                READER_PASSWORD,
                "-b",
                &base,
                "-s",
                scope,
                &filter,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(attrs);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, out) = run("ldapsearch", &args).await;
            assert_eq!(code, 0, "{out}");
            out.replace("\n ", "")
        }
    };
    for (name, password, admin) in [("gus", "Gus-Passw0rd!", true), ("hal", "Hal-Passw0rd!", false)] {
        // Find the user by the user filter, with the attributes the application maps.
        let attrs: Vec<String> = ["username-attribute", "firstname-attribute", "surname-attribute", "email-attribute"]
            .iter()
            .map(|k| f[*k].clone())
            .collect();
        let found = app_search(f["user-search-base"].clone(), "sub", f["user-filter"].replace("%s", name), attrs).await;
        let dns: Vec<&str> = found.lines().filter_map(|l| l.strip_prefix("dn: ")).collect();
        assert_eq!(dns.len(), 1, "{found}");
        for want in [
            format!("uid: {name}"),
            "givenName: Host".into(),
            format!("sn: {name}"),
            format!("mail: {name}@example.test"),
        ] {
            assert!(found.contains(&want), "{want} in {found}");
        }
        // The user's own bind with the password typed; a wrong one fails.
        let (code, out) = run("ldapwhoami", &["-x", "-ZZ", "-H", &url, "-D", dns[0], "-w", password]).await;
        assert_eq!(code, 0, "{out}");
        let (code, _) = run("ldapwhoami", &["-x", "-ZZ", "-H", &url, "-D", dns[0], "-w", "not-it"]).await;
        assert_eq!(code, 49);
        // The admin filter, on the user's entry.
        let is_admin = app_search(dns[0].to_string(), "base", f["admin-filter"].clone(), vec!["1.1".into()]).await;
        assert_eq!(is_admin.contains("dn: "), admin, "{name}: {is_admin}");
    }
}
