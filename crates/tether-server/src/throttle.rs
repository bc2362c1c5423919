//! Brute-force protection for `/api/v2/auth/verify`: after `MAX_FAILURES` failed attempts
//! for one username within `WINDOW`, that username is refused for `LOCKOUT` without its
//! password being checked (against Tether or AD: AD's own lockout is not triggered by
//! Tether on the attacker's behalf). A success resets the count. Uses the server's clock.

use std::collections::HashMap;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::minutes(5);
pub const LOCKOUT: Duration = Duration::minutes(15);

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    since: OffsetDateTime,
    locked_until: Option<OffsetDateTime>,
}

#[derive(Default)]
pub struct Throttle {
    by_user: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    /// `Some(until)` while `user` is locked out.
    pub fn locked(&self, user: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let map = self.by_user.lock().expect("lock");
        map.get(&user.to_lowercase()).and_then(|e| e.locked_until).filter(|t| *t > now)
    }

    pub fn failed(&self, user: &str, now: OffsetDateTime) {
        let mut map = self.by_user.lock().expect("lock");
        let e = map.entry(user.to_lowercase()).or_insert(Entry { failures: 0, since: now, locked_until: None });
        if now - e.since > WINDOW || e.locked_until.is_some_and(|t| t <= now) {
            *e = Entry { failures: 0, since: now, locked_until: None };
        }
        e.failures += 1;
        if e.failures >= MAX_FAILURES {
            e.locked_until = Some(now + LOCKOUT);
        }
        // Bound the memory an attacker can make us use with random usernames.
        if map.len() > 100_000 {
            map.retain(|_, e| e.locked_until.is_some_and(|t| t > now) || now - e.since <= WINDOW);
        }
    }

    pub fn succeeded(&self, user: &str) {
        self.by_user.lock().expect("lock").remove(&user.to_lowercase());
    }
}
