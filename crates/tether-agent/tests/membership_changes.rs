//! Incremental import reports send a changed mirrored group as who joined and who left it,
//! not all its members: against the real Samba DC, a member leaving, a new member, a renamed
//! member and a deleted one (kept in Tether, unbound) each leave the mirrored group exactly as
//! AD has it, counted by the mass-change guard as before. Such a report is relative to the
//! agent's last applied one: after an approved plan, or another agent's report, tetherd
//! refuses it and the agent reads everything.

use serde_json::json;
use tether_ad::{connect, create_group, set_member};
use tether_agent::import::{cycle, cycle_with, CycleStats, Memory, ReadKind};
use tether_testkit::{dc, unique};

use crate::import_samba::{fixture, Fx};

#[tokio::test]
async fn a_changed_group_is_sent_as_who_joined_and_left() {
    let mut fx = fixture("ADASAUTHORITY", json!({"UserDissociationAction": "unbind"})).await;
    let adi = fx.adi.clone();
    let team_name = unique("team");
    let team = create_group(&mut fx.ldap, &dc().users_container(), &team_name).await.unwrap();
    set_member(&mut fx.ldap, &adi, &team, true).await.unwrap();
    let (stays, _) = fx.user("mc", Some("Sta"), &[&team]).await;
    // Also a direct member of the ADI group: still in scope after leaving the team.
    let (leaves, leaves_dn) = fx.user("mc", Some("Lea"), &[&adi, &team]).await;
    let (renamed, renamed_dn) = fx.user("mc", Some("Ren"), &[&team]).await;
    let (deleted, deleted_dn) = fx.user("mc", Some("Del"), &[&team]).await;
    let (admin, admin_dn) = fx.user("mc", Some("Adm"), &[&team]).await;
    let first = fx.run().await;
    assert_eq!(first["created"], 5);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        fx.group_members(&team_name).await,
        sorted(vec![stays.clone(), leaves.clone(), renamed.clone(), deleted.clone(), admin])
    );

    set_member(&mut fx.ldap, &team, &leaves_dn, false).await.unwrap();
    let (joins, _) = fx.user("mc", Some("Joi"), &[&team]).await;
    fx.ldap.modifydn(&renamed_dn, &format!("CN={renamed}-moved"), true, None).await.unwrap().success().unwrap();
    fx.ldap.delete(&deleted_dn).await.unwrap().success().unwrap();
    // Made a Domain Admin while staying in the team: reported privileged, out of the group.
    let domain_admins = format!("CN=Domain Admins,{}", dc().users_container());
    set_member(&mut fx.ldap, &domain_admins, &admin_dn, true).await.unwrap();
    // The mass-change guard counts the three who left (the deleted one known by its old DN
    // only).
    let domain = fx.domain_id().await;
    let guard = json!({"guards": {"membershipRemovals": {"count": 1}}});
    assert_eq!(fx.s.call("PATCH", &format!("/api/v2/activedirectories/{domain}"), Some(guard)).await.status, 200);
    let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_ne!(st.read, ReadKind::Complete);
    assert_eq!(st.groups_as_changes, 1, "the team went as who joined and who left: {st:?}");
    let out = st.outcome.map(tether_testkit::json_of).unwrap();
    assert!(out["heldReason"].as_str().unwrap_or("").contains("3 membershipRemovals exceed the bound of 1"), "{out}");
    let r = fx.s.call("POST", &format!("/api/v2/activedirectories/{domain}/plan/approve"), None).await;
    assert_eq!((r.body["created"].as_u64(), r.body["unbound"].as_u64()), (Some(1), Some(1)), "{:?}", r.body);
    assert_eq!(fx.group_members(&team_name).await, sorted(vec![stays, renamed, joins]));
    // Both who left are still Tether users: they left the group, not Tether.
    for who in [&leaves, &deleted] {
        assert!(fx.tether_user(who).await.is_some(), "{who} stays in Tether");
    }

    // Who joined and who left is a change to the agent's last applied report: a complete
    // report (here one that would otherwise remove every user) or one without the fencing
    // token it was computed under is refused whole.
    let group = json!([{"guid": "00", "dn": team, "name": team_name, "members": {"joined": [], "left": []}}]);
    let fencing = fencing_in_force(&fx).await;
    for (complete, fencing) in [(true, json!(fencing)), (false, json!(null))] {
        let r = json!({"settings": {}, "complete": complete, "users": [], "groups": group, "fencing": fencing});
        let refused = fx.session.report_import(&serde_json::from_value(r).unwrap()).await;
        assert!(
            matches!(refused, Err(tether_agent::AgentError::Server { status: 400, .. })),
            "complete {complete}: {refused:?}"
        );
    }
    // Relative to a report applied before the plan (a base tetherd no longer holds): refused
    // before anything is decided (held, its approval would apply it to another state).
    let stale = json!({"settings": {"userDissociationAction": "remove"}, "complete": false, "users": [],
                       "gone": [], "groups": [], "fencing": fencing, "base": first["seq"]});
    let refused = fx.session.report_import(&serde_json::from_value(stale).unwrap()).await;
    assert!(matches!(refused, Err(tether_agent::AgentError::Server { status: 412, .. })), "{refused:?}");
    assert!(fx.tether_user(&leaves).await.is_some(), "nothing applied");

    // The approved plan was applied after the agent's last report: its next report, relative
    // to that one, is refused, and the cycle reads everything. (Otherwise the member who left
    // by the plan and has come back since would be in no change: it was in the team both at
    // the agent's last report and now.)
    set_member(&mut fx.ldap, &team, &leaves_dn, true).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_eq!(st.read, ReadKind::Complete, "{st:?}");
    assert_eq!(fx.group_members(&team_name).await.len(), 4, "back: {st:?}");

    // A mirrored group deleted in Tether is not started again from who joined: skipped with
    // the reason, then mirrored with all its members by the next complete read.
    let g = fx.s.call("GET", &format!("/api/v2/usergroups?filter=name:eq:{team_name}"), None).await.body;
    let gid = g[0]["id"].as_str().unwrap();
    assert_eq!(fx.s.call("DELETE", &format!("/api/v2/usergroups/{gid}"), None).await.status, 204);
    set_member(&mut fx.ldap, &team, &leaves_dn, false).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_ne!(st.read, ReadKind::Complete);
    let out = st.outcome.map(tether_testkit::json_of).unwrap();
    let skipped = out["skipped"].as_array().unwrap();
    assert!(
        skipped.iter().any(|k| k["dn"] == team.as_str() && k["reason"].as_str().unwrap().contains("not mirrored")),
        "{out}"
    );
    let g = fx.s.call("GET", &format!("/api/v2/usergroups?filter=name:eq:{team_name}"), None).await.body;
    assert_eq!(g.as_array().map(Vec::len), Some(0), "not created from a change: {out}");
    fx.run().await;
    assert_eq!(fx.group_members(&team_name).await.len(), 3, "stays, renamed, joins");
}

/// The domain's fencing token in force.
async fn fencing_in_force(fx: &crate::import_samba::Fx) -> u64 {
    fx.session.heartbeat().await.unwrap().fencing
}

/// Agents A and B report in turn. B applies a member leaving; the member comes back before A,
/// primary again, reads. From A's own last report nothing changed (the member was in the
/// group then and is now), so only a complete read puts it back in Tether's group.
#[tokio::test]
async fn an_agent_primary_again_after_another_reported_reads_everything() {
    let mut fx = fixture("ADASAUTHORITY", json!({})).await;
    let adi = fx.adi.clone();
    let domain = fx.domain_id().await;
    let team_name = unique("team");
    let team = create_group(&mut fx.ldap, &dc().users_container(), &team_name).await.unwrap();
    set_member(&mut fx.ldap, &adi, &team, true).await.unwrap();
    let (x, x_dn) = fx.user("fx", Some("Xen"), &[&adi, &team]).await;
    assert_eq!(fx.run().await["created"], 1);
    let a_id = fx.s.call("GET", &format!("/api/v2/activedirectories/{domain}"), None).await.body["primaryImportAgent"]
        .as_str()
        .unwrap()
        .to_string();
    let b = fx.second_agent().await;
    let agent = |id: &str, what: &str| format!("/api/v2/activedirectories/{domain}/agents/{id}/{what}");

    fx.s.call("POST", &agent(&a_id, "pause"), None).await;
    assert!(b.session.heartbeat().await.unwrap().primary);
    let mut conn_b = connect(&b.cfg.ldap_target()).await.unwrap();
    cycle(&b.cfg, &mut conn_b, &b.session, true).await.unwrap().outcome.unwrap();
    set_member(&mut fx.ldap, &team, &x_dn, false).await.unwrap();
    let st = cycle(&b.cfg, &mut conn_b, &b.session, false).await.unwrap();
    assert_eq!(st.groups_as_changes, 1, "B's own last report is its base: {st:?}");
    assert_eq!(fx.group_members(&team_name).await, Vec::<String>::new());

    fx.s.call("POST", &agent(&a_id, "resume"), None).await;
    fx.s.call("POST", &agent(&b.id, "pause"), None).await;
    assert!(fx.session.heartbeat().await.unwrap().primary);
    set_member(&mut fx.ldap, &team, &x_dn, true).await.unwrap();
    let mut conn_a = connect(&fx.cfg.ldap_target()).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn_a, &fx.session, false).await.unwrap();
    assert_eq!(st.read, ReadKind::Complete, "another agent reported since A's last report");
    assert_eq!(fx.group_members(&team_name).await, vec![x.clone()]);
    // Its report applied under the token in force, A's next change goes as a change again.
    set_member(&mut fx.ldap, &team, &x_dn, false).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn_a, &fx.session, false).await.unwrap();
    assert_ne!(st.read, ReadKind::Complete);
    assert_eq!(st.groups_as_changes, 1, "{st:?}");
    assert_eq!(fx.group_members(&team_name).await, Vec::<String>::new());
}

/// A running agent keeps its groups' closure between cycles (`import::Memory`): group changes
/// among users already in scope, one per cycle, each reach Tether — a member joining, a sudo
/// grant (`AdminsGroup`) and a new Domain Admin, whose standing alone moved.
#[tokio::test]
async fn group_changes_among_users_in_scope_reach_tether_from_a_running_agent() {
    let mut fx = fixture("TWOWAYSYNC", json!({})).await;
    let users = dc().users_container();
    let admins = create_group(&mut fx.ldap, &users, &unique("kadm")).await.unwrap();
    fx.cfg.ldap.admins_group = Some(admins.clone());
    let team_name = unique("kept");
    let team = create_group(&mut fx.ldap, &users, &team_name).await.unwrap();
    let adi = fx.adi.clone();
    set_member(&mut fx.ldap, &adi, &team, true).await.unwrap();
    let (ann, ann_dn) = fx.user("kp", Some("Ann"), &[&adi]).await;
    let (bob, bob_dn) = fx.user("kp", Some("Bob"), &[&adi, &team]).await;
    let mut memory = Memory::default();
    let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
    let st = cycle_with(&fx.cfg, &mut conn, &fx.session, true, None, Some(&mut memory)).await.unwrap();
    assert_eq!(st.read, ReadKind::Complete);
    assert_eq!(fx.group_members(&team_name).await, vec![bob.clone()]);

    // Ann, in scope already, joins the team.
    set_member(&mut fx.ldap, &team, &ann_dn, true).await.unwrap();
    let st = cycle_with(&fx.cfg, &mut conn, &fx.session, false, None, Some(&mut memory)).await.unwrap();
    assert_ne!(st.read, ReadKind::Complete);
    assert_eq!(st.groups_as_changes, 1, "{st:?}");
    let mut both = vec![ann.clone(), bob.clone()];
    both.sort();
    assert_eq!(fx.group_members(&team_name).await, both);

    // Bob gets sudo, alone in a cycle: only his standing moved.
    set_member(&mut fx.ldap, &admins, &bob_dn, true).await.unwrap();
    let st = cycle_with(&fx.cfg, &mut conn, &fx.session, false, None, Some(&mut memory)).await.unwrap();
    assert_ne!(st.read, ReadKind::Complete);
    assert_eq!(fx.tether_user(&bob).await.unwrap()["sudo"], true, "{st:?}");
    assert_eq!(fx.tether_user(&ann).await.unwrap()["sudo"], false);

    // Ann becomes a Domain Admin: reported privileged, out of the team in Tether.
    let domain_admins = format!("CN=Domain Admins,{users}");
    set_member(&mut fx.ldap, &domain_admins, &ann_dn, true).await.unwrap();
    let st = cycle_with(&fx.cfg, &mut conn, &fx.session, false, None, Some(&mut memory)).await.unwrap();
    let out = st.outcome.map(tether_testkit::json_of).unwrap();
    assert!(out["skipped"].to_string().contains(&ann), "reported privileged: {out}");
    assert_eq!(fx.group_members(&team_name).await, vec![bob.clone()], "{out}");
    // No longer one: back in the team.
    set_member(&mut fx.ldap, &domain_admins, &ann_dn, false).await.unwrap();
    let st = cycle_with(&fx.cfg, &mut conn, &fx.session, false, None, Some(&mut memory)).await.unwrap();
    assert_eq!(fx.group_members(&team_name).await, both, "{st:?}");

    // Bob leaves the ADI group, and so the scope (he stays in the team, which stays in the
    // ADI group): removed from Tether (`UserDissociationAction` remove).
    set_member(&mut fx.ldap, &adi, &bob_dn, false).await.unwrap();
    let st = cycle_with(&fx.cfg, &mut conn, &fx.session, false, None, Some(&mut memory)).await.unwrap();
    assert!(fx.tether_user(&bob).await.is_some(), "still in scope through the team: {st:?}");
    set_member(&mut fx.ldap, &team, &bob_dn, false).await.unwrap();
    let st = cycle_with(&fx.cfg, &mut conn, &fx.session, false, None, Some(&mut memory)).await.unwrap();
    let out = st.outcome.map(tether_testkit::json_of).unwrap();
    assert_eq!(out["deleted"], 1, "{out}");
    assert!(fx.tether_user(&bob).await.is_none(), "{out}");
    assert_eq!(fx.group_members(&team_name).await, vec![ann.clone()]);
}

/// The membership check reads only the groups that count (the ADI group's closure, the
/// privileged groups, the admins group), not every group of the domain. A group outside the
/// scope then keeps, in the agent's copy, a member deleted since; when that group joins the
/// scope it is read again first, so a new user who took the deleted one's DN, and is in no
/// group, is not imported through it.
/// Deletes `dns` in AD, then runs a cycle: the deletions leave USNs no read explains, so it
/// runs the membership check. Answers the connection to go on with and the cycle's figures.
async fn delete_then_cycle(fx: &mut Fx, dns: &[&str]) -> (tether_ad::Ldap, CycleStats) {
    for dn in dns {
        fx.ldap.delete(dn).await.unwrap().success().unwrap();
    }
    let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_eq!(st.read, ReadKind::Exact, "{st:?}");
    (conn, st)
}

/// A new user (in no group) at `dn`, the DN of a user deleted before; answers its name.
async fn user_at(ldap: &mut tether_ad::Ldap, dn: &str, prefix: &str) -> String {
    let (cn, container) = dn.strip_prefix("CN=").and_then(|r| r.split_once(',')).unwrap();
    let name = unique(prefix);
    let mail = format!("{name}@corp.example.test");
    let new_user = tether_ad::NewUser {
        container,
        sam_account_name: &name,
        given_name: "New",
        sn: &name,
        mail: &mail,
        password: Some("Imp0rt-Test-Pw!"),
    };
    let made = tether_ad::create_user_as(ldap, &new_user, cn, &mail, true).await.unwrap();
    assert!(made.eq_ignore_ascii_case(dn), "{made} / {dn}");
    name
}

#[tokio::test]
async fn a_group_the_membership_check_left_unread_is_read_again_when_it_counts() {
    let mut fx = fixture("ADASAUTHORITY", json!({})).await;
    let users = dc().users_container();
    let adi = fx.adi.clone();
    let outside_name = unique("outside");
    let outside = create_group(&mut fx.ldap, &users, &outside_name).await.unwrap();
    let (stays, _) = fx.user("uc", Some("Sta"), &[&adi]).await;
    let (deleted, deleted_dn) = fx.user("uc", Some("Del"), &[&outside]).await;
    assert_eq!(fx.run().await["created"], 1);
    assert!(fx.tether_user(&deleted).await.is_none(), "outside the scope");

    // A deletion leaves a USN no read explains: the check reads the groups that count.
    let (mut conn, st) = delete_then_cycle(&mut fx, &[&deleted_dn]).await;
    let nc = tether_ad::read::root_dse(&mut fx.ldap).await.unwrap().default_naming_context;
    let all = tether_ad::read::read_groups(&mut fx.ldap, &nc).await.unwrap().len();
    assert!(st.entries_read > 0 && st.entries_read < all, "read {} of the domain's {all} groups", st.entries_read);

    // A new user under the deleted one's DN, in no group, while the outside group joins the
    // ADI group: the group comes in as AD has it now, with no member.
    let newcomer = user_at(&mut fx.ldap, &deleted_dn, "uc").await;
    set_member(&mut fx.ldap, &adi, &outside, true).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_ne!(st.read, ReadKind::Complete);
    assert!(fx.tether_user(&newcomer).await.is_none(), "not imported through a group it is not in: {st:?}");
    assert_eq!(fx.group_members(&outside_name).await, Vec::<String>::new());
    assert!(fx.tether_user(&stays).await.is_some());
}

/// The same, when the group comes to count by a change of configuration (`AdiGroup` now
/// naming it) and the next cycle changes no group: the facts computed from the saved state
/// count it, so it is read again before its members count.
#[tokio::test]
async fn a_group_left_unread_that_counts_under_a_new_configuration_is_read_again() {
    let mut fx = fixture("ADASAUTHORITY", json!({})).await;
    let users = dc().users_container();
    let adi = fx.adi.clone();
    let outside = create_group(&mut fx.ldap, &users, &unique("outside")).await.unwrap();
    // In both groups: still in scope when the configuration names the outside group.
    let (stays, _) = fx.user("uv", Some("Sta"), &[&adi, &outside]).await;
    let (deleted, deleted_dn) = fx.user("uv", Some("Del"), &[&outside]).await;
    assert_eq!(fx.run().await["created"], 1);
    assert!(fx.tether_user(&deleted).await.is_none(), "outside the scope");

    let (mut conn, _) = delete_then_cycle(&mut fx, &[&deleted_dn]).await;

    // A new user under the deleted one's DN, in no group; then the outside group becomes
    // the ADI group. The cycle reads the new user only: no group changed in AD.
    let newcomer = user_at(&mut fx.ldap, &deleted_dn, "uv").await;
    let mut cfg = fx.cfg.clone();
    cfg.ldap.adi_group = outside.clone();
    let st = cycle(&cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_ne!(st.read, ReadKind::Complete, "{st:?}");
    assert!(fx.tether_user(&newcomer).await.is_none(), "not imported through a group it is not in: {st:?}");
    assert!(fx.tether_user(&stays).await.is_some());
}

/// A deleted group outside the scope leaves no object to read: the membership check keeps
/// its copy (unchecked) and does not list the domain's groups. A new group made under its DN
/// and nested in the ADI group then comes in as AD has it, without the deleted one's members:
/// the old copy is read again before it counts, and found gone. (Six such groups: which of
/// two copies under one DN the closure would take, unread, is a matter of their objectGUIDs.)
#[tokio::test]
async fn new_groups_under_deleted_groups_dns_bring_only_their_own_members() {
    let mut fx = fixture("ADASAUTHORITY", json!({})).await;
    let users = dc().users_container();
    let adi = fx.adi.clone();
    let mut gone = Vec::new();
    for _ in 0..6 {
        let name = unique("gone");
        let dn = create_group(&mut fx.ldap, &users, &name).await.unwrap();
        let (member, _) = fx.user("gd", Some("Mem"), &[&dn]).await;
        gone.push((name, dn, member));
    }
    let (stays, _) = fx.user("gd", Some("Sta"), &[&adi]).await;
    assert_eq!(fx.run().await["created"], 1);

    let dns: Vec<&str> = gone.iter().map(|(_, dn, _)| dn.as_str()).collect();
    let (mut conn, _) = delete_then_cycle(&mut fx, &dns).await;

    for (name, dn, _) in &gone {
        let again = create_group(&mut fx.ldap, &users, name).await.unwrap();
        assert!(again.eq_ignore_ascii_case(dn));
        set_member(&mut fx.ldap, &adi, &again, true).await.unwrap();
    }
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_ne!(st.read, ReadKind::Complete, "{st:?}");
    for (name, _, member) in &gone {
        assert!(fx.tether_user(member).await.is_none(), "{member}, of the deleted {name} only: {st:?}");
        assert_eq!(fx.group_members(name).await, Vec::<String>::new(), "{name}");
    }
    assert!(fx.tether_user(&stays).await.is_some());
}

/// Renaming an OU moves the DNs of the groups under it without moving their USNs. The
/// membership check reads the members of the groups that count only, but brings every
/// group's DN up to date: a group outside the scope, under the renamed OU, nested in the ADI
/// group afterwards brings its members in.
#[tokio::test]
async fn a_group_under_a_renamed_ou_brings_its_members_when_it_joins_the_scope() {
    let mut fx = fixture("ADASAUTHORITY", json!({})).await;
    let adi = fx.adi.clone();
    let ou_name = unique("ou");
    let ou = format!("OU={ou_name},{}", dc().base_dn);
    let oc: std::collections::HashSet<&str> = ["top", "organizationalUnit"].into();
    fx.ldap.add(&ou, vec![("objectClass", oc)]).await.unwrap().success().unwrap();
    let team_name = unique("outeam");
    create_group(&mut fx.ldap, &ou, &team_name).await.unwrap();
    let (member, _) = fx.user("ou", Some("Mem"), &[&format!("CN={team_name},{ou}")]).await;
    fx.user("ou", Some("Sta"), &[&adi]).await;
    assert_eq!(fx.run().await["created"], 1);

    // The OU renamed: its own USN moves, no user's or group's, so the check runs.
    fx.ldap.modifydn(&ou, &format!("OU={ou_name}x"), true, None).await.unwrap().success().unwrap();
    let mut conn = connect(&fx.cfg.ldap_target()).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_ne!(st.read, ReadKind::Complete, "{st:?}");

    let team = format!("CN={team_name},OU={ou_name}x,{}", dc().base_dn);
    set_member(&mut fx.ldap, &adi, &team, true).await.unwrap();
    let st = cycle(&fx.cfg, &mut conn, &fx.session, false).await.unwrap();
    assert_ne!(st.read, ReadKind::Complete, "{st:?}");
    assert!(fx.tether_user(&member).await.is_some(), "imported through the moved group: {st:?}");
    assert_eq!(fx.group_members(&team_name).await, vec![member]);
}
