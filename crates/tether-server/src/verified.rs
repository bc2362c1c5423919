//! Credentials verified lately. An argon2id check costs tens of milliseconds of a core on
//! purpose, and hosts and applications bind the same users again and again (SSSD at each
//! login, `sudo` and screen unlock; an application at each request), so without a memory of
//! recent checks the rate of binds is the rate of hashes. This remembers, for a few minutes,
//! that *this password* matched *this stored hash* of *this user*.
//!
//! Why it is safe: the key of an entry is an HMAC-SHA256, under a random key drawn at start
//! and never stored, of the user id, the stored hash and the password, so the memory holds
//! no password and nothing testable offline. A password change stores a new hash, which no
//! entry names: the old password misses at once, on every tetherd. The user's state
//! (suspended, locked, expired, out of LDAP) is read at every login outside the cache. Only
//! successes are remembered: every wrong guess pays the full hash and is counted by the login
//! limits. The memory is bounded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a verified password is remembered.
pub const TTL: Duration = Duration::from_secs(300);
/// Entries held at most (then the expired go, and if none has, all).
const MAX_ENTRIES: usize = 100_000;

pub struct Verified {
    key: [u8; 32],
    ttl: Duration,
    /// Entry key → when it expires.
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Verified {
    pub fn new(ttl: Duration) -> Verified {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the system's random source");
        Verified { key, ttl, entries: Mutex::new(HashMap::new()) }
    }

    fn entry_key(&self, user_id: &str, hash: &str, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        // Lengths first: no two different triples read as the same bytes.
        for part in [user_id, hash, password] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// Whether `password` was verified against `hash` for `user_id` less than the TTL ago.
    pub fn hit(&self, user_id: &str, hash: &str, password: &str, now: Instant) -> bool {
        let k = self.entry_key(user_id, hash, password);
        let entries = self.entries.lock().expect("not poisoned");
        entries.get(&k).is_some_and(|until| now < *until)
    }

    /// Remembers that `password` matched `hash` for `user_id`.
    pub fn remember(&self, user_id: &str, hash: &str, password: &str, now: Instant) {
        let k = self.entry_key(user_id, hash, password);
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, until| now < *until);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(k, now + self.ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_only_the_same_user_hash_and_password_for_the_ttl() {
        let v = Verified::new(Duration::from_secs(60));
        let t = Instant::now();
        v.remember("u1", "$argon2id$h1", "pw", t);
        let rows = [
            ("u1", "$argon2id$h1", "pw", t + Duration::from_secs(59), true),
            ("u1", "$argon2id$h1", "pw", t + Duration::from_secs(60), false),
            ("u1", "$argon2id$h2", "pw", t, false),
            ("u1", "$argon2id$h1", "pw2", t, false),
            ("u2", "$argon2id$h1", "pw", t, false),
            // No confusion at the joins between the parts.
            ("u1$", "argon2id$h1", "pw", t, false),
        ];
        for (user, hash, pw, at, want) in rows {
            assert_eq!(v.hit(user, hash, pw, at), want, "{user} {hash} {pw}");
        }
    }

    #[test]
    fn two_caches_share_no_keys() {
        let (a, b) = (Verified::new(TTL), Verified::new(TTL));
        assert_ne!(a.entry_key("u", "h", "p"), b.entry_key("u", "h", "p"));
    }

    #[test]
    fn stays_bounded() {
        let v = Verified::new(Duration::from_secs(60));
        let t = Instant::now();
        for i in 0..MAX_ENTRIES + 10 {
            v.remember(&i.to_string(), "h", "p", t);
        }
        assert!(v.entries.lock().unwrap().len() <= MAX_ENTRIES);
        assert!(v.hit(&(MAX_ENTRIES + 9).to_string(), "h", "p", t), "the latest is kept");
    }
}
