//! The agents' main loops: connect to AD, register, heartbeat (which tells a paused agent to
//! wait and an import agent whether it is primary), and run the import cycles, the delegated
//! logins and the sync feed, reconnecting with backoff after a failure.

use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use tether_ad::LdapTarget;

use crate::config::{ImportConfig, InstalledOn, SyncConfig};
use crate::import::MEMBERSHIP_CHECK_EVERY;
use crate::notify::Inbox;
use crate::session::Session;
use crate::AgentError;

async fn connect_ad(target: &LdapTarget) -> Result<tether_ad::Ldap, AgentError> {
    if target.insecure_skip_verify {
        tracing::warn!("Ldap.InsecureSkipVerify is true: the DC's certificate is NOT verified; set CaFile instead");
    }
    let mut attempt = 0;
    loop {
        match tether_ad::connect(target).await {
            Ok(l) => {
                tracing::info!(url = %target.url, bind = %target.bind_dn, "connected to AD");
                return Ok(l);
            }
            // A refused bind will not fix itself: say why and stop.
            Err(e @ tether_ad::AdError::Bind { .. }) | Err(e @ tether_ad::AdError::CaFile { .. }) => {
                return Err(e.into())
            }
            Err(e) => {
                let wait = crate::retry::backoff(attempt);
                tracing::warn!(error = %e, retry_in = ?wait, "cannot reach AD");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// Cycles woken by change notifications start at least this long after the previous cycle
/// ended: a burst of a thousand changes costs the DC a few searches a second, not one per
/// change, and a lone change is read at once.
const WOKEN_GAP: Duration = Duration::from_millis(100);

/// How often the import agent reads rootDSE `highestCommittedUSN` at most: a read of that
/// attribute alone, which the DC answers in ~0.3 ms without touching the directory, and
/// what brings a change the notifications did not (a deletion, or on Samba a write another of its LDAP processes
/// handled, notified only at its 5-second retry). An idle tick costs the agent no parsing
/// (`import::Memory`).
pub const CHECK_EVERY: Duration = Duration::from_millis(100);

/// The main loop. The import agent checks AD every `min(interval, CHECK_EVERY)` (a rootDSE
/// read: `PollIntervalSeconds` is the ceiling, not the target), and at once when `wake`
/// is woken (a change notification from AD, `notify.rs`); it heartbeats every
/// `min(15 s, max(interval, 1 s))`; the sync agent only heartbeats, every `interval` (its
/// work arrives by long-poll). An import agent told of every change, deletions included
/// (`ImportWork::quiet`), checks AD only every `interval`, the safety net, besides the
/// cycles notifications wake (and one [`MEMBERSHIP_CHECK_EVERY`] after a cycle that put
/// its changes off): idle, it sends AD nothing but the open notification search.
async fn main_loop(
    session: Session,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
    mut work: Option<ImportWork>,
    wake: Option<Arc<Inbox>>,
) -> Result<(), AgentError> {
    tokio::pin!(shutdown);
    let beat_every = match work {
        Some(_) => interval.max(Duration::from_secs(1)).min(Duration::from_secs(15)),
        None => interval,
    };
    let quiet = work.as_ref().is_some_and(|w| w.quiet);
    let tick = match work {
        Some(_) if quiet => beat_every,
        Some(_) => interval.min(CHECK_EVERY),
        None => interval,
    };
    let mut was_paused = false;
    // The server and AD fail independently: each has its own backoff, and heartbeats go on
    // while AD is away (they carry the outage to the server).
    let mut server_failures = 0u32;
    let mut ad_failures = 0u32;
    let mut next_work = tokio::time::Instant::now();
    let mut last_beat: Option<tokio::time::Instant> = None;
    let mut woken = false;
    let mut last_cycle: Option<tokio::time::Instant> = None;
    loop {
        if server_failures > 0 || last_beat.is_none_or(|t| t.elapsed() >= beat_every) {
            match session.heartbeat().await {
                Ok(beat) => {
                    server_failures = 0;
                    last_beat = Some(tokio::time::Instant::now());
                    if let Some(w) = work.as_mut() {
                        w.memory.heard(beat);
                    }
                    if beat.paused != was_paused {
                        tracing::info!(
                            paused = beat.paused,
                            "agent {}",
                            if beat.paused { "paused" } else { "resumed" }
                        );
                        was_paused = beat.paused;
                    }
                }
                Err(AgentError::Revoked) => {
                    tracing::error!("this agent was deleted in Tether: its token is revoked; stopping");
                    return Err(AgentError::Revoked);
                }
                Err(e) => {
                    server_failures += 1;
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        }
        let due = tokio::time::Instant::now() >= next_work;
        if let (0, false, true, Some(w)) = (server_failures, was_paused, due, work.as_mut()) {
            if std::mem::take(&mut woken) {
                session.metrics.cycle_woken();
            }
            let r = w.run(&session).await;
            last_cycle = Some(tokio::time::Instant::now());
            match r {
                Err(AgentError::Revoked) => {
                    tracing::error!("this agent was deleted in Tether: its token is revoked; stopping");
                    return Err(AgentError::Revoked);
                }
                Err(e @ AgentError::Ad(_)) => {
                    ad_failures += 1;
                    let wait = crate::retry::backoff(ad_failures);
                    next_work = tokio::time::Instant::now() + wait;
                    session.ad_unreachable(&e);
                    tracing::warn!(error = %e, retry_in = ?wait, "cannot reach AD; nothing was applied from this cycle");
                }
                Err(e) => {
                    server_failures += 1;
                    tracing::warn!(error = %e, "cycle failed; nothing was applied from it");
                }
                Ok(put_off) => {
                    ad_failures = 0;
                    session.ad_reachable();
                    if quiet {
                        let every = if put_off { MEMBERSHIP_CHECK_EVERY } else { interval };
                        next_work = tokio::time::Instant::now() + every;
                    }
                }
            }
        }
        let wait = if server_failures > 0 { crate::retry::backoff(server_failures).max(tick) } else { tick };
        let now = tokio::time::Instant::now();
        let wait = if quiet && next_work > now { wait.min(next_work - now) } else { wait };
        let notified = async {
            match &wake {
                Some(w) => w.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
            // A change in AD: the cycle runs now (unless AD or the server is in backoff), or
            // during a burst of changes [`WOKEN_GAP`] after the last one (each cycle that
            // finds a change costs the DC a search).
            _ = notified => {
                woken = true;
                if quiet && ad_failures == 0 {
                    next_work = tokio::time::Instant::now();
                }
                if let Some(t) = last_cycle {
                    tokio::time::sleep_until(t + WOKEN_GAP).await;
                }
            }
        }
    }
}

/// The import agent's work per cycle, with its AD connection (reopened after a failure).
struct ImportWork {
    cfg: ImportConfig,
    target: LdapTarget,
    ldap: Option<tether_ad::Ldap>,
    /// What the change notifications delivered.
    inbox: Arc<Inbox>,
    /// The import state between cycles.
    memory: crate::import::Memory,
    /// Every change is notified, deletions included (notifications held, tombstones
    /// readable): the rootDSE check is only the safety net.
    quiet: bool,
    /// Whether a cycle of this run has been applied. The first cycle of every run, and the
    /// first after a failed one, is a complete read: an agent killed (or cut off) after
    /// tetherd applied a cycle but before it saved its watermark resumes with a cache (scope)
    /// older than the directory, and an incremental read from it would miss a user who left
    /// and re-entered the scope meanwhile (found by the kill test during incremental cycles).
    reconciled: bool,
}

impl ImportWork {
    /// One cycle; `Ok(true)` when it put its changes off (`CycleStats::put_off`).
    async fn run(&mut self, session: &Session) -> Result<bool, AgentError> {
        // One attempt: the main loop backs off and keeps heartbeating meanwhile.
        let conn = match self.ldap.as_mut() {
            Some(c) => c,
            None => self.ldap.insert(tether_ad::connect(&self.target).await?),
        };
        let started = std::time::Instant::now();
        let memory = Some(&mut self.memory);
        match crate::import::cycle_with(&self.cfg, conn, session, !self.reconciled, Some(&self.inbox), memory).await {
            Ok(stats) => {
                self.reconciled |= stats.outcome.is_some();
                session.metrics.cycle(started.elapsed().as_secs_f64(), stats.entries_read as u64, stats.read.as_str());
                if let Some(o) = stats.outcome {
                    tracing::info!(entries_read = stats.entries_read, outcome = %serde_json::to_string(&o).unwrap_or_default(), "import cycle applied");
                }
                Ok(stats.put_off)
            }
            Err(e) => {
                // Whatever failed, the next cycle asks tetherd again before reporting.
                self.memory.forget_beat();
                self.ldap = None; // reconnect on the next cycle
                                  // tetherd may have applied the report before the failure: read completely
                                  // next time rather than trust the saved (older) scope.
                self.reconciled = false;
                Err(e)
            }
        }
    }
}

/// The sync group must exist: the agent never creates it (the seeds: "Group Must Exist").
async fn check_sync_group(ldap: &mut tether_ad::Ldap, dn: &str) {
    let found = ldap
        .search(dn, tether_ad::ldap3::Scope::Base, "(objectClass=group)", vec!["1.1"])
        .await
        .ok()
        .and_then(|r| r.success().ok())
        .is_some_and(|(e, _)| !e.is_empty());
    if !found {
        tracing::error!(sync_group = %dn, "sync_group does not exist in AD; create it: the agent never creates or deletes it");
    }
}

/// Starts the metrics endpoint when configured (a port that cannot be bound is logged, and
/// the agent runs on without it).
fn serve_metrics(addr: Option<std::net::SocketAddr>, session: &Session) -> Option<tokio::task::JoinHandle<()>> {
    let addr = addr?;
    let m = session.metrics.clone();
    Some(tokio::spawn(async move {
        if let Err(e) = crate::metrics::serve(addr, m).await {
            tracing::error!(%addr, error = %e, "cannot serve metrics");
        }
    }))
}

fn interval(secs: f64) -> Duration {
    Duration::from_secs_f64(secs.max(0.05))
}

pub async fn run_import(cfg: ImportConfig, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    let target = cfg.ldap_target();
    let mut ldap = connect_ad(&target).await?;
    let samba = tether_ad::read::root_dse(&mut ldap).await.is_ok_and(|d| d.is_samba());
    let notifications = cfg.change_notifications.hold(samba);
    let quiet = notifications && cfg.tombstones_readable;
    tracing::info!(
        samba,
        setting = ?cfg.change_notifications,
        "change notifications {}",
        match (notifications, quiet) {
            (false, _) => "off: changes are found by the rootDSE check (ChangeNotifications)",
            (true, false) => "on; deletions are found by the rootDSE check (TombstonesReadable)",
            (true, true) => "on, deletions too: AD is checked only every PollIntervalSeconds besides (TombstonesReadable)",
        }
    );
    if quiet && !crate::notify::tombstones_visible(&mut ldap).await {
        tracing::warn!(
            "TombstonesReadable is true but no tombstone in CN=Deleted Objects is visible to this account: \
             if it was not granted List Contents and Read Property there, deletions reach Tether only at the \
             check every PollIntervalSeconds"
        );
    }
    let ldap = Some(ldap);
    let installed_on = match cfg.installed_on {
        InstalledOn::Dc => "dc",
        InstalledOn::MemberServer => "member_server",
    };
    let session = Session::establish(&cfg.server, &cfg.state_dir(), installed_on).await?;
    tracing::info!(agent = %session.agent_id, "import agent running");
    let every = interval(cfg.main_loop.poll_interval_seconds);
    let delegation = tokio::spawn(crate::delegation::serve(session.clone(), target.clone()));
    let metrics = serve_metrics(cfg.metrics_listen, &session);
    let inbox = Arc::new(Inbox::default());
    let watch = notifications.then(|| {
        tokio::spawn(crate::notify::watch(
            target.clone(),
            crate::import::notified_attrs(),
            quiet,
            inbox.clone(),
            session.metrics.clone(),
        ))
    });
    let work =
        ImportWork { cfg, target, ldap, inbox: inbox.clone(), memory: Default::default(), quiet, reconciled: false };
    let r = main_loop(session, every, shutdown, Some(work), Some(inbox)).await;
    if let Some(w) = watch {
        w.abort();
    }
    delegation.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    r
}

pub async fn run_sync(cfg: SyncConfig, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    let target = cfg.ldap_target();
    let mut ldap = connect_ad(&target).await?;
    check_sync_group(&mut ldap, &cfg.sync_group).await;
    let session = Session::establish(&cfg.server, &cfg.state_dir(), "member_server").await?;
    tracing::info!(agent = %session.agent_id, "sync agent running");
    let every = interval(cfg.poll_interval_seconds);
    let metrics = serve_metrics(cfg.metrics_listen, &session);
    let feed = tokio::spawn(crate::sync::serve(cfg, session.clone()));
    let r = main_loop(session, every, shutdown, None, None).await;
    feed.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    r
}
