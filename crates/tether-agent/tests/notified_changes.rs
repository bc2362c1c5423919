//! What the change notifications deliver, against real Samba DCs: a notified edit applied
//! with no search of AD (a DC of the test's own, so no other test's writes leave gaps in the
//! USNs), a deletion among notified changes read the safe way, a change made while the agent
//! was cut off from the DC (the DC up and written to) reaching Tether after it reconnects, and
//! a burst of 1,000 changes applied with nothing lost and the last write winning.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tether_ad::read::text;
use tether_ad::{connect, create_group, create_user, find_user, replace_attrs, set_member, NewUser};
use tether_agent::config::ImportConfig;
use tether_agent::import::{cycle_with, notified_attrs, Memory, ReadKind};
use tether_agent::metrics::AgentMetrics;
use tether_agent::notify::{watch, Inbox};
use tether_agent::runner::run_import;
use tether_agent::session::Session;
use tether_testkit::{dc, eventually, private_dc, unique, with_keys, OwnDc, TcpCut, TestServer};

async fn user_in_tether(s: &TestServer, sam: &str) -> Value {
    let r = s.call("GET", &format!("/api/systemusers?filter=username:$eq:{sam}"), None).await.body;
    r["results"].get(0).cloned().unwrap_or(Value::Null)
}

fn import_config(v: Value) -> ImportConfig {
    ImportConfig::from_str(Path::new("i.json"), &v.to_string()).unwrap()
}

/// Whether `inbox` holds the notified version of `dn` with this `title`.
fn notified(inbox: &Inbox, dn: &str, title: &str) -> bool {
    inbox.since(0).iter().any(|e| e.dn.eq_ignore_ascii_case(dn) && text(e, "title").as_deref() == Some(title))
}

#[tokio::test]
async fn a_notified_change_is_applied_without_searching_ad() {
    let own = OwnDc(private_dc("notified-ad"));
    let dc = &own.0;
    let s = TestServer::start().await;
    let domain = s.domain(&dc.base_dn, "TWOWAYSYNC").await;
    let key = s.connect_key(&domain, "IMPORT").await;
    let state = tempfile::tempdir().unwrap();
    let cfg = import_config(dc.import_agent_config(&s.url, &key, state.path(), &dc.users_container(), &dc.group_dn));
    let session = Session::establish(&cfg.server, &cfg.state_dir(), "member_server").await.unwrap();
    let mut ldap = connect(&cfg.ldap_target()).await.unwrap();
    let inbox = Arc::new(Inbox::default());
    let metrics = Arc::new(AgentMetrics::default());
    let watcher = tokio::spawn(watch(cfg.ldap_target(), notified_attrs(), false, inbox.clone(), metrics.clone()));
    eventually("the notification search open", Duration::from_secs(10), async || {
        tether_testkit::metric_in(&metrics.text(), "tether_agent_notification_search_open") == Some(1.0)
    })
    .await;
    // (Connected before the complete read: nothing but the test's own edits moves the USNs.)
    let mut admin = connect(&dc.admin_target()).await.unwrap();
    // What a running agent keeps between cycles (its saved state, the groups' closure facts,
    // its last heartbeat's answer), as the main loop passes it.
    let mut memory = Memory::default();
    let st = cycle_with(&cfg, &mut ldap, &session, true, Some(&inbox), Some(&mut memory)).await.unwrap();
    assert_eq!(st.read, ReadKind::Complete);
    let (first, second) = (format!("{}user0001", dc.seed_prefix), format!("{}user0002", dc.seed_prefix));
    let dn = find_user(&mut admin, &dc.base_dn, &first).await.unwrap().expect("seeded").dn;

    // An edit: AD pushes the entry as written, and the cycle applies it from the inbox.
    replace_attrs(&mut admin, &dn, &[("title", "Notified Nurse")]).await.unwrap();
    // Samba delivers within 100 ms, or at its 5-second retry when another of its LDAP
    // processes took the write.
    eventually("AD's notification of the edit", Duration::from_secs(15), async || {
        notified(&inbox, &dn, "Notified Nurse")
    })
    .await;
    let st = cycle_with(&cfg, &mut ldap, &session, false, Some(&inbox), Some(&mut memory)).await.unwrap();
    assert_eq!(st.read, ReadKind::Notified, "no uSNChanged search: the notification accounts for the write");
    assert_eq!(st.entries_read, 1);
    assert!(st.outcome.is_some(), "reported to tetherd");
    assert_eq!(user_in_tether(&s, &first).await["jobTitle"], "Notified Nurse");
    assert!(inbox.is_empty(), "what was applied leaves the inbox");
    // Nothing moved since: rootDSE only.
    let st = cycle_with(&cfg, &mut ldap, &session, false, Some(&inbox), Some(&mut memory)).await.unwrap();
    assert_eq!((st.read, st.entries_read), (ReadKind::Idle, 0));

    // A deletion is notified to nobody without rights on Deleted Objects: its USN is
    // unexplained, so the cycle after the next edit reads by uSNChanged and checks membership.
    let gone = find_user(&mut admin, &dc.base_dn, &second).await.unwrap().expect("seeded").dn;
    assert!(user_in_tether(&s, &second).await.is_object());
    admin.delete(&gone).await.unwrap().success().unwrap();
    replace_attrs(&mut admin, &dn, &[("title", "After The Deletion")]).await.unwrap();
    eventually("AD's notification of the second edit", Duration::from_secs(15), async || {
        notified(&inbox, &dn, "After The Deletion")
    })
    .await;
    let st = cycle_with(&cfg, &mut ldap, &session, false, Some(&inbox), Some(&mut memory)).await.unwrap();
    assert_eq!(st.read, ReadKind::Exact, "a gap in the USNs is never trusted to the notifications");
    assert_eq!(user_in_tether(&s, &first).await["jobTitle"], "After The Deletion");
    let left = user_in_tether(&s, &second).await;
    assert!(left.is_null() || left["external_dn"].is_null() || left["suspended"] == true, "{left}");

    // More USNs than an exact read takes (one object written over and over, without the
    // inbox): read by range, and the last write wins.
    let writes = tether_agent::import::EXACT_MAX + 10;
    // (The deletion's cycle checked membership; this one will need to as well.)
    tokio::time::sleep(tether_agent::import::MEMBERSHIP_CHECK_EVERY).await;
    for i in 1..=writes {
        replace_attrs(&mut admin, &dn, &[("title", &format!("Write {i}"))]).await.unwrap();
    }
    let st = cycle_with(&cfg, &mut ldap, &session, false, None, Some(&mut memory)).await.unwrap();
    assert_eq!(st.read, ReadKind::Scan);
    assert_eq!(user_in_tether(&s, &first).await["jobTitle"], format!("Write {writes}"));

    // A group change after cycles that kept the groups' closure facts and skipped the walks
    // over the scope: the user who left the ADI group leaves Tether's scope, and comes back.
    set_member(&mut admin, &dc.group_dn, &dn, false).await.unwrap();
    let st = cycle_with(&cfg, &mut ldap, &session, false, None, Some(&mut memory)).await.unwrap();
    assert_eq!(st.read, ReadKind::Exact);
    assert!(st.outcome.is_some(), "reported to tetherd");
    let left = user_in_tether(&s, &first).await;
    assert!(left.is_null(), "removed from Tether (UserDissociationAction remove): {left}");
    set_member(&mut admin, &dc.group_dn, &dn, true).await.unwrap();
    let st = cycle_with(&cfg, &mut ldap, &session, false, None, Some(&mut memory)).await.unwrap();
    assert_eq!(st.read, ReadKind::Exact);
    let back = user_in_tether(&s, &first).await;
    assert_eq!((back["external_dn"].as_str(), back["suspended"].as_bool()), (Some(dn.as_str()), Some(false)), "{back}");
    watcher.abort();
}

/// The agent's metric `series` at `base`, 0 when absent.
async fn agent_metric(base: &str, series: &str) -> f64 {
    tether_testkit::metric_at(base, series).await.unwrap_or(0.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A group and `n` users in it on the shared DC: (group DN, [(sAMAccountName, DN)]).
async fn population(n: usize) -> (String, Vec<(String, String)>) {
    let mut ldap = connect(&dc().admin_target()).await.unwrap();
    let adi = create_group(&mut ldap, &dc().users_container(), &unique("adi")).await.unwrap();
    let mut users = Vec::new();
    for _ in 0..n {
        let sam = unique("nc");
        let mail = format!("{sam}@corp.example.test");
        let nu = NewUser {
            container: &dc().users_container(),
            sam_account_name: &sam,
            given_name: "Burst",
            sn: &sam,
            mail: &mail,
            password: None,
        };
        let dn = create_user(&mut ldap, &nu).await.unwrap();
        set_member(&mut ldap, &adi, &dn, true).await.unwrap();
        users.push((sam, dn));
    }
    (adi, users)
}

#[tokio::test]
async fn a_change_made_while_the_agent_is_cut_off_reaches_tether_after_it_reconnects() {
    let s = TestServer::start().await;
    let domain = s.domain(&dc().base_dn, "TWOWAYSYNC").await;
    let key = s.connect_key(&domain, "IMPORT").await;
    let (adi, users) = population(1).await;
    let (sam, dn) = users[0].clone();
    // The agent reaches the DC through a forwarder the test can cut; the DC stays up.
    let ldaps: std::net::SocketAddr = format!("{}:636", dc().host).parse().unwrap();
    let cut = TcpCut::start(ldaps).await;
    let port = free_port();
    let metrics = format!("http://127.0.0.1:{port}");
    let state = tempfile::tempdir().unwrap();
    let mut v = with_keys(
        dc().import_agent_config(&s.url, &key, state.path(), &dc().users_container(), &adi),
        json!({"MetricsListen": format!("127.0.0.1:{port}"), "ChangeNotifications": "on"}),
    );
    v["Ldap"]["Url"] = json!(format!("ldaps://{}", cut.addr));
    let agent = tokio::spawn(run_import(import_config(v), std::future::pending()));
    let ten = Duration::from_secs(10);
    eventually("imported", ten, async || user_in_tether(&s, &sam).await.is_object()).await;
    eventually("the notification search open", ten, async || {
        agent_metric(&metrics, "tether_agent_notification_search_open").await == 1.0
    })
    .await;

    cut.cut();
    eventually("the agent finds AD unreachable", ten, async || {
        agent_metric(&metrics, "tether_agent_ad_reachable").await == 0.0
            && agent_metric(&metrics, "tether_agent_notification_search_open").await == 0.0
    })
    .await;
    let mut admin = connect(&dc().admin_target()).await.unwrap();
    replace_attrs(&mut admin, &dn, &[("title", "Written While Away")]).await.unwrap();
    // The change waits while the agent cannot see it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_ne!(user_in_tether(&s, &sam).await["jobTitle"], "Written While Away");

    cut.restore();
    let minute = Duration::from_secs(60);
    eventually("the change made while cut off, in Tether", minute, async || {
        user_in_tether(&s, &sam).await["jobTitle"] == "Written While Away"
    })
    .await;
    eventually("the notification search open again", minute, async || {
        agent_metric(&metrics, "tether_agent_notification_search_open").await == 1.0
    })
    .await;
    assert_eq!(agent_metric(&metrics, "tether_agent_ad_reachable").await, 1.0);
    agent.abort();
}

#[tokio::test]
async fn a_burst_of_a_thousand_changes_is_applied_with_nothing_lost() {
    const USERS: usize = 50;
    const ROUNDS: usize = 20;
    let s = TestServer::start().await;
    let domain = s.domain(&dc().base_dn, "TWOWAYSYNC").await;
    let key = s.connect_key(&domain, "IMPORT").await;
    let (adi, users) = population(USERS).await;
    let port = free_port();
    let metrics = format!("http://127.0.0.1:{port}");
    let state = tempfile::tempdir().unwrap();
    let v = with_keys(
        dc().import_agent_config(&s.url, &key, state.path(), &dc().users_container(), &adi),
        json!({"MetricsListen": format!("127.0.0.1:{port}"), "ChangeNotifications": "on"}),
    );
    let agent = tokio::spawn(run_import(import_config(v), std::future::pending()));
    let minute = Duration::from_secs(60);
    eventually("all imported", minute, async || {
        let r = s.call("GET", "/api/systemusers?filter=firstname:$eq:Burst&limit=1", None).await.body;
        r["totalCount"] == USERS
    })
    .await;
    eventually("the notification search open", minute, async || {
        agent_metric(&metrics, "tether_agent_notification_search_open").await == 1.0
    })
    .await;
    let notes = agent_metric(&metrics, "tether_agent_notifications_total").await;

    // 1,000 writes, round after round over every user: each user's last title is the last
    // round's, and any older one in Tether would be a change applied out of order.
    let mut admin = connect(&dc().admin_target()).await.unwrap();
    for round in 1..=ROUNDS {
        for (_, dn) in &users {
            replace_attrs(&mut admin, dn, &[("title", &format!("Round {round:02}"))]).await.unwrap();
        }
    }
    let last = format!("Round {ROUNDS:02}");
    eventually("every user's last write in Tether", minute, async || {
        let r = s.call("GET", "/api/systemusers?filter=firstname:$eq:Burst&limit=100", None).await.body;
        let titles: Vec<&str> =
            r["results"].as_array().unwrap().iter().map(|u| u["jobTitle"].as_str().unwrap_or_default()).collect();
        titles.len() == USERS && titles.iter().all(|t| *t == last)
    })
    .await;
    // The 100 ms tick may have applied it all first: on Samba some notifications wait for
    // its 5-second retry.
    eventually("the burst notified", Duration::from_secs(15), async || {
        agent_metric(&metrics, "tether_agent_notifications_total").await > notes
    })
    .await;
    // Settled: nothing left waiting that a later cycle could apply over the last write.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = s.call("GET", "/api/systemusers?filter=firstname:$eq:Burst&limit=100", None).await.body;
    for u in r["results"].as_array().unwrap() {
        assert_eq!(u["jobTitle"], last.as_str(), "{}", u["username"]);
    }
    agent.abort();
}
