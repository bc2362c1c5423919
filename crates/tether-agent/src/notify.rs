//! Change notifications: AD and Samba push a change to a client that holds a search open
//! with the change-notification control (1.2.840.113556.1.4.528), so the import agent learns
//! of an edit, a disable or a group change the moment it is written instead of at its next
//! poll.
//!
//! Held when `ChangeNotifications` says so (by default on Active Directory, not on Samba,
//! which serves the search by re-scanning the domain partition every 5 seconds: see
//! docs/decisions.md). One notification search per agent, on a connection of its own: subtree at the domain's
//! naming-context root (the one place AD allows a subtree notification; it covers the whole
//! scope, wherever its containers are). Each notification carries the changed object as it
//! is after the write, with every attribute the import reads, so it goes to the [`Inbox`] and
//! wakes the main loop: when the inbox accounts for every USN since the watermark, the cycle
//! applies what it holds and sends AD no search at all (`import.rs`); otherwise it reads by
//! `uSNChanged`, as after a poll. Several notifications arriving during a cycle wake one
//! more cycle, not one each.
//!
//! What notifications do not cover, the poll does: a deletion and the silent `member` change
//! it makes send no notification to a least-privileged account (AD-FACTS), so the main loop
//! still reads rootDSE `highestCommittedUSN` at its tick. Unless the account may read the
//! tombstones (`TombstonesReadable`: an admin granted it List Contents and Read Property on
//! `CN=Deleted Objects`): the search then also asks for deleted objects (the Show Deleted
//! control), each deletion comes as its tombstone, and the tick is only the safety net. A search that ends or fails (a DC
//! restarting, a failover) is opened again with backoff, and the reopening wakes a cycle: what
//! changed while it was down is caught up by `uSNChanged` from the watermark. A search with
//! nothing to say for [`REARM`] is opened again, so a connection the network dropped silently
//! does not leave the agent deaf.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_ad::ldap3::controls::RawControl;
use tether_ad::ldap3::{Scope, SearchEntry};
use tether_ad::read::{usn_changed, Entry};
use tether_ad::LdapTarget;
use tokio::sync::Notify;

use crate::metrics::AgentMetrics;

/// The change-notification control (LDAP_SERVER_NOTIFICATION_OID).
pub const CHANGE_NOTIFICATION: &str = "1.2.840.113556.1.4.528";
/// The Show Deleted control (LDAP_SERVER_SHOW_DELETED_OID): tombstones are returned too.
pub const SHOW_DELETED: &str = "1.2.840.113556.1.4.417";
/// A search silent this long is closed and opened again.
pub const REARM: Duration = Duration::from_secs(300);
/// Notified entries kept for the next cycle at most: past this (tetherd away for long during
/// a mass change) the inbox is emptied, which leaves USNs it cannot account for, so the next
/// cycle reads by `uSNChanged` instead: memory stays bounded and nothing is lost.
pub const INBOX_MAX: usize = 10_000;

/// The objects notified and not yet applied, and the wake-up of the main loop.
#[derive(Default)]
pub struct Inbox {
    wake: Notify,
    entries: Mutex<Vec<Entry>>,
    /// The DC (`dsServiceName`) whose notifications the entries are: USNs are each DC's own,
    /// so a cycle reading another DC (a name that resolves to several) ignores them.
    server: Mutex<Option<String>>,
    /// Whether a notification search is open now.
    open: std::sync::atomic::AtomicBool,
    /// The watch of the DC's database (`dc_watch.rs`), whose every event wakes the loop.
    pub watch: crate::watched::Watched,
}

impl Inbox {
    /// Files a notified object and wakes the main loop.
    pub fn push(&self, e: Entry) {
        {
            let mut q = self.entries.lock().expect("inbox lock");
            if q.len() >= INBOX_MAX {
                tracing::info!(kept = q.len(), "notified changes beyond the inbox: the next cycle reads by uSNChanged");
                q.clear();
            }
            q.push(e);
        }
        self.wake.notify_one();
    }

    /// Whether a notification search is open now: a main loop that relies on them
    /// (`TombstonesReadable`) checks AD at its usual tick while none is.
    pub fn is_open(&self) -> bool {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn set_open(&self, open: bool) {
        self.open.store(open, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the DC's database is watched now, and the watch has heard every write: the
    /// main loop is woken at each, deletions included, and checks AD only at the safety net
    /// besides.
    pub fn is_watched(&self) -> bool {
        self.watch.relied_on()
    }

    /// Wakes the main loop without an entry (a search (re)opened: catch up).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A search opened on the DC `server`: entries of another DC are dropped.
    pub fn opened_on(&self, server: &str) {
        let mut s = self.server.lock().expect("inbox lock");
        if s.as_deref() != Some(server) {
            self.entries.lock().expect("inbox lock").clear();
            *s = Some(server.to_string());
        }
    }

    /// Whether the entries are notifications of the DC `server`.
    pub fn is_from(&self, server: &str) -> bool {
        self.server.lock().expect("inbox lock").as_deref() == Some(server)
    }

    /// Drops every entry (this agent does not apply them: paused, or not the primary).
    pub fn clear(&self) {
        self.entries.lock().expect("inbox lock").clear();
    }

    /// Resolves at the next [`Inbox::push`] or [`Inbox::wake`] (or at once for one that came
    /// while nobody waited).
    pub async fn notified(&self) {
        self.wake.notified().await
    }

    /// The entries whose `uSNChanged` is past `watermark`, in USN order; the inbox keeps
    /// them until [`Inbox::forget_through`].
    pub fn since(&self, watermark: u64) -> Vec<Entry> {
        let mut out: Vec<Entry> =
            self.entries.lock().expect("inbox lock").iter().filter(|e| usn_changed(e) > watermark).cloned().collect();
        out.sort_by_key(usn_changed);
        out
    }

    /// Drops the entries a cycle has applied (or read past): `uSNChanged` ≤ `usn`.
    pub fn forget_through(&self, usn: u64) {
        self.entries.lock().expect("inbox lock").retain(|e| usn_changed(e) > usn);
    }

    /// How many entries wait (for tests and logs).
    pub fn len(&self) -> usize {
        self.entries.lock().expect("inbox lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether this connection's account sees any tombstone in `CN=Deleted Objects` (one entry
/// asked for, with the Show Deleted control): what `TombstonesReadable: auto` decides by.
/// One seen proves the account may read them; none seen is no proof either way (a domain
/// with no deletion yet), so `auto` keeps the rootDSE check, and `true` warns. Any failure
/// counts as none seen.
pub async fn tombstones_visible(ldap: &mut tether_ad::Ldap) -> bool {
    let Ok(dse) = tether_ad::read::root_dse(ldap).await else { return false };
    let base = format!("CN=Deleted Objects,{}", dse.default_naming_context);
    let control = RawControl { ctype: SHOW_DELETED.into(), crit: true, val: None };
    let found = ldap
        .with_controls(control)
        .with_search_options(tether_ad::ldap3::SearchOptions::new().sizelimit(1))
        .search(&base, Scope::OneLevel, "(isDeleted=TRUE)", vec!["1.1"])
        .await;
    found.is_ok_and(|r| !r.0.is_empty())
}

/// Holds a notification search open on `target`'s domain, asking for `attrs` of each
/// changed object (what a cycle reads of a user or a group: `import::notified_attrs`),
/// and for deleted objects too when `tombstones`, filing each notified object in `inbox`,
/// and wakes the main loop at each (re)opening, until the task is aborted.
pub async fn watch(
    target: LdapTarget,
    attrs: Vec<&'static str>,
    tombstones: bool,
    inbox: Arc<Inbox>,
    metrics: Arc<AgentMetrics>,
) {
    let mut failures = 0u32;
    loop {
        match watch_once(&target, &attrs, tombstones, &inbox, &metrics).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                // The first of a run said once where an admin looks (a refused control, say).
                if failures == 1 {
                    tracing::warn!(error = %e, "change notifications interrupted; the rootDSE check goes on meanwhile");
                } else {
                    tracing::debug!(error = %e, "change notifications still interrupted");
                }
            }
        }
        inbox.set_open(false);
        // A main loop relying on the search waits on its quiet schedule: woken, it goes back
        // to the rootDSE tick at once (and catches up on what the search may have missed).
        inbox.wake();
        metrics.notifications_open(false);
        tokio::time::sleep(crate::retry::backoff(failures)).await;
    }
}

/// One notification search, until it ends, fails or stays silent for [`REARM`].
async fn watch_once(
    target: &LdapTarget,
    attrs: &[&'static str],
    tombstones: bool,
    inbox: &Inbox,
    metrics: &AgentMetrics,
) -> Result<(), tether_ad::AdError> {
    let mut ldap = tether_ad::connect(target).await?;
    let dse = tether_ad::read::root_dse(&mut ldap).await?;
    inbox.opened_on(&dse.ds_service_name);
    let nc = dse.default_naming_context;
    let mut controls = vec![RawControl { ctype: CHANGE_NOTIFICATION.into(), crit: true, val: None }];
    if tombstones {
        controls.push(RawControl { ctype: SHOW_DELETED.into(), crit: true, val: None });
    }
    // AD accepts only `(objectClass=*)` with this control; the entries carry what a cycle
    // would read of a user or a group.
    let mut stream = ldap
        .with_controls(controls)
        .streaming_search(&nc, Scope::Subtree, "(objectClass=*)", attrs.to_vec())
        .await
        .map_err(tether_ad::AdError::from)?;
    metrics.notifications_open(true);
    inbox.set_open(true);
    // Whatever changed while no search was open is caught up by the cycle this wakes.
    inbox.wake();
    loop {
        match tokio::time::timeout(REARM, stream.next()).await {
            Err(_) => return Ok(()),
            Ok(Ok(Some(r))) if r.is_ref() || r.is_intermediate() => {}
            Ok(Ok(Some(r))) => {
                metrics.notification();
                inbox.push(SearchEntry::construct(r));
            }
            Ok(Ok(None)) => {
                // Ended by the server: its result says why (a refused control, a restart).
                let r = stream.finish().await;
                return match r.success() {
                    Ok(_) => Ok(()),
                    Err(e) => Err(e.into()),
                };
            }
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}
