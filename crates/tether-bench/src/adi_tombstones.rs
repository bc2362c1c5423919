//! The `adi` benchmark's step for an import agent told of deletions (`TombstonesReadable`):
//! kept apart from `adi.rs`, which times the default configuration.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tether_ad::connect;
use tether_testkit::{Dc, TestServer};

use crate::adi::{dc_cpu_ms_per_s, import_config_json, seeded_user};
use crate::parts::Part;
use crate::sandbox::sandbox;
use crate::stats::dist;

/// Users deleted in the `TombstonesReadable` step.
const QUIET_DELETIONS: usize = 8;

/// The import agent told of every change, deletions included (`TombstonesReadable`: the
/// import account granted the reading of `CN=Deleted Objects`, notifications held): over
/// 10 s idle, the cycles it ran (each sends AD at least one search; the default agent runs
/// 100) and the entries it read, and the DC's CPU; then a few seeded users from number
/// `first` on deleted one by one, each timed from the write sent until it is gone from
/// Tether (on Samba a write handled by another LDAP process is notified at its 5-second
/// retry; the safety-net check is 90 s away).
pub(crate) async fn told_of_deletions(
    s: &TestServer,
    d: &Dc,
    key: &str,
    cfg_path: &Path,
    first: usize,
    n: usize,
) -> Result<Value> {
    sandbox(&["grant-tombstones"], &d.dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let state = cfg_path.parent().context("state dir")?;
    let v = tether_testkit::with_keys(
        import_config_json(s, d, key, state, "member_server"),
        // Said, since `auto` keeps the rootDSE check on Samba.
        json!({"MetricsListen": format!("127.0.0.1:{port}"), "ChangeNotifications": "on", "TombstonesReadable": true}),
    );
    std::fs::write(cfg_path, v.to_string())?;
    let _agent = Part::spawn(&["agent", "--kind", "import", "--config", &cfg_path.to_string_lossy()])?;
    let base = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(60) {
            bail!("the agent's metrics never answered");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metric = async |series: &str| tether_testkit::metric_at(&base, series).await.unwrap_or(0.0);
    // Its first (complete) cycle, and the one the search's opening woke.
    while metric("tether_agent_notification_search_open").await < 1.0
        || metric("tether_agent_cycles_woken_total").await < 1.0
    {
        if t.elapsed() > Duration::from_secs(300) {
            bail!("the agent with TombstonesReadable never settled");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cycles, entries) =
        (metric("tether_agent_cycle_seconds_count").await, metric("tether_agent_entries_read_total").await);
    let cpu = dc_cpu_ms_per_s(Duration::from_secs(10)).await;
    let idle = json!({"seconds": 10, "cycles": metric("tether_agent_cycle_seconds_count").await - cycles,
        "entries_read": metric("tether_agent_entries_read_total").await - entries, "dc_cpu_ms_per_s": cpu});
    let mut admin = connect(&d.admin_target()).await?;
    let (mut lat, mut after) = (Vec::new(), Vec::new());
    for j in (0..QUIET_DELETIONS).filter(|j| first + j * 7 <= n) {
        let (_, dn, id) = seeded_user(s, d, first + j * 7).await?;
        tokio::time::sleep(Duration::from_millis((j as u64 * 7919) % 500)).await;
        let t = Instant::now();
        admin.delete(&dn).await?.success()?;
        let written = t.elapsed();
        while s.call("GET", &format!("/api/systemusers/{id}"), None).await.body.get("id").is_some() {
            if t.elapsed() > Duration::from_secs(120) {
                bail!("a deletion did not arrive within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        lat.push(t.elapsed());
        after.push(t.elapsed().saturating_sub(written));
    }
    let notified = metric("tether_agent_notifications_total").await;
    Ok(
        json!({"idle": idle, "deletions": dist(lat), "deletions_after_ad_answered": dist(after), "notifications": notified}),
    )
}
