//! PostgreSQL for tests: one server shared by the whole test run ([`postgres`]) and a fresh
//! database per test ([`postgres_db`]).
//!
//! `TETHER_TEST_POSTGRES_URL` names a server to use (its user must be allowed to create
//! databases; PostgreSQL 13 or later). Without it, the test kit runs a private cluster in
//! `target/test-pg` — `initdb` and `pg_ctl` of the newest `/usr/lib/postgresql/*/bin`, on a
//! free port of 127.0.0.1 with its Unix socket inside that directory, trust authentication,
//! no fsync. As with the test DC, nextest's many processes share it through the disk: the
//! first one to need it starts it under a file lock, later ones find it running. It keeps
//! running after the tests (`target/test-pg.datadir` names its data directory, for
//! `pg_ctl stop -D`); a start always begins with a fresh `initdb`.
//!
//! PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres`
//! system user (Debian's `postgresql` package creates it) and every server command runs
//! through `runuser -u postgres --`; if that user cannot reach `target/` (a checkout under
//! `/root`), the cluster lives in a directory of its own under the temporary directory.
//!
//! Nothing here ever skips a test: a server that cannot be started or reached is a panic
//! that says why.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::{Connection, Executor};

use crate::workspace_root;

/// The URL of the PostgreSQL server of this test run (an administrative connection, able to
/// create databases), starting the private cluster if needed.
pub fn postgres() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("TETHER_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
        _ => shared_cluster().unwrap_or_else(|e| {
            panic!(
                "PostgreSQL for the tests cannot be started: {e}\n\
                 Install PostgreSQL's server binaries (Debian: apt-get install postgresql) or set \
                 TETHER_TEST_POSTGRES_URL=postgres://user@host:port/db to a server where that user may create databases."
            )
        }),
    })
}

/// A database of its own on the test server, dropped (with any connection still open to
/// it) when this value is dropped.
pub struct PgDatabase {
    /// `postgres://…/<name>`
    pub url: String,
    pub name: String,
}

/// Creates an empty database for one test.
pub async fn postgres_db() -> PgDatabase {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let server = postgres();
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let name = format!("tether_test_{}_{}_{nanos:x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let mut admin = sqlx::PgConnection::connect(server).await.unwrap_or_else(|e| {
        panic!(
            "cannot connect to the test PostgreSQL ({}, from TETHER_TEST_POSTGRES_URL or the private cluster): {e}",
            redact(server)
        )
    });
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
    let _ = admin.close().await;
    PgDatabase { url: with_database(server, &name), name }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (server, name) = (postgres().to_string(), self.name.clone());
        // Drop runs inside the test's runtime, which must not block on itself: a thread of its own.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut c = sqlx::PgConnection::connect(&server).await.map_err(|e| e.to_string())?;
                c.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = c.close().await;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: test database {} not dropped: {e}", self.name),
            Err(_) => eprintln!("warning: test database {} not dropped", self.name),
        }
    }
}

/// `url` with its database replaced by `db` (user, password, host and options kept).
fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let authority = main.split('/').next().unwrap_or("");
    match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    }
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}{}", &rest[end..])
        }
        None => url.to_string(),
    }
}

/// The private cluster: reused when running, else (re)created and started.
fn shared_cluster() -> Result<String, String> {
    let root = is_root();
    let bin = bin_dir()?;
    let target = workspace_root().join("target");
    std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    let lock = std::fs::File::create(target.join("test-pg.lock")).map_err(|e| format!("test-pg.lock: {e}"))?;
    lock.lock().map_err(|e| format!("lock test-pg.lock: {e}"))?;
    let dir = cluster_dir(root)?;
    let cluster = Cluster { bin, dir, root };
    let url = match cluster.running() {
        Some(url) => url,
        None => cluster.start()?,
    };
    // Where the cluster is, for whoever stops it after the run (`pg_ctl stop -D "$(cat …)"`).
    let _ = std::fs::write(target.join("test-pg.datadir"), cluster.data().display().to_string());
    let _ = lock.unlock();
    Ok(url)
}

struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    root: bool,
}

impl Cluster {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A server command, as the `postgres` user when running as root.
    fn cmd(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn url(port: u16) -> String {
        format!("postgres://tether@127.0.0.1:{port}/postgres")
    }

    fn running(&self) -> Option<String> {
        let port: u16 = std::fs::read_to_string(self.dir.join("port")).ok()?.trim().parse().ok()?;
        if !self.data().join("postmaster.pid").exists() {
            return None;
        }
        let status = self.cmd("pg_ctl").arg("status").arg("-D").arg(self.data()).output().ok()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        (status.status.success() && TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
            .then(|| Self::url(port))
    }

    fn start(&self) -> Result<String, String> {
        let data = self.data();
        if data.join("postmaster.pid").exists() {
            // Half alive (running but unreachable) or stale: stop it before starting afresh.
            let _ = self.cmd("pg_ctl").args(["stop", "-m", "immediate", "-D"]).arg(&data).output();
        }
        let _ = std::fs::remove_file(self.dir.join("port"));
        if data.exists() {
            std::fs::remove_dir_all(&data).map_err(|e| format!("remove {}: {e}", data.display()))?;
        }
        let sock = self.dir.join("sock");
        std::fs::create_dir_all(&sock).map_err(|e| format!("{}: {e}", sock.display()))?;
        if self.root {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&self.dir), "chown")?;
        }
        // An ICU collation where the server has it, so that the store's SQL is exercised
        // under a collation that is not bytewise; else the C.UTF-8 locale.
        let base = ["-U", "tether", "--auth=trust", "--encoding=UTF8", "--no-sync"];
        let icu = self
            .cmd("initdb")
            .args(base)
            .args(["--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US", "-D"])
            .arg(&data)
            .output();
        if !icu.as_ref().is_ok_and(|o| o.status.success()) {
            let _ = std::fs::remove_dir_all(&data);
            run(self.cmd("initdb").args(base).args(["--locale=C.UTF-8", "-D"]).arg(&data), "initdb")?;
        }
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .map_err(|e| format!("postgresql.conf: {e}"))?;
        writeln!(conf, "\ninclude 'tether-test.conf'").map_err(|e| format!("postgresql.conf: {e}"))?;
        // The socket path must fit in sockaddr_un (107 bytes); TCP is what the tests use.
        let sock_dir = if sock.as_os_str().len() < 90 { sock.display().to_string() } else { String::new() };
        let log = self.dir.join("postgres.log");
        let mut last = String::new();
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port();
            std::fs::write(
                data.join("tether-test.conf"),
                format!(
                    "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{sock_dir}'\n\
                     max_connections = 300\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                ),
            )
            .map_err(|e| format!("tether-test.conf: {e}"))?;
            let out =
                self.cmd("pg_ctl").args(["start", "-w", "-t", "60", "-D"]).arg(&data).arg("-l").arg(&log).output();
            match out {
                Ok(o) if o.status.success() => {
                    std::fs::write(self.dir.join("port"), port.to_string()).map_err(|e| format!("port file: {e}"))?;
                    return Ok(Self::url(port));
                }
                Ok(o) => {
                    let tail = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: Vec<&str> = tail.lines().rev().take(15).collect();
                    last = format!(
                        "pg_ctl start failed ({}): {}\n{}\nlast lines of {}:\n{}",
                        o.status,
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr),
                        log.display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
                Err(e) => return Err(format!("cannot run pg_ctl: {e}")),
            }
        }
        Err(last)
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// The newest `/usr/lib/postgresql/N/bin` with `initdb` (Debian's layout), else `pg_config --bindir`.
fn bin_dir() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Ok(bin);
    }
    if let Ok(o) = Command::new("pg_config").arg("--bindir").output() {
        let bin = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        if o.status.success() && bin.join("initdb").exists() && bin.join("pg_ctl").exists() {
            return Ok(bin);
        }
    }
    Err("no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or in `pg_config --bindir`".into())
}

/// `target/test-pg`, unless running as root and the `postgres` user cannot write there.
fn cluster_dir(root: bool) -> Result<PathBuf, String> {
    let dir = workspace_root().join("target/test-pg");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !root {
        return Ok(dir);
    }
    run(Command::new("id").args(["-u", "postgres"]), "id -u postgres")
        .map_err(|e| format!("running as root needs the `postgres` system user: {e}"))?;
    run(Command::new("chown").arg("postgres:postgres").arg(&dir), "chown")?;
    if can_write_as_postgres(&dir) {
        return Ok(dir);
    }
    // The checkout is out of the postgres user's reach (e.g. under /root).
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&workspace_root(), &mut h);
    let alt = std::env::temp_dir().join(format!("tether-test-pg-{:016x}", std::hash::Hasher::finish(&h)));
    match std::fs::symlink_metadata(&alt) {
        Ok(m) if !m.is_dir() => return Err(format!("{} exists and is not a directory", alt.display())),
        Ok(_) => {}
        Err(_) => std::fs::create_dir(&alt).map_err(|e| format!("{}: {e}", alt.display()))?,
    }
    run(Command::new("chown").arg("postgres:postgres").arg(&alt), "chown")?;
    if !can_write_as_postgres(&alt) {
        return Err(format!("the postgres user can write neither {} nor {}", dir.display(), alt.display()));
    }
    Ok(alt)
}

fn can_write_as_postgres(dir: &Path) -> bool {
    Command::new("runuser").args(["-u", "postgres", "--", "test", "-w"]).arg(dir).status().is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(with_database("postgres://u:p@h:5/db", "t1"), "postgres://u:p@h:5/t1");
        assert_eq!(with_database("postgres://u@h", "t1"), "postgres://u@h/t1");
        assert_eq!(with_database("postgresql://h/db?sslmode=disable", "t1"), "postgresql://h/t1?sslmode=disable");
        assert_eq!(with_database("postgres:///db?host=/run/pg", "t1"), "postgres:///t1?host=/run/pg");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h:5/db"), "postgres://u@h:5/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
