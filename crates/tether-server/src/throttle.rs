//! Brute-force protection for every password check (`/api/v2/auth/verify`, the portal, the
//! console): failures are counted per username, and per source address where the source is
//! the person logging in. Past the limit the key is refused for a while without the password
//! being checked (against Tether or AD: AD's own lockout is not triggered by Tether on the
//! attacker's behalf). A success resets the username's count.
//!
//! An attempt is counted *before* its password is checked, so N guesses sent in parallel are
//! N attempts, not one each racing the same count; those past the limit wait for the ones in
//! flight (only a failure locks), so an application opening 32 connections for its one
//! account at once is not locked out by its own successes. The counts live in the store (one atomic
//! statement per attempt), so several tetherd behind one load balancer count together: an
//! attacker gets no more guesses from spreading them. Keys that are neither locked nor
//! counting are forgotten as failures come in, and a flood of fresh keys cannot unlock a
//! locked one. Uses the server's clock.

use tether_store::{Attempt, Counted, Repo, StoreError};
use time::{Duration, OffsetDateTime};

/// Failures per username within [`WINDOW`] before it is locked.
pub const MAX_FAILURES: u32 = 10;
/// Failures per source address within [`WINDOW`] before it is locked (one address may be a
/// shared NAT, so this is looser than the per-user limit).
pub const MAX_SOURCE_FAILURES: u32 = 50;
pub const WINDOW: Duration = Duration::minutes(5);
pub const LOCKOUT: Duration = Duration::minutes(15);
/// How long an attempt past the limit waits for those in flight before it is refused.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// One limit over one kind of key (`kind` keeps usernames and addresses apart in the store).
pub struct Limiter {
    repo: Repo,
    kind: &'static str,
    max: u32,
    /// Many people behind one key (an address): a success gives back its own attempt only.
    shared_key: bool,
    /// How long an attempt past the limit waits for those in flight.
    busy_wait: std::time::Duration,
}

impl Limiter {
    pub fn new(repo: Repo, kind: &'static str, max: u32, shared_key: bool) -> Self {
        Limiter { repo, kind, max, shared_key, busy_wait: BUSY_WAIT }
    }

    fn key(&self, key: &str) -> String {
        format!("{}:{}", self.kind, key.to_lowercase())
    }

    fn limits(&self, now: OffsetDateTime) -> Attempt {
        Attempt {
            now: now.unix_timestamp(),
            window_start: (now - WINDOW).unix_timestamp(),
            max: i64::from(self.max),
            lock_until: (now + LOCKOUT).unix_timestamp(),
        }
    }

    /// Counts an attempt for `key`; `Err(until)` when the key is locked (nothing counted).
    ///
    /// Attempts past the limit that no failure has locked yet (a client opening many
    /// connections for one account at once, each binding) wait for those in flight to
    /// resolve: a success frees the key, failures lock it. At most `max` passwords are ever
    /// being checked or failed within the window, however many arrive at once.
    pub async fn attempt(&self, key: &str, now: OffsetDateTime) -> Result<Result<(), OffsetDateTime>, StoreError> {
        let key = self.key(key);
        let waited = std::time::Instant::now();
        // Tries again after 10 ms, 20 ms, … at most every 500 ms: a flood of attempts waiting
        // on one key costs the store a bounded number of writes each (about 15 in 5 s).
        let mut pause = std::time::Duration::from_millis(10);
        loop {
            match self.repo.store().count_attempt(&key, self.limits(now)).await? {
                Counted::Counted => return Ok(Ok(())),
                Counted::Locked(t) => {
                    return Ok(Err(OffsetDateTime::from_unix_timestamp(t).unwrap_or(now + LOCKOUT)));
                }
                Counted::Full => {
                    self.repo.store().attempt_succeeded(&key, true).await?;
                    if waited.elapsed() >= self.busy_wait {
                        return Ok(Err(now + Duration::seconds(self.busy_wait.as_secs().max(1) as i64)));
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(500));
                }
            }
        }
    }

    /// The attempt counted for `key` failed: at the limit, the key is locked.
    pub async fn failed(&self, key: &str, now: OffsetDateTime) -> Result<(), StoreError> {
        self.repo.store().attempt_failed(&self.key(key), self.limits(now)).await
    }

    /// The attempt counted for `key` succeeded: its count starts again (and a lockout that
    /// began while it was in flight ends: the password was right); for a key shared by many
    /// (a source address), only that attempt is taken back.
    pub async fn succeeded(&self, key: &str) -> Result<(), StoreError> {
        self.repo.store().attempt_succeeded(&self.key(key), self.shared_key).await
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
    /// Second-factor codes, per username.
    pub codes: Limiter,
}

impl Throttle {
    pub fn new(repo: Repo) -> Self {
        Throttle {
            users: Limiter::new(repo.clone(), "user", MAX_FAILURES, false),
            sources: Limiter::new(repo.clone(), "source", MAX_SOURCE_FAILURES, true),
            codes: Limiter::new(repo, "totp", MAX_FAILURES, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
    }

    async fn repo() -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().unwrap();
        let store = tether_store::sqlite::SqliteStore::open(dir.path()).await.unwrap();
        (dir, Repo::new(std::sync::Arc::new(store)))
    }

    #[tokio::test]
    async fn attempts_count_before_the_check_and_lock_at_the_limit() {
        let (_d, r) = repo().await;
        let mut l = Limiter::new(r, "user", 3, false);
        l.busy_wait = std::time::Duration::from_millis(100);
        let now = t0();
        // Three attempts in flight at once: the fourth waits, and is refused when none of
        // them answers meanwhile.
        for _ in 0..3 {
            l.attempt("Ann", now).await.unwrap().unwrap();
        }
        assert!(l.attempt("ann", now).await.unwrap().is_err(), "case-insensitive, counted before the check");
        for _ in 0..3 {
            l.failed("ann", now).await.unwrap();
        }
        let until = l.attempt("ann", now + Duration::minutes(1)).await.unwrap().unwrap_err();
        assert_eq!(until, now + LOCKOUT);
        // After the lockout the count starts again.
        l.attempt("ann", now + LOCKOUT + Duration::seconds(1)).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_attempt_past_the_limit_waits_for_those_in_flight() {
        let (_d, r) = repo().await;
        let l = std::sync::Arc::new(Limiter::new(r, "user", 2, false));
        let now = t0();
        l.attempt("cy", now).await.unwrap().unwrap();
        l.attempt("cy", now).await.unwrap().unwrap();
        let waiting = tokio::spawn({
            let l = l.clone();
            async move { l.attempt("cy", now).await.unwrap() }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "the third waits");
        l.succeeded("cy").await.unwrap();
        assert_eq!(waiting.await.unwrap(), Ok(()), "and goes on once one in flight succeeds");
        // Failures lock it instead: the one waiting then learns so.
        l.attempt("cy", now).await.unwrap().unwrap();
        let waiting = tokio::spawn({
            let l = l.clone();
            async move { l.attempt("cy", now).await.unwrap() }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        l.failed("cy", now).await.unwrap();
        assert_eq!(waiting.await.unwrap(), Err(now + LOCKOUT));
    }

    #[tokio::test]
    async fn a_success_resets_the_count() {
        let (_d, r) = repo().await;
        let mut l = Limiter::new(r, "user", 2, false);
        l.busy_wait = std::time::Duration::from_millis(100);
        let now = t0();
        l.attempt("bo", now).await.unwrap().unwrap();
        l.failed("bo", now).await.unwrap();
        l.attempt("bo", now).await.unwrap().unwrap();
        l.succeeded("bo").await.unwrap();
        l.attempt("bo", now).await.unwrap().unwrap();
        l.attempt("bo", now).await.unwrap().unwrap();
        assert!(l.attempt("bo", now).await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_flood_of_fresh_keys_does_not_unlock_a_locked_one() {
        let (_d, r) = repo().await;
        let l = Limiter::new(r, "user", 5, false);
        let now = t0();
        for _ in 0..5 {
            l.attempt("victim", now).await.unwrap().unwrap();
            l.failed("victim", now).await.unwrap();
        }
        // Junk keys, each with one failure, then stale ones forgotten later.
        for i in 0..2_000 {
            let _ = l.attempt(&format!("spray{i}"), now).await.unwrap();
            l.failed(&format!("spray{i}"), now).await.unwrap();
        }
        let later = now + WINDOW + Duration::seconds(1);
        l.failed("fresh", later).await.unwrap();
        assert_eq!(l.attempt("victim", now + Duration::minutes(10)).await.unwrap(), Err(now + LOCKOUT));
        // The lockout ends on time.
        l.attempt("victim", now + LOCKOUT + Duration::seconds(1)).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_shared_key_gives_back_the_attempts_that_succeeded() {
        let (_d, r) = repo().await;
        let l = Limiter::new(r, "source", 3, true);
        let now = t0();
        for _ in 0..10 {
            l.attempt("10.0.0.1", now).await.unwrap().unwrap();
            l.succeeded("10.0.0.1").await.unwrap();
        }
        l.attempt("10.0.0.1", now).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn usernames_and_addresses_count_apart() {
        let (_d, r) = repo().await;
        let (users, sources) = (Limiter::new(r.clone(), "user", 1, false), Limiter::new(r, "source", 1, true));
        let now = t0();
        users.attempt("10.0.0.1", now).await.unwrap().unwrap();
        sources.attempt("10.0.0.1", now).await.unwrap().unwrap();
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
