//! TOTP second factors: a user enrolls in the portal (a secret shown once as an `otpauth://`
//! URI and QR code, confirmed by a code), then the portal login and RADIUS servers that ask
//! for it want a code after the password; an administrator's `resetmfa` removes it.
//!
//! The secret is sealed with tetherd's key in the store's secrets (codes must be made from
//! it, so it cannot be hashed), the user id bound in. Each code is accepted once: its time
//! step is recorded with an atomic raise of a per-user counter, so a code seen on the wire
//! (or typed twice) is refused, on every tetherd. Code checks are counted by the same login
//! limits as passwords, in a limiter of their own, so guessing 10^6 codes is not possible
//! either.

use tether_core::actor::Actor;
use tether_core::user::User;
use tether_store::Secret;

use crate::error::ApiResult;
use crate::history;
use crate::state::AppState;

/// The issuer authenticator apps show beside the account.
const ISSUER: &str = "Tether";

fn context(user_id: &str) -> String {
    format!("totp:{user_id}")
}

async fn secret_of(s: &AppState, user_id: &str, purpose: Secret) -> ApiResult<Option<Vec<u8>>> {
    let sealed = s.repo.store().secret(user_id, purpose).await?;
    Ok(sealed
        .and_then(|v| s.config.secret_key.open(&v, &context(user_id)))
        .and_then(|hex_text| hex::decode(hex_text).ok()))
}

async fn put(s: &AppState, user_id: &str, purpose: Secret, secret: Option<&[u8]>) -> ApiResult<()> {
    let sealed = secret.map(|b| s.config.secret_key.seal(&hex::encode(b), &context(user_id)));
    s.repo.store().put_secret(user_id, purpose, sealed.as_deref()).await?;
    Ok(())
}

/// What the enrollment page shows: the URI (its QR code is drawn from it) and the secret as
/// text for apps without a camera.
pub struct Enrollment {
    pub uri: String,
    pub secret_base32: String,
}

/// The enrollment a user is in: the secret shown until a code confirms it (the same one on
/// every visit, so a code from an app that scanned it earlier still confirms).
pub async fn enrollment(s: &AppState, user: &User) -> ApiResult<Enrollment> {
    let secret = match secret_of(s, &user.id, Secret::TotpPending).await? {
        Some(secret) => secret,
        None => {
            let mut secret = vec![0u8; tether_core::totp::SECRET_BYTES];
            getrandom::fill(&mut secret).expect("the OS random source works");
            put(s, &user.id, Secret::TotpPending, Some(&secret)).await?;
            secret
        }
    };
    let account = if user.email.is_empty() { &user.username } else { &user.email };
    Ok(Enrollment {
        uri: tether_core::totp::otpauth_uri(ISSUER, account, &secret),
        secret_base32: tether_core::totp::base32(&secret),
    })
}

/// Whether `code` is the current code of `secret` and its time step was not used before
/// (the step is then used).
async fn take_code(s: &AppState, user_id: &str, secret: &[u8], code: &str) -> ApiResult<bool> {
    let now = s.now().unix_timestamp().max(0) as u64;
    let Some(step) = tether_core::totp::step_of(secret, code, now) else { return Ok(false) };
    Ok(s.repo.store().raise_counter(&format!("totp-step:{user_id}"), step as i64).await?)
}

/// The outcome of a code check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    Right,
    Wrong,
    /// Too many wrong codes lately: not checked.
    Throttled,
}

/// Checks a code against a secret under the login limits (their own kind, `totp`, per username).
async fn check_limited(s: &AppState, user: &User, secret: &[u8], code: &str) -> ApiResult<CodeCheck> {
    let key = &user.username;
    if s.throttle.codes.attempt(key, s.now()).await?.is_err() {
        return Ok(CodeCheck::Throttled);
    }
    if take_code(s, &user.id, secret, code).await? {
        s.throttle.codes.succeeded(key).await?;
        Ok(CodeCheck::Right)
    } else {
        s.throttle.codes.failed(key, s.now()).await?;
        Ok(CodeCheck::Wrong)
    }
}

/// Confirms the enrollment with a code from the app: the secret becomes the user's.
pub async fn confirm(s: &AppState, user: &User, code: &str) -> ApiResult<CodeCheck> {
    let Some(secret) = secret_of(s, &user.id, Secret::TotpPending).await? else { return Ok(CodeCheck::Wrong) };
    let checked = check_limited(s, user, &secret, code).await?;
    if checked != CodeCheck::Right {
        return Ok(checked);
    }
    // The flag first: should the secret's write fail, logins ask for a code none can give
    // (an administrator resets it), never skip the second factor.
    let actor = Actor::user(&user.id, &user.username, None);
    set_enabled(s, &user.id, true, actor).await?;
    put(s, &user.id, Secret::Totp, Some(&secret)).await?;
    put(s, &user.id, Secret::TotpPending, None).await?;
    Ok(CodeCheck::Right)
}

/// Checks a second-factor code of an enrolled user (used once; counted by the limits).
/// `Wrong` for a user without TOTP.
pub async fn verify(s: &AppState, user: &User, code: &str) -> ApiResult<CodeCheck> {
    let Some(secret) = secret_of(s, &user.id, Secret::Totp).await? else { return Ok(CodeCheck::Wrong) };
    check_limited(s, user, &secret, code).await
}

/// Removes a user's TOTP (and any enrollment in progress): `resetmfa`.
pub async fn reset(s: &AppState, user_id: &str, actor: Actor) -> ApiResult<User> {
    crate::ops::users::load(&s.repo, user_id).await?;
    put(s, user_id, Secret::Totp, None).await?;
    put(s, user_id, Secret::TotpPending, None).await?;
    set_enabled(s, user_id, false, actor).await
}

/// Mirrors the secret's presence in the user's `totp_enabled`, with a history entry.
async fn set_enabled(s: &AppState, user_id: &str, on: bool, actor: Actor) -> ApiResult<User> {
    let saved = crate::ops::retrying(|| async {
        let current = crate::ops::users::load(&s.repo, user_id).await?;
        if current.totp_enabled == on {
            return Ok((current.clone(), current));
        }
        let mut next = current.clone();
        next.totp_enabled = on;
        s.repo.save_user(&next, None).await?;
        Ok((current, next))
    })
    .await?;
    let (before, after) = saved;
    if before.totp_enabled != after.totp_enabled {
        let changes = history::diff(Some(&before), Some(&after));
        let action = if on { "mfa_enrolled" } else { "mfa_reset" };
        history::record(s, history::Of::User(user_id), actor, action, changes, None).await?;
    }
    Ok(after)
}
