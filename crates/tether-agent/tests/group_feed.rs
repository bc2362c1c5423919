//! Group entries at scale, against the real Samba DC: a batch of entries reads the groups
//! under the sync group once, and again only after the agent changed the nesting itself.

use serde_json::json;
use tether_ad::{connect, create_user, NewUser};
use tether_agent::sync_groups::apply_group;
use tether_agent::sync_tree::Managed;
use tether_core::wire::{GroupBody, GroupMember};
use tether_testkit::{dc, unique};

use crate::sync_samba::{direct_members, fixture};

fn member(sam: &str) -> GroupMember {
    GroupMember { user_id: format!("id-{sam}"), username: sam.to_string(), guid: None, groups: Some(vec![]) }
}

fn body(name: &str, members: &[&str]) -> GroupBody {
    GroupBody {
        group_id: format!("id-{name}"),
        name: name.to_string(),
        members: Some(members.iter().map(|m| member(m)).collect()),
        ..GroupBody::default()
    }
}

/// Entries for a group under the sync group, then a group the agent creates and nests, then
/// more of both (in `minimal`, so each entry also asks which managed groups are below and
/// above its group; `groups_minimal_and_match_on_three_levels` in sync_samba.rs checks what
/// that decides): the tree is read for the first entry, read again after the creation (the
/// agent nested a group), and not for the others; every member is written and no entry fails
/// (a tree kept past the creation would not show the new group nested and the agent would nest
/// it again, which AD refuses).
#[tokio::test]
async fn a_batch_reads_the_sync_groups_tree_once_and_again_after_nesting_a_group() {
    let mut fx = fixture(json!({"group_membership_sync_type": "minimal"})).await;
    let mut ldap = connect(&dc().admin_target()).await.unwrap();
    let d = tether_agent::sync::domain(&mut ldap, &fx.cfg).await.unwrap();
    let sams: Vec<String> = (0..3).map(|_| unique("tr")).collect();
    for sam in &sams {
        let mail = format!("{sam}@corp.example.test");
        let nu = NewUser {
            container: &fx.ou,
            sam_account_name: sam,
            given_name: sam,
            sn: "Read",
            mail: &mail,
            password: Some("Tr33-Passw0rd!"),
        };
        create_user(&mut ldap, &nu).await.unwrap();
    }
    let (a, b, c) = (sams[0].as_str(), sams[1].as_str(), sams[2].as_str());
    let existing = fx.managed.split(',').next().unwrap().trim_start_matches("CN=").to_string();
    let created = unique("tg");
    let mut managed = Managed::default();
    let mut existing_guid = None;
    let entries = [
        (body(&existing, &[a]), 1),
        (body(&created, &[a]), 2),
        (body(&created, &[a, b]), 2),
        (body(&existing, &[a, b]), 2),
        (body(&created, &[a, b, c]), 2),
    ];
    for (i, (entry, reads)) in entries.iter().enumerate() {
        let o = apply_group(&fx.cfg, &mut ldap, &d.nc, &mut managed, entry, d.forced_match).await.unwrap();
        assert_eq!(o.error, None, "entry {i} ({})", entry.name);
        assert_eq!(managed.reads(), *reads, "reads of the tree after entry {i} ({})", entry.name);
        if entry.name == existing {
            existing_guid = o.guid;
        }
    }
    // An AD admin renames the existing group during the batch: the tree read before knows it by
    // its old DN. The agent reads the tree again rather than nest the group a second time (AD
    // refuses that, and the entry's members would not be written).
    let renamed = unique("tn");
    let r = ldap.modifydn(&fx.managed, &format!("CN={renamed}"), true, None).await.unwrap();
    assert_eq!(r.rc, 0, "{r:?}");
    let moved = GroupBody { guid: existing_guid, ..body(&renamed, &[a, b, c]) };
    let o = apply_group(&fx.cfg, &mut ldap, &d.nc, &mut managed, &moved, d.forced_match).await.unwrap();
    assert_eq!(o.error, None, "the renamed group");
    assert_eq!(managed.reads(), 3, "read again once, for the group it did not find");
    let ou = fx.ou.clone();
    let dn_of = |sam: &str| format!("cn={sam} read,{ou}").to_lowercase();
    let dns = |v: &[&str]| v.iter().map(|s| dn_of(s)).collect::<Vec<_>>();
    let mut want = dns(&[a, b, c]);
    want.sort();
    assert_eq!(direct_members(&mut fx, &created).await, want, "every member of the created group");
    assert_eq!(direct_members(&mut fx, &existing).await, want, "every member of the renamed group");
    let sync_group = fx.cfg.sync_group.split(',').next().unwrap().trim_start_matches("CN=").to_string();
    let nested = direct_members(&mut fx, &sync_group).await;
    assert!(nested.contains(&format!("cn={created},{}", fx.ou).to_lowercase()), "nested: {nested:?}");
}

/// A disconnected user's groups outside the sync group's tree (AD's own groups, the ADI
/// group) are asked about once a batch: the tree is read once for several such users, again
/// for a managed group an admin renamed since (its new DN was never seen), and again after the
/// agent changed the nesting itself.
#[tokio::test]
async fn groups_found_outside_the_tree_are_asked_about_once_a_batch() {
    let fx = fixture(json!({})).await;
    let mut ldap = connect(&dc().admin_target()).await.unwrap();
    let outside = tether_ad::create_group(&mut ldap, &fx.ou, &unique("out")).await.unwrap();
    let sync = fx.cfg.sync_group.clone();
    let mut managed = Managed::default();
    let both = [fx.managed.clone(), outside.clone()];
    for i in 0..3 {
        let got = managed.among(&mut ldap, &sync, &both).await.unwrap();
        assert_eq!(got, std::slice::from_ref(&fx.managed), "call {i}");
        assert_eq!(managed.reads(), 1, "the tree read once, by call 0 (call {i})");
    }
    let shouted = [outside.to_uppercase()];
    assert!(managed.among(&mut ldap, &sync, &shouted).await.unwrap().is_empty());
    assert_eq!(managed.reads(), 1, "DNs compare case-insensitively");
    let renamed = unique("tn");
    let r = ldap.modifydn(&fx.managed, &format!("CN={renamed}"), true, None).await.unwrap();
    assert_eq!(r.rc, 0, "{r:?}");
    let new_dn = format!("CN={renamed},{}", tether_core::ldap::parent_dn(&fx.managed));
    let after = [new_dn.clone(), outside.clone()];
    assert_eq!(managed.among(&mut ldap, &sync, &after).await.unwrap(), std::slice::from_ref(&new_dn));
    assert_eq!(managed.reads(), 2, "read again for the DN never seen");
    managed.forget();
    assert!(managed.among(&mut ldap, &sync, &[outside]).await.unwrap().is_empty());
    assert_eq!(managed.reads(), 3, "asked again once the agent changed the nesting");
}
