//! The `adi` benchmark's step for new hires: users created in Tether and added, one API call
//! each, to a group already associated with the domain (the day-to-day way accounts reach
//! AD through a group, where bulk provisioning associates a group that is already full).
//! Each addition binds the user, so the feed alternates the user's entry and the group's.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tether_ad::ldap3::{Scope, SearchEntry};
use tether_ad::Ldap;
use tether_testkit::{Dc, TestServer};

/// The direct members of the AD group named `cn`.
async fn members(admin: &mut Ldap, base: &str, cn: &str) -> Result<HashSet<String>> {
    let (e, _) = admin.search(base, Scope::Subtree, &format!("(cn={cn})"), vec!["member"]).await?.success()?;
    let attrs = e.into_iter().next().map(|e| SearchEntry::construct(e).attrs).unwrap_or_default();
    Ok(attrs.get("member").cloned().unwrap_or_default().into_iter().map(|m| m.to_lowercase()).collect())
}

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
