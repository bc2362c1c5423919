//! The `adi` benchmark's steps for new hires and offboarding. New hires: users created in
//! Tether and added, one API call each, to a group already associated with the domain (the
//! day-to-day way accounts reach AD through a group, where bulk provisioning associates a
//! group that is already full); each addition binds the user, so the feed alternates the
//! user's entry and the group's. Offboarding: that group taken off the domain again.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tether_ad::ldap3::{Scope, SearchEntry};
use tether_ad::Ldap;
use tether_testkit::{Dc, TestServer};

use crate::adi::group_members as members;

/// `hires` users created in Tether and each added to `group` (named `cn` in AD, associated
/// with `domain`), one call after the other, timed until AD has every one of them in the
/// group; against the physical limit measured first in the same run: as many LDAP adds,
/// each followed by the single-value modify that puts the user in an AD group.
pub(crate) async fn new_hires(
    s: &TestServer,
    admin: &mut Ldap,
    d: &Dc,
    group: &str,
    cn: &str,
    hires: usize,
) -> Result<Value> {
    let raw_group = tether_ad::create_group(admin, &d.users_container(), "benchrawhires").await?;
    let t = Instant::now();
    for i in 0..hires {
        let dn = crate::adi::raw_add(admin, d, &format!("rawh{i:03}")).await?;
        tether_ad::set_member(admin, &raw_group, &dn, true).await?;
    }
    let raw_s = t.elapsed().as_secs_f64();
    let before = members(admin, &d.users_container(), cn).await?.len();
    let t = Instant::now();
    for i in 0..hires {
        let name = format!("th{i:03}");
        let u = s
            .call(
                "POST",
                "/api/systemusers",
                Some(json!({"username": name, "email": format!("{name}@bench.test"), "firstname": "Th", "lastname": name})),
            )
            .await;
        let id = u.body["id"].as_str().context("a new hire")?;
        let path = format!("/api/v2/usergroups/{group}/members");
        let r = s.call("POST", &path, Some(json!({"op": "add", "type": "user", "id": id}))).await;
        if r.status != 204 {
            bail!("adding a new hire to the group: {} {:?}", r.status, r.body);
        }
    }
    let api_s = t.elapsed().as_secs_f64();
    // AD asked every 100 ms, and only once the API calls are done (each search costs the DC
    // a few ms; the raw step had no such check).
    while members(admin, &d.users_container(), cn).await?.len() < before + hires {
        if t.elapsed() > Duration::from_secs(600) {
            bail!("the new hires did not all reach the AD group");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tether_s = t.elapsed().as_secs_f64();
    let r1 = |x: f64| (x * 10.0).round() / 10.0;
    Ok(json!({"users": hires, "raw_s": r1(raw_s), "tether_s": r1(tether_s), "api_s": r1(api_s),
        "ratio": (raw_s / tether_s * 100.0).round() / 100.0}))
}

/// Offboarding: `group` (named `cn` in AD), whose members are bound to the domain through it
/// alone, is taken off the domain, so each member is disconnected: by default its AD account
/// is disabled and its memberships in managed groups removed. Each member is also in an AD
/// group the agent does not manage (as accounts are in the ADI group or AD's own groups).
/// Timed until the AD group has no member left, against the physical limit measured first in
/// the same run: for each of the raw step's users (in `raw_cn`), the modify that disables it
/// and the one that takes it out of its group. Compared per user.
pub(crate) async fn offboarding(
    s: &TestServer,
    admin: &mut Ldap,
    d: &Dc,
    domain: &str,
    group: &str,
    cn: &str,
    raw_cn: &str,
) -> Result<Value> {
    let base = d.users_container();
    let leaving = members(admin, &base, cn).await?;
    let outside = tether_ad::create_group(admin, &base, "benchoutside").await?;
    for dn in &leaving {
        tether_ad::set_member(admin, &outside, dn, true).await?;
    }
    let raw = members(admin, &base, raw_cn).await?;
    let (e, _) = admin.search(&base, Scope::Subtree, &format!("(cn={raw_cn})"), vec!["1.1"]).await?.success()?;
    let raw_group = e.into_iter().next().map(|e| SearchEntry::construct(e).dn).context("the raw group")?;
    let t = Instant::now();
    for dn in &raw {
        tether_ad::replace_attrs(admin, dn, &[("userAccountControl", "514")]).await?;
        tether_ad::set_member(admin, &raw_group, dn, false).await?;
    }
    let raw_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let path = format!("/api/v2/activedirectories/{domain}/associations");
    let r = s.call("POST", &path, Some(json!({"op": "remove", "type": "user_group", "id": group}))).await;
    if r.status != 204 {
        bail!("taking the group off the domain: {} {:?}", r.status, r.body);
    }
    while !members(admin, &base, cn).await?.is_empty() {
        if t.elapsed() > Duration::from_secs(600) {
            bail!("the offboarded users did not all leave the AD group");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tether_s = t.elapsed().as_secs_f64();
    let per_user = |secs: f64, n: usize| secs / n.max(1) as f64 * 1000.0;
    let (raw_ms, tether_ms) = (per_user(raw_s, raw.len()), per_user(tether_s, leaving.len()));
    let r1 = |x: f64| (x * 10.0).round() / 10.0;
    Ok(json!({"users": leaving.len(), "raw_users": raw.len(), "raw_ms_per_user": r1(raw_ms),
        "tether_ms_per_user": r1(tether_ms), "tether_s": r1(tether_s), "ratio": (raw_ms / tether_ms * 100.0).round() / 100.0}))
}
