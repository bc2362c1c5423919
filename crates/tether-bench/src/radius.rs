//! `tether-bench radius --users 10000`: Tether's RADIUS front end side by side with
//! FreeRADIUS (Debian's, started by the benchmark with a configuration of its own on a free
//! port, its `files` module holding the same users), PAP Access-Requests/s and p50/p99 at
//! 64 outstanding requests, and each server's peak memory.
//!
//! Two measures, each in turns (FreeRADIUS, Tether, FreeRADIUS, Tether):
//! - **the same stored hash**: every user's password as the same SHA-512-crypt hash
//!   (`$6$`, 5,000 rounds) in both. FreeRADIUS hashes every request. Tether upgrades a
//!   captured crypt hash to argon2id at a user's first login (a warm-up logs the measured
//!   users in once on both servers) and then answers returning users from its cache of
//!   verified credentials: what a Wi-Fi network sends (the same users again and again).
//! - **FreeRADIUS with cleartext passwords** (no hash at all: its fastest path) against the
//!   same Tether.
//!
//! Requests carry Message-Authenticator (both servers require it); an answer counts only
//! when it is an Access-Accept for its request.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tether_server::radius::packet::{self, attr, Code};
use tether_store::Edge;
use tether_testkit::{workspace_root, TestServer};

use crate::ldap::{seed, username, PASSWORD};
use crate::parts::Part;
use crate::stats::dist;

const SECRET: &str = "bench-radius-s3cret-16";
/// Returning users of the measures.
const RETURNING: usize = 200;

/// (Internal, in the `serve-radius` process) tetherd with `users` users in `groups` groups,
/// every group associated with a RADIUS server for 127.0.0.1; prints the RADIUS address.
pub async fn serve(users: usize, groups: usize, hash: &str) -> Result<()> {
    tether_server::memory::return_large_blocks_to_the_system();
    let s = TestServer::start().await;
    let body = json!({"name": "bench", "networkSourceIp": "127.0.0.1", "sharedSecret": SECRET});
    let r = s.call("POST", "/api/radiusservers", Some(body)).await;
    let server = r.body["id"].as_str().with_context(|| format!("the RADIUS server: {:?}", r.body))?.to_string();
    seed(&s, users, groups, hash, Edge::RadiusGroup, &server).await?;
    println!("{}", s.radius);
    std::future::pending::<()>().await;
    Ok(())
}

/// FreeRADIUS, killed when dropped.
struct FreeRadius {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Drop for FreeRadius {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// FreeRADIUS from a copy of Debian's configuration in `dir`: only `files` and `pap`, one
/// listener on a free port, the bench's client, `users` users with `password_line(i)`.
fn freeradius(dir: &Path, users: usize, password_line: impl Fn(usize) -> String) -> Result<FreeRadius> {
    let bin = Path::new("/usr/sbin/freeradius");
    if !bin.exists() {
        bail!("/usr/sbin/freeradius: install Debian's freeradius (apt-get install freeradius)");
    }
    let _ = std::fs::remove_dir_all(dir);
    let out = Command::new("cp").arg("-a").arg("/etc/freeradius/3.0").arg(dir).output()?;
    if !out.status.success() {
        bail!("copying /etc/freeradius/3.0: {}", String::from_utf8_lossy(&out.stderr));
    }
    for gone in ["mods-enabled/eap", "sites-enabled"] {
        let p = dir.join(gone);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
    }
    std::fs::create_dir_all(dir.join("sites-enabled"))?;
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    std::fs::write(
        dir.join("sites-enabled/bench"),
        format!(
            "server default {{\n listen {{\n  type = auth\n  ipaddr = 127.0.0.1\n  port = {port}\n }}\n \
             authorize {{\n  files\n  pap\n }}\n authenticate {{\n  Auth-Type PAP {{\n   pap\n  }}\n }}\n}}\n"
        ),
    )?;
    std::fs::write(
        dir.join("clients.conf"),
        format!("client bench {{\n ipaddr = 127.0.0.1\n secret = {SECRET}\n require_message_authenticator = yes\n}}\n"),
    )?;
    let mut users_file = String::new();
    for i in 0..users {
        users_file.push_str(&password_line(i));
        users_file.push('\n');
    }
    std::fs::write(dir.join("mods-config/files/authorize"), users_file)?;
    // FreeRADIUS drops to its own user: the copy must be readable to it.
    let _ = Command::new("chmod").args(["-R", "a+rX"]).arg(dir).status();
    let child = Command::new(bin)
        .args(["-f", "-l", "stdout", "-d"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(FreeRadius { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) })
}

/// One PAP request of `user` (Message-Authenticator included) and whether the answer is an
/// Access-Accept of it; `None` when no answer came within 2 s.
async fn pap(socket: &tokio::net::UdpSocket, to: SocketAddr, id: u8, user: &str) -> Result<Option<bool>> {
    let mut auth = [0u8; 16];
    getrandom::fill(&mut auth).expect("the OS random source works");
    let attrs = vec![
        (attr::USER_NAME, user.as_bytes().to_vec()),
        (attr::USER_PASSWORD, packet::hide_password(PASSWORD.as_bytes(), SECRET.as_bytes(), &auth)),
    ];
    let req = packet::request(Code::AccessRequest, id, &auth, &attrs, SECRET.as_bytes());
    socket.send_to(&req, to).await?;
    let mut buf = vec![0u8; packet::MAX_LEN];
    loop {
        let got = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await;
        let Ok(r) = got else { return Ok(None) };
        let (n, _) = r?;
        // A late answer to an earlier request of this socket: not this one.
        if n < 20 || buf[1] != id {
            continue;
        }
        return Ok(Some(buf[0] == 2));
    }
}

/// Waits until `to` accepts `user`.
async fn ready(to: SocketAddr) -> Result<()> {
    let started = Instant::now();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let mut id = 0u8;
    loop {
        id = id.wrapping_add(1);
        if pap(&socket, to, id, &username(0)).await? == Some(true) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{to} never accepted {}", username(0));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A measure's latencies of accepted requests, its seconds, and its requests never answered.
type Round = (Vec<Duration>, f64, u64);

/// `outstanding` clients each keeping one request in flight for `seconds`, users picked
/// among the first `n`: accepted requests/s and their latencies; requests never answered
/// (2 s) are counted apart; any answer but an Access-Accept fails the measure.
async fn measure(to: SocketAddr, n: usize, outstanding: usize, seconds: u64) -> Result<Round> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let lost = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..outstanding {
        let (failures, lost) = (failures.clone(), lost.clone());
        tasks.push(tokio::spawn(async move {
            let mut socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
            let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (c as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
            let (mut lat, mut id) = (Vec::new(), 0u8);
            while Instant::now() < deadline {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                id = id.wrapping_add(1);
                if id == 0 {
                    // A new source port once its 256 identifiers are used, as a device does:
                    // servers remember answers by (address, port, identifier) for seconds.
                    socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
                }
                let t = Instant::now();
                match pap(&socket, to, id, &username(seed as usize % n)).await? {
                    Some(true) => lat.push(t.elapsed()),
                    Some(false) => drop(failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
                    None => drop(lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    let failed = failures.load(std::sync::atomic::Ordering::Relaxed);
    if failed > 0 {
        bail!("{to}: {failed} requests refused (and {} accepted)", all.len());
    }
    Ok((all, secs, lost.load(std::sync::atomic::Ordering::Relaxed)))
}

fn summary(rounds: Vec<Round>) -> Value {
    let secs: f64 = rounds.iter().map(|r| r.1).sum();
    let lost: u64 = rounds.iter().map(|r| r.2).sum();
    let all: Vec<Duration> = rounds.into_iter().flat_map(|r| r.0).collect();
    let per_s = (all.len() as f64 / secs).round();
    let mut d = dist(all);
    d["per_s"] = json!(per_s);
    d["unanswered"] = json!(lost);
    d
}

/// Both servers in turns for one measure: (FreeRADIUS, Tether) summaries and the ratio.
async fn side_by_side(fr: SocketAddr, tether: SocketAddr, outstanding: usize, seconds: u64) -> Result<Value> {
    let n = RETURNING;
    // The measured users have logged in before, on both servers alike.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    for to in [fr, tether] {
        for i in 0..n {
            if pap(&socket, to, (i % 250) as u8, &username(i)).await? != Some(true) {
                bail!("{to}: warm-up login of {} refused", username(i));
            }
        }
    }
    let (mut f, mut t) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        f.push(measure(fr, n, outstanding, seconds.div_ceil(2)).await.context("FreeRADIUS")?);
        t.push(measure(tether, n, outstanding, seconds.div_ceil(2)).await.context("tetherd")?);
    }
    let (f, t) = (summary(f), summary(t));
    let ratio = (t["per_s"].as_f64().unwrap_or(0.0) / f["per_s"].as_f64().unwrap_or(1.0) * 100.0).round() / 100.0;
    Ok(json!({"freeradius": f, "tether": t, "ratio_tether_to_freeradius": ratio}))
}

pub async fn run(users: usize, groups: usize, outstanding: usize, seconds: u64) -> Result<Value> {
    // The same SHA-512-crypt hash for every user, as crypt(3) makes it (FreeRADIUS checks
    // it with crypt(3); Tether with its SHA-512-crypt verifier).
    let crypt = sha_crypt::sha512_simple(PASSWORD, &sha_crypt::Sha512Params::new(5_000).expect("valid rounds"))
        .map_err(|e| anyhow::anyhow!("sha512-crypt: {e:?}"))?;
    let dir = workspace_root().join("target/bench-freeradius");
    let hash_file = dir.with_extension("hash");
    std::fs::create_dir_all(workspace_root().join("target"))?;
    std::fs::write(&hash_file, &crypt)?;
    let mut tether = Part::spawn(&[
        "serve-radius",
        "--users",
        &users.to_string(),
        "--groups",
        &groups.to_string(),
        "--hash-file",
        &hash_file.display().to_string(),
    ])?;
    let tether_addr: SocketAddr = tether.first_line()?.parse().context("tetherd's RADIUS address")?;
    ready(tether_addr).await.context("tetherd")?;

    let mut measures = serde_json::Map::new();
    let mut freeradius_rss = 0.0f64;
    // (measure, FreeRADIUS's check item and value for every user)
    let rows = [
        ("pap_same_sha512_crypt_hash", "Crypt-Password", crypt.as_str()),
        ("pap_freeradius_cleartext", "Cleartext-Password", PASSWORD),
    ];
    for (name, item, value) in rows {
        let fr = freeradius(&dir, users, |i| format!("{} {item} := \"{value}\"", username(i)))?;
        ready(fr.addr).await.context("FreeRADIUS")?;
        measures.insert(name.to_string(), side_by_side(fr.addr, tether_addr, outstanding, seconds).await?);
        freeradius_rss = freeradius_rss.max(crate::parts::peak_rss_mb_of(fr.child.id()));
    }
    Ok(json!({
        "users": users,
        "groups": groups,
        "outstanding": outstanding,
        "returning_users": RETURNING,
        "seconds_per_measure": seconds,
        "cores": std::thread::available_parallelism().map(|c| c.get()).unwrap_or(0),
        "measures": Value::Object(measures),
        "peak_rss_mb": {"tetherd": (tether.peak_rss_mb() * 10.0).round() / 10.0, "freeradius": freeradius_rss},
    }))
}
