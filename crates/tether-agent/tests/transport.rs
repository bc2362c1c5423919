//! The agent ↔ tetherd link is TLS: a recording proxy in the middle sees no password, token or
//! connect key; an agent that does not trust tetherd's certificate refuses to talk to it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tether_agent::config::SyncConfig;
use tether_agent::session::Session;
use tether_testkit::{dc, unique, Pki, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy on 127.0.0.1 to `upstream` that keeps every byte it forwards, both ways.
async fn recording_proxy(upstream: String) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&upstream).await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, log.clone()));
            tokio::spawn(pump(sr, cw, log.clone()));
        }
    });
    (format!("https://{addr}"), seen)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        log.lock().unwrap().extend_from_slice(&buf[..n]);
    }
    let _ = to.shutdown().await;
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn sync_domain(s: &TestServer) -> (String, String) {
    let domain = s
        .create(
            "/api/v2/activedirectories",
            json!({"domain": format!("DC={},DC=example,DC=test", unique("tls")), "useCase": "TWOWAYSYNC"}),
        )
        .await;
    let key = s.connect_key(&domain, "SYNC").await;
    (domain, key)
}

fn sync_config(server_url: &str, key: &str, state: &Path, ca: &Path) -> SyncConfig {
    let mut v = dc().sync_agent_config(server_url, key, state, &dc().users_container(), &dc().group_dn);
    v["Server"]["CaFile"] = json!(ca);
    SyncConfig::from_str(Path::new("syncagent.config.json"), &v.to_string()).unwrap()
}

#[tokio::test]
async fn a_password_on_its_way_to_the_sync_agent_is_not_readable_on_the_wire() {
    let s = TestServer::start().await;
    let (domain, key) = sync_domain(&s).await;
    let (url, seen) = recording_proxy(s.url.trim_start_matches("https://").to_string()).await;
    let state = tempfile::tempdir().unwrap();
    let cfg = sync_config(&url, &key, state.path(), tether_testkit::ca_file());
    let session = Session::establish(&cfg.server, &cfg.state_dir(), "member_server").await.unwrap();

    let password = format!("Wire-Secret-{}!9", unique("pw"));
    let username = unique("wire");
    let r = s
        .call(
            "POST",
            "/api/systemusers",
            Some(json!({"username": username, "email": format!("{username}@corp.example.test"),
                        "firstname": "Wren", "lastname": "Wire"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap();
    s.bind_user(&domain, id).await;
    let r = s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"password": password}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // The entry the agent received through the proxy does carry the password...
    let entries = serde_json::to_value(session.sync_poll(5_000).await.unwrap()).unwrap();
    let entries = entries.as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["objectId"] == id && e["password"] == password.as_str()),
        "the password travels in the user's feed entry: {entries:?}"
    );
    let token = std::fs::read_to_string(state.path().join("agent.json")).unwrap();
    let token: serde_json::Value = serde_json::from_str(&token).unwrap();
    let token = token["token"].as_str().unwrap().to_string();

    // ...yet none of the secrets that crossed the link can be read from its bytes.
    let wire = seen.lock().unwrap().clone();
    assert!(wire.len() > 2_000, "the proxy saw the exchange ({} bytes)", wire.len());
    for (what, secret) in [("password", password.as_str()), ("agent token", &token), ("connect key", &key)] {
        assert!(!contains(&wire, secret), "the {what} is readable on the wire");
    }
    assert!(!contains(&wire, "/api/agent/v1/"), "request lines are readable on the wire");
}

#[tokio::test]
async fn an_agent_that_does_not_trust_tetherds_certificate_refuses_to_connect() {
    let s = TestServer::start().await;
    let (_, key) = sync_domain(&s).await;
    let other = Pki::generate("Some other CA");
    let state = tempfile::tempdir().unwrap();
    let cfg = sync_config(&s.url, &key, state.path(), &other.ca_file);
    let Err(err) = Session::establish(&cfg.server, &cfg.state_dir(), "member_server").await else {
        panic!("registered with a server whose certificate it cannot verify");
    };
    let err = err.to_string();
    assert!(err.contains("certificate") && err.contains("UnknownIssuer"), "a clear reason: {err}");

    // The connect key was not spent on the impostor check: with the right CA it registers.
    let cfg = sync_config(&s.url, &key, state.path(), tether_testkit::ca_file());
    Session::establish(&cfg.server, &cfg.state_dir(), "member_server").await.expect("registers");
}
