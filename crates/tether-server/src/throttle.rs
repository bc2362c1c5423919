//! Brute-force protection for every password check (`/api/v2/auth/verify`, the portal, the
//! console): failures are counted per username, and per source address where the source is
//! the person logging in. Past the limit the key is refused for a while without the password
//! being checked (against Tether or AD: AD's own lockout is not triggered by Tether on the
//! attacker's behalf). A success resets the username's count.
//!
//! An attempt is counted *before* its password is checked, so N guesses sent in parallel are
//! N attempts, not one each racing the same count. Memory is bounded: entries are kept in the
//! order they were made and the stale ones at the front are dropped as new ones arrive
//! (amortised O(1)); when full of fresh entries, the oldest goes. Locked keys are kept apart,
//! so a flood of fresh keys cannot unlock them. Uses the server's clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// Failures per username within [`WINDOW`] before it is locked.
pub const MAX_FAILURES: u32 = 10;
/// Failures per source address within [`WINDOW`] before it is locked (one address may be a
/// shared NAT, so this is looser than the per-user limit).
pub const MAX_SOURCE_FAILURES: u32 = 50;
pub const WINDOW: Duration = Duration::minutes(5);
pub const LOCKOUT: Duration = Duration::minutes(15);
/// Keys remembered at most (per limiter).
pub const CAPACITY: usize = 100_000;

#[derive(Clone, Copy)]
struct Entry {
    /// Attempts counted in the window (in flight included), less the successes.
    attempts: u32,
    since: OffsetDateTime,
    /// Which slot of `order` is this entry's own (older slots of the same key are stale).
    slot: u64,
}

/// Keys still counting, and keys locked, each in the order they were made. A locked key is
/// kept apart so that a flood of fresh keys cannot push it out and unlock it: the locked
/// ones leave in the order they expire (a lockout always lasts [`LOCKOUT`]).
struct Inner {
    counting: HashMap<String, Entry>,
    order: VecDeque<(String, u64)>,
    next_slot: u64,
    locked: HashMap<String, OffsetDateTime>,
    locked_order: VecDeque<(String, OffsetDateTime)>,
}

/// One limit over one kind of key.
pub struct Limiter {
    max: u32,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl Limiter {
    pub fn new(max: u32, capacity: usize) -> Self {
        Limiter {
            max,
            capacity,
            inner: Mutex::new(Inner {
                counting: HashMap::new(),
                order: VecDeque::new(),
                next_slot: 0,
                locked: HashMap::new(),
                locked_order: VecDeque::new(),
            }),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an attempt for `key`; `Err(until)` when the key is locked (nothing counted).
    pub fn attempt(&self, key: &str, now: OffsetDateTime) -> Result<(), OffsetDateTime> {
        let key = key.to_lowercase();
        let mut g = self.inner();
        g.evict(now, self.capacity);
        if let Some(until) = g.locked.get(&key).copied() {
            if until > now {
                return Err(until);
            }
            g.locked.remove(&key);
        }
        let inner = &mut *g;
        let stale = inner.counting.get(&key).is_some_and(|e| now - e.since > WINDOW);
        if stale || !inner.counting.contains_key(&key) {
            // New, or its window is over: start again, in a new slot at the back.
            let slot = inner.next_slot;
            inner.next_slot += 1;
            inner.order.push_back((key.clone(), slot));
            inner.counting.insert(key.clone(), Entry { attempts: 0, since: now, slot });
        }
        let attempts = inner.counting.get(&key).map_or(0, |e| e.attempts);
        if attempts >= self.max {
            // Every attempt allowed in this window is taken (some may still be in flight).
            return Err(inner.lock(&key, now, self.capacity));
        }
        if let Some(e) = inner.counting.get_mut(&key) {
            e.attempts += 1;
        }
        Ok(())
    }

    /// The attempt counted for `key` failed: at the limit, the key is locked.
    pub fn failed(&self, key: &str, now: OffsetDateTime) {
        let key = key.to_lowercase();
        let mut g = self.inner();
        if g.counting.get(&key).is_some_and(|e| e.attempts >= self.max) {
            g.lock(&key, now, self.capacity);
        }
    }

    /// The attempt counted for `key` succeeded: its count starts again (and a lockout that
    /// began while it was in flight ends: the password was right).
    pub fn succeeded(&self, key: &str) {
        let key = key.to_lowercase();
        let mut g = self.inner();
        g.counting.remove(&key);
        g.locked.remove(&key);
    }

    /// The attempt counted for `key` succeeded, but `key` is shared by many (a source
    /// address): only that attempt is taken back.
    pub fn release(&self, key: &str) {
        let mut g = self.inner();
        if let Some(e) = g.counting.get_mut(&key.to_lowercase()) {
            e.attempts = e.attempts.saturating_sub(1);
        }
    }

    /// Keys remembered now (counting, locked).
    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let g = self.inner();
        (g.counting.len(), g.locked.len())
    }
}

impl Inner {
    fn lock(&mut self, key: &str, now: OffsetDateTime, capacity: usize) -> OffsetDateTime {
        self.counting.remove(key);
        let until = now + LOCKOUT;
        if self.locked.len() >= capacity {
            // Only reachable after `capacity` lockouts within one LOCKOUT: the oldest goes.
            if let Some((k, _)) = self.locked_order.pop_front() {
                self.locked.remove(&k);
            }
        }
        self.locked.insert(key.to_string(), until);
        self.locked_order.push_back((key.to_string(), until));
        until
    }

    /// Drops the stale entries at the front of each order, and the oldest counting one when
    /// full. Each entry is pushed and popped once per slot: amortised O(1).
    fn evict(&mut self, now: OffsetDateTime, capacity: usize) {
        while let Some((key, slot)) = self.order.front() {
            let drop = match self.counting.get(key) {
                None => true,
                Some(e) if e.slot != *slot => true,
                Some(e) => {
                    let gone = now - e.since > WINDOW || self.counting.len() >= capacity;
                    if gone {
                        self.counting.remove(key);
                    }
                    gone
                }
            };
            if !drop {
                break;
            }
            self.order.pop_front();
        }
        while let Some((key, until)) = self.locked_order.front() {
            let current = self.locked.get(key);
            if current == Some(until) && *until > now {
                break;
            }
            if current == Some(until) {
                self.locked.remove(key);
            }
            self.locked_order.pop_front();
        }
    }
}

/// The key a login from `ip` is counted under per address, or `None` when it is not: behind a
/// proxy (`--plain-http`) every request comes from the proxy's address, and an integration
/// calling the API for many users passes no address.
pub fn source_of(behind_proxy: bool, ip: Option<std::net::IpAddr>) -> Option<String> {
    ip.filter(|_| !behind_proxy).map(source_key)
}

/// The key a source address is counted under: an IPv4 address, or an IPv6 /64 (one
/// subscriber is commonly given a whole /64).
pub fn source_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The limits of every password check.
pub struct Throttle {
    pub users: Limiter,
    pub sources: Limiter,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle { users: Limiter::new(MAX_FAILURES, CAPACITY), sources: Limiter::new(MAX_SOURCE_FAILURES, CAPACITY) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
    }

    #[test]
    fn attempts_count_before_the_check_and_lock_at_the_limit() {
        let l = Limiter::new(3, 100);
        let now = t0();
        // Three attempts in flight at once: the fourth is refused before any answer.
        for _ in 0..3 {
            l.attempt("Ann", now).unwrap();
        }
        assert!(l.attempt("ann", now).is_err(), "case-insensitive, counted before the check");
        for _ in 0..3 {
            l.failed("ann", now);
        }
        let until = l.attempt("ann", now + Duration::minutes(1)).unwrap_err();
        assert_eq!(until, now + LOCKOUT);
        // After the lockout the count starts again.
        l.attempt("ann", now + LOCKOUT + Duration::seconds(1)).unwrap();
    }

    #[test]
    fn a_success_resets_the_count() {
        let l = Limiter::new(2, 100);
        let now = t0();
        l.attempt("bo", now).unwrap();
        l.failed("bo", now);
        l.attempt("bo", now).unwrap();
        l.succeeded("bo");
        l.attempt("bo", now).unwrap();
        l.attempt("bo", now).unwrap();
        assert!(l.attempt("bo", now).is_err());
    }

    #[test]
    fn memory_is_bounded_and_stale_entries_leave_first() {
        let l = Limiter::new(5, 1_000);
        let now = t0();
        for i in 0..10_000 {
            let _ = l.attempt(&format!("user{i}"), now);
        }
        assert!(l.len().0 <= 1_000, "{:?} entries", l.len());
        // Later, the stale ones make room without any scan of the whole map.
        let later = now + WINDOW + Duration::seconds(1);
        l.attempt("fresh", later).unwrap();
        assert_eq!(l.len(), (1, 0));
    }

    #[test]
    fn a_flood_of_fresh_keys_does_not_unlock_a_locked_one() {
        let l = Limiter::new(5, 1_000);
        let now = t0();
        for _ in 0..5 {
            l.attempt("victim", now).unwrap();
            l.failed("victim", now);
        }
        // Ten times the capacity of junk keys, each with one failure.
        for i in 0..10_000 {
            let _ = l.attempt(&format!("spray{i}"), now);
            l.failed(&format!("spray{i}"), now);
        }
        assert!(l.len().0 <= 1_000);
        assert_eq!(l.attempt("victim", now + Duration::minutes(1)), Err(now + LOCKOUT));
        // The lockout ends on time, and its entry leaves.
        l.attempt("victim", now + LOCKOUT + Duration::seconds(1)).unwrap();
        assert_eq!(l.len().1, 0);
    }

    #[test]
    fn a_shared_key_gives_back_the_attempts_that_succeeded() {
        let l = Limiter::new(3, 100);
        let now = t0();
        for _ in 0..10 {
            l.attempt("10.0.0.1", now).unwrap();
            l.release("10.0.0.1");
        }
        l.attempt("10.0.0.1", now).unwrap();
    }

    #[test]
    fn ipv6_sources_count_by_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        assert_eq!(source_key("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.3");
        assert_eq!(source_key("10.1.2.3".parse().unwrap()), "10.1.2.3");
    }
}
