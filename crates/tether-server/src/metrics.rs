//! `GET /metrics` in the Prometheus text format: what an admin needs to see that sync is
//! healthy and fast — change-to-visible latency per direction, import apply durations, the
//! queue of changes waiting for each sync agent, delegated authentication latency, AD errors
//! by code, and whether each agent reaches AD.
//!
//! Latencies, durations and errors are recorded as they happen; queue depths and agent states
//! are read from the store when scraped, so they are right after a restart too.
//!
//! AD → Tether latency is measured from the user's `whenChanged` in AD (the DC's clock, one
//! second resolution) to the moment the change is applied here, so it includes the agent's
//! polling; it assumes tetherd's clock agrees with the domain's (NTP), as Kerberos already
//! requires of every host in a domain.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tether_core::ad::{Agent, AgentType};
use tether_core::query::ListQuery;
use tether_store::Collection;

use crate::error::ApiError;

type Labels = Vec<(String, String)>;

/// Latency buckets in seconds: 5 ms to 2 min.
fn latency_buckets() -> impl Iterator<Item = f64> {
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0].into_iter()
}

/// One change that became visible on the other side (for the console's activity page).
#[derive(Clone, Debug)]
pub struct Recent {
    pub at: String,
    pub direction: &'static str,
    pub object: String,
    pub seconds: f64,
}

/// How many recent changes the activity page shows.
const RECENT: usize = 200;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    recent: std::sync::Mutex<std::collections::VecDeque<Recent>>,
    change_latency: Family<Labels, Histogram>,
    import_apply: Histogram,
    auth_latency: Family<Labels, Histogram>,
    ldap_latency: Family<Labels, Histogram>,
    radius_latency: Family<Labels, Histogram>,
    ad_errors: Family<Labels, Counter>,
    credential_cache: Family<Labels, Counter>,
    ldap_memory: Family<Labels, Counter>,
    queue_depth: Family<Labels, Gauge>,
    agent_ad_reachable: Family<Labels, Gauge>,
    agent_up: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let hist = || Histogram::new(latency_buckets());
        let change_latency = Family::<Labels, Histogram>::new_with_constructor(hist as fn() -> Histogram);
        let auth_latency = Family::<Labels, Histogram>::new_with_constructor(hist as fn() -> Histogram);
        let ldap_latency = Family::<Labels, Histogram>::new_with_constructor(hist as fn() -> Histogram);
        let radius_latency = Family::<Labels, Histogram>::new_with_constructor(hist as fn() -> Histogram);
        let import_apply = hist();
        let (ad_errors, queue_depth, agent_ad_reachable, agent_up) =
            (Family::default(), Family::default(), Family::default(), Family::default());
        let mut registry = Registry::with_prefix("tether");
        registry.register(
            "change_latency_seconds",
            "Time from a change to its being visible on the other side, by direction (ad_to_tether, tether_to_ad)",
            change_latency.clone(),
        );
        registry.register("import_apply_seconds", "Time to apply one import cycle's report", import_apply.clone());
        registry.register(
            "delegated_auth_seconds",
            "Delegated (AD) password verifications, from request to AD's answer, by outcome",
            auth_latency.clone(),
        );
        registry.register(
            "ldap_operation_seconds",
            "LDAP operations (bind, search, extended) answered, by operation and result code",
            ldap_latency.clone(),
        );
        registry.register(
            "radius_request_seconds",
            "RADIUS datagrams by outcome (accepted, rejected, challenged, status, duplicate, dropped_*: unknown client, bad Message-Authenticator, malformed, unsupported, store failure, busy)",
            radius_latency.clone(),
        );
        registry.register("ad_errors", "Errors AD returned, by source and code", ad_errors.clone());
        let credential_cache = Family::default();
        registry.register(
            "credential_cache",
            "Local password checks answered from the cache of recent verifications (hit) or hashed (miss)",
            credential_cache.clone(),
        );
        let ldap_memory = Family::default();
        registry.register(
            "ldap_user_memory",
            "Users looked up by LDAP searches and binds, answered from memory while the directory is unchanged (hit) or read from the store (miss)",
            ldap_memory.clone(),
        );
        registry.register(
            "sync_queue_depth",
            "Change-feed entries not yet acknowledged by each sync agent",
            queue_depth.clone(),
        );
        registry.register(
            "agent_ad_reachable",
            "1 when the agent reached AD at its last attempt, 0 during an outage",
            agent_ad_reachable.clone(),
        );
        registry.register("agent_active", "1 when the agent was heard from in the last 5 minutes", agent_up.clone());
        Metrics {
            registry,
            recent: Default::default(),
            change_latency,
            import_apply,
            auth_latency,
            ldap_latency,
            radius_latency,
            ad_errors,
            credential_cache,
            ldap_memory,
            queue_depth,
            agent_ad_reachable,
            agent_up,
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Metrics {
    /// A change of `object` became visible on the other side after `seconds`.
    pub fn change_visible(&self, direction: &'static str, object: &str, seconds: f64, at: String) {
        self.change_latency.get_or_create(&labels(&[("direction", direction)])).observe(seconds.max(0.0));
        let mut r = self.recent.lock().expect("lock");
        if r.len() == RECENT {
            r.pop_front();
        }
        r.push_back(Recent { at, direction, object: object.to_string(), seconds: seconds.max(0.0) });
    }

    /// The latest changes both ways, oldest first.
    pub fn recent(&self) -> Vec<Recent> {
        self.recent.lock().expect("lock").iter().cloned().collect()
    }

    pub fn import_applied(&self, seconds: f64) {
        self.import_apply.observe(seconds);
    }

    pub fn delegated_auth(&self, outcome: &str, seconds: f64) {
        self.auth_latency.get_or_create(&labels(&[("outcome", outcome)])).observe(seconds);
    }

    pub fn ldap_operation(&self, op: &str, outcome: &str, seconds: f64) {
        self.ldap_latency.get_or_create(&labels(&[("op", op), ("outcome", outcome)])).observe(seconds);
    }

    pub fn credential_cache(&self, outcome: &str) {
        self.credential_cache.get_or_create(&labels(&[("outcome", outcome)])).inc();
    }

    pub fn radius_request(&self, outcome: &str, seconds: f64) {
        self.radius_latency.get_or_create(&labels(&[("outcome", outcome)])).observe(seconds);
    }

    pub fn ldap_memory(&self, outcome: &str) {
        self.ldap_memory.get_or_create(&labels(&[("outcome", outcome)])).inc();
    }

    pub fn ad_error(&self, source: &str, code: &str) {
        self.ad_errors.get_or_create(&labels(&[("source", source), ("code", code)])).inc();
    }

    /// Reads the per-agent gauges from the store and renders everything.
    pub async fn render(&self, repo: &tether_store::Repo, now: time::OffsetDateTime) -> Result<String, ApiError> {
        let q = ListQuery { limit: usize::MAX >> 1, ..Default::default() };
        let (_, agents): (u64, Vec<Agent>) = repo.list(Collection::Agents, &q).await?;
        self.queue_depth.clear();
        self.agent_ad_reachable.clear();
        self.agent_up.clear();
        for a in &agents {
            let kind = match a.agent_type {
                AgentType::Import => "import",
                AgentType::Sync => "sync",
            };
            let l = labels(&[("agent", &a.id), ("domain", &a.domain_id), ("type", kind)]);
            let active = a.state(now) == tether_core::ad::AgentState::Active;
            self.agent_up.get_or_create(&l).set(active as i64);
            if let Some(st) = &a.ad_status {
                self.agent_ad_reachable.get_or_create(&l).set(st.reachable as i64);
            }
            if a.agent_type == AgentType::Sync {
                // Counted by the database: a scrape never reads the entries (nor their secrets).
                let pending = repo.store().count_feed(&a.domain_id, a.cursor).await?;
                self.queue_depth.get_or_create(&l).set(pending as i64);
            }
        }
        Ok(self.text())
    }

    fn text(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exposition_names_and_labels() {
        let m = super::Metrics::default();
        m.change_visible("tether_to_ad", "a", 0.02, "t1".into());
        m.change_visible("tether_to_ad", "b", 3.0, "t2".into());
        assert_eq!(m.recent().iter().map(|r| r.object.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        m.ad_error("sync", "rc19");
        let text = m.text();
        for line in [
            r#"tether_change_latency_seconds_count{direction="tether_to_ad"} 2"#,
            r#"tether_change_latency_seconds_bucket{le="0.025",direction="tether_to_ad"} 1"#,
            r#"tether_change_latency_seconds_bucket{le="1.0",direction="tether_to_ad"} 1"#,
            r#"tether_change_latency_seconds_bucket{le="5.0",direction="tether_to_ad"} 2"#,
            r#"tether_ad_errors_total{source="sync",code="rc19"} 1"#,
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }
}
