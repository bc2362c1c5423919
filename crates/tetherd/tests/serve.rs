//! The real `tetherd serve` binary: the `listening on` line, /health, the bootstrap key
//! (created once, stored hashed), and configuration errors that name the flag.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use tether_testkit::{daemon, Daemon};

fn start(dir: &std::path::Path, key: &str) -> (Daemon, String) {
    let (d, url) = daemon(
        Command::new(env!("CARGO_BIN_EXE_tetherd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("TETHER_BOOTSTRAP_API_KEY", key),
    );
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{url}");
    (d, url)
}

#[tokio::test]
async fn serve_prints_address_and_bootstraps_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = "bootstrap-key-0123456789";
    let (d, url) = start(dir.path(), key);
    let c = reqwest::Client::new();
    let r = c.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"status": "ok"}));
    let r = c.get(format!("{url}/api/systemusers")).header("x-api-key", key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    drop(d);
    // The key is stored hashed, never in clear.
    let db = std::fs::read(dir.path().join("tether.db")).unwrap();
    assert!(!db.windows(key.len()).any(|w| w == key.as_bytes()));
    // A restart with another bootstrap key does not add it: an administrator exists.
    let (_d, url) = start(dir.path(), "another-key-0123456789");
    let r = c.get(format!("{url}/api/systemusers")).header("x-api-key", "another-key-0123456789").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c.get(format!("{url}/api/systemusers")).header("x-api-key", key).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// The embedded store serves one tetherd: a second one on the same data directory refuses to
/// start and says why, and the directory is free again once the first has stopped.
#[tokio::test]
async fn a_second_tetherd_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = "bootstrap-key-0123456789";
    let (first, _) = start(dir.path(), key);
    let mut second = Command::new(env!("CARGO_BIN_EXE_tetherd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It would otherwise serve on: give up waiting (and fail) after 30 s.
    let mut status = None;
    for _ in 0..300 {
        status = second.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let Some(status) = status else {
        second.kill().unwrap();
        panic!("a second tetherd started on the same data directory");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("--data-dir") && err.contains("in use by another tetherd"), "{err}");
    drop(first);
    let (_again, url) = start(dir.path(), key);
    let r = reqwest::get(format!("{url}/health")).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn bad_flags_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_tetherd")).args(["serve", "--listen", "not-an-address"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
    let out =
        Command::new(env!("CARGO_BIN_EXE_tetherd")).args(["serve", "--agent-delete-grace", "soon"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--agent-delete-grace"));
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing written on bad flags");
}

#[tokio::test]
async fn secrets_never_reach_the_server_log_in_either_format() {
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let key = "bootstrap-key-secret-0123456789";
        let mut child = Command::new(env!("CARGO_BIN_EXE_tetherd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("TETHER_BOOTSTRAP_API_KEY", key)
            .env("TETHER_LOG", "trace")
            .env("TETHER_LOG_FORMAT", format)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").unwrap().to_string();
        let c = reqwest::Client::new();
        let pw = "Very-Secret-Passw0rd";
        let body = serde_json::json!({"username": "sec", "email": "sec@x.io", "password": pw});
        assert_eq!(
            c.post(format!("{url}/api/systemusers"))
                .header("x-api-key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let v = serde_json::json!({"username": "sec", "password": pw});
        assert_eq!(
            c.post(format!("{url}/api/v2/auth/verify"))
                .header("x-api-key", key)
                .json(&v)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("tetherd serving"), "{log}");
        assert!(!log.contains(pw) && !log.contains(key), "{format}: a secret leaked into the log");
        if format == "json" {
            for l in log.lines().filter(|l| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
                assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
            }
        }
    }
    let out =
        Command::new(env!("CARGO_BIN_EXE_tetherd")).args(["serve"]).env("TETHER_LOG_FORMAT", "xml").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TETHER_LOG_FORMAT"));
}
