//! One import cycle: observe AD, report to tetherd, remember the watermark.
//!
//! A cycle first reads rootDSE `highestCommittedUSN` (cheap, moves on every write but not on
//! binds): when it has not moved since the last applied cycle, nothing is read at all.
//! Otherwise only what changed is read: the objects whose `uSNChanged` passed the watermark
//! (the agent keeps every group in `StateDir`, so the nested-group closure and the privileged
//! groups are computed locally), users that entered the scope by DN, and those that left it
//! reported as `gone`, in an incremental report. Up to [`EXACT_MAX`] USNs are read by exact
//! value, `(|(uSNChanged=N)(uSNChanged=N+1)…)`, which the DC's index serves at once, where
//! Samba scans the whole naming context for a `(uSNChanged>=N)` range.
//!
//! Deleting an object in AD removes it from its groups' `member` without moving the groups'
//! `uSNChanged`, and its tombstone is invisible to a least-privileged account (AD-FACTS), so
//! no `uSNChanged` read can see a deletion. But each write takes the next USN, and every
//! object the agent may read and that moved shows its latest one: when some USN between the
//! watermark and `highestCommittedUSN` belongs to no object the cycle read (a deletion, an
//! object written twice, or one outside the scope's filters), the agent re-reads the
//! membership of every group that counts (the membership check: the ADI group and the
//! groups nested in it, the privileged groups and the admins group, each looked up by
//! objectGUID; much cheaper than a complete read) and whoever left the scope is reported
//! gone, within one poll interval. The other groups are read again when they next count
//! (`import/cache.rs`): on a real DC most groups, and most member values, are outside the
//! ADI group, and the check may run every second (any write the agent cannot see, such as
//! a DNS record's, leaves a USN unexplained).
//!
//! When change notifications are open (`notify.rs`), the objects they delivered stand in for
//! that read: if they account for every USN from the watermark on (no gap), the cycle applies
//! them and sends AD no search beyond rootDSE, up to the last USN they account for. A gap (a
//! deletion, a write the notification search cannot see, a notification still on its way)
//! is left to a `uSNChanged` read as above, so notifications only ever shorten the way.
//!
//! A complete read of the scope (every group and every user under the root user container)
//! runs on first start and every `RECONCILE_EVERY`, for time-based states (a password
//! expiring, a lockout ending), which move no USN. A read that fails part-way sends nothing,
//! so a partial read can never look like users leaving the scope.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tether_ad::read::{guid_hex, highest_committed_usn, paged_search, read_groups, root_dse};
use tether_ad::Ldap;
use tether_core::wire::{HeartbeatReply as Beat, ImportOutcome, ImportReport};

use crate::changes::{changed_objects, explained, notified_run, Changed, Changes, USERS};
pub use crate::changes::{notified_attrs, ReadKind, EXACT_MAX, USER_ATTRS};
use crate::config::{ImportConfig, InstalledOn};
use crate::notify::Inbox;
use crate::report::{assemble, facts, keyed, mirrored_guids, Base, Facts, Gone, GroupsToReport};
use crate::session::Session;
use crate::AgentError;

mod cache;
mod check_budget;
use cache::{load_cache, rename_member, save_cache, Cache};
pub use check_budget::{CheckBudget, MEMBERSHIP_CHECK_BURST, MEMBERSHIP_CHECK_EVERY};

/// A complete read at least this often, for states that change with time alone.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(600);

/// What a cycle did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CycleStats {
    /// User and group entries read from AD (0 on an idle cycle; the notified ones on a
    /// notified cycle).
    pub entries_read: usize,
    pub read: ReadKind,
    /// Mirrored groups the report sent as who joined and who left them (the others it sent
    /// went with all their members).
    pub groups_as_changes: usize,
    /// Parts of a first complete read tetherd applied while it was read (`read_in_parts`).
    pub parts_applied: usize,
    /// The server's answer, when a report was sent.
    pub outcome: Option<ImportOutcome>,
    /// Changes were found but put off until the membership check may run again
    /// ([`MEMBERSHIP_CHECK_EVERY`]): the main loop runs a cycle then, whatever its tick.
    pub put_off: bool,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The users to report from one read, and their pwdLastSet (for password capture).
struct Observed {
    report: ImportReport,
    entries_read: usize,
    passwords: Vec<(String, String, i64)>,
    /// Whether the membership check ran.
    checked: bool,
    /// What the parts of a first complete read did while it was read.
    parts: PartsApplied,
    /// The facts a group change replaced: freed with the rest of the cycle, once the report
    /// is sent (freeing 20,000 DNs took ~2 ms at 10,000 users).
    replaced: Option<Facts>,
}

/// Where the users of a first complete read go while it is read (see [`read_in_parts`]).
#[derive(Clone, Copy)]
struct Parts<'a> {
    session: &'a Session,
    fencing: u64,
}

/// Reads everything in scope and rebuilds the cache; with `parts`, the users are also sent
/// to tetherd in parts while they are read.
async fn full_read(
    cfg: &ImportConfig,
    ldap: &mut Ldap,
    nc: &str,
    cache: &mut Cache,
    parts: Option<Parts<'_>>,
) -> Result<Observed, AgentError> {
    let t0 = std::time::Instant::now();
    let groups = read_groups(ldap, nc).await?;
    let groups_ms = t0.elapsed().as_millis() as u64;
    let group_count = groups.len();
    cache.groups = groups.into_iter().map(|g| (g.guid.clone(), keyed(g))).collect();
    cache.unchecked.clear();
    let f = facts(cfg, &cache.groups)?;
    let t1 = std::time::Instant::now();
    let (users, parts) = match parts {
        Some(p) => read_in_parts(cfg, ldap, &f, p).await?,
        None => (paged_search(ldap, &cfg.ldap.root_user_container, USERS, USER_ATTRS).await?, PartsApplied::default()),
    };
    let users_ms = t1.elapsed().as_millis() as u64;
    let read = users.len();
    let entries: Vec<_> = users.into_iter().filter(|e| f.scope.contains(&e.dn.to_lowercase())).collect();
    cache.scope = entries.iter().map(|e| (guid_hex(e), e.dn.to_lowercase())).collect();
    let t2 = std::time::Instant::now();
    let (report, passwords) =
        assemble(cfg, &cache.groups, &f, &entries, &cache.scope, GroupsToReport::All, Gone::default());
    tracing::debug!(
        groups_ms,
        users_ms,
        parts = parts.parts,
        assemble_ms = t2.elapsed().as_millis() as u64,
        "complete read"
    );
    let replaced = cache.facts.replace(f);
    Ok(Observed { report, entries_read: read + group_count, passwords, checked: false, parts, replaced })
}

/// Reads every user under the root user container while tetherd imports those in scope, in
/// parts of `cfg.first_read_part` users sent one at a time as the read goes on (a first
/// import at 10,000 users used to read for ~9 s and then wait ~6 s for tetherd to write
/// them all). A part is an incremental report of users only, of which tetherd only creates
/// the new ones, and only into a domain without users: the first part has no `base`, each
/// next one names the last one's number, so parts only ever fill a new domain. A read that
/// fails part-way leaves created users only (never a removal). The complete report that
/// follows carries everything, as without parts, and finds the parts' users there already.
/// Every part read is sent (what is still queued when the read ends costs tetherd the same
/// in a part as in the complete report), unless one is refused (a domain with users), fails
/// or is held: the rest then go with the complete report, which meets the same answer and
/// deals with it as any cycle does.
async fn read_in_parts(
    cfg: &ImportConfig,
    ldap: &mut Ldap,
    f: &Facts,
    p: Parts<'_>,
) -> Result<(Vec<tether_ad::read::Entry>, PartsApplied), AgentError> {
    // Unbounded: a part holds the observations of users the read keeps anyway.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ImportReport>();
    let reading = async {
        let tx = tx;
        let on_page = |page: &[tether_ad::read::Entry]| {
            // The sender stopped: the rest goes with the complete report.
            if tx.is_closed() {
                return;
            }
            let mut report = crate::report::part(cfg, f, page);
            if !report.users.is_empty() {
                report.fencing = Some(p.fencing);
                let _ = tx.send(report);
            }
        };
        let root = &cfg.ldap.root_user_container;
        tether_ad::read::paged_search_each(ldap, root, USERS, USER_ATTRS, cfg.first_read_part, on_page).await
    };
    let sending = async move {
        let mut applied = PartsApplied::default();
        let mut last = None;
        while let Some(mut report) = rx.recv().await {
            report.base = last;
            match p.session.report_import(&report).await {
                Ok(o) if !o.held => {
                    applied.parts += 1;
                    applied.created += o.created;
                    last = Some(o.seq);
                }
                Ok(o) => {
                    tracing::warn!(reason = ?o.held_reason, "a part of the first read was held: the rest goes with the complete report");
                    break;
                }
                Err(e) => {
                    tracing::info!(error = %e, "a part of the first read was not applied: the rest goes with the complete report");
                    break;
                }
            }
        }
        rx.close();
        applied
    };
    let (read, applied) = tokio::join!(reading, sending);
    Ok((read?, applied))
}

/// What the parts of a first complete read did.
#[derive(Clone, Copy, Debug, Default)]
struct PartsApplied {
    parts: usize,
    created: usize,
}

impl PartsApplied {
    /// The cycle's outcome: the complete report's, with the users the parts created counted
    /// so (the complete report found them unchanged, or, held, applied nothing of its own).
    fn counted_in(self, mut o: ImportOutcome) -> ImportOutcome {
        o.created += self.created;
        o.unchanged = o.unchanged.saturating_sub(self.created);
        o
    }
}

/// Reads only what changed since the cached USN (objects whose `uSNChanged` moved, or the
/// notified ones), plus users who entered the scope through a group change, and reports them
/// incrementally. When the objects read do not account for every USN up to `highest`, the
/// membership of the groups that count is read again (the membership check), which reveals
/// deletions — or, unless `may_check`, nothing is reported (`None`) and a later cycle reads
/// again. A changed group that was mirrored is sent as who joined and who left it since
/// `cache` (the last applied report: tetherd refuses the report if it applied anything else
/// since).
async fn incremental_read(
    cfg: &ImportConfig,
    ldap: &mut Ldap,
    nc: &str,
    cache: &mut Cache,
    highest: u64,
    changes: Changes,
    may_check: bool,
) -> Result<Option<Observed>, AgentError> {
    let since = cache.usn.unwrap_or(0) + 1;
    // Facts kept from the last cycle of this run also mean its scope walk held: every user of
    // `cache.scope` is in the facts' scope.
    let (before, kept) = match cache.facts.take() {
        Some(f) => (f, true),
        None => (facts(cfg, &cache.groups)?, false),
    };
    let mirrored_before = mirrored_guids(&cache.groups, &before);
    let searched = std::time::Instant::now();
    let Changed { groups: changed_groups, users: changed_users, usns, others } =
        changed_objects(ldap, nc, since, highest, changes).await?;
    let search_ms = searched.elapsed().as_millis() as u64;
    // Whether `cache.groups` changed: the facts are a function of them (and the config).
    // Facts computed from the saved state (a restart, maybe under another configuration) may
    // count a group the membership check left unread: recomputed below, that group read first.
    let mut groups_changed = !changed_groups.is_empty() || (!kept && !before.counted.is_disjoint(&cache.unchecked));
    for g in &changed_groups {
        if let Some(old) = cache.groups.get(&g.guid).filter(|o| !o.dn.eq_ignore_ascii_case(&g.dn)) {
            let old_dn = old.dn.clone();
            rename_member(&mut cache.groups, &old_dn, &g.dn);
        }
        cache.put_group(g.clone());
    }
    // Users known to tetherd by a DN that is no longer theirs: lowercased DN → objectGUID.
    let mut old_dns = HashMap::new();
    for e in &changed_users {
        let guid = guid_hex(e);
        if let Some(old) = cache.scope.get(&guid).filter(|d| **d != e.dn.to_lowercase()).cloned() {
            old_dns.insert(old.to_lowercase(), guid.clone());
            rename_member(&mut cache.groups, &old, &e.dn);
            cache.scope.insert(guid, e.dn.to_lowercase());
            groups_changed = true;
        }
    }
    // Groups renamed or moved (lowercased DNs): their entries are reported again.
    let mut moved: HashSet<String> = changed_groups.iter().map(|g| g.dn.to_lowercase()).collect();
    let (mut checked, mut ran_check) = (0, false);
    if !explained(since, highest, usns) {
        if !may_check {
            return Ok(None);
        }
        // Only the groups the facts count are read (in a real domain most groups, and most
        // member values, are outside the ADI group's closure); every other one not read in
        // this cycle may now name a deleted member, and is read again once it counts.
        let fresh: HashSet<&str> = changed_groups.iter().map(|g| g.guid.as_str()).collect();
        let wanted: Vec<String> = before.counted.iter().filter(|g| !fresh.contains(g.as_str())).cloned().collect();
        let unread: Vec<String> = cache
            .groups
            .keys()
            .filter(|g| !fresh.contains(g.as_str()) && !before.counted.contains(*g) && !cache.unchecked.contains(*g))
            .cloned()
            .collect();
        cache.unchecked.extend(unread);
        // A deletion leaves no object to read; a renamed or moved OU does (the groups under
        // it then have new DNs): only then is every group's DN read again.
        if others {
            cache.follow_moves(ldap, nc, &mut moved).await?;
        }
        checked = cache.reread(ldap, nc, &wanted, &mut moved).await?;
        ran_check = true;
        groups_changed = true;
        tracing::debug!(since, highest, groups = checked, "USNs unexplained by the read: membership checked");
    }
    let closure = std::time::Instant::now();
    let recomputed = if groups_changed {
        let (f, stale) = cache.read_stale(cfg, ldap, nc, &mut moved).await?;
        checked += stale;
        Some(f)
    } else {
        None
    };
    let facts_ms = closure.elapsed().as_millis() as u64;
    let after = recomputed.as_ref().unwrap_or(&before);
    // The groups as they were at the end of the last cycle: so is the scope, nobody joined or
    // left it, and the walks over the whole scope below (~25 ms a cycle at 10,000 users) are
    // skipped. (A member the last walk could not read — hidden from the import account, or
    // not a person — is then tried again at the next group change or complete read only; a
    // deleted member always brings the membership check, a group change.)
    let same_scope = kept && !groups_changed;
    let changed_dns: HashSet<String> = changed_users.iter().map(|e| e.dn.to_lowercase()).collect();
    // Users whose privileged or sudo standing changed with a group change.
    let standing = |f: &Facts, d: &String| (f.privileged.contains(d), f.admins.contains(d));
    // The scope came out with the same users (a group change among users already in it, as
    // most are): nobody joined or left it, so the walks below come down to the users whose
    // privileged or sudo standing moved, found in those small sets (the same answers without
    // three passes over 10,000 users). The cached scope then holds every user of the facts'
    // (it holds no other when they are kept: same size, same set).
    let same_users = kept && !same_scope && cache.scope.len() == before.scope.len() && after.scope == before.scope;
    let to_read: Vec<String> = if same_scope {
        Vec::new()
    } else if same_users {
        let moved = before.privileged.symmetric_difference(&after.privileged);
        let mut dns: Vec<String> = moved
            .chain(before.admins.symmetric_difference(&after.admins))
            .filter(|d| after.scope.contains(*d) && !changed_dns.contains(*d))
            .cloned()
            .collect();
        dns.sort_unstable();
        dns.dedup();
        dns
    } else {
        let old_scope: HashSet<&str> = cache.scope.values().map(String::as_str).collect();
        let mut dns: Vec<String> = after
            .scope
            .iter()
            .filter(|d| !changed_dns.contains(*d))
            .filter(|d| !old_scope.contains(d.as_str()) || standing(&before, d) != standing(after, d))
            .cloned()
            .collect();
        // Read (and reported) in the order of their DNs, whatever the set's.
        dns.sort_unstable();
        dns
    };
    let mut entries: Vec<tether_ad::read::Entry> =
        changed_users.iter().filter(|e| after.scope.contains(&e.dn.to_lowercase())).cloned().collect();
    for dn in &to_read {
        entries.extend(read_entry(ldap, dn).await?);
    }
    let gone: Vec<String> = if same_scope || same_users {
        Vec::new()
    } else {
        let mut gone = Vec::new();
        cache.scope.retain(|g, d| {
            let stays = after.scope.contains(d.as_str());
            if !stays {
                gone.push(g.clone());
                old_dns.insert(d.clone(), g.clone());
            }
            stays
        });
        gone
    };
    for e in &entries {
        cache.scope.insert(guid_hex(e), e.dn.to_lowercase());
    }
    // Mirrored groups whose flattened membership changed (users joining, leaving, renamed),
    // that are new, or whose own entry moved (a rename). (`assemble` adds those with a member
    // it reports privileged.)
    let changed: BTreeSet<String> = after
        .mirrored
        .iter()
        .filter(|(dn, members)| moved.contains(*dn) || (groups_changed && before.mirrored.get(*dn) != Some(*members)))
        .map(|(dn, _)| dn.clone())
        .collect();
    let groups = mirrored_before.difference(&mirrored_guids(&cache.groups, after)).cloned().collect();
    let (report, passwords) = assemble(
        cfg,
        &cache.groups,
        after,
        &entries,
        &cache.scope,
        GroupsToReport::Changed(changed, Base { mirrored: &before.mirrored, guids: &mirrored_before, old_dns }),
        Gone { users: gone, groups },
    );
    let entries_read = changed_groups.len() + changed_users.len() + to_read.len() + checked;
    let rest_ms = closure.elapsed().as_millis() as u64 - facts_ms;
    tracing::debug!(search_ms, groups_changed, same_users, facts_ms, rest_ms, "incremental read");
    let (kept_now, replaced) = match recomputed {
        Some(f) => (f, Some(before)),
        None => (before, None),
    };
    cache.facts = Some(kept_now);
    Ok(Some(Observed { report, entries_read, passwords, checked: ran_check, parts: PartsApplied::default(), replaced }))
}

/// One user by DN; `None` when it is not there (any more): a cached member list may still
/// name a user deleted since.
async fn read_entry(ldap: &mut Ldap, dn: &str) -> Result<Option<tether_ad::read::Entry>, AgentError> {
    const NO_SUCH_OBJECT: u32 = 32;
    let res = ldap
        .search(dn, tether_ad::ldap3::Scope::Base, USERS, USER_ATTRS.to_vec())
        .await
        .map_err(tether_ad::AdError::from)?;
    if res.1.rc == NO_SUCH_OBJECT {
        return Ok(None);
    }
    let (entries, _) = res.success().map_err(tether_ad::AdError::from)?;
    Ok(entries.into_iter().next().map(tether_ad::ldap3::SearchEntry::construct))
}

fn remember(memory: Option<&mut Memory>, cache: Cache) {
    if let Some(m) = memory {
        m.cache = Some(cache);
    }
}

/// The objectGUIDs of the groups the membership check reads, of `groups` (every group of the
/// domain, as [`read_groups`] gives them): those the closure counts. For the benchmark.
#[doc(hidden)]
pub fn counted_groups(
    cfg: &ImportConfig,
    groups: Vec<tether_ad::read::GroupEntry>,
) -> Result<BTreeSet<String>, AgentError> {
    let groups = groups.into_iter().map(|g| (g.guid.clone(), keyed(g))).collect();
    Ok(facts(cfg, &groups)?.counted)
}

/// `--dry-run`: a complete read, decided by tetherd but applied nowhere; the watermark and
/// cache are left as they were.
pub async fn dry_run(cfg: &ImportConfig, ldap: &mut Ldap, session: &Session) -> Result<ImportOutcome, AgentError> {
    let dse = root_dse(ldap).await?;
    let mut scratch = Cache::default();
    let read = full_read(cfg, ldap, &dse.default_naming_context, &mut scratch, None).await?;
    let mut report = read.report;
    report.dry_run = true;
    session.report_import(&report).await
}

/// Runs one cycle. `force` makes it a complete read even if nothing moved.
pub async fn cycle(
    cfg: &ImportConfig,
    ldap: &mut Ldap,
    session: &Session,
    force: bool,
) -> Result<CycleStats, AgentError> {
    cycle_with(cfg, ldap, session, force, None, None).await
}

/// What a running agent keeps between its cycles: the state last saved to `StateDir`, so an
/// idle cycle (every tick) costs a rootDSE read and no parsing of the saved file (emptied by
/// a cycle that fails, is held or is put off, so the next one starts again from the file),
/// the membership checks' budget, and the last heartbeat's answer.
#[derive(Default)]
pub struct Memory {
    cache: Option<Cache>,
    checks: CheckBudget,
    beat: Option<(std::time::Instant, Beat)>,
}

/// How long a heartbeat's answer (paused, primary, fencing token) stands for a cycle's own:
/// longer than the main loop's heartbeat period (at most 15 s), so a running agent's cycle
/// that finds a change reads and reports at once instead of first asking tetherd (a round
/// trip and two writes: the agent's contact time and the domain's lease). Safe because
/// tetherd refuses the report of an agent paused or no longer primary since (the fencing
/// token); the cycle then asks again and, paused or secondary, reports nothing.
pub const BEAT_STANDS_FOR: Duration = Duration::from_secs(20);

impl Memory {
    /// Keeps the answer of a heartbeat just made (by the main loop).
    pub fn heard(&mut self, beat: Beat) {
        self.beat = Some((std::time::Instant::now(), beat));
    }

    /// Forgets the last heartbeat's answer (after a failed cycle).
    pub fn forget_beat(&mut self) {
        self.beat = None;
    }

    fn recent_beat(&self) -> Option<Beat> {
        self.beat.filter(|(t, _)| t.elapsed() < BEAT_STANDS_FOR).map(|(_, b)| b)
    }
}

/// A heartbeat now, its answer kept in `memory`.
async fn heartbeat(session: &Session, memory: Option<&mut Memory>) -> Result<Beat, AgentError> {
    let b = session.heartbeat().await?;
    if let Some(m) = memory {
        m.heard(b);
    }
    Ok(b)
}

/// [`cycle`], taking what the change notifications delivered from `inbox` when it accounts
/// for every USN since the watermark, and the saved state (with the groups' closure facts)
/// and the last heartbeat's answer from `memory` when it holds them.
pub async fn cycle_with(
    cfg: &ImportConfig,
    ldap: &mut Ldap,
    session: &Session,
    force: bool,
    inbox: Option<&Inbox>,
    mut memory: Option<&mut Memory>,
) -> Result<CycleStats, AgentError> {
    let path = cfg.state_dir().join("import.json");
    let mut cache = memory.as_deref_mut().and_then(|m| m.cache.take()).unwrap_or_else(|| load_cache(&path));
    let may_check = memory.as_deref().is_none_or(|m| m.checks.may(std::time::Instant::now()));
    let due = now_secs().saturating_sub(cache.last_complete) >= RECONCILE_EVERY.as_secs();
    // The idle tick (a running agent's, ten times a second) reads `highestCommittedUSN` alone:
    // the DC's CPU for the four attributes below is almost twice as much (Samba, ten reads a
    // second: 12 against 7 ms a second). The rest (which DC answers, its naming context) is
    // read once the USN moved, before anything else: another DC (a failover) whose USN is
    // by chance the watermark is then found at its first write instead of at once, and read
    // completely then, as it would be now.
    if let (false, false, Some(w)) = (force, due, cache.usn) {
        let usn = highest_committed_usn(ldap).await?;
        if let Some(i) = inbox {
            i.watch.cycle_read(None, usn);
        }
        if usn == w {
            if let Some(i) = inbox {
                i.forget_through(w);
            }
            remember(memory, cache);
            return Ok(CycleStats::default());
        }
    }
    let dse = root_dse(ldap).await?;
    if let Some(i) = inbox {
        i.watch.cycle_read(Some(&dse.ds_service_name), dse.highest_committed_usn);
    }
    // Another DC (a failover, a name that resolves to several), or the same one restored from
    // a backup: its USNs say nothing of the watermark, so everything is read again.
    let other_dc = cache.server.as_deref().is_some_and(|s| s != dse.ds_service_name)
        || cache.usn.is_some_and(|w| dse.highest_committed_usn < w);
    let complete = force || due || cache.usn.is_none() || other_dc;
    if let (Some(i), Some(w)) = (inbox, cache.usn) {
        i.forget_through(w);
    }
    if !complete && cache.usn == Some(dse.highest_committed_usn) {
        remember(memory, cache);
        return Ok(CycleStats::default());
    }
    // Only the primary import agent of the domain reads and reports (one per DC may run).
    let reused = memory.as_deref().and_then(Memory::recent_beat);
    let beat = match reused {
        Some(b) => b,
        None => heartbeat(session, memory.as_deref_mut()).await?,
    };
    if beat.paused || !beat.primary {
        if let Some(i) = inbox {
            i.clear();
        }
        remember(memory, cache);
        return Ok(CycleStats::default());
    }
    let mut complete = complete || cache.applied.is_none();
    let nc = dse.default_naming_context.clone();
    let started = std::time::Instant::now();
    let notified = match (complete, inbox, cache.usn) {
        (false, Some(i), Some(w)) if i.is_from(&dse.ds_service_name) => notified_run(w + 1, i.since(w)),
        _ => None,
    };
    // The USN the cycle accounts for up to: anything written later is seen next cycle.
    let (mut through, mut kind, read) = if complete {
        // A first read (nobody in the cached scope) sends its users in parts as it reads.
        let parts = (cache.scope.is_empty() && beat.parts).then_some(Parts { session, fencing: beat.fencing });
        (dse.highest_committed_usn, ReadKind::Complete, Some(full_read(cfg, ldap, &nc, &mut cache, parts).await?))
    } else {
        let (through, changes) = match notified {
            Some((last, entries)) => (last, Changes::Notified(entries)),
            None => {
                let highest = dse.highest_committed_usn;
                (highest, Changes::between(cache.usn.unwrap_or(0) + 1, highest))
            }
        };
        let kind = changes.kind();
        (through, kind, incremental_read(cfg, ldap, &nc, &mut cache, through, changes, may_check).await?)
    };
    // Put off until the membership check may run again: nothing reported, the watermark
    // stays, and the state (changed by the read) is read again from the file.
    let Some(mut read) = read else {
        return Ok(CycleStats { put_off: true, ..CycleStats::default() });
    };
    if read.checked {
        if let Some(m) = memory.as_deref_mut() {
            m.checks.spent(std::time::Instant::now());
        }
    }
    let read_ms = started.elapsed().as_millis() as u64;
    let mut report = std::mem::take(&mut read.report);
    report.fencing = Some(beat.fencing);
    report.base = if complete { None } else { cache.applied };
    let mut answer = session.report_import(&report).await;
    if !complete && matches!(answer, Err(AgentError::Server { status: 412, .. })) {
        // Something was applied since this agent's last applied report (an approved plan,
        // another agent's report, one whose answer was lost): what tetherd holds is not what
        // the cache says (a user that left there and came back here would be in neither side's
        // changes), so everything is read and reported whole.
        tracing::info!("tetherd applied more than this agent's last report: reading everything");
        read = full_read(cfg, ldap, &nc, &mut cache, None).await?;
        (through, kind, complete) = (dse.highest_committed_usn, ReadKind::Complete, true);
        report = std::mem::take(&mut read.report);
        report.fencing = Some(beat.fencing);
        answer = session.report_import(&report).await;
    }
    let outcome = match answer {
        // Refused on the word of an earlier heartbeat: paused or no longer primary since? Ask.
        Err(e @ AgentError::Server { status: 409, .. }) if reused.is_some() => {
            let b = heartbeat(session, memory.as_deref_mut()).await?;
            if !b.paused && b.primary {
                return Err(e);
            }
            if let Some(i) = inbox {
                i.clear();
            }
            // Nothing applied; the state changed by the read is read again from the file.
            return Ok(CycleStats::default());
        }
        r => r?,
    };
    let groups_as_changes = report.groups_as_changes();
    drop(report);
    drop(read.replaced.take());
    tracing::debug!(
        read = kind.as_str(),
        entries = read.entries_read,
        read_ms,
        report_ms = started.elapsed().as_millis() as u64 - read_ms,
        "import cycle reported"
    );
    if outcome.held {
        // Held by a mass-change guard: nothing was applied. The watermark stays, so the
        // same changes are reported again until an admin approves or rejects the plan.
        tracing::warn!(reason = ?outcome.held_reason, "import cycle held by a mass-change guard: see the domain's plan");
        return Ok(CycleStats {
            entries_read: read.entries_read,
            read: kind,
            groups_as_changes,
            parts_applied: read.parts.parts,
            outcome: Some(read.parts.counted_in(outcome)),
            put_off: false,
        });
    }
    if let (InstalledOn::Dc, Some(conf)) = (cfg.installed_on, cfg.samba_smb_conf.as_deref()) {
        let hashes = crate::passwords::capture(&cfg.state_dir(), Path::new(conf), &read.passwords).await?;
        if !hashes.is_empty() {
            session.send_passwords(&hashes).await?;
        }
    }
    // Saved only once the server has applied the report, so a crash re-reads.
    cache.usn = Some(through);
    cache.server = Some(dse.ds_service_name.clone());
    cache.applied = Some(outcome.seq);
    if complete {
        cache.last_complete = now_secs();
    }
    save_cache(&path, &cache)?;
    remember(memory, cache);
    if let Some(i) = inbox {
        i.forget_through(through);
    }
    Ok(CycleStats {
        entries_read: read.entries_read,
        read: kind,
        groups_as_changes,
        parts_applied: read.parts.parts,
        outcome: Some(read.parts.counted_in(outcome)),
        put_off: false,
    })
}
