//! An import agent in a process of its own for one step of the `adi` benchmark, watched
//! through its metrics: started, settled (its first cycles behind it), and measured idle.
//! Shared by the steps of the agent told of deletions and of the agent on the DC; its
//! cycles by read also serve the default agent's step.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::adi::dc_cpu_ms_per_s;
use crate::parts::Part;

/// A running import agent and its metrics endpoint.
pub(crate) struct Agent {
    _part: Part,
    base: String,
}

impl Agent {
    /// Writes `config` (an import agent's, with `MetricsListen` on `port`) to `cfg_path`,
    /// starts the agent, and waits for its first (complete) cycle and for `open` (a gauge
    /// that is 1 once its notification search or its watch is open, which wakes a cycle),
    /// then 3 s more: baselines are taken after them.
    pub(crate) async fn settled(cfg_path: &Path, config: Value, port: u16, open: &str) -> Result<Agent> {
        std::fs::write(cfg_path, config.to_string())?;
        let part = Part::spawn(&["agent", "--kind", "import", "--config", &cfg_path.to_string_lossy()])?;
        let agent = Agent { _part: part, base: format!("http://127.0.0.1:{port}") };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t.elapsed() > Duration::from_secs(60) {
                bail!("the agent's metrics never answered");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        while agent.metric(open).await < 1.0 || agent.metric("tether_agent_cycles_woken_total").await < 1.0 {
            if t.elapsed() > Duration::from_secs(300) {
                bail!("the agent never settled: {open} stayed 0");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(agent)
    }

    /// The value of `series`, 0 when absent.
    pub(crate) async fn metric(&self, series: &str) -> f64 {
        tether_testkit::metric_at(&self.base, series).await.unwrap_or(0.0)
    }

    /// Its cycles so far by how they learnt what changed.
    pub(crate) async fn cycles_by_read(&self) -> Value {
        cycles_by_read(&self.base).await
    }

    /// Over 10 s idle: the cycles it ran (each sends AD at least one search), the entries
    /// it read, the DC's CPU, and how much each of `more` series grew.
    pub(crate) async fn idle(&self, more: &[(&str, &str)]) -> Value {
        let series =
            [("cycles", "tether_agent_cycle_seconds_count"), ("entries_read", "tether_agent_entries_read_total")];
        let all: Vec<(&str, &str)> = series.into_iter().chain(more.iter().copied()).collect();
        let mut before = Vec::new();
        for (_, s) in &all {
            before.push(self.metric(s).await);
        }
        let cpu = dc_cpu_ms_per_s(Duration::from_secs(10)).await;
        let mut out = json!({"seconds": 10, "dc_cpu_ms_per_s": cpu});
        for ((key, s), b) in all.iter().zip(before) {
            out[*key] = json!(self.metric(s).await - b);
        }
        out
    }
}

/// The cycles of the import agent whose metrics are at `base`, by how they learnt what
/// changed (`tether_agent_cycle_reads_total{read}`).
pub(crate) async fn cycles_by_read(base: &str) -> Value {
    let mut reads = serde_json::Map::new();
    for kind in ["idle", "notified", "exact", "scan", "complete"] {
        let series = format!(r#"tether_agent_cycle_reads_total{{read="{kind}"}}"#);
        reads.insert(kind.into(), json!(tether_testkit::metric_at(base, &series).await.unwrap_or(0.0)));
    }
    Value::Object(reads)
}
