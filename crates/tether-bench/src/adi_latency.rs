//! The `adi` benchmark's AD → Tether latency: changes written in AD one at a time (attribute
//! edits, disables and enables, membership changes, deletions, in turn), each timed until
//! Tether shows it, with the import agent the caller started running. Shared by the steps of
//! the default agent and of the agent installed on the DC (`adi_on_dc.rs`).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::Value;
use tether_testkit::{Dc, TestServer};

use crate::adi::seeded_user;
use crate::stats::{by_kind, dist};

/// Whether an AD change has arrived, given the user and its groups as the API shows them.
type Arrived = Box<dyn Fn(&Value, &Value) -> bool>;

/// `changes` changes to the seeded users from number `first` on (wrapping past `n`), written
/// by `admin`; membership changes add to or remove from `team` (Tether's `team_id`). Returns
/// the figures and the latencies.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn ad_to_tether(
    s: &TestServer,
    d: &Dc,
    admin: &mut tether_ad::Ldap,
    team: &str,
    team_id: &str,
    first: usize,
    changes: usize,
    n: usize,
) -> Result<(Value, Vec<Duration>)> {
    let (mut lat, mut kinds, mut writes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut after_write, mut after_write_kinds) = (Vec::new(), Vec::new());
    for i in 0..changes {
        let (u, dn, id) = seeded_user(s, d, (first - 1 + i) % n.max(1) + 1).await?;
        // Changes arrive at random moments relative to the agent's tick, as an admin's do
        // (without this pause each change would follow the last cycle in lockstep).
        tokio::time::sleep(Duration::from_millis((i as u64 * 7919) % 500)).await;
        // A membership change adds or removes as Tether holds it now, asked before the clock
        // starts (the timed write is AD's alone).
        let add = i % 4 == 2 && {
            let member_of = s.call("GET", &format!("/api/v2/users/{id}/memberof"), None).await.body;
            !member_of.as_array().is_some_and(|a| a.iter().any(|g| g["id"] == team_id))
        };
        let t = Instant::now();
        let kind = ["attribute", "disable/enable", "membership", "deletion"][i % 4];
        let arrived: Arrived = match i % 4 {
            0 => {
                let value = format!("title-{i}");
                tether_ad::replace_attrs(admin, &dn, &[("title", &value)]).await?;
                Box::new(move |u, _| u["jobTitle"] == value.as_str())
            }
            1 => {
                let disable = u["state"] == "ACTIVATED";
                tether_ad::replace_attrs(admin, &dn, &[("userAccountControl", if disable { "514" } else { "512" })])
                    .await?;
                Box::new(move |u, _| u["suspended"] == disable)
            }
            3 => {
                // A deletion moves no group's USN: the import agent's membership check sees it.
                admin.delete(&dn).await?.success()?;
                Box::new(|u, _| u.get("id").is_none())
            }
            _ => {
                tether_ad::set_member(admin, team, &dn, add).await?;
                let team_id = team_id.to_string();
                Box::new(move |_, m| m.as_array().is_some_and(|a| a.iter().any(|g| g["id"] == team_id)) == add)
            }
        };
        // How long AD itself took to make the change (the latency below includes it).
        writes.push((kind, t.elapsed()));
        loop {
            let u = s.call("GET", &format!("/api/systemusers/{id}"), None).await.body;
            let m = if i % 4 == 2 {
                s.call("GET", &format!("/api/v2/users/{id}/memberof"), None).await.body
            } else {
                Value::Null
            };
            if arrived(&u, &m) {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("an AD change (kind {}) did not arrive within 30 s", i % 4);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let arrived_after = t.elapsed();
        lat.push(arrived_after);
        kinds.push((kind, arrived_after));
        // Tether's own share: from AD's answer to the write (the change committed and
        // visible to AD's own readers) to the change visible in Tether.
        let written = writes.last().map(|(_, w)| *w).unwrap_or_default();
        after_write.push(arrived_after.saturating_sub(written));
        after_write_kinds.push((kind, arrived_after.saturating_sub(written)));
    }
    let mut out = dist(lat.clone());
    out["by_kind"] = by_kind(&kinds);
    out["ad_write_by_kind"] = by_kind(&writes);
    out["after_ad_answered"] = dist(after_write);
    out["after_ad_answered_by_kind"] = by_kind(&after_write_kinds);
    Ok((out, lat))
}
