//! A membership change of a group already in AD goes as the change alone: tetherd sends who
//! joined and who left (`delta`), and the sync agent writes them without reading the group's
//! members (a group of 5,000 cost every change ~190 ms, docs/performance.md). The group goes
//! whole again after an error on it (at once when the agent cannot apply the change alone
//! as such), and ten minutes after it last went whole, which puts right what an admin
//! changed in AD by hand. Against the real Samba DC, through tetherd.

use serde_json::json;
use tether_ad::set_member;
use tether_core::wire::{FeedEntry, FeedItem, GroupBody, GroupMember};
use tether_testkit::unique;

use crate::sync_samba::{direct_members, fixture, tether_group, Fx};

/// The group entries among those delivered, in order.
fn group_bodies(seen: &[FeedItem]) -> Vec<GroupBody> {
    seen.iter()
        .filter_map(|i| match i {
            FeedItem::Known(e) => match e.as_ref() {
                FeedEntry::Group { body, .. } => Some(body.clone()),
                _ => None,
            },
            FeedItem::Unknown { .. } => None,
        })
        .collect()
}

/// The only group entry delivered.
async fn one_entry(fx: &mut Fx) -> GroupBody {
    let seen = group_bodies(&fx.drain_seen().await);
    assert_eq!(seen.len(), 1, "one group entry: {seen:#?}");
    seen.into_iter().next().unwrap()
}

fn usernames(v: &Option<Vec<GroupMember>>) -> Vec<String> {
    let mut out: Vec<String> = v.iter().flatten().map(|m| m.username.clone()).collect();
    out.sort();
    out
}

fn sorted(v: &[&String]) -> Vec<String> {
    let mut out: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    out.sort();
    out
}

async fn member(fx: &Fx, group: &str, user: &str, add: bool) {
    let op = if add { "add" } else { "remove" };
    let path = format!("/api/v2/usergroups/{group}/members");
    let r = fx.s.call("POST", &path, Some(json!({"op": op, "type": "user", "id": user}))).await;
    assert_eq!(r.status, 204, "{op} {user}: {:?}", r.body);
}

/// Users bound to the domain directly (so a membership change writes only the group's
/// entry), with their AD accounts' DNs.
async fn users(fx: &mut Fx, n: usize, prefix: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let sams: Vec<String> = (0..n).map(|_| unique(prefix)).collect();
    let mut ids = Vec::new();
    for sam in &sams {
        let id = fx.tether_user(sam, json!({})).await;
        fx.bind_user(&id, true).await;
        ids.push(id);
    }
    fx.drain().await;
    let mut dns = Vec::new();
    for sam in &sams {
        dns.push(fx.ad_user(sam).await.expect("created in AD").dn.to_lowercase());
    }
    (sams, ids, dns)
}

/// A group in AD with a member an admin took out by hand: a joiner and a leaver go as the
/// changes alone (the member taken out stays out); a joiner whose account is gone from AD
/// brings the group whole at once (the member taken out is put back); then the changes alone
/// again, and the group whole ten minutes on.
#[tokio::test]
async fn a_membership_change_goes_alone_and_the_group_whole_when_it_must_or_ten_minutes_on() {
    let mut fx = fixture(json!({"group_membership_sync_type": "match"})).await;
    let (sams, ids, udn) = users(&mut fx, 4, "dl").await;
    let name = unique("dg");
    let g = tether_group(&fx, &name, &[&ids[0], &ids[1]]).await;
    let first = group_bodies(&fx.drain_seen().await);
    assert!(!first.is_empty() && first.iter().all(|b| !b.delta), "a group new to AD goes whole: {first:#?}");
    assert_eq!(direct_members(&mut fx, &name).await, sorted(&[&udn[0], &udn[1]]));
    let gdn = format!("CN={name},{}", fx.ou);
    // An AD admin takes the second member out by hand.
    set_member(&mut fx.ldap, &gdn, &udn[1], false).await.unwrap();

    // A joiner: the change alone. AD gets it; the member taken out by hand stays out.
    member(&fx, &g, &ids[2], true).await;
    let b = one_entry(&mut fx).await;
    assert!(b.delta, "{b:#?}");
    assert_eq!((usernames(&b.members), usernames(&b.removed)), (vec![sams[2].clone()], vec![]));
    assert_eq!(b.members.as_ref().unwrap()[0].groups, Some(vec![name.clone()]), "its groups in the domain");
    assert_eq!(direct_members(&mut fx, &name).await, sorted(&[&udn[0], &udn[2]]));

    // A leaver: the change alone.
    member(&fx, &g, &ids[0], false).await;
    let b = one_entry(&mut fx).await;
    assert!(b.delta, "{b:#?}");
    assert_eq!((usernames(&b.members), usernames(&b.removed)), (vec![], vec![sams[0].clone()]));
    assert_eq!(direct_members(&mut fx, &name).await, sorted(&[&udn[2]]));

    // A joiner whose account an AD admin deleted (tetherd does not know yet): the agent
    // cannot apply the change alone as such and asks for the group whole, which comes at
    // once: every member, the one taken out by hand put back (the joiner without an
    // account skipped, as a whole entry always has).
    let r = fx.ldap.delete(&udn[3]).await.unwrap();
    assert_eq!(r.rc, 0, "{r:?}");
    member(&fx, &g, &ids[3], true).await;
    let seen = group_bodies(&fx.drain_seen().await);
    let shape: Vec<(bool, Vec<String>)> = seen.iter().map(|b| (b.delta, usernames(&b.members))).collect();
    let every = sorted(&[&sams[1], &sams[2], &sams[3]]);
    assert_eq!(shape, [(true, vec![sams[3].clone()]), (false, every)], "{seen:#?}");
    assert_eq!(direct_members(&mut fx, &name).await, sorted(&[&udn[1], &udn[2]]));
    let got = fx.s.call("GET", &format!("/api/v2/usergroups/{g}"), None).await.body;
    assert!(got["adSyncError"].is_null(), "written whole without error: {got}");

    // Then the changes alone again, until ten minutes after the group last went whole.
    set_member(&mut fx.ldap, &gdn, &udn[1], false).await.unwrap();
    member(&fx, &g, &ids[2], false).await;
    let b = one_entry(&mut fx).await;
    assert!(b.delta, "{b:#?}");
    assert_eq!(direct_members(&mut fx, &name).await, Vec::<String>::new());
    fx.s.advance(time::Duration::minutes(11));
    member(&fx, &g, &ids[2], true).await;
    let b = one_entry(&mut fx).await;
    assert!(!b.delta, "ten minutes on, whole: {b:#?}");
    assert_eq!(direct_members(&mut fx, &name).await, sorted(&[&udn[1], &udn[2]]));
}

/// An AD group an admin deleted by hand: the change alone that follows is not applied
/// (created with its joiners alone, the group would lack its other members); the agent asks
/// for the group whole, which comes at once and creates it again with every member.
#[tokio::test]
async fn a_group_deleted_in_ad_comes_back_whole() {
    let mut fx = fixture(json!({"group_membership_sync_type": "match"})).await;
    let (sams, ids, udn) = users(&mut fx, 3, "dx").await;
    let name = unique("dd");
    let g = tether_group(&fx, &name, &[&ids[0], &ids[1]]).await;
    fx.drain().await;
    let gdn = format!("CN={name},{}", fx.ou);
    let r = fx.ldap.delete(&gdn).await.unwrap();
    assert_eq!(r.rc, 0, "{r:?}");
    member(&fx, &g, &ids[2], true).await;
    let seen = group_bodies(&fx.drain_seen().await);
    let shape: Vec<(bool, Vec<String>)> = seen.iter().map(|b| (b.delta, usernames(&b.members))).collect();
    let every = sorted(&[&sams[0], &sams[1], &sams[2]]);
    assert_eq!(shape, [(true, vec![sams[2].clone()]), (false, every)], "{seen:#?}");
    assert_eq!(direct_members(&mut fx, &name).await, sorted(&[&udn[0], &udn[1], &udn[2]]));
    let got = fx.s.call("GET", &format!("/api/v2/usergroups/{g}"), None).await.body;
    assert!(got["adSyncError"].is_null(), "{got}");
}

/// Under `minimal` the change alone decides as a whole entry does (each joiner's groups come
/// with it, its AD memberships are read from its account): a joiner of a group nested in
/// another loses its direct membership of the one above, a joiner of the group above who is
/// in the nested one already is not made a direct member of it, and a leaver of the nested
/// one still in the one above becomes a direct member of it again.
#[tokio::test]
async fn under_minimal_the_change_alone_keeps_joiners_in_the_deepest_group() {
    let mut fx = fixture(json!({"group_membership_sync_type": "minimal"})).await;
    let (parent, child) = (unique("dp"), unique("dc"));
    let p = tether_group(&fx, &parent, &[]).await;
    let c = tether_group(&fx, &child, &[]).await;
    fx.drain().await;
    let (pdn, cdn) = (format!("CN={parent},{}", fx.ou), format!("CN={child},{}", fx.ou));
    // The AD admin nests the child in the parent.
    set_member(&mut fx.ldap, &pdn, &cdn, true).await.unwrap();
    let (_, ids, udn) = users(&mut fx, 2, "dm").await;
    let cdn_lower = cdn.to_lowercase();

    // x joins the parent only: a direct member of it.
    member(&fx, &p, &ids[0], true).await;
    assert!(one_entry(&mut fx).await.delta);
    assert_eq!(direct_members(&mut fx, &parent).await, sorted(&[&cdn_lower, &udn[0]]));
    // x joins the child too: in the child, and no longer directly in the parent.
    member(&fx, &c, &ids[0], true).await;
    assert!(one_entry(&mut fx).await.delta);
    assert_eq!(direct_members(&mut fx, &child).await, sorted(&[&udn[0]]));
    assert_eq!(direct_members(&mut fx, &parent).await, sorted(&[&cdn_lower]));
    // y joins the child, then the parent: never a direct member of the parent.
    member(&fx, &c, &ids[1], true).await;
    assert!(one_entry(&mut fx).await.delta);
    member(&fx, &p, &ids[1], true).await;
    let b = one_entry(&mut fx).await;
    assert!(b.delta, "{b:#?}");
    let mut groups = b.members.as_ref().unwrap()[0].groups.clone().unwrap();
    groups.sort();
    assert_eq!(groups, sorted(&[&parent, &child]), "its groups in the domain");
    assert_eq!(direct_members(&mut fx, &child).await, sorted(&[&udn[0], &udn[1]]));
    assert_eq!(direct_members(&mut fx, &parent).await, sorted(&[&cdn_lower]));
    // x leaves the child, still in the parent: a direct member of the parent again.
    member(&fx, &c, &ids[0], false).await;
    let b = one_entry(&mut fx).await;
    assert!(b.delta, "{b:#?}");
    assert_eq!(b.removed.as_ref().unwrap()[0].groups, Some(vec![parent.clone()]), "the groups it is still in");
    assert_eq!(direct_members(&mut fx, &child).await, sorted(&[&udn[1]]));
    assert_eq!(direct_members(&mut fx, &parent).await, sorted(&[&cdn_lower, &udn[0]]));
}
