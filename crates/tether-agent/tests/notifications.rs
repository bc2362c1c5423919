//! Change notifications against the real Samba DC: the import agent (its whole main loop, as
//! `tether-agent import` runs it) holds a notification search open, and a change written in
//! AD is notified and wakes an import cycle — counted by the agent's own metrics, so the test
//! tells a woken cycle from a polled one. With the tombstones readable, a deletion is
//! notified too, and the idle agent sends AD nothing but its notification search. Installed on
//! the Samba DC it reads, the agent watches the DC's database instead and sends AD nothing idle.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tether_ad::{connect, create_group, create_user, replace_attrs, set_member, NewUser};
use tether_agent::config::ImportConfig;
use tether_agent::runner::run_import;
use tether_testkit::{dc, private_dc, sandbox_cmd, unique, with_keys, Dc, OwnDc, TestServer};

/// The value of `series` on the agent's metrics endpoint at `base`, 0 when absent.
async fn agent_metric(base: &str, series: &str) -> f64 {
    tether_testkit::metric_at(base, series).await.unwrap_or(0.0)
}

async fn title_in_tether(s: &TestServer, sam: &str) -> Option<String> {
    let r = s.call("GET", &format!("/api/systemusers?filter=username:$eq:{sam}"), None).await.body;
    r["results"].get(0).map(|u| u["jobTitle"].as_str().unwrap_or_default().to_string())
}

async fn wait_for(what: &str, f: impl AsyncFnMut() -> bool) {
    tether_testkit::eventually(what, Duration::from_secs(10), f).await
}

/// A running import agent (default poll interval: what an admin runs, with `more` config
/// keys) for a fresh ADI group holding one new user: (admin connection, the user's
/// sAMAccountName and DN, the agent's metrics URL, the agent).
struct Running {
    ldap: tether_ad::Ldap,
    sam: String,
    dn: String,
    metrics: String,
    agent: tokio::task::JoinHandle<Result<(), tether_agent::AgentError>>,
    _state: tempfile::TempDir,
}

async fn running(s: &TestServer, more: serde_json::Value) -> Running {
    running_on(dc(), s, more).await
}

async fn running_on(dc: &Dc, s: &TestServer, more: serde_json::Value) -> Running {
    let domain = s.domain(&dc.base_dn, "TWOWAYSYNC").await;
    let key = s.connect_key(&domain, "IMPORT").await;
    let mut ldap = connect(&dc.admin_target()).await.unwrap();
    let adi = create_group(&mut ldap, &dc.users_container(), &unique("adi")).await.unwrap();
    let sam = unique("nt");
    let mail = format!("{sam}@corp.example.test");
    let nu = NewUser {
        container: &dc.users_container(),
        sam_account_name: &sam,
        given_name: "Note",
        sn: &sam,
        mail: &mail,
        password: None,
    };
    let dn = create_user(&mut ldap, &nu).await.unwrap();
    set_member(&mut ldap, &adi, &dn, true).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let state = tempfile::tempdir().unwrap();
    let v = with_keys(
        with_keys(
            dc.import_agent_config(&s.url, &key, state.path(), &dc.users_container(), &adi),
            json!({"MetricsListen": format!("127.0.0.1:{port}")}),
        ),
        more,
    );
    let cfg = ImportConfig::from_str(Path::new("i.json"), &v.to_string()).unwrap();
    let agent = tokio::spawn(run_import(cfg, std::future::pending()));
    Running { ldap, sam, dn, metrics: format!("http://127.0.0.1:{port}"), agent, _state: state }
}

/// Waits until `sam` is imported and the notification search is open, and for the cycle
/// its opening woke (to catch up): baselines are taken after it.
async fn settled(s: &TestServer, sam: &str, metrics: &str) {
    wait_for("imported", async || title_in_tether(s, sam).await.is_some()).await;
    wait_for("the notification search open", async || {
        agent_metric(metrics, "tether_agent_notification_search_open").await == 1.0
    })
    .await;
    wait_for("the opening's cycle", async || agent_metric(metrics, "tether_agent_cycles_woken_total").await >= 1.0)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_change_in_ad_wakes_an_import_cycle() {
    let s = TestServer::start().await;
    // Samba serves a notification search by re-scanning the domain: `auto` holds none there.
    let Running { mut ldap, sam, dn, metrics, agent, _state } = running(&s, json!({"ChangeNotifications": "on"})).await;

    settled(&s, &sam, &metrics).await;
    // On Samba `TombstonesReadable: auto` (the default) keeps the rootDSE check: cycles run
    // at its tick, not only when woken.
    let ticked = async || cycles(&metrics).await - agent_metric(&metrics, "tether_agent_cycles_woken_total").await;
    let before = ticked().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(ticked().await >= before + 3.0, "no rootDSE check without the tombstones");
    let (notes, woken) = (
        agent_metric(&metrics, "tether_agent_notifications_total").await,
        agent_metric(&metrics, "tether_agent_cycles_woken_total").await,
    );
    replace_attrs(&mut ldap, &dn, &[("title", "Night Nurse")]).await.unwrap();
    wait_for("the new title in Tether", async || title_in_tether(&s, &sam).await.as_deref() == Some("Night Nurse"))
        .await;
    // Samba delivers a notification within 100 ms when the write went through the LDAP
    // process holding the search, else at its next 5-second retry: the tick may bring the
    // change first. Either way the notification comes, and wakes a cycle.
    wait_for("AD's notification of the change", async || {
        agent_metric(&metrics, "tether_agent_notifications_total").await > notes
    })
    .await;
    wait_for("a cycle woken by it", async || agent_metric(&metrics, "tether_agent_cycles_woken_total").await > woken)
        .await;
    agent.abort();
}

/// By default (`ChangeNotifications: auto`) the agent holds no notification search on Samba,
/// which would serve it by scanning the domain partition every 5 seconds; a change still
/// arrives, found by the rootDSE check and read by exact USN.
#[tokio::test]
async fn on_samba_no_notification_search_is_held_by_default() {
    let s = TestServer::start().await;
    let Running { mut ldap, sam, dn, metrics, agent, _state } = running(&s, json!({})).await;
    wait_for("imported", async || title_in_tether(&s, &sam).await.is_some()).await;
    replace_attrs(&mut ldap, &dn, &[("title", "Quiet Achiever")]).await.unwrap();
    wait_for("the new title in Tether", async || title_in_tether(&s, &sam).await.as_deref() == Some("Quiet Achiever"))
        .await;
    assert_eq!(agent_metric(&metrics, "tether_agent_notification_search_open").await, 0.0);
    assert_eq!(agent_metric(&metrics, "tether_agent_notifications_total").await, 0.0);
    assert!(agent_metric(&metrics, r#"tether_agent_cycle_reads_total{read="exact"}"#).await >= 1.0);
    agent.abort();
}

/// Import cycles the agent ran, idle ones included: each sends AD at least one search.
async fn cycles(metrics: &str) -> f64 {
    agent_metric(metrics, "tether_agent_cycle_seconds_count").await
}

/// The import account's view of the tombstones in `CN=Deleted Objects` (a connection as
/// that account): what `TombstonesReadable: auto` decides by on Active Directory.
async fn import_account_sees_tombstones(dc: &Dc) -> bool {
    let mut ldap = connect(&dc.import_target()).await.unwrap();
    tether_agent::notify::tombstones_visible(&mut ldap).await
}

/// With the import account allowed to read the tombstones in `CN=Deleted Objects` (granted
/// by `ad-sandbox.sh grant-tombstones`, as an admin would with `dsacls`) and
/// `TombstonesReadable`, the notification search also asks for deleted objects: idle, the
/// agent runs no cycle, so it sends AD no search beyond the open notification search; and a
/// user deleted in AD leaves Tether on its tombstone's notification, long before the
/// safety-net check (`PollIntervalSeconds`, 60 s here). Before the grant the account sees
/// no tombstone, after it one (the check `auto` makes on Active Directory; on Samba `auto`
/// keeps the rootDSE check, so the test says `true`). A DC of its own: the shared one is
/// written by other tests all the time, and each write is notified.
#[tokio::test]
async fn with_tombstones_readable_a_deletion_is_notified_and_the_idle_agent_sends_no_search() {
    let own = OwnDc(private_dc("tombstones-ad"));
    // One deletion: a tombstone to see.
    let mut admin = connect(&own.0.admin_target()).await.unwrap();
    let former = unique("former");
    let mail = format!("{former}@corp.example.test");
    let nu = NewUser {
        container: &own.0.users_container(),
        sam_account_name: &former,
        given_name: "Former",
        sn: &former,
        mail: &mail,
        password: None,
    };
    let former = create_user(&mut admin, &nu).await.unwrap();
    admin.delete(&former).await.unwrap().success().unwrap();
    assert!(!import_account_sees_tombstones(&own.0).await, "a least-privileged account, before the grant");
    sandbox_cmd("grant-tombstones", &own.0.dir);
    assert!(import_account_sees_tombstones(&own.0).await, "after the grant");
    let s = TestServer::start().await;
    let more =
        json!({"ChangeNotifications": "on", "TombstonesReadable": true, "MainLoop": {"PollIntervalSeconds": 60}});
    let Running { mut ldap, sam, dn, metrics, agent, _state } = running_on(&own.0, &s, more).await;
    settled(&s, &sam, &metrics).await;

    // Idle for 3 s: not one cycle (the rootDSE check would run 30 without the tombstones).
    let before = cycles(&metrics).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cycles(&metrics).await, before, "an idle agent checked AD");
    assert_eq!(agent_metric(&metrics, "tether_agent_notification_search_open").await, 1.0);

    // A deletion: notified (its tombstone), it wakes the cycle that finds the user gone.
    let (notes, woken) = (
        agent_metric(&metrics, "tether_agent_notifications_total").await,
        agent_metric(&metrics, "tether_agent_cycles_woken_total").await,
    );
    let gone = async || {
        let r = s.call("GET", &format!("/api/systemusers?filter=username:$eq:{sam}"), None).await.body;
        let left = r["results"].get(0).cloned().unwrap_or_default();
        left.is_null() || left["external_dn"].is_null()
    };
    assert!(!gone().await, "imported and linked to AD");
    ldap.delete(&dn).await.unwrap().success().unwrap();
    tether_testkit::eventually("the deleted user gone from Tether", Duration::from_secs(20), gone).await;
    assert!(agent_metric(&metrics, "tether_agent_notifications_total").await > notes, "the tombstone was notified");
    assert!(agent_metric(&metrics, "tether_agent_cycles_woken_total").await > woken, "and woke a cycle");
    agent.abort();
}

/// The keys of an import agent installed on the DC `dc` (its `smb.conf` at `smb_conf`), with
/// the safety-net check 60 s away.
fn on_the_dc(smb_conf: &Path) -> serde_json::Value {
    json!({"InstalledOn": "dc", "SambaSmbConf": smb_conf, "MainLoop": {"PollIntervalSeconds": 60}})
}

/// An import agent installed on the Samba DC it reads watches the DC's database: idle, it
/// runs no cycle, so it sends AD nothing at all (no notification search either, Samba's
/// default); an edit and a deletion, written over LDAP by another process, each wake a cycle
/// at once and reach Tether long before the safety net (60 s). A DC of its own: the shared
/// one is written by other tests all the time, and each write wakes the agent.
#[tokio::test]
async fn on_its_samba_dc_the_idle_agent_sends_ad_nothing_and_each_write_wakes_it() {
    let own = OwnDc(private_dc("watch-ad"));
    let s = TestServer::start().await;
    let Running { mut ldap, sam, dn, metrics, agent, _state } =
        running_on(&own.0, &s, on_the_dc(&own.0.dir.join("etc/smb.conf"))).await;
    wait_for("imported", async || title_in_tether(&s, &sam).await.is_some()).await;
    wait_for("the database watched", async || agent_metric(&metrics, "tether_agent_database_watch_open").await == 1.0)
        .await;
    wait_for("the watch's first cycle", async || {
        agent_metric(&metrics, "tether_agent_cycles_woken_total").await >= 1.0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(agent_metric(&metrics, "tether_agent_notification_search_open").await, 0.0, "none on Samba");

    // Idle for 3 s: not one cycle (the rootDSE check would run 30), not one entry read.
    let (before, read) = (cycles(&metrics).await, agent_metric(&metrics, "tether_agent_entries_read_total").await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cycles(&metrics).await, before, "an idle agent checked AD");
    assert_eq!(agent_metric(&metrics, "tether_agent_entries_read_total").await, read);

    let (writes, woken) = (
        agent_metric(&metrics, "tether_agent_database_writes_total").await,
        agent_metric(&metrics, "tether_agent_cycles_woken_total").await,
    );
    replace_attrs(&mut ldap, &dn, &[("title", "Charge Nurse")]).await.unwrap();
    wait_for("the new title in Tether", async || title_in_tether(&s, &sam).await.as_deref() == Some("Charge Nurse"))
        .await;
    assert!(agent_metric(&metrics, "tether_agent_database_writes_total").await > writes, "the write was seen");
    assert!(agent_metric(&metrics, "tether_agent_cycles_woken_total").await > woken, "and woke a cycle");

    // A deletion, which no notification tells a least-privileged account of.
    let gone = async || {
        let r = s.call("GET", &format!("/api/systemusers?filter=username:$eq:{sam}"), None).await.body;
        let left = r["results"].get(0).cloned().unwrap_or_default();
        left.is_null() || left["external_dn"].is_null()
    };
    ldap.delete(&dn).await.unwrap().success().unwrap();
    tether_testkit::eventually("the deleted user gone from Tether", Duration::from_secs(20), gone).await;
    agent.abort();
}

/// The watch is only for the DC the agent reads: with the `smb.conf` of another DC (here the
/// shared DC's, renamed), the agent says why in its log and keeps the rootDSE check.
#[tokio::test]
async fn with_another_dcs_smb_conf_the_agent_keeps_the_rootdse_check() {
    let s = TestServer::start().await;
    let conf = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dc().dir.join("etc/smb.conf")).unwrap();
    assert!(text.contains("netbios name = DC1"), "the sandbox's name");
    std::fs::write(conf.path().join("smb.conf"), text.replace("netbios name = DC1", "netbios name = DC9")).unwrap();
    let Running { metrics, agent, sam, _state, .. } = running(&s, on_the_dc(&conf.path().join("smb.conf"))).await;
    wait_for("imported", async || title_in_tether(&s, &sam).await.is_some()).await;
    let before = cycles(&metrics).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(cycles(&metrics).await >= before + 3.0, "the rootDSE check goes on");
    assert_eq!(agent_metric(&metrics, "tether_agent_database_watch_open").await, 0.0);
    agent.abort();
}

/// A watch that hears nothing of writes AD made (here `SambaSmbConf` names this DC but a
/// private folder that is not its live database, as a stale copy would) is found out by the
/// first cycle that reads a moved USN with no event since the cycle before (the safety net,
/// 2 s here): the agent says so and goes back to the rootDSE check.
#[tokio::test]
async fn a_watch_that_hears_no_write_is_given_up_for_the_rootdse_check() {
    let s = TestServer::start().await;
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir(copy.path().join("sam.ldb.d")).unwrap();
    let text = std::fs::read_to_string(dc().dir.join("etc/smb.conf")).unwrap();
    let private =
        text.lines().find(|l| l.trim().starts_with("private dir")).expect("the sandbox's private dir").to_string();
    let text = text.replace(&private, &format!("\tprivate dir = {}", copy.path().display()));
    std::fs::write(copy.path().join("smb.conf"), text).unwrap();
    let more = json!({"InstalledOn": "dc", "SambaSmbConf": copy.path().join("smb.conf"), "MainLoop": {"PollIntervalSeconds": 2}});
    let Running { mut ldap, sam, dn, metrics, agent, _state } = running(&s, more).await;
    wait_for("imported", async || title_in_tether(&s, &sam).await.is_some()).await;
    wait_for("the watch armed, which wakes a cycle", async || {
        agent_metric(&metrics, "tether_agent_cycles_woken_total").await >= 1.0
    })
    .await;
    replace_attrs(&mut ldap, &dn, &[("title", "Ward Clerk")]).await.unwrap();
    wait_for("the new title in Tether", async || title_in_tether(&s, &sam).await.as_deref() == Some("Ward Clerk"))
        .await;
    wait_for("the watch given up", async || agent_metric(&metrics, "tether_agent_database_watch_open").await == 0.0)
        .await;
    let before = cycles(&metrics).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(cycles(&metrics).await >= before + 3.0, "the rootDSE check again");
    agent.abort();
}
