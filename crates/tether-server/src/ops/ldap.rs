//! The directory's LDAP server: its one object (the policy for locked and expired users),
//! who is in LDAP (associated directly or through a group), and the bind. The LDAP front
//! end and the REST routes both call these; neither reads the associations itself.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use tether_core::group::Group;
use tether_core::ldap::LdapServer;
use tether_core::user::User;
use tether_store::{Collection, Edge, UserKey};

use crate::error::{ApiError, ApiResult, Code};
use crate::ops::associations;
use crate::ops::auth::{AuthOutcome, Lenience};
use crate::ops::domains::Target;
use crate::ops::ldap_memory::Found;
use crate::state::AppState;

const SERVER_KEY: &str = "ldapServer";

/// The id of the one LDAP server: the same in every tetherd of a database from the start,
/// so two of them creating it at once agree.
fn server_id() -> String {
    crate::crypto::sha256_hex("tether ldap server")[..24].to_string()
}

/// How long a tetherd answers binds and searches from the LDAP server object it read
/// (another tetherd's change to its policy reaches this one within that time; this one's
/// own, at once).
const SERVER_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The LDAP server (created with its defaults on first use).
pub async fn server(s: &AppState) -> ApiResult<LdapServer> {
    if let Some((read, server)) = s.ldap_server.lock().expect("not poisoned").clone() {
        if read.elapsed() < SERVER_FRESH {
            return Ok(server);
        }
    }
    let mut server = LdapServer { id: server_id(), name: "Tether LDAP".into(), ..LdapServer::default() };
    if let Some(v) = s.repo.store().setting(SERVER_KEY).await?.filter(|v| !v.is_null()) {
        if let Ok(stored) = serde_json::from_value::<LdapServer>(v) {
            server = stored;
        }
    }
    *s.ldap_server.lock().expect("not poisoned") = Some((std::time::Instant::now(), server.clone()));
    Ok(server)
}

/// The LDAP server `id`, or 404.
pub async fn load(s: &AppState, id: &str) -> ApiResult<LdapServer> {
    let server = server(s).await?;
    if server.id != id {
        return Err(ApiError::not_found("ldap server", id));
    }
    Ok(server)
}

/// Changes `name`, `userLockoutAction` or `userPasswordExpirationAction`; any other key, or a
/// value of the wrong shape, is a 400 naming it.
pub async fn patch(s: &AppState, id: &str, body: &Value) -> ApiResult<LdapServer> {
    let current = load(s, id).await?;
    let Some(fields) = body.as_object() else {
        return Err(ApiError::new(Code::InvalidField, "the body must be a JSON object"));
    };
    let mut doc = serde_json::to_value(&current).expect("serializes");
    for (k, v) in fields {
        if !matches!(k.as_str(), "name" | "userLockoutAction" | "userPasswordExpirationAction") {
            return Err(ApiError::new(Code::InvalidField, format!("`{k}` cannot be changed")));
        }
        doc[k] = v.clone();
        if let Err(e) = serde_json::from_value::<LdapServer>(doc.clone()) {
            return Err(ApiError::new(Code::InvalidField, format!("invalid value for `{k}`: {e}")));
        }
    }
    let server: LdapServer = serde_json::from_value(doc).expect("checked field by field");
    s.repo.store().put_setting(SERVER_KEY, &serde_json::to_value(&server).expect("serializes")).await?;
    *s.ldap_server.lock().expect("not poisoned") = None;
    Ok(server)
}

const EDGES: associations::Edges =
    associations::Edges { users: Edge::LdapUser, groups: Edge::LdapGroup, what: "LDAP server" };

/// Adds a user or group to LDAP (`add`) or takes it out.
pub async fn set_association(s: &AppState, id: &str, target: Target, object: &str, add: bool) -> ApiResult<()> {
    load(s, id).await?;
    associations::set(s, EDGES, id, target, object, add).await
}

/// The ids of the users or groups associated directly.
pub async fn associated(s: &AppState, id: &str, target: Target) -> ApiResult<Vec<String>> {
    load(s, id).await?;
    associations::list(s, EDGES, id, target).await
}

/// Who is in LDAP, read once for a search: the users (direct or through a group), the
/// groups, and each group's members that are in LDAP.
pub struct InLdap {
    pub users: Vec<User>,
    pub groups: Vec<(Group, Vec<String>)>,
    /// User id → the names of its groups in LDAP (built once: a search asks for every user).
    group_names: HashMap<String, Vec<String>>,
}

impl InLdap {
    /// The names of the groups in LDAP `user_id` is in.
    pub fn groups_of(&self, user_id: &str) -> &[String] {
        self.group_names.get(user_id).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Everything in LDAP.
pub async fn in_ldap(s: &AppState) -> ApiResult<InLdap> {
    let id = server(s).await?.id;
    let store = s.repo.store();
    let mut ids: BTreeSet<String> = store.targets(Edge::LdapUser, &id).await?.into_iter().collect();
    let mut groups = Vec::new();
    for gid in store.targets(Edge::LdapGroup, &id).await? {
        let Some(g) = s.repo.get::<Group>(Collection::Groups, &gid).await? else { continue };
        let members = store.targets(Edge::Member, &gid).await?;
        ids.extend(members.iter().cloned());
        groups.push((g, members));
    }
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let users = s.repo.users_by_ids(&ids).await?;
    let mut group_names: HashMap<String, Vec<String>> = HashMap::new();
    for (g, members) in &groups {
        for m in members {
            group_names.entry(m.clone()).or_default().push(g.name.clone());
        }
    }
    Ok(InLdap { users, groups, group_names })
}

/// How a user stands in LDAP: associated directly, and the names of its groups in LDAP (for
/// the console's user page).
pub async fn standing(s: &AppState, user_id: &str) -> ApiResult<(bool, Vec<String>)> {
    let id = server(s).await?.id;
    let found = with_groups(s, &id, &[(user_id, UserKey::Id)]).await?.into_iter().next().flatten();
    Ok(found.map(|(_, direct, groups)| (direct, groups.into_iter().map(|g| g.name).collect())).unwrap_or_default())
}

/// Users (each named as its key says), each with whether it is associated with server
/// `server_id` directly and its groups in LDAP: one query (`Store::users_with_groups`), or
/// none while the store holds what it answered last time (see `ldap_memory`).
async fn with_groups(s: &AppState, server_id: &str, keys: &[(&str, UserKey)]) -> ApiResult<Vec<Found>> {
    let version = s.repo.store().directory_version();
    let read = std::time::Instant::now();
    if let Some(found) = version.and_then(|v| s.ldap_memory.recall(v, read, server_id, keys)) {
        s.metrics.ldap_memory("hit");
        return Ok(found);
    }
    let found = s.repo.users_with_groups(keys, server_id, Edge::LdapUser, Edge::LdapGroup).await?;
    if let Some(v) = version {
        s.metrics.ldap_memory("miss");
        s.ldap_memory.remember(v, read, server_id, keys, &found);
    }
    Ok(found)
}

/// Users (each named as its key says) as they are now, each when it is in LDAP of
/// server `server_id` (directly or through a group), with the names of its groups in LDAP;
/// one answer per key. One query, however many users and groups the directory holds (a
/// search reads the bound user again and the users its `(uid=x)` filter names at once).
pub async fn users_in_ldap(
    s: &AppState,
    server_id: &str,
    keys: &[(&str, UserKey)],
) -> ApiResult<Vec<Option<(User, Vec<String>)>>> {
    Ok(with_groups(s, server_id, keys)
        .await?
        .into_iter()
        .map(|f| {
            let (user, direct, groups) = f?;
            let names: Vec<String> = groups.into_iter().map(|g| g.name).collect();
            (direct || !names.is_empty()).then_some((user, names))
        })
        .collect())
}

/// One user as [`users_in_ldap`] answers it.
pub async fn user_in_ldap(
    s: &AppState,
    server_id: &str,
    key: &str,
    by: UserKey,
) -> ApiResult<Option<(User, Vec<String>)>> {
    Ok(users_in_ldap(s, server_id, &[(key, by)]).await?.into_iter().next().flatten())
}

/// Which groups a search can only be answering with (a filter pinned to groups: see
/// `ldap::filter::only_groups`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupsOf {
    /// The groups in LDAP this user (by username) is a member of.
    Member(String),
    /// The group of this name, if it is in LDAP.
    Named(String),
    /// The groups in LDAP with this gid (`gidNumber`).
    Gid(u32),
}

/// The groups in LDAP of server `server_id` that `pin` names, each with its members: reads
/// those groups and their members only (SSSD's group lookups at each login), however many
/// users and groups the directory holds.
pub async fn groups_pinned(s: &AppState, server_id: &str, pin: &GroupsOf) -> ApiResult<Vec<(Group, Vec<User>)>> {
    let store = s.repo.store();
    let groups: Vec<Group> = match pin {
        GroupsOf::Member(username) => {
            let found = with_groups(s, server_id, &[(username, UserKey::Username)]).await?.into_iter().next().flatten();
            found.map(|(_, _, groups)| groups).unwrap_or_default()
        }
        GroupsOf::Named(name) => {
            let Some(v) = store.get_by_key(Collection::Groups, name).await? else { return Ok(Vec::new()) };
            let g: Group = serde_json::from_value(v).map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
            if !store.sources(Edge::LdapGroup, &g.id).await?.iter().any(|x| x == server_id) {
                return Ok(Vec::new());
            }
            vec![g]
        }
        GroupsOf::Gid(gid) => {
            // Groups' gids are not indexed; the groups in LDAP are read, none of the users.
            let ids = store.targets(Edge::LdapGroup, server_id).await?;
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let groups = s.repo.groups_by_ids(&ids).await?;
            groups.into_iter().filter(|g| crate::ops::unix_ids::unix_gid(g) == Some(*gid)).collect()
        }
    };
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let ids = store.targets(Edge::Member, &g.id).await?;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let members = s.repo.users_by_ids(&ids).await?;
        out.push((g, members));
    }
    Ok(out)
}

/// A simple bind as `username`: the user, when the password is right (checked by the one
/// authentication, counted by the login limits), the user is in LDAP and the server's
/// policy admits it. Every refusal reads the same.
pub async fn bind(
    s: &AppState,
    username: &str,
    password: String,
    source: Option<std::net::IpAddr>,
) -> ApiResult<Option<User>> {
    let server = server(s).await?;
    let lenience = Lenience {
        locked: server.user_lockout_action == tether_core::ldap::UserAction::Maintain,
        expired: server.user_password_expiration_action == tether_core::ldap::UserAction::Maintain,
    };
    let outcome = crate::ops::auth::authenticate_leniently(s, username, password, source, lenience).await?;
    if !matches!(outcome, AuthOutcome::Accepted(_)) {
        return Ok(None);
    }
    // Read again after the check, with its place in LDAP (one query): a suspension or a
    // removal from LDAP made meanwhile stands.
    let Some((user, _)) = user_in_ldap(s, &server.id, username, UserKey::Username).await? else { return Ok(None) };
    Ok(server.admits(&user).then_some(user))
}

/// A bound user's own password change (LDAP Password Modify): the old password checked when
/// given (counted like a login), the directory's policy applied, and fed to AD like a change
/// in the portal. `Ok(Err(why))` is a refusal the client is told.
pub async fn change_password(
    s: &AppState,
    user_id: &str,
    old: Option<String>,
    new: &str,
    source: Option<std::net::IpAddr>,
) -> ApiResult<Result<(), String>> {
    let Some(user) = s.repo.user(user_id).await? else { return Ok(Err("no such user".into())) };
    if let Some(old) = old {
        let outcome = crate::ops::auth::authenticate(s, &user.username, old, source).await?;
        if !matches!(outcome, AuthOutcome::Accepted(_)) {
            return Ok(Err("the old password is wrong".into()));
        }
    }
    let actor = tether_core::actor::Actor::user(&user.id, &user.username, None);
    match crate::ops::users::change_own_password(s, &user, new, &actor).await {
        Ok(_) => Ok(Ok(())),
        // The policy's or the password authority's refusal: the user is told why.
        Err(e) if e.code.info().0 < 500 => Ok(Err(e.message)),
        Err(e) => Err(e),
    }
}
