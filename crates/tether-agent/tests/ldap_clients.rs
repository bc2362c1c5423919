//! A Linux host's view of an AD user through Tether's LDAP front end: the user is imported
//! from the Samba DC (its password captured on the DC when it changes in AD), then SSSD
//! (Debian's sssd-ldap, run in the foreground with a configuration of this test's own)
//! resolves it with its groups, and `pamtester` logs it in with its AD password through
//! pam_sss. Disabling the account in AD (after one import cycle) or suspending the user in
//! Tether refuses the next login.
//!
//! SSSD's sockets are machine-wide (/var/lib/sss/pipes), so this is the one test that starts
//! SSSD; it runs as root, as CI does.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tether_ad::{connect, create_group, create_user, set_member, NewUser};
use tether_agent::config::ImportConfig;
use tether_agent::import::cycle;
use tether_agent::session::Session;
use tether_testkit::{dc, pki, unique, with_keys, TestServer};

async fn run(cmd: &str, args: &[&str], stdin: Option<&str>) -> (i32, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd} cannot run (Debian's sssd-ldap, libnss-sss, libpam-sss, pamtester): {e}"));
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or("").as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.expect("in time").unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// SSSD in the foreground, stopped (and its cache of this test's domain removed) on drop.
struct Sssd {
    child: tokio::process::Child,
    domain: String,
    _dir: tempfile::TempDir,
}

impl Drop for Sssd {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        for f in [format!("cache_{}.ldb", self.domain), format!("timestamps_{}.ldb", self.domain)] {
            let _ = std::fs::remove_file(Path::new("/var/lib/sss/db").join(f));
        }
    }
}

async fn sssd(ldap_url: &str, reader: &str, password: &str) -> Sssd {
    // One SSSD per machine: whatever another run left is stopped first.
    let _ = tokio::process::Command::new("pkill").args(["-x", "sssd"]).status().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let domain = unique("tether");
    let conf = dir.path().join("sssd.conf");
    // The configuration the documentation gives, as it is (but for a short entry cache).
    let template = std::fs::read_to_string(tether_testkit::workspace_root().join("docs/ldap/sssd.conf")).unwrap();
    let text = template
        .replace("@DOMAIN@", &domain)
        .replace("@LDAP_URI@", ldap_url)
        .replace("@CA_FILE@", &pki().ca_file.display().to_string())
        .replace("@READER@", reader)
        .replace("@READER_PASSWORD@", password)
        .replace("entry_cache_timeout = 60", "entry_cache_timeout = 1");
    assert!(!text.contains('@'), "every placeholder filled: {text}");
    std::fs::write(&conf, text).unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let child = tokio::process::Command::new("/usr/sbin/sssd")
        .args(["-i", "--logger=stderr", "-c"])
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sssd (Debian's sssd-ldap) runs");
    Sssd { child, domain, _dir: dir }
}

#[tokio::test]
async fn sssd_and_pam_see_an_ad_user_through_tether() {
    // Imported from the DC, with its password captured when it changes in AD.
    let s = TestServer::start().await;
    let domain = s.domain(&dc().base_dn, "TWOWAYSYNC").await;
    let key = s.connect_key(&domain, "IMPORT").await;
    let mut ldap = connect(&dc().admin_target()).await.unwrap();
    let ou = format!("OU={},{}", unique("lx"), dc().base_dn);
    ldap.add(&ou, vec![("objectClass", HashSet::from(["organizationalUnit"]))]).await.unwrap().success().unwrap();
    let adi = create_group(&mut ldap, &ou, &unique("adi")).await.unwrap();
    let team_name = unique("team");
    let team = create_group(&mut ldap, &ou, &team_name).await.unwrap();
    set_member(&mut ldap, &adi, &team, true).await.unwrap();
    let sam = unique("lx");
    let mail = format!("{sam}@corp.example.test");
    let nu = NewUser {
        container: &ou,
        sam_account_name: &sam,
        given_name: "Linux",
        sn: "Login",
        mail: &mail,
        password: Some("Imp0rt-Test-Pw!"),
    };
    let dn = create_user(&mut ldap, &nu).await.unwrap();
    set_member(&mut ldap, &team, &dn, true).await.unwrap();
    // RFC 2307 numbers in AD: the Linux host sees the same ones through Tether.
    tether_ad::replace_attrs(&mut ldap, &dn, &[("uidNumber", "70123"), ("gidNumber", "70124")]).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let v = with_keys(
        dc().import_agent_config(&s.url, &key, state.path(), &ou, &adi),
        json!({"InstalledOn": "dc", "SambaSmbConf": dc().dir.join("etc/smb.conf")}),
    );
    let cfg = ImportConfig::from_str(Path::new("i.json"), &v.to_string()).unwrap();
    let session = Session::establish(&cfg.server, &cfg.state_dir(), "dc").await.unwrap();
    let mut conn = connect(&cfg.ldap_target()).await.unwrap();
    cycle(&cfg, &mut conn, &session, true).await.unwrap();
    tether_ad::set_password(&mut ldap, &dn, "Lin-AD-Passw0rd!").await.unwrap();
    cycle(&cfg, &mut conn, &session, true).await.unwrap();
    let u = s.call("GET", &format!("/api/systemusers?filter=username:$eq:{sam}"), None).await.body;
    let id = u["results"][0]["id"].as_str().expect("imported").to_string();
    assert_eq!(u["results"][0]["passwordStatus"], "active", "{u}");
    let groups = s.call("GET", &format!("/api/v2/usergroups?filter=name:eq:{team_name}"), None).await.body;
    let team_id = groups[0]["id"].as_str().expect("mirrored").to_string();

    // In LDAP through its mirrored group; SSSD reads as a binding user.
    let reader = s
        .user(json!({"username": "sssd-reader", "email": "sssd@example.test", "password": "Reader-Passw0rd!",
                     "ldap_binding_user": true}))
        .await;
    let server = s.call("GET", "/api/v2/ldapservers", None).await.body[0]["id"].as_str().unwrap().to_string();
    for (kind, object) in [("user", &reader), ("user_group", &team_id)] {
        let r = s
            .call(
                "POST",
                &format!("/api/v2/ldapservers/{server}/associations"),
                Some(json!({"op": "add", "type": kind, "id": object})),
            )
            .await;
        assert_eq!(r.status, 204, "{:?}", r.body);
    }
    let _sssd = sssd(&s.ldap, "sssd-reader", "Reader-Passw0rd!").await;

    // NSS: the user, its group, its memberships (SSSD needs a moment to come up).
    let mut passwd = (0, String::new());
    for _ in 0..50 {
        passwd = run("getent", &["-s", "sss", "passwd", &sam], None).await;
        if passwd.0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(passwd.0, 0, "getent passwd {sam}: {}", passwd.1);
    let fields: Vec<&str> = passwd.1.trim().split(':').collect();
    assert_eq!(u["results"][0]["unix_uid"], 70123, "{u}");
    assert_eq!(
        (fields[0], fields[2], fields[3], fields[5], fields[6]),
        (sam.as_str(), "70123", "70124", &*format!("/home/{sam}"), "/bin/bash")
    );
    let (code, group) = run("getent", &["-s", "sss", "group", &team_name], None).await;
    assert!(code == 0 && group.trim().ends_with(&sam), "{group}");
    let (code, id_out) = run("id", &[&sam], None).await;
    assert!(code == 0 && id_out.contains(&format!("({team_name})")), "{id_out}");

    // PAM: the AD password logs in; a wrong one, and the right one once suspended, do not.
    pam_service();
    let (code, out) = run("pamtester", &["tether-test", &sam, "authenticate"], Some("Lin-AD-Passw0rd!\n")).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = run("pamtester", &["tether-test", &sam, "authenticate"], Some("Imp0rt-Test-Pw!\n")).await;
    assert_ne!(code, 0, "the old AD password: {out}");
    // Disabled in AD: refused after one import cycle (UserDisableAction=suspend), and let in
    // again once enabled.
    for (uac, logs_in) in [("514", false), ("512", true)] {
        tether_ad::replace_attrs(&mut ldap, &dn, &[("userAccountControl", uac)]).await.unwrap();
        cycle(&cfg, &mut conn, &session, false).await.unwrap();
        let (code, out) = run("pamtester", &["tether-test", &sam, "authenticate"], Some("Lin-AD-Passw0rd!\n")).await;
        assert_eq!(code == 0, logs_in, "userAccountControl {uac}: {out}");
    }
    let r = s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"suspended": true}))).await;
    assert_eq!(r.status, 200);
    let (code, out) = run("pamtester", &["tether-test", &sam, "authenticate"], Some("Lin-AD-Passw0rd!\n")).await;
    assert_ne!(code, 0, "suspended in Tether: {out}");
}

/// The PAM service the test logs in through: pam_sss only.
fn pam_service() {
    std::fs::write("/etc/pam.d/tether-test", "auth required pam_sss.so\naccount required pam_sss.so\n")
        .expect("write /etc/pam.d/tether-test (as root)");
}
