//! Odd and hostile input against the real Samba DC: non-ASCII names, 1 KiB values, RFC 4514
//! and 4515 special characters in names (no LDAP injection in filters or DNs), a large group
//! read range by range, and oversized requests.

use std::collections::HashSet;
use std::path::Path;

use serde_json::json;
use tether_ad::{connect, create_group, create_user, replace_attrs, set_member, NewUser};
use tether_agent::config::{ImportConfig, SyncConfig};
use tether_agent::import::cycle;
use tether_agent::session::Session;
use tether_agent::sync::apply_entries;
use tether_testkit::{dc, unique, TestServer};

async fn import_fixture(s: &TestServer, adi: &str) -> (ImportConfig, Session, tempfile::TempDir) {
    let domain = s.create("/api/v2/activedirectories", json!({"domain": dc().base_dn})).await;
    let key = s.connect_key(&domain, "IMPORT").await;
    let state = tempfile::tempdir().unwrap();
    let v = dc().import_agent_config(&s.url, &key, state.path(), &dc().users_container(), adi);
    let cfg = ImportConfig::from_str(Path::new("i.json"), &v.to_string()).unwrap();
    let session = Session::establish(&cfg.server, &cfg.state_dir(), "member_server").await.unwrap();
    (cfg, session, state)
}

#[tokio::test]
async fn non_ascii_long_values_and_special_characters_are_imported_intact() {
    let s = TestServer::start().await;
    let mut ldap = connect(&dc().admin_target()).await.unwrap();
    let users = dc().users_container();
    let adi = create_group(&mut ldap, &users, &unique("adi")).await.unwrap();
    // A group whose name needs escaping in DNs and filters.
    // The CN carries the characters; sAMAccountName may not (AD forbids `,` and `*` there).
    let gsam = unique("sales");
    let gname = format!("Sales, EMEA (Tier*1) #{gsam}");
    let g = format!("CN={},{users}", tether_ad::ldap3::dn_escape(&gname));
    ldap.add(
        &g,
        vec![("objectClass", HashSet::from(["top", "group"])), ("sAMAccountName", HashSet::from([gsam.as_str()]))],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    set_member(&mut ldap, &adi, &g, true).await.unwrap();
    let sam = unique("nx");
    let mail = format!("{sam}@corp.example.test");
    let nu = NewUser {
        container: &users,
        sam_account_name: &sam,
        given_name: "Zoë",
        sn: "Ångström-Øye",
        mail: &mail,
        password: Some("Nön-Ascii-Pw1!"),
    };
    // CN = the unique sAMAccountName, so reruns on the same DC do not collide.
    let dn = tether_ad::create_user_as(&mut ldap, &nu, &sam, &mail, true).await.unwrap();
    let long = "x".repeat(1024);
    replace_attrs(&mut ldap, &dn, &[("description", &long), ("title", "Ingénieure 日本")]).await.unwrap();
    set_member(&mut ldap, &g, &dn, true).await.unwrap();

    let (cfg, session, _state) = import_fixture(&s, &adi).await;
    let mut conn = connect(&cfg.ldap_target()).await.unwrap();
    let out = cycle(&cfg, &mut conn, &session, true).await.unwrap().outcome.map(tether_testkit::json_of).unwrap();
    assert_eq!((out["created"].as_u64(), out["groupsCreated"].as_u64()), (Some(1), Some(1)), "{out}");
    let r = s.call("GET", &format!("/api/systemusers?filter=username:$eq:{sam}"), None).await;
    let u = &r.body["results"][0];
    assert_eq!((u["firstname"].as_str(), u["lastname"].as_str()), (Some("Zoë"), Some("Ångström-Øye")));
    assert_eq!(u["description"].as_str().map(str::len), Some(1024));
    assert_eq!(u["jobTitle"], "Ingénieure 日本");
    let r =
        s.call("POST", "/api/search/systemusers", Some(json!({"filter": [{"firstname": {"$regex": "^zoë$"}}]}))).await;
    assert_eq!(r.body["totalCount"], 1, "case-insensitive regex on non-ASCII");
    let groups = s.call("GET", "/api/v2/usergroups", None).await.body;
    let mirrored =
        groups.as_array().unwrap().iter().find(|x| x["name"] == gname.as_str()).expect("group mirrored with its name");
    let members =
        s.call("GET", &format!("/api/v2/usergroups/{}/members", mirrored["id"].as_str().unwrap()), None).await;
    assert_eq!(members.total(), Some(1));
}

#[tokio::test]
async fn names_with_filter_metacharacters_cannot_inject_and_are_synced() {
    let s = TestServer::start().await;
    let domain = s.create("/api/v2/activedirectories", json!({"domain": dc().base_dn})).await;
    let key = s.connect_key(&domain, "SYNC").await;
    let mut ldap = connect(&dc().admin_target()).await.unwrap();
    let ou = format!("OU={},{}", unique("hx"), dc().base_dn);
    ldap.add(&ou, vec![("objectClass", HashSet::from(["organizationalUnit"]))]).await.unwrap().success().unwrap();
    let sync_group = create_group(&mut ldap, &ou, &unique("jc")).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let v = dc().sync_agent_config(&s.url, &key, state.path(), &ou, &sync_group);
    let cfg = SyncConfig::from_str(Path::new("s.json"), &v.to_string()).unwrap();
    let session = Session::establish(&cfg.server, &cfg.state_dir(), "member_server").await.unwrap();
    // `)(` would widen an unescaped filter to every object; `#` and `&` need no escape.
    let name = format!("o)(cn{}", &unique("")[..6]);
    let r = s
        .call(
            "POST",
            "/api/systemusers",
            Some(json!({"username": name, "email": format!("{}@x.io", unique("m")),
        "firstname": "Ôde", "lastname": "Quote\"Smith, Jr."})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let uid = r.body["id"].as_str().unwrap().to_string();
    let gname = format!("R&D (Paris) #{}", &unique("")[..5]);
    let g = s.create("/api/v2/usergroups", json!({"name": gname})).await;
    s.add_member(&g, &uid).await;
    s.call(
        "POST",
        &format!("/api/v2/activedirectories/{domain}/associations"),
        Some(json!({"op": "add", "type": "user_group", "id": g})),
    )
    .await;
    let mut conn = None;
    let target = cfg.ldap_target();
    loop {
        let entries = session.sync_poll(100).await.unwrap();
        if entries.is_empty() {
            break;
        }
        apply_entries(&cfg, &target, &mut conn, &session, &entries, true).await.unwrap();
    }
    let u = s.call("GET", &format!("/api/systemusers/{uid}"), None).await.body;
    assert!(u["adSyncError"].is_null() || u["adSyncError"].as_str().unwrap().contains("system-generated"), "{u}");
    let dn = u["external_dn"].as_str().expect("created in AD and linked").to_string();
    assert!(dn.ends_with(&ou), "{dn}");
    // Exactly one object matches the escaped name: the filter was not widened.
    let f = format!("(sAMAccountName={})", tether_ad::ldap3::ldap_escape(&name));
    let (hits, _) =
        ldap.search(&dc().base_dn, tether_ad::ldap3::Scope::Subtree, &f, vec!["sn"]).await.unwrap().success().unwrap();
    assert_eq!(hits.len(), 1);
    let e = tether_ad::ldap3::SearchEntry::construct(hits.into_iter().next().unwrap());
    assert_eq!(e.attrs["sn"][0], "Quote\"Smith, Jr.");
    let gf = format!("(sAMAccountName={})", tether_ad::ldap3::ldap_escape(&gname));
    let (groups, _) =
        ldap.search(&ou, tether_ad::ldap3::Scope::Subtree, &gf, vec!["member"]).await.unwrap().success().unwrap();
    let ge = tether_ad::ldap3::SearchEntry::construct(groups.into_iter().next().expect("group created"));
    assert_eq!(ge.attrs["member"].len(), 1);
}

#[tokio::test]
async fn large_groups_are_read_range_by_range() {
    let mut ldap = connect(&dc().admin_target()).await.unwrap();
    let users = dc().users_container();
    let g = create_group(&mut ldap, &users, &unique("big")).await.unwrap();
    let mut want = HashSet::new();
    for _ in 0..50 {
        let sam = unique("bg");
        let dn = create_user(
            &mut ldap,
            &NewUser {
                container: &users,
                sam_account_name: &sam,
                given_name: "Big",
                sn: &sam,
                mail: &format!("{sam}@corp.example.test"),
                password: None,
            },
        )
        .await
        .unwrap();
        set_member(&mut ldap, &g, &dn, true).await.unwrap();
        want.insert(dn.to_lowercase());
    }
    let (e, _) = ldap
        .search(&g, tether_ad::ldap3::Scope::Base, "(objectClass=group)", vec!["member"])
        .await
        .unwrap()
        .success()
        .unwrap();
    let e = tether_ad::ldap3::SearchEntry::construct(e.into_iter().next().unwrap());
    // As real AD does past 1,500 values: ask Samba for ranges of 7.
    let got = tether_ad::read::ranged_values(&mut ldap, &e, "member", Some(7)).await.unwrap();
    assert_eq!(got.len(), 50);
    assert_eq!(got.iter().map(|m| m.to_lowercase()).collect::<HashSet<_>>(), want);
    // With their objectGUIDs (extended DNs), by ranges and whole.
    let mut guids = HashSet::new();
    for dn in &want {
        let (u, _) = ldap
            .search(dn, tether_ad::ldap3::Scope::Base, "(objectClass=user)", vec!["objectGUID"])
            .await
            .unwrap()
            .success()
            .unwrap();
        let u = tether_ad::ldap3::SearchEntry::construct(u.into_iter().next().unwrap());
        guids.insert((Some(tether_ad::read::guid_hex(&u)), dn.clone()));
    }
    for step in [Some(7), None] {
        let got = tether_ad::read::members_with_guids(&mut ldap, &g, step).await.unwrap();
        let got: HashSet<_> = got.into_iter().map(|(guid, dn)| (guid, dn.to_lowercase())).collect();
        assert_eq!(got, guids, "step {step:?}");
    }
}

#[tokio::test]
async fn oversized_and_malformed_requests_get_clear_errors() {
    let s = TestServer::start().await;
    let huge = format!("{{\"username\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let r = s.call_raw("POST", "/api/systemusers", &huge).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    // Import reports may be large, but only an authenticated agent's body is ever read.
    let r = s.call_raw("POST", "/api/agent/v1/import", &huge).await;
    assert_eq!(r.status, 401, "the token is checked before the body");
    let r = s.call_raw("POST", "/api/agent/v1/register", "{\"connectKey\": 5}").await;
    assert_eq!(r.status, 400);
    let r = s.call("POST", "/api/systemusers", Some(json!({"username": "a".repeat(300), "email": "a@b.c"}))).await;
    assert_eq!((r.status.as_u16(), r.body["status"].as_str()), (400, Some("INVALID_FIELD")));
    // A pattern on a boolean field is a clear 400 (fuzzing found it crashing the request).
    let r = s.call("GET", "/api/systemusers?filter=suspended:regex:true", None).await;
    assert_eq!((r.status.as_u16(), r.body["status"].as_str()), (400, Some("INVALID_FILTER")), "{:?}", r.body);
    let r =
        s.call("POST", "/api/search/systemusers", Some(json!({"filter": {"username": {"$regex": "(a+)+$"}}}))).await;
    assert_eq!(r.status, 200, "linear-time regexes: no catastrophic backtracking");
}
