//! `tetherd` itself killed (SIGKILL) and restarted on the same data directory while the
//! import agent applies its first cycle against the real Samba DC: no user lost, none
//! created twice.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tether_ad::{connect, create_group, create_user, set_member, NewUser};
use tether_testkit::{dc, unique};

/// A free port on loopback (bound, then released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn tetherd(port: u16, dir: &Path, key: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_tetherd"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .env("TETHER_BOOTSTRAP_API_KEY", key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_up(c: &reqwest::Client, url: &str) {
    for _ in 0..100 {
        if c.get(format!("{url}/health")).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tetherd did not come up");
}

#[tokio::test]
async fn tetherd_killed_mid_import_loses_and_duplicates_nothing() {
    let n = 100;
    let (port, data) = (free_port(), tempfile::tempdir().unwrap());
    let key = "fault-admin-key-0123456789";
    let url = format!("http://127.0.0.1:{port}");
    let c = reqwest::Client::new();
    let mut server = tetherd(port, data.path(), key);
    wait_up(&c, &url).await;
    let post = |path: &str, body: Value| c.post(format!("{url}{path}")).header("x-api-key", key).json(&body).send();
    let d: Value =
        post("/api/v2/activedirectories", json!({"domain": dc().base_dn})).await.unwrap().json().await.unwrap();
    let a: Value = post(&format!("/api/v2/activedirectories/{}/agents", d["id"].as_str().unwrap()), json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let mut ldap = connect(&dc().admin_target()).await.unwrap();
    let users = dc().users_container();
    let adi = create_group(&mut ldap, &users, &unique("radi")).await.unwrap();
    let prefix = unique("r");
    for i in 0..n {
        let sam = format!("{prefix}{i:03}");
        let dn = create_user(
            &mut ldap,
            &NewUser {
                container: &users,
                sam_account_name: &sam,
                given_name: "Re",
                sn: &sam,
                mail: &format!("{sam}@corp.example.test"),
                password: None,
            },
        )
        .await
        .unwrap();
        set_member(&mut ldap, &adi, &dn, true).await.unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("importagent.config.json");
    let v = tether_testkit::with_keys(
        dc().import_agent_config(&url, a["connectKey"].as_str().unwrap(), state.path(), &users, &adi),
        json!({"MainLoop": {"PollIntervalSeconds": 0.2}}),
    );
    std::fs::write(&path, v.to_string()).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let cfg = tether_agent::config::ImportConfig::load(&path).unwrap();
    let agent = tokio::spawn(tether_agent::runner::run_import(cfg, std::future::pending()));

    // Kill tetherd (SIGKILL) while the first cycle is being applied, then restart it.
    for delay in [300u64, 700] {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill().unwrap();
        server.wait().unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        server = tetherd(port, data.path(), key);
        wait_up(&c, &url).await;
    }
    let count = || async {
        let r: Value = c
            .get(format!("{url}/api/systemusers?limit=1&filter=externally_managed:$eq:true"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["totalCount"].as_u64().unwrap_or(0)
    };
    for _ in 0..120 {
        if count().await == n as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    agent.abort();
    assert_eq!(count().await, n as u64, "every user imported, none twice");
    // Each user was created exactly once.
    let all: Value = c
        .get(format!("{url}/api/systemusers?limit=100"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for u in all["results"].as_array().unwrap() {
        let h: Value = c
            .get(format!("{url}/api/v2/users/{}/history?limit=100", u["id"].as_str().unwrap()))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let creates = h.as_array().unwrap().iter().filter(|e| e["action"] == "create").count();
        assert_eq!(creates, 1, "{}", u["username"]);
    }
    server.kill().unwrap();
}
