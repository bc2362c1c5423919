//! Samba stopped while changes happen on both sides (on a DC of the test's own: the shared
//! one must stay up): the agents back off, and once AD is back every queued Tether change
//! reaches AD and the AD change made meanwhile reaches Tether. `TETHER_OUTAGE_SECONDS` sets
//! the outage (10 s by default; the 60 s is a longer run).

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tether_ad::{connect, replace_attrs};
use tether_agent::config::{ImportConfig, SyncConfig};
use tether_testkit::{private_dc, sandbox_cmd, TestServer};

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..240 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("not reached within 60 s: {what}");
}

#[tokio::test]
async fn agents_recover_from_an_ad_outage_and_deliver_everything() {
    let outage: u64 = std::env::var("TETHER_OUTAGE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let dc = private_dc("outage-ad");
    let s = TestServer::start().await;
    let d =
        s.call("POST", "/api/v2/activedirectories", Some(json!({"domain": dc.base_dn, "useCase": "TWOWAYSYNC"}))).await;
    let domain = d.body["id"].as_str().unwrap().to_string();
    let agents = format!("/api/v2/activedirectories/{domain}/agents");
    let ik = s.call("POST", &agents, Some(json!({"agentType": "IMPORT"}))).await.body["connectKey"].clone();
    let sk = s.call("POST", &agents, Some(json!({"agentType": "SYNC"}))).await.body["connectKey"].clone();
    let (istate, sstate) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let icfg = ImportConfig::from_str(
        Path::new("i.json"),
        &json!({
            "Server": {"Url": s.url, "ConnectKey": ik, "StateDir": istate.path()},
            "Ldap": {"Url": dc.url, "BindDn": dc.import_dn, "BindPassword": dc.import_password, "CaFile": dc.ca_file,
                     "RootUserContainer": dc.users_container(), "AdiGroup": dc.group_dn},
            "InstalledOn": "member_server", "MainLoop": {"PollIntervalSeconds": 0.2}
        })
        .to_string(),
    )
    .unwrap();
    let scfg = SyncConfig::from_str(
        Path::new("s.json"),
        &json!({
            "Server": {"Url": s.url, "ConnectKey": sk, "StateDir": sstate.path()},
            "Ldap": {"Url": dc.url, "BindDn": dc.admin_dn, "BindPassword": dc.admin_password, "CaFile": dc.ca_file},
            "user_root_dn": dc.users_container(), "sync_group": dc.group_dn, "poll_interval_seconds": 0.2
        })
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
    let first = format!("{}user0001", dc.seed_prefix);
    let second = format!("{}user0002", dc.seed_prefix);
    eventually("the seeded users are imported", async || user(first.clone()).await.is_object()).await;

    // AD goes away; a Tether user is bound to the domain meanwhile (sync side).
    sandbox_cmd("down", &dc.dir);
    let r = s
        .call(
            "POST",
            "/api/systemusers",
            Some(json!({"username": "outage1", "email": "outage1@example.com",
        "firstname": "Out", "lastname": "Age", "password": "0utage-Passw0rd"})),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    s.call(
        "POST",
        &format!("/api/v2/activedirectories/{domain}/associations"),
        Some(json!({"op": "add", "type": "user", "id": id})),
    )
    .await;
    s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"password": "Aft3r-Outage-Pw"}))).await;
    let ad_status = |kind: &'static str| {
        let (s, agents) = (&s, agents.clone());
        async move {
            let list = s.call("GET", &agents, None).await.body;
            list.as_array().unwrap().iter().find(|a| a["agentType"] == kind).unwrap()["adStatus"].clone()
        }
    };
    // The outage shows in the agents' status while they back off (the sync agent finds out
    // when it tries to apply the queued change).
    for kind in ["IMPORT", "SYNC"] {
        eventually("the outage is reported", async || ad_status(kind).await["reachable"] == false).await;
        let st = ad_status(kind).await;
        assert!(st["since"].is_string() && st["error"].is_string(), "{kind}: {st}");
    }
    tokio::time::sleep(Duration::from_secs(outage)).await;
    assert!(!import.is_finished() && !sync.is_finished(), "the agents keep running through the outage");

    // AD is back; an AD-side change happens at once.
    sandbox_cmd("up", &dc.dir);
    let mut ldap = connect(&dc.admin_target()).await.unwrap();
    let dn = user(second.clone()).await["external_dn"].as_str().unwrap().to_string();
    replace_attrs(&mut ldap, &dn, &[("title", "Back Online")]).await.unwrap();

    // Every queued change reaches AD, in order (the later password wins)...
    let target = tether_ad::LdapTarget {
        bind_dn: format!("outage1@{}", dc.realm),
        bind_password: "Aft3r-Outage-Pw".into(),
        ..dc.admin_target()
    };
    eventually("the Tether user exists in AD with its latest password", async || connect(&target).await.is_ok()).await;
    // ...and the AD change reaches Tether.
    eventually("the AD change is imported", async || user(second.clone()).await["jobTitle"] == "Back Online").await;
    for kind in ["IMPORT", "SYNC"] {
        eventually("the recovery is reported", async || ad_status(kind).await == json!({"reachable": true})).await;
    }
    import.abort();
    sync.abort();
    sandbox_cmd("down", &dc.dir);
}
