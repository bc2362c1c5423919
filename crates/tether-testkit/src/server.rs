//! An in-process `tetherd` on 127.0.0.1:0 with its own temporary database, or on a given
//! PostgreSQL database (several servers may share one, as several `tetherd` processes do).

use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tether_server::{AppState, ServerConfig};
use tether_store::postgres::PgStore;
use tether_store::sqlite::SqliteStore;
use tether_store::{Repo, Store};
use time::OffsetDateTime;

pub struct TestServer {
    /// `https://127.0.0.1:PORT` (a certificate of [`crate::pki`]).
    pub url: String,
    /// `ldap://127.0.0.1:PORT` (StartTLS) and `ldaps://127.0.0.1:PORT` of the LDAP front end,
    /// base DN `o=tether` (empty for an attached server).
    pub ldap: String,
    pub ldaps: String,
    /// `127.0.0.1:PORT` of the RADIUS front end (UDP; empty for an attached server).
    pub radius: String,
    /// An administrator API key.
    pub api_key: String,
    pub client: reqwest::Client,
    /// The data directory (kept until the server is dropped; unused on PostgreSQL).
    pub dir: tempfile::TempDir,
    /// The server's store, for seeding large fixtures in one batch (`None` when attached).
    repo: Option<Repo>,
    clock: Arc<Mutex<OffsetDateTime>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A response, read whole: status, headers and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The `x-total-count` header of a v2 list.
    pub fn total(&self) -> Option<u64> {
        self.headers.get("x-total-count")?.to_str().ok()?.parse().ok()
    }
}

impl TestServer {
    /// Starts a server whose clock is the real time until [`TestServer::advance`] moves it.
    pub async fn start() -> TestServer {
        Self::start_with_grace(time::Duration::seconds(900)).await
    }

    /// Like [`TestServer::start`], with another agent deletion grace.
    pub async fn start_with_grace(grace: time::Duration) -> TestServer {
        Self::start_with(|c| c.agent_delete_grace = grace).await
    }

    /// Like [`TestServer::start`], with the configuration adjusted by `f`.
    pub async fn start_with(f: impl FnOnce(&mut ServerConfig)) -> TestServer {
        Self::start_with_database(None, f).await
    }

    /// Like [`TestServer::start`], on the PostgreSQL database `database_url` (e.g. a
    /// [`crate::postgres_db`]); other servers may use the same database at the same time.
    pub async fn start_on(database_url: &str) -> TestServer {
        Self::start_with_database(Some(database_url), |_| {}).await
    }

    /// The general form: on `database_url` (PostgreSQL), else on a temporary SQLite database,
    /// with the configuration adjusted by `f`.
    pub async fn start_with_database(database_url: Option<&str>, f: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> = match database_url {
            Some(url) => Arc::new(PgStore::connect(url).await.expect("connect to PostgreSQL")),
            None => Arc::new(SqliteStore::open(dir.path()).await.expect("open store")),
        };
        let clock = Arc::new(Mutex::new(OffsetDateTime::now_utc()));
        let offset = clock.clone();
        let base = OffsetDateTime::now_utc();
        let mut config = ServerConfig {
            // The test clock runs with real time, shifted by however far tests advanced it.
            clock: Arc::new(move || OffsetDateTime::now_utc() + (*offset.lock().expect("clock") - base)),
            // Tests that stop the agent wait for this before tetherd gives up on AD.
            delegation_timeout: std::time::Duration::from_secs(2),
            ..ServerConfig::default()
        };
        f(&mut config);
        let repo = Repo::new(store);
        let state = AppState::new(repo.clone(), config);
        let api_key = "test-admin-key-0123456789".to_string();
        tether_server::bootstrap_api_key(&state, &api_key).await.expect("bootstrap key");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let pki = crate::pki();
        let tls = tether_server::tls::ServerTls::load(&pki.cert_file, &pki.key_file).expect("test certificate");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stopped = futures_util::FutureExt::shared(async {
            let _ = rx.await;
        });
        let mut ldap_urls = Vec::new();
        for (scheme, mode) in
            [("ldap", tether_server::ldap::Mode::StartTls), ("ldaps", tether_server::ldap::Mode::Ldaps)]
        {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind LDAP");
            ldap_urls.push(format!("{scheme}://{}", l.local_addr().expect("addr")));
            let (state, config, stop) = (state.clone(), tls.config_without_alpn(), stopped.clone());
            tokio::spawn(async move {
                tether_server::ldap::run(l, config, mode, state, "o=tether", stop).await.expect("LDAP runs");
            });
        }
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind RADIUS");
        let radius = socket.local_addr().expect("addr").to_string();
        let (radius_state, stop, eap) = (state.clone(), stopped.clone(), tls.config_for_eap());
        tokio::spawn(async move {
            tether_server::radius::run(socket, radius_state, Some(eap), stop).await.expect("RADIUS runs");
        });
        tokio::spawn(async move {
            tether_server::run_tls(listener, &tls, state, stopped).await.expect("server runs");
        });
        let ldaps = ldap_urls.pop().expect("ldaps");
        let ldap = ldap_urls.pop().expect("ldap");
        TestServer {
            url,
            ldap,
            ldaps,
            radius,
            api_key,
            client: pki.client(),
            dir,
            repo: Some(repo),
            clock,
            shutdown: Some(tx),
        }
    }

    /// A handle on a `tetherd` running elsewhere (say, in another process) at `url`:
    /// requests only; its clock cannot be advanced and dropping the handle stops nothing.
    pub fn attach(url: String, api_key: String) -> TestServer {
        TestServer {
            url,
            ldap: String::new(),
            ldaps: String::new(),
            radius: String::new(),
            api_key,
            client: crate::client(),
            dir: tempfile::tempdir().expect("temp dir"),
            repo: None,
            clock: Arc::new(Mutex::new(OffsetDateTime::now_utc())),
            shutdown: None,
        }
    }

    /// The server's store, to seed a large fixture in one batch (what is under test then is
    /// not how it was written).
    pub fn repo(&self) -> &Repo {
        self.repo.as_ref().expect("an in-process server")
    }

    /// Moves the server's clock forward.
    pub fn advance(&self, by: time::Duration) {
        *self.clock.lock().expect("clock") += by;
    }

    /// Registers an agent (`IMPORT` or `SYNC`) for the AD domain `domain` and answers its
    /// connect key.
    pub async fn connect_key(&self, domain: &str, kind: &str) -> String {
        let path = format!("/api/v2/activedirectories/{domain}/agents");
        let r = self.call("POST", &path, Some(serde_json::json!({"agentType": kind}))).await;
        r.body["connectKey"].as_str().unwrap_or_else(|| panic!("no connect key: {:?}", r.body)).to_string()
    }

    /// Binds the user `user_id` to the AD domain `domain` (the admin's association).
    pub async fn bind_user(&self, domain: &str, user_id: &str) {
        let path = format!("/api/v2/activedirectories/{domain}/associations");
        let r = self.call("POST", &path, Some(serde_json::json!({"op": "add", "type": "user", "id": user_id}))).await;
        assert_eq!(r.status, 204, "binding user {user_id} to {domain}: {:?}", r.body);
    }

    /// Creates an object with `POST path` (a user, a group, a domain) and answers its id;
    /// a refusal fails the test with the server's answer.
    pub async fn create(&self, path: &str, body: Value) -> String {
        let r = self.call("POST", path, Some(body)).await;
        assert!(r.status.is_success(), "POST {path}: {} {:?}", r.status, r.body);
        r.body["id"].as_str().unwrap_or_else(|| panic!("POST {path} answered no id: {:?}", r.body)).to_string()
    }

    /// Creates a user (`/api/systemusers`); answers its id.
    pub async fn user(&self, body: Value) -> String {
        self.create("/api/systemusers", body).await
    }

    /// Creates an AD domain with `use_case` (`TWOWAYSYNC`, …); answers its id.
    pub async fn domain(&self, dn: &str, use_case: &str) -> String {
        self.create("/api/v2/activedirectories", serde_json::json!({"domain": dn, "useCase": use_case})).await
    }

    /// The value of `series` in this server's `/metrics` ([`crate::metric_in`]).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        crate::metric_at(&self.url, series).await
    }

    /// Adds the user `user` to the group `group`.
    pub async fn add_member(&self, group: &str, user: &str) {
        let path = format!("/api/v2/usergroups/{group}/members");
        let r = self.call("POST", &path, Some(serde_json::json!({"op": "add", "type": "user", "id": user}))).await;
        assert_eq!(r.status, 204, "adding {user} to {group}: {:?}", r.body);
    }

    /// Sends a request with the admin key.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_as(Some(&self.api_key.clone()), method, path, body).await
    }

    /// Sends a request with `key` as `x-api-key` (or none).
    pub async fn call_as(&self, key: Option<&str>, method: &str, path: &str, body: Option<Value>) -> Reply {
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(m, format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        Self::read(resp).await
    }

    /// POSTs `body` to the agent API at `path` as the agent whose token is `token`.
    pub async fn agent_post(&self, token: &str, path: &str, body: Value) -> Reply {
        let resp = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        Self::read(resp).await
    }

    /// As the import agent whose token is `token`: long-polls until a delegated check arrives,
    /// and answers it (`{id, dn, password}`).
    pub async fn next_auth_check(&self, token: &str) -> Value {
        loop {
            let r = self.agent_post(token, "/api/agent/v1/auth/poll", serde_json::json!({"waitMs": 1000})).await;
            assert!(r.status.is_success(), "auth poll: {} {}", r.status, r.body);
            if let Some(check) = r.body.as_array().and_then(|a| a.first()) {
                return check.clone();
            }
        }
    }

    /// Sends a raw body (for malformed-JSON tests).
    pub async fn call_raw(&self, method: &str, path: &str, body: &str) -> Reply {
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let resp = self
            .client
            .request(m, format!("{}{path}", self.url))
            .header("x-api-key", &self.api_key)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request");
        Self::read(resp).await
    }

    async fn read(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Reply { status, headers, body }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
