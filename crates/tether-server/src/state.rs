//! What every request shares: the repository, the server's settings and the services
//! (the delegation queue, login limits and browser sessions in the store, so that several
//! tetherd share them; metrics). Everything held
//! here sits below this module, so no holder depends back on the state.

use std::sync::Arc;

use tether_store::Repo;
use time::OffsetDateTime;

/// A source of the current time, injectable so that grace periods are testable fast.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

/// Server settings that are not stored in the database.
#[derive(Clone)]
pub struct ServerConfig {
    /// How long a paused agent waits before it may be deleted.
    pub agent_delete_grace: time::Duration,
    pub clock: Clock,
    /// How long a delegated verification waits for an import agent's answer.
    pub delegation_timeout: std::time::Duration,
    /// Delivery of the notifications outbox; `None` (the default) records only.
    pub smtp: Option<crate::mail::SmtpConfig>,
    /// When set, `GET /metrics` needs `Authorization: Bearer` with this token.
    pub metrics_token: Option<String>,
    /// Seals the passwords waiting in the change feed (see [`crate::secrets`]).
    pub secret_key: Arc<crate::secrets::SecretKey>,
    /// How long a password waits in the feed for its sync agent before it is forgotten.
    pub feed_password_ttl: time::Duration,
    /// Browsers reach tetherd over HTTPS (directly, or through a TLS-terminating proxy), so
    /// session cookies carry `Secure`. `run_tls` sets it.
    pub secure_cookies: bool,
    /// A reverse proxy stands in front (`--plain-http`): every peer address is the proxy's, so
    /// logins are not limited per address.
    pub behind_proxy: bool,
    /// The LDAP front end's base DN (`--ldap-base-dn`), for the DNs the console shows.
    pub ldap_base_dn: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            agent_delete_grace: time::Duration::seconds(900),
            clock: system_clock(),
            delegation_timeout: std::time::Duration::from_secs(10),
            smtp: None,
            metrics_token: None,
            secure_cookies: false,
            behind_proxy: false,
            secret_key: Arc::new(crate::secrets::SecretKey::ephemeral()),
            feed_password_ttl: time::Duration::days(7),
            ldap_base_dn: "o=tether".into(),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub repo: Repo,
    pub config: ServerConfig,
    pub(crate) delegation: Arc<crate::adi::delegation::Broker>,
    /// Wakes sync agents long-polling the change feed.
    pub(crate) feed_wake: Arc<tokio::sync::Notify>,
    pub(crate) throttle: Arc<crate::throttle::Throttle>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Browser sessions of the console and the portal.
    pub(crate) sessions: Arc<crate::sessions::Sessions>,
    /// Passwords verified lately (spares binds the hash's cost; see `verified`).
    pub(crate) verified: Arc<crate::verified::Verified>,
    /// The LDAP server object as last read, and when (see `ops::ldap::server`).
    pub(crate) ldap_server: Arc<std::sync::Mutex<Option<(std::time::Instant, tether_core::ldap::LdapServer)>>>,
    /// Users in LDAP as the store last gave them (see `ops::ldap_memory`).
    pub(crate) ldap_memory: Arc<crate::ops::ldap_memory::Memory>,
    /// The RADIUS clients (servers with their secrets) as last read (see `ops::radius::client`).
    pub(crate) radius_clients: Arc<std::sync::Mutex<Option<crate::ops::radius_clients::Clients>>>,
    /// Held while the RADIUS clients are read again.
    pub(crate) radius_reload: Arc<tokio::sync::Mutex<()>>,
}

impl AppState {
    pub fn new(repo: Repo, config: ServerConfig) -> Self {
        let sessions = Arc::new(crate::sessions::Sessions::new(repo.clone()));
        let throttle = Arc::new(crate::throttle::Throttle::new(repo.clone()));
        let delegation = Arc::new(crate::adi::delegation::Broker::new(
            repo.clone(),
            config.secret_key.clone(),
            config.clock.clone(),
        ));
        AppState {
            repo,
            config,
            delegation,
            feed_wake: Default::default(),
            throttle,
            metrics: Default::default(),
            sessions,
            verified: Arc::new(crate::verified::Verified::new(crate::verified::TTL)),
            ldap_server: Default::default(),
            ldap_memory: Default::default(),
            radius_clients: Default::default(),
            radius_reload: Default::default(),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.config.clock)()
    }

    /// Changes an agent's document as it is now (read again when another request or tetherd
    /// wrote it meanwhile, by its revision): an agent's heartbeat, its acknowledgements and an
    /// administrator's pause each change their own fields and never undo one another. `None`
    /// when the agent is gone.
    pub async fn update_agent(
        &self,
        id: &str,
        change: impl Fn(&mut tether_core::ad::Agent),
    ) -> crate::error::ApiResult<Option<tether_core::ad::Agent>> {
        crate::error::retrying(|| async {
            let agents = tether_store::Collection::Agents;
            let Some(mut agent) = self.repo.get::<tether_core::ad::Agent>(agents, id).await? else {
                return Ok(None);
            };
            change(&mut agent);
            self.repo.save_agent(&agent).await?;
            Ok(Some(agent))
        })
        .await
    }

    pub fn now_str(&self) -> String {
        tether_core::timestamp(self.now())
    }
}
