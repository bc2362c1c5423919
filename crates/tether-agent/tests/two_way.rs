//! Import and sync agents on one two-way domain against the real Samba DC: an AD user the
//! sync agent created is recognised by the import (no duplicate), and a Tether change still
//! queued for AD is not undone by importing the older AD state (no ping-pong).

use std::collections::HashSet;
use std::path::Path;

use serde_json::json;
use tether_ad::ldap3::Scope;
use tether_ad::{connect, create_group, set_member};
use tether_agent::config::{ImportConfig, SyncConfig};
use tether_agent::import::cycle;
use tether_agent::session::Session;
use tether_agent::sync::apply_entries;
use tether_testkit::{dc, unique, TestServer};

/// A two-way domain with an import agent (on a DC when `on_dc`, so it captures passwords) and
/// a sync agent, both scoped to an OU and an ADI group of the test's own.
struct TwoWay {
    s: TestServer,
    domain: String,
    ldap: tether_ad::Ldap,
    ou: String,
    adi: String,
    icfg: ImportConfig,
    scfg: SyncConfig,
    isession: Session,
    ssession: Session,
    iconn: tether_ad::Ldap,
    sconn: Option<(tether_ad::Ldap, tether_agent::sync::Domain)>,
    _state: (tempfile::TempDir, tempfile::TempDir),
}

async fn two_way(prefix: &str, on_dc: bool) -> TwoWay {
    let s = TestServer::start().await;
    let domain = s.create("/api/v2/activedirectories", json!({"domain": "DC=corp,DC=example,DC=test"})).await;
    let (ik, sk) = (s.connect_key(&domain, "IMPORT").await, s.connect_key(&domain, "SYNC").await);
    let mut ldap = connect(&dc().admin_target()).await.unwrap();
    let ou = format!("OU={},{}", unique(prefix), dc().base_dn);
    ldap.add(&ou, vec![("objectClass", HashSet::from(["organizationalUnit"]))]).await.unwrap().success().unwrap();
    let adi = create_group(&mut ldap, &ou, &unique("adi")).await.unwrap();
    let (istate, sstate) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let installed_on = if on_dc { "dc" } else { "member_server" };
    let mut iv = dc().import_agent_config(&s.url, &ik, istate.path(), &ou, &adi);
    if on_dc {
        iv = tether_testkit::with_keys(iv, json!({"InstalledOn": "dc", "SambaSmbConf": dc().dir.join("etc/smb.conf")}));
    }
    let icfg = ImportConfig::from_str(Path::new("i.json"), &iv.to_string()).unwrap();
    let scfg = SyncConfig::from_str(
        Path::new("s.json"),
        &dc().sync_agent_config(&s.url, &sk, sstate.path(), &ou, &adi).to_string(),
    )
    .unwrap();
    let isession = Session::establish(&icfg.server, &icfg.state_dir(), installed_on).await.unwrap();
    let ssession = Session::establish(&scfg.server, &scfg.state_dir(), "member_server").await.unwrap();
    let iconn = connect(&icfg.ldap_target()).await.unwrap();
    TwoWay { s, domain, ldap, ou, adi, icfg, scfg, isession, ssession, iconn, sconn: None, _state: (istate, sstate) }
}

async fn verify(s: &TestServer, username: &str, password: &str) -> tether_testkit::Reply {
    s.call("POST", "/api/v2/auth/verify", Some(json!({"username": username, "password": password}))).await
}

impl TwoWay {
    /// The sync agent applies what the feed holds now.
    async fn sync(&mut self) -> usize {
        let entries = self.ssession.sync_poll(100).await.unwrap();
        let target = self.scfg.ldap_target();
        apply_entries(&self.scfg, &target, &mut self.sconn, &self.ssession, &entries, true).await.unwrap();
        entries.len()
    }

    /// One complete import cycle.
    async fn import(&mut self) -> serde_json::Value {
        let st = cycle(&self.icfg, &mut self.iconn, &self.isession, true).await.unwrap();
        st.outcome.map(tether_testkit::json_of).unwrap_or_default()
    }

    async fn dn_of(&mut self, sam: &str) -> String {
        let (found, _) = self
            .ldap
            .search(&self.ou, Scope::Subtree, &format!("(sAMAccountName={sam})"), vec!["1.1"])
            .await
            .unwrap()
            .success()
            .unwrap();
        tether_ad::ldap3::SearchEntry::construct(found.into_iter().next().unwrap()).dn
    }
}

#[tokio::test]
async fn sync_created_users_are_not_duplicated_and_queued_changes_win() {
    let mut t = two_way("tw", false).await;

    // A Tether user bound to the domain is created in AD by the sync agent.
    let sam = unique("w");
    let id = t.s.user(json!({"username": sam, "email": format!("{sam}@corp.example.test"), "firstname": "Two", "lastname": "Way", "password": "Tw0-Way-Passw0rd"})).await;
    t.s.bind_user(&t.domain, &id).await;
    t.sync().await;
    let dn = t.dn_of(&sam).await;

    // The AD admin puts it in the ADI group: the import finds the same user, no duplicate.
    set_member(&mut t.ldap, &t.adi, &dn, true).await.unwrap();
    let out = t.import().await;
    assert_eq!((out["created"].as_u64(), out["updated"].as_u64()), (Some(0), Some(1)), "{out}");
    let all = t.s.call("GET", "/api/systemusers", None).await;
    assert_eq!(all.body["totalCount"], 1);
    let u = t.s.call("GET", &format!("/api/systemusers/{id}"), None).await.body;
    assert_eq!(u["externally_managed"], true);

    // Suspended in Tether; an import cycle runs before the sync agent applied it: the older
    // AD state (enabled) does not reactivate the user.
    let r = t.s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"suspended": true}))).await;
    assert_eq!(r.status, 200);
    t.import().await;
    assert_eq!(t.s.call("GET", &format!("/api/systemusers/{id}"), None).await.body["state"], "SUSPENDED");
    // The sync agent disables the AD account; the import then sees it disabled and, with
    // UserDisableAction=suspend, keeps the user suspended: the documented consequence.
    t.sync().await;
    let out = t.import().await;
    assert_eq!(t.s.call("GET", &format!("/api/systemusers/{id}"), None).await.body["state"], "SUSPENDED", "{out}");
    // Nothing was fed back by the import's own writes.
    assert!(t.ssession.sync_poll(100).await.unwrap().is_empty(), "no ping-pong");
}

/// Binding an existing Tether user with a password to a two-way domain: the sync agent
/// creates the AD account with a system-generated password, which the import agent on the
/// DC captures like any new password. It must not replace the password the user knows: the
/// capture is recognised and ignored, and the user's next login carries their password to AD.
#[tokio::test]
async fn binding_an_existing_user_keeps_their_password() {
    let mut t = two_way("kp", true).await;
    // The import agent's first cycle records the passwords it starts from.
    t.import().await;

    let sam = unique("kp");
    let password = "Kept-Passw0rd-9";
    let id = t.s.user(json!({"username": sam, "email": format!("{sam}@corp.example.test"), "firstname": "Kept", "lastname": "Pw", "password": password})).await;
    t.s.bind_user(&t.domain, &id).await;
    t.sync().await;
    let as_user = |p: &str| tether_ad::LdapTarget {
        bind_dn: format!("{sam}@{}", dc().realm),
        bind_password: p.into(),
        ..dc().admin_target()
    };
    assert!(connect(&as_user(password)).await.is_err(), "AD got a generated password, not the user's");
    let dn = t.dn_of(&sam).await;
    let _ = set_member(&mut t.ldap, &t.adi, &dn, true).await; // (already a member when the agent put it there)

    // The import captures the generated password's hash: ignored, the user's password works.
    t.import().await;
    let r = verify(&t.s, &sam, password).await;
    assert_eq!((r.status.as_u16(), r.body["method"].as_str()), (200, Some("local")), "{:?}", r.body);

    // That login sent the password to AD.
    assert!(t.sync().await > 0, "the login fed the password to the domain");
    connect(&as_user(password)).await.expect("AD now has the user's own password");
    // Its capture (another pwdLastSet) is a real password: stored; the password still works.
    t.import().await;
    assert_eq!(verify(&t.s, &sam, password).await.status.as_u16(), 200);
    assert!(t.ssession.sync_poll(100).await.unwrap().is_empty(), "carried once");
}
