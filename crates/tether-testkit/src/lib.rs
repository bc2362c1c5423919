//! Fixtures for integration tests: an in-process `tetherd` on port 0 with a temporary
//! database ([`TestServer`]), one Samba AD DC shared by the whole test run ([`dc`]), and one
//! PostgreSQL server shared by the run with a fresh database per test ([`postgres`],
//! [`postgres_db`]).
//!
//! The DC is provisioned by the project's own `scripts/ad-sandbox.sh`, never mocked. nextest
//! runs every test in its own process, so "one DC per run" is arranged on disk: the first
//! test to need it provisions and starts it under a file lock, later ones find it running.
//! `scripts/test.sh` provisions a fresh one before the run and stops it afterwards.

mod cut;
mod daemon;
mod pki;
mod postgres;
pub mod radius;
mod server;
mod smtp;

pub use cut::TcpCut;
pub use daemon::{daemon, Daemon};
pub use pki::{ca_file, client, pki, Pki, PKI_DIR_VAR};
pub use postgres::{postgres, postgres_db, PgDatabase};
pub use server::{Reply, TestServer};
pub use smtp::smtp_relay;

use serde_json::{json, Value};

/// A typed answer as JSON, for tests that read it by key.
pub fn json_of<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("serializes")
}

/// The value of `series` (its name and labels exactly as exposed) in the Prometheus text
/// `text`; `None` when absent. A value that is not a number fails the test.
pub fn metric_in(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map(|v| v.parse().unwrap_or_else(|e| panic!("{series}: {v:?} is not a number: {e}")))
}

/// [`metric_in`] of `{base}/metrics` (tetherd's, or an agent's `MetricsListen`).
pub async fn metric_at(base: &str, series: &str) -> Option<f64> {
    let text = client().get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    metric_in(&text, series)
}

/// Polls `f` (every 50 ms) until it holds; fails the test, naming `what`, when it still
/// does not after `within`.
pub async fn eventually(what: &str, within: std::time::Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if f().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("not within {within:?}: {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `base` (a JSON object) with the top-level keys of `more` added or replaced.
pub fn with_keys(mut base: Value, more: Value) -> Value {
    if let (Some(b), Value::Object(m)) = (base.as_object_mut(), more) {
        b.extend(m);
    }
    base
}

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Connection facts of the shared test DC (the variables `ad-sandbox.sh env` prints).
#[derive(Clone, Debug)]
pub struct Dc {
    pub dir: PathBuf,
    pub url: String,
    pub host: String,
    pub realm: String,
    pub base_dn: String,
    pub admin_dn: String,
    pub admin_password: String,
    pub ca_file: String,
    pub import_dn: String,
    pub import_password: String,
    pub group_dn: String,
    pub seed_prefix: String,
    pub seed_password: String,
}

impl Dc {
    /// An import agent's configuration (`importagent.config.json`) against this DC, as the
    /// import account, installed on a member server; add keys with [`with_keys`].
    pub fn import_agent_config(&self, server: &str, key: &str, state: &Path, root: &str, adi: &str) -> Value {
        json!({
            "Server": {"Url": server, "ConnectKey": key, "StateDir": state, "CaFile": pki::ca_file()},
            "Ldap": {"Url": self.url, "BindDn": self.import_dn, "BindPassword": self.import_password,
                     "CaFile": self.ca_file, "RootUserContainer": root, "AdiGroup": adi},
            "InstalledOn": "member_server"
        })
    }

    /// A sync agent's configuration (`syncagent.config.json`) against this DC, as the
    /// domain Administrator; add keys with [`with_keys`].
    pub fn sync_agent_config(&self, server: &str, key: &str, state: &Path, root: &str, sync_group: &str) -> Value {
        json!({
            "Server": {"Url": server, "ConnectKey": key, "StateDir": state, "CaFile": pki::ca_file()},
            "Ldap": {"Url": self.url, "BindDn": self.admin_dn, "BindPassword": self.admin_password, "CaFile": self.ca_file},
            "user_root_dn": root, "sync_group": sync_group
        })
    }

    /// `CN=Users,<base>`.
    pub fn users_container(&self) -> String {
        format!("CN=Users,{}", self.base_dn)
    }

    /// LDAPS as the domain Administrator, certificate verified against the sandbox CA.
    pub fn admin_target(&self) -> tether_ad::LdapTarget {
        tether_ad::LdapTarget {
            url: self.url.clone(),
            bind_dn: self.admin_dn.clone(),
            bind_password: self.admin_password.clone(),
            ca_file: Some(self.ca_file.clone()),
            insecure_skip_verify: false,
        }
    }

    /// The same as the least-privileged import account.
    pub fn import_target(&self) -> tether_ad::LdapTarget {
        tether_ad::LdapTarget {
            bind_dn: self.import_dn.clone(),
            bind_password: self.import_password.clone(),
            ..self.admin_target()
        }
    }
}

/// The workspace root (where `scripts/` lives).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The loopback address of the test DC (the development sandbox uses 127.0.0.2).
const TEST_DC_IP: &str = "127.0.0.9";

fn sandbox(args: &[&str], dir: &Path) -> String {
    let script = workspace_root().join("scripts/ad-sandbox.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    if !out.status.success() {
        panic!(
            "ad-sandbox.sh {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Parses `export K='v'` lines.
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).unwrap_or(v);
            (k.to_string(), v.replace("'\\''", "'"))
        })
        .collect()
}

/// Runs `ad-sandbox.sh CMD --dir DIR` (for tests that stop and start their own DC).
pub fn sandbox_cmd(cmd: &str, dir: &Path) {
    sandbox(&[cmd], dir);
}

/// A DC of its own for a test that must stop it (an outage must not hit the shared DC):
/// provisioned in `target/<name>` on the first free loopback address from 127.0.0.40.
pub fn private_dc(name: &str) -> Dc {
    private_dc_with(name, &[])
}

/// A running private DC, stopped when this drops (a failing test leaves no DC behind).
pub struct OwnDc(pub Dc);

impl Drop for OwnDc {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(workspace_root().join("scripts/ad-sandbox.sh"))
            .args(["down", "--dir"])
            .arg(&self.0.dir)
            .output();
    }
}

/// A DC of another forest (realm `realm`, NetBIOS name `netbios`), for tests of several AD
/// domains: provisioned like [`private_dc`], stopped when the answer drops.
pub fn dc_in_realm(name: &str, realm: &str, netbios: &str) -> OwnDc {
    OwnDc(private_dc_with(name, &["--realm", realm, "--domain", netbios]))
}

fn private_dc_with(name: &str, options: &[&str]) -> Dc {
    let dir = workspace_root().join("target").join(name);
    if dir.exists() {
        let _ = Command::new("bash")
            .arg(workspace_root().join("scripts/ad-sandbox.sh"))
            .args(["down", "--dir"])
            .arg(&dir)
            .output();
        std::fs::remove_dir_all(&dir).expect("remove the old private DC");
    }
    let ip = claim_address(name);
    sandbox(&[&["up", "--ip", &ip][..], options].concat(), &dir);
    sandbox(&["seed", "--users", "5"], &dir);
    dc_from(dir.clone(), &parse_env(&sandbox(&["env"], &dir)))
}

/// A loopback address from 127.0.0.40 for the private DC `name`, claimed for good with a file
/// under `target/private-dc-addresses`: "free right now" is not enough, since a test that
/// stops its DC (an outage) frees its address for a moment and must find it again.
fn claim_address(name: &str) -> String {
    let claims = workspace_root().join("target/private-dc-addresses");
    std::fs::create_dir_all(&claims).expect("create the address claims");
    let in_use = |ip: &str| {
        ["636", "389", "88"].iter().any(|port| {
            let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().expect("addr");
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)).is_ok()
        })
    };
    for n in 40..100 {
        let ip = format!("127.0.0.{n}");
        let claim = claims.join(&ip);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&claim) {
            Ok(mut f) => {
                std::io::Write::write_all(&mut f, name.as_bytes()).expect("write the claim");
                if in_use(&ip) {
                    // Taken by something else (the claim stays, so nobody tries it again).
                    continue;
                }
                return ip;
            }
            Err(_) if std::fs::read_to_string(&claim).is_ok_and(|owner| owner == name) => return ip,
            Err(_) => continue,
        }
    }
    panic!("no loopback address left for the private DC {name}");
}

fn dc_from(dir: PathBuf, env: &HashMap<String, String>) -> Dc {
    let get = |k: &str| env.get(k).cloned().unwrap_or_else(|| panic!("ad-sandbox.sh env has no {k}"));
    Dc {
        dir,
        url: get("TETHER_AD_URL"),
        host: get("TETHER_AD_HOST"),
        realm: get("TETHER_AD_REALM"),
        base_dn: get("TETHER_AD_BASE_DN"),
        admin_dn: get("TETHER_AD_ADMIN_DN"),
        admin_password: get("TETHER_AD_ADMIN_PASSWORD"),
        ca_file: get("TETHER_AD_CA_FILE"),
        import_dn: get("TETHER_AD_IMPORT_DN"),
        import_password: get("TETHER_AD_IMPORT_PASSWORD"),
        group_dn: get("TETHER_AD_GROUP_DN"),
        seed_prefix: get("TETHER_AD_SEED_PREFIX"),
        seed_password: get("TETHER_AD_SEED_PASSWORD"),
    }
}

/// The shared Samba DC of this test run, started (and seeded with 20 users) if needed.
/// Its directory is `$TETHER_TEST_AD_DIR`, or `target/test-ad` in the workspace.
pub fn dc() -> &'static Dc {
    static DC: OnceLock<Dc> = OnceLock::new();
    DC.get_or_init(|| {
        let dir = std::env::var_os("TETHER_TEST_AD_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target/test-ad"));
        std::fs::create_dir_all(dir.parent().expect("dir has a parent")).expect("create parent dir");
        let lock_path = dir.with_extension("lock");
        let lock = std::fs::File::create(&lock_path).expect("create lock file");
        lock.lock().expect("lock the test DC");
        sandbox(&["up", "--ip", TEST_DC_IP], &dir);
        sandbox(&["seed", "--users", "20"], &dir);
        let env = parse_env(&sandbox(&["env"], &dir));
        lock.unlock().expect("unlock");
        dc_from(dir, &env)
    })
}

/// A name unique to this test process, for isolating tests that share the DC or a server.
/// One of OpenLDAP's client tools (`ldapsearch`, `ldapwhoami`, `ldappasswd`, from Debian's
/// ldap-utils) set to trust the run's test CA only: the system's ldap.conf and any ldaprc
/// are ignored (`LDAPNOINIT` would ignore the `LDAPTLS_*` variables too).
pub fn ldap_tool(tool: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(tool);
    c.env("LDAPCONF", "/dev/null")
        .env("LDAPRC", "tether-test-no-ldaprc")
        .env("LDAPTLS_CACERT", &pki().ca_file)
        .env("LDAPTLS_REQCERT", "demand");
    c
}

pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}{:05x}{n}", (nanos ^ std::process::id()) & 0xfffff)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_exports() {
        let env = super::parse_env("export A='x y'\nexport B='it'\\''s'\nnoise\n");
        assert_eq!(env["A"], "x y");
        assert_eq!(env["B"], "it's");
    }
}
