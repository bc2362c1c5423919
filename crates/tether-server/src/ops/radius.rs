//! RADIUS servers: the network devices (Wi-Fi controllers, VPN gateways) that may ask the
//! directory whether a user gets in, each known by its source address and shared secret, and
//! who may get in through each (associated directly or through a group). The RADIUS front
//! end and the REST routes both call these.
//!
//! The shared secret must be read back (it keys every answer), so it cannot be hashed: it is
//! sealed with tetherd's key in the store's secrets (the server's id bound in), never put in
//! the server's document, and never answered by the API.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tether_core::group::Group;
use tether_core::query::ListQuery;
use tether_core::radius::{Mfa, RadiusServer, ReplyAttribute};
use tether_store::{Collection, Doc, Edge, Secret, UserKey};

use crate::crypto::new_id;
use crate::error::{ApiError, ApiResult, Code};
use crate::ops::associations;
use crate::ops::auth::{AuthOutcome, Lenience};
use crate::ops::domains::Target;
pub use crate::ops::radius_clients::{Client, Clients};
use crate::state::AppState;

/// The longest shared secret taken (RFC 2865 sets no bound; devices allow up to 64–128).
const SECRET_MAX: usize = 128;
/// The shortest: RFC 2865 §3 asks for at least 16 octets, and a short secret can be found
/// offline from one captured exchange.
const SECRET_MIN: usize = 16;

fn doc(r: &RadiusServer) -> Doc {
    Doc {
        id: r.id.clone(),
        key1: Some(r.network_source_ip.clone()),
        key2: None,
        body: serde_json::to_value(r).expect("serializes"),
        version: None,
    }
}

pub async fn list(s: &AppState, q: &ListQuery) -> ApiResult<(u64, Vec<RadiusServer>)> {
    Ok(s.repo.list(Collection::RadiusServers, q).await?)
}

/// The RADIUS server `id`, or 404.
pub async fn load(s: &AppState, id: &str) -> ApiResult<RadiusServer> {
    s.repo.get(Collection::RadiusServers, id).await?.ok_or_else(|| ApiError::not_found("radius server", id))
}

/// Applies a body's fields to `r`: any other key, or a value of the wrong shape, is a 400
/// naming it. Answers the new shared secret when the body gives one.
fn apply(r: &mut RadiusServer, body: &Value) -> ApiResult<Option<String>> {
    let Some(fields) = body.as_object() else {
        return Err(ApiError::new(Code::InvalidField, "the body must be a JSON object"));
    };
    let mut doc = serde_json::to_value(&*r).expect("serializes");
    let mut secret = None;
    for (k, v) in fields {
        match k.as_str() {
            "id" | "sharedSecret" => {}
            "name" | "networkSourceIp" | "mfa" | "userLockoutAction" | "userPasswordExpirationAction" => {
                doc[k] = v.clone();
                if let Err(e) = serde_json::from_value::<RadiusServer>(doc.clone()) {
                    return Err(ApiError::new(Code::InvalidField, format!("invalid value for `{k}`: {e}")));
                }
            }
            _ => return Err(ApiError::new(Code::InvalidField, format!("`{k}` cannot be set"))),
        }
        if k == "sharedSecret" {
            match v.as_str() {
                Some(t) if (SECRET_MIN..=SECRET_MAX).contains(&t.len()) => secret = Some(t.to_string()),
                _ => {
                    return Err(ApiError::new(
                        Code::InvalidField,
                        format!("`sharedSecret` must be a string of {SECRET_MIN} to {SECRET_MAX} bytes"),
                    ))
                }
            }
        }
    }
    let mut next: RadiusServer = serde_json::from_value(doc).expect("checked field by field");
    next.network_source_ip = match next.network_source_ip.trim().parse::<IpAddr>() {
        // An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
        Ok(ip) => ip.to_canonical().to_string(),
        Err(_) => {
            return Err(ApiError::new(
                Code::InvalidField,
                format!("`networkSourceIp` must be an IP address, not `{}`", next.network_source_ip),
            ))
        }
    };
    if next.name.trim().is_empty() {
        return Err(ApiError::new(Code::InvalidField, "`name` is required"));
    }
    *r = next;
    Ok(secret)
}

async fn put_secret(s: &AppState, id: &str, secret: &str) -> ApiResult<()> {
    let sealed = s.config.secret_key.seal(secret, &format!("radius:{id}"));
    s.repo.store().put_secret(id, Secret::RadiusSecret, Some(&sealed)).await?;
    Ok(())
}

/// Creates a RADIUS server; `name`, `networkSourceIp` and `sharedSecret` are required.
pub async fn create(s: &AppState, body: &Value) -> ApiResult<RadiusServer> {
    let mut r = RadiusServer { id: new_id(), ..RadiusServer::default() };
    let Some(secret) = apply(&mut r, body)? else {
        return Err(ApiError::new(Code::InvalidField, "`sharedSecret` is required"));
    };
    // The secret first: a server is never in the store without one (and a refused insert
    // takes it away again).
    put_secret(s, &r.id, &secret).await?;
    if let Err(e) = s.repo.store().insert(Collection::RadiusServers, &doc(&r)).await {
        s.repo.store().put_secret(&r.id, Secret::RadiusSecret, None).await?;
        return Err(e.into());
    }
    forget_clients(s);
    Ok(r)
}

/// Changes the fields a body gives (a new `sharedSecret` replaces the old one).
pub async fn update(s: &AppState, id: &str, body: &Value) -> ApiResult<RadiusServer> {
    let mut r = load(s, id).await?;
    let secret = apply(&mut r, body)?;
    s.repo.store().replace(Collection::RadiusServers, &doc(&r)).await?;
    if let Some(secret) = secret {
        put_secret(s, id, &secret).await?;
    }
    forget_clients(s);
    Ok(r)
}

/// Deletes a RADIUS server with its secret and associations.
pub async fn delete(s: &AppState, id: &str) -> ApiResult<RadiusServer> {
    let r = load(s, id).await?;
    s.repo.store().delete(Collection::RadiusServers, id).await?;
    forget_clients(s);
    Ok(r)
}

const EDGES: associations::Edges =
    associations::Edges { users: Edge::RadiusUser, groups: Edge::RadiusGroup, what: "RADIUS server" };

/// Lets a user or group authenticate through the server (`add`), or no longer.
pub async fn set_association(s: &AppState, id: &str, target: Target, object: &str, add: bool) -> ApiResult<()> {
    load(s, id).await?;
    associations::set(s, EDGES, id, target, object, add).await
}

/// The ids of the users or groups associated directly.
pub async fn associated(s: &AppState, id: &str, target: Target) -> ApiResult<Vec<String>> {
    load(s, id).await?;
    associations::list(s, EDGES, id, target).await
}

fn forget_clients(s: &AppState) {
    *s.radius_clients.lock().expect("not poisoned") = None;
}

/// The device at `ip`, when it is a RADIUS server's source address (an IPv4 device seen
/// through a dual-stack socket, `::ffff:a.b.c.d`, is its IPv4 address).
pub async fn client(s: &AppState, ip: IpAddr) -> ApiResult<Option<Arc<Client>>> {
    let ip = ip.to_canonical();
    let version = s.repo.store().directory_version();
    if let Some(c) = s.radius_clients.lock().expect("not poisoned").as_ref().filter(|c| c.fresh(version)) {
        return Ok(c.get(ip));
    }
    // One reload at a time: datagrams arriving meanwhile wait for it, not read the store too.
    let _reloading = s.radius_reload.lock().await;
    let version = s.repo.store().directory_version();
    if let Some(c) = s.radius_clients.lock().expect("not poisoned").as_ref().filter(|c| c.fresh(version)) {
        return Ok(c.get(ip));
    }
    let read = Instant::now();
    let (_, servers) = list(s, &ListQuery { filter: None, sort: None, limit: usize::MAX >> 1, skip: 0 }).await?;
    let mut by_ip = HashMap::new();
    for server in servers {
        let Ok(addr) = server.network_source_ip.parse::<IpAddr>().map(|a| a.to_canonical()) else { continue };
        let sealed = s.repo.store().secret(&server.id, Secret::RadiusSecret).await?;
        let Some(secret) = sealed.and_then(|v| s.config.secret_key.open(&v, &format!("radius:{}", server.id))) else {
            tracing::warn!(server = %server.id, "RADIUS server without a readable shared secret: not answered");
            continue;
        };
        by_ip.insert(addr, Arc::new(Client { server, secret: secret.into_bytes() }));
    }
    let clients = Clients::new(read, version, by_ip);
    let found = clients.get(ip);
    *s.radius_clients.lock().expect("not poisoned") = Some(clients);
    Ok(found)
}

/// What the directory answers an Access-Request.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    /// In, with the reply attributes of the user's groups associated with the server.
    Accept(Vec<ReplyAttribute>),
    Reject,
    /// The password was right; a TOTP code is wanted, in a request carrying this `State`.
    Challenge(Vec<u8>),
}

/// How long a challenge waits for its code.
const CHALLENGE_TTL: i64 = 120;

fn challenge_key(state: &[u8]) -> String {
    format!("radius-challenge:{}", hex::encode(state))
}

/// Whether `username` with `password` gets in through `server`: the password checked by the
/// one authentication (login limits counted), the user associated with the server directly
/// or through a group, admitted by the server's lockout and expiry actions; then, when the
/// server's `mfa` asks for it and the user enrolled TOTP, a challenge for the code (a server
/// that requires TOTP refuses users without it). Where no challenge can be put to the user
/// (`can_challenge` false: EAP-TTLS, whose supplicants have no prompt for a code), a login
/// that would need one is refused: a second factor is never skipped.
pub async fn access(
    s: &AppState,
    server: &RadiusServer,
    username: &str,
    password: String,
    source: Option<IpAddr>,
    can_challenge: bool,
) -> ApiResult<Access> {
    use tether_core::ldap::UserAction::Maintain;
    let lenience = Lenience {
        locked: server.user_lockout_action == Maintain,
        expired: server.user_password_expiration_action == Maintain,
    };
    let outcome = crate::ops::auth::authenticate_leniently(s, username, password, source, lenience).await?;
    if !matches!(outcome, AuthOutcome::Accepted(_)) {
        return Ok(Access::Reject);
    }
    let Some((user, replies)) = admitted(s, server, username).await? else { return Ok(Access::Reject) };
    match (server.mfa, user.totp_enabled) {
        (Mfa::Disabled, _) | (Mfa::Enabled, false) => Ok(Access::Accept(replies)),
        (Mfa::Required, false) => Ok(Access::Reject),
        (Mfa::Enabled | Mfa::Required, true) if !can_challenge => {
            tracing::info!(server = %server.id, user = %user.id, "refused: TOTP is asked for and EAP cannot ask");
            Ok(Access::Reject)
        }
        (Mfa::Enabled | Mfa::Required, true) => {
            // The challenge is kept in the store, so the code may reach any tetherd.
            let mut state = vec![0u8; 16];
            getrandom::fill(&mut state).expect("the OS random source works");
            let expires = s.now().unix_timestamp() + CHALLENGE_TTL;
            let pending = serde_json::json!({"server": server.id, "user": user.id});
            s.repo.store().put_shared(&challenge_key(&state), &pending, expires).await?;
            Ok(Access::Challenge(state))
        }
    }
}

/// The answer to a challenge's response: `code` is the TOTP code, `state` the challenge's
/// `State` (each usable once, for two minutes, by the user and server it was made for).
pub async fn answer_challenge(
    s: &AppState,
    server: &RadiusServer,
    username: &str,
    state: &[u8],
    code: &str,
) -> ApiResult<Access> {
    // Every State made here is 16 bytes; the store takes by key prefix, so a shorter one
    // must never reach it (an empty State would take every challenge).
    if state.len() != 16 {
        return Ok(Access::Reject);
    }
    let now = s.now().unix_timestamp();
    let taken = s.repo.store().take_shared(&challenge_key(state), now).await?;
    let Some((_, pending)) = taken.into_iter().next() else { return Ok(Access::Reject) };
    if pending["server"] != server.id.as_str() {
        return Ok(Access::Reject);
    }
    // Read again: a suspension or a removal while the user typed the code stands.
    let Some((user, replies)) = admitted(s, server, username).await? else { return Ok(Access::Reject) };
    if pending["user"] != user.id.as_str() {
        return Ok(Access::Reject);
    }
    Ok(match crate::ops::mfa::verify(s, &user, code).await? {
        crate::ops::mfa::CodeCheck::Right => Access::Accept(replies),
        _ => Access::Reject,
    })
}

/// The user, when associated with `server` (directly or through a group) and admitted by
/// its policy, with its groups' reply attributes.
async fn admitted(
    s: &AppState,
    server: &RadiusServer,
    username: &str,
) -> ApiResult<Option<(tether_core::user::User, Vec<ReplyAttribute>)>> {
    // Read after the check, with its associations (one query).
    let found = s
        .repo
        .users_with_groups(&[(username, UserKey::Username)], &server.id, Edge::RadiusUser, Edge::RadiusGroup)
        .await?
        .pop()
        .flatten();
    let Some((user, direct, groups)) = found else { return Ok(None) };
    let associated = direct || !groups.is_empty();
    if !associated || !server.admits(&user) {
        return Ok(None);
    }
    let replies = replies(&groups);
    Ok(Some((user, replies)))
}

/// The reply attributes of `groups`, in order (`attributes.radius.reply`); entries of the
/// wrong shape are skipped.
fn replies(groups: &[Group]) -> Vec<ReplyAttribute> {
    groups
        .iter()
        .flat_map(|g| g.attributes["radius"]["reply"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| serde_json::from_value::<ReplyAttribute>(v).ok())
        .collect()
}
