//! Mass-change guards: a cycle whose deletes, group deletes, suspends, unbinds, membership
//! removals, password clears or password resets exceed a domain's bound (a count, or a
//! percentage of the users in scope) is held for an admin instead of applied. Scope mistakes in AD (an emptied group, a moved
//! OU) otherwise delete thousands of users; a runaway script against the API would otherwise
//! disable them in AD.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::ad::Category;
use crate::ad::Guard;

/// How many changes of each category a cycle would make.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub deletes: u64,
    /// Mirrored groups an import removes (deleted in AD or out of the ADI scope).
    #[serde(default)]
    pub group_deletes: u64,
    pub suspends: u64,
    pub unbinds: u64,
    pub membership_removals: u64,
    /// Takeovers that leave the user's password pending (UserTakeoverAction=deactivate).
    #[serde(default)]
    pub password_clears: u64,
    pub password_resets: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        for c in Category::ALL {
            self.add(c, o.get(c));
        }
    }
}

impl Counts {
    fn get(&self, category: Category) -> u64 {
        match category {
            Category::Deletes => self.deletes,
            Category::GroupDeletes => self.group_deletes,
            Category::Suspends => self.suspends,
            Category::Unbinds => self.unbinds,
            Category::MembershipRemovals => self.membership_removals,
            Category::PasswordClears => self.password_clears,
            Category::PasswordResets => self.password_resets,
        }
    }

    /// Counts `n` more changes of `category`.
    pub fn add(&mut self, category: Category, n: u64) {
        let slot = match category {
            Category::Deletes => &mut self.deletes,
            Category::GroupDeletes => &mut self.group_deletes,
            Category::Suspends => &mut self.suspends,
            Category::Unbinds => &mut self.unbinds,
            Category::MembershipRemovals => &mut self.membership_removals,
            Category::PasswordClears => &mut self.password_clears,
            Category::PasswordResets => &mut self.password_resets,
        };
        *slot += n;
    }
}

/// The first bound the cycle exceeds, as a reason, or `None` when it may be applied.
/// `scope` is the number of users the domain manages (for percentage bounds).
pub fn exceeded(guards: &BTreeMap<Category, Guard>, counts: &Counts, scope: u64) -> Option<String> {
    for (category, g) in guards {
        let n = counts.get(*category);
        if n == 0 {
            continue;
        }
        if let Some(max) = g.count {
            if n > max {
                return Some(format!("{n} {category} exceed the bound of {max} per cycle"));
            }
        }
        if let Some(p) = g.percent {
            let share = if scope == 0 { 100.0 } else { n as f64 * 100.0 / scope as f64 };
            if share > p {
                return Some(format!("{n} {category} are {share:.1}% of {scope} users, above the bound of {p}%"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_table() {
        let g =
            |count: Option<u64>, percent: Option<f64>| BTreeMap::from([(Category::Deletes, Guard { count, percent })]);
        let c = |deletes| Counts { deletes, ..Counts::default() };
        // (guards, deletes, scope, held?)
        let rows = [
            (g(Some(100), None), 100, 1000, false),
            (g(Some(100), None), 101, 1000, true),
            (g(None, Some(10.0)), 100, 1000, false),
            (g(None, Some(10.0)), 101, 1000, true),
            (g(Some(5), Some(50.0)), 6, 10, true),  // count exceeded
            (g(Some(50), Some(50.0)), 6, 10, true), // percent exceeded
            (g(Some(50), Some(50.0)), 5, 10, false),
            (g(None, None), 1_000_000, 10, false),
            (g(None, Some(10.0)), 1, 0, true), // an empty scope: any removal is 100%
        ];
        for (guards, n, scope, held) in rows {
            assert_eq!(exceeded(&guards, &c(n), scope).is_some(), held, "{guards:?} {n}/{scope}");
        }
        let suspends_only = BTreeMap::from([(Category::Suspends, Guard { count: Some(1), percent: None })]);
        assert!(exceeded(&suspends_only, &c(500), 1000).is_none(), "other categories are not bounded by it");
    }
}
