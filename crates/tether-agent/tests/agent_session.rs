//! The agents against a real tetherd (in-process) and the real Samba DC: registration,
//! restart from StateDir, pause, and revocation on delete.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tether_agent::config::{ImportConfig, SyncConfig};
use tether_agent::runner::{run_import, run_sync};
use tether_agent::AgentError;
use tether_testkit::{dc, unique, with_keys, TestServer};

async fn new_agent(s: &TestServer, use_case: &str, agent_type: &str) -> (String, String, String) {
    let domain = s
        .create(
            "/api/v2/activedirectories",
            json!({"domain": format!("DC={},DC=test", unique("d")), "useCase": use_case}),
        )
        .await;
    let a = s
        .call("POST", &format!("/api/v2/activedirectories/{domain}/agents"), Some(json!({"agentType": agent_type})))
        .await;
    (domain, a.body["id"].as_str().unwrap().to_string(), a.body["connectKey"].as_str().unwrap().to_string())
}

fn import_config(s: &TestServer, key: &str, state: &Path) -> ImportConfig {
    let d = dc();
    let v = with_keys(
        d.import_agent_config(&s.url, key, state, &d.users_container(), &d.group_dn),
        json!({"MainLoop": {"PollIntervalSeconds": 0.1}}),
    );
    ImportConfig::from_str(Path::new("test.json"), &v.to_string()).unwrap()
}

async fn agent_json(s: &TestServer, domain: &str, agent: &str) -> Value {
    s.call("GET", &format!("/api/v2/activedirectories/{domain}/agents/{agent}"), None).await.body
}

async fn wait_for(f: impl AsyncFnMut() -> bool) {
    tether_testkit::eventually("the agent's state", Duration::from_secs(5), f).await
}

#[tokio::test]
async fn import_agent_registers_restarts_and_is_revoked_on_delete() {
    let s = TestServer::start().await;
    let (domain, agent, key) = new_agent(&s, "TWOWAYSYNC", "IMPORT").await;
    let state = tempfile::tempdir().unwrap();
    let cfg = import_config(&s, &key, state.path());

    // First run: connects to AD, registers, heartbeats; stopped after it is active.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(run_import(cfg.clone(), async {
        let _ = stopped.await;
    }));
    wait_for(async || agent_json(&s, &domain, &agent).await["state"] == "active").await;
    let a = agent_json(&s, &domain, &agent).await;
    assert_eq!(a["installedOn"], "member_server");
    assert!(a["hostname"].is_string() && a["version"].is_string());
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();

    // Restart with the same StateDir: no new key needed (the key is spent, the token is kept).
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("agent.json")).unwrap()).unwrap();
    assert_eq!(saved["agent_id"], agent.as_str());
    let run = tokio::spawn(run_import(cfg.clone(), std::future::pending()));
    let before = agent_json(&s, &domain, &agent).await["contactAt"].clone();
    wait_for(async || agent_json(&s, &domain, &agent).await["contactAt"] != before).await;

    // Pause, wait out the grace, delete: the running agent stops and says why.
    s.call("POST", &format!("/api/v2/activedirectories/{domain}/agents/{agent}/pause"), None).await;
    s.advance(time::Duration::seconds(901));
    assert_eq!(s.call("DELETE", &format!("/api/v2/activedirectories/{domain}/agents/{agent}"), None).await.status, 204);
    let r = tokio::time::timeout(Duration::from_secs(5), run).await.expect("agent stops").unwrap();
    assert!(matches!(r, Err(AgentError::Revoked)), "{r:?}");
}

#[tokio::test]
async fn a_crash_between_token_and_registration_resumes_with_the_same_key() {
    let s = TestServer::start().await;
    let (domain, agent, key) = new_agent(&s, "ADASAUTHORITY", "IMPORT").await;
    let state = tempfile::tempdir().unwrap();
    // As if killed after writing its token but before the registration answer was saved.
    std::fs::write(state.path().join("agent.json"), json!({"token": "a".repeat(64)}).to_string()).unwrap();
    let cfg = import_config(&s, &key, state.path());
    // Registered once already by the "killed" process...
    let r = s
        .call_as(None, "POST", "/api/agent/v1/register", Some(json!({"connectKey": key, "token": "a".repeat(64)})))
        .await;
    assert_eq!(r.status, 200);
    // ...the restarted agent registers again with the same key and token and goes on.
    let run = tokio::spawn(run_import(cfg, std::future::pending()));
    wait_for(async || agent_json(&s, &domain, &agent).await["hostname"].is_string()).await;
    run.abort();
}

#[tokio::test]
async fn sync_agent_registers_and_bad_ad_credentials_stop_it_with_the_reason() {
    let s = TestServer::start().await;
    let (domain, agent, key) = new_agent(&s, "JCASAUTHORITY", "SYNC").await;
    let d = dc();
    let state = tempfile::tempdir().unwrap();
    let mut v = with_keys(
        d.sync_agent_config(&s.url, &key, state.path(), &d.users_container(), &d.group_dn),
        json!({"poll_interval_seconds": 0.1}),
    );
    let cfg = SyncConfig::from_str(Path::new("s.json"), &v.to_string()).unwrap();
    let run = tokio::spawn(run_sync(cfg, std::future::pending()));
    wait_for(async || agent_json(&s, &domain, &agent).await["state"] == "active").await;
    run.abort();

    v["Ldap"]["BindPassword"] = json!("wrong-password");
    let cfg = SyncConfig::from_str(Path::new("s.json"), &v.to_string()).unwrap();
    let err = run_sync(cfg, std::future::pending()).await.unwrap_err().to_string();
    assert!(err.contains("invalid credentials"), "{err}");
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let s = TestServer::start().await;
    let (_, _, key) = new_agent(&s, "TWOWAYSYNC", "IMPORT").await;
    let state = tempfile::tempdir().unwrap();
    let d = dc();
    let path = state.path().join("importagent.config.json");
    let v = with_keys(
        d.import_agent_config(&s.url, &key, state.path(), &d.users_container(), &d.group_dn),
        json!({"MainLoop": {"PollIntervalSeconds": 0.2}}),
    );
    std::fs::write(&path, v.to_string()).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tether-agent"))
        .args(["import", "--config"])
        .arg(&path)
        .env("TETHER_LOG", "trace")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("import agent running"), "the agent ran: {log}");
    let token: Value =
        serde_json::from_str(&std::fs::read_to_string(state.path().join("agent.json")).unwrap()).unwrap();
    for secret in [d.import_password.as_str(), key.as_str(), token["token"].as_str().unwrap()] {
        assert!(!log.contains(secret), "a secret leaked into the log");
    }
}
