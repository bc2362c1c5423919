//! How often the membership check may run: a few at once after a quiet spell, then one per
//! [`MEMBERSHIP_CHECK_EVERY`].
//!
//! The check (every counted group's members, ~20 ms of the DC at 10,000 users) is what finds
//! a deletion, which no read explains. A USN nothing explains may also be a write the agent
//! can never see (AD-integrated DNS, the configuration partition), so a busy DC must not have
//! its groups read at every tick. A single rate of one a second did that, but also held back
//! the second of two deletions made within a second of each other, by up to a second
//! (measured: a deletion p99 of 344 ms from the write sent against 220 without). A budget of
//! [`MEMBERSHIP_CHECK_BURST`] checks, earned back one per [`MEMBERSHIP_CHECK_EVERY`], costs a
//! busy DC the same in the long run and lets an admin's few deletions in a row each be found
//! at once.

use std::time::{Duration, Instant};

/// The membership check runs at most this often in the long run, after a few at once
/// ([`CheckBudget`]): a USN no read explains may be a write the agent can never see
/// (AD-integrated DNS, the configuration partition), and on a busy DC the 100 ms check would
/// otherwise read the groups that count ten times a second. A deletion past the budget then
/// waits at most this long more.
pub const MEMBERSHIP_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Checks that may run one right after the other after a quiet spell.
pub const MEMBERSHIP_CHECK_BURST: u32 = 3;

/// The checks' budget: when the next would be due at the long-run rate (none yet: any time).
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckBudget {
    due: Option<Instant>,
}

impl CheckBudget {
    /// Whether a check may run at `now`: at most [`MEMBERSHIP_CHECK_BURST`] ahead of the
    /// long-run rate.
    pub fn may(&self, now: Instant) -> bool {
        let ahead = MEMBERSHIP_CHECK_EVERY * (MEMBERSHIP_CHECK_BURST - 1);
        self.due.is_none_or(|due| now + ahead >= due)
    }

    /// A check ran at `now`.
    pub fn spent(&mut self, now: Instant) {
        let from = self.due.map_or(now, |due| due.max(now));
        self.due = Some(from + MEMBERSHIP_CHECK_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three checks at once, then one a second; a quiet spell earns the three back.
    #[test]
    fn a_few_checks_at_once_then_one_a_second() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut b = CheckBudget::default();
        // (ms after the first, whether a check may run then; it runs when it may)
        let rows = [
            (0, true),
            (10, true),
            (20, true),
            (30, false), // three in a row: the budget is spent
            (900, false),
            (1000, true), // one earned back a second after the first
            (1100, false),
            (2000, true),
            (6000, true), // a quiet spell: three again
            (6010, true),
            (6020, true),
            (6030, false),
        ];
        for (at, want) in rows {
            assert_eq!(b.may(ms(at)), want, "at {at} ms");
            if want {
                b.spent(ms(at));
            }
        }
    }
}
