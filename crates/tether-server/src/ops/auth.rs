//! The one authentication every front end calls (the API's verify, the portal, and the coming
//! LDAP and RADIUS binds): a user's password checked locally (argon2id, or a hash captured
//! from AD and upgraded at the first login) or by AD through an import agent when AD is the
//! user's delegated authority, with the login limits counted before the check.

use tether_store::Collection;

use crate::crypto::{check_no_password, check_password, hash_password};
use crate::error::ApiResult;
use crate::state::AppState;

/// The answer to "is this the user's password?" (for the API and the user portal).
pub enum AuthOutcome {
    /// Right; by `local` or `delegated` (AD) verification.
    Accepted(&'static str),
    /// Wrong, with AD's reason when it gave one.
    Denied(Option<String>),
    /// Too many recent failures for this username.
    Throttled(String),
}

/// Verifies a user's password (locally or through AD), with the failure lockouts: per
/// username, and per `source` address when the person logging in is that source (the portal,
/// the console; `None` for an integration calling the API on behalf of many users). The
/// attempt is counted before the password is checked.
pub async fn authenticate(
    s: &AppState,
    username: &str,
    password: String,
    source: Option<std::net::IpAddr>,
) -> ApiResult<AuthOutcome> {
    authenticate_leniently(s, username, password, source, Lenience::default()).await
}

/// Which users whose password is right may log in all the same although their account is
/// locked or their password expired: none by default; the LDAP and RADIUS servers' policies
/// (`userLockoutAction`, `userPasswordExpirationAction` = `MAINTAIN`) keep them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lenience {
    pub locked: bool,
    pub expired: bool,
}

/// [`authenticate`] with a front end's [`Lenience`].
pub async fn authenticate_leniently(
    s: &AppState,
    username: &str,
    password: String,
    source: Option<std::net::IpAddr>,
    lenience: Lenience,
) -> ApiResult<AuthOutcome> {
    let now = s.now();
    let throttled = |until| {
        AuthOutcome::Throttled(format!("too many failed attempts; try again after {}", tether_core::timestamp(until)))
    };
    let source = crate::throttle::source_of(s.config.behind_proxy, source);
    if let Some(ip) = &source {
        if let Err(until) = s.throttle.sources.attempt(ip, now).await? {
            return Ok(throttled(until));
        }
    }
    if let Err(until) = s.throttle.users.attempt(username, now).await? {
        return Ok(throttled(until));
    }
    let r = verify_user(s, username, password, lenience).await?;
    if matches!(r, AuthOutcome::Accepted(_)) {
        s.throttle.users.succeeded(username).await?;
        if let Some(ip) = &source {
            s.throttle.sources.succeeded(ip).await?;
        }
    } else {
        s.throttle.users.failed(username, s.now()).await?;
        if let Some(ip) = &source {
            s.throttle.sources.failed(ip, s.now()).await?;
        }
    }
    Ok(r)
}

async fn verify_user(s: &AppState, username: &str, password: String, lenience: Lenience) -> ApiResult<AuthOutcome> {
    let s = s.clone();
    let denied = || AuthOutcome::Denied(None);
    // Empty passwords never authenticate (some directories treat them as anonymous binds).
    if password.is_empty() {
        return Ok(denied());
    }
    // Whatever makes the user unable to log in, the answer costs one hash and reads the same.
    let may = |u: &tether_core::user::User| {
        u.state == tether_core::user::UserState::Activated && (!u.account_locked || lenience.locked)
    };
    let Some(user) = s.repo.user_by_username(username).await?.filter(may) else {
        check_no_password(password).await;
        return Ok(denied());
    };
    if let Some(auth) = &user.delegated_authority {
        match delegated(&s, &user, &auth.id, &password).await? {
            Delegated::Answered(true) => return Ok(AuthOutcome::Accepted("delegated")),
            // AD said no: never fall back to a (possibly older) password stored here.
            Delegated::Answered(false) => return Ok(denied()),
            Delegated::Refused => {}
            Delegated::Reason(reason) => return Ok(AuthOutcome::Denied(Some(reason))),
            // No agent answered: a password stored in Tether (captured on a DC) still works.
            Delegated::Unavailable => {}
        }
    }
    let Some(hash) = s.repo.password_hash(&user.id).await? else {
        check_no_password(password).await;
        return Ok(denied());
    };
    // A password verified against this very hash a moment ago is not hashed again.
    let rehash = if s.verified.hit(&user.id, &hash, &password, std::time::Instant::now()) {
        s.metrics.credential_cache("hit");
        false
    } else {
        s.metrics.credential_cache("miss");
        let Some(rehash) = check_password(password.clone(), hash.clone()).await else {
            return Ok(denied());
        };
        if !rehash {
            s.verified.remember(&user.id, &hash, &password, std::time::Instant::now());
        }
        rehash
    };
    if user.password_expired && !lenience.expired {
        return Ok(denied());
    }
    // An AD account created with a system-generated password gets the real one now.
    crate::adi::generated::carry_to_ad(&s, &user, &password).await?;
    if rehash {
        // A hash captured from AD: replace it with Tether's own now that the password is known
        // (on the user as it is now: a change made during the hashing stands).
        let h = hash_password(password.clone()).await?;
        if let Some(current) = s.repo.user(&user.id).await? {
            s.repo.save_user(&current, Some(&h)).await?;
            // Made from this very password: remembered, so the next login does not pay an
            // argon2id check to learn what is known now.
            s.verified.remember(&user.id, &h, &password, std::time::Instant::now());
        }
    }
    Ok(AuthOutcome::Accepted("local"))
}

enum Delegated {
    Answered(bool),
    Reason(String),
    Refused,
    Unavailable,
}

/// Asks AD (through an import agent of the domain) to validate the password.
async fn delegated(
    s: &AppState,
    user: &tether_core::user::User,
    domain_id: &str,
    password: &str,
) -> ApiResult<Delegated> {
    use tether_core::ad::{AdDomain, DelegationState};
    let Some(domain) = s.repo.get::<AdDomain>(Collection::Domains, domain_id).await? else {
        return Ok(Delegated::Unavailable);
    };
    match domain.delegation_state {
        DelegationState::Disabled => return Ok(Delegated::Refused),
        // Reads like any other failure: a distinct answer would tell who exists (and in which
        // domain). Admins see the state on the domain.
        DelegationState::Pending => {
            check_no_password(password.to_string()).await;
            return Ok(Delegated::Answered(false));
        }
        DelegationState::Enabled => {}
    }
    let Some(dn) = user.external_dn.clone() else { return Ok(Delegated::Refused) };
    let req = crate::adi::delegation::AuthRequest {
        id: crate::crypto::new_id(),
        dn,
        password: tether_core::wire::Secret(password.to_string()),
    };
    let started = std::time::Instant::now();
    let answer = s.delegation.verify(domain_id, req, s.config.delegation_timeout).await;
    let outcome = match &answer {
        Some(r) if r.ok => "accepted",
        Some(r) => {
            s.metrics.ad_error("delegated_auth", r.code.as_deref().unwrap_or("other"));
            "refused"
        }
        None => "unanswered",
    };
    s.metrics.delegated_auth(outcome, started.elapsed().as_secs_f64());
    match answer {
        Some(r) if r.ok => {
            // The user as it is now, not as it was before AD was asked (up to the delegation
            // timeout ago): a suspension or lock made meanwhile stands, and refuses the login.
            let Some(mut current) = s.repo.user(&user.id).await?.filter(|u| u.can_authenticate()) else {
                return Ok(Delegated::Answered(false));
            };
            // On a DC install the password is kept in step with AD from the first login.
            if store_delegated_password(s, domain_id).await? {
                let hash = hash_password(password.to_string()).await?;
                current.has_password = true;
                current.refresh_derived();
                s.repo.save_user(&current, Some(&hash)).await?;
            }
            Ok(Delegated::Answered(true))
        }
        Some(r) => Ok(r.reason.map(Delegated::Reason).unwrap_or(Delegated::Answered(false))),
        None => Ok(Delegated::Unavailable),
    }
}

/// Whether the domain has an import agent installed on a domain controller.
async fn store_delegated_password(s: &AppState, domain_id: &str) -> ApiResult<bool> {
    use tether_core::ad::{AgentType, InstalledOn};
    Ok(s.repo
        .agents_of(domain_id)
        .await?
        .iter()
        .any(|a| a.agent_type == AgentType::Import && a.installed_on == Some(InstalledOn::Dc)))
}
