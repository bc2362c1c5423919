//! Browser sessions for the admin console and the user portal.
//!
//! A session is a random 256-bit token in an `HttpOnly`, `SameSite=Strict` cookie scoped to
//! its path (`/console` or `/portal`); the server keeps only the token's SHA-256, in memory
//! (a restart logs everyone out, which is the safe failure). Every form that changes
//! something carries the session's CSRF token (htmx sends it as `x-csrf-token`), checked in
//! constant time, on top of `SameSite=Strict`.
//!
//! A session lasts no longer than its principal's right to it: every request re-reads the
//! principal, so a console session ends when its API key is deleted or is no longer an
//! administrator's, and a portal session ends when the user is suspended, locked, deleted
//! or gets another password (by anyone: the portal re-opens the session of a user who
//! changed it there).

use std::collections::HashMap;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

use crate::crypto::{random_hex, sha256_hex};

/// How long a session lasts, from login.
pub const LIFETIME: Duration = Duration::hours(8);

#[derive(Clone, Debug)]
pub enum Who {
    /// An administrator, logged in with the admin API key of this id (re-read at each
    /// request; history names the key).
    Admin(String),
    /// A user of the portal.
    User(String),
}

#[derive(Clone, Debug)]
pub struct Session {
    pub who: Who,
    pub csrf: String,
    pub(crate) expires: OffsetDateTime,
    /// A portal user's `passwordDate` at login: another password ends the session.
    pub(crate) password_stamp: Option<String>,
}

#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session; returns the token for the cookie.
    pub fn open(&self, who: Who, now: OffsetDateTime) -> String {
        self.open_stamped(who, None, now)
    }

    /// Opens a portal session for `user`, ended by a change of its password.
    pub fn open_user(&self, user: &tether_core::user::User, now: OffsetDateTime) -> String {
        self.open_stamped(Who::User(user.id.clone()), user.password_date.clone(), now)
    }

    fn open_stamped(&self, who: Who, password_stamp: Option<String>, now: OffsetDateTime) -> String {
        let token = random_hex(32);
        let s = Session { who, csrf: random_hex(16), expires: now + LIFETIME, password_stamp };
        let mut m = self.by_hash.lock().expect("lock");
        m.retain(|_, v| v.expires > now);
        m.insert(sha256_hex(&token), s);
        token
    }

    pub fn get(&self, token: &str, now: OffsetDateTime) -> Option<Session> {
        let m = self.by_hash.lock().expect("lock");
        m.get(&sha256_hex(token)).filter(|s| s.expires > now).cloned()
    }

    pub fn close(&self, token: &str) {
        self.by_hash.lock().expect("lock").remove(&sha256_hex(token));
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

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::default();
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::days(20000);
        let token = s.open(Who::User("u1".into()), t0);
        assert!(s.get(&token, t0 + Duration::hours(1)).is_some());
        assert!(s.get(&token, t0 + LIFETIME).is_none(), "expired");
        assert!(s.get("not-a-token", t0).is_none());
        let t2 = s.open(Who::User("u2".into()), t0);
        s.close(&t2);
        assert!(s.get(&t2, t0).is_none(), "closed");
    }

    #[test]
    fn csrf_must_match_exactly() {
        let s = Session {
            who: Who::User("u".into()),
            csrf: "abcd".into(),
            expires: OffsetDateTime::UNIX_EPOCH,
            password_stamp: None,
        };
        assert!(csrf_ok(&s, Some("abcd")));
        for bad in [None, Some(""), Some("abc"), Some("abce"), Some("abcde")] {
            assert!(!csrf_ok(&s, bad), "{bad:?}");
        }
    }
}
