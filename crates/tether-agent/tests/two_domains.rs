//! Several AD domains against two real Samba DCs of two forests (CORP.EXAMPLE.TEST, the
//! shared test DC, and BRANCH.EXAMPLE.TEST, provisioned for this test): a user is imported
//! from one domain only, keeps one link per domain it has an account in, and each domain's
//! agents read and write only their own (CONTRACT, "Several AD domains").

use std::collections::HashSet;
use std::path::Path;

use serde_json::{json, Value};
use tether_ad::ldap3::{Scope, SearchEntry};
use tether_ad::{connect, create_group, create_user, replace_attrs, set_member, NewUser};
use tether_agent::config::{ImportConfig, SyncConfig};
use tether_agent::import::cycle;
use tether_agent::session::Session;
use tether_agent::sync::apply_entries;
use tether_testkit::{dc, dc_in_realm, unique, with_keys, Dc, TestServer};

/// One domain of the directory: its DC, an OU and ADI group of the test's own, an import
/// agent and (for a two-way domain) a sync agent whose sync_group is the ADI group.
struct Side {
    dc: Dc,
    domain: String,
    ldap: tether_ad::Ldap,
    ou: String,
    adi: String,
    icfg: ImportConfig,
    isession: Session,
    iconn: tether_ad::Ldap,
    sync: Option<(SyncConfig, Session)>,
    sconn: Option<(tether_ad::Ldap, tether_agent::sync::Domain)>,
    _state: (tempfile::TempDir, tempfile::TempDir),
}

async fn side(s: &TestServer, dc: &Dc, use_case: &str, sync_settings: Value) -> Side {
    let domain = s.domain(&dc.base_dn, use_case).await;
    let mut ldap = connect(&dc.admin_target()).await.unwrap();
    let ou = format!("OU={},{}", unique("md"), dc.base_dn);
    ldap.add(&ou, vec![("objectClass", HashSet::from(["organizationalUnit"]))]).await.unwrap().success().unwrap();
    let adi = create_group(&mut ldap, &ou, &unique("adi")).await.unwrap();
    let (istate, sstate) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ik = s.connect_key(&domain, "IMPORT").await;
    let iv = dc.import_agent_config(&s.url, &ik, istate.path(), &ou, &adi);
    let icfg = ImportConfig::from_str(Path::new("i.json"), &iv.to_string()).unwrap();
    let isession = Session::establish(&icfg.server, &icfg.state_dir(), "member_server").await.unwrap();
    let iconn = connect(&icfg.ldap_target()).await.unwrap();
    let sync = if use_case == "TWOWAYSYNC" {
        let sk = s.connect_key(&domain, "SYNC").await;
        let sv = with_keys(dc.sync_agent_config(&s.url, &sk, sstate.path(), &ou, &adi), sync_settings);
        let scfg = SyncConfig::from_str(Path::new("s.json"), &sv.to_string()).unwrap();
        let ssession = Session::establish(&scfg.server, &scfg.state_dir(), "member_server").await.unwrap();
        Some((scfg, ssession))
    } else {
        None
    };
    Side { dc: dc.clone(), domain, ldap, ou, adi, icfg, isession, iconn, sync, sconn: None, _state: (istate, sstate) }
}

impl Side {
    /// One complete import cycle; its outcome.
    async fn import(&mut self) -> Value {
        let st = cycle(&self.icfg, &mut self.iconn, &self.isession, true).await.unwrap();
        st.outcome.map(tether_testkit::json_of).unwrap_or_default()
    }

    /// The sync agent applies what its feed holds now.
    async fn sync(&mut self) -> usize {
        let (scfg, ssession) = self.sync.as_ref().expect("a two-way domain");
        let entries = ssession.sync_poll(100).await.unwrap();
        apply_entries(scfg, &scfg.ldap_target(), &mut self.sconn, ssession, &entries, true).await.unwrap();
        entries.len()
    }

    /// An AD user in this domain's ADI group.
    async fn ad_user(&mut self, sam: &str, sn: &str) -> String {
        let mail = format!("{sam}@{}", self.dc.realm.to_lowercase());
        let nu = NewUser {
            container: &self.ou,
            sam_account_name: sam,
            given_name: "Multi",
            sn,
            mail: &mail,
            password: Some("Tw0-Dom41ns-Pass!"),
        };
        let dn = create_user(&mut self.ldap, &nu).await.unwrap();
        set_member(&mut self.ldap, &self.adi, &dn, true).await.unwrap();
        dn
    }

    /// The AD account `sam` of this domain: (DN, sn, disabled), if it exists.
    async fn account(&mut self, sam: &str) -> Option<(String, String, bool)> {
        let f = format!("(&(objectClass=user)(sAMAccountName={sam}))");
        let (e, _) = self
            .ldap
            .search(&self.dc.base_dn, Scope::Subtree, &f, vec!["sn", "userAccountControl"])
            .await
            .unwrap()
            .success()
            .unwrap();
        let e = SearchEntry::construct(e.into_iter().next()?);
        let one = |k: &str| e.attrs.get(k).and_then(|v| v.first()).cloned().unwrap_or_default();
        let disabled = one("userAccountControl").parse::<u32>().unwrap_or(0) & 2 != 0;
        Some((e.dn.clone(), one("sn"), disabled))
    }
}

async fn tether_user(s: &TestServer, username: &str) -> Vec<Value> {
    let r = s.call("GET", &format!("/api/systemusers?filter=username:$eq:{username}"), None).await;
    r.body["results"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_user_imported_from_one_forest_and_bound_to_another() {
    let branch = dc_in_realm("test-ad-branch", "BRANCH.EXAMPLE.TEST", "BRANCH");
    let s = TestServer::start().await;
    // A: AD is the authority (import only); B: two-way, disabling the accounts of users
    // unbound from it.
    let mut a = side(&s, dc(), "ADASAUTHORITY", json!({})).await;
    let mut b = side(&s, &branch.0, "TWOWAYSYNC", json!({"user_disconnection_action": "disable"})).await;

    // Imported from A.
    let sam = unique("md");
    let a_dn = a.ad_user(&sam, "Alpha").await;
    let out = a.import().await;
    assert_eq!(out["created"], 1, "{out}");
    let users = tether_user(&s, &sam).await;
    let id = users[0]["id"].as_str().unwrap().to_string();

    // Bound to B: B's sync agent creates the account in B's forest (in B's sync_group, which
    // is B's ADI group); the user stays A's, linked to A's account.
    s.bind_user(&b.domain, &id).await;
    assert!(b.sync().await >= 1);
    let (b_dn, b_sn, b_disabled) = b.account(&sam).await.expect("created in B's AD");
    assert!(b_dn.to_lowercase().ends_with(&b.ou.to_lowercase()), "{b_dn}");
    assert_eq!((b_sn.as_str(), b_disabled), ("Alpha", false));
    let u = s.call("GET", &format!("/api/systemusers/{id}"), None).await.body;
    assert_eq!(u["external_dn"].as_str(), Some(a_dn.as_str()), "still linked to A's account: {u}");

    // B's import finds that account in its scope: the user of another domain, left alone
    // (no conflict, no takeover); A's complete reads keep the user.
    let out = b.import().await;
    assert_eq!((out["created"].as_u64(), out["updated"].as_u64()), (Some(0), Some(0)), "{out}");
    assert!(!out["skipped"].to_string().contains(&sam), "{out}");
    for _ in 0..2 {
        let out = a.import().await;
        assert_eq!((out["deleted"].as_u64(), out["unbound"].as_u64()), (Some(0), Some(0)), "{out}");
    }
    let u = s.call("GET", &format!("/api/systemusers/{id}"), None).await.body;
    assert_eq!((u["state"].as_str(), u["adSyncError"].is_null()), (Some("ACTIVATED"), true), "{u}");
    assert_eq!(u["external_dn"].as_str(), Some(a_dn.as_str()));

    // A change in A reaches B.
    replace_attrs(&mut a.ldap, &a_dn, &[("sn", "Changed")]).await.unwrap();
    let out = a.import().await;
    assert_eq!(out["updated"], 1, "{out}");
    b.sync().await;
    assert_eq!(b.account(&sam).await.unwrap().1, "Changed", "A's change written to B's account");
    // …and B's import still leaves the user to A.
    b.import().await;
    assert_eq!(s.call("GET", &format!("/api/systemusers/{id}"), None).await.body["lastname"], "Changed");

    // One username in both ADI groups, two different people: one Tether user (A's, first
    // imported) and a conflict reported on both sides.
    let dup = unique("dup");
    a.ad_user(&dup, "FromA").await;
    assert_eq!(a.import().await["created"], 1);
    let b_dup = b.ad_user(&dup, "FromB").await;
    let out = b.import().await;
    let skipped = out["skipped"].to_string();
    assert!(skipped.contains(&dup) && skipped.contains("already linked"), "{out}");
    let dups = tether_user(&s, &dup).await;
    assert_eq!(dups.len(), 1);
    assert_eq!(dups[0]["lastname"], "FromA", "nothing overwritten");
    let note = dups[0]["adSyncError"].as_str().unwrap_or_default();
    assert!(note.contains("conflicts") && note.contains(&b_dup), "{note}");

    // Unbound from B: B's policy (disable) applies in B, A's account and the user's link to
    // A are untouched, and A's next complete read changes nothing.
    let r = s
        .call(
            "POST",
            &format!("/api/v2/activedirectories/{}/associations", b.domain),
            Some(json!({"op": "remove", "type": "user", "id": id})),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    b.sync().await;
    let (_, _, disabled) = b.account(&sam).await.expect("B's policy is disable, not remove");
    assert!(disabled, "disabled in B");
    let (_, a_sn, a_disabled) = a.account(&sam).await.unwrap();
    assert_eq!((a_sn.as_str(), a_disabled), ("Changed", false), "A untouched");
    let out = a.import().await;
    assert_eq!((out["deleted"].as_u64(), out["updated"].as_u64()), (Some(0), Some(0)), "{out}");
    let u = s.call("GET", &format!("/api/systemusers/{id}"), None).await.body;
    assert_eq!((u["external_dn"].as_str(), u["state"].as_str()), (Some(a_dn.as_str()), Some("ACTIVATED")), "{u}");
    // A later change in A no longer reaches B.
    replace_attrs(&mut a.ldap, &a_dn, &[("sn", "Later")]).await.unwrap();
    a.import().await;
    assert_eq!(b.sync().await, 0, "nothing fed to B after the unbind");
}
