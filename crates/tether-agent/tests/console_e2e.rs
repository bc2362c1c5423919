//! The admin console and the user portal end to end, in Debian's headless Chromium driven by
//! playwright-core (`e2e/console.mjs`): tetherd, both agents and the real Samba DC run here;
//! the browser logs in as an admin, finds an imported AD user by its badge, pauses and
//! resumes the import agent, converts a user; then the AD user logs in to the portal with
//! the AD password and changes it, and this test binds to Samba with the new one.
//! Screenshots of every page land in `target/test-output/console/`.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tether_ad::{connect, create_group, create_user, set_member, LdapTarget, NewUser};
use tether_agent::config::{ImportConfig, SyncConfig};
use tether_testkit::{dc, unique, with_keys, workspace_root, TestServer};

async fn eventually(what: &str, f: impl AsyncFnMut() -> bool) {
    tether_testkit::eventually(what, Duration::from_secs(60), f).await
}

/// `e2e/node_modules` from the lock file (npm registry; no browser is downloaded).
fn npm_ci(e2e: &Path) {
    if e2e.join("node_modules/playwright-core").exists() {
        return;
    }
    let st = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(e2e)
        .status()
        .expect("npm is installed (Node.js)");
    assert!(st.success(), "npm ci in e2e/ failed");
}

#[tokio::test]
async fn admin_console_and_user_portal_in_chromium() {
    let s = TestServer::start().await;
    let d = s
        .call("POST", "/api/v2/activedirectories", Some(json!({"domain": dc().base_dn, "useCase": "TWOWAYSYNC"})))
        .await;
    let domain = d.body["id"].as_str().unwrap().to_string();
    let domain_dn = d.body["domain"].as_str().unwrap().to_string();
    let r = s
        .call("PATCH", &format!("/api/v2/activedirectories/{domain}"), Some(json!({"delegationState": "ENABLED"})))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let agents = format!("/api/v2/activedirectories/{domain}/agents");
    let (ik, sk) = (s.connect_key(&domain, "IMPORT").await, s.connect_key(&domain, "SYNC").await);

    let mut ldap = connect(&dc().admin_target()).await.unwrap();
    let ou = format!("OU={},{}", unique("e2e"), dc().base_dn);
    ldap.add(&ou, vec![("objectClass", HashSet::from(["organizationalUnit"]))]).await.unwrap().success().unwrap();
    let adi = create_group(&mut ldap, &ou, &unique("adi")).await.unwrap();
    let old_password = "P0rtal-Old-Passw0rd!";
    let new_password = "N3w-Portal-Passw0rd!";
    let mut sams = Vec::new();
    for prefix in ["pu", "cv"] {
        let sam = unique(prefix);
        let dn = create_user(
            &mut ldap,
            &NewUser {
                container: &ou,
                sam_account_name: &sam,
                given_name: "Eve",
                sn: &sam,
                mail: &format!("{sam}@corp.example.test"),
                password: Some(old_password),
            },
        )
        .await
        .unwrap();
        set_member(&mut ldap, &adi, &dn, true).await.unwrap();
        sams.push(sam);
    }
    let (portal_user, convert_user) = (sams[0].clone(), sams[1].clone());

    let (istate, sstate) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let icfg = ImportConfig::from_str(
        Path::new("i.json"),
        &with_keys(
            dc().import_agent_config(&s.url, &ik, istate.path(), &ou, &adi),
            json!({"MainLoop": {"PollIntervalSeconds": 0.2}}),
        )
        .to_string(),
    )
    .unwrap();
    let scfg = SyncConfig::from_str(
        Path::new("s.json"),
        &with_keys(
            dc().sync_agent_config(&s.url, &sk, sstate.path(), &ou, &adi),
            json!({"poll_interval_seconds": 0.2}),
        )
        .to_string(),
    )
    .unwrap();
    let import = tokio::spawn(tether_agent::runner::run_import(icfg, std::future::pending()));
    let sync = tokio::spawn(tether_agent::runner::run_sync(scfg, std::future::pending()));
    let user = |name: String| {
        let s = &s;
        async move {
            let r = s.call("GET", &format!("/api/systemusers?filter=username:$eq:{name}"), None).await;
            r.body["results"].as_array().and_then(|a| a.first().cloned()).unwrap_or(Value::Null)
        }
    };
    for sam in &sams {
        eventually("the AD users are imported", async || user(sam.clone()).await.is_object()).await;
    }
    // The admin lets AD validate this user's password (the seeds' Delegated Authority).
    let id = user(portal_user.clone()).await["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            "PUT",
            &format!("/api/systemusers/{id}"),
            Some(json!({"delegatedAuthority": {"id": domain, "name": "ActiveDirectory"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let list = s.call("GET", &agents, None).await.body;
    let import_agent = list.as_array().unwrap().iter().find(|a| a["agentType"] == "IMPORT").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let e2e = workspace_root().join("e2e");
    npm_ci(&e2e);
    let out_dir = workspace_root().join("target/test-output/console");
    let out = tokio::process::Command::new("node")
        .arg(e2e.join("console.mjs"))
        .env("TETHER_URL", &s.url)
        .env("TETHER_CA_FILE", tether_testkit::ca_file())
        .env("TETHER_API_KEY", &s.api_key)
        .env("E2E_AD_USER", &portal_user)
        .env("E2E_AD_PASSWORD", old_password)
        .env("E2E_NEW_PASSWORD", new_password)
        .env("E2E_CONVERT_USER", &convert_user)
        .env("E2E_DOMAIN_DN", &domain_dn)
        .env("E2E_IMPORT_AGENT", &import_agent)
        .env("E2E_OUT", &out_dir)
        .env("E2E_TLS_CERT", &tether_testkit::pki().cert_file)
        .output()
        .await
        .expect("node is installed");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed:\n{log}");
    assert!(std::fs::read_dir(&out_dir).unwrap().count() >= 9, "a screenshot per page");

    // What the browser did, as the API and AD see it.
    // Converted by the console. (The running import agent makes the user AD-managed again
    // at its next report naming it — the seeds convert users after the agents are gone —
    // so the conversion is checked in the user's history, not in its current state.)
    let cid = user(convert_user.clone()).await["id"].as_str().unwrap().to_string();
    let history = s.call("GET", &format!("/api/v2/users/{cid}/history"), None).await.body;
    let converted =
        history.as_array().unwrap().iter().any(|h| h["changes"]["externally_managed"] == json!([true, false]));
    assert!(converted, "converted in the console: {history}");
    let a = s.call("GET", &format!("{agents}/{import_agent}"), None).await.body;
    assert_eq!(a["paused"], false, "resumed");
    let as_user = |pw: &str| LdapTarget {
        bind_dn: format!("{portal_user}@{}", dc().realm),
        bind_password: pw.into(),
        ..dc().admin_target()
    };
    eventually("the new password reaches AD", async || connect(&as_user(new_password)).await.is_ok()).await;
    // (The old password keeps binding for a while: Samba's `old password allowed period`,
    // 60 minutes by default, as AD's; so it is not asserted here.)
    import.abort();
    sync.abort();
}
