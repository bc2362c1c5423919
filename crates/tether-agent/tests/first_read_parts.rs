//! A first complete read sends its users to tetherd in parts while it reads (issue #18): the
//! same import as one report, each part applied as its own report, and a part that only
//! creates users, so parts cannot split a mass change under a guard's bound.

use serde_json::json;
use tether_ad::{connect, create_group, set_member};
use tether_agent::import::cycle;
use tether_testkit::{dc, json_of, unique};

use crate::import_samba::{fixture, Fx};

async fn import_seq(fx: &Fx) -> u64 {
    let domain = fx.domain_id().await;
    let d = fx.s.call("GET", &format!("/api/v2/activedirectories/{domain}"), None).await.body;
    d["importSeq"].as_u64().unwrap_or_else(|| panic!("importSeq in {d}"))
}

#[tokio::test]
async fn a_first_read_sends_its_users_in_parts_as_it_reads() {
    let mut fx = fixture("TWOWAYSYNC", json!({})).await;
    // A part every user read (the root container holds other tests' users too: only those in
    // scope make a part).
    fx.cfg.first_read_part = 1;
    let team_name = unique("parts");
    let team = create_group(&mut fx.ldap, &dc().users_container(), &team_name).await.unwrap();
    let adi = fx.adi.clone();
    set_member(&mut fx.ldap, &adi, &team, true).await.unwrap();
    let mut members = Vec::new();
    for _ in 0..5 {
        members.push(fx.user("pt", Some("Part"), &[&team]).await.0);
    }
    members.sort();
    // In scope but not importable (no givenName): sent in a part, skipped there and again.
    let (nameless, _) = fx.user("pt", None, &[&adi]).await;
    let (outside, _) = fx.user("pt", Some("Outside"), &[]).await;
    let seq = import_seq(&fx).await;

    let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn, &fx.session, true).await.unwrap();
    assert_eq!(st.parts_applied, 6, "one part per user in scope: {st:?}");
    let out = json_of(st.outcome.unwrap());
    // The cycle's outcome counts what its parts created.
    assert_eq!((out["created"].as_u64(), out["unchanged"].as_u64()), (Some(5), Some(0)), "{out}");
    let skipped = out["skipped"].as_array().unwrap();
    assert_eq!(skipped.iter().filter(|s| s.to_string().contains(&nameless)).count(), 1, "{out}");
    // Each part was applied as a report of its own, then the complete one.
    assert_eq!(import_seq(&fx).await, seq + 7);
    for m in &members {
        assert!(fx.tether_user(m).await.is_some(), "{m} imported");
    }
    assert!(fx.tether_user(&outside).await.is_none(), "a part carries only the scope");
    assert!(fx.tether_user(&nameless).await.is_none());
    assert_eq!(fx.group_members(&team_name).await, members, "the complete report mirrors the groups");

    // A later complete read knows the scope: no parts.
    let st = cycle(&fx.cfg, &mut conn, &fx.session, true).await.unwrap();
    assert_eq!(st.parts_applied, 0);
    let out = json_of(st.outcome.unwrap());
    assert_eq!((out["created"].as_u64(), out["unchanged"].as_u64()), (Some(0), Some(5)), "{out}");
}

/// Parts only create: two Tether users the first read takes over (each a password clear,
/// over a bound of one) wait for the complete report and its guard, as without parts, while
/// a part creates the new user. A domain that has users takes no part without a base.
#[tokio::test]
async fn parts_only_create_so_a_guard_still_sees_the_whole_change() {
    let mut fx = fixture("TWOWAYSYNC", json!({})).await;
    fx.cfg.first_read_part = 1;
    let domain = fx.domain_id().await;
    let guard = json!({"guards": {"passwordClears": {"count": 1}}});
    let r = fx.s.call("PATCH", &format!("/api/v2/activedirectories/{domain}"), Some(guard)).await;
    assert_eq!(r.status, 200);
    let adi = fx.adi.clone();
    let mut taken = Vec::new();
    for _ in 0..2 {
        let (sam, _) = fx.user("pg", Some("Taken"), &[&adi]).await;
        let body = json!({"username": sam, "email": format!("{sam}@old.example"), "password": "Old-Passw0rd"});
        assert_eq!(fx.s.call("POST", "/api/systemusers", Some(body)).await.status, 200);
        taken.push(sam);
    }
    let (new, _) = fx.user("pg", Some("New"), &[&adi]).await;

    let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn, &fx.session, true).await.unwrap();
    assert_eq!(st.parts_applied, 3, "{st:?}");
    let out = json_of(st.outcome.unwrap());
    assert_eq!(out["held"], true, "{out}");
    assert!(out["heldReason"].as_str().unwrap().contains("2 passwordClears exceed the bound of 1"), "{out}");
    assert_eq!(out["created"], 1, "what the parts created: {out}");
    for sam in &taken {
        let u = fx.tether_user(sam).await.unwrap();
        assert_eq!(
            (u["externally_managed"].as_bool(), u["passwordStatus"].as_str()),
            (Some(false), Some("active")),
            "{sam}"
        );
    }
    assert_eq!(fx.tether_user(&new).await.unwrap()["externally_managed"], true, "a part created the new user");

    // The domain has a user now: a part without a base (a first part) is refused, and one
    // with anything but users too.
    let r = fx.s.call("POST", &format!("/api/v2/activedirectories/{domain}/plan/reject"), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let beat = fx.session.heartbeat().await.unwrap();
    assert!(beat.parts);
    let first = tether_core::wire::ImportReport { part: true, fencing: Some(beat.fencing), ..Default::default() };
    match fx.session.report_import(&first).await {
        Err(tether_agent::AgentError::Server { status: 409, message, .. }) => {
            assert!(message.contains("has users"), "{message}")
        }
        other => panic!("a first part to a domain with users: {other:?}"),
    }
    let mut bad = first.clone();
    bad.gone = vec!["00112233445566778899aabbccddeeff".into()];
    match fx.session.report_import(&bad).await {
        Err(tether_agent::AgentError::Server { status: 400, message, .. }) => {
            assert!(message.contains("part"), "{message}")
        }
        other => panic!("a part with someone gone: {other:?}"),
    }
    // So the agent's next read, a first read again (the held cycle saved nothing, as a lost
    // state would), goes without parts.
    assert!(!fx.cfg.state_dir().join("import.json").exists());
    let st = cycle(&fx.cfg, &mut conn, &fx.session, true).await.unwrap();
    assert_eq!(st.parts_applied, 0, "{st:?}");
}
