//! The `adi` benchmark's step for an import agent told of deletions (`TombstonesReadable`):
//! kept apart from `adi.rs`, which times the default configuration.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tether_ad::connect;
use tether_testkit::{Dc, TestServer};

use crate::adi::{import_config_json, seeded_user};
use crate::adi_agent::Agent;
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
    let agent = Agent::settled(cfg_path, v, port, "tether_agent_notification_search_open").await?;
    let idle = agent.idle(&[]).await;
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
    let notified = agent.metric("tether_agent_notifications_total").await;
    Ok(
        json!({"idle": idle, "deletions": dist(lat), "deletions_after_ad_answered": dist(after), "notifications": notified}),
    )
}
