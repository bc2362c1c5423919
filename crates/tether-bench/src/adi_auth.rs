//! Delegated authentication against the DC's own simple binds, in the ADI benchmark, at two
//! loads: 16 clients saturate this machine's cores (the DC's LDAP workers, tetherd and the
//! agent share them), so that figure is a throughput and a CPU bill; one client shows what a
//! single login pays for the hop through tetherd and the agent, which is the latency the
//! acceptance compares.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};
use tether_testkit::{Dc, TestServer};

use crate::parts::{cpu_seconds, samba_cpu_seconds};
use crate::stats::dist;

/// The successful calls of one run: their latencies, rate and the CPU each side spent.
pub(crate) struct Run {
    pub(crate) lat: Vec<Duration>,
    clients: usize,
    per_s: f64,
    /// Calls that did not succeed (a right password refused, or not answered in time).
    failed: u64,
    /// CPU seconds per wall second: 1.0 is one core busy throughout.
    dc_cores: f64,
    bench_cores: f64,
}

impl Run {
    /// The JSON of the run, the rate under `rate_key`.
    pub(crate) fn json(&self, rate_key: &str) -> Value {
        let r = |x: f64| (x * 100.0).round() / 100.0;
        json!({"clients": self.clients, rate_key: self.per_s.round(), "failed": self.failed, "latency": dist(self.lat.clone()),
            "cores_busy": {"dc": r(self.dc_cores), "bench_process": r(self.bench_cores)}})
    }
}

/// Runs `clients` loops made by `call` (each until the caller's deadline).
async fn closed_loop<F, Fut>(clients: usize, call: F) -> Result<Run>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Duration>>> + Send + 'static,
{
    let (dc0, bench0, t) = (samba_cpu_seconds(), cpu_seconds(), Instant::now());
    let tasks: Vec<_> = (0..clients).map(|c| tokio::spawn(call(c))).collect();
    let mut lat = Vec::new();
    for task in tasks {
        lat.extend(task.await??);
    }
    let wall = t.elapsed().as_secs_f64();
    Ok(Run {
        clients,
        // Over the same wall time as the CPU: the last calls end after the deadline.
        per_s: lat.len() as f64 / wall,
        failed: 0,
        dc_cores: (samba_cpu_seconds() - dc0) / wall,
        bench_cores: (cpu_seconds() - bench0) / wall,
        lat,
    })
}

/// Simple binds as the users `dns` (client `c` binds as `dns[c]`), each client on its own
/// open LDAPS connection: the DC's own answer to a login.
pub(crate) async fn raw_binds(d: &Dc, dns: &[String], clients: usize, window: Duration) -> Result<Run> {
    let deadline = Instant::now() + window;
    closed_loop(clients, |c| {
        let (d, dn) = (d.clone(), dns[c % dns.len()].clone());
        async move {
            let mut conn = tether_ad::open(&d.import_target()).await?;
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                tether_ad::bind(&mut conn, &dn, &d.seed_password).await?;
                lat.push(t.elapsed());
            }
            Ok(lat)
        }
    })
    .await
}

/// `POST /api/v2/auth/verify` as the users `names` (client `c` as `names[c]`), answered by
/// AD through the import agent.
pub(crate) async fn delegated(
    s: &Arc<TestServer>,
    names: &[String],
    password: &str,
    clients: usize,
    window: Duration,
) -> Result<Run> {
    let deadline = Instant::now() + window;
    let refused = Arc::new(AtomicU64::new(0));
    let mut run = closed_loop(clients, |c| {
        let (s, refused) = (s.clone(), refused.clone());
        let body = json!({"username": names[c % names.len()], "password": password});
        async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                if s.call("POST", "/api/v2/auth/verify", Some(body.clone())).await.status == 200 {
                    lat.push(t.elapsed());
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(lat)
        }
    })
    .await?;
    run.failed = refused.load(Ordering::Relaxed);
    Ok(run)
}
