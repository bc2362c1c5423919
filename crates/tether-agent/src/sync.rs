//! The sync agent's work: read the domain's change feed from tetherd, apply each entry to AD,
//! acknowledge. Entries carry the user's state (not a diff), and each is applied by first
//! reading the AD user and asking the pure decision (`tether_core::adi::sync`), so applying
//! an entry twice has no further effect: a crash between applying and acknowledging leaves
//! AD as if it had not happened.

use serde_json::{json, Value};
use tether_ad::ldap3::{Scope, SearchEntry};
use tether_ad::read::{guid_hex, root_dse, text};
use tether_ad::{AdError, Ldap, NewUser};
use tether_core::adi::sync::{decide_disconnect, decide_user, AdAction, AdSide, SyncSettings, UserChange};
use tether_core::wire::{FeedEntry, FeedItem, SyncStatus};

use crate::config::SyncConfig;
use crate::session::Session;
use crate::sync_tree::Managed;
use crate::AgentError;

const POLL_WAIT_MS: u64 = 20_000;

fn settings(cfg: &SyncConfig) -> SyncSettings {
    SyncSettings {
        user_disconnection_action: cfg.user_disconnection_action,
        membership_disconnection: cfg.membership_disconnection,
        sync_account_locked_out_status: cfg.sync_account_locked_out_status,
    }
}

/// The domain facts the agent needs, read once per connection.
pub struct Domain {
    pub nc: String,
    pub dns_name: String,
    /// The sync group was moved under a former child: membership syncs as `match`.
    pub forced_match: bool,
    /// The privileged groups' DNs (found by SID): their members, nested too, are never written.
    pub privileged_groups: Vec<String>,
}

pub async fn domain(ldap: &mut Ldap, cfg: &SyncConfig) -> Result<Domain, AgentError> {
    let nc = root_dse(ldap).await?.default_naming_context;
    let dns_name =
        nc.split(',').filter_map(|p| p.split_once('=').map(|(_, v)| v.to_lowercase())).collect::<Vec<_>>().join(".");
    let forced_match = crate::sync_groups::moved_under_former_child(ldap, cfg, &cfg.state_dir()).await?;
    let mut privileged_groups = crate::ad_users::privileged_groups(ldap, &nc).await?;
    if privileged_groups.is_empty() {
        // Not readable by this account: the default names are the best left.
        tracing::warn!("the privileged groups cannot be found by SID; checking membership by their default names");
        privileged_groups =
            ["CN=Domain Admins,CN=Users", "CN=Enterprise Admins,CN=Users", "CN=Administrators,CN=Builtin"]
                .iter()
                .map(|g| format!("{g},{nc}"))
                .collect();
    }
    Ok(Domain { nc, dns_name, forced_match, privileged_groups })
}

/// adminCount=1, krbtgt, the bind account, or a (nested) member of Domain Admins, Enterprise
/// Admins or Administrators.
async fn privileged(ldap: &mut Ldap, d: &Domain, e: &SearchEntry, bind_dn: &str) -> Result<bool, AdError> {
    let sam = text(e, "sAMAccountName").unwrap_or_default();
    let bind = bind_dn.to_lowercase();
    if text(e, "adminCount").as_deref() == Some("1")
        || sam.eq_ignore_ascii_case("krbtgt")
        || e.dn.eq_ignore_ascii_case(bind_dn)
        || bind.split(['@', '\\']).any(|part| part == sam.to_lowercase())
    {
        return Ok(true);
    }
    // A member of a privileged group at any depth (LDAP_MATCHING_RULE_IN_CHAIN).
    let chain = "1.2.840.113556.1.4.1941";
    let f = format!(
        "(|{})",
        d.privileged_groups
            .iter()
            .map(|g| format!("(memberOf:{chain}:={})", tether_ad::ldap3::ldap_escape(g)))
            .collect::<String>()
    );
    let (entries, _) = ldap.search(&e.dn, Scope::Base, &f, vec!["1.1"]).await?.success()?;
    Ok(!entries.is_empty())
}

async fn side(ldap: &mut Ldap, d: &Domain, e: &SearchEntry, bind_dn: &str) -> Result<AdSide, AdError> {
    let num = |k: &str| tether_ad::read::number::<i64>(e, k).unwrap_or(0);
    Ok(AdSide {
        privileged: privileged(ldap, d, e, bind_dn).await?,
        disabled: num("userAccountControl") & 2 != 0,
        locked: num("msDS-User-Account-Control-Computed") & 0x10 != 0,
        given_name: text(e, "givenName"),
        sn: text(e, "sn"),
        mail: text(e, "mail"),
    })
}

async fn set_uac_bit(ldap: &mut Ldap, e: &SearchEntry, disabled: bool) -> Result<(), AdError> {
    let uac: u32 = text(e, "userAccountControl").and_then(|v| v.parse().ok()).unwrap_or(512);
    let new = if disabled { uac | 2 } else { uac & !2 };
    tether_ad::replace_attrs(ldap, &e.dn, &[("userAccountControl", &new.to_string())]).await
}

/// The outcome of one entry for the user in Tether.
struct Outcome {
    guid: Option<String>,
    dn: Option<String>,
    error: Option<String>,
    /// AD's code for `error` (`rc19`, …), for the server's metrics.
    code: Option<String>,
    group: bool,
    /// `pwdLastSet` of a system-generated password the agent set.
    generated_password_set: Option<i64>,
    /// A group's change alone could not be applied as such.
    resend_whole: bool,
}

fn ad_reason(e: &AdError) -> String {
    match e {
        AdError::Refused { message, .. } => format!("AD refused: {message}"),
        other => other.to_string(),
    }
}

/// Applies one feed entry. AD refusing a write is an outcome (reported on the user), not an
/// error; an error means AD could not be reached and the entry must be retried.
async fn apply(
    cfg: &SyncConfig,
    ldap: &mut Ldap,
    d: &Domain,
    managed: &mut Managed,
    entry: &FeedItem,
) -> Result<Option<(String, Outcome)>, AgentError> {
    let entry = match entry {
        FeedItem::Known(e) => e.as_ref(),
        FeedItem::Unknown { kind, .. } => {
            tracing::warn!(kind = ?kind, "unknown feed entry; skipped");
            return Ok(None);
        }
    };
    let (body, password, connected) = match entry {
        FeedEntry::Group { body, .. } => {
            let o = crate::sync_groups::apply_group(cfg, ldap, &d.nc, managed, body, d.forced_match).await?;
            let outcome = Outcome {
                guid: o.guid,
                dn: o.dn,
                error: o.error,
                code: None,
                group: true,
                generated_password_set: None,
                resend_whole: o.resend_whole,
            };
            return Ok(Some((body.group_id.clone(), outcome)));
        }
        FeedEntry::GroupDisconnected { body, .. } => {
            crate::sync_groups::apply_group_disconnected(cfg, ldap, &d.nc, managed, body).await?;
            return Ok(None);
        }
        FeedEntry::User { body, password, .. } => (body, password.as_ref().map(|p| p.0.clone()), true),
        FeedEntry::UserDisconnected { body, .. } => (body, None, false),
    };
    let user_id = body.user_id.clone();
    let mut change: UserChange = body.change.clone();
    change.password = password;
    let s = settings(cfg);
    let found = crate::ad_users::find_user(ldap, &d.nc, body.guid.as_deref(), &change.username).await?;
    let ad = match &found {
        Some(e) => Some(side(ldap, d, e, &cfg.ldap.bind_dn).await?),
        None => None,
    };
    let actions = if connected { decide_user(&s, &change, ad.as_ref()) } else { decide_disconnect(&s, ad.as_ref()) };
    let mut out = Outcome {
        guid: found.as_ref().map(guid_hex),
        dn: found.as_ref().map(|e| e.dn.clone()),
        error: None,
        code: None,
        group: false,
        generated_password_set: None,
        resend_whole: false,
    };
    let mut current = found;
    for a in actions {
        let r: Result<(), AdError> = match (&a, current.as_ref()) {
            (AdAction::Create { disabled, random_password }, _) => {
                let pw = if *random_password {
                    crate::generated::password(&change.username, &[&change.firstname, &change.lastname])
                } else {
                    change.password.clone().unwrap_or_default()
                };
                let nu = NewUser {
                    container: &cfg.user_root_dn,
                    sam_account_name: &change.username,
                    given_name: &change.firstname,
                    sn: &change.lastname,
                    mail: &change.email,
                    password: Some(&pw),
                };
                let upn = format!("{}@{}", change.username, d.dns_name);
                let mut r = tether_ad::create_user_as(ldap, &nu, &nu.cn(), &upn, !disabled).await;
                if matches!(r, Err(AdError::Refused { rc: 68, .. })) {
                    // Another object has that CN: disambiguate with the username.
                    r = tether_ad::create_user_as(
                        ldap,
                        &nu,
                        &format!("{} ({})", nu.cn(), change.username),
                        &upn,
                        !disabled,
                    )
                    .await;
                }
                match r {
                    Ok(dn) => {
                        current = crate::ad_users::read_again(ldap, &dn, &d.nc, None, &change.username).await?;
                        if *random_password {
                            out.generated_password_set =
                                current.as_ref().and_then(|e| tether_ad::read::number(e, "pwdLastSet"));
                        }
                        out.guid = current.as_ref().map(guid_hex);
                        out.dn = current.as_ref().map(|e| e.dn.clone());
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            (AdAction::SetAttributes, Some(e)) => {
                tether_ad::replace_attrs(
                    ldap,
                    &e.dn,
                    &[("givenName", &change.firstname), ("sn", &change.lastname), ("mail", &change.email)],
                )
                .await
            }
            (AdAction::SetPassword, Some(e)) => {
                tether_ad::set_password(ldap, &e.dn, change.password.as_deref().unwrap_or_default()).await
            }
            (AdAction::Disable, Some(e)) => set_uac_bit(ldap, e, true).await,
            (AdAction::Enable, Some(e)) => set_uac_bit(ldap, e, false).await,
            (AdAction::Unlock, Some(e)) => tether_ad::replace_attrs(ldap, &e.dn, &[("lockoutTime", "0")]).await,
            (AdAction::ExpirePassword, Some(e)) => tether_ad::replace_attrs(ldap, &e.dn, &[("pwdLastSet", "0")]).await,
            (AdAction::Delete, Some(e)) => {
                let dn = e.dn.clone();
                ldap.delete(&dn)
                    .await
                    .map_err(AdError::from)
                    .and_then(|r| r.success().map(|_| ()).map_err(AdError::from))
            }
            (AdAction::RemoveMemberships, Some(e)) => remove_memberships(ldap, &cfg.sync_group, managed, e).await,
            (AdAction::Warn(w), _) => {
                out.error = Some(w.clone());
                Ok(())
            }
            (AdAction::Refuse(r), _) => {
                out.error = Some(r.clone());
                Ok(())
            }
            (_, None) => Ok(()),
        };
        match r {
            Ok(()) => {}
            Err(e @ AdError::Refused { .. }) | Err(e @ AdError::Bind { .. }) => {
                tracing::warn!(user = %change.username, action = ?a, error = %e, "AD refused a write");
                out.error = Some(ad_reason(&e));
                out.code = Some(e.code());
                break;
            }
            Err(e) => return Err(e.into()),
        }
        if let (AdAction::Disable | AdAction::Enable, Some(e)) = (&a, current.as_ref()) {
            // Re-read so later steps in the same entry see the new flags.
            current = crate::ad_users::read_again(ldap, &e.dn, &d.nc, Some(&guid_hex(e)), &change.username).await?;
        }
    }
    Ok(connected.then_some((user_id, out)))
}

async fn remove_memberships(
    ldap: &mut Ldap,
    sync_group: &str,
    managed: &mut Managed,
    e: &SearchEntry,
) -> Result<(), AdError> {
    // The groups Tether manages: every group nested (any depth) under the sync group.
    let member_of = e.attrs.get("memberOf").cloned().unwrap_or_default();
    for g in managed.among(ldap, sync_group, &member_of).await? {
        tether_ad::set_member(ldap, &g, &e.dn, false).await?;
    }
    Ok(())
}

/// For `--dry-run`: what each queued entry would do in AD, read but not written, and not
/// acknowledged. Group entries are described, not decided.
pub async fn preview(
    cfg: &SyncConfig,
    ldap: &mut Ldap,
    d: &Domain,
    entries: &[FeedItem],
) -> Result<Vec<Value>, AgentError> {
    let mut out = Vec::new();
    for item in entries {
        let seq = item.seq();
        let entry = match item {
            FeedItem::Known(e) => e.as_ref(),
            FeedItem::Unknown { kind, .. } => {
                out.push(json!({"seq": seq, "kind": kind, "actions": ["skip (unknown kind)"]}));
                continue;
            }
        };
        let kind = entry.kind();
        let (body, password) = match entry {
            FeedEntry::Group { body, .. } | FeedEntry::GroupDisconnected { body, .. } => {
                out.push(json!({"seq": seq, "kind": kind, "object": body.name, "actions": [kind]}));
                continue;
            }
            FeedEntry::User { body, password, .. } => (body, password.is_some()),
            FeedEntry::UserDisconnected { body, .. } => (body, false),
        };
        let mut change = body.change.clone();
        change.password = password.then(|| "(set)".to_string());
        let s = settings(cfg);
        let found = crate::ad_users::find_user(ldap, &d.nc, body.guid.as_deref(), &change.username).await?;
        let ad = match &found {
            Some(e) => Some(side(ldap, d, e, &cfg.ldap.bind_dn).await?),
            None => None,
        };
        let actions =
            if kind == "user" { decide_user(&s, &change, ad.as_ref()) } else { decide_disconnect(&s, ad.as_ref()) };
        let policy = format!(
            "user_disconnection_action={:?}, membership_disconnection={:?}, SyncAccountLockedOutStatus={}",
            s.user_disconnection_action, s.membership_disconnection, s.sync_account_locked_out_status
        )
        .to_lowercase();
        out.push(json!({
            "seq": seq, "kind": kind, "object": change.username,
            "adDn": found.as_ref().map(|e| e.dn.clone()),
            "actions": actions.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>(),
            "policy": policy,
        }));
    }
    Ok(out)
}

/// Reads and applies the feed until the agent is revoked. `ldap` is reopened after a failure.
pub async fn serve(cfg: SyncConfig, session: Session) -> Result<(), AgentError> {
    let target = cfg.ldap_target();
    let mut conn: Option<(Ldap, Domain)> = None;
    let (mut server_failures, mut ad_failures) = (0u32, 0u32);
    loop {
        let entries = match session.sync_poll(POLL_WAIT_MS).await {
            Ok(e) => e,
            Err(AgentError::Revoked) => return Err(AgentError::Revoked),
            Err(e) => {
                server_failures += 1;
                tracing::warn!(error = %e, "change feed: poll failed");
                tokio::time::sleep(crate::retry::backoff(server_failures)).await;
                continue;
            }
        };
        server_failures = 0;
        if entries.is_empty() {
            continue;
        }
        match apply_batch(&cfg, &target, &mut conn, &session, &entries).await {
            Ok(()) => {
                ad_failures = 0;
                session.ad_reachable();
                session.metrics.feed_applied(entries.len() as u64);
            }
            Err(AgentError::Revoked) => return Err(AgentError::Revoked),
            Err(e) => {
                conn = None;
                let wait = if let AgentError::Ad(_) = e {
                    ad_failures += 1;
                    session.ad_unreachable(&e);
                    crate::retry::backoff(ad_failures)
                } else {
                    server_failures += 1;
                    crate::retry::backoff(server_failures)
                };
                tracing::warn!(error = %e, retry_in = ?wait, "change feed: not applied; the entries will be applied again");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Applies entries in order, acknowledging after each so a failure re-delivers only the rest.
pub async fn apply_batch(
    cfg: &SyncConfig,
    target: &tether_ad::LdapTarget,
    conn: &mut Option<(Ldap, Domain)>,
    session: &Session,
    entries: &[FeedItem],
) -> Result<(), AgentError> {
    apply_entries(cfg, target, conn, session, entries, true).await
}

/// Like [`apply_batch`]; without `ack` the entries stay in the feed (as after a crash
/// between applying and acknowledging).
///
/// Each entry's outcome and acknowledgement go to tetherd, in order, while the next entry is
/// written to AD (two requests that otherwise left the DC idle for ~5 ms an entry, ~6 % of a
/// bulk provisioning: docs/performance.md). An AD failure stops the writes, and what was
/// applied before it is still reported and acknowledged; a failure to reach tetherd stops the
/// writes too, and the entries not acknowledged are delivered again (applying one twice has
/// no further effect, above). An outcome tetherd refuses for good (403 `FORBIDDEN`: the user
/// left the agent's domain since) is logged and its entry acknowledged, so it never stalls
/// the feed.
pub async fn apply_entries(
    cfg: &SyncConfig,
    target: &tether_ad::LdapTarget,
    conn: &mut Option<(Ldap, Domain)>,
    session: &Session,
    entries: &[FeedItem],
    ack: bool,
) -> Result<(), AgentError> {
    // Small: the writer runs at most a few entries ahead of what tetherd has heard of.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(i64, Option<SyncStatus>)>(4);
    let writer = async move {
        // The groups under the sync group, read once for the batch (crate::sync_tree).
        let mut managed = Managed::default();
        for entry in entries {
            let (ldap, d) = match conn {
                Some(c) => c,
                None => {
                    let mut l = tether_ad::connect(target).await?;
                    let d = domain(&mut l, cfg).await?;
                    conn.insert((l, d))
                }
            };
            let started = std::time::Instant::now();
            let applied = apply(cfg, ldap, d, &mut managed, entry).await?;
            let kind = match entry {
                FeedItem::Known(e) => e.kind(),
                FeedItem::Unknown { .. } => "unknown",
            };
            tracing::debug!(
                seq = entry.seq(),
                kind,
                ms = started.elapsed().as_millis() as u64,
                "feed entry applied in AD"
            );
            let status = applied.map(|(id, o)| {
                let (user_id, group_id) = if o.group { (None, Some(id)) } else { (Some(id), None) };
                SyncStatus {
                    user_id,
                    group_id,
                    guid: o.guid,
                    dn: o.dn,
                    error: o.error,
                    code: o.code,
                    generated_password_set: o.generated_password_set,
                    resend_whole: o.resend_whole,
                }
            });
            if tx.send((entry.seq(), status)).await.is_err() {
                // The reporter stopped on an error of its own, returned below.
                break;
            }
        }
        Ok::<(), AgentError>(())
    };
    // Owns the receiver: when it stops on an error, the writer's next send fails and the
    // writer stops too (a receiver kept alive would leave the writer waiting on a full channel).
    let reporter = async move {
        while let Some((seq, status)) = rx.recv().await {
            if let Some(status) = status {
                match session.sync_status(&status).await {
                    Ok(()) => {}
                    // tetherd's verdict that the user or group is no longer the agent's (it
                    // was unbound after its entry was delivered; its disconnection entry
                    // follows): no retry could record the outcome, and retrying would stall the
                    // feed on this entry. The entry is applied, so it is acknowledged.
                    Err(AgentError::Server { status: 403, message, reason: Some(r), .. }) if r == "FORBIDDEN" => {
                        tracing::warn!(seq, reason = %message, "tetherd did not record this entry's outcome; acknowledged");
                    }
                    Err(e) => return Err(e),
                }
            }
            if ack {
                session.sync_ack(seq).await?;
            }
        }
        Ok::<(), AgentError>(())
    };
    let (written, reported) = tokio::join!(writer, reporter);
    match (written, reported) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        // tetherd's error is returned (the writer stopped because of it, or AD failed at the
        // same time); AD's is logged.
        (Err(ad), Err(e)) => {
            tracing::warn!(error = %ad, "AD write failed while tetherd could not be told");
            Err(e)
        }
    }
}
