//! The LDAP front end's memory of users as the store last gave them. Hosts and applications
//! ask for the same users over and over (SSSD at every login and `id`, an application's
//! reading account before every sign-in, and each search reads the bound user again); each
//! answer costs a store query, a hand-off to the store's connection thread and the decoding
//! of the user's document, which was most of a `(uid=x)` search's cost.
//!
//! An answer is remembered with the store's directory version it was read under and given
//! again only while the store's version is still that one. Every write to the directory
//! moves the version on (`Store::directory_version`: the embedded store has this process as
//! its only writer), so a suspension, an edit or a removal from LDAP is seen by the very next
//! search exactly as without this memory; time-dependent judgements (expiry, lockout) are made
//! on each use, never remembered. A store other processes write too (PostgreSQL) has no
//! version: nothing is remembered there and every search reads the store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tether_core::group::Group;
use tether_core::user::User;
use tether_store::UserKey;

/// A user, whether the LDAP server links it directly, and its groups in LDAP (`None`: no such
/// user).
pub type Found = Option<(User, bool, Vec<Group>)>;

/// How many answers are held at most; past it, all are forgotten and the memory fills again
/// (a directory's active users fit; a scan of made-up names cannot grow it without bound).
const CAPACITY: usize = 20_000;

/// How long answers are held at most, whatever the version: a bound in depth. The store moves
/// its version only once a write has ended, also one cancelled mid-way (a client gone
/// mid-request) whose statement still runs (`tether_store::Writing`), so no answer should
/// outlive a change; if one ever did, it would not outlive this.
const MAX_AGE: Duration = Duration::from_secs(10);

/// (LDAP server id, the key as the store compares it, what it names).
type Key = (String, String, UserKey);

#[derive(Default)]
pub struct Memory {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The directory version every held answer was read under.
    version: u64,
    /// When the oldest held answer was read (`None`: none held).
    since: Option<Instant>,
    answers: HashMap<Key, Found>,
}

fn key(server: &str, key: &str, by: UserKey) -> Key {
    let key = if by == UserKey::Username { key.to_lowercase() } else { key.to_string() };
    (server.to_string(), key, by)
}

impl Inner {
    /// Forgets everything read under an older version; `false` when `version` is older than
    /// the held answers' (an answer read under it must not be kept).
    fn at(&mut self, version: u64, now: Instant) -> bool {
        let old = self.since.is_some_and(|t| now.saturating_duration_since(t) >= MAX_AGE);
        if version > self.version || old {
            self.answers.clear();
            self.since = None;
            self.version = self.version.max(version);
        }
        self.version == version
    }
}

impl Memory {
    /// The answers for `keys` when every one was read under `version`, the store's current one.
    pub fn recall(&self, version: u64, now: Instant, server: &str, keys: &[(&str, UserKey)]) -> Option<Vec<Found>> {
        let mut inner = self.inner.lock().expect("not poisoned");
        if !inner.at(version, now) {
            return None;
        }
        keys.iter().map(|(k, by)| inner.answers.get(&key(server, k, *by)).cloned()).collect()
    }

    /// Holds the answers for `keys`, read from the store at `read` after its version was
    /// `version`.
    pub fn remember(&self, version: u64, read: Instant, server: &str, keys: &[(&str, UserKey)], found: &[Found]) {
        let mut inner = self.inner.lock().expect("not poisoned");
        if !inner.at(version, read) {
            return;
        }
        if inner.answers.len() + keys.len() > CAPACITY {
            inner.answers.clear();
            inner.since = None;
        }
        inner.since = Some(inner.since.map_or(read, |t| t.min(read)));
        for ((k, by), f) in keys.iter().zip(found) {
            inner.answers.insert(key(server, k, *by), f.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use UserKey::{Id, Username};

    fn user(name: &str) -> Found {
        Some((User { id: format!("id-{name}"), username: name.into(), ..User::default() }, true, Vec::new()))
    }

    #[test]
    fn answers_hold_while_the_version_does() {
        let (m, t0) = (Memory::default(), Instant::now());
        assert!(m.recall(3, t0, "s", &[("Ann", Username)]).is_none(), "nothing held");
        m.remember(3, t0, "s", &[("Ann", Username), ("zed", Username)], &[user("ann"), None]);
        let got = m.recall(3, t0, "s", &[("ANN", Username), ("zed", Username)]).expect("both held");
        assert_eq!(got[0].as_ref().map(|f| f.0.username.as_str()), Some("ann"), "names compare case-insensitively");
        assert!(got[1].is_none(), "an absent user is an answer too");
        assert!(m.recall(3, t0, "s", &[("ann", Username), ("bob", Username)]).is_none(), "all keys or none");
        assert!(m.recall(3, t0, "other", &[("ann", Username)]).is_none(), "per LDAP server");
        assert!(m.recall(3, t0, "s", &[("ann", Id)]).is_none(), "a name is not an id");
        // A write moved the version: everything is read again.
        assert!(m.recall(4, t0, "s", &[("ann", Username)]).is_none());
        // An answer read under the old version, arriving late, is not kept.
        m.remember(3, t0, "s", &[("ann", Username)], &[user("ann")]);
        assert!(m.recall(4, t0, "s", &[("ann", Username)]).is_none());
        m.remember(4, t0, "s", &[("ann", Username)], &[user("ann")]);
        assert!(m.recall(4, t0, "s", &[("ann", Username)]).is_some());
        // However unchanged the version, answers older than MAX_AGE are read again.
        assert!(m.recall(4, t0 + MAX_AGE, "s", &[("ann", Username)]).is_none());
    }

    #[test]
    fn the_memory_is_bounded() {
        let (m, t0) = (Memory::default(), Instant::now());
        for i in 0..CAPACITY + 10 {
            m.remember(1, t0, "s", &[(&format!("u{i}"), Username)], &[None]);
        }
        assert!(m.inner.lock().unwrap().answers.len() <= CAPACITY);
        assert!(m.recall(1, t0, "s", &[(&format!("u{}", CAPACITY + 9), Username)]).is_some(), "the latest is held");
    }
}
