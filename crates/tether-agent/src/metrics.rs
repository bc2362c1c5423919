//! An agent's own metrics, served in the Prometheus text format on an optional local port
//! (`MetricsListen` in the import agent's config, `metrics_listen` in the sync agent's):
//! cycle durations and entries read, feed entries applied, delegated verifications, AD
//! errors by code, whether AD is reachable, its change notifications, the database watch and how each cycle
//! learnt what changed — what an admin watches on the AD side, where tetherd's own
//! `/metrics` cannot see.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

pub struct AgentMetrics {
    registry: Registry,
    cycle: Histogram,
    entries_read: Counter,
    feed_applied: Counter,
    auth: Family<Labels, Histogram>,
    ad_errors: Family<Labels, Counter>,
    ad_reachable: Gauge,
    notifications: Counter,
    notifications_open: Gauge,
    database_watched: Gauge,
    database_writes: Counter,
    woken: Counter,
    reads: Family<Labels, Counter>,
}

fn buckets() -> impl Iterator<Item = f64> {
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0].into_iter()
}

impl Default for AgentMetrics {
    fn default() -> Self {
        let hist = || Histogram::new(buckets());
        let (cycle, entries_read, feed_applied, ad_reachable) =
            (hist(), Counter::default(), Counter::default(), Gauge::default());
        let auth = Family::<Labels, Histogram>::new_with_constructor(hist as fn() -> Histogram);
        let ad_errors = Family::<Labels, Counter>::default();
        let (notifications, notifications_open, woken) = (Counter::default(), Gauge::default(), Counter::default());
        let reads = Family::<Labels, Counter>::default();
        let (database_watched, database_writes) = (Gauge::default(), Counter::default());
        let mut registry = Registry::with_prefix("tether_agent");
        registry.register("cycle_seconds", "Duration of import cycles, idle ones included", cycle.clone());
        registry.register("entries_read", "AD entries read by import cycles", entries_read.clone());
        registry.register("feed_applied", "Change-feed entries applied to AD", feed_applied.clone());
        registry.register("delegated_auth_seconds", "Delegated password checks against AD, by outcome", auth.clone());
        registry.register("ad_errors", "Errors talking to AD, by code", ad_errors.clone());
        registry.register(
            "ad_reachable",
            "1 when AD answered the last attempt, 0 during an outage",
            ad_reachable.clone(),
        );
        registry.register("notifications", "Change notifications received from AD", notifications.clone());
        registry.register(
            "notification_search_open",
            "1 while the change-notification search is open, 0 while it is being opened again",
            notifications_open.clone(),
        );
        registry.register(
            "cycle_reads",
            "Import cycles by how they learnt what changed: idle (rootDSE only), notified (from change notifications, no search), exact (one indexed search by USN), scan (uSNChanged>= searches), complete",
            reads.clone(),
        );
        registry.register(
            "database_watch_open",
            "1 while the DC's database is watched (an import agent on a Samba DC), else 0",
            database_watched.clone(),
        );
        registry.register(
            "database_writes",
            "Events of the DC's database folder seen by its watch (writes: an edit makes one or two)",
            database_writes.clone(),
        );
        registry.register(
            "cycles_woken",
            "Import cycles started at once by a change notification or a write seen in the DC's database",
            woken.clone(),
        );
        AgentMetrics {
            registry,
            cycle,
            entries_read,
            feed_applied,
            auth,
            ad_errors,
            ad_reachable,
            notifications,
            notifications_open,
            database_watched,
            database_writes,
            woken,
            reads,
        }
    }
}

impl AgentMetrics {
    /// One import cycle; `read` says how it learnt what changed (idle, notified, exact, …).
    pub fn cycle(&self, seconds: f64, entries_read: u64, read: &'static str) {
        self.cycle.observe(seconds);
        self.entries_read.inc_by(entries_read);
        self.reads.get_or_create(&vec![("read".into(), read.into())]).inc();
    }

    pub fn feed_applied(&self, n: u64) {
        self.feed_applied.inc_by(n);
    }

    pub fn delegated_auth(&self, outcome: &str, seconds: f64) {
        self.auth.get_or_create(&vec![("outcome".into(), outcome.into())]).observe(seconds);
    }

    pub fn ad_error(&self, code: &str) {
        self.ad_errors.get_or_create(&vec![("code".into(), code.into())]).inc();
    }

    pub fn ad_reachable(&self, up: bool) {
        self.ad_reachable.set(up as i64);
    }

    pub fn notification(&self) {
        self.notifications.inc();
    }

    pub fn notifications_open(&self, open: bool) {
        self.notifications_open.set(open as i64);
    }

    pub fn database_watched(&self, watched: bool) {
        self.database_watched.set(watched as i64);
    }

    pub fn database_written(&self) {
        self.database_writes.inc();
    }

    pub fn cycle_woken(&self) {
        self.woken.inc();
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

/// Serves `GET /metrics` on `addr` until the task is aborted.
pub async fn serve(addr: SocketAddr, metrics: Arc<AgentMetrics>) -> std::io::Result<()> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics on http://{addr}/metrics");
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                    m.text(),
                )
            }
        }),
    );
    axum::serve(listener, app).await
}
