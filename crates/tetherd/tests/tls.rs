//! `tetherd serve` over HTTPS: the `listening on https://` line, a certificate its clients
//! verify, the refusal to serve plain HTTP beyond loopback, and a certificate replaced on
//! SIGHUP without dropping open connections.

use std::path::Path;
use std::process::Command;

use tether_testkit::{daemon, Daemon, Pki};

fn tetherd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tetherd"));
    c.args(["serve", "--data-dir"]).arg(dir).args(args).env("TETHER_BOOTSTRAP_API_KEY", "bootstrap-key-0123456789");
    c
}

fn start_tls(dir: &Path, cert: &Path, key: &Path) -> (Daemon, String) {
    let (d, url) = daemon(tetherd(dir, &["--listen", "127.0.0.1:0", "--tls-cert"]).arg(cert).arg("--tls-key").arg(key));
    assert!(url.starts_with("https://127.0.0.1:") && !url.ends_with(":0"), "{url}");
    (d, url)
}

fn refusal(dir: &Path, args: &[&str]) -> String {
    let out = tetherd(dir, args).output().unwrap();
    assert!(!out.status.success(), "{args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn https_with_a_private_ca_and_a_wrong_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate("tetherd TLS test CA");
    let (_d, url) = start_tls(dir.path(), &pki.cert_file, &pki.key_file);
    let r = pki.client().get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A client that does not trust this CA gets no answer.
    let other = Pki::generate("Another CA");
    let e = other.client().get(format!("{url}/health")).send().await.unwrap_err();
    let chain = format!("{e:?}");
    assert!(chain.contains("UnknownIssuer"), "{chain}");
    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::new().get(format!("{}/health", url.replace("https://", "http://"))).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // The CLI with --ca-file, and without it (the system's roots do not know this CA).
    let cli = |ca: Option<&Path>| {
        // The workspace's `tether` binary, built beside `tetherd`.
        let mut c = Command::new(Path::new(env!("CARGO_BIN_EXE_tetherd")).with_file_name("tether"));
        c.args(["users", "list", "--url", &url, "--api-key", "bootstrap-key-0123456789"]);
        if let Some(ca) = ca {
            c.arg("--ca-file").arg(ca);
        }
        c.output().unwrap()
    };
    let ok = cli(Some(&pki.ca_file));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let refused = cli(None);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("certificate") && err.contains("UnknownIssuer"), "{err}");
    let refused = cli(Some(&other.ca_file));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("UnknownIssuer"));
}

#[test]
fn plain_http_beyond_loopback_is_refused_naming_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let err = refusal(dir.path(), &["--listen", "0.0.0.0:0"]);
    assert!(err.contains("--tls-cert") && err.contains("--tls-key") && err.contains("--plain-http"), "{err}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing written before the refusal");
    // Half a pair, or files that are not what they say, name the flags too.
    let pki = Pki::generate("flags CA");
    let cert = pki.cert_file.to_str().unwrap();
    assert!(refusal(dir.path(), &["--tls-cert", cert]).contains("--tls-key"));
    let err = refusal(dir.path(), &["--tls-cert", cert, "--tls-key", cert]);
    assert!(err.contains("--tls-key") && err.contains("tetherd.pem"), "{err}");
    let other = Pki::generate("mismatch CA");
    let err = refusal(dir.path(), &["--tls-cert", cert, "--tls-key", other.key_file.to_str().unwrap()]);
    assert!(err.contains("does not match"), "{err}");

    // Behind a TLS-terminating proxy the admin says so, and tetherd serves plain HTTP.
    let (_d, url) = daemon(&mut tetherd(dir.path(), &["--listen", "0.0.0.0:0", "--plain-http"]));
    assert!(url.starts_with("http://0.0.0.0:"), "{url}");
}

#[tokio::test]
async fn sighup_swaps_the_certificate_and_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (Pki::generate("First CA"), Pki::generate("Second CA"));
    let live = tempfile::tempdir().unwrap();
    let (cert, key) = (live.path().join("cert.pem"), live.path().join("key.pem"));
    std::fs::copy(&first.cert_file, &cert).unwrap();
    std::fs::copy(&first.key_file, &key).unwrap();
    let (d, url) = start_tls(dir.path(), &cert, &key);
    // One connection opened before the renewal, kept alive by the client's pool.
    let before = first.client_builder().pool_max_idle_per_host(1).build().unwrap();
    assert_eq!(before.get(format!("{url}/health")).send().await.unwrap().status(), 200);

    std::fs::copy(&second.cert_file, &cert).unwrap();
    std::fs::copy(&second.key_file, &key).unwrap();
    unsafe { libc::kill(d.0.id() as i32, libc::SIGHUP) };
    let mut renewed = false;
    for _ in 0..100 {
        if second.client().get(format!("{url}/health")).send().await.is_ok_and(|r| r.status() == 200) {
            renewed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(renewed, "new connections get the new certificate");
    assert!(first.client().get(format!("{url}/health")).send().await.is_err(), "the old certificate is gone");
    // The connection opened before the reload still answers.
    assert_eq!(before.get(format!("{url}/health")).send().await.unwrap().status(), 200);

    // A broken file keeps the certificate in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    unsafe { libc::kill(d.0.id() as i32, libc::SIGHUP) };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(second.client().get(format!("{url}/health")).send().await.unwrap().status(), 200);
}
