//! The embedded SQLite backend: one file in the data directory, WAL mode, a single writer
//! connection (SQLite serialises writers anyway; one connection avoids busy errors) and a
//! small pool of readers.

pub(crate) mod filter;
mod schema;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, Row, SqliteExecutor};
use tether_core::query::ListQuery;

use crate::cursors::{Cursors, Start};
use crate::marks::{self, marks_sql, may_mark, Marks};
use crate::moves::{moves_of, MOVES_MAX};
use crate::remembered::Remembered;
use crate::sql::{self, bind_all, list_sql, lower, stmt, Keyset};
use crate::{Collection, Doc, Edge, NewFeedEntry, Result, StoreError};
use filter::Sqlite;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Unfiltered totals by table (a count over a million rows takes ~20 ms), forgotten when
    /// an insert or delete begins, and kept only from a count read while no write was under
    /// way. Only this process writes an embedded store.
    totals: std::sync::Mutex<Totals>,
    /// `Store::directory_version`: moved by every write to the directory.
    version: Arc<crate::Version>,
    /// Filtered totals (a count of the filter over every document: ~1 s at 1,000,000 users),
    /// by the count's statement and parameters, with the directory version they were counted
    /// at while no write was under way: used while the version is the same, so a reader
    /// paging through a filtered list counts it once, not at every page.
    filtered: Remembered,
    /// Where recent pages ended (`cursors.rs`).
    cursors: Cursors,
    /// Where every 500th row of the users' unfiltered lists stands (`marks.rs`), while the
    /// users' write generation (`users_writes`) has not moved.
    marks: Arc<Marks>,
}

#[derive(Default)]
struct Totals {
    /// Bumped by every write that may change a total: a count read before a bump is stale.
    generation: u64,
    by_table: std::collections::HashMap<&'static str, i64>,
}

impl SqliteStore {
    /// Rows are about to be inserted or deleted: the cached totals are stale. Forgotten before
    /// the write, so a write cancelled mid-way (which may still commit) forgets them too.
    fn rows_changing(&self) {
        self.forget_totals();
    }

    /// After rows were inserted or deleted: nothing left to do (`rows_changing`).
    async fn counts_changed(&self) {}

    fn writing(&self) -> crate::Writing<'_> {
        crate::Writing::start(Some((&self.version, &self.writer)))
    }

    fn forget_totals(&self) {
        let mut t = self.totals.lock().expect("not poisoned");
        t.generation += 1;
        t.by_table.clear();
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `DIR/tether.db` and applies pending migrations.
    pub async fn open(dir: &Path) -> Result<Self> {
        crate::private_dir(dir).map_err(StoreError::Open)?;
        let path = dir.join("tether.db");
        crate::private_file(&path).map_err(StoreError::Open)?;
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| StoreError::Open(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10))
            .foreign_keys(true)
            .with_regexp();
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(opts.clone()).await?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(opts.read_only(true)).await?;
        Ok(SqliteStore {
            writer,
            reader,
            totals: Default::default(),
            filtered: Default::default(),
            version: Default::default(),
            cursors: Default::default(),
            marks: Default::default(),
        })
    }
}

/// A read transaction (its statements all read one WAL snapshot) and the users' write
/// generation in it (schema step 15; a page and a walk of marks both begin so: `marks.rs`).
async fn users_snapshot(
    reader: &SqlitePool,
) -> std::result::Result<(sqlx::Transaction<'static, sqlx::Sqlite>, u64), sqlx::Error> {
    let mut tx = reader.begin().await?;
    let g: i64 = sqlx::query_scalar("SELECT n FROM users_writes").fetch_one(&mut *tx).await?;
    Ok((tx, g as u64))
}

/// The moves of the users' lists since a generation (schema step 16), at most a number of
/// them: the rows numbered past it, in the reader's snapshot.
const MOVES_SINCE: &str = "SELECT seq, username, delta FROM users_moves WHERE n > ? ORDER BY n LIMIT ?";

async fn migrate(pool: &SqlitePool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *conn).await?;
    for (i, step) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        tx.execute(*step).await?;
        tx.execute(format!("PRAGMA user_version = {}", i + 1).as_str()).await?;
        tx.commit().await?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    Ok(())
}

fn conflict(c: Collection, e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return sql::conflict(c, db.message().trim_end_matches('\''));
        }
    }
    StoreError::Db(e)
}

store_statements!(
    SqliteExecutor,
    insert = "INSERT INTO {} (id, key1, key2, doc) VALUES (?, ?, ?, ?)",
    update = "UPDATE {} SET key1 = ?, key2 = ?, doc = ?{} WHERE id = ?{}",
    version = "?",
    feed =
        "INSERT INTO feed (domain_id, kind, object_id, body, secret, created) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq"
);

store_impl!(SqliteStore, db = Sqlite, json_cast = "", text_cast = "", read = reader, write = writer, {
    async fn insert(&self, c: Collection, doc: &Doc) -> Result<()> {
        self.writing()
            .run(async move {
                self.rows_changing();
                insert_doc(&self.writer, c, doc).await
            })
            .await
    }

    async fn replace(&self, c: Collection, doc: &Doc) -> Result<bool> {
        self.writing().run(async move { replace_doc(&self.writer, c, doc).await }).await
    }

    /// Only this process writes an embedded store.
    fn directory_version(&self) -> Option<u64> {
        Some(self.version.get())
    }

    async fn list(&self, c: Collection, q: &ListQuery) -> Result<(u64, Vec<String>)> {
        let l = list_sql::<Sqlite>(c.table(), q);
        let cached = {
            let t = self.totals.lock().expect("not poisoned");
            (q.filter.is_none().then(|| t.by_table.get(c.table()).copied()).flatten(), t.generation)
        };
        let quiet = self.version.quiet();
        // A filtered total is kept under its count's statement and parameters (bounded).
        let filtered = Remembered::key(&l, q.filter.is_some());
        let remembered = filtered.as_ref().zip(quiet).and_then(|(k, at)| self.filtered.get(k, at));
        let total: i64 = match (cached, remembered) {
            ((Some(n), _), _) | (_, Some(n)) => n,
            ((None, generation), None) => {
                let n: i64 =
                    bind_all(sqlx::query(&l.count), &l.binds[..l.count_binds]).fetch_one(&self.reader).await?.get(0);
                let mut t = self.totals.lock().expect("not poisoned");
                // Not kept if a write was under way at any time of the count: an insert begun
                // before it may have committed after the rows were counted.
                if q.filter.is_none() && t.generation == generation && quiet.is_some() && self.version.quiet() == quiet
                {
                    t.by_table.insert(c.table(), n);
                }
                drop(t);
                // Likewise a filtered one: kept only if no write was under way at any time of
                // the count (every write moves the version, an update too: it may move a
                // document into or out of the filter).
                if let (Some(k), Some(at)) = (filtered, quiet) {
                    if self.version.quiet() == quiet {
                        self.filtered.put(k, at, n);
                    }
                }
                n
            }
        };
        if sql::nothing_to_read(total, q) {
            return Ok((total as u64, Vec::new()));
        }
        let now = std::time::Instant::now();
        if c != Collection::Users || !may_mark(&l, q.skip) {
            let (text, binds, _) = self.cursors.page::<Sqlite>(c.table(), &l, q, None, now);
            let rows = bind_all(sqlx::query(&text), &binds).fetch_all(&self.reader).await?;
            self.cursors.served(&l, q.skip, &rows, now);
            return Ok((total as u64, rows.iter().map(|r| r.get::<String, _>(0)).collect()));
        }
        // The generation, the moves since the marks and the page in one read transaction (one
        // WAL snapshot): marks placed so are marks of the rows the page reads.
        let (mut tx, g) = users_snapshot(&self.reader).await?;
        let keyed = matches!(l.keyset, Keyset::Key(_));
        let moves = async |h: &marks::Held| {
            let rows = sqlx::query(MOVES_SINCE)
                .bind(i64::try_from(h.generation).unwrap_or(i64::MAX))
                .bind(i64::try_from(MOVES_MAX + 1).unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await?;
            moves_of(&rows)
        };
        let (mark, renew) = self.marks.start(&self.cursors, &l, q.skip, g, now, moves).await?;
        let (text, binds, start) = self.cursors.page::<Sqlite>(c.table(), &l, q, mark, now);
        let rows = bind_all(sqlx::query(&text), &binds).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        self.cursors.served(&l, q.skip, &rows, now);
        if start == Start::Offset || renew {
            if let Some(walk) = marks_sql(c.table(), &l) {
                let reader = self.reader.clone();
                marks::take(&self.marks, &l.signature, g, now, async move {
                    let (mut tx, generation) = users_snapshot(&reader).await.map_err(marks::failed).ok()?;
                    let rows = sqlx::query(&walk).fetch_all(&mut *tx).await.map_err(marks::failed).ok()?;
                    tx.commit().await.map_err(marks::failed).ok()?;
                    let cursors = marks::marks_of(keyed, &rows).map_err(marks::failed).ok()?;
                    Some(marks::Walked { generation, snapshot: None, cursors })
                });
            }
        }
        Ok((total as u64, rows.iter().map(|r| r.get::<String, _>(0)).collect()))
    }

    fn page_starts(&self) -> crate::PageStarts {
        self.cursors.starts()
    }

    async fn append_feed(&self, e: NewFeedEntry<'_>) -> Result<i64> {
        insert_feed(&self.writer, e).await
    }
});
