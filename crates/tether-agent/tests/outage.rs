//! Samba stopped while changes happen on both sides (on a DC of the test's own: the shared
//! one must stay up): the agents back off, and once AD is back every queued Tether change
//! reaches AD and the AD change made meanwhile reaches Tether. `TETHER_OUTAGE_SECONDS` sets
//! the outage (10 s by default; the issue's 60 s is a longer run).

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tether_ad::{connect, replace_attrs};
use tether_agent::config::{ImportConfig, SyncConfig};
use tether_testkit::{private_dc, sandbox_cmd, with_keys, TestServer};

/// A loopback address with a port free right now.
fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

async fn eventually(what: &str, f: impl AsyncFnMut() -> bool) {
    tether_testkit::eventually(what, Duration::from_secs(60), f).await
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
    let (ik, sk) = (s.connect_key(&domain, "IMPORT").await, s.connect_key(&domain, "SYNC").await);
    let (istate, sstate) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (imetrics, smetrics) = (free_addr(), free_addr());
    let icfg = ImportConfig::from_str(
        Path::new("i.json"),
        &with_keys(
            dc.import_agent_config(&s.url, &ik, istate.path(), &dc.users_container(), &dc.group_dn),
            json!({"MainLoop": {"PollIntervalSeconds": 0.2}, "MetricsListen": imetrics}),
        )
        .to_string(),
    )
    .unwrap();
    let scfg = SyncConfig::from_str(
        Path::new("s.json"),
        &with_keys(
            dc.sync_agent_config(&s.url, &sk, sstate.path(), &dc.users_container(), &dc.group_dn),
            json!({"poll_interval_seconds": 0.2, "metrics_listen": smetrics}),
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
    let first = format!("{}user0001", dc.seed_prefix);
    let second = format!("{}user0002", dc.seed_prefix);
    eventually("the seeded users are imported", async || user(first.clone()).await.is_object()).await;

    let seeded = format!("/api/systemusers?filter=username:$regex:^{}&limit=1", dc.seed_prefix);
    let before = s.call("GET", &seeded, None).await.body["totalCount"].clone();
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
    s.bind_user(&domain, &id).await;
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
        assert!(["connect", "ldap"].contains(&st["code"].as_str().unwrap()), "{kind}: {st}");
    }
    let reachable =
        |kind: &str, id: &str| format!(r#"tether_agent_ad_reachable{{agent="{id}",domain="{domain}",type="{kind}"}}"#);
    let list = s.call("GET", &agents, None).await.body;
    let id_of = |kind: &str| {
        list.as_array().unwrap().iter().find(|a| a["agentType"] == kind).unwrap()["id"].as_str().unwrap().to_string()
    };
    let (import_id, sync_id) = (id_of("IMPORT"), id_of("SYNC"));
    assert_eq!(s.metric(&reachable("import", &import_id)).await, Some(0.0));
    assert_eq!(s.metric(&reachable("sync", &sync_id)).await, Some(0.0));
    let errors = s.metric(r#"tether_ad_errors_total{source="agent",code="connect"}"#).await.unwrap_or(0.0)
        + s.metric(r#"tether_ad_errors_total{source="agent",code="ldap"}"#).await.unwrap_or(0.0);
    assert_eq!(errors, 2.0, "one per agent and outage");
    // The agents' own metrics say the same on their local ports.
    let (iurl, surl) = (format!("http://{imetrics}"), format!("http://{smetrics}"));
    for url in [&iurl, &surl] {
        assert_eq!(tether_testkit::metric_at(url, "tether_agent_ad_reachable").await, Some(0.0), "{url}");
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
    assert_eq!(s.metric(&reachable("import", &import_id)).await, Some(1.0));
    assert_eq!(s.metric(&reachable("sync", &sync_id)).await, Some(1.0));
    let queue = format!(r#"tether_sync_queue_depth{{agent="{sync_id}",domain="{domain}",type="sync"}}"#);
    assert_eq!(s.metric(&queue).await, Some(0.0), "everything acknowledged");
    for url in [&iurl, &surl] {
        assert_eq!(tether_testkit::metric_at(url, "tether_agent_ad_reachable").await, Some(1.0), "{url}");
    }
    assert!(tether_testkit::metric_at(&iurl, "tether_agent_cycle_seconds_count").await.unwrap() > 0.0);
    assert!(tether_testkit::metric_at(&iurl, "tether_agent_entries_read_total").await.unwrap() > 0.0);
    assert!(tether_testkit::metric_at(&surl, "tether_agent_feed_applied_total").await.unwrap() >= 2.0);
    // Both directions were measured: the queued Tether changes waited out the outage.
    let count = |d: &str| format!(r#"tether_change_latency_seconds_count{{direction="{d}"}}"#);
    assert!(s.metric(&count("ad_to_tether")).await.unwrap() >= 1.0);
    assert!(s.metric(&count("tether_to_ad")).await.unwrap() >= 2.0);
    let slow = r#"tether_change_latency_seconds_bucket{le="1.0",direction="tether_to_ad"}"#;
    let fast = s.metric(slow).await.expect("the bucket is exposed");
    assert!(
        fast < s.metric(&count("tether_to_ad")).await.unwrap(),
        "the changes queued during the outage took longer than 1 s"
    );
    // Reads cut off by the outage removed nobody.
    assert_eq!(s.call("GET", &seeded, None).await.body["totalCount"], before, "no AD user lost to the outage");
    let suspended = format!("/api/systemusers?filter=username:$regex:^{}&filter=suspended:eq:true", dc.seed_prefix);
    assert_eq!(s.call("GET", &suspended, None).await.body["totalCount"], 0);
    import.abort();
    sync.abort();
    sandbox_cmd("down", &dc.dir);
}
