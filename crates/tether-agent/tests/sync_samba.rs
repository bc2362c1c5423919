//! The sync agent against the real Samba DC: create, takeover, attributes, passwords (and
//! AD's complexity refusal shown in Tether), suspend, expire, unlock, the six disconnection
//! rows for each of the three triggers, a crash between applying and acknowledging, an
//! outcome tetherd refuses, tetherd refusing reports mid-batch, and pause/resume.

use std::collections::HashSet;
use std::path::Path;

use serde_json::{json, Value};
use tether_ad::ldap3::{Scope, SearchEntry};
use tether_ad::{connect, create_group, create_user, set_member, AdError, BindFailure, LdapTarget, NewUser};
use tether_agent::config::SyncConfig;
use tether_agent::session::Session;
use tether_agent::sync::{apply_entries, Domain};
use tether_core::wire::FeedItem;
use tether_testkit::{dc, unique, with_keys, TestServer};

pub(crate) struct Fx {
    pub(crate) s: TestServer,
    pub(crate) ldap: tether_ad::Ldap,
    pub(crate) cfg: SyncConfig,
    session: Session,
    domain: String,
    agent: String,
    pub(crate) ou: String,
    pub(crate) managed: String,
    conn: Option<(tether_ad::Ldap, Domain)>,
    _state: tempfile::TempDir,
}

pub(crate) async fn fixture(settings: Value) -> Fx {
    let s = TestServer::start().await;
    let d = s
        .call(
            "POST",
            "/api/v2/activedirectories",
            Some(json!({"domain": "DC=corp,DC=example,DC=test", "useCase": "TWOWAYSYNC"})),
        )
        .await;
    let domain = d.body["id"].as_str().unwrap().to_string();
    let a =
        s.call("POST", &format!("/api/v2/activedirectories/{domain}/agents"), Some(json!({"agentType": "SYNC"}))).await;
    let key = a.body["connectKey"].as_str().unwrap().to_string();
    let mut ldap = connect(&dc().admin_target()).await.unwrap();
    let ou = format!("OU={},{}", unique("sync"), dc().base_dn);
    ldap.add(&ou, vec![("objectClass", HashSet::from(["organizationalUnit"]))]).await.unwrap().success().unwrap();
    let sync_group = create_group(&mut ldap, &ou, &unique("jc")).await.unwrap();
    let managed = create_group(&mut ldap, &ou, &unique("eng")).await.unwrap();
    set_member(&mut ldap, &sync_group, &managed, true).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let v = with_keys(dc().sync_agent_config(&s.url, &key, state.path(), &ou, &sync_group), settings);
    let cfg = SyncConfig::from_str(Path::new("s.json"), &v.to_string()).unwrap();
    let session = Session::establish(&cfg.server, &cfg.state_dir(), "member_server").await.unwrap();
    Fx {
        s,
        ldap,
        cfg,
        session,
        domain,
        agent: a.body["id"].as_str().unwrap().into(),
        ou,
        managed,
        conn: None,
        _state: state,
    }
}

impl Fx {
    /// Applies everything queued, as the running agent would.
    pub(crate) async fn drain(&mut self) -> usize {
        self.drain_seen().await.len()
    }

    /// Applies everything queued, as the running agent would, and returns the entries as
    /// delivered.
    pub(crate) async fn drain_seen(&mut self) -> Vec<FeedItem> {
        let mut seen = Vec::new();
        loop {
            let entries = self.session.sync_poll(100).await.unwrap();
            if entries.is_empty() {
                return seen;
            }
            let target = self.cfg.ldap_target();
            apply_entries(&self.cfg, &target, &mut self.conn, &self.session, &entries, true).await.unwrap();
            seen.extend(entries);
        }
    }

    pub(crate) async fn tether_user(&self, username: &str, extra: Value) -> String {
        let mut body = json!({"username": username, "email": format!("{username}@corp.example.test"), "firstname": "Syd", "lastname": "Sync"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.s.call("POST", "/api/systemusers", Some(body)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["id"].as_str().unwrap().to_string()
    }

    pub(crate) async fn bind_user(&self, id: &str, add: bool) {
        let op = if add { "add" } else { "remove" };
        let r = self
            .s
            .call(
                "POST",
                &format!("/api/v2/activedirectories/{}/associations?targets=user", self.domain),
                Some(json!({"op": op, "type": "user", "id": id})),
            )
            .await;
        assert_eq!(r.status, 204, "{:?}", r.body);
    }

    async fn put(&self, id: &str, body: Value) -> Value {
        let r = self.s.call("PUT", &format!("/api/systemusers/{id}"), Some(body)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body
    }

    pub(crate) async fn ad_user(&mut self, sam: &str) -> Option<SearchEntry> {
        let f = format!("(sAMAccountName={sam})");
        let attrs = vec!["userAccountControl", "sn", "givenName", "mail", "memberOf", "pwdLastSet"];
        let (e, _) = self.ldap.search(&dc().base_dn, Scope::Subtree, &f, attrs).await.unwrap().success().unwrap();
        e.into_iter().next().map(SearchEntry::construct)
    }
}

fn as_user(sam: &str, pw: &str) -> LdapTarget {
    LdapTarget { bind_dn: format!("{sam}@{}", dc().realm), bind_password: pw.into(), ..dc().admin_target() }
}

fn uac(e: &SearchEntry) -> u32 {
    e.attrs["userAccountControl"][0].parse().unwrap()
}

#[tokio::test]
async fn create_password_attributes_suspend_expire() {
    let mut fx = fixture(json!({})).await;
    let sam = unique("s");
    let id = fx.tether_user(&sam, json!({"password": "Old-Passw0rd!"})).await;
    fx.bind_user(&id, true).await;
    assert_eq!(fx.drain().await, 1);
    let e = fx.ad_user(&sam).await.expect("created in AD");
    assert!(e.dn.ends_with(&fx.ou), "created in user_root_dn: {}", e.dn);
    assert_eq!(uac(&e) & 2, 0, "enabled");
    let u = fx.s.call("GET", &format!("/api/systemusers/{id}"), None).await.body;
    assert_eq!(u["external_dn"].as_str(), Some(e.dn.as_str()), "linked at once");
    assert!(
        u["adSyncError"].as_str().unwrap().contains("system-generated password"),
        "the seeds' takeover warning: {u}"
    );

    // A password set in Tether reaches AD: the user can bind with it.
    fx.put(&id, json!({"password": "N3w-Sync-Passw0rd"})).await;
    fx.drain().await;
    connect(&as_user(&sam, "N3w-Sync-Passw0rd")).await.expect("binds with the new password");
    assert!(fx.s.call("GET", &format!("/api/systemusers/{id}"), None).await.body["adSyncError"].is_null());

    // Attributes follow.
    fx.put(&id, json!({"lastname": "Renamed", "email": format!("{sam}@new.example.test")})).await;
    fx.drain().await;
    let e = fx.ad_user(&sam).await.unwrap();
    assert_eq!(
        (e.attrs["sn"][0].as_str(), e.attrs["mail"][0].as_str()),
        ("Renamed", format!("{sam}@new.example.test").as_str())
    );

    // AD's complexity refusal shows on the user (Tether's policy is laxer here, as the seeds
    // warn can happen when the two are not aligned).
    let r =
        fx.s.call("PUT", "/api/settings", Some(json!({"passwordPolicy": {"minLength": 4, "minCharacterClasses": 1}})))
            .await;
    assert_eq!(r.status, 200);
    fx.put(&id, json!({"password": "weakpass"})).await;
    fx.drain().await;
    let u = fx.s.call("GET", &format!("/api/systemusers/{id}"), None).await.body;
    assert!(u["adSyncError"].as_str().unwrap().contains("AD refused"), "{u}");
    connect(&as_user(&sam, "N3w-Sync-Passw0rd")).await.expect("the old AD password still works");

    // Suspended → disabled in AD; reactivated → enabled.
    fx.put(&id, json!({"suspended": true})).await;
    fx.drain().await;
    assert_eq!(uac(&fx.ad_user(&sam).await.unwrap()) & 2, 2);
    match connect(&as_user(&sam, "N3w-Sync-Passw0rd")).await {
        Err(AdError::Bind { failure: BindFailure::AccountDisabled, .. }) => {}
        other => panic!("{other:?}"),
    }
    fx.put(&id, json!({"suspended": false})).await;
    fx.drain().await;
    assert_eq!(uac(&fx.ad_user(&sam).await.unwrap()) & 2, 0);

    // Expired in Tether → must change at next logon in AD.
    let r = fx.s.call("POST", &format!("/api/systemusers/{id}/expire"), None).await;
    assert_eq!(r.status, 200);
    fx.drain().await;
    match connect(&as_user(&sam, "N3w-Sync-Passw0rd")).await {
        Err(AdError::Bind { failure: BindFailure::MustChangePassword, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn suspended_user_without_ad_account_is_created_disabled_and_takeover_keeps_the_password() {
    let mut fx = fixture(json!({})).await;
    let sam = unique("s");
    let id = fx.tether_user(&sam, json!({"suspended": true})).await;
    fx.bind_user(&id, true).await;
    fx.drain().await;
    assert_eq!(uac(&fx.ad_user(&sam).await.unwrap()) & 2, 2, "created, then disabled");

    // An AD user of the same name already exists: taken over, its password untouched.
    let other = unique("t");
    let ou = fx.ou.clone();
    create_user(
        &mut fx.ldap,
        &NewUser {
            container: &ou,
            sam_account_name: &other,
            given_name: "Ada",
            sn: &other,
            mail: &format!("{other}@corp.example.test"),
            password: Some("Ad-Own-Passw0rd"),
        },
    )
    .await
    .unwrap();
    let id = fx.tether_user(&other, json!({})).await;
    fx.bind_user(&id, true).await;
    fx.drain().await;
    connect(&as_user(&other, "Ad-Own-Passw0rd")).await.expect("takeover sets no new password");
    let e = fx.ad_user(&other).await.unwrap();
    assert_eq!(e.attrs["givenName"][0], "Syd", "Tether's attributes are written");
    let (all, _) = fx
        .ldap
        .search(&dc().base_dn, Scope::Subtree, &format!("(sAMAccountName={other})"), vec!["1.1"])
        .await
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(all.len(), 1, "no duplicate");
}

#[tokio::test]
async fn disconnection_rows_for_each_trigger() {
    // (user_disconnection_action, membership_disconnection, AD account after, still member?)
    let rows = [
        ("remove", "remove", "deleted", false),
        ("remove", "retain", "deleted", false),
        ("disable", "remove", "disabled", false),
        ("disable", "retain", "disabled", true),
        ("retain", "remove", "active", false),
        ("retain", "retain", "active", true),
    ];
    for trigger in ["unbind", "delete", "group"] {
        for (user_action, membership, account, member) in rows {
            let mut fx =
                fixture(json!({"user_disconnection_action": user_action, "membership_disconnection": membership}))
                    .await;
            let sam = unique("x");
            let id = fx.tether_user(&sam, json!({})).await;
            let group = if trigger == "group" {
                let g = fx.s.create("/api/v2/usergroups", json!({"name": unique("g")})).await;
                fx.s.add_member(&g, &id).await;
                fx.s.call(
                    "POST",
                    &format!("/api/v2/activedirectories/{}/associations?targets=user_group", fx.domain),
                    Some(json!({"op": "add", "type": "user_group", "id": g})),
                )
                .await;
                Some(g)
            } else {
                fx.bind_user(&id, true).await;
                None
            };
            fx.drain().await;
            let dn = fx.ad_user(&sam).await.expect("created").dn;
            let managed = fx.managed.clone();
            set_member(&mut fx.ldap, &managed, &dn, true).await.unwrap();

            match (trigger, &group) {
                ("unbind", _) => fx.bind_user(&id, false).await,
                ("delete", _) => {
                    assert_eq!(fx.s.call("DELETE", &format!("/api/systemusers/{id}"), None).await.status, 200)
                }
                (_, Some(g)) => {
                    let r =
                        fx.s.call(
                            "POST",
                            &format!("/api/v2/activedirectories/{}/associations?targets=user_group", fx.domain),
                            Some(json!({"op": "remove", "type": "user_group", "id": g})),
                        )
                        .await;
                    assert_eq!(r.status, 204);
                }
                _ => unreachable!(),
            }
            fx.drain().await;
            let row = format!("{trigger} {user_action}/{membership}");
            let after = fx.ad_user(&sam).await;
            match account {
                "deleted" => assert!(after.is_none(), "{row}"),
                state => {
                    let e = after.unwrap_or_else(|| panic!("{row}: AD account gone"));
                    assert_eq!(uac(&e) & 2 == 2, state == "disabled", "{row}");
                    let groups: Vec<String> = e.attrs.get("memberOf").cloned().unwrap_or_default();
                    assert_eq!(groups.iter().any(|g| g.eq_ignore_ascii_case(&fx.managed)), member, "{row}");
                }
            }
            // Tether keeps the user unless it was deleted there.
            let exists = fx.s.call("GET", &format!("/api/systemusers/{id}"), None).await.status == 200;
            assert_eq!(exists, trigger != "delete", "{row}");
        }
    }
}

/// A user unbound from the domain after its entry was delivered: the entry is still applied
/// (its disconnection entry follows), tetherd refuses its outcome (the user is no longer the
/// agent's), and the agent acknowledges it and goes on: a refusal that no retry can change
/// never stalls the feed. The entry before it is reported while the next one is written.
#[tokio::test]
async fn an_outcome_tetherd_refuses_does_not_stall_the_feed() {
    let mut fx = fixture(json!({})).await;
    let (first, second) = (unique("ma"), unique("mb"));
    let a = fx.tether_user(&first, json!({})).await;
    let b = fx.tether_user(&second, json!({})).await;
    fx.bind_user(&a, true).await;
    fx.bind_user(&b, true).await;
    let entries = fx.session.sync_poll(100).await.unwrap();
    assert_eq!(entries.len(), 2);
    fx.bind_user(&b, false).await;
    let target = fx.cfg.ldap_target();
    apply_entries(&fx.cfg, &target, &mut fx.conn, &fx.session, &entries, true).await.unwrap();
    // The first is in AD, and tetherd heard of it: linked to its account.
    let ad = fx.ad_user(&first).await.expect("the first user is in AD");
    let u = fx.s.call("GET", &format!("/api/systemusers/{a}"), None).await;
    assert_eq!(u.body["external_dn"].as_str(), Some(ad.dn.as_str()), "{:?}", u.body);
    // The second was written, not linked; only its disconnection is left in the feed.
    assert!(fx.ad_user(&second).await.is_some());
    let u = fx.s.call("GET", &format!("/api/systemusers/{b}"), None).await;
    assert_eq!(u.body["external_dn"], Value::Null, "{:?}", u.body);
    let rest = fx.session.sync_poll(100).await.unwrap();
    let kinds: Vec<&str> = rest
        .iter()
        .map(|e| match e {
            FeedItem::Known(e) => e.kind(),
            FeedItem::Unknown { .. } => "unknown",
        })
        .collect();
    assert_eq!(kinds, ["user_disconnected"], "{rest:?}");
    apply_entries(&fx.cfg, &target, &mut fx.conn, &fx.session, &rest, true).await.unwrap();
    assert!(fx.session.sync_poll(100).await.unwrap().is_empty());
}

/// tetherd stops taking the agent's reports in the middle of a batch (here the agent is
/// deleted: its token revoked): the agent stops writing to AD and returns the error, instead
/// of writing on and then waiting for good on reports nobody sends.
#[tokio::test]
async fn a_batch_stops_when_tetherd_stops_taking_its_reports() {
    let mut fx = fixture(json!({})).await;
    let names: Vec<String> = (0..10).map(|_| unique("rv")).collect();
    for n in &names {
        let id = fx.tether_user(n, json!({})).await;
        fx.bind_user(&id, true).await;
    }
    let entries = fx.session.sync_poll(100).await.unwrap();
    assert_eq!(entries.len(), names.len());
    // Paused, the grace waited out, deleted.
    let agent = format!("/api/v2/activedirectories/{}/agents/{}", fx.domain, fx.agent);
    fx.s.call("POST", &format!("{agent}/pause"), None).await;
    fx.s.advance(time::Duration::seconds(901));
    assert_eq!(fx.s.call("DELETE", &agent, None).await.status, 204);
    let target = fx.cfg.ldap_target();
    // Not a measure of speed: a bound on a hang (the batch takes about a second when it stops).
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        apply_entries(&fx.cfg, &target, &mut fx.conn, &fx.session, &entries, true),
    )
    .await
    .expect("the batch ends");
    assert!(matches!(r, Err(tether_agent::AgentError::Revoked)), "{r:?}");
    // It stopped writing: a few entries at most went to AD past the first refused report.
    let mut written = 0;
    for n in &names {
        written += usize::from(fx.ad_user(n).await.is_some());
    }
    assert!((1..names.len()).contains(&written), "{written} of {} written", names.len());
}

#[tokio::test]
async fn crash_between_apply_and_ack_and_pause_resume() {
    let mut fx = fixture(json!({})).await;
    let sam = unique("k");
    let id = fx.tether_user(&sam, json!({})).await;
    fx.bind_user(&id, true).await;
    fx.put(&id, json!({"password": "Crash-Passw0rd1", "lastname": "First"})).await;
    // Applied, not acknowledged (killed before the ack).
    let entries = fx.session.sync_poll(100).await.unwrap();
    assert_eq!(entries.len(), 2);
    let target = fx.cfg.ldap_target();
    apply_entries(&fx.cfg, &target, &mut fx.conn, &fx.session, &entries, false).await.unwrap();
    let before = fx.ad_user(&sam).await.unwrap();
    // The restarted agent gets the same entries again and applies them once more: same AD.
    assert_eq!(fx.drain().await, 2, "redelivered");
    let after = fx.ad_user(&sam).await.unwrap();
    assert_eq!((before.dn.clone(), before.attrs.get("sn")), (after.dn.clone(), after.attrs.get("sn")));
    assert_eq!(before.attrs["userAccountControl"], after.attrs["userAccountControl"]);
    let (all, _) = fx
        .ldap
        .search(&dc().base_dn, Scope::Subtree, &format!("(sAMAccountName={sam})"), vec!["1.1"])
        .await
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(all.len(), 1, "no duplicate account");
    connect(&as_user(&sam, "Crash-Passw0rd1")).await.unwrap();

    // Paused: changes stay queued; resumed: delivered in order.
    let agent = format!("/api/v2/activedirectories/{}/agents/{}", fx.domain, fx.agent);
    fx.s.call("POST", &format!("{agent}/pause"), None).await;
    fx.put(&id, json!({"lastname": "Second"})).await;
    fx.put(&id, json!({"lastname": "Third"})).await;
    assert!(fx.session.sync_poll(100).await.unwrap().is_empty(), "a paused agent receives nothing");
    fx.s.call("POST", &format!("{agent}/resume"), None).await;
    let entries = fx.session.sync_poll(100).await.unwrap();
    let entries = serde_json::to_value(&entries).unwrap();
    let entries = entries.as_array().unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e["body"]["change"]["lastname"].as_str().unwrap()).collect();
    assert_eq!(names, ["Second", "Third"]);
    fx.drain().await;
    assert_eq!(fx.ad_user(&sam).await.unwrap().attrs["sn"][0], "Third");
}

/// Now as an AD FILETIME.
fn filetime_now() -> String {
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    ((unix + 11_644_473_600) * 10_000_000).to_string()
}

async fn locked(fx: &mut Fx, dn: &str) -> bool {
    let (e, _) = fx
        .ldap
        .search(dn, Scope::Base, "(objectClass=*)", vec!["msDS-User-Account-Control-Computed"])
        .await
        .unwrap()
        .success()
        .unwrap();
    let e = SearchEntry::construct(e.into_iter().next().unwrap());
    e.attrs["msDS-User-Account-Control-Computed"][0].parse::<u32>().unwrap() & 0x10 != 0
}

#[tokio::test]
async fn lock_table_against_samba() {
    // (SyncAccountLockedOutStatus, a general update unlocks?)
    for (setting, update_unlocks) in [(true, false), (false, true)] {
        let mut fx = fixture(json!({"SyncAccountLockedOutStatus": setting})).await;
        let sam = unique("lk");
        let id = fx.tether_user(&sam, json!({})).await;
        fx.bind_user(&id, true).await;
        fx.drain().await;
        let dn = fx.ad_user(&sam).await.unwrap().dn;
        tether_ad::replace_attrs(&mut fx.ldap, &dn, &[("lockoutTime", &filetime_now())]).await.unwrap();
        assert!(locked(&mut fx, &dn).await);
        fx.put(&id, json!({"department": "Ops"})).await;
        fx.drain().await;
        assert_eq!(!locked(&mut fx, &dn).await, update_unlocks, "setting={setting}: general update");
        let r = fx.s.call("POST", &format!("/api/systemusers/{id}/unlock"), None).await;
        assert_eq!(r.status, 200);
        fx.drain().await;
        assert!(!locked(&mut fx, &dn).await, "setting={setting}: an explicit unlock always unlocks");
    }
}

pub(crate) async fn tether_group(fx: &Fx, name: &str, members: &[&str]) -> String {
    let g = fx.s.create("/api/v2/usergroups", json!({"name": name})).await;
    for m in members {
        fx.s.add_member(&g, m).await;
    }
    let r =
        fx.s.call(
            "POST",
            &format!("/api/v2/activedirectories/{}/associations?targets=user_group", fx.domain),
            Some(json!({"op": "add", "type": "user_group", "id": g})),
        )
        .await;
    assert_eq!(r.status, 204);
    g
}

pub(crate) async fn direct_members(fx: &mut Fx, name: &str) -> Vec<String> {
    let f = format!("(&(objectClass=group)(sAMAccountName={name}))");
    let (e, _) = fx.ldap.search(&dc().base_dn, Scope::Subtree, &f, vec!["member"]).await.unwrap().success().unwrap();
    let e = SearchEntry::construct(e.into_iter().next().unwrap_or_else(|| panic!("no AD group {name}")));
    let mut m: Vec<String> =
        e.attrs.get("member").cloned().unwrap_or_default().iter().map(|d| d.to_lowercase()).collect();
    m.sort();
    m
}

#[tokio::test]
async fn groups_minimal_and_match_on_three_levels() {
    for sync_type in ["minimal", "match"] {
        let mut fx = fixture(json!({"group_membership_sync_type": sync_type})).await;
        let sam = unique("gm");
        let u = fx.tether_user(&sam, json!({})).await;
        let (a, b, c) = (unique("ga"), unique("gb"), unique("gc"));
        // The groups are created in AD under the sync group first (empty).
        for n in [&a, &b, &c] {
            tether_group(&fx, n, &[]).await;
        }
        fx.drain().await;
        // The AD admin nests them: C in B, B in A.
        let dn = |n: &str| format!("CN={n},{}", fx.ou);
        let (adn, bdn, cdn) = (dn(&a), dn(&b), dn(&c));
        set_member(&mut fx.ldap, &adn, &bdn, true).await.unwrap();
        set_member(&mut fx.ldap, &bdn, &cdn, true).await.unwrap();
        // In Tether the user is in all three (flattened, as the import mirrors nesting).
        for n in [&a, &b, &c] {
            let g = fx.s.call("GET", &format!("/api/v2/usergroups?filter=name:eq:{n}"), None).await.body[0]["id"]
                .as_str()
                .unwrap()
                .to_string();
            fx.s.add_member(&g, &u).await;
        }
        fx.drain().await;
        let udn = fx.ad_user(&sam).await.unwrap().dn.to_lowercase();
        let has = |v: &Vec<String>| v.contains(&udn);
        let (ma, mb, mc) =
            (direct_members(&mut fx, &a).await, direct_members(&mut fx, &b).await, direct_members(&mut fx, &c).await);
        match sync_type {
            "minimal" => assert_eq!((has(&ma), has(&mb), has(&mc)), (false, false, true), "leaf only"),
            _ => assert_eq!((has(&ma), has(&mb), has(&mc)), (true, true, true), "every group"),
        }
    }
}

#[tokio::test]
async fn group_rename_disconnection_and_sync_group_guard() {
    for action in ["remove", "retain"] {
        let mut fx = fixture(json!({"group_disconnection_action": action})).await;
        let sam = unique("gr");
        let u = fx.tether_user(&sam, json!({})).await;
        let name = unique("team");
        let g = tether_group(&fx, &name, &[&u]).await;
        fx.drain().await;
        let udn = fx.ad_user(&sam).await.unwrap().dn.to_lowercase();
        assert!(direct_members(&mut fx, &name).await.contains(&udn), "membership follows");
        // Nested under the sync group.
        let sync_group = fx.cfg.sync_group.clone();
        let sg = sync_group.split(',').next().unwrap().trim_start_matches("CN=").to_string();
        assert!(direct_members(&mut fx, &sg).await.contains(&format!("cn={},{}", name, fx.ou).to_lowercase()));
        // Renames follow.
        let renamed = unique("renamed");
        fx.s.call("PUT", &format!("/api/v2/usergroups/{g}"), Some(json!({"name": renamed}))).await;
        fx.drain().await;
        assert!(direct_members(&mut fx, &renamed).await.contains(&udn));
        // Removed from the group in Tether: removed in AD.
        fx.s.call(
            "POST",
            &format!("/api/v2/usergroups/{g}/members"),
            Some(json!({"op": "remove", "type": "user", "id": u})),
        )
        .await;
        fx.drain().await;
        assert!(!direct_members(&mut fx, &renamed).await.contains(&udn));
        // Disconnected: removed or retained per group_disconnection_action.
        fx.s.call(
            "POST",
            &format!("/api/v2/activedirectories/{}/associations?targets=user_group", fx.domain),
            Some(json!({"op": "remove", "type": "user_group", "id": g})),
        )
        .await;
        fx.drain().await;
        let (left, _) = fx
            .ldap
            .search(&dc().base_dn, Scope::Subtree, &format!("(sAMAccountName={renamed})"), vec!["1.1"])
            .await
            .unwrap()
            .success()
            .unwrap();
        assert_eq!(left.len(), usize::from(action == "retain"), "{action}");

        // A Tether group that maps to the sync group: never modified, never deleted.
        let guard = tether_group(&fx, &sg, &[&u]).await;
        fx.drain().await;
        assert!(!direct_members(&mut fx, &sg).await.contains(&udn), "sync_group not modified");
        fx.s.call("DELETE", &format!("/api/v2/usergroups/{guard}"), None).await;
        fx.drain().await;
        let (still, _) = fx
            .ldap
            .search(&sync_group, Scope::Base, "(objectClass=group)", vec!["1.1"])
            .await
            .unwrap()
            .success()
            .unwrap();
        assert_eq!(still.len(), 1, "{action}: the sync_group is never deleted");
    }
}

#[tokio::test]
async fn sync_group_moved_under_its_former_child_is_detected() {
    let mut fx = fixture(json!({"group_membership_sync_type": "minimal"})).await;
    let state = fx.cfg.state_dir();
    assert!(!tether_agent::sync_groups::moved_under_former_child(&mut fx.ldap, &fx.cfg, &state).await.unwrap());
    // The admin makes a child of the sync group the new sync group.
    let child = fx.managed.clone();
    let mut moved = fx.cfg.clone();
    moved.sync_group = child;
    assert!(tether_agent::sync_groups::moved_under_former_child(&mut fx.ldap, &moved, &state).await.unwrap());
    // Remembered across restarts.
    assert!(tether_agent::sync_groups::moved_under_former_child(&mut fx.ldap, &moved, &state).await.unwrap());
}

#[tokio::test]
async fn the_running_agent_delivers_changes_as_they_happen() {
    let mut fx = fixture(json!({})).await;
    let worker = tokio::spawn(tether_agent::sync::serve(fx.cfg.clone(), fx.session.clone()));
    let sam = unique("rt");
    let id = fx.tether_user(&sam, json!({})).await;
    fx.bind_user(&id, true).await;
    fx.put(&id, json!({"lastname": "Live"})).await;
    let mut seen = None;
    for _ in 0..100 {
        if let Some(e) = fx.ad_user(&sam).await.filter(|e| e.attrs.get("sn").is_some_and(|v| v[0] == "Live")) {
            seen = Some(e);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen.is_some(), "the change reached AD through the long-poll within 5 s");
    worker.abort();
}

#[tokio::test]
async fn sync_dry_run_previews_without_writing_or_acknowledging() {
    let mut fx = fixture(json!({})).await;
    let sam = unique("dry");
    let id = fx.tether_user(&sam, json!({})).await;
    fx.bind_user(&id, true).await;
    let d = tether_agent::sync::domain(&mut fx.ldap, &fx.cfg).await.unwrap();
    let entries = fx.session.sync_poll(0).await.unwrap();
    let preview = tether_agent::sync::preview(&fx.cfg, &mut fx.ldap, &d, &entries).await.unwrap();
    assert_eq!(preview.len(), 1);
    assert!(preview[0]["actions"][0].as_str().unwrap().starts_with("Create"), "{preview:?}");
    assert!(fx.ad_user(&sam).await.is_none(), "nothing written");
    assert_eq!(fx.session.sync_poll(0).await.unwrap().len(), 1, "nothing acknowledged");
}

/// A mass suspension through the API (three suspends against a bound of two) is held before
/// anything reaches AD; approving delivers exactly the plan, rejecting leaves AD untouched
/// and says so in the users' history; later changes flow again.
#[tokio::test]
async fn mass_change_guard_holds_changes_to_ad_until_approved_or_rejected() {
    let mut fx = fixture(json!({})).await;
    let r =
        fx.s.call(
            "PATCH",
            &format!("/api/v2/activedirectories/{}", fx.domain),
            Some(json!({"guards": {"suspends": {"count": 2}, "passwordResets": {"percent": 50.0}}})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut users = Vec::new();
    for _ in 0..6 {
        let sam = unique("mg");
        let id = fx.tether_user(&sam, json!({"password": "Guard-Passw0rd!"})).await;
        fx.bind_user(&id, true).await;
        users.push((sam, id));
    }
    assert_eq!(fx.drain().await, 6, "creations are not guarded");
    let plan_url = format!("/api/v2/activedirectories/{}/plan", fx.domain);
    for (decision, batch) in [("approve", &users[..3]), ("reject", &users[3..])] {
        for (_, id) in batch {
            fx.put(id, json!({"suspended": true})).await;
        }
        assert_eq!(fx.drain().await, 0, "{decision}: nothing delivered while held");
        for (sam, _) in batch {
            assert_eq!(uac(&fx.ad_user(sam).await.unwrap()) & 2, 0, "still enabled in AD");
        }
        let plan = fx.s.call("GET", &plan_url, None).await.body;
        assert_eq!((plan["status"].as_str(), plan["direction"].as_str()), (Some("held"), Some("sync")), "{plan}");
        assert!(plan["reason"].as_str().unwrap().contains("3 suspends exceed the bound of 2"), "{plan}");
        let mut objects: Vec<&str> =
            plan["changes"].as_array().unwrap().iter().map(|c| c["object"].as_str().unwrap()).collect();
        objects.sort();
        let mut want: Vec<&str> = batch.iter().map(|(s, _)| s.as_str()).collect();
        want.sort();
        assert_eq!(objects, want);
        let r = fx.s.call("POST", &format!("{plan_url}/{decision}"), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(fx.s.call("GET", &plan_url, None).await.body["status"], "none");
        let delivered = fx.drain().await;
        for (sam, id) in batch {
            let disabled = uac(&fx.ad_user(sam).await.unwrap()) & 2 != 0;
            assert_eq!(disabled, decision == "approve", "{decision}: {sam}");
            let u = fx.s.call("GET", &format!("/api/systemusers/{id}"), None).await.body;
            assert_eq!(u["suspended"], true, "Tether keeps its state either way");
        }
        if decision == "approve" {
            assert_eq!(delivered, 3, "exactly the plan");
        } else {
            assert_eq!(delivered, 0, "rejected entries are discarded");
            let h = fx.s.call("GET", &format!("/api/v2/users/{}/history", batch[0].1), None).await.body;
            let last = h.as_array().unwrap().last().unwrap().clone();
            assert_eq!(last["action"], "sync_rejected", "{last}");
            assert!(last["reason"].as_str().unwrap().contains("suspend in AD"), "{last}");
        }
    }
    // Within the bounds again: a single change flows at once.
    let (sam, id) = &users[0];
    fx.put(id, json!({"lastname": "Afterwards"})).await;
    assert_eq!(fx.drain().await, 1);
    assert_eq!(fx.ad_user(sam).await.unwrap().attrs["sn"], ["Afterwards"]);
    // Password resets are bounded by percent of the six bound users: four of six is too many.
    for (_, id) in &users[..4] {
        fx.put(id, json!({"password": "An0ther-Guard-Pw!"})).await;
    }
    assert_eq!(fx.drain().await, 0);
    let plan = fx.s.call("GET", &plan_url, None).await.body;
    assert!(plan["reason"].as_str().unwrap().contains("4 passwordResets are 66.7% of 6 users"), "{plan}");
    assert!(plan["changes"].as_array().unwrap().iter().all(|c| c["category"] == "passwordResets"));
}

/// The privileged groups are found by SID, not by name (a renamed or localised Domain Admins
/// is found all the same), and a member of one, nested through a group of its own, is never
/// written: the change is refused on the Tether user with the reason.
#[tokio::test]
async fn members_of_privileged_groups_found_by_sid_are_never_written() {
    let mut fx = fixture(json!({})).await;
    let base = &dc().base_dn;
    let groups: Vec<String> = tether_agent::ad_users::privileged_groups(&mut fx.ldap, base)
        .await
        .unwrap()
        .iter()
        .map(|g| g.to_lowercase())
        .collect();
    for want in [format!("CN=Domain Admins,CN=Users,{base}"), format!("CN=Administrators,CN=Builtin,{base}")] {
        assert!(groups.contains(&want.to_lowercase()), "{want} in {groups:?}");
    }
    // An AD user in a group nested in Domain Admins.
    let sam = unique("pa");
    let mail = format!("{sam}@corp.example.test");
    let nu = NewUser {
        container: &fx.ou,
        sam_account_name: &sam,
        given_name: "Priv",
        sn: "Admin",
        mail: &mail,
        password: Some("Adm1n-Passw0rd!"),
    };
    let udn = create_user(&mut fx.ldap, &nu).await.unwrap();
    let nested = create_group(&mut fx.ldap, &fx.ou, &unique("ops")).await.unwrap();
    set_member(&mut fx.ldap, &nested, &udn, true).await.unwrap();
    let admins = format!("CN=Domain Admins,CN=Users,{base}");
    set_member(&mut fx.ldap, &admins, &nested, true).await.unwrap();
    // A Tether user of that name, bound to the domain, with another last name.
    let id = fx.tether_user(&sam, json!({"lastname": "Changed"})).await;
    fx.bind_user(&id, true).await;
    fx.drain().await;
    set_member(&mut fx.ldap, &admins, &nested, false).await.unwrap();
    let u = fx.s.call("GET", &format!("/api/systemusers/{id}"), None).await.body;
    assert!(u["adSyncError"].as_str().is_some_and(|e| e.contains("privileged")), "{u}");
    assert_eq!(fx.ad_user(&sam).await.unwrap().attrs["sn"], ["Admin"], "the AD account is untouched");
}

/// The AD groups the sync agent may write are the ones it created (under sync_group) and the
/// ones linked to the Tether group: a Tether group named like a privileged AD group (found by
/// SID) or like an unrelated AD group outside sync_group is not written; the refusal shows on
/// the Tether group, and the queue goes on.
#[tokio::test]
async fn a_tether_group_named_like_a_privileged_or_unrelated_ad_group_never_writes_it() {
    let mut fx = fixture(json!({})).await;
    let sam = unique("gs");
    let u = fx.tether_user(&sam, json!({})).await;
    let unrelated = unique("fin");
    let unrelated_dn = create_group(&mut fx.ldap, &fx.ou, &unrelated).await.unwrap();
    let admins = format!("CN=Domain Admins,CN=Users,{}", dc().base_dn);
    let before = direct_members(&mut fx, "Domain Admins").await;
    // The builtin Administrators group's SID is ASCII bytes: read as text by the LDAP
    // library, it must be recognised all the same.
    let builtin_before = direct_members(&mut fx, "Administrators").await;
    let privileged = tether_group(&fx, "Domain Admins", &[&u]).await;
    let builtin = tether_group(&fx, "Administrators", &[&u]).await;
    let other = tether_group(&fx, &unrelated, &[&u]).await;
    fx.drain().await;
    let udn = fx.ad_user(&sam).await.expect("the user itself is created").dn.to_lowercase();
    assert_eq!(direct_members(&mut fx, "Domain Admins").await, before, "{admins} untouched");
    assert_eq!(direct_members(&mut fx, "Administrators").await, builtin_before, "Administrators untouched");
    assert!(!direct_members(&mut fx, &unrelated).await.contains(&udn), "{unrelated_dn} untouched");
    for (g, why) in [(&privileged, "privileged"), (&builtin, "privileged"), (&other, "outside sync_group")] {
        let body = fx.s.call("GET", &format!("/api/v2/usergroups/{g}"), None).await.body;
        assert!(body["adSyncError"].as_str().is_some_and(|e| e.contains(why)), "{body}");
        assert!(body["attributes"]["activeDirectory"].is_null(), "not linked: {body}");
    }
    // The next change of the user still reaches AD.
    fx.put(&u, json!({"lastname": "Later"})).await;
    fx.drain().await;
    assert_eq!(fx.ad_user(&sam).await.unwrap().attrs["sn"], ["Later"]);
}

/// AD refusing one membership write of a group (here the AD account's primary group is that
/// group, so AD answers "already set via primaryGroupID") shows on the Tether group; the
/// other members are written, the entry is acknowledged, and the next change reaches AD.
#[tokio::test]
async fn a_refused_membership_write_shows_on_the_group_and_the_queue_goes_on() {
    let mut fx = fixture(json!({})).await;
    let (s1, s2) = (unique("rm"), unique("rm"));
    let u1 = fx.tether_user(&s1, json!({})).await;
    let u2 = fx.tether_user(&s2, json!({})).await;
    let name = unique("rg");
    let g = tether_group(&fx, &name, &[&u1]).await;
    fx.drain().await;
    let d1 = fx.ad_user(&s1).await.expect("created with its group").dn;
    assert!(direct_members(&mut fx, &name).await.contains(&d1.to_lowercase()));
    // An AD admin makes that group the account's primary group: `member` no longer lists it.
    let f = format!("(&(objectClass=group)(sAMAccountName={name}))");
    let (e, _) = fx.ldap.search(&dc().base_dn, Scope::Subtree, &f, vec!["objectSid"]).await.unwrap().success().unwrap();
    let rid = tether_ad::read::sid_rid(&SearchEntry::construct(e.into_iter().next().unwrap())).unwrap();
    tether_ad::replace_attrs(&mut fx.ldap, &d1, &[("primaryGroupID", &rid.to_string())]).await.unwrap();
    assert!(!direct_members(&mut fx, &name).await.contains(&d1.to_lowercase()));

    // Another member joins in Tether: the agent adds both, AD refuses the first.
    fx.s.add_member(&g, &u2).await;
    fx.drain().await;
    let d2 = fx.ad_user(&s2).await.expect("created").dn;
    assert!(direct_members(&mut fx, &name).await.contains(&d2.to_lowercase()), "the other member is written");
    let body = fx.s.call("GET", &format!("/api/v2/usergroups/{g}"), None).await.body;
    let err = body["adSyncError"].as_str().unwrap_or_default();
    assert!(err.contains("refused 1 membership change") && err.contains("primaryGroupID"), "{body}");
    // Acknowledged, not retried: the queue goes on.
    fx.put(&u2, json!({"lastname": "Next"})).await;
    assert!(fx.drain().await >= 1);
    assert_eq!(fx.ad_user(&s2).await.unwrap().attrs["sn"], ["Next"]);
    assert_eq!(fx.drain().await, 0, "nothing left in the queue");
}
