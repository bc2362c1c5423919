//! Browser sessions for the admin console and the user portal.
//!
//! A session is a random 256-bit token in an `HttpOnly`, `SameSite=Strict` cookie scoped to
//! its path (`/console` or `/portal`); the server keeps only the token's SHA-256, in the
//! store's shared state, so every tetherd on one database knows every session (a login on
//! one and the next click answered by another is the normal case behind a load balancer).
//! Every form that changes something carries the session's CSRF token (htmx sends it as
//! `x-csrf-token`), checked in constant time, on top of `SameSite=Strict`.
//!
//! A session lasts no longer than its principal's right to it: every request re-reads the
//! principal, so a console session ends when its API key is deleted or is no longer an
//! administrator's, and a portal session ends when the user is suspended, locked, deleted
//! or gets another password (by anyone: the portal re-opens the session of a user who
//! changed it there).

use serde::{Deserialize, Serialize};
use tether_store::{Repo, StoreError};
use time::{Duration, OffsetDateTime};

use crate::crypto::{random_hex, sha256_hex};

/// How long a session lasts, from login.
pub const LIFETIME: Duration = Duration::hours(8);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Who {
    /// An administrator, logged in with the admin API key of this id (re-read at each
    /// request; history names the key).
    Admin(String),
    /// A user of the portal.
    User(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub who: Who,
    pub csrf: String,
    /// A portal user's `passwordDate` at login: another password ends the session.
    pub(crate) password_stamp: Option<String>,
}

/// The sessions, kept in the store by the SHA-256 of their token.
pub struct Sessions {
    repo: Repo,
}

fn key(token: &str) -> String {
    format!("session:{}", sha256_hex(token))
}

impl Sessions {
    pub fn new(repo: Repo) -> Self {
        Sessions { repo }
    }

    /// Opens a session; returns the token for the cookie.
    pub async fn open(&self, who: Who, now: OffsetDateTime) -> Result<String, StoreError> {
        self.open_stamped(who, None, now).await
    }

    /// Opens a portal session for `user`, ended by a change of its password.
    pub async fn open_user(&self, user: &tether_core::user::User, now: OffsetDateTime) -> Result<String, StoreError> {
        self.open_stamped(Who::User(user.id.clone()), user.password_date.clone(), now).await
    }

    async fn open_stamped(
        &self,
        who: Who,
        password_stamp: Option<String>,
        now: OffsetDateTime,
    ) -> Result<String, StoreError> {
        let token = random_hex(32);
        let s = Session { who, csrf: random_hex(16), password_stamp };
        let store = self.repo.store();
        store.expire_shared(now.unix_timestamp()).await?;
        let value = serde_json::to_value(&s).expect("a session serializes");
        store.put_shared(&key(&token), &value, (now + LIFETIME).unix_timestamp()).await?;
        Ok(token)
    }

    /// The session of `token`, unless it expired or was closed.
    pub async fn get(&self, token: &str, now: OffsetDateTime) -> Result<Option<Session>, StoreError> {
        if token.is_empty() {
            return Ok(None);
        }
        let v = self.repo.store().shared(&key(token), now.unix_timestamp()).await?;
        Ok(v.and_then(|v| serde_json::from_value(v).ok()))
    }

    pub async fn close(&self, token: &str) -> Result<(), StoreError> {
        self.repo.store().delete_shared(&key(token)).await
    }
}

/// Constant-time comparison of a sent CSRF token with the session's.
pub fn csrf_ok(session: &Session, sent: Option<&str>) -> bool {
    let Some(sent) = sent else { return false };
    let (a, b) = (sent.as_bytes(), session.csrf.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_expire_and_close() {
        let dir = tempfile::tempdir().unwrap();
        let store = tether_store::sqlite::SqliteStore::open(dir.path()).await.unwrap();
        let s = Sessions::new(Repo::new(std::sync::Arc::new(store)));
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20000);
        let token = s.open(Who::User("u1".into()), t0).await.unwrap();
        assert!(s.get(&token, t0 + Duration::hours(1)).await.unwrap().is_some());
        assert!(s.get(&token, t0 + LIFETIME).await.unwrap().is_none(), "expired");
        assert!(s.get("not-a-token", t0).await.unwrap().is_none());
        let t2 = s.open(Who::User("u2".into()), t0).await.unwrap();
        s.close(&t2).await.unwrap();
        assert!(s.get(&t2, t0).await.unwrap().is_none(), "closed");
    }

    #[test]
    fn csrf_must_match_exactly() {
        let s = Session { who: Who::User("u".into()), csrf: "abcd".into(), password_stamp: None };
        assert!(csrf_ok(&s, Some("abcd")));
        for bad in [None, Some(""), Some("abc"), Some("abce"), Some("abcde")] {
            assert!(!csrf_ok(&s, bad), "{bad:?}");
        }
    }
}
