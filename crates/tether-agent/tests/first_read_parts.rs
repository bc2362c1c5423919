//! A first complete read sends its users to tetherd in parts while it reads (issue #18): the
//! same import as one report, each part applied as its own report, and a part that only
//! creates users, so parts cannot split a mass change under a guard's bound.

use serde_json::json;
use tether_ad::{connect, create_group, replace_attrs, set_member};
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

/// An agent whose state is lost reads everything again in parts, while Tether holds its
/// users: what changed for them (two users disabled in AD, over a bound of one suspension)
/// waits for the complete report and its guard, as without parts.
#[tokio::test]
async fn parts_only_create_so_a_guard_still_sees_the_whole_change() {
    let mut fx = fixture("TWOWAYSYNC", json!({})).await;
    fx.cfg.first_read_part = 1;
    let domain = fx.domain_id().await;
    let r =
        fx.s.call(
            "PATCH",
            &format!("/api/v2/activedirectories/{domain}"),
            Some(json!({"guards": {"suspends": {"count": 1}}})),
        )
        .await;
    assert_eq!(r.status, 200);
    let adi = fx.adi.clone();
    let mut users = Vec::new();
    for _ in 0..3 {
        users.push(fx.user("pg", Some("Guarded"), &[&adi]).await);
    }
    assert_eq!(fx.run().await["created"], 3);
    for (_, dn) in &users[..2] {
        replace_attrs(&mut fx.ldap, dn, &[("userAccountControl", "514")]).await.unwrap();
    }
    // A new user too: parts still create it.
    let (late, _) = fx.user("pg", Some("Late"), &[&adi]).await;
    std::fs::remove_file(fx.cfg.state_dir().join("import.json")).unwrap();

    let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn, &fx.session, true).await.unwrap();
    assert_eq!(st.parts_applied, 4, "{st:?}");
    let out = json_of(st.outcome.unwrap());
    assert_eq!(out["held"], true, "{out}");
    assert!(out["heldReason"].as_str().unwrap().contains("2 suspends exceed the bound of 1"), "{out}");
    for (sam, _) in &users {
        assert_eq!(fx.tether_user(sam).await.unwrap()["suspended"], false, "{sam}: no part suspended it");
    }
    assert!(fx.tether_user(&late).await.is_some(), "a part created the new user");

    // A part with anything but users is refused.
    let beat = fx.session.heartbeat().await.unwrap();
    let mut bad = tether_core::wire::ImportReport { part: true, fencing: Some(beat.fencing), ..Default::default() };
    bad.gone = vec!["00112233445566778899aabbccddeeff".into()];
    match fx.session.report_import(&bad).await {
        Err(tether_agent::AgentError::Server { status: 400, message, .. }) => {
            assert!(message.contains("part"), "{message}")
        }
        other => panic!("a part with someone gone: {other:?}"),
    }
}
