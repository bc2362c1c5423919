//! Filtered totals remembered with the version of the users they were counted at.
//!
//! A filter no index or tally serves (a display name, a description, a regular expression)
//! is counted over every document: ~1 s on SQLite and ~0.25 s on PostgreSQL at 1,000,000
//! users; one an index serves (`indexed.rs`) over every user that matches. A reader paging
//! through such a list asks for the same total at every page. Each store remembers it with a
//! version that every write to the counted documents moves, and answers it while the version
//! is the same:
//! - SQLite: the process's directory version, read before and after the count with no write
//!   under way (only this process writes);
//! - PostgreSQL: the number of statements that wrote users, kept by a trigger as deltas of
//!   `row_counts` (schema step 15) and read in the count's own snapshot, so the pair is
//!   consistent whichever process wrote.
//!
//! Bounded: at most [`KEPT_MAX`] totals, each under a statement of at most [`KEY_MAX`] bytes.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::sql::ListSql;

/// Totals kept at most (those of older versions go first).
const KEPT_MAX: usize = 256;
/// The longest count statement (with its parameters) kept: the memory stays ~256 × 2 KiB.
const KEY_MAX: usize = 2048;

#[derive(Default)]
pub(crate) struct Remembered {
    kept: Mutex<HashMap<String, (u64, i64)>>,
}

impl Remembered {
    /// What a list's total is kept under: its count's statement and parameters; `None` for a
    /// list not worth remembering (unfiltered, or counted from the tally) or too long a key.
    pub(crate) fn key(l: &ListSql, filtered: bool) -> Option<String> {
        (filtered && !l.tallied)
            .then(|| format!("{} {:?}", l.count, &l.binds[..l.count_binds]))
            .filter(|k| k.len() <= KEY_MAX)
    }

    /// The total kept under `key` if it was counted at `version`.
    pub(crate) fn get(&self, key: &str, version: u64) -> Option<i64> {
        let kept = self.kept.lock().expect("not poisoned");
        kept.get(key).filter(|(at, _)| *at == version).map(|(_, n)| *n)
    }

    /// Keeps `n`, counted at `version`, under `key`.
    pub(crate) fn put(&self, key: String, version: u64, n: i64) {
        let mut kept = self.kept.lock().expect("not poisoned");
        if kept.len() >= KEPT_MAX && !kept.contains_key(&key) {
            kept.retain(|_, (v, _)| *v == version);
            if kept.len() >= KEPT_MAX {
                kept.clear();
            }
        }
        kept.insert(key, (version, n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_total_is_answered_at_its_version_only_and_the_memory_is_bounded() {
        let r = Remembered::default();
        r.put("a".into(), 1, 10);
        assert_eq!((r.get("a", 1), r.get("a", 2), r.get("b", 1)), (Some(10), None, None));
        r.put("a".into(), 2, 11);
        assert_eq!((r.get("a", 1), r.get("a", 2)), (None, Some(11)));
        for i in 0..KEPT_MAX {
            r.put(format!("k{i}"), 3, 1);
        }
        // Full: those of older versions went first, then all of them.
        assert_eq!(r.get("a", 2), None);
        assert!(r.kept.lock().unwrap().len() <= KEPT_MAX);
        r.put("z".into(), 3, 5);
        assert_eq!(r.get("z", 3), Some(5));
        assert!(r.kept.lock().unwrap().len() <= KEPT_MAX);
    }
}
