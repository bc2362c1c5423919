//! `tether-bench ldap --users 10000 --groups 500`: Tether's LDAP front end side by side with
//! OpenLDAP's slapd (Debian's, started by the benchmark on the same data in the same run):
//! simple binds/s and indexed `(uid=x)` searches/s at 32 concurrent connections over
//! StartTLS, p50/p99, and each server's peak memory.
//!
//! Both hold every user with the same argon2id hash (Tether's own parameters: slapd verifies
//! it with its argon2 module, `{ARGON2}`), so a bind costs both the same hash. Binds are
//! measured twice: each bind a user picked at random among all (almost every one the first
//! of that user in the run: Tether's cache of verified passwords cannot help), and binds of
//! 100 returning users (what hosts and applications send: Tether answers repeated ones from
//! that cache, slapd hashes each time).
//!
//! tetherd runs in a process of its own (this binary, `serve-ldap`), seeded through the
//! storage layer; slapd from an LDIF loaded with `slapadd`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tether_ad::ldap3::{Scope, SearchEntry};
use tether_ad::LdapTarget;
use tether_core::group::Group;
use tether_core::user::User;
use tether_store::{Collection, Edge, WriteOp};
use tether_testkit::{pki, workspace_root, TestServer};

use crate::parts::Part;
use crate::stats::dist;

pub(crate) const PASSWORD: &str = "Bench-Passw0rd!";
const READER: &str = "ldap-reader";
const BASE: &str = "o=tether";
/// Returning users of the second bind measure.
const RETURNING: usize = 100;

pub(crate) fn username(i: usize) -> String {
    format!("user{i:06}")
}

fn group_name(g: usize) -> String {
    format!("group{g:04}")
}

fn user_dn(name: &str) -> String {
    format!("uid={name},ou=Users,{BASE}")
}

/// (Internal, in the `serve-ldap` process) tetherd with `users` users in `groups` groups, all
/// in LDAP through their groups, each with `hash` as its password; prints the LDAP URL.
pub async fn serve(users: usize, groups: usize, hash: &str) -> Result<()> {
    tether_server::memory::return_large_blocks_to_the_system();
    let s = TestServer::start().await;
    let server =
        s.call("GET", "/api/v2/ldapservers", None).await.body[0]["id"].as_str().context("the LDAP server")?.to_string();
    seed(&s, users, groups, hash, Edge::LdapGroup, &server).await?;
    let reader = s
        .user(
            json!({"username": READER, "email": "reader@bench.test", "password": PASSWORD, "ldap_binding_user": true}),
        )
        .await;
    let r = s
        .call(
            "POST",
            &format!("/api/v2/ldapservers/{server}/associations"),
            Some(json!({"op": "add", "type": "user", "id": reader})),
        )
        .await;
    if !r.status.is_success() {
        bail!("associating the reader: {:?}", r.body);
    }
    println!("{}", s.ldap);
    std::future::pending::<()>().await;
    Ok(())
}

/// `users` users (`user000000`, …) spread over `groups` groups, each group linked to
/// `server` by `link`, every user with `hash` as its password; through the storage layer.
pub(crate) async fn seed(
    s: &TestServer,
    users: usize,
    groups: usize,
    hash: &str,
    link: Edge,
    server: &str,
) -> Result<()> {
    let store = s.repo().store();
    let group_ids: Vec<String> = (0..groups).map(|g| format!("{:024x}", 0xb000_0000usize + g)).collect();
    let mut batch = Vec::new();
    for (g, id) in group_ids.iter().enumerate() {
        let group = Group {
            id: id.clone(),
            name: group_name(g),
            attributes: json!({"posixGroups": [{"id": 20000 + g, "name": group_name(g)}]}),
            ..Group::default()
        };
        batch.push(WriteOp::Insert(Collection::Groups, tether_store::group_doc(&group)));
        batch.push(WriteOp::Link(link, server.to_string(), id.clone()));
    }
    store.write_batch(&batch).await?;
    for start in (0..users).step_by(2000) {
        let mut batch = Vec::new();
        for i in start..(start + 2000).min(users) {
            let u = user(i);
            batch.push(WriteOp::Insert(Collection::Users, tether_store::user_doc(&u)));
            batch.push(WriteOp::Link(Edge::Member, group_ids[i % groups].clone(), u.id.clone()));
        }
        store.write_batch(&batch).await?;
        for i in start..(start + 2000).min(users) {
            store.put_secret(&user(i).id, tether_store::Secret::Password, Some(hash)).await?;
        }
    }
    Ok(())
}

fn user(i: usize) -> User {
    let mut u = User {
        id: format!("{:024x}", 0xa000_0000usize + i),
        username: username(i),
        email: format!("{}@bench.test", username(i)),
        firstname: "Bench".into(),
        lastname: format!("User{i}"),
        unix_uid: Some(10_000 + i as u32),
        unix_guid: Some(20_000),
        has_password: true,
        created: "2026-11-27T00:00:00Z".into(),
        ..User::default()
    };
    u.refresh_derived();
    u
}

/// The same directory as LDIF for slapd: the base, the two containers, users
/// (`inetOrgPerson` + `posixAccount`, `{ARGON2}` password) and groups (`posixGroup` with
/// `memberUid`: slapd's schema has no class that is both a `groupOfNames` and a
/// `posixGroup`).
fn ldif(users: usize, groups: usize, hash: &str) -> String {
    let mut out = format!(
        "dn: {BASE}\nobjectClass: organization\no: tether\n\n\
         dn: ou=Users,{BASE}\nobjectClass: organizationalUnit\nou: Users\n\n\
         dn: ou=Groups,{BASE}\nobjectClass: organizationalUnit\nou: Groups\n\n"
    );
    let mut person = |name: &str, uid: usize, first: &str, last: &str| {
        out.push_str(&format!(
            "dn: {dn}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\nuid: {name}\ncn: {first} {last}\n\
             givenName: {first}\nsn: {last}\nmail: {name}@bench.test\nuidNumber: {uid}\ngidNumber: 20000\n\
             homeDirectory: /home/{name}\nloginShell: /bin/bash\nuserPassword: {{ARGON2}}{hash}\n\n",
            dn = user_dn(name)
        ));
    };
    person(READER, 9_999, "Ldap", "Reader");
    for i in 0..users {
        person(&username(i), 10_000 + i, "Bench", &format!("User{i}"));
    }
    for g in 0..groups {
        out.push_str(&format!(
            "dn: cn={name},ou=Groups,{BASE}\nobjectClass: posixGroup\ncn: {name}\ngidNumber: {gid}\n",
            name = group_name(g),
            gid = 20_000 + g
        ));
        for i in (g..users).step_by(groups) {
            out.push_str(&format!("memberUid: {}\n", username(i)));
        }
        out.push('\n');
    }
    out
}

/// slapd, killed when dropped.
struct Slapd {
    child: std::process::Child,
    url: String,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(candidates: &[&str]) -> Result<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .with_context(|| format!("none of {candidates:?}: install Debian's slapd (apt-get install slapd)"))
}

/// slapd on a fresh mdb database in `dir`, loaded with the same data, on a free port with
/// StartTLS (the run's certificate), its argon2 module loaded.
fn slapd(dir: &Path, users: usize, groups: usize, hash: &str) -> Result<Slapd> {
    let slapd = find(&["/usr/sbin/slapd"])?;
    let slapadd = find(&["/usr/sbin/slapadd"])?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("db"))?;
    let p = pki();
    let conf = format!(
        "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
         include /etc/ldap/schema/nis.schema\ninclude /etc/ldap/schema/inetorgperson.schema\n\
         modulepath /usr/lib/ldap\nmoduleload back_mdb\nmoduleload argon2\n\
         pidfile {dir}/slapd.pid\n\
         TLSCACertificateFile {ca}\nTLSCertificateFile {cert}\nTLSCertificateKeyFile {key}\n\
         security simple_bind=128\n\
         database mdb\nsuffix \"{BASE}\"\ndirectory {dir}/db\nmaxsize 1073741824\n\
         index objectClass eq\nindex uid eq\nindex cn eq\nindex memberUid eq\nindex uidNumber,gidNumber eq\n\
         access to attrs=userPassword by anonymous auth by * none\n\
         access to * by users read by * none\n",
        dir = dir.display(),
        ca = p.ca_file.display(),
        cert = p.cert_file.display(),
        key = p.key_file.display(),
    );
    std::fs::write(dir.join("slapd.conf"), conf)?;
    std::fs::write(dir.join("data.ldif"), ldif(users, groups, hash))?;
    let out = Command::new(&slapadd)
        .arg("-q")
        .arg("-f")
        .arg(dir.join("slapd.conf"))
        .arg("-l")
        .arg(dir.join("data.ldif"))
        .output()?;
    if !out.status.success() {
        bail!("slapadd: {}", String::from_utf8_lossy(&out.stderr));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("ldap://127.0.0.1:{port}");
    let child = Command::new(&slapd)
        // `-d 0`: in the foreground, no debug output.
        .args(["-d", "0", "-h", &format!("{url}/"), "-f"])
        .arg(dir.join("slapd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    Ok(Slapd { child, url })
}

fn target(url: &str) -> LdapTarget {
    LdapTarget {
        url: url.to_string(),
        bind_dn: user_dn(READER),
        bind_password: PASSWORD.into(),
        ca_file: Some(pki().ca_file.display().to_string()),
        insecure_skip_verify: false,
    }
}

/// Waits until `url` answers a bind as the reader.
async fn ready(url: &str) -> Result<()> {
    let started = Instant::now();
    loop {
        match tether_ad::connect(&target(url)).await {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() > Duration::from_secs(30) => bail!("{url} never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// What one connection does in a loop.
#[derive(Clone, Copy)]
enum Load {
    /// Binds as a user picked among the first `n`.
    Bind(usize),
    /// `(uid=x)` searches as the reader, x picked among the first `n`.
    Search(usize),
}

/// `conns` connections doing `load` for `seconds`: operations/s and their latencies.
async fn measure(url: &str, load: Load, conns: usize, seconds: u64) -> Result<(Vec<Duration>, f64)> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for c in 0..conns {
        let url = url.to_string();
        let failures = failures.clone();
        tasks.push(tokio::spawn(async move {
            let mut ldap = tether_ad::connect(&target(&url)).await?;
            let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (c as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let t = Instant::now();
                let ok = match load {
                    Load::Bind(n) => {
                        let name = username(seed as usize % n);
                        ldap.simple_bind(&user_dn(&name), PASSWORD).await.is_ok_and(|r| r.rc == 0)
                    }
                    Load::Search(n) => {
                        let name = username(seed as usize % n);
                        let attrs = vec!["uid", "cn", "mail", "uidNumber", "gidNumber", "homeDirectory", "loginShell"];
                        match ldap
                            .search(&format!("ou=Users,{BASE}"), Scope::Subtree, &format!("(uid={name})"), attrs)
                            .await
                        {
                            Ok(r) => r.0.len() == 1 && SearchEntry::construct(r.0[0].clone()).dn == user_dn(&name),
                            Err(_) => false,
                        }
                    }
                };
                lat.push(t.elapsed());
                if !ok {
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let _ = ldap.unbind().await;
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
        bail!("{url}: {failed} of {} operations failed", all.len());
    }
    Ok((all, secs))
}

/// The operations/s and latencies of several rounds together.
fn summary(rounds: Vec<(Vec<Duration>, f64)>) -> Value {
    let secs: f64 = rounds.iter().map(|r| r.1).sum();
    let all: Vec<Duration> = rounds.into_iter().flat_map(|r| r.0).collect();
    let per_s = (all.len() as f64 / secs).round();
    let mut d = dist(all);
    d["per_s"] = json!(per_s);
    d
}

pub async fn run(users: usize, groups: usize, conns: usize, seconds: u64) -> Result<Value> {
    let hash =
        tether_server::crypto::hash_password(PASSWORD.to_string()).await.map_err(|e| anyhow::anyhow!(e.message))?;
    let dir = workspace_root().join("target/bench-slapd");
    let hash_file = dir.with_extension("hash");
    std::fs::create_dir_all(workspace_root().join("target"))?;
    std::fs::write(&hash_file, &hash)?;
    let t = Instant::now();
    let mut tether = Part::spawn(&[
        "serve-ldap",
        "--users",
        &users.to_string(),
        "--groups",
        &groups.to_string(),
        "--hash-file",
        &hash_file.display().to_string(),
    ])?;
    let tether_url = tether.first_line()?;
    let tether_seed_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let slapd = slapd(&dir, users, groups, &hash)?;
    ready(&slapd.url).await.context("slapd")?;
    let slapd_load_s = t.elapsed().as_secs_f64();
    ready(&tether_url).await.context("tetherd")?;

    let mut rows = serde_json::Map::new();
    let loads = [
        ("search_uid", Load::Search(users)),
        ("bind_any_user", Load::Bind(users)),
        ("bind_returning_users", Load::Bind(RETURNING.min(users))),
    ];
    for (name, load) in loads {
        if let ("bind_returning_users", Load::Bind(n)) = (name, load) {
            // The returning users have logged in before (on both servers alike).
            for url in [&slapd.url, &tether_url] {
                let mut ldap = tether_ad::connect(&target(url)).await?;
                for i in 0..n {
                    ldap.simple_bind(&user_dn(&username(i)), PASSWORD).await?.success()?;
                }
            }
        }
        // In turns (the incumbent, Tether, the incumbent, Tether: half the time each), each
        // on an otherwise idle machine, so a drift of the machine's speed falls on both.
        let (mut s, mut t) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            s.push(
                measure(&slapd.url, load, conns, seconds.div_ceil(2)).await.with_context(|| format!("slapd {name}"))?,
            );
            t.push(
                measure(&tether_url, load, conns, seconds.div_ceil(2))
                    .await
                    .with_context(|| format!("tetherd {name}"))?,
            );
        }
        let (s, t) = (summary(s), summary(t));
        let ratio = (t["per_s"].as_f64().unwrap_or(0.0) / s["per_s"].as_f64().unwrap_or(1.0) * 100.0).round() / 100.0;
        rows.insert(name.to_string(), json!({"slapd": s, "tether": t, "ratio_tether_to_slapd": ratio}));
    }
    Ok(json!({
        "users": users,
        "groups": groups,
        "connections": conns,
        "seconds_per_measure": seconds,
        "cores": std::thread::available_parallelism().map(|c| c.get()).unwrap_or(0),
        "hash": hash.split('$').take(4).collect::<Vec<_>>().join("$"),
        "load_seconds": {"tetherd_seed": (tether_seed_s * 10.0).round() / 10.0, "slapd_slapadd_and_start": (slapd_load_s * 10.0).round() / 10.0},
        "measures": Value::Object(rows),
        "peak_rss_mb": {"tetherd": tether.peak_rss_mb(), "slapd": crate::parts::peak_rss_mb_of(slapd.child.id())},
    }))
}
