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

/// During a burst of changes, cycles woken by change notifications (or the database watch)
/// start at least this long after the previous cycle ended: a thousand changes cost the DC
/// a few searches a second, not one per change. A lone change is read at once, and so is the
/// one after it.
const WOKEN_GAP: Duration = Duration::from_millis(100);

/// The gap after a cycle that read rootDSE alone: events that move no USN (a watched
/// database's housekeeping) cost a read each, at most a hundred a second.
const IDLE_GAP: Duration = Duration::from_millis(10);

/// The gap a woken cycle keeps after the cycle that `began` and was `idle` (or failed:
/// `None`), the cycle before that having ended at `before`: [`WOKEN_GAP`] in a burst (that
/// cycle itself began within the gap of the one before), [`IDLE_GAP`] after rootDSE alone,
/// none after a lone change. Time is a parameter (tested without a clock).
fn gap_after(idle: Option<bool>, began: tokio::time::Instant, before: Option<tokio::time::Instant>) -> Duration {
    match idle {
        Some(true) => IDLE_GAP,
        Some(false) if before.is_some_and(|t| began < t + WOKEN_GAP) => WOKEN_GAP,
        Some(false) => Duration::ZERO,
        None => WOKEN_GAP,
    }
}

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
/// (`ImportWork::quiet`, while its notification search is open; or while it watches the DC's
/// database, `dc_watch.rs`) runs its cycles as [`QuietSchedule`] says: idle, it sends AD
/// nothing but that search, or nothing at all.
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
    let quiet_mode = work.as_ref().is_some_and(|w| w.quiet);
    let mut schedule = QuietSchedule::new(interval, tokio::time::Instant::now());
    let mut was_paused = false;
    let mut was_primary = false;
    // The server and AD fail independently: each has its own backoff, and heartbeats go on
    // while AD is away (they carry the outage to the server).
    let mut server_failures = 0u32;
    let mut ad_failures = 0u32;
    let mut next_work = tokio::time::Instant::now();
    let mut last_beat: Option<tokio::time::Instant> = None;
    let mut woken = false;
    // When the last cycle ended, and the gap a woken cycle keeps after it.
    let mut last_cycle: Option<(tokio::time::Instant, Duration)> = None;
    loop {
        if server_failures > 0 || last_beat.is_none_or(|t| t.elapsed() >= beat_every) {
            match session.heartbeat().await {
                Ok(beat) => {
                    server_failures = 0;
                    last_beat = Some(tokio::time::Instant::now());
                    if let Some(w) = work.as_mut() {
                        w.memory.heard(beat);
                    }
                    // Resumed, or now the primary (the other agent gone): catch up now.
                    if (was_paused && !beat.paused) || (beat.primary && !was_primary) {
                        schedule.woken(tokio::time::Instant::now());
                    }
                    was_primary = beat.primary;
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
        // Told of every change only while the notification search is open or the database
        // watched; else the tick.
        let quiet = wake.as_ref().is_some_and(|w| (quiet_mode && w.is_open()) || w.is_watched());
        let tick = match work {
            Some(_) if quiet => beat_every,
            Some(_) => interval.min(CHECK_EVERY),
            None => interval,
        };
        let now = tokio::time::Instant::now();
        let due = now >= next_work && (!quiet || schedule.due(now));
        if let (0, false, true, Some(w)) = (server_failures, was_paused, due, work.as_mut()) {
            if std::mem::take(&mut woken) {
                session.metrics.cycle_woken();
            }
            let began = tokio::time::Instant::now();
            let r = w.run(&session).await;
            let gap = gap_after(r.as_ref().ok().map(|ran| ran.idle), began, last_cycle.map(|(t, _)| t));
            last_cycle = Some((tokio::time::Instant::now(), gap));
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
                Ok(Ran { put_off, .. }) => {
                    ad_failures = 0;
                    session.ad_reachable();
                    let pending = !w.inbox.is_empty();
                    schedule.ran(tokio::time::Instant::now(), put_off, pending);
                }
            }
        }
        let mut wait = if server_failures > 0 { crate::retry::backoff(server_failures).max(tick) } else { tick };
        if quiet {
            // The next of: the scheduled cycle, the end of AD's backoff, the next heartbeat.
            let now = tokio::time::Instant::now();
            let beat_at = last_beat.filter(|_| server_failures == 0).map(|t| t + beat_every);
            for at in [Some(schedule.next), Some(next_work), beat_at].into_iter().flatten() {
                if at > now {
                    wait = wait.min(at - now);
                }
            }
        }
        let notified = async {
            match &wake {
                Some(w) => w.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
            // A change in AD (notified, or a write seen in the DC's database): the cycle runs
            // now (unless AD or the server is in backoff), or during a burst of changes
            // [`WOKEN_GAP`] after the last one (each cycle that finds a change costs the DC a
            // search), [`IDLE_GAP`] after one that found nothing (`gap_after`).
            _ = notified => {
                woken = true;
                schedule.woken(tokio::time::Instant::now());
                if let Some((t, gap)) = last_cycle {
                    tokio::time::sleep_until(t + gap).await;
                }
            }
        }
    }
}

/// Cycles a notification leaves behind (a gap in the USNs it cannot fill, a plan held, a
/// cycle run on another DC than the one notifying) are tried again this many times at the
/// rootDSE tick, then left to the safety net.
const SOON_TRIES: u32 = 20;

/// When an import agent told of every change (`TombstonesReadable` with its notification
/// search open, or the DC's database watched) runs its next cycle: at once when a notification wakes it (or it is resumed, or
/// becomes the primary); [`MEMBERSHIP_CHECK_EVERY`] after a cycle that put its changes off;
/// at the tick, [`SOON_TRIES`] times at most, while notified objects wait that the cycle
/// could not apply (one after a gap in the USNs: the next cycle reads by `uSNChanged` and
/// takes them all); otherwise after `interval` (`PollIntervalSeconds`), the safety net for
/// what no notification brings. Time is a parameter (tested without a clock).
struct QuietSchedule {
    interval: Duration,
    next: tokio::time::Instant,
    soon_left: u32,
}

impl QuietSchedule {
    fn new(interval: Duration, now: tokio::time::Instant) -> Self {
        QuietSchedule { interval, next: now, soon_left: SOON_TRIES }
    }

    fn woken(&mut self, now: tokio::time::Instant) {
        self.next = now;
        self.soon_left = SOON_TRIES;
    }

    fn ran(&mut self, now: tokio::time::Instant, put_off: bool, pending: bool) {
        let after = if put_off {
            MEMBERSHIP_CHECK_EVERY
        } else if pending && self.soon_left > 0 {
            self.soon_left -= 1;
            CHECK_EVERY
        } else {
            self.interval
        };
        self.next = now + after;
    }

    fn due(&self, now: tokio::time::Instant) -> bool {
        now >= self.next
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

/// How a cycle went, for the main loop's schedule.
struct Ran {
    /// It put its changes off (`CycleStats::put_off`).
    put_off: bool,
    /// It read rootDSE alone.
    idle: bool,
}

impl ImportWork {
    /// One cycle.
    async fn run(&mut self, session: &Session) -> Result<Ran, AgentError> {
        // One attempt: the main loop backs off and keeps heartbeating meanwhile.
        let conn = match self.ldap.as_mut() {
            Some(c) => c,
            None => self.ldap.insert(tether_ad::connect(&self.target).await?),
        };
        let started = std::time::Instant::now();
        self.inbox.watch.cycle_begins();
        let memory = Some(&mut self.memory);
        match crate::import::cycle_with(&self.cfg, conn, session, !self.reconciled, Some(&self.inbox), memory).await {
            Ok(stats) => {
                self.reconciled |= stats.outcome.is_some();
                session.metrics.cycle(started.elapsed().as_secs_f64(), stats.entries_read as u64, stats.read.as_str());
                if let Some(o) = stats.outcome {
                    tracing::info!(entries_read = stats.entries_read, outcome = %serde_json::to_string(&o).unwrap_or_default(), "import cycle applied");
                }
                if self.inbox.watch.cycle_ends() {
                    session.metrics.database_watched(false);
                    // Back to the tick at once, not after the quiet wait.
                    self.inbox.wake();
                    tracing::warn!(
                        "AD was written though the watch of the DC's database saw nothing: it is not \
                         the live database (SambaSmbConf?); changes are found by the rootDSE check"
                    );
                }
                Ok(Ran { put_off: stats.put_off, idle: stats.read == crate::changes::ReadKind::Idle && !stats.put_off })
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
    let dse = tether_ad::read::root_dse(&mut ldap).await.ok();
    let samba = dse.as_ref().is_some_and(|d| d.is_samba());
    let notifications = cfg.change_notifications.hold(samba);
    // Whether deletions are notified too: the setting, or (auto) a tombstone the account sees.
    let setting = cfg.tombstones_readable;
    let visible = notifications && setting.looks(samba) && crate::notify::tombstones_visible(&mut ldap).await;
    let quiet = notifications && setting.trusted(samba, visible);
    let database = database_watch(&cfg, &dse);
    tracing::info!(
        samba,
        setting = ?cfg.change_notifications,
        tombstones = ?setting,
        "change notifications {}",
        match (notifications, quiet || database.is_some()) {
            (false, false) => "off: changes are found by the rootDSE check (ChangeNotifications)",
            (false, true) => "off (ChangeNotifications); changes are found by the watch of the DC's database",
            (true, false) => "on; deletions are found by the rootDSE check (TombstonesReadable)",
            (true, true) => "on, deletions too: AD is checked only every PollIntervalSeconds besides",
        }
    );
    if quiet && !visible {
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
    let database =
        database.map(|(dir, dc)| tokio::spawn(crate::dc_watch::watch(dir, dc, inbox.clone(), session.metrics.clone())));
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
    for w in [watch, database].into_iter().flatten() {
        w.abort();
    }
    delegation.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    r
}

/// The DC's database folder to watch (`dc_watch.rs`): an agent installed on the Samba DC it
/// reads, whose `smb.conf` is `SambaSmbConf` or else Samba's default. Logs why not when it
/// may not (a warning when `SambaSmbConf` was said).
fn database_watch(cfg: &ImportConfig, dse: &Option<tether_ad::read::RootDse>) -> Option<(std::path::PathBuf, String)> {
    let (InstalledOn::Dc, Some(dse)) = (cfg.installed_on, dse) else { return None };
    let said = cfg.samba_smb_conf.as_deref();
    let conf = std::path::Path::new(said.unwrap_or(crate::smb_conf::PACKAGED));
    if !dse.is_samba() || (said.is_none() && !conf.exists()) {
        return None;
    }
    match crate::dc_watch::watchable(conf, &dse.ds_service_name, &dse.default_naming_context) {
        Ok(dir) => {
            tracing::info!(dir = %dir.display(), "watching the DC's database: AD is checked when it is written, and every PollIntervalSeconds besides");
            Some((dir, dse.ds_service_name.clone()))
        }
        Err(why) if said.is_some() => {
            tracing::warn!(reason = %why, "the DC's database is not watched; changes are found by the rootDSE check");
            None
        }
        Err(why) => {
            tracing::info!(reason = %why, "the DC's database is not watched (SambaSmbConf); changes are found by the rootDSE check");
            None
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_woken_cycle_waits_only_in_a_burst_of_changes_or_briefly_after_an_idle_one() {
        let t0 = tokio::time::Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // (the last cycle: idle, or failed; when it began; when the one before ended; the gap)
        for (idle, began, before, gap) in [
            (Some(false), ms(500), None, Duration::ZERO),          // the first change
            (Some(false), ms(500), Some(ms(100)), Duration::ZERO), // a lone change
            (Some(false), ms(500), Some(ms(450)), WOKEN_GAP),      // a burst
            (Some(true), ms(500), Some(ms(450)), IDLE_GAP),        // rootDSE alone
            (None, ms(500), Some(ms(100)), WOKEN_GAP),             // failed
        ] {
            assert_eq!(gap_after(idle, began, before), gap, "{idle:?} {began:?} {before:?}");
        }
    }

    #[test]
    fn a_quiet_agent_cycles_when_woken_soon_while_notified_objects_wait_and_else_at_the_safety_net() {
        let t0 = tokio::time::Instant::now();
        let interval = Duration::from_secs(90);
        let mut s = QuietSchedule::new(interval, t0);
        assert!(s.due(t0), "the first cycle at once");
        // (put off, objects still waiting) -> when the next cycle runs
        #[rustfmt::skip]
        let rows = [
            ((false, false), interval),              // all applied: the safety net
            ((true, false), MEMBERSHIP_CHECK_EVERY), // put off: when the check may run
            ((true, true), MEMBERSHIP_CHECK_EVERY),
            ((false, true), CHECK_EVERY),            // left behind: at the tick
        ];
        for ((put_off, pending), after) in rows {
            s.woken(t0);
            s.ran(t0, put_off, pending);
            assert!(!s.due(t0 + after - Duration::from_millis(1)), "{put_off} {pending}");
            assert!(s.due(t0 + after), "{put_off} {pending}");
        }
        // Objects that no cycle can apply are tried SOON_TRIES times, then left to the
        // safety net; a notification starts the count again.
        s.woken(t0);
        for _ in 0..SOON_TRIES {
            s.ran(t0, false, true);
            assert_eq!(s.next, t0 + CHECK_EVERY);
        }
        s.ran(t0, false, true);
        assert_eq!(s.next, t0 + interval);
        s.woken(t0 + Duration::from_secs(1));
        assert!(s.due(t0 + Duration::from_secs(1)));
        s.ran(t0, false, true);
        assert_eq!(s.next, t0 + CHECK_EVERY);
    }
}
