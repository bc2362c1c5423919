//! The import agent against the real Samba DC: scope with nested groups, attributes,
//! skipped users, privileged accounts, policies on disable and dissociation, takeover,
//! idle cycles that read nothing, and restarts that resume from the watermark.

use std::path::Path;

use serde_json::{json, Value};
use tether_ad::{connect, create_group, create_user, replace_attrs, set_member, LdapTarget, NewUser};
use tether_agent::config::ImportConfig;
use tether_agent::import::cycle;
use tether_agent::session::Session;
use tether_testkit::{dc, unique, with_keys, TestServer};

fn admin() -> LdapTarget {
    dc().admin_target()
}

pub(crate) struct Fx {
    pub(crate) s: TestServer,
    pub(crate) ldap: tether_ad::Ldap,
    pub(crate) cfg: ImportConfig,
    pub(crate) session: Session,
    pub(crate) adi: String,
    _state: tempfile::TempDir,
}

/// Another import agent of the fixture's domain (as on another DC).
pub(crate) struct Second {
    pub(crate) id: String,
    pub(crate) cfg: ImportConfig,
    pub(crate) session: Session,
    _state: tempfile::TempDir,
}

pub(crate) async fn fixture(use_case: &str, main_loop: Value) -> Fx {
    fixture_on(use_case, main_loop, "member_server").await
}

async fn fixture_on(use_case: &str, main_loop: Value, installed_on: &str) -> Fx {
    let s = TestServer::start().await;
    let d = s
        .call(
            "POST",
            "/api/v2/activedirectories",
            Some(json!({"domain": "DC=corp,DC=example,DC=test", "useCase": use_case})),
        )
        .await;
    let domain = d.body["id"].as_str().unwrap().to_string();
    let key = s.connect_key(&domain, "IMPORT").await;
    let mut ldap = connect(&admin()).await.unwrap();
    let adi = create_group(&mut ldap, &dc().users_container(), &unique("adi")).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let v = with_keys(
        dc().import_agent_config(&s.url, &key, state.path(), &dc().users_container(), &adi),
        json!({"InstalledOn": installed_on, "SambaSmbConf": dc().dir.join("etc/smb.conf"), "MainLoop": main_loop}),
    );
    let cfg = ImportConfig::from_str(Path::new("t.json"), &v.to_string()).unwrap();
    let session = Session::establish(&cfg.server, &cfg.state_dir(), installed_on).await.unwrap();
    Fx { s, ldap, cfg, session, adi, _state: state }
}

impl Fx {
    pub(crate) async fn domain_id(&self) -> String {
        self.s.call("GET", "/api/v2/activedirectories", None).await.body[0]["id"].as_str().unwrap().to_string()
    }

    pub(crate) async fn second_agent(&self) -> Second {
        let domain = self.domain_id().await;
        let k = self
            .s
            .call("POST", &format!("/api/v2/activedirectories/{domain}/agents"), Some(json!({"agentType": "IMPORT"})))
            .await;
        let state = tempfile::tempdir().unwrap();
        let mut cfg = self.cfg.clone();
        cfg.server.connect_key = tether_agent::config::Secret(k.body["connectKey"].as_str().unwrap().to_string());
        cfg.server.state_dir = Some(state.path().to_path_buf());
        let session = Session::establish(&cfg.server, &cfg.state_dir(), "dc").await.unwrap();
        Second { id: k.body["id"].as_str().unwrap().to_string(), cfg, session, _state: state }
    }

    pub(crate) async fn user(&mut self, prefix: &str, given: Option<&str>, groups: &[&str]) -> (String, String) {
        let sam = unique(prefix);
        let mail = format!("{sam}@corp.example.test");
        let dn = create_user(
            &mut self.ldap,
            &NewUser {
                container: &dc().users_container(),
                sam_account_name: &sam,
                given_name: given.unwrap_or("Nameless"),
                sn: &sam,
                mail: &mail,
                password: Some("Imp0rt-Test-Pw!"),
            },
        )
        .await
        .unwrap();
        if given.is_none() {
            self.ldap
                .modify(&dn, vec![tether_ad::ldap3::Mod::Delete("givenName", std::collections::HashSet::new())])
                .await
                .unwrap()
                .success()
                .unwrap();
        }
        for g in groups {
            set_member(&mut self.ldap, g, &dn, true).await.unwrap();
        }
        (sam, dn)
    }

    pub(crate) async fn run(&mut self) -> Value {
        let mut conn = connect(&self.cfg.ldap_target()).await.unwrap();
        cycle(&self.cfg, &mut conn, &self.session, true).await.unwrap().outcome.map(tether_testkit::json_of).unwrap()
    }

    pub(crate) async fn tether_user(&self, sam: &str) -> Option<Value> {
        let r = self.s.call("GET", &format!("/api/systemusers?filter=username:$eq:{sam}"), None).await;
        r.body["results"].as_array().unwrap().first().cloned()
    }

    pub(crate) async fn group_members(&self, name: &str) -> Vec<String> {
        let g = self.s.call("GET", &format!("/api/v2/usergroups?filter=name:eq:{name}"), None).await;
        let id = g.body[0]["id"].as_str().unwrap_or_else(|| panic!("no group {name}")).to_string();
        let m = self.s.call("GET", &format!("/api/v2/usergroups/{id}/members?limit=100"), None).await;
        let mut names = Vec::new();
        for e in m.body.as_array().unwrap() {
            let u = self.s.call("GET", &format!("/api/systemusers/{}", e["to"]["id"].as_str().unwrap()), None).await;
            names.push(u.body["username"].as_str().unwrap().to_string());
        }
        names.sort();
        names
    }
}

#[tokio::test]
async fn nested_groups_attributes_skips_and_privileged_accounts() {
    let mut fx = fixture("TWOWAYSYNC", json!({})).await;
    let users = dc().users_container();
    let (g1n, g2n) = (unique("g1"), unique("g2"));
    let g1 = create_group(&mut fx.ldap, &users, &g1n).await.unwrap();
    let g2 = create_group(&mut fx.ldap, &users, &g2n).await.unwrap();
    let adi = fx.adi.clone();
    set_member(&mut fx.ldap, &adi, &g1, true).await.unwrap();
    set_member(&mut fx.ldap, &g1, &g2, true).await.unwrap();
    let (u1, u1dn) = fx.user("u", Some("One"), &[&g1]).await;
    let (u2, _) = fx.user("u", Some("Two"), &[&g1]).await;
    let (u3, _) = fx.user("u", Some("Three"), &[&g2]).await;
    let (u4, u4dn) = fx.user("u", Some("Four"), &[&g2]).await;
    // Skipped at first (no givenName), imported by a later incremental cycle.
    let (u8, u8dn) = fx.user("u", None, &[&g2]).await;
    let (u5, u5dn) = fx.user("u", Some("Five"), &[&adi]).await;
    replace_attrs(&mut fx.ldap, &u5dn, &[("title", "Engineer"), ("manager", &u1dn), ("telephoneNumber", "+47 1234")])
        .await
        .unwrap();
    let (u6, _) = fx.user("u", None, &[&adi]).await;
    let (u7, u7dn) = fx.user("u", Some("Seven"), &[&adi]).await;
    set_member(&mut fx.ldap, &format!("CN=Domain Admins,{users}"), &u7dn, true).await.unwrap();
    let (_, outside) = fx.user("u", Some("Outside"), &[]).await;
    let _ = outside;

    let out = fx.run().await;
    assert_eq!(out["created"], 5, "{out}");
    let skipped = out["skipped"].to_string();
    assert!(skipped.contains(&u6) && skipped.contains("givenName"), "{skipped}");
    assert!(skipped.contains(&u7) && skipped.contains("privileged"), "{skipped}");
    assert!(fx.tether_user(&u6).await.is_none() && fx.tether_user(&u7).await.is_none());

    // Flattened groups, as the seeds' Group1/Group2 example.
    let mut all4 = vec![u1.clone(), u2.clone(), u3.clone(), u4.clone()];
    all4.sort();
    assert_eq!(fx.group_members(&g1n).await, all4);
    let mut two = vec![u3.clone(), u4.clone()];
    two.sort();
    assert_eq!(fx.group_members(&g2n).await, two);
    let g = fx.s.call("GET", &format!("/api/v2/usergroups?filter=name:eq:{g2n}"), None).await;
    assert_eq!(g.body[0]["attributes"]["activeDirectory"]["dn"], g2.as_str());

    // Attributes, restrictions and the link to AD.
    let five = fx.tether_user(&u5).await.unwrap();
    let one = fx.tether_user(&u1).await.unwrap();
    assert_eq!((five["firstname"].as_str(), five["jobTitle"].as_str()), (Some("Five"), Some("Engineer")));
    assert_eq!(five["manager"], one["id"]);
    assert_eq!(five["phoneNumbers"][0]["number"], "+47 1234");
    assert_eq!((five["externally_managed"].as_bool(), five["external_dn"].as_str()), (Some(true), Some(u5dn.as_str())));
    assert_eq!(five["external_source_type"], "active_directory");
    assert_eq!((five["passwordStatus"].as_str(), five["state"].as_str()), (Some("pending"), Some("ACTIVATED")));
    let restricted = five["restrictedFields"].to_string();
    assert!(restricted.contains("jobTitle") && restricted.contains("email"), "{restricted}");
    let r =
        fx.s.call("PUT", &format!("/api/systemusers/{}", five["id"].as_str().unwrap()), Some(json!({"jobTitle": "x"})))
            .await;
    assert_eq!(r.status, 422);
    let domain_users = fx.s.call("GET", "/api/systemusers?filter=externally_managed:$eq:true", None).await;
    assert_eq!(domain_users.body["totalCount"], 5);

    // An incremental cycle that carries one changed user keeps every group's membership.
    let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
    cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    replace_attrs(&mut fx.ldap, &u5dn, &[("title", "Staff Engineer")]).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert!(st.outcome.is_some(), "the change was read");
    assert_eq!(fx.tether_user(&u5).await.unwrap()["jobTitle"], "Staff Engineer");
    assert_eq!(fx.group_members(&g1n).await, all4, "memberships survive an incremental report");
    assert_eq!(fx.group_members(&g2n).await, two);

    // Incremental reports carry only the groups whose membership moved. A user imported for
    // the first time by one (its missing givenName added) still joins the groups it is in.
    assert!(fx.tether_user(&u8).await.is_none(), "skipped without a givenName");
    replace_attrs(&mut fx.ldap, &u8dn, &[("givenName", "Eight")]).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_eq!(st.outcome.map(tether_testkit::json_of).unwrap()["created"], 1);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let mut all5 = all4.clone();
    all5.push(u8.clone());
    assert_eq!(fx.group_members(&g1n).await, sorted(all5.clone()), "joined the unchanged outer group");
    assert_eq!(fx.group_members(&g2n).await, sorted(vec![u3.clone(), u4.clone(), u8.clone()]));
    // Leaving a nested group (and so the scope) in an incremental cycle: both flattened
    // groups lose the user.
    set_member(&mut fx.ldap, &g2, &u4dn, false).await.unwrap();
    cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_eq!(fx.group_members(&g2n).await, sorted(vec![u3.clone(), u8.clone()]));
    assert_eq!(fx.group_members(&g1n).await, sorted(vec![u1.clone(), u2.clone(), u3.clone(), u8.clone()]));
}

/// Whether a cycle reads nothing once AD is quiet. Other tests write to the shared DC (the
/// 2,000-user fault run in CI does for over three minutes), so this waits for a quiet moment,
/// up to five minutes; a broken USN gate never reads zero however quiet AD is.
async fn idle_cycle(cfg: &ImportConfig, conn: &mut tether_ad::Ldap, session: &Session) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while std::time::Instant::now() < deadline {
        let st = cycle(cfg, conn, session, false).await.unwrap();
        if st.entries_read == 0 && st.outcome.is_none() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn disable_dissociation_idle_cycles_and_restart() {
    let mut fx =
        fixture("ADASAUTHORITY", json!({"UserDisableAction": "suspend", "UserDissociationAction": "remove"})).await;
    let adi = fx.adi.clone();
    let (a, adn) = fx.user("d", Some("Ann"), &[&adi]).await;
    let (b, bdn) = fx.user("d", Some("Bob"), &[&adi]).await;
    let (c, cdn) = fx.user("d", Some("Cid"), &[&adi]).await;
    assert_eq!(fx.run().await["created"], 3);
    let ann = fx.tether_user(&a).await.unwrap();
    assert_eq!(ann["passwordStatus"], "delegated", "AD is the password authority");
    assert_eq!(ann["passwordAuthority"]["name"], "ActiveDirectory");

    // Idle: when nothing changed in AD, a cycle reads no entries.
    let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
    assert!(idle_cycle(&fx.cfg, &mut conn, &fx.session).await, "an idle cycle must read nothing");

    // Disabled in AD → suspended; removed from the ADI group → deleted; moved out of the
    // root user container → deleted.
    replace_attrs(&mut fx.ldap, &adn, &[("userAccountControl", "514")]).await.unwrap();
    set_member(&mut fx.ldap, &adi, &bdn, false).await.unwrap();
    let ou = format!("OU={},{}", unique("ou"), dc().base_dn);
    fx.ldap
        .add(&ou, vec![("objectClass", std::collections::HashSet::from(["organizationalUnit"]))])
        .await
        .unwrap()
        .success()
        .unwrap();
    let cn = cdn.split(',').next().unwrap().to_string();
    fx.ldap.modifydn(&cdn, &cn, true, Some(&ou)).await.unwrap().success().unwrap();
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    let out = st.outcome.clone().map(tether_testkit::json_of).expect("the USN moved: a read happened");
    assert_eq!((out["updated"].as_u64(), out["deleted"].as_u64()), (Some(1), Some(2)), "{out}");
    assert_eq!(fx.tether_user(&a).await.unwrap()["state"], "SUSPENDED");
    assert!(fx.tether_user(&b).await.is_none() && fx.tether_user(&c).await.is_none());
    // That cycle read only what changed; a complete read reads every user and group.
    let full = cycle(&fx.cfg, &mut conn, &fx.session, true).await.unwrap().entries_read;
    assert!(st.entries_read < full, "incremental read {} entries, a complete one {full}", st.entries_read);

    // A rename in AD keeps the same Tether user (objectGUID is the anchor).
    let ann_id = fx.tether_user(&a).await.unwrap()["id"].clone();
    let new_cn = format!("CN={}", unique("renamed"));
    fx.ldap.modifydn(&adn, &new_cn, true, None).await.unwrap().success().unwrap();
    let adn = format!("{new_cn},{}", dc().users_container());
    cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    let ann = fx.tether_user(&a).await.unwrap();
    assert_eq!((ann["id"].clone(), ann["external_dn"].as_str()), (ann_id, Some(adn.as_str())));

    // Enabled again → active again.
    replace_attrs(&mut fx.ldap, &adn, &[("userAccountControl", "512")]).await.unwrap();
    cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_eq!(fx.tether_user(&a).await.unwrap()["state"], "ACTIVATED");

    // A restarted agent (same StateDir) resumes from its watermark: with nothing changed in
    // AD it reads nothing; no re-registration, no duplicates.
    let again = Session::establish(&fx.cfg.server, &fx.cfg.state_dir(), "member_server").await.unwrap();
    assert_eq!(again.agent_id, fx.session.agent_id);
    let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
    assert!(
        idle_cycle(&fx.cfg, &mut conn, &again).await,
        "the restarted agent resumes from its watermark instead of re-reading everything"
    );
    let out = cycle(&fx.cfg, &mut conn, &again, true).await.unwrap().outcome.map(tether_testkit::json_of).unwrap();
    assert_eq!((out["created"].as_u64(), out["unchanged"].as_u64()), (Some(0), Some(1)), "{out}");
    let all = fx.s.call("GET", "/api/systemusers", None).await;
    assert_eq!(all.body["totalCount"], 1);
}

#[tokio::test]
async fn takeover_unbind_and_upn_mapping() {
    let mut fx = fixture(
        "TWOWAYSYNC",
        json!({"UserDisableAction": "unbind", "UserDissociationAction": "unbind", "UserFieldMapping": "userPrincipalName",
               "UserTakeoverAction": "deactivate"}),
    )
    .await;
    let adi = fx.adi.clone();
    let (a, adn) = fx.user("t", Some("Tia"), &[&adi]).await;
    // create_user sets the UPN to the mail address: its part before `@` is the sAMAccountName.
    // An existing Tether user with that username and a password is taken over.
    let r =
        fx.s.call(
            "POST",
            "/api/systemusers",
            Some(json!({"username": a, "email": format!("{a}@old.example"), "password": "Old-Passw0rd"})),
        )
        .await;
    assert_eq!(r.body["passwordStatus"], "active");
    let out = fx.run().await;
    assert_eq!((out["created"].as_u64(), out["updated"].as_u64()), (Some(0), Some(1)), "{out}");
    let u = fx.tether_user(&a).await.unwrap();
    assert_eq!(u["id"], r.body["id"], "same Tether user");
    assert_eq!(u["email"].as_str(), Some(format!("{a}@corp.example.test").as_str()), "AD's values win");
    assert_eq!(u["passwordStatus"], "pending", "deactivate: the Tether password is dropped");
    // Disabled with UserDisableAction=unbind: kept, no longer managed by AD.
    replace_attrs(&mut fx.ldap, &adn, &[("userAccountControl", "514")]).await.unwrap();
    let out = fx.run().await;
    assert_eq!(out["unbound"], 1, "{out}");
    let u = fx.tether_user(&a).await.unwrap();
    assert_eq!((u["externally_managed"].as_bool(), u["restrictedFields"].clone()), (Some(false), json!([])));
    assert_eq!(u["state"], "ACTIVATED");
}

#[tokio::test]
async fn delegated_authentication_with_ad_reasons_and_password_capture_on_a_dc() {
    let mut fx = fixture_on("ADASAUTHORITY", json!({}), "dc").await;
    let adi = fx.adi.clone();
    let mut users = Vec::new();
    for _ in 0..5 {
        users.push(fx.user("p", Some("Pat"), &[&adi]).await);
    }
    // Before an import agent has connected, delegation is pending.
    let d = fx.s.call("GET", "/api/v2/activedirectories", None).await;
    assert_eq!(d.body[0]["delegationState"], "PENDING");
    assert_eq!(fx.run().await["created"], 5);
    let verify =
        |u: &str, p: &str| fx.s.call("POST", "/api/v2/auth/verify", Some(json!({"username": u, "password": p})));
    let d = fx.s.call("GET", "/api/v2/activedirectories", None).await;
    assert_eq!(d.body[0]["delegationState"], "ENABLED", "a capable agent connected");

    let worker = tokio::spawn(tether_agent::delegation::serve(fx.session.clone(), fx.cfg.ldap_target()));
    let r = verify(&users[0].0, "Imp0rt-Test-Pw!").await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (200, json!({"authenticated": true, "method": "delegated"})));
    // (AD change, reason)
    let (bad, disabled, must_change, expired) = (&users[1], &users[1], &users[2], &users[3]);
    let r = verify(&bad.0, "Wrong-Passw0rd").await;
    assert_eq!((r.status.as_u16(), r.body["reason"].as_str()), (401, Some("invalid credentials")));
    let r = verify(&bad.0, "").await;
    assert_eq!(r.status, 401, "empty passwords never reach AD");
    replace_attrs(&mut fx.ldap, &disabled.1, &[("userAccountControl", "514")]).await.unwrap();
    replace_attrs(&mut fx.ldap, &must_change.1, &[("pwdLastSet", "0")]).await.unwrap();
    replace_attrs(&mut fx.ldap, &expired.1, &[("accountExpires", "1")]).await.unwrap();
    let locked = &users[4];
    replace_attrs(&mut fx.ldap, &locked.1, &[("lockoutTime", &filetime_now())]).await.unwrap();
    let rows = [
        (disabled, "account disabled"),
        (must_change, "password must be changed"),
        (expired, "account expired"),
        (locked, "account locked out"),
    ];
    for (u, reason) in rows {
        let r = verify(&u.0, "Imp0rt-Test-Pw!").await;
        assert_eq!((r.status.as_u16(), r.body["reason"].as_str()), (401, Some(reason)), "{}", u.0);
    }
    // The metrics count every answer, and AD's refusals by sub-code.
    let outcome = |o: &str| format!(r#"tether_delegated_auth_seconds_count{{outcome="{o}"}}"#);
    assert_eq!(fx.s.metric(&outcome("accepted")).await, Some(1.0));
    assert_eq!(fx.s.metric(&outcome("refused")).await, Some(5.0));
    for code in ["52e", "533", "773", "701", "775"] {
        let series = format!(r#"tether_ad_errors_total{{source="delegated_auth",code="{code}"}}"#);
        assert_eq!(fx.s.metric(&series).await, Some(1.0), "{code}");
    }

    // Installed on a DC: the password was stored at the first successful login, so it still
    // works when no agent answers, and a wrong one is still refused.
    worker.abort();
    let r = verify(&users[0].0, "Imp0rt-Test-Pw!").await;
    assert_eq!((r.status.as_u16(), r.body["method"].as_str()), (200, Some("local")));
    assert_eq!(verify(&users[0].0, "Wrong-Passw0rd").await.status, 401);
    let u = fx.tether_user(&users[0].0).await.unwrap();
    assert_eq!(u["passwordStatus"], "delegated", "AD stays the password authority");
}

/// Now as an AD FILETIME (100 ns since 1601).
fn filetime_now() -> String {
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    ((unix + 11_644_473_600) * 10_000_000).to_string()
}

#[tokio::test]
async fn lockout_expiry_and_additional_attributes_settings() {
    // (SyncAccountLockedOutStatus, UserExpireAction, SyncAdditionalAttributes)
    for (sync_lock, expire, additional) in [(true, "expire", false), (false, "maintain", true)] {
        let mut fx = fixture(
            "TWOWAYSYNC",
            json!({"SyncAccountLockedOutStatus": sync_lock, "UserExpireAction": expire, "SyncAdditionalAttributes": additional}),
        )
        .await;
        let adi = fx.adi.clone();
        let (a, adn) = fx.user("l", Some("Lou"), &[&adi]).await;
        replace_attrs(&mut fx.ldap, &adn, &[("title", "Chief")]).await.unwrap();
        fx.run().await;
        let u = fx.tether_user(&a).await.unwrap();
        assert_eq!(u["jobTitle"].as_str(), Some(if additional { "Chief" } else { "" }), "additional={additional}");
        assert_eq!(u["restrictedFields"].to_string().contains("jobTitle"), additional);
        if expire == "expire" {
            assert!(u["external_password_expiration_date"].is_string(), "AD's expiry date is mirrored: {u}");
        } else {
            assert!(u["external_password_expiration_date"].is_null());
        }

        // Locked in AD.
        replace_attrs(&mut fx.ldap, &adn, &[("lockoutTime", &filetime_now())]).await.unwrap();
        fx.run().await;
        assert_eq!(fx.tether_user(&a).await.unwrap()["account_locked"], sync_lock, "sync_lock={sync_lock}");
        replace_attrs(&mut fx.ldap, &adn, &[("lockoutTime", "0")]).await.unwrap();
        fx.run().await;
        assert_eq!(fx.tether_user(&a).await.unwrap()["account_locked"], false);

        // Password expired in AD (must change at next logon sets the same computed bit).
        replace_attrs(&mut fx.ldap, &adn, &[("pwdLastSet", "0")]).await.unwrap();
        fx.run().await;
        let u = fx.tether_user(&a).await.unwrap();
        assert_eq!(u["password_expired"], expire == "expire", "expire={expire}");
    }
}

#[tokio::test]
async fn password_changes_in_ad_are_captured_on_a_dc_only() {
    let mut fx = fixture_on("TWOWAYSYNC", json!({}), "dc").await;
    let adi = fx.adi.clone();
    let (a, adn) = fx.user("w", Some("Wes"), &[&adi]).await;
    fx.run().await;
    assert_eq!(fx.tether_user(&a).await.unwrap()["passwordStatus"], "pending");
    // The password set before the agent saw the user is not captured (seeds: change it in AD).
    let body = |p: &str| Some(json!({"username": a, "password": p}));
    assert_eq!(fx.s.call("POST", "/api/v2/auth/verify", body("Imp0rt-Test-Pw!")).await.status, 401);

    tether_ad::set_password(&mut fx.ldap, &adn, "N3w-Captured-Pw!").await.unwrap();
    fx.run().await;
    let u = fx.tether_user(&a).await.unwrap();
    assert_eq!(u["passwordStatus"], "active", "{u}");
    let verify =
        |p: &'static str| fx.s.call("POST", "/api/v2/auth/verify", Some(json!({"username": a, "password": p})));
    // Verified against the captured SHA-512 crypt hash (no delegated bind: delegation is off),
    // then against the argon2id hash it was upgraded to.
    for _ in 0..2 {
        let r = verify("N3w-Captured-Pw!").await;
        assert_eq!((r.status.as_u16(), r.body["method"].as_str()), (200, Some("local")), "{:?}", r.body);
    }
    assert_eq!(verify("Imp0rt-Test-Pw!").await.status, 401);

    // A member-server agent never sends passwords.
    let ms = fixture("TWOWAYSYNC", json!({})).await;
    match ms
        .session
        .send_passwords(&[serde_json::from_value(json!({"guid": "x", "hash": "$6$salt$hash"})).unwrap()])
        .await
    {
        Err(tether_agent::AgentError::Server { status: 403, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn remaining_policy_rows_against_samba() {
    // UserDisableAction=remove: a disabled AD user's Tether user is deleted.
    let mut fx = fixture("TWOWAYSYNC", json!({"UserDisableAction": "remove"})).await;
    let adi = fx.adi.clone();
    let (a, adn) = fx.user("r", Some("Rae"), &[&adi]).await;
    let (b, bdn) = fx.user("r", Some("Rob"), &[&adi]).await;
    replace_attrs(&mut fx.ldap, &bdn, &[("adminCount", "1")]).await.unwrap();
    let out = fx.run().await;
    assert_eq!(out["created"], 1, "{out}");
    assert!(out["skipped"].to_string().contains(&b), "adminCount=1 is never imported: {out}");
    replace_attrs(&mut fx.ldap, &adn, &[("userAccountControl", "514")]).await.unwrap();
    assert_eq!(fx.run().await["deleted"], 1);
    assert!(fx.tether_user(&a).await.is_none());

    // UserDissociationAction=unbind: removed from the ADI group, the user stays, unmanaged.
    let mut fx = fixture("TWOWAYSYNC", json!({"UserDissociationAction": "unbind"})).await;
    let adi = fx.adi.clone();
    let (c, cdn) = fx.user("r", Some("Cal"), &[&adi]).await;
    fx.run().await;
    set_member(&mut fx.ldap, &adi, &cdn, false).await.unwrap();
    assert_eq!(fx.run().await["unbound"], 1);
    let u = fx.tether_user(&c).await.unwrap();
    assert_eq!((u["externally_managed"].as_bool(), u["external_dn"].is_null()), (Some(false), true));

    // UserTakeoverAction=retain: an existing user's password stays usable.
    let mut fx = fixture("TWOWAYSYNC", json!({"UserTakeoverAction": "retain"})).await;
    let adi = fx.adi.clone();
    let (d, _) = fx.user("r", Some("Dee"), &[&adi]).await;
    fx.s.call(
        "POST",
        "/api/systemusers",
        Some(json!({"username": d, "email": "dee@old.example", "password": "Old-Passw0rd"})),
    )
    .await;
    assert_eq!(fx.run().await["updated"], 1);
    assert_eq!(fx.tether_user(&d).await.unwrap()["passwordStatus"], "active");
    let r = fx.s.call("POST", "/api/v2/auth/verify", Some(json!({"username": d, "password": "Old-Passw0rd"}))).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn disabled_users_new_to_tether_per_user_disable_action() {
    // Seeds, new users: suspend → created suspended; remove, unbind → not created.
    for (action, created) in [("suspend", true), ("remove", false), ("unbind", false)] {
        let mut fx = fixture("TWOWAYSYNC", json!({"UserDisableAction": action})).await;
        let adi = fx.adi.clone();
        let (a, adn) = fx.user("n", Some("Nia"), &[&adi]).await;
        replace_attrs(&mut fx.ldap, &adn, &[("userAccountControl", "514")]).await.unwrap();
        fx.run().await;
        let u = fx.tether_user(&a).await;
        assert_eq!(u.is_some(), created, "{action}");
        if let Some(u) = u {
            assert_eq!(u["state"], "SUSPENDED", "{action}");
        }
    }
}

#[tokio::test]
async fn admins_group_gives_sudo_to_direct_members_in_scope() {
    let mut fx = fixture("TWOWAYSYNC", json!({})).await;
    let users = dc().users_container();
    let admins = create_group(&mut fx.ldap, &users, &unique("adm")).await.unwrap();
    let nested = create_group(&mut fx.ldap, &users, &unique("admsub")).await.unwrap();
    set_member(&mut fx.ldap, &admins, &nested, true).await.unwrap();
    fx.cfg.ldap.admins_group = Some(admins.clone());
    let adi = fx.adi.clone();
    let (direct, ddn) = fx.user("su", Some("Sue"), &[&adi]).await;
    let (via_nested, ndn) = fx.user("su", Some("Sam"), &[&adi]).await;
    set_member(&mut fx.ldap, &admins, &ddn, true).await.unwrap();
    set_member(&mut fx.ldap, &nested, &ndn, true).await.unwrap();
    fx.run().await;
    assert_eq!(fx.tether_user(&direct).await.unwrap()["sudo"], true);
    assert_eq!(fx.tether_user(&via_nested).await.unwrap()["sudo"], false, "no nesting for AdminsGroup");
}

#[tokio::test]
async fn one_primary_import_agent_applies_cycles() {
    let mut fx = fixture("TWOWAYSYNC", json!({})).await;
    let adi = fx.adi.clone();
    let (a, a_dn) = fx.user("pr", Some("Pri"), &[&adi]).await;
    // A second import agent (another DC) on the same domain.
    let domain = fx.domain_id().await;
    let two = fx.second_agent().await;
    let (cfg2, second) = (two.cfg.clone(), &two.session);

    let first = fx.session.heartbeat().await.unwrap();
    assert!(first.primary);
    let beat2 = second.heartbeat().await.unwrap();
    assert!(!beat2.primary, "one primary at a time");
    let mut conn2 = connect(&cfg2.ldap_target()).await.unwrap();
    let st = cycle(&cfg2, &mut conn2, second, true).await.unwrap();
    assert!(st.outcome.is_none(), "the secondary reads and applies nothing");
    assert_eq!(fx.run().await["created"], 1);

    // Pausing all but one makes that one primary, with a new fencing token; a report with the
    // old token is refused.
    let agents = fx.s.call("GET", &format!("/api/v2/activedirectories/{domain}/agents"), None).await.body;
    let first_id = agents.as_array().unwrap().iter().find(|x| x["id"] != two.id.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    fx.s.call("POST", &format!("/api/v2/activedirectories/{domain}/agents/{first_id}/pause"), None).await;
    let beat2 = second.heartbeat().await.unwrap();
    assert!(beat2.primary && beat2.fencing > first.fencing);
    let stale = json!({"settings": {}, "complete": false, "users": [], "fencing": first.fencing});
    assert!(matches!(
        fx.session.report_import(&serde_json::from_value(stale).unwrap()).await,
        Err(tether_agent::AgentError::Server { status: 409, .. })
    ));
    assert!(cycle(&fx.cfg, &mut connect(&fx.cfg.ldap_target()).await.unwrap(), &fx.session, true)
        .await
        .unwrap()
        .outcome
        .is_none());
    let out = cycle(&cfg2, &mut conn2, second, true).await.unwrap().outcome.map(tether_testkit::json_of).unwrap();
    assert_eq!((out["created"].as_u64(), out["unchanged"].as_u64()), (Some(0), Some(1)), "{out}");
    assert!(fx.tether_user(&a).await.is_some());
    let d = fx.s.call("GET", &format!("/api/v2/activedirectories/{domain}"), None).await.body;
    assert_eq!(d["primaryImportAgent"], two.id.as_str());
    // Resumed, the first agent stays secondary while the other holds the lease; pausing the
    // other hands the role back.
    fx.s.call("POST", &format!("/api/v2/activedirectories/{domain}/agents/{first_id}/resume"), None).await;
    assert!(!fx.session.heartbeat().await.unwrap().primary);
    fx.s.call("POST", &format!("/api/v2/activedirectories/{domain}/agents/{}/pause", two.id), None).await;
    assert!(fx.session.heartbeat().await.unwrap().primary);
    assert!(
        cycle(&cfg2, &mut conn2, second, true).await.unwrap().outcome.is_none(),
        "a paused import agent sends nothing"
    );
    // A running agent's cycle takes its last heartbeat's answer instead of asking again
    // (`import::Memory`): one heard while primary, used after the agent was paused, reads AD,
    // tetherd refuses its report, and the cycle, asking then, applies nothing.
    replace_attrs(&mut fx.ldap, &a_dn, &[("title", "Paused Meanwhile")]).await.unwrap();
    let mut memory = tether_agent::import::Memory::default();
    memory.heard(beat2);
    let st = tether_agent::import::cycle_with(&cfg2, &mut conn2, second, true, None, Some(&mut memory)).await;
    assert!(st.unwrap().outcome.is_none(), "refused, then told it is paused: nothing reported");
    assert_ne!(fx.tether_user(&a).await.unwrap()["jobTitle"], "Paused Meanwhile", "nothing applied");
    // The answer it got is kept: the next cycle does not read AD at all.
    let st = tether_agent::import::cycle_with(&cfg2, &mut conn2, second, true, None, Some(&mut memory)).await;
    assert!(st.unwrap().outcome.is_none());
    let d = fx.s.call("GET", &format!("/api/v2/activedirectories/{domain}"), None).await.body;
    assert_eq!(d["primaryImportAgent"].as_str(), Some(first_id.as_str()));
    // The primary agent applies the change.
    assert!(fx.run().await.is_object());
    assert_eq!(fx.tether_user(&a).await.unwrap()["jobTitle"], "Paused Meanwhile");
}

#[tokio::test]
async fn mass_change_guard_holds_a_cycle_for_approval_or_rejection() {
    for decision in ["approve", "reject"] {
        let mut fx = fixture("TWOWAYSYNC", json!({})).await;
        let domain =
            fx.s.call("GET", "/api/v2/activedirectories", None).await.body[0]["id"].as_str().unwrap().to_string();
        let r =
            fx.s.call(
                "PATCH",
                &format!("/api/v2/activedirectories/{domain}"),
                Some(json!({"guards": {"deletes": {"count": 2}}})),
            )
            .await;
        assert_eq!(r.status, 200);
        let adi = fx.adi.clone();
        let mut users = Vec::new();
        for _ in 0..5 {
            users.push(fx.user("mg", Some("Max"), &[&adi]).await);
        }
        assert_eq!(fx.run().await["created"], 5);
        // A scope mistake: four users leave the ADI group at once.
        for (_, dn) in &users[..4] {
            set_member(&mut fx.ldap, &adi, dn, false).await.unwrap();
        }
        let out = fx.run().await;
        assert_eq!((out["held"].as_bool(), out["deleted"].as_u64()), (Some(true), Some(0)), "{out}");
        assert!(out["heldReason"].as_str().unwrap().contains("4 deletes exceed the bound of 2"), "{out}");
        let plan = fx.s.call("GET", &format!("/api/v2/activedirectories/{domain}/plan"), None).await.body;
        assert_eq!(plan["status"], "held");
        let mut objects: Vec<&str> =
            plan["changes"].as_array().unwrap().iter().map(|c| c["object"].as_str().unwrap()).collect();
        objects.sort();
        let mut want: Vec<&str> = users[..4].iter().map(|(s, _)| s.as_str()).collect();
        want.sort();
        assert_eq!(objects, want);
        assert!(plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["category"] == "deletes" && c["action"] == "delete"));
        assert_eq!(fx.run().await["held"], true, "held until an admin decides");
        assert_eq!(fx.s.call("GET", "/api/systemusers", None).await.body["totalCount"], 5, "nothing applied");

        let r = fx.s.call("POST", &format!("/api/v2/activedirectories/{domain}/plan/{decision}"), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            fx.s.call("GET", &format!("/api/v2/activedirectories/{domain}/plan"), None).await.body["status"],
            "none"
        );
        let left = fx.s.call("GET", "/api/systemusers", None).await.body["totalCount"].as_u64();
        if decision == "approve" {
            assert_eq!(r.body["deleted"], 4, "exactly the plan");
            assert_eq!(left, Some(1));
            let out = fx.run().await;
            assert_eq!((out["held"].as_bool(), out["deleted"].as_u64()), (Some(false), Some(0)));
        } else {
            assert_eq!(left, Some(5), "rejected: nothing deleted");
            assert_eq!(fx.run().await["held"], true, "AD still says so: held again");
        }
    }
}

#[tokio::test]
async fn history_answers_why_a_user_was_suspended() {
    let mut fx = fixture("TWOWAYSYNC", json!({})).await;
    let adi = fx.adi.clone();
    let (a, adn) = fx.user("h", Some("Hal"), &[&adi]).await;
    fx.run().await;
    let id = fx.tether_user(&a).await.unwrap()["id"].as_str().unwrap().to_string();
    let r = fx.s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"middlename": "Q"}))).await;
    assert_eq!(r.status, 200);
    replace_attrs(&mut fx.ldap, &adn, &[("userAccountControl", "514")]).await.unwrap();
    fx.run().await;
    let h = fx.s.call("GET", &format!("/api/v2/users/{id}/history"), None).await.body;
    let h = h.as_array().unwrap();
    let actions: Vec<&str> = h.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create", "update", "update"]);
    assert_eq!(h[0]["actor"]["type"], "import_agent");
    assert_eq!(h[1]["actor"]["type"], "api_key");
    assert_eq!(h[1]["changes"]["middlename"], json!(["", "Q"]));
    let last = &h[2];
    assert_eq!(last["changes"]["state"], json!(["ACTIVATED", "SUSPENDED"]));
    assert_eq!(last["reason"], "disabled in AD (UserDisableAction=suspend)");
    assert_eq!(last["actor"]["type"], "import_agent");
    assert_eq!(last["actor"]["adGuid"].as_str().map(str::len), Some(32));
}

#[tokio::test]
async fn dry_run_decides_but_changes_nothing() {
    let mut fx = fixture("TWOWAYSYNC", json!({})).await;
    let adi = fx.adi.clone();
    let (a, adn) = fx.user("dr", Some("Dru"), &[&adi]).await;
    fx.run().await;
    replace_attrs(&mut fx.ldap, &adn, &[("userAccountControl", "514")]).await.unwrap();
    let resumed = Session::resume(&fx.cfg.server, &fx.cfg.state_dir()).unwrap();
    let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
    let out = serde_json::to_value(tether_agent::import::dry_run(&fx.cfg, &mut conn, &resumed).await.unwrap()).unwrap();
    let d = out["dryRun"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{out}");
    assert_eq!((d[0]["object"].as_str(), d[0]["action"].as_str()), (Some(a.as_str()), Some("update")));
    assert_eq!(d[0]["reason"], "disabled in AD (UserDisableAction=suspend)");
    assert_eq!(d[0]["changes"]["state"], json!(["ACTIVATED", "SUSPENDED"]));
    assert_eq!(fx.tether_user(&a).await.unwrap()["state"], "ACTIVATED", "nothing applied");
    let history =
        fx.s.call(
            "GET",
            &format!("/api/v2/users/{}/history", fx.tether_user(&a).await.unwrap()["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(history.total(), Some(1), "no history written by a dry run");
    fx.run().await;
    assert_eq!(fx.tether_user(&a).await.unwrap()["state"], "SUSPENDED");
}

#[tokio::test]
async fn email_conflicts_are_reported_on_both_sides_and_overwrite_nothing() {
    let mut fx = fixture("TWOWAYSYNC", json!({})).await;
    let adi = fx.adi.clone();
    let (a, _) = fx.user("cf", Some("Cara"), &[&adi]).await;
    // Another Tether user already has that email (a different username).
    let r =
        fx.s.call(
            "POST",
            "/api/systemusers",
            Some(json!({"username": format!("{a}x"), "email": format!("{a}@corp.example.test"),
        "firstname": "Kept", "lastname": "AsIs"})),
        )
        .await;
    let other = r.body["id"].as_str().unwrap().to_string();
    let out = fx.run().await;
    assert_eq!(out["created"], 0, "{out}");
    assert!(out["skipped"].to_string().contains("email is already used"), "{out}");
    let u = fx.s.call("GET", &format!("/api/systemusers/{other}"), None).await.body;
    assert!(u["adSyncError"].as_str().unwrap().contains("conflicts with the AD user"), "{u}");
    assert_eq!(
        (u["firstname"].as_str(), u["externally_managed"].as_bool()),
        (Some("Kept"), Some(false)),
        "nothing overwritten"
    );
    assert!(fx.tether_user(&a).await.is_none());
}

#[tokio::test]
async fn mass_change_guard_counts_membership_removals() {
    let mut fx = fixture("TWOWAYSYNC", json!({})).await;
    let domain = fx.s.call("GET", "/api/v2/activedirectories", None).await.body[0]["id"].as_str().unwrap().to_string();
    let r =
        fx.s.call(
            "PATCH",
            &format!("/api/v2/activedirectories/{domain}"),
            Some(json!({"guards": {"membershipRemovals": {"count": 2}}})),
        )
        .await;
    assert_eq!(r.status, 200);
    let adi = fx.adi.clone();
    let gname = unique("team");
    let group = create_group(&mut fx.ldap, &dc().users_container(), &gname).await.unwrap();
    set_member(&mut fx.ldap, &adi, &group, true).await.unwrap();
    let mut users = Vec::new();
    for _ in 0..4 {
        // Direct members of the ADI group too, so they stay in scope when they leave the team.
        users.push(fx.user("mr", Some("Mem"), &[&adi, &group]).await);
    }
    fx.run().await;
    assert_eq!(fx.group_members(&gname).await.len(), 4);
    for (_, dn) in &users[..3] {
        set_member(&mut fx.ldap, &group, dn, false).await.unwrap();
    }
    let out = fx.run().await;
    assert_eq!(out["held"], true, "{out}");
    assert!(out["heldReason"].as_str().unwrap().contains("3 membershipRemovals exceed the bound of 2"), "{out}");
    assert_eq!(fx.group_members(&gname).await.len(), 4, "nothing applied");
    let plan = fx.s.call("GET", &format!("/api/v2/activedirectories/{domain}/plan"), None).await.body;
    let c = &plan["changes"][0];
    assert_eq!(
        (c["category"].as_str(), c["object"].as_str(), c["count"].as_u64()),
        (Some("membershipRemovals"), Some(gname.as_str()), Some(3)),
        "{plan}"
    );
    let r = fx.s.call("POST", &format!("/api/v2/activedirectories/{domain}/plan/approve"), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(fx.group_members(&gname).await, vec![users[3].0.clone()], "exactly the plan");
    // The group's own history: mirrored from AD, then the members who left, by the import.
    let g = fx.s.call("GET", &format!("/api/v2/usergroups?filter=name:eq:{gname}"), None).await;
    let gid = g.body[0]["id"].as_str().unwrap();
    let h = fx.s.call("GET", &format!("/api/v2/usergroups/{gid}/history"), None).await.body;
    let h = h.as_array().unwrap();
    assert_eq!(h[0]["action"], "create");
    assert_eq!(h[0]["actor"]["type"], "import_agent");
    let last = h.last().unwrap();
    let mut left: Vec<&str> =
        last["changes"]["members"]["removed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    left.sort();
    let mut want: Vec<&str> = users[..3].iter().map(|(s, _)| s.as_str()).collect();
    want.sort();
    assert_eq!(left, want, "{last}");
    assert_eq!(last["actor"]["type"], "plan_approval", "{last}");
}

/// A read that did not complete (paging interrupted, connection lost) is reported as
/// incomplete: absence then means nothing, so no user is deleted, suspended or unbound even
/// when the report names none of them.
#[tokio::test]
async fn an_incomplete_read_never_removes_anyone() {
    let mut fx = fixture("TWOWAYSYNC", json!({"UserDissociationAction": "remove"})).await;
    let adi = fx.adi.clone();
    let (a, _) = fx.user("ir", Some("Ina"), &[&adi]).await;
    let (b, _) = fx.user("ir", Some("Ira"), &[&adi]).await;
    assert_eq!(fx.run().await["created"], 2);
    let fencing = fx.session.heartbeat().await.unwrap().fencing;
    // (Without a `base`, as agents older than it send: taken, since no group is sent as who
    // joined and who left.)
    let partial = json!({"settings": {"userDissociationAction": "remove"}, "complete": false, "users": [],
                         "groups": [], "fencing": fencing});
    let out = serde_json::to_value(fx.session.report_import(&serde_json::from_value(partial).unwrap()).await.unwrap())
        .unwrap();
    assert_eq!((out["deleted"].as_u64(), out["unbound"].as_u64()), (Some(0), Some(0)), "{out}");
    for sam in [&a, &b] {
        let u = fx.tether_user(sam).await.expect("still there");
        assert_eq!(u["state"], "ACTIVATED");
    }
    // The same report marked complete is a real "everyone left": the guard's business then.
    let complete = json!({"settings": {"userDissociationAction": "remove"}, "complete": true, "users": [],
                          "groups": [], "fencing": fencing});
    let out = serde_json::to_value(fx.session.report_import(&serde_json::from_value(complete).unwrap()).await.unwrap())
        .unwrap();
    assert_eq!(out["deleted"], 2, "{out}");
}

#[tokio::test]
async fn only_an_import_agent_of_the_users_domain_answers_its_verification() {
    let mut fx = fixture("ADASAUTHORITY", json!({})).await;
    let adi = fx.adi.clone();
    let (sam, _) = fx.user("lane", Some("Lane"), &[&adi]).await;
    assert_eq!(fx.run().await["created"], 1);
    // An import agent of another domain, registered with a token of its own.
    let other =
        fx.s.call(
            "POST",
            "/api/v2/activedirectories",
            Some(json!({"domain": "DC=other,DC=test", "useCase": "ADASAUTHORITY"})),
        )
        .await;
    let key = fx.s.connect_key(other.body["id"].as_str().unwrap(), "IMPORT").await;
    let token = "o".repeat(40);
    let r =
        fx.s.call_as(None, "POST", "/api/agent/v1/register", Some(json!({"connectKey": key, "token": token}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // A wrong password waits for domain A's answer; the other domain's agent learns the
    // request's id (say, from a leak) and vouches for it.
    let s = fx.s.call("POST", "/api/v2/auth/verify", Some(json!({"username": sam, "password": "Wrong-Passw0rd"})));
    let (verdict, forged) = tokio::join!(s, async {
        let asked = loop {
            let v = serde_json::to_value(fx.session.auth_poll(2_000).await.unwrap()).unwrap();
            let v = v.as_array().cloned().unwrap_or_default();
            if let Some(r) = v.into_iter().next() {
                break r;
            }
        };
        let forged =
            fx.s.client
                .post(format!("{}/api/agent/v1/auth/result", fx.s.url))
                .bearer_auth(&token)
                .json(&json!({"id": asked["id"], "ok": true}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
        // Domain A's own agent answers as AD did.
        fx.session
            .auth_result(asked["id"].as_str().unwrap(), Some(tether_ad::BindFailure::InvalidCredentials))
            .await
            .unwrap();
        forged
    });
    assert_eq!(forged, 403, "another domain's agent may not answer");
    assert_eq!(verdict.status, 401, "{:?}", verdict.body);
    assert_eq!(verdict.body["authenticated"], false);
}

/// AD deletions reach Tether at the next incremental cycle, not at the periodic complete
/// read, although the import account (a plain domain user) cannot read AD's tombstones and a
/// deletion moves no group's `uSNChanged`: a deleted user and the members of a deleted
/// nested group leave per UserDissociationAction, and the mirrored group goes.
#[tokio::test]
async fn deletions_in_ad_reach_tether_at_the_next_cycle() {
    for (action, outcome_key) in [("remove", "deleted"), ("unbind", "unbound")] {
        let mut fx = fixture("ADASAUTHORITY", json!({"UserDissociationAction": action})).await;
        let adi = fx.adi.clone();
        let nested_name = unique("nest");
        let nested = create_group(&mut fx.ldap, &dc().users_container(), &nested_name).await.unwrap();
        set_member(&mut fx.ldap, &adi, &nested, true).await.unwrap();
        let (a, adn) = fx.user("del", Some("Ann"), &[&adi]).await;
        let (b, _) = fx.user("del", Some("Bob"), &[&adi]).await;
        let (c, _) = fx.user("del", Some("Cid"), &[&nested]).await;
        assert_eq!(fx.run().await["created"], 3);
        assert_eq!(fx.group_members(&nested_name).await, vec![c.clone()]);

        fx.ldap.delete(&adn).await.unwrap().success().unwrap();
        fx.ldap.delete(&nested).await.unwrap().success().unwrap();
        // The premise: the import account sees no tombstone, even with the Show Deleted control.
        let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
        let show_deleted =
            tether_ad::ldap3::controls::RawControl { ctype: "1.2.840.113556.1.4.417".into(), crit: true, val: None };
        let (seen, _) = conn
            .with_controls(show_deleted)
            .search(
                &dc().base_dn,
                tether_ad::ldap3::Scope::Subtree,
                &format!("(sAMAccountName={a})"),
                vec!["isDeleted"],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
        assert!(seen.is_empty(), "the import account must not read tombstones for this test to mean anything");

        let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
        let out = st.outcome.map(tether_testkit::json_of).expect("the USN moved: a read happened");
        assert_eq!((out[outcome_key].as_u64(), out["groupsDeleted"].as_u64()), (Some(2), Some(1)), "{action}: {out}");
        let mirrored = fx.s.call("GET", &format!("/api/v2/usergroups?filter=name:eq:{nested_name}"), None).await;
        assert_eq!(mirrored.body.as_array().map(Vec::len), Some(0), "the mirrored group is gone");
        assert!(fx.tether_user(&b).await.is_some(), "the others stay");
        for who in [&a, &c] {
            let u = fx.tether_user(who).await;
            match action {
                "remove" => assert!(u.is_none(), "{who} deleted"),
                _ => {
                    let u = u.expect("unbound users stay");
                    assert_eq!((u["externally_managed"].as_bool(), u["external_dn"].is_null()), (Some(false), true));
                }
            }
        }
    }
}

/// Removing mirrored groups is a guarded category of its own (`groupDeletes`): past its
/// bound the cycle is held, with a plan line per group, and an approval applies it.
#[tokio::test]
async fn mirrored_group_deletions_are_guarded() {
    let mut fx = fixture("ADASAUTHORITY", json!({})).await;
    let domain = fx.s.call("GET", "/api/v2/activedirectories", None).await.body[0]["id"].as_str().unwrap().to_string();
    let r =
        fx.s.call(
            "PATCH",
            &format!("/api/v2/activedirectories/{domain}"),
            Some(json!({"guards": {"groupDeletes": {"count": 1}}})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let adi = fx.adi.clone();
    let mut names = Vec::new();
    let mut dns = Vec::new();
    for _ in 0..2 {
        let name = unique("gd");
        let dn = create_group(&mut fx.ldap, &dc().users_container(), &name).await.unwrap();
        set_member(&mut fx.ldap, &adi, &dn, true).await.unwrap();
        // Members of the ADI group directly too: they stay in scope.
        fx.user("gd", Some("Gus"), &[&adi, &dn]).await;
        names.push(name);
        dns.push(dn);
    }
    assert_eq!(fx.run().await["groupsCreated"], 2);
    for dn in &dns {
        set_member(&mut fx.ldap, &adi, dn, false).await.unwrap();
    }
    let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
    let out =
        cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap().outcome.map(tether_testkit::json_of).unwrap();
    assert_eq!((out["held"].as_bool(), out["groupsDeleted"].as_u64()), (Some(true), Some(0)), "{out}");
    assert!(out["heldReason"].as_str().unwrap().contains("2 groupDeletes exceed the bound of 1"), "{out}");
    let plan = fx.s.call("GET", &format!("/api/v2/activedirectories/{domain}/plan"), None).await.body;
    let mut lines: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["category"].as_str().unwrap().to_string(), c["object"].as_str().unwrap().to_string()))
        .collect();
    lines.sort();
    let mut want: Vec<(String, String)> = names.iter().map(|n| ("groupDeletes".to_string(), n.clone())).collect();
    want.sort();
    assert_eq!(lines, want, "{plan}");
    let r = fx.s.call("POST", &format!("/api/v2/activedirectories/{domain}/plan/approve"), None).await;
    assert_eq!((r.status.as_u16(), r.body["groupsDeleted"].as_u64()), (200, Some(2)), "{:?}", r.body);
    for n in &names {
        let g = fx.s.call("GET", &format!("/api/v2/usergroups?filter=name:eq:{n}"), None).await;
        assert_eq!(g.body.as_array().map(Vec::len), Some(0), "{n} removed");
    }
    assert_eq!(fx.s.call("GET", "/api/systemusers", None).await.body["totalCount"], 2, "the users stay");
}

#[tokio::test]
async fn ad_unix_numbers_are_kept_and_a_clash_loses_no_user() {
    let mut fx = fixture("ADASAUTHORITY", json!({})).await;
    let adi = fx.adi.clone();
    // A local user holds 60010 before the import sees AD's numbers.
    let r = fx
        .s
        .call(
            "POST",
            "/api/systemusers",
            Some(json!({"username": unique("loc"), "email": format!("{}@example.test", unique("loc")), "unix_uid": 60010})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let (with, with_dn) = fx.user("ux", Some("Unix"), &[&adi]).await;
    replace_attrs(&mut fx.ldap, &with_dn, &[("uidNumber", "60001"), ("gidNumber", "60002")]).await.unwrap();
    let (clash, clash_dn) = fx.user("uc", Some("Clash"), &[&adi]).await;
    replace_attrs(&mut fx.ldap, &clash_dn, &[("uidNumber", "60010")]).await.unwrap();
    let (plain, _) = fx.user("up", Some("Plain"), &[&adi]).await;
    let out = fx.run().await;
    assert_eq!((out["created"].as_u64(), out["skipped"].as_array().map(Vec::len)), (Some(3), Some(0)), "{out}");
    let nums = |u: Value| {
        (
            u["unix_uid"].as_u64().unwrap_or_else(|| panic!("{u}")),
            u["unix_guid"].as_u64().unwrap_or_else(|| panic!("{u}")),
        )
    };
    assert_eq!(nums(fx.tether_user(&with).await.unwrap()), (60001, 60002), "AD's numbers kept");
    let (clash_uid, _) = nums(fx.tether_user(&clash).await.unwrap());
    assert_ne!(clash_uid, 60010, "the local user keeps its number; the AD user is imported with another");
    let (plain_uid, _) = nums(fx.tether_user(&plain).await.unwrap());
    assert!(plain_uid > 60010 && clash_uid > 60010, "numbers handed out pass AD's: {plain_uid} {clash_uid}");
    // A change of AD's number reaches Tether; an account without one keeps Tether's.
    replace_attrs(&mut fx.ldap, &with_dn, &[("uidNumber", "60003")]).await.unwrap();
    fx.run().await;
    assert_eq!(nums(fx.tether_user(&with).await.unwrap()), (60003, 60002));
    assert_eq!(nums(fx.tether_user(&plain).await.unwrap()).0, plain_uid);
}
