//! Where every [`EVERY`]-th row of an unfiltered list of users stands, so a page at a random
//! `skip` walks fewer than [`EVERY`] rows instead of the whole index up to its offset.
//!
//! `cursors.rs` serves a reader paging through; a console user jumping to page 5,000 of a
//! million users asks for an offset no page ended at, and `OFFSET` walks the sort index up to
//! it (75 ms at the p99 on SQLite, 160 on PostgreSQL at 1,000,000 users: docs/performance.md).
//! No index answers "the n-th row" in either database, so the positions are taken here: one
//! walk of the list's index keeps every [`EVERY`]-th row's cursor (its `seq`, and its sort
//! key when sorted), and a page then starts after the mark before its `skip` and walks the
//! rest.
//!
//! Marks are used as taken while the users' write generation is the one they were taken at,
//! and for [`KEEP`] at most. A user inserted or deleted, or a username changed, moves the
//! generation (other updates move no row of these lists, and keep the marks), and a page and
//! a walk each read the generation in the same snapshot as their rows, so they know the
//! generation of exactly the rows they read, whoever wrote them and whether it has committed:
//! - SQLite: a counter row (`users_writes`) moved by triggers, read in the page's or the
//!   walk's read transaction (one WAL snapshot).
//! - PostgreSQL: a count of the rows the triggers logged, kept in `row_counts`
//!   (transactional), read in the same `REPEATABLE READ` snapshot, so another `tetherd`'s
//!   writes count too.
//!
//! After writes, a page places the marks by the moves since (`moves.rs`): each mark stands
//! where it stood plus the rows that came in at or before it, minus those that left. When it
//! cannot (too many moves, or not all of them found), the page walks its offset, as before.
//! Marks are taken again in the background (never by the request, which pays no more than
//! without marks) when a page walked its offset or went through more than a few hundred
//! moves. So marks cost nothing until someone asks for a deep page, and then a walk of the
//! index now and then ([`REST`] bounds how often). What a page answers is exactly its
//! `OFFSET` page.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cursors::{Cursor, Cursors};
use crate::moves::{Move, Shifts, MOVES_MAX, RENEW_AFTER};
use crate::sql::{doc_select, Bind, Dialect, Keyset, ListSql};

/// Rows between two marks: a page walks fewer than this past its mark. 2,000 marks for
/// 1,000,000 users (~100 KB).
pub(crate) const EVERY: usize = 500;
/// How long marks are used at most, whatever the generation says.
pub(crate) const KEEP: Duration = Duration::from_secs(60);
/// After a walk, the next one of the same list waits this many times as long as it took: a
/// list written to all the time and paged deep all the time costs the database at most a
/// tenth of one core in walks (its pages walk their offset meanwhile).
pub(crate) const REST: u32 = 9;

/// Marks of one list, and when, at which generation and (PostgreSQL) in which snapshot they
/// were taken.
struct Taken {
    generation: u64,
    snapshot: Option<String>,
    at: Instant,
    /// `cursors[i]` is the row `(i + 1) × EVERY` rows into the list (the last of the first
    /// `(i + 1) × EVERY` rows).
    cursors: Arc<Vec<Cursor>>,
}

/// What a walk took: the marks, and the users' write generation (and, on PostgreSQL, the
/// snapshot) of the rows it read.
pub(crate) struct Walked {
    pub generation: u64,
    pub snapshot: Option<String>,
    pub cursors: Vec<Cursor>,
}

/// The marks of a list as a page finds them, to read the moves since (`moves.rs`).
pub(crate) struct Held {
    pub generation: u64,
    /// PostgreSQL: the walk's snapshot (`pg_current_snapshot()`), whose unseen transactions'
    /// moves are the moves since.
    pub snapshot: Option<String>,
    at: Instant,
    cursors: Arc<Vec<Cursor>>,
}

/// Where a page starts: past a mark, this many rows after it; `moved` when the mark was
/// placed by the moves since the marks were taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct After {
    pub mark: Cursor,
    pub past: usize,
    pub moved: bool,
}

/// The walks of one list: whether one runs, and when the last one ended and what it took.
#[derive(Default)]
struct Walks {
    running: bool,
    last: Option<(Instant, Duration)>,
}

/// The marks of the unfiltered lists (one per order: a handful at most).
#[derive(Default)]
pub(crate) struct Marks {
    lists: Mutex<HashMap<String, Taken>>,
    walks: Mutex<HashMap<String, Walks>>,
}

/// Whether a list may be served from marks: unfiltered, in an order its rows are found
/// again in (`Keyset`), and at least one mark deep.
pub(crate) fn may_mark(l: &ListSql, skip: usize) -> bool {
    l.cond.is_empty() && l.keyset != Keyset::None && skip >= EVERY
}

impl Held {
    /// The last mark at or before `skip` once `shifts` (the moves since the marks: none when
    /// they hold) are counted, and the rows from it to `skip`.
    fn after(&self, skip: usize, shifts: Option<&Shifts>) -> Option<After> {
        let position = |i: usize| {
            let at = i64::try_from((i + 1) * EVERY).unwrap_or(i64::MAX);
            at + shifts.map_or(0, |s| s.at_or_before(&self.cursors[i]))
        };
        let skip = i64::try_from(skip).ok()?;
        // Positions only grow with `i` (a mark's position is the rows at or before it now).
        let (mut lo, mut hi) = (0, self.cursors.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if position(mid) <= skip {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let i = lo.checked_sub(1)?;
        let past = usize::try_from(skip - position(i)).ok()?;
        Some(After { mark: self.cursors[i].clone(), past, moved: shifts.is_some() })
    }
}

impl Marks {
    /// The marks of `signature`, while they are younger than [`KEEP`].
    pub(crate) fn held(&self, signature: &str, now: Instant) -> Option<Held> {
        let lists = self.lists.lock().expect("not poisoned");
        let t = lists.get(signature).filter(|t| now.duration_since(t.at) < KEEP)?;
        Some(Held { generation: t.generation, snapshot: t.snapshot.clone(), at: t.at, cursors: t.cursors.clone() })
    }

    /// Where the page at `skip` of the list `l` starts, for a page whose snapshot reads the
    /// users' write generation `generation`: nowhere from a mark when it continues where a
    /// page ended (`cursors`, which `Cursors::page` prefers); else after the mark before it
    /// when the marks were taken at that generation; else placed by the moves since, read by
    /// `moves` in the page's snapshot, when there are at most [`MOVES_MAX`] and the page finds
    /// every one of them. And whether the marks should be taken again: none held or usable,
    /// or served through more than [`RENEW_AFTER`] moves or past half their life.
    pub(crate) async fn start<F>(
        &self,
        cursors: &Cursors,
        l: &ListSql,
        skip: usize,
        generation: u64,
        now: Instant,
        moves: F,
    ) -> Result<(Option<After>, bool), sqlx::Error>
    where
        F: AsyncFnOnce(&Held) -> Result<Vec<Move>, sqlx::Error>,
    {
        if cursors.at(&l.signature, skip, now).is_some() {
            return Ok((None, false));
        }
        self.start_at(&l.signature, skip, matches!(l.keyset, Keyset::Key(_)), generation, now, moves).await
    }

    /// [`Marks::start`] for a page that does not continue another: `signature` names the
    /// list, `keyed` says it is sorted by a key.
    async fn start_at<F>(
        &self,
        signature: &str,
        skip: usize,
        keyed: bool,
        generation: u64,
        now: Instant,
        moves: F,
    ) -> Result<(Option<After>, bool), sqlx::Error>
    where
        F: AsyncFnOnce(&Held) -> Result<Vec<Move>, sqlx::Error>,
    {
        let Some(h) = self.held(signature, now) else { return Ok((None, true)) };
        let aging = now.duration_since(h.at) >= KEEP / 2;
        if h.generation == generation {
            return Ok((h.after(skip, None), aging));
        }
        let Some(behind) = generation.checked_sub(h.generation) else {
            // The page read an older snapshot than the marks': newer marks need no walk.
            return Ok((None, false));
        };
        if behind > MOVES_MAX {
            return Ok((None, true));
        }
        let m = moves(&h).await?;
        // All of them or none: a pruned log or a truncation leaves fewer than the generation
        // moved by.
        if m.len() as u64 != behind {
            return Ok((None, true));
        }
        Ok((h.after(skip, Some(&Shifts::new(&m, keyed))), behind > RENEW_AFTER || aging))
    }

    /// Claims the taking of marks of `signature` at `generation`: false when they hold
    /// already (taken at that generation or a later one, less than half their life ago), are
    /// being taken, or the last walk ended less than [`REST`] times its own
    /// length ago.
    pub(crate) fn claim(&self, signature: &str, generation: u64, now: Instant) -> bool {
        let held = self
            .lists
            .lock()
            .expect("not poisoned")
            .get(signature)
            .is_some_and(|t| t.generation >= generation && now.duration_since(t.at) < KEEP / 2);
        if held {
            return false;
        }
        let mut walks = self.walks.lock().expect("not poisoned");
        let w = walks.entry(signature.to_string()).or_default();
        let rested = w.last.is_none_or(|(ended, took)| now.saturating_duration_since(ended) >= took * REST);
        if w.running || !rested {
            return false;
        }
        w.running = true;
        true
    }

    /// The marks of `signature` taken by a walk from `at` to `ended` (None: not taken), and
    /// the claim released.
    pub(crate) fn taken(&self, signature: &str, at: Instant, ended: Instant, taken: Option<Walked>) {
        if let Some(w) = taken {
            let t = Taken { generation: w.generation, snapshot: w.snapshot, at, cursors: Arc::new(w.cursors) };
            self.lists.lock().expect("not poisoned").insert(signature.to_string(), t);
        }
        let mut walks = self.walks.lock().expect("not poisoned");
        let w = walks.entry(signature.to_string()).or_default();
        (w.running, w.last) = (false, Some((ended, ended.saturating_duration_since(at))));
    }
}

/// The walk that takes the marks of `l` (unfiltered): every [`EVERY`]-th row's `seq`, and its
/// sort key when sorted, in order. Each step starts where the last mark is and skips
/// `EVERY - 1` rows, as `OFFSET` does, in the order's index alone: one statement, ~150 ms at
/// 1,000,000 users on SQLite (a `row_number()` over the same index took 7 s: SQLite computed
/// the sort key of every row, from its document).
///
/// Sorted, a step starts after the last mark's key (`k > key`), which is exact because the
/// users' sort key is unique: the username folded to lower case is their first unique key,
/// and neither database's sort key (ASCII case folded) makes two different ones equal. The
/// tie-breaking form of `cursors.rs` (`k >= key AND (k > key OR seq > s)`) would make SQLite
/// compute the key of every row it skips.
pub(crate) fn marks_sql(table: &str, l: &ListSql) -> Option<String> {
    if !l.cond.is_empty() {
        return None;
    }
    let (order, skip) = (&l.order, EVERY - 1);
    let after = match &l.keyset {
        Keyset::Seq => "seq > m.seq".to_string(),
        Keyset::Key(k) => format!("{k} > (SELECT {k} FROM {table} AS p WHERE p.seq = m.seq)"),
        Keyset::None => return None,
    };
    let out = match &l.keyset {
        Keyset::Key(k) => format!("m.seq, {k}"),
        _ => "m.seq".to_string(),
    };
    Some(format!(
        "WITH RECURSIVE m(n, seq) AS (SELECT 1, (SELECT seq FROM {table} ORDER BY {order} LIMIT 1 OFFSET {skip}) \
         UNION ALL SELECT n + 1, (SELECT seq FROM {table} WHERE {after} ORDER BY {order} LIMIT 1 OFFSET {skip}) \
         FROM m WHERE m.seq IS NOT NULL) \
         SELECT {out} FROM m JOIN {table} ON {table}.seq = m.seq ORDER BY m.n"
    ))
}

/// The page of `l` (unfiltered) that starts `past` rows after the mark `after`: the rows past
/// the mark walked in the index alone, then the page's documents read. Sorted, the rows after
/// the mark are those of a greater key (unique, see [`marks_sql`]).
pub(crate) fn page_sql<D: Dialect>(
    table: &str,
    l: &ListSql,
    limit: usize,
    after: &Cursor,
    past: usize,
) -> Option<(String, Vec<Bind>)> {
    if !l.cond.is_empty() {
        return None;
    }
    let (cond, bind) = match (&l.keyset, &after.key) {
        (Keyset::Seq, _) => ("seq".to_string(), Bind::Int(after.seq)),
        (Keyset::Key(k), Some(key)) => (k.clone(), Bind::Text(key.clone())),
        _ => return None,
    };
    let int = |n: usize| Bind::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let (columns, order) = (format!("{}{}", doc_select::<D>(table), l.keyset.columns()), &l.order);
    let select = format!(
        "SELECT {columns} FROM {table} WHERE seq IN (SELECT seq FROM {table} WHERE {cond} > {} ORDER BY {order} \
         LIMIT {} OFFSET {}) ORDER BY {order}",
        D::param(1),
        D::param(2),
        D::param(3)
    );
    Some((select, vec![bind, int(limit), int(past)]))
}

/// Takes the marks of the list `signature` in the background by `walk`, unless they hold at
/// `generation` or are being taken already: the request that found them stale does not wait
/// for it. `walk` answers the marks and the generation they are the list's at (None: not
/// taken, the walk failed).
pub(crate) fn take<W>(marks: &Arc<Marks>, signature: &str, generation: u64, now: Instant, walk: W)
where
    W: Future<Output = Option<Walked>> + Send + 'static,
{
    if !marks.claim(signature, generation, now) {
        return;
    }
    // Released however the walk ends, a panic or the runtime's end included.
    let claim = Claim { marks: marks.clone(), signature: signature.to_string(), at: now, taken: None };
    tokio::spawn(async move {
        // The whole claim moves in (not only the field written), to be dropped here.
        let mut claim = claim;
        claim.taken = walk.await;
    });
}

/// A claim on the taking of a list's marks; dropped, it files what the walk took.
struct Claim {
    marks: Arc<Marks>,
    signature: String,
    at: Instant,
    taken: Option<Walked>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.marks.taken(&self.signature, self.at, Instant::now(), self.taken.take());
    }
}

/// Logs why marks were not taken (their lists' deep pages walk their offset meanwhile).
pub(crate) fn failed(e: sqlx::Error) {
    tracing::info!(error = %e, "the marks of a list were not taken: its deep pages walk their offset");
}

/// The marks in the rows of [`marks_sql`] (`seq`, and the sort key when `keyed`).
pub(crate) fn marks_of<R>(keyed: bool, rows: &[R]) -> Result<Vec<Cursor>, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|r| Ok(Cursor { seq: r.try_get(0)?, key: if keyed { r.try_get::<Option<String>, _>(1)? } else { None } }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(seq: i64) -> Cursor {
        Cursor { seq, key: Some(format!("u{seq}")) }
    }

    fn walked(generation: u64, cursors: Vec<Cursor>) -> Option<Walked> {
        Some(Walked { generation, snapshot: None, cursors })
    }

    /// Where a page at `skip` starts when the page reads `generation`, the moves since the
    /// marks being `moves` (the page's reads of them counted in `reads`), and whether the
    /// marks are to be taken again.
    async fn start(
        marks: &Marks,
        skip: usize,
        generation: u64,
        now: Instant,
        moves: &[Move],
        reads: &mut u32,
    ) -> (Option<After>, bool) {
        let read = async |_: &Held| {
            *reads += 1;
            Ok(moves.to_vec())
        };
        marks.start_at("l", skip, true, generation, now, read).await.unwrap()
    }

    fn at(mark: Cursor, past: usize, moved: bool) -> Option<After> {
        Some(After { mark, past, moved })
    }

    /// Three marks (rows 500, 1,000 and 1,500 into the list): the mark before each `skip`,
    /// and the rows to walk past it, while they hold.
    #[tokio::test]
    async fn a_page_starts_after_the_mark_before_it_while_the_marks_hold() {
        let t0 = Instant::now();
        let marks = Marks::default();
        assert!(marks.claim("l", 7, t0));
        assert!(!marks.claim("l", 7, t0), "being taken");
        marks.taken("l", t0, t0, walked(7, vec![c(1), c(2), c(3)]));
        assert!(!marks.claim("l", 7, t0), "held");
        assert!(!marks.claim("l", 6, t0), "a page of an older snapshot than the marks' asks no walk");
        // (skip, seconds later, the mark and the rows past it, taken again)
        type Row = (usize, u64, Option<After>, bool);
        let rows: &[Row] = &[
            (499, 0, None, false), // before the first mark: by offset
            (500, 0, at(c(1), 0, false), false),
            (501, 0, at(c(1), 1, false), false),
            (999, 0, at(c(1), 499, false), false),
            (1000, 0, at(c(2), 0, false), false),
            (1700, 0, at(c(3), 200, false), false),
            (9000, 0, at(c(3), 7500, false), false), // past the last mark (rows added since)
            (1000, KEEP.as_secs() / 2, at(c(2), 0, false), true), // half their life: taken again
            (1000, KEEP.as_secs(), None, true),      // too old
        ];
        let mut reads = 0;
        for (skip, later, want, renew) in rows {
            let got = start(&marks, *skip, 7, t0 + Duration::from_secs(*later), &[], &mut reads).await;
            assert_eq!(&got, &(want.clone(), *renew), "skip {skip}, {later} s later");
        }
        assert_eq!(reads, 0, "no moves read while the marks hold");
        let other = marks.start_at("other", 1000, true, 7, t0, async |_: &Held| Ok(vec![])).await.unwrap();
        assert_eq!(other, (None, true), "another list");
        assert!(marks.claim("l", 8, t0), "stale: taken again");
        marks.taken("l", t0, t0, None);
        assert_eq!(
            start(&marks, 1000, 7, t0, &[], &mut reads).await,
            (at(c(2), 0, false), false),
            "a failed walk leaves the old marks"
        );
        assert!(marks.claim("l", 8, t0), "and may be tried again");
        marks.taken("l", t0, t0, None);
        assert!(marks.claim("l", 7, t0 + KEEP / 2 + Duration::from_secs(3)), "past half their life: taken again");
    }

    /// Marks at rows 500, 1,000, 1,500 (keys u1, u2, u3), the page reading a later generation:
    /// each mark placed by the moves since (the rows that came in or left at or before it), as
    /// long as the page finds as many moves as the generation moved by.
    #[tokio::test]
    async fn after_writes_a_page_places_the_marks_by_the_moves_since() {
        let t0 = Instant::now();
        let marks = Marks::default();
        marks.taken("l", t0, t0, walked(10, vec![c(1), c(2), c(3)]));
        let mv = |key: &str, delta| Move { seq: 99, key: Some(key.to_string()), delta };
        let came_first = [mv("a", 1), mv("b", 1)]; // two rows before every mark
        let left_second = [mv("u2", -1)]; // the second mark's own row left
                                          // A row before u1 renamed to between u2 and u3.
        let renamed = [mv("u0", -1), mv("u25", 1)];
        // All after u3.
        let many: Vec<Move> = (0..=RENEW_AFTER).map(|i| mv(&format!("v{i}"), 1)).collect();
        // (skip, generation, moves, where the page starts, taken again)
        type Row<'a> = (usize, u64, &'a [Move], Option<After>, bool);
        let rows: &[Row] = &[
            (501, 12, &came_first, None, false), // the first mark is now row 502
            (502, 12, &came_first, at(c(1), 0, true), false),
            (1100, 12, &came_first, at(c(2), 98, true), false),
            (1000, 11, &left_second, at(c(2), 1, true), false), // u2 stood at 1,000, now 999
            (999, 11, &left_second, at(c(2), 0, true), false),
            (1000, 12, &renamed, at(c(2), 1, true), false), // u1 now at 499, u2 at 999
            (1499, 12, &renamed, at(c(2), 500, true), false), // u3 still at 1,500
            (1500, 12, &renamed, at(c(3), 0, true), false),
            (1600, 12, &came_first[..1], None, true), // one move missing (pruned): by offset
            (1600, 10 + MOVES_MAX + 1, &[], None, true), // too many to read
            (1600, 9, &[], None, false),              // a snapshot older than the marks
            (1600, 10 + RENEW_AFTER + 1, &many, at(c(3), 100, true), true),
        ];
        for (skip, generation, moves, want, renew) in rows {
            let mut reads = 0;
            let got = start(&marks, *skip, *generation, t0, moves, &mut reads).await;
            assert_eq!(&got, &(want.clone(), *renew), "skip {skip} at generation {generation}, {moves:?}");
            let read = *generation > 10 && *generation <= 10 + MOVES_MAX;
            assert_eq!(reads, u32::from(read), "skip {skip} at generation {generation}: moves read");
        }
        let half = t0 + KEEP / 2;
        assert!(start(&marks, 1000, 11, half, &left_second, &mut 0).await.1, "past half their life");
    }

    /// A walk that took 1 s: the next one of the same list waits 9 s after it ended.
    #[test]
    fn walks_rest_nine_times_as_long_as_they_took() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let marks = Marks::default();
        assert!(marks.claim("l", 1, t0));
        marks.taken("l", t0, s(1), walked(1, vec![c(1)]));
        // (seconds after the start of the walk, generation, claimed)
        let rows = [(2, 2, false), (9, 2, false), (10, 1, false), (10, 2, true)];
        for (later, generation, want) in rows {
            assert_eq!(marks.claim("l", generation, s(later)), want, "{later} s, generation {generation}");
        }
        assert!(marks.claim("other", 2, s(2)), "another list");
    }

    #[test]
    fn marks_are_taken_by_one_walk_of_the_order_of_an_unfiltered_list() {
        use crate::sql::list_sql;
        use crate::sql::tests::T;
        use tether_core::query::{parse_filter_param, ListQuery, USER_FIELDS};
        let q = |sort, filter: Option<&str>, skip| ListQuery {
            sort,
            filter: filter.map(|f| parse_filter_param(USER_FIELDS, f).unwrap()),
            limit: 7,
            skip,
        };
        const SEQ_WALK: &str = "WITH RECURSIVE m(n, seq) AS (SELECT 1, (SELECT seq FROM users ORDER BY seq LIMIT 1 \
            OFFSET 499) UNION ALL SELECT n + 1, (SELECT seq FROM users WHERE seq > m.seq ORDER BY seq LIMIT 1 OFFSET 499) \
            FROM m WHERE m.seq IS NOT NULL) SELECT m.seq FROM m JOIN users ON users.seq = m.seq ORDER BY m.n";
        const KEY_WALK: &str = "WITH RECURSIVE m(n, seq) AS (SELECT 1, (SELECT seq FROM users ORDER BY \
            f(username) A, seq LIMIT 1 OFFSET 499) UNION ALL SELECT n + 1, (SELECT seq FROM users WHERE k(f(username)) > \
            (SELECT k(f(username)) FROM users AS p WHERE p.seq = m.seq) ORDER BY f(username) A, seq LIMIT 1 OFFSET 499) \
            FROM m WHERE m.seq IS NOT NULL) SELECT m.seq, k(f(username)) FROM m JOIN users ON users.seq = m.seq ORDER BY m.n";
        // (list, may be marked at its skip, the walk)
        let rows: Vec<(ListQuery, bool, Option<&str>)> = vec![
            (q(None, None, 500), true, Some(SEQ_WALK)),
            (q(Some(("username", false)), None, 1234), true, Some(KEY_WALK)),
            (q(None, None, 499), false, Some(SEQ_WALK)), // not deep enough
            (q(None, Some("suspended:$eq:false"), 5000), false, None),
            (q(Some(("username", true)), None, 5000), false, None),
            (q(Some(("lastname", false)), None, 5000), false, None),
        ];
        for (lq, marked, walk) in rows {
            let l = list_sql::<T>("users", &lq);
            assert_eq!(may_mark(&l, lq.skip), marked, "{:?} {:?} at {}", lq.sort, lq.filter, lq.skip);
            assert_eq!(marks_sql("users", &l).as_deref(), walk, "{:?}", lq.sort);
        }
    }

    /// A page after a mark: the rows past it walked in the index alone, then the documents.
    #[test]
    fn a_page_after_a_mark_walks_the_rows_past_it_in_the_index() {
        use crate::sql::list_sql;
        use crate::sql::tests::T;
        use tether_core::query::ListQuery;
        let after = |key: Option<&str>| Cursor { seq: 41, key: key.map(str::to_string) };
        let sorted = ListQuery { sort: Some(("username", false)), filter: None, limit: 7, skip: 1234 };
        let inserted = ListQuery { sort: None, ..sorted.clone() };
        // (list, the mark, the statement and its parameters)
        type Row<'a> = (ListQuery, Cursor, Option<(&'a str, Vec<Bind>)>);
        let rows: Vec<Row> = vec![
            (
                sorted.clone(),
                after(Some("ann")),
                Some((
                    "SELECT d, seq, k(f(username)) FROM users WHERE seq IN (SELECT seq FROM users WHERE k(f(username)) > $1 \
                     ORDER BY f(username) A, seq LIMIT $2 OFFSET $3) ORDER BY f(username) A, seq",
                    vec![Bind::Text("ann".into()), Bind::Int(7), Bind::Int(234)],
                )),
            ),
            (
                inserted,
                after(None),
                Some((
                    "SELECT d, seq FROM users WHERE seq IN (SELECT seq FROM users WHERE seq > $1 ORDER BY seq \
                     LIMIT $2 OFFSET $3) ORDER BY seq",
                    vec![Bind::Int(41), Bind::Int(7), Bind::Int(234)],
                )),
            ),
            (sorted, after(None), None), // a mark without a key
        ];
        for (lq, mark, want) in rows {
            let l = list_sql::<T>("users", &lq);
            let got = page_sql::<T>("users", &l, 7, &mark, 234);
            assert_eq!(got, want.map(|(s, b)| (s.to_string(), b)), "{:?} after {mark:?}", lq.sort);
        }
    }
}
