//! The change feed to the sync agents: every change in Tether to a user bound to a domain
//! (directly or through an associated group) becomes an ordered, durable entry of that
//! domain's feed; a user that loses its last connection to a domain becomes a
//! `user_disconnected` entry. The sync agent long-polls the feed, applies entries to AD and
//! acknowledges its cursor, so delivery is at least once and in order; application is
//! idempotent (each entry carries the user's state, not a diff).
//!
//! Writes made by the import agent are not fed back: an agent's own write never flips state.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use tether_core::ad::{AdDomain, AgentType};
use tether_core::adi::guard::Category;
use tether_core::adi::sync::UserChange;
use tether_core::user::User;
use tether_store::{Collection, Edge};

use crate::error::ApiError;
use crate::state::AppState;

/// What else an admin did besides changing fields.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    pub explicit_unlock: bool,
    pub expire: bool,
    /// The change suspends a user that was not suspended (a guarded category).
    pub suspending: bool,
}

/// Domains a user is bound to (directly or through groups) whose use case has a sync agent.
pub async fn bound_domains(s: &AppState, user_id: &str) -> Result<BTreeSet<String>, ApiError> {
    let store = s.repo.store();
    let mut out: BTreeSet<String> = store.sources(Edge::DomainUser, user_id).await?.into_iter().collect();
    for g in store.sources(Edge::Member, user_id).await? {
        out.extend(store.sources(Edge::DomainGroup, &g).await?);
    }
    let mut syncing = BTreeSet::new();
    for d in out {
        if let Some(dom) = s.repo.get::<AdDomain>(Collection::Domains, &d).await? {
            if dom.use_case.allowed_agents().contains(&AgentType::Sync) {
                syncing.insert(d);
            }
        }
    }
    Ok(syncing)
}

/// The entry's view of the user; a new password travels as the entry's secret, not here.
fn change_of(u: &User, f: Flags) -> UserChange {
    UserChange {
        username: u.username.clone(),
        firstname: u.firstname.clone(),
        lastname: u.lastname.clone(),
        email: u.email.clone(),
        suspended: u.suspended,
        has_password: u.has_password,
        password: None,
        explicit_unlock: f.explicit_unlock,
        expire: f.expire,
    }
}

/// An entry of `domain`'s feed about `u`: the user's account in that domain (its link
/// there), never another domain's.
fn body(u: &User, domain: &str, change: &UserChange) -> Value {
    let link = u.link_in(domain);
    json!({
        "userId": u.id,
        "guid": link.as_ref().map(|l| &l.guid),
        "dn": link.as_ref().map(|l| &l.dn),
        "change": change,
    })
}

/// Marks an entry body with the mass-change guard categories it counts in
/// (see `sync_guard`): `{"suspends": 1}` and the like.
pub(super) fn with_guard(mut b: Value, counts: &[(Category, usize)]) -> Value {
    let g: serde_json::Map<String, Value> =
        counts.iter().filter(|(_, n)| *n > 0).map(|(c, n)| (c.to_string(), json!(n))).collect();
    if !g.is_empty() {
        b["guard"] = Value::Object(g);
    }
    b
}

/// Appends one entry to `domain`'s feed, made now.
pub(super) async fn append(
    s: &AppState,
    domain: &str,
    kind: &str,
    object: &str,
    body: &Value,
    secret: Option<&str>,
) -> Result<i64, ApiError> {
    let created = s.now_str();
    let e = tether_store::NewFeedEntry { domain, kind, object, body, secret, created: &created };
    Ok(s.repo.store().append_feed(e).await?)
}

pub(super) async fn notify(s: &AppState) {
    s.feed_wake.notify_waiters();
}

/// Feeds a change of `u` to every domain it is bound to.
pub async fn user_changed(s: &AppState, u: &User, password: Option<&str>, f: Flags) -> Result<(), ApiError> {
    let domains = bound_domains(s, &u.id).await?;
    feed_user(s, u, &domains, password, f).await
}

/// Feeds a change the import of `importing` made to `u` to the other domains it is bound
/// to (never back to the importing domain: an agent's own write never flips state).
pub async fn imported_change(s: &AppState, u: &User, importing: &str) -> Result<(), ApiError> {
    let mut domains = bound_domains(s, &u.id).await?;
    domains.remove(importing);
    feed_user(s, u, &domains, None, Flags::default()).await
}

async fn feed_user(
    s: &AppState,
    u: &User,
    domains: &BTreeSet<String>,
    password: Option<&str>,
    f: Flags,
) -> Result<(), ApiError> {
    let change = change_of(u, f);
    let guard = [(Category::PasswordResets, password.is_some() as usize), (Category::Suspends, f.suspending as usize)];
    // Sealed under tetherd's key: the database never holds the password in clear.
    let sealed = password.map(|p| s.config.secret_key.seal(p, &u.id));
    for d in domains {
        append(s, d, "user", &u.id, &with_guard(body(u, d, &change), &guard), sealed.as_deref()).await?;
    }
    if !domains.is_empty() {
        notify(s).await;
    }
    Ok(())
}

/// Feeds the disconnection of `u` from `domains`, and forgets its accounts there: the entry
/// carries the link the sync agent needs, and a later binding finds the account again.
pub async fn user_disconnected(s: &AppState, u: &User, domains: &BTreeSet<String>) -> Result<(), ApiError> {
    for d in domains {
        let b = with_guard(body(u, d, &change_of(u, Flags::default())), &[(Category::Unbinds, 1)]);
        append(s, d, "user_disconnected", &u.id, &b, None).await?;
    }
    if !domains.is_empty() {
        notify(s).await;
        forget_links(s, &u.id, domains).await?;
    }
    Ok(())
}

/// Removes `u`'s links to `domains` (other than the importing domain's, which the import owns).
async fn forget_links(s: &AppState, user_id: &str, domains: &BTreeSet<String>) -> Result<(), ApiError> {
    crate::error::retrying(|| async {
        let Some(mut u) = s.repo.user(user_id).await? else { return Ok(()) };
        let before = u.ad_links.len();
        let importing = u.import_domain().map(str::to_string);
        u.ad_links.retain(|d, _| !domains.contains(d) || importing.as_deref() == Some(d.as_str()));
        if u.ad_links.len() != before {
            s.repo.save_user(&u, None).await?;
        }
        Ok(())
    })
    .await
}

/// The bound domains of some users, taken before an edge change.
pub async fn snapshot(s: &AppState, users: &[String]) -> Result<BTreeMap<String, BTreeSet<String>>, ApiError> {
    let mut m = BTreeMap::new();
    for u in users {
        m.insert(u.clone(), bound_domains(s, u).await?);
    }
    Ok(m)
}

/// After an edge change: users bound to new domains are fed as changes there (which creates
/// or takes over their AD account); users that lost domains are fed as disconnected.
pub async fn rebind(s: &AppState, before: BTreeMap<String, BTreeSet<String>>) -> Result<(), ApiError> {
    for (uid, old) in before {
        let Some(u) = s.repo.user(&uid).await? else { continue };
        let new = bound_domains(s, &uid).await?;
        let lost: BTreeSet<String> = old.difference(&new).cloned().collect();
        user_disconnected(s, &u, &lost).await?;
        for d in new.difference(&old) {
            append(s, d, "user", &u.id, &body(&u, d, &change_of(&u, Flags::default())), None).await?;
            notify(s).await;
            if let Some(dom) = s.repo.get::<AdDomain>(Collection::Domains, d).await? {
                crate::notify::user_bound(s, &u, &dom).await?;
            }
        }
    }
    Ok(())
}

/// Domains a group is associated with whose use case has a sync agent.
pub async fn domains_of_group(s: &AppState, group_id: &str) -> Result<BTreeSet<String>, ApiError> {
    let mut out = BTreeSet::new();
    for d in s.repo.store().sources(Edge::DomainGroup, group_id).await? {
        if let Some(dom) = s.repo.get::<AdDomain>(Collection::Domains, &d).await? {
            if dom.use_case.allowed_agents().contains(&AgentType::Sync) {
                out.insert(d);
            }
        }
    }
    Ok(out)
}

/// Feeds that a group is no longer associated with `domains` (disassociated or deleted).
pub async fn group_disconnected(
    s: &AppState,
    g: &tether_core::group::Group,
    domains: &BTreeSet<String>,
) -> Result<(), ApiError> {
    for d in domains {
        let ad = &g.attributes["activeDirectory"];
        let b = json!({"groupId": g.id, "name": g.name, "guid": ad["id"], "dn": ad["dn"]});
        append(s, d, "group_disconnected", &g.id, &b, None).await?;
    }
    if !domains.is_empty() {
        notify(s).await;
    }
    Ok(())
}

/// The password of a feed entry as its sync agent receives it: opened with tetherd's key, if
/// it is younger than the bound (`None` otherwise; the user then says AD did not get it).
pub async fn deliverable_password(s: &AppState, e: &tether_store::FeedEntry) -> Result<Option<String>, ApiError> {
    let Some(sealed) = e.secret.as_deref() else { return Ok(None) };
    let created = time::OffsetDateTime::parse(&e.created, &time::format_description::well_known::Rfc3339).ok();
    if created.is_none_or(|c| s.now() - c > s.config.feed_password_ttl) {
        password_not_delivered(s, &e.object_id, &e.created).await?;
        return Ok(None);
    }
    if !crate::secrets::is_sealed(sealed) {
        // Written before passwords were sealed (an upgrade): delivered as it is, then erased
        // with the acknowledgement like any other.
        return Ok(Some(sealed.to_string()));
    }
    match s.config.secret_key.open(sealed, &e.object_id) {
        Some(p) => Ok(Some(p)),
        None => {
            tracing::error!(user = %e.object_id, "a feed password does not open with this tetherd's secret key");
            password_not_delivered(s, &e.object_id, &e.created).await?;
            Ok(None)
        }
    }
}

/// Records on the user that a password set in Tether did not reach AD.
async fn password_not_delivered(s: &AppState, user_id: &str, set_at: &str) -> Result<(), ApiError> {
    let Some(mut u) = s.repo.user(user_id).await? else { return Ok(()) };
    let why = format!(
        "the password set at {set_at} was not delivered to Active Directory within {} days \
         (or could not be opened with this server's secret key): set it again",
        s.config.feed_password_ttl.whole_days()
    );
    if u.ad_sync_error.as_deref() != Some(why.as_str()) {
        u.ad_sync_error = Some(why);
        s.repo.save_user(&u, None).await?;
    }
    Ok(())
}

/// Forgets the feed passwords older than the bound, now and every ten minutes, recording on
/// each user that AD did not get the password (entries waiting for a paused or absent agent).
pub async fn expire_passwords(s: AppState) {
    loop {
        let cutoff = tether_core::timestamp(s.now() - s.config.feed_password_ttl);
        match s.repo.store().expire_feed_secrets(&cutoff).await {
            Ok(expired) => {
                for (user, created) in expired {
                    if let Err(e) = password_not_delivered(&s, &user, &created).await {
                        tracing::warn!(error = %e.message, "recording an expired feed password");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "expiring feed passwords"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    }
}

/// A stored entry as its sync agent receives it (`tether_core::wire::FeedEntry`).
pub fn wire_entry(
    e: tether_store::FeedEntry,
    password: Option<String>,
) -> Result<tether_core::wire::FeedEntry, ApiError> {
    let v = json!({"seq": e.seq, "kind": e.kind, "objectId": e.object_id, "body": e.body, "password": password});
    serde_json::from_value(v).map_err(|err| {
        crate::error::ApiError::new(crate::error::Code::Internal, format!("feed entry {} is malformed: {err}", e.seq))
    })
}
