//! The rows that came into or left the users' lists since their marks were taken, so a deep
//! page after a write still starts at a mark instead of walking its offset.
//!
//! Marks (`marks.rs`) say where every 500th row stood when they were taken. A user created,
//! deleted or renamed since moves every row after it by one, and so made all marks stale: the
//! next random deep page walked its offset (p99 ~85 ms on SQLite, ~157 ms on PostgreSQL at
//! 1,000,000 users; docs/performance.md). A mark's row stands where it stood, plus the rows
//! that came in at or before it, minus those that left; so each store logs every row that
//! came or left (its `seq` and sort key) in the writing transaction itself, by triggers, in
//! `users_moves`, and a page reads the moves since its marks in its own snapshot and counts.
//!
//! A page uses the moves only when it finds **all** of them: the users' write generation
//! moves by one per logged row, and the page checks that it read exactly as many rows as the
//! generation moved. A pruned log (SQLite keeps the last 2,048 to 3,071 rows, PostgreSQL the
//! newest 2,048 or so by transaction id), a truncation (not logged) or more than
//! [`MOVES_MAX`] moves leave it short, and the page walks its offset as before.
//!
//! How a page finds "the moves since": on SQLite, the rows numbered past the marks'
//! generation (one writer, so the numbers are in commit order); on PostgreSQL, whose writers
//! commit in any order, the rows of transactions the marks' snapshot did not see
//! (`pg_visible_in_snapshot`), so another `tetherd`'s writes count too.
//!
//! Positions compare sort keys here, in Rust, as both databases order them: ASCII letters
//! folded, then bytes (SQLite's `NOCASE`; PostgreSQL's `lower(… COLLATE "C")` under
//! `COLLATE "C"`), a missing key first.

use crate::cursors::Cursor;

/// Moves a page reads at most: past this, its marks are too stale and it walks its offset.
pub(crate) const MOVES_MAX: u64 = 1024;
/// Marks served through more moves than this (or older than half their life) are taken
/// again in the background: a list written to all the time walks its index every few hundred
/// writes, not after each one.
pub(crate) const RENEW_AFTER: u64 = 256;

/// A row that came into a users' list (`delta` 1) or left it (-1), by its `seq` and the sort
/// key it had (a rename is one of each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Move {
    pub seq: i64,
    pub key: Option<String>,
    pub delta: i64,
}

/// The moves in rows of (`seq`, sort key, delta).
pub(crate) fn moves_of<R>(rows: &[R]) -> Result<Vec<Move>, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter().map(|r| Ok(Move { seq: r.try_get(0)?, key: r.try_get(1)?, delta: r.try_get(2)? })).collect()
}

/// A sort key as both databases compare it: ASCII letters folded, then bytes; none first.
fn folded(key: &Option<String>) -> Option<Vec<u8>> {
    key.as_ref().map(|k| k.as_bytes().to_ascii_lowercase())
}

/// The moves of a list, ready to place rows among: sorted by key (or `seq`), with the running
/// sum of their deltas.
pub(crate) struct Shifts {
    keyed: bool,
    /// (folded key, seq, the sum of the deltas of this move and all before it)
    sorted: Vec<(Option<Vec<u8>>, i64, i64)>,
}

impl Shifts {
    pub(crate) fn new(moves: &[Move], keyed: bool) -> Self {
        let mut sorted: Vec<(Option<Vec<u8>>, i64, i64)> =
            moves.iter().map(|m| (if keyed { folded(&m.key) } else { None }, m.seq, m.delta)).collect();
        if keyed {
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
        } else {
            sorted.sort_by_key(|m| m.1);
        }
        let mut sum = 0;
        for m in &mut sorted {
            sum += m.2;
            m.2 = sum;
        }
        Shifts { keyed, sorted }
    }

    /// How many rows the moves put at or before `c` (the rows a page after `c` does not
    /// read: sorted, those of a key not greater than its key; else of a `seq` not greater).
    pub(crate) fn at_or_before(&self, c: &Cursor) -> i64 {
        let n = if self.keyed {
            let key = folded(&c.key);
            self.sorted.partition_point(|m| m.0 <= key)
        } else {
            self.sorted.partition_point(|m| m.1 <= c.seq)
        };
        n.checked_sub(1).map_or(0, |i| self.sorted[i].2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(seq: i64, key: &str, delta: i64) -> Move {
        Move { seq, key: Some(key.to_string()), delta }
    }

    /// Rows placed among the moves, by key (ASCII case folded, bytes after) and by `seq`.
    #[test]
    fn a_row_is_moved_by_the_rows_that_came_and_left_at_or_before_it() {
        let moves = [m(10, "Bob", 1), m(3, "carl", -1), m(20, "ann", 1), m(5, "dana", -1), m(30, "é", 1)];
        // (cursor seq, cursor key, shift sorted by key, shift in insertion order)
        let rows: &[(i64, Option<&str>, i64, i64)] = &[
            (1, None, 0, 0),            // a missing key sorts first
            (2, Some("ANN"), 1, 0),     // a key equal to a move's, case folded, is after it
            (4, Some("bob"), 2, -1),    // ann and Bob came; seq 3 left before seq 4
            (6, Some("Carl"), 1, -2),   // carl left
            (11, Some("carla"), 1, -1), // longer than carl: after it
            (25, Some("zed"), 0, 0),    // all four: +1 +1 -1 -1
            (40, Some("\u{e0}"), 0, 1), // à (0xC3 0xA0) before é (0xC3 0xA9), bytes
            (40, Some("\u{e9}"), 1, 1), // é itself
            (40, Some("\u{c9}"), 0, 1), // É is not folded: 0xC3 0x89, before é
        ];
        let (by_key, by_seq) = (Shifts::new(&moves, true), Shifts::new(&moves, false));
        for (seq, key, sorted, inserted) in rows {
            let c = Cursor { seq: *seq, key: key.map(str::to_string) };
            assert_eq!(by_key.at_or_before(&c), *sorted, "{key:?} by key");
            assert_eq!(by_seq.at_or_before(&c), *inserted, "seq {seq}");
        }
        assert_eq!(Shifts::new(&[], true).at_or_before(&Cursor { seq: 1, key: None }), 0);
    }
}
