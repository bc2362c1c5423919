//! The `adi` benchmark's step for the import agent installed on the Samba DC it reads
//! (`"InstalledOn": "dc"` with `SambaSmbConf`, the deployment the seeds describe), whose main
//! loop is woken by the watch of the DC's database (`tether_agent::dc_watch`) instead of
//! reading rootDSE ten times a second. Its configuration is otherwise the default one.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tether_testkit::{Dc, TestServer};

use crate::adi::import_config_json;
use crate::adi_agent::Agent;

/// Over 10 s idle, the cycles the agent on the DC ran (each sends AD at least one search;
/// the default agent runs 100), the entries it read and the DC's CPU; then `changes` changes
/// to the seeded users from number `first` on, as the default agent's step makes them
/// (`adi_latency.rs`), each timed until Tether shows it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn on_the_dc(
    s: &TestServer,
    d: &Dc,
    key: &str,
    cfg_path: &Path,
    team: &str,
    team_id: &str,
    first: usize,
    changes: usize,
    n: usize,
) -> Result<Value> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let state = cfg_path.parent().context("state dir")?;
    let v = tether_testkit::with_keys(
        import_config_json(s, d, key, state, "dc"),
        json!({"MetricsListen": format!("127.0.0.1:{port}"), "SambaSmbConf": d.dir.join("etc/smb.conf")}),
    );
    let agent = Agent::settled(cfg_path, v, port, "tether_agent_database_watch_open").await?;
    let idle = agent.idle(&[("database_events", "tether_agent_database_writes_total")]).await;
    let mut admin = tether_ad::connect(&d.admin_target()).await?;
    let woken = agent.metric("tether_agent_cycles_woken_total").await;
    let (latency, _) = crate::adi_latency::ad_to_tether(s, d, &mut admin, team, team_id, first, changes, n).await?;
    Ok(json!({"idle": idle, "ad_to_tether_latency": latency,
        "cycles_woken_by_the_changes": agent.metric("tether_agent_cycles_woken_total").await - woken,
        "cycles_by_read": agent.cycles_by_read().await}))
}
