//! Where a page ended, so the next page starts there instead of walking to its offset.
//!
//! Admins' scripts (the JumpCloud PowerShell module and SDKs among them) read a whole list
//! page by page, asking each time for `skip` = the previous page's `skip` + its size. With
//! `OFFSET`, every page walks the sort index from the start up to its offset: reading a
//! million users by 100 walks ~5·10⁹ index entries, and a page past half a million takes
//! tens of milliseconds (docs/performance.md). So each store remembers, for a while, where a
//! page ended — its last row's `seq`, and its sort key when sorted by username — under the
//! list's filter and order; a page asked for at that `skip` then starts right after that row
//! (`key >= k AND (key > k OR seq > s)`, which the index finds at once).
//!
//! When nothing was written in between, that is exactly the `OFFSET` page (the order is
//! total: `seq` breaks every tie). When users were created or deleted before that point
//! in between, the page continues after the row the last one ended on — where `OFFSET`
//! would repeat a row, or skip one for good, to a reader paging through (decided, see
//! docs/decisions.md). A position is kept [`KEEP`] only, per process (with several
//! `tetherd`, a page asked of another process walks its offset), for at most [`MAX`] lists.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tether_core::query::ListQuery;

use crate::sql::{doc_select, Bind, Dialect, Keyset, ListSql};

/// How long a page's end is remembered: a reader paging through asks for the next page
/// within moments.
pub(crate) const KEEP: Duration = Duration::from_secs(30);
/// Positions remembered at most (older ones are dropped first).
pub(crate) const MAX: usize = 1024;
/// Lists whose filter (its SQL and parameters) is longer than this are not remembered, so
/// the memory stays bounded (~1,024 × 2 KiB) whatever the filters.
pub(crate) const SIGNATURE_MAX: usize = 2048;

/// The last row of a page: its `seq`, and its sort key when the list is sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub seq: i64,
    pub key: Option<String>,
}

/// The pages' ends, by list (filter and order) and the `skip` just after them.
#[derive(Default)]
pub(crate) struct Cursors {
    ends: Mutex<HashMap<(String, usize), (Instant, Cursor)>>,
    starts: StartCounts,
}

impl Cursors {
    /// Where the page at `skip` of the list `signature` starts after, when a page that
    /// ended there was served within [`KEEP`].
    pub(crate) fn at(&self, signature: &str, skip: usize, now: Instant) -> Option<Cursor> {
        if skip == 0 {
            return None;
        }
        let ends = self.ends.lock().expect("not poisoned");
        ends.get(&(signature.to_string(), skip))
            .filter(|(at, _)| now.duration_since(*at) < KEEP)
            .map(|(_, c)| c.clone())
    }

    /// A page of the list `signature` ended at row `last`, `next` rows into the list.
    pub(crate) fn ended(&self, signature: &str, next: usize, last: Cursor, now: Instant) {
        if signature.len() > SIGNATURE_MAX {
            return;
        }
        let mut ends = self.ends.lock().expect("not poisoned");
        if ends.len() >= MAX {
            ends.retain(|_, (at, _)| now.duration_since(*at) < KEEP);
            if ends.len() >= MAX {
                // Still full of fresh ones: the oldest half goes.
                let mut times: Vec<Instant> = ends.values().map(|(at, _)| *at).collect();
                times.sort_unstable();
                let cut = times[times.len() / 2];
                ends.retain(|_, (at, _)| *at > cut);
            }
        }
        ends.insert((signature.to_string(), next), (now, last));
    }

    /// The statement (and its parameters) of the page `q` of the list `l` of `table`, and
    /// where it starts: from where an earlier page ended when one ended at `q.skip`, else
    /// after `mark` (a row that many rows before `q.skip`: `marks.rs`) when given, else by
    /// its offset. Counted in [`Cursors::starts`].
    pub(crate) fn page<D: Dialect>(
        &self,
        table: &str,
        l: &ListSql,
        q: &ListQuery,
        mark: Option<crate::marks::After>,
        now: Instant,
    ) -> (String, Vec<Bind>, Start) {
        let page =
            match self.at(&l.signature, q.skip, now).and_then(|after| continue_sql::<D>(table, l, q.limit, &after)) {
                Some((sql, binds)) => (sql, binds, Start::Continued),
                None => match mark.and_then(|a| {
                    let start = if a.moved { Start::Moved } else { Start::Marked };
                    crate::marks::page_sql::<D>(table, l, q.limit, &a.mark, a.past)
                        .map(|(sql, binds)| (sql, binds, start))
                }) {
                    Some(page) => page,
                    None => (l.select.clone(), l.binds.clone(), Start::Offset),
                },
            };
        self.starts.count(page.2);
        page
    }

    /// How many pages started each way since the store opened.
    pub(crate) fn starts(&self) -> PageStarts {
        self.starts.get()
    }

    /// The page `rows` of `l` was served at `skip`: where its last row is, read from the
    /// columns after the document ([`Keyset`]), is remembered.
    pub(crate) fn served<R>(&self, l: &ListSql, skip: usize, rows: &[R], now: Instant)
    where
        R: sqlx::Row,
        usize: sqlx::ColumnIndex<R>,
        for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        let Some(last) = rows.last() else { return };
        let key = match l.keyset {
            Keyset::None => return,
            Keyset::Seq => None,
            // A row without the sort key (sorted first) is not found again by `>`.
            Keyset::Key(_) => match last.get::<Option<String>, _>(2) {
                Some(k) => Some(k),
                None => return,
            },
        };
        self.ended(&l.signature, skip.saturating_add(rows.len()), Cursor { seq: last.get(1), key }, now);
    }
}

/// The window of `l` that starts after the row `after` (its `seq`, and its sort key when the
/// list is sorted) instead of at its offset: what the index finds at once, where an offset
/// walks every row before it.
pub(crate) fn continue_sql<D: Dialect>(
    table: &str,
    l: &ListSql,
    limit: usize,
    after: &Cursor,
) -> Option<(String, Vec<Bind>)> {
    let mut binds = l.binds[..l.count_binds].to_vec();
    let past = match (&l.keyset, &after.key) {
        (Keyset::Seq, _) => {
            binds.push(Bind::Int(after.seq));
            format!("seq > {}", D::param(binds.len()))
        }
        (Keyset::Key(k), Some(key)) => {
            // Not the row value `(key, seq) > (…)`: SQLite walks its index from the start for
            // that (it does not start a range on an expression index from a row value). Each
            // parameter once: sqlx's SQLite driver numbers them by their place.
            binds.extend([Bind::Text(key.clone()), Bind::Text(key.clone()), Bind::Int(after.seq)]);
            let n = binds.len();
            format!("{k} >= {} AND ({k} > {} OR seq > {})", D::param(n - 2), D::param(n - 1), D::param(n))
        }
        _ => return None,
    };
    binds.push(Bind::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    let cond = match l.cond.strip_prefix(" WHERE ") {
        Some(filter) => format!(" WHERE ({filter}) AND {past}"),
        None => format!(" WHERE {past}"),
    };
    let select = format!(
        "SELECT {}{} FROM {table}{cond} ORDER BY {} LIMIT {}",
        doc_select::<D>(table),
        l.keyset.columns(),
        l.order,
        D::param(binds.len())
    );
    Some((select, binds))
}

/// Where a page started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// Walked to its offset.
    Offset,
    /// Right after the last row of the page before it (a reader paging through).
    Continued,
    /// After the mark before its offset (`marks.rs`).
    Marked,
    /// After the mark before its offset, placed by the moves since the marks (`moves.rs`).
    Moved,
}

/// How many pages started each way (`Store::page_starts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageStarts {
    pub offset: u64,
    pub continued: u64,
    pub marked: u64,
    /// After a mark placed by the moves since it was taken (after writes; not in `marked`).
    pub moved: u64,
}

#[derive(Default)]
struct StartCounts([std::sync::atomic::AtomicU64; 4]);

impl StartCounts {
    fn count(&self, s: Start) {
        self.0[s as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn get(&self) -> PageStarts {
        let n = |s: Start| self.0[s as usize].load(std::sync::atomic::Ordering::Relaxed);
        PageStarts {
            offset: n(Start::Offset),
            continued: n(Start::Continued),
            marked: n(Start::Marked),
            moved: n(Start::Moved),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(seq: i64) -> Cursor {
        Cursor { seq, key: Some(format!("u{seq}")) }
    }

    #[test]
    fn a_page_end_is_found_under_its_list_and_skip_for_a_while() {
        let t0 = Instant::now();
        let cursors = Cursors::default();
        cursors.ended("users seq", 100, c(7), t0);
        // (list, skip, seconds later, found)
        let rows: &[(&str, usize, u64, Option<Cursor>)] = &[
            ("users seq", 100, 0, Some(c(7))),
            ("users seq", 100, KEEP.as_secs() - 1, Some(c(7))),
            ("users seq", 100, KEEP.as_secs(), None), // forgotten
            ("users seq", 200, 0, None),              // another skip
            ("users sorted", 100, 0, None),           // another list
            ("users seq", 0, 0, None),                // the first page has no start
        ];
        let long = "x".repeat(SIGNATURE_MAX + 1);
        cursors.ended(&long, 100, c(8), t0);
        for (list, skip, later, want) in rows {
            let got = cursors.at(list, *skip, t0 + Duration::from_secs(*later));
            assert_eq!(&got, want, "{list} at {skip}, {later} s later");
        }
        assert_eq!(cursors.at(&long, 100, t0), None, "a list with a filter too long to remember");
    }

    #[test]
    fn a_full_memory_drops_the_stale_then_the_oldest() {
        let t0 = Instant::now();
        let cursors = Cursors::default();
        for i in 0..MAX {
            cursors.ended("l", i + 1, c(i as i64), t0 + Duration::from_millis(i as u64));
        }
        let later = t0 + Duration::from_millis(MAX as u64);
        cursors.ended("l", MAX + 1, c(-1), later);
        let kept = cursors.ends.lock().unwrap().len();
        assert!(kept <= MAX / 2 + 1, "the oldest half went: {kept}");
        assert_eq!(cursors.at("l", MAX + 1, later), Some(c(-1)));
        assert_eq!(cursors.at("l", MAX, later), Some(c(MAX as i64 - 1)), "the newest stay");
        assert_eq!(cursors.at("l", 1, later), None, "the oldest went");
    }

    #[test]
    fn a_full_memory_of_stale_ends_keeps_only_the_new_one() {
        let t0 = Instant::now();
        let cursors = Cursors::default();
        for i in 0..MAX {
            cursors.ended("l", i + 1, c(i as i64), t0);
        }
        cursors.ended("m", 5, c(5), t0 + KEEP);
        assert_eq!(cursors.ends.lock().unwrap().len(), 1);
        assert_eq!(cursors.at("m", 5, t0 + KEEP), Some(c(5)));
    }

    /// A page continued after an earlier page's last row: its filter's parameters, then the
    /// row's, then the limit; no offset. Orders a row cannot be found again in have none.
    #[test]
    fn a_page_continues_after_the_last_row_in_its_order() {
        use crate::sql::tests::T;
        use crate::sql::{list_sql, Bind};
        use tether_core::query::{parse_filter_param, Filter, USER_FIELDS};
        let active = || Some(parse_filter_param(USER_FIELDS, "suspended:$eq:false").unwrap());
        let after = |key: Option<&str>| Cursor { seq: 41, key: key.map(str::to_string) };
        // (sort, filter, the last row, the statement and parameters: None when not continued)
        type Row<'a> = (Option<(&'static str, bool)>, Option<Filter>, Cursor, Option<(&'a str, Vec<Bind>)>);
        let rows: Vec<Row> = vec![
            (
                None,
                None,
                after(None),
                Some((
                    "SELECT d, seq FROM users WHERE seq > $1 ORDER BY seq LIMIT $2",
                    vec![Bind::Int(41), Bind::Int(7)],
                )),
            ),
            (
                Some(("username", false)),
                active(),
                after(Some("ann")),
                Some((
                    "SELECT d, seq, k(f(username)) FROM users WHERE (f(suspended) Eq $1) AND k(f(username)) >= $2 \
                     AND (k(f(username)) > $3 OR seq > $4) ORDER BY f(username) A, seq LIMIT $5",
                    vec![Bind::Int(0), Bind::Text("ann".into()), Bind::Text("ann".into()), Bind::Int(41), Bind::Int(7)],
                )),
            ),
            (Some(("username", false)), None, after(None), None), // a row without a sort key
            (Some(("username", true)), None, after(Some("ann")), None), // descending: by offset
            (Some(("lastname", false)), None, after(Some("ann")), None), // no index: by offset
        ];
        for (sort, filter, last, want) in rows {
            let q = ListQuery { filter, sort, limit: 7, skip: 70 };
            let l = list_sql::<T>("users", &q);
            let got = continue_sql::<T>("users", &l, q.limit, &last);
            assert_eq!(got, want.map(|(s, b)| (s.to_string(), b)), "{sort:?} after {last:?}");
        }
    }
}
