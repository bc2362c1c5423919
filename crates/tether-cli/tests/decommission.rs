//! Retiring AD end to end, against the real Samba DC: a two-way domain with import and sync
//! agents → the plan lists the users at risk → `--apply`, interrupted midway and run again →
//! the domain is gone, every user is a plain Tether user, none was deleted, and users with a
//! Tether password still log in.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tether_ad::{connect, create_group, create_user, set_member, set_password, NewUser};
use tether_agent::config::ImportConfig;
use tether_agent::import::cycle;
use tether_agent::session::Session;
use tether_testkit::{dc, unique, TestServer};

fn tether(s: &TestServer, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_tether"));
    c.args(args)
        .env("TETHER_URL", &s.url)
        .env("TETHER_CA_FILE", tether_testkit::ca_file())
        .env("TETHER_API_KEY", &s.api_key);
    c
}

#[tokio::test]
async fn plan_apply_interrupted_and_resumed() {
    let s = TestServer::start_with_grace(time::Duration::seconds(2)).await;
    let domain = s.create("/api/v2/activedirectories", json!({"domain": dc().base_dn, "useCase": "TWOWAYSYNC"})).await;
    let key = |t: &str| {
        let s = &s;
        let domain = domain.clone();
        let t = t.to_string();
        async move {
            s.call("POST", &format!("/api/v2/activedirectories/{domain}/agents"), Some(json!({"agentType": t})))
                .await
                .body["connectKey"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (ik, _sk) = (key("IMPORT").await, key("SYNC").await);

    // AD: an ADI group with three users; the import runs on the DC.
    let mut ldap = connect(&dc().admin_target()).await.unwrap();
    let users_ou = dc().users_container();
    let adi = create_group(&mut ldap, &users_ou, &unique("adi")).await.unwrap();
    let mut sams = Vec::new();
    for _ in 0..3 {
        let sam = unique("dc");
        let mail = format!("{sam}@corp.example.test");
        let dn = create_user(
            &mut ldap,
            &NewUser {
                container: &users_ou,
                sam_account_name: &sam,
                given_name: "Dee",
                sn: &sam,
                mail: &mail,
                password: Some("Decom-Old-Pw1!"),
            },
        )
        .await
        .unwrap();
        set_member(&mut ldap, &adi, &dn, true).await.unwrap();
        sams.push((sam, dn));
    }
    let state = tempfile::tempdir().unwrap();
    let v = tether_testkit::with_keys(
        dc().import_agent_config(&s.url, &ik, state.path(), &users_ou, &adi),
        json!({"InstalledOn": "dc", "SambaSmbConf": dc().dir.join("etc/smb.conf")}),
    );
    let cfg = ImportConfig::from_str(Path::new("i.json"), &v.to_string()).unwrap();
    let session = Session::establish(&cfg.server, &cfg.state_dir(), "dc").await.unwrap();
    let mut conn = connect(&cfg.ldap_target()).await.unwrap();
    assert_eq!(
        cycle(&cfg, &mut conn, &session, true).await.unwrap().outcome.map(tether_testkit::json_of).unwrap()["created"],
        3
    );
    // The first user changes the AD password: captured, so it has a Tether password.
    set_password(&mut ldap, &sams[0].1, "Decom-New-Pw1!").await.unwrap();
    cycle(&cfg, &mut conn, &session, true).await.unwrap();

    // The plan.
    let out = tether(&s, &["ad", "decommission", &domain, "--plan", "--json"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["configuration"], "import and sync");
    let mut risk: Vec<String> =
        plan["usersAtRisk"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap().into()).collect();
    risk.sort();
    let mut want = vec![sams[1].0.clone(), sams[2].0.clone()];
    want.sort();
    assert_eq!(risk, want, "users without a Tether password are at risk");
    assert_eq!(plan["restrictedUsers"], 3);
    let human = tether(&s, &["ad", "decommission", &domain, "--plan"]).output().await.unwrap();
    assert!(String::from_utf8_lossy(&human.stdout).contains("cannot log in once AD is gone (2)"));

    // --apply, interrupted once every agent is paused (while it waits for the grace).
    let mut run = tether(&s, &["ad", "decommission", &domain, "--apply"]).spawn().unwrap();
    for _ in 0..100 {
        let agents = s.call("GET", &format!("/api/v2/activedirectories/{domain}/agents"), None).await.body;
        if agents.as_array().is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["paused"] == true)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.kill().await.unwrap();
    assert_eq!(
        s.call("GET", &format!("/api/v2/activedirectories/{domain}"), None).await.status,
        200,
        "interrupted midway"
    );

    // Run again: same end state as an uninterrupted run.
    let out = tether(&s, &["ad", "decommission", &domain, "--apply"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.call("GET", &format!("/api/v2/activedirectories/{domain}"), None).await.status, 404);
    let all = s.call("GET", "/api/systemusers?limit=100", None).await.body;
    assert_eq!(all["totalCount"], 3, "no user deleted");
    for u in all["results"].as_array().unwrap() {
        assert_eq!((u["externally_managed"].as_bool(), u["restrictedFields"].clone()), (Some(false), json!([])), "{u}");
    }
    let r =
        s.call("POST", "/api/v2/auth/verify", Some(json!({"username": sams[0].0, "password": "Decom-New-Pw1!"}))).await;
    assert_eq!((r.status.as_u16(), r.body["method"].as_str()), (200, Some("local")), "{:?}", r.body);
    // A third run changes nothing and still succeeds.
    assert!(tether(&s, &["ad", "decommission", &domain, "--apply"]).output().await.unwrap().status.success());
    // Re-adding the domain later works like a first setup.
    let again = s
        .call("POST", "/api/v2/activedirectories", Some(json!({"domain": dc().base_dn, "useCase": "TWOWAYSYNC"})))
        .await;
    assert_eq!(again.status, 201);
    assert_ne!(again.body["id"].as_str(), Some(domain.as_str()));
    let agents =
        s.call("GET", &format!("/api/v2/activedirectories/{}/agents", again.body["id"].as_str().unwrap()), None).await;
    assert_eq!(agents.total(), Some(0));
}
