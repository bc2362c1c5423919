//! The database watch: an import agent installed on the Samba DC it reads (`"InstalledOn":
//! "dc"`, the deployment the seeds describe for password capture; the DC's `smb.conf` at
//! `SambaSmbConf` or `/etc/samba/smb.conf`) learns of every write from the DC's own database
//! files, and so sends AD nothing while nothing changes.
//!
//! Why: elsewhere the agent finds a change by reading rootDSE `highestCommittedUSN` ten times
//! a second, since nothing else tells a least-privileged account of every change on Samba
//! (no notification of a deletion without the tombstones; a notification search that costs
//! the DC a scan of the domain every 5 seconds and hears the writes of Samba's other LDAP
//! processes only then: docs/decisions.md). On the DC itself, every committed write touches
//! the file of its partition in `<private dir>/sam.ldb.d`: TDB, Samba's default store,
//! writes through its memory map and then sets the file's times at each commit (`utime`, so
//! that backups see the change: an inotify `IN_ATTRIB`); LMDB writes with `pwrite`
//! (`IN_MODIFY`). Reads and binds that write nothing touch nothing (measured on the sandbox:
//! no event in 12 s idle, nor for a search or a repeated bind; one per edit, deletion or
//! `samba-tool` write). Whoever wrote (any of Samba's LDAP processes, a tool on the database,
//! replication from another DC), the watch wakes the main loop, which runs the cycle the
//! tick would have run: idle, it runs none.
//!
//! Only when the DC the agent's LDAP connection reached is the one `SambaSmbConf` configures
//! (its server object is named after the NetBIOS name, in the same realm): another DC's
//! writes would reach this database only when replicated. The watch is armed before the
//! cycle it wakes, so what was written meanwhile is caught up by `uSNChanged` from the
//! watermark. A watch lost (its folder moved, removed or replaced, as by a restore: the
//! folder's identity is compared every [`IDENTITY_EVERY`]) is armed again with backoff, and
//! until then the main loop goes back to its tick. The safety net of every
//! `PollIntervalSeconds` stays, as with notifications.
//!
//! The watch is relied on only while it proves itself (`watched.rs`): a cycle that reads
//! another DC than the watched one (a failover behind a name that resolves to several), or
//! finds the USN moved when no event came since the cycle before (a folder that is not the
//! live database, whatever the reason), puts the main loop back on its tick, with a warning.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::AgentMetrics;
use crate::notify::Inbox;
use crate::smb_conf::SmbConf;

/// How often the watched folder's identity (device and inode) is compared with the one
/// armed: a folder replaced by way of a parent's rename sends the watch no event.
pub const IDENTITY_EVERY: Duration = Duration::from_secs(30);

/// The folder to watch when the DC that answered (`ds_service_name`, `naming_context`) is
/// the one `smb_conf` configures; `Err` says why the agent keeps its tick.
pub fn watchable(smb_conf: &Path, ds_service_name: &str, naming_context: &str) -> Result<PathBuf, String> {
    if !cfg!(target_os = "linux") {
        return Err("the database watch needs Linux (inotify)".into());
    }
    let conf = SmbConf::read(smb_conf);
    conf.is_dc(&crate::smb_conf::host_name(), ds_service_name, naming_context)
        .map_err(|e| format!("{}: {e}", smb_conf.display()))?;
    let dir = conf.private_dir.join("sam.ldb.d");
    if !dir.is_dir() {
        return Err(format!("{} is not a folder this agent can see", dir.display()));
    }
    Ok(dir)
}

/// Watches `dir` (from [`watchable`], the database of the DC `dc`) and wakes the main loop
/// at each event, until the task is aborted.
pub async fn watch(dir: PathBuf, dc: String, inbox: Arc<Inbox>, metrics: Arc<AgentMetrics>) {
    let mut failures = 0u32;
    loop {
        match watch_once(&dir, &dc, &inbox, &metrics).await {
            // The folder went away or was replaced (a restore puts a new one in its place).
            Ok(()) => {
                failures = 0;
                tracing::warn!(dir = %dir.display(), "the DC's database folder was moved, removed or replaced; watching it again");
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the DC's database; the rootDSE check goes on meanwhile");
                } else {
                    tracing::debug!(error = %e, "the DC's database still not watched");
                }
            }
        }
        inbox.watch.disarm();
        metrics.database_watched(false);
        // A main loop relying on the watch goes back to its tick at once.
        inbox.wake();
        tokio::time::sleep(crate::retry::backoff(failures)).await;
    }
}

/// The folder's identity: a folder put in its place is another.
#[cfg(target_os = "linux")]
fn identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// One watch, until its folder goes away or is replaced (`Ok`) or reading it fails.
#[cfg(target_os = "linux")]
async fn watch_once(dir: &Path, dc: &str, inbox: &Inbox, metrics: &AgentMetrics) -> std::io::Result<()> {
    use futures_util::StreamExt;
    use inotify::{EventMask, Inotify, WatchMask};

    let inotify = Inotify::init()?;
    inotify.watches().add(
        dir,
        WatchMask::ATTRIB
            | WatchMask::MODIFY
            | WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF,
    )?;
    let armed = identity(dir);
    let mut events = inotify.into_event_stream([0u8; 4096])?;
    inbox.watch.arm(dc);
    metrics.database_watched(true);
    // Whatever was written before the watch is caught up by the cycle this wakes.
    inbox.wake();
    let mut every = tokio::time::interval(IDENTITY_EVERY);
    loop {
        let event = tokio::select! {
            e = events.next() => e,
            _ = every.tick() => {
                if identity(dir) != armed {
                    return Ok(());
                }
                continue;
            }
        };
        let Some(event) = event else { return Ok(()) };
        if event?.mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED) {
            return Ok(());
        }
        // Any other event (a partition's file or `metadata.tdb` written, a file replaced, the
        // kernel's queue overflowed) may be a change: the cycle's rootDSE read tells. A
        // commit touches its partition, then `metadata.tdb`, which holds the USN counter:
        // its event comes last. Wakes coming during a cycle wake one more cycle, not one each.
        inbox.watch.heard();
        metrics.database_written();
        inbox.wake();
    }
}

#[cfg(not(target_os = "linux"))]
async fn watch_once(_: &Path, _: &str, _: &Inbox, _: &AgentMetrics) -> std::io::Result<()> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "the database watch needs Linux (inotify)"))
}
