//! Brute-force protection for every password check (`/api/v2/auth/verify`, the portal, the
//! console): failures are counted per username, and per source address where the source is
//! the person logging in. Past the limit the key is refused for a while without the password
//! being checked (against Tether or AD: AD's own lockout is not triggered by Tether on the
//! attacker's behalf). A success resets the username's count.
//!
//! An attempt is counted *before* its password is checked, so N guesses sent in parallel are
//! N attempts, not one each racing the same count. Memory is bounded: entries are kept in the
//! order they were made and the stale ones at the front are dropped as new ones arrive
//! (amortised O(1)); when full of fresh entries, the oldest goes. Uses the server's clock.

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
    locked_until: Option<OffsetDateTime>,
    /// Which slot of `order` is this entry's own (older slots of the same key are stale).
    slot: u64,
}

struct Inner {
    map: HashMap<String, Entry>,
    order: VecDeque<(String, u64)>,
    next_slot: u64,
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
            inner: Mutex::new(Inner { map: HashMap::new(), order: VecDeque::new(), next_slot: 0 }),
        }
    }

    /// Counts an attempt for `key`; `Err(until)` when the key is locked (nothing counted).
    pub fn attempt(&self, key: &str, now: OffsetDateTime) -> Result<(), OffsetDateTime> {
        let key = key.to_lowercase();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.evict(now, self.capacity);
        let inner = &mut *g;
        let fresh = |slot| Entry { attempts: 0, since: now, locked_until: None, slot };
        let e = match inner.map.get_mut(&key) {
            Some(e) if e.locked_until.is_some_and(|t| t > now) => return Err(e.locked_until.unwrap_or(now)),
            Some(e) if now - e.since > WINDOW || e.locked_until.is_some() => {
                // The window (or the lockout) is over: start again, in a new slot at the back.
                let slot = inner.next_slot;
                inner.next_slot += 1;
                *e = fresh(slot);
                inner.order.push_back((key.clone(), slot));
                e
            }
            Some(e) => e,
            None => {
                let slot = inner.next_slot;
                inner.next_slot += 1;
                inner.order.push_back((key.clone(), slot));
                inner.map.entry(key).or_insert(fresh(slot))
            }
        };
        if e.attempts >= self.max {
            // Every attempt allowed in this window is taken (some may still be in flight).
            let until = now + LOCKOUT;
            e.locked_until = Some(until);
            return Err(until);
        }
        e.attempts += 1;
        Ok(())
    }

    /// The attempt counted for `key` failed: at the limit, the key is locked.
    pub fn failed(&self, key: &str, now: OffsetDateTime) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = g.map.get_mut(&key.to_lowercase()) {
            if e.attempts >= self.max && e.locked_until.is_none() {
                e.locked_until = Some(now + LOCKOUT);
            }
        }
    }

    /// The attempt counted for `key` succeeded: its count starts again.
    pub fn succeeded(&self, key: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.map.remove(&key.to_lowercase());
    }

    /// Keys remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).map.len()
    }
}

impl Inner {
    /// Drops the stale entries at the front of the order, and the oldest one when full.
    fn evict(&mut self, now: OffsetDateTime, capacity: usize) {
        while let Some((key, slot)) = self.order.front() {
            let stale = match self.map.get(key) {
                // Succeeded (removed) or restarted in a newer slot: the slot is free.
                None => true,
                Some(e) if e.slot != *slot => true,
                Some(e) => {
                    let expired = match e.locked_until {
                        Some(t) => t <= now,
                        None => now - e.since > WINDOW,
                    };
                    if expired || self.map.len() >= capacity {
                        self.map.remove(key);
                        true
                    } else {
                        false
                    }
                }
            };
            if !stale {
                break;
            }
            self.order.pop_front();
        }
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
        assert!(l.len() <= 1_000, "{} entries", l.len());
        // Later, the stale ones make room without any scan of the whole map.
        let later = now + WINDOW + Duration::seconds(1);
        l.attempt("fresh", later).unwrap();
        assert_eq!(l.len(), 1);
        // A locked key is kept while fresh keys arrive (it is not stale).
        for _ in 0..5 {
            l.attempt("victim", later).unwrap();
            l.failed("victim", later);
        }
        for i in 0..500 {
            let _ = l.attempt(&format!("spray{i}"), later);
        }
        assert!(l.attempt("victim", later).is_err());
    }
}
