//! tetherd on PostgreSQL: the `tetherd serve --database-url postgres://…` binary, and two
//! servers sharing one database — what one writes the other serves, and the change feed
//! appended through both reaches a sync agent polling either, in order and promptly. The
//! database is a fresh one on the test run's PostgreSQL (`tether_testkit::postgres`).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tether_testkit::{daemon, postgres_db, Daemon, TestServer};

/// The data directory of the tests' tetherd processes: on PostgreSQL it holds only the
/// secret key, which every tetherd of one database shares.
fn data_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir")).path()
}

fn tetherd(database_url: &str, key: &str) -> (Daemon, String) {
    daemon(
        Command::new(env!("CARGO_BIN_EXE_tetherd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", database_url, "--data-dir"])
            .arg(data_dir())
            .env("TETHER_BOOTSTRAP_API_KEY", key),
    )
}

#[tokio::test]
async fn two_tetherd_processes_serve_one_postgres_database() {
    let db = postgres_db().await;
    let key = "pg-bootstrap-key-0123456789";
    let (_a, a) = tetherd(&db.url, key);
    let (_b, b) = tetherd(&db.url, key);
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{a}/api/systemusers"))
        .header("x-api-key", key)
        .json(&json!({"username": "pgann", "email": "pgann@x.io"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r: Value =
        c.get(format!("{b}/api/systemusers")).header("x-api-key", key).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["totalCount"], 1, "{r}");
    assert_eq!(r["results"][0]["username"], "pgann");
}

#[test]
fn bad_database_urls_name_the_flag() {
    let run = |url: &str| {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_tetherd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", url, "--data-dir"])
            .arg(data_dir())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url}");
        (String::from_utf8_lossy(&out.stderr).into_owned(), started.elapsed())
    };
    let (err, _) = run("mysql://db/tether");
    assert!(err.contains("--database-url") && err.contains("postgres://"), "{err}");
    // Nothing listens on port 1: a clear error (without the password), soon.
    let (err, took) = run("postgres://tether:hunter2secret@127.0.0.1:1/tether");
    assert!(err.contains("--database-url"), "{err}");
    assert!(!err.contains("hunter2secret"), "the password leaked: {err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

async fn created(s: &TestServer, path: &str, body: Value) -> Value {
    let r = s.call("POST", path, Some(body)).await;
    assert!(r.status.is_success(), "{path}: {} {}", r.status, r.body);
    r.body
}

/// A registered sync agent's calls (bearer token), through either server.
struct Agent<'a> {
    token: String,
    client: &'a reqwest::Client,
}

impl Agent<'_> {
    async fn post(&self, s: &TestServer, path: &str, body: Value) -> Value {
        let r = self.client.post(format!("{}{path}", s.url)).bearer_auth(&self.token).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn poll(&self, s: &TestServer, wait_ms: u64, limit: u64) -> Vec<Value> {
        let v = self.post(s, "/api/agent/v1/sync/poll", json!({"waitMs": wait_ms, "limit": limit})).await;
        v.as_array().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_share_one_database_and_one_ordered_feed() {
    let db = postgres_db().await;
    let servers = Arc::new([TestServer::start_on(&db.url).await, TestServer::start_on(&db.url).await]);
    let [a, b] = &*servers;

    // What one server writes, the other serves; unique keys hold across both.
    let ann = created(a, "/api/systemusers", json!({"username": "ann", "email": "ann@x.io"})).await;
    let got = b.call("GET", &format!("/api/systemusers/{}", ann["id"].as_str().unwrap()), None).await;
    assert_eq!((got.status.as_u16(), got.body["email"].as_str()), (200, Some("ann@x.io")));
    let dup = b.call("POST", "/api/systemusers", Some(json!({"username": "ANN", "email": "other@x.io"}))).await;
    assert_eq!(dup.status, 409, "{}", dup.body);

    // A domain made through one server, its sync agent through the other.
    let d = created(a, "/api/v2/activedirectories", json!({"domain": "DC=pg,DC=test"})).await;
    let d = d["id"].as_str().unwrap().to_string();
    let key = created(b, &format!("/api/v2/activedirectories/{d}/agents"), json!({"agentType": "SYNC"})).await;
    let agent = Agent { token: "p".repeat(40), client: &a.client };
    let r = a
        .call_as(
            None,
            "POST",
            "/api/agent/v1/register",
            Some(json!({"connectKey": key["connectKey"], "token": agent.token})),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);

    // Users bound to the domain through both servers at once, then changed through both at
    // once: every bind and every change is one feed entry.
    let n = 12;
    let mut users = Vec::new();
    for i in 0..n {
        let s = &servers[i % 2];
        let u =
            created(s, "/api/systemusers", json!({"username": format!("pg{i}"), "email": format!("pg{i}@x.io")})).await;
        users.push(u["id"].as_str().unwrap().to_string());
    }
    let mut binds = tokio::task::JoinSet::new();
    for (i, u) in users.iter().enumerate() {
        let (servers, path, u) = (servers.clone(), format!("/api/v2/activedirectories/{d}/associations"), u.clone());
        binds
            .spawn(async move { created(&servers[i % 2], &path, json!({"op": "add", "type": "user", "id": u})).await });
    }
    binds.join_all().await;
    let mut changes = tokio::task::JoinSet::new();
    for (i, u) in users.iter().enumerate() {
        let (servers, u) = (servers.clone(), u.clone());
        changes.spawn(async move {
            let s = &servers[(i + 1) % 2];
            let r = s.call("PUT", &format!("/api/systemusers/{u}"), Some(json!({"firstname": "Changed"}))).await;
            assert_eq!(r.status, 200, "{}", r.body);
        });
    }
    changes.join_all().await;

    // The agent reads the feed through both servers in turn, acknowledging as it goes.
    let mut seqs: Vec<i64> = Vec::new();
    let mut per_user = std::collections::BTreeMap::<String, Vec<String>>::new();
    for round in 0.. {
        let s = &servers[round % 2];
        let page = agent.poll(s, 0, 5).await;
        if page.is_empty() {
            break;
        }
        for e in &page {
            seqs.push(e["seq"].as_i64().unwrap());
            let first = e["body"]["change"]["firstname"].as_str().unwrap_or("").to_string();
            per_user.entry(e["objectId"].as_str().unwrap().to_string()).or_default().push(first);
        }
        agent.post(s, "/api/agent/v1/sync/ack", json!({"seq": seqs.last()})).await;
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert_eq!(seqs.len(), 2 * n, "{seqs:?}");
    for u in &users {
        assert_eq!(per_user[u], ["", "Changed"], "{u}: the bind, then the change");
    }

    // An agent long-polling one server gets an entry appended through the other promptly,
    // though only the appending process is notified in memory.
    let waiting = {
        let (token, url) = (agent.token.clone(), a.url.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let r = tether_testkit::client()
                .post(format!("{url}/api/agent/v1/sync/poll"))
                .bearer_auth(token)
                .json(&json!({"waitMs": 20_000}))
                .send()
                .await
                .unwrap();
            (r.json::<Value>().await.unwrap(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let appended = Instant::now();
    let r = b.call("PUT", &format!("/api/systemusers/{}", users[0]), Some(json!({"firstname": "Again"}))).await;
    assert_eq!(r.status, 200);
    let (entries, waited) = waiting.await.unwrap();
    let delivered = appended.elapsed();
    assert_eq!(entries[0]["body"]["change"]["firstname"], "Again", "{entries}");
    assert!(waited >= Duration::from_millis(400), "the poll waited for the entry ({waited:?})");
    assert!(delivered < Duration::from_secs(3), "delivered {delivered:?} after the append");
}

/// What a browser or a script does across two tetherd behind one load balancer, requests
/// alternating between them: a console login on one and the console's actions and logout on
/// the other; a bulk job started on one and its results read on the other.
#[tokio::test]
async fn console_sessions_and_bulk_jobs_are_shared_between_servers() {
    use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
    let db = postgres_db().await;
    let (a, b) = (TestServer::start_on(&db.url).await, TestServer::start_on(&db.url).await);
    let c = tether_testkit::pki().client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let id = a.user(json!({"username": "lb", "email": "lb@x.io"})).await;

    // Console: logged in through A, used and logged out through B.
    let r = c.post(format!("{}/console/login", a.url)).form(&[("apikey", a.api_key.as_str())]).send().await.unwrap();
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = c.get(format!("{}/console/users", b.url)).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(page.status(), 200, "the session opened on A is known to B");
    let html = page.text().await.unwrap();
    let at = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + r#"name="csrf" value=""#.len();
    let csrf = html[at..].split('"').next().unwrap().to_string();
    let form = [("ids", id.as_str()), ("action", "suspend"), ("csrf", csrf.as_str())];
    let r = c.post(format!("{}/console/users/bulk", a.url)).header(COOKIE, &cookie).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(b.call("GET", &format!("/api/systemusers/{id}"), None).await.body["state"], "SUSPENDED");
    let r = c
        .post(format!("{}/console/logout", b.url))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = c.get(format!("{}/console/users", a.url)).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()[LOCATION].to_str().unwrap()),
        (303, "/console/login"),
        "logged out on both"
    );

    // A bulk job through A; its results through B.
    let job = a.call("PATCH", "/api/v2/bulk/users", Some(json!([{"id": id, "jobTitle": "Balanced"}]))).await;
    assert_eq!(job.status, 200, "{}", job.body);
    let results =
        b.call("GET", &format!("/api/v2/bulk/users/{}/results", job.body["jobId"].as_str().unwrap()), None).await;
    assert_eq!(results.status, 200, "{}", results.body);
    assert_eq!(results.body[0]["id"], id.as_str(), "{}", results.body);
    assert_eq!(a.call("GET", &format!("/api/systemusers/{id}"), None).await.body["jobTitle"], "Balanced");
}

/// The login throttle counts in the store: wrong passwords spread over two servers lock the
/// username on both at the same limit as on one.
#[tokio::test]
async fn the_login_throttle_counts_across_servers() {
    let db = postgres_db().await;
    let (a, b) = (TestServer::start_on(&db.url).await, TestServer::start_on(&db.url).await);
    a.user(json!({"username": "guessme", "email": "g@x.io", "password": "Right-Passw0rd-1"})).await;
    async fn verify(s: &TestServer, p: &str) -> u16 {
        s.call("POST", "/api/v2/auth/verify", Some(json!({"username": "guessme", "password": p}))).await.status.as_u16()
    }
    assert_eq!(verify(&b, "Right-Passw0rd-1").await, 200);
    for i in 0..10 {
        let s = if i % 2 == 0 { &a } else { &b };
        assert_eq!(verify(s, "wrong").await, 401, "attempt {i}");
    }
    for s in [&a, &b] {
        assert_eq!(verify(s, "Right-Passw0rd-1").await, 429, "locked on both servers after 10 failures in all");
    }
}

/// A delegated login arriving at one tetherd is answered by an import agent polling the
/// other: the check (its password sealed with the key every tetherd of the database shares)
/// waits in the store, is taken once, and the answer reaches the tetherd that asked.
#[tokio::test]
async fn a_delegated_check_is_answered_through_the_other_server() {
    let db = postgres_db().await;
    let dir = tempfile::tempdir().unwrap();
    let key =
        std::sync::Arc::new(tether_server::secrets::SecretKey::load_or_create(&dir.path().join("key"), true).unwrap());
    let start = || {
        let key = key.clone();
        TestServer::start_with_database(Some(&db.url), move |c| c.secret_key = key)
    };
    let (a, b) = (start().await, start().await);
    let domain = a.domain("DC=lb,DC=test", "TWOWAYSYNC").await;
    let enable = json!({"delegationState": "ENABLED"});
    assert_eq!(a.call("PATCH", &format!("/api/v2/activedirectories/{domain}"), Some(enable)).await.status, 200);
    let token = "l".repeat(40);
    let ck = a.connect_key(&domain, "IMPORT").await;
    let r = b.call_as(None, "POST", "/api/agent/v1/register", Some(json!({"connectKey": ck, "token": token}))).await;
    assert!(r.status.is_success(), "{}", r.body);
    assert_eq!(b.agent_post(&token, "/api/agent/v1/heartbeat", json!({})).await.status, 200);
    let id = a.user(json!({"username": "far", "email": "far@x.io"})).await;
    a.bind_user(&domain, &id).await;
    // Linked to its AD account by the domain's sync agent (played here), as AD's authority.
    let (sk, st) = (a.connect_key(&domain, "SYNC").await, "m".repeat(40));
    let r = a.call_as(None, "POST", "/api/agent/v1/register", Some(json!({"connectKey": sk, "token": st}))).await;
    assert!(r.status.is_success(), "{}", r.body);
    let link = json!({"userId": id, "guid": "ab".repeat(16), "dn": "CN=far,DC=lb,DC=test"});
    assert_eq!(a.agent_post(&st, "/api/agent/v1/sync/status", link).await.status, 200);
    let authority = json!({"delegatedAuthority": {"id": domain, "name": "ActiveDirectory"}});
    assert_eq!(a.call("PUT", &format!("/api/systemusers/{id}"), Some(authority)).await.status, 200);

    // The login through A; the agent polls B, binds (played here) and answers through B.
    let login = a.call("POST", "/api/v2/auth/verify", Some(json!({"username": "far", "password": "AD-Passw0rd-9"})));
    let agent = async {
        let asked = b.next_auth_check(&token).await;
        assert_eq!(
            (asked["dn"].as_str(), asked["password"].as_str()),
            (Some("CN=far,DC=lb,DC=test"), Some("AD-Passw0rd-9"))
        );
        let answer = json!({"id": asked["id"], "ok": true});
        assert_eq!(b.agent_post(&token, "/api/agent/v1/auth/result", answer).await.status, 200);
    };
    let (r, ()) = tokio::join!(login, agent);
    assert_eq!((r.status.as_u16(), r.body["method"].as_str()), (200, Some("delegated")), "{}", r.body);
}
