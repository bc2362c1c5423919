//! The PostgreSQL backend, for several `tetherd` processes sharing one database: one
//! connection pool per process, every trait method one statement or one transaction, so
//! the database alone arbitrates between processes (unique keys, upserts, batches).
//! Documents are `jsonb`; see [`filter`] for how a query gives the SQLite backend's answers.
//!
//! # The change feed stays ordered across processes
//!
//! A sync agent reads its domain's feed with `read_feed(after = cursor)` and moves its
//! cursor to the last `seq` it applied, so a reader must never see an entry while an entry
//! of the same domain with a lower `seq` is still uncommitted: that entry would become
//! visible later, below the cursor, and be skipped for good. A sequence alone does not
//! prevent this — `nextval` is handed out at insert time, and two transactions commit in
//! whatever order they finish.
//!
//! So an append takes a transaction-scoped advisory lock on its domain before it inserts:
//! `pg_advisory_xact_lock(FEED_LOCK, hashtext(domain))`, then `INSERT … RETURNING seq`, then
//! `COMMIT`. The lock is held from before the `seq` is drawn until after the entry is
//! visible (PostgreSQL marks a transaction committed before it releases its locks), so per
//! domain the `seq`s are drawn and become visible in the same order, and what any reader's
//! snapshot shows of a domain is always a prefix of its feed. The sequence must not cache
//! values per session (`CACHE 1`, the default, set explicitly), or two sessions would draw
//! from different ranges. A rolled-back append leaves a gap, which readers never wait for.
//!
//! This costs one round trip per append and serialises appends to the same domain for the
//! length of one insert and commit, which the SQLite backend's single writer does anyway
//! (for every write); appends to different domains proceed in parallel (a hash collision
//! merely serialises two domains; `hashtext` runs on the server, so every process computes
//! the same key). The alternative — readers stopping below the oldest in-flight writer
//! (recording transaction ids and reading `pg_snapshot_xmin`) — keeps appends parallel but
//! puts that reasoning into every read, for appends that are small and short.
//!
//! Migrations run under another advisory lock, so processes starting together apply them
//! once.

pub(crate) mod filter;
mod schema;

use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgExecutor, Row};
use tether_core::query::ListQuery;

use crate::cursors::{Cursors, Start};
use crate::marks::{self, marks_sql, may_mark, Marks};
use crate::moves::{moves_of, MOVES_MAX};
use crate::remembered::Remembered;
use crate::sql::{self, bind_all, list_sql, lower, stmt, Keyset};
use crate::{Collection, Doc, Edge, NewFeedEntry, Result, StoreError};
use filter::Postgres;

/// The advisory lock class (first key) of feed appends; the second key is the domain's hash.
const FEED_LOCK: i32 = 0x7446_6564; // "tFed"
/// The advisory lock class of schema migrations.
const MIGRATION_LOCK: i32 = 0x744d_6967; // "tMig"

pub struct PgStore {
    pool: PgPool,
    /// Where recent pages ended (`cursors.rs`).
    cursors: Cursors,
    /// Inserts and deletes by this process, to fold the row counts' deltas now and then.
    writes: std::sync::atomic::AtomicU64,
    /// Where every 500th row of the users' unfiltered lists stands (`marks.rs`), while the
    /// users' write generation ([`USERS_WRITES`]) has not moved.
    marks: Arc<Marks>,
    /// Filtered users' totals, with the users' change count they were counted at.
    filtered: Remembered,
    /// Whether a prune of the users' moves runs (`counts_changed`).
    pruning: Arc<std::sync::atomic::AtomicBool>,
}

/// The users' write generation: the number of moves logged (`moves.rs`: users inserted or
/// deleted, two per change of a username) and of truncations, whichever process wrote them,
/// kept in `row_counts` under this name by triggers (schema steps 12 and 13).
/// Transactional: read in the same snapshot as a page or a walk, it is the generation of
/// exactly the rows they read.
const USERS_WRITES: &str = "users_writes";
/// The number of statements that wrote users, whichever process ran them (schema step 15),
/// kept in `row_counts` under this name: a filtered total counted in a snapshot holds while
/// it is the same (`remembered.rs`).
const USERS_CHANGED: &str = "users_changed";
/// Begins a transaction whose statements all read one snapshot.
const ONE_SNAPSHOT: &str = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// A read-only transaction whose statements all read one snapshot, the users' write
/// generation in it, and how many delta rows that was summed from (a page and a walk of
/// marks both begin so: `marks.rs`).
async fn users_snapshot(
    pool: &PgPool,
) -> std::result::Result<(sqlx::Transaction<'static, sqlx::Postgres>, u64, i64), sqlx::Error> {
    let mut tx = pool.begin().await?;
    tx.execute(ONE_SNAPSHOT).await?;
    let (g, deltas): (i64, i64) = sqlx::query_as(ROW_COUNT).bind(USERS_WRITES).fetch_one(&mut *tx).await?;
    Ok((tx, g as u64, deltas))
}

/// A table's unfiltered total, and how many delta rows it was summed from (schema step 11).
const ROW_COUNT: &str = "SELECT coalesce(sum(delta), 0)::bigint, count(*) FROM row_counts WHERE tbl = $1";
/// Folds every table's deltas into one row each. Two at once are safe: the second finds the
/// first's rows gone (it skips rows deleted under it) and writes nothing for them.
const FOLD_ROW_COUNTS: &str = "WITH gone AS (DELETE FROM row_counts RETURNING tbl, delta) \
                               INSERT INTO row_counts (tbl, delta) SELECT tbl, sum(delta) FROM gone GROUP BY tbl";
/// Folds the users' tally (schema step 14) into one row per combination of values, as
/// [`FOLD_ROW_COUNTS`] folds the row counts (and as safe twice at once).
const FOLD_TALLY: &str = "WITH gone AS (DELETE FROM users_tally RETURNING *) \
    INSERT INTO users_tally SELECT state, suspended, activated, account_locked, password_expired, \
    password_never_expires, externally_managed, sudo, ldap_binding_user, sum(n) FROM gone \
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9 HAVING sum(n) <> 0";
/// The moves of the users' lists since a snapshot (schema step 13), at most a number of
/// them: the rows of transactions that snapshot did not see, read in the page's snapshot
/// (so of transactions committed in between).
const MOVES_SINCE: &str = "SELECT seq, username, delta FROM users_moves \
                           WHERE xid >= pg_snapshot_xmin($1::pg_snapshot) AND NOT pg_visible_in_snapshot(xid, $1::pg_snapshot) \
                           LIMIT $2";
/// Drops the moves but the newest 2,048 or so by transaction id (a page that needed one of
/// them finds fewer moves than its generation says, and walks its offset).
const PRUNE_MOVES: &str =
    "DELETE FROM users_moves WHERE xid < (SELECT xid FROM users_moves ORDER BY xid DESC OFFSET 2048 LIMIT 1)";
/// Delta rows a total is summed from before they are folded.
const FOLD_PAST: i64 = 64;

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?…`, as libpq takes
    /// it) and applies pending migrations.
    ///
    /// An unreachable server or a refused login fails at once (the pool would retry for
    /// its acquire timeout): the migration runs on one connection made first.
    pub async fn connect(url: &str) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::Open(e.to_string()))?;
        let mut conn = PgConnection::connect_with(&opts).await.map_err(|e| StoreError::Open(e.to_string()))?;
        migrate(&mut conn).await?;
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect_lazy_with(opts);
        Ok(PgStore {
            pool,
            cursors: Cursors::default(),
            writes: Default::default(),
            marks: Default::default(),
            filtered: Default::default(),
            pruning: Default::default(),
        })
    }
}

/// Applies the pending migrations, again after a deadlock: a step that adds triggers locks
/// tables one after another, and a tetherd of the previous version still writing may hold
/// them in another order (PostgreSQL then aborts one of the two).
async fn migrate(conn: &mut PgConnection) -> Result<()> {
    let mut attempt = 0;
    loop {
        match migrate_to(conn, schema::MIGRATIONS.len()).await {
            Err(StoreError::Db(sqlx::Error::Database(e))) if e.code().as_deref() == Some("40P01") && attempt < 5 => {
                attempt += 1;
                tracing::info!("a schema migration met a deadlock with a running writer: trying again");
            }
            r => return r,
        }
    }
}

/// Applies the migrations up to step `upto`, in one transaction under an advisory lock.
async fn migrate_to(conn: &mut PgConnection, upto: usize) -> Result<()> {
    let mut tx = conn.begin().await?;
    // Each statement sees what was committed before it (a step that counts rows after it
    // created its triggers counts them all), whatever the database's default isolation.
    tx.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED").await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)").bind(MIGRATION_LOCK).execute(&mut *tx).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('tether_schema') IS NOT NULL").fetch_one(&mut *tx).await?;
    let version: i32 = if exists {
        sqlx::query_scalar("SELECT version FROM tether_schema").fetch_one(&mut *tx).await?
    } else {
        tx.execute("CREATE TABLE tether_schema (version INTEGER NOT NULL); INSERT INTO tether_schema VALUES (0);")
            .await?;
        0
    };
    for (i, step) in schema::MIGRATIONS.iter().enumerate().take(upto).skip(usize::try_from(version).unwrap_or(0)) {
        tx.execute(*step).await?;
        sqlx::query("UPDATE tether_schema SET version = $1").bind(i as i32 + 1).execute(&mut *tx).await?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    tx.commit().await?;
    Ok(())
}

fn conflict(c: Collection, e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return sql::conflict(c, db.constraint().unwrap_or_default());
        }
    }
    StoreError::Db(e)
}

store_statements!(
    PgExecutor,
    insert = "INSERT INTO {} (id, key1, key2, doc) VALUES ($1, $2, $3, $4::jsonb)",
    update = "UPDATE {} SET key1 = $1, key2 = $2, doc = $3::jsonb{} WHERE id = $4{}",
    version = "$5",
    feed = "INSERT INTO feed (domain_id, kind, object_id, body, secret, created) VALUES ($1, $2, $3, $4::jsonb, $5, $6) RETURNING seq"
);

impl PgStore {
    /// Rows are about to be inserted or deleted: nothing to forget (the counts are kept by
    /// triggers, in the write's own transaction).
    fn rows_changing(&self) {}

    /// After rows were inserted or deleted (or users updated, which renames log moves):
    /// every 64th time, the row counts' deltas are folded, so they stay a few rows even for a
    /// table nobody lists, and the users' moves are pruned, in the background (a prune after
    /// bulk writes may delete thousands of rows).
    async fn counts_changed(&self) {
        if self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 64 == 63 {
            self.fold_row_counts().await;
            // One prune at a time: overlapping ones would only wait on each other's rows.
            if self.pruning.swap(true, std::sync::atomic::Ordering::AcqRel) {
                return;
            }
            let (pool, pruning) = (self.pool.clone(), self.pruning.clone());
            tokio::spawn(async move {
                if let Err(e) = sqlx::query(PRUNE_MOVES).execute(&pool).await {
                    tracing::warn!(error = %e, "pruning the users' moves");
                }
                pruning.store(false, std::sync::atomic::Ordering::Release);
            });
        }
    }

    async fn fold_row_counts(&self) {
        for (fold, what) in [(FOLD_ROW_COUNTS, "the row counts"), (FOLD_TALLY, "the users' tally")] {
            if let Err(e) = sqlx::query(fold).execute(&self.pool).await {
                tracing::warn!(error = %e, "folding {what}");
            }
        }
    }

    /// A list's total: the kept row count when it is unfiltered; a filtered users' total
    /// remembered at the users' change count read in its snapshot (`remembered.rs`).
    async fn total(&self, c: Collection, q: &ListQuery, l: &sql::ListSql) -> Result<i64> {
        let key = Remembered::key(l, q.filter.is_some()).filter(|_| c == Collection::Users);
        if let Some(key) = key {
            let mut tx = self.pool.begin().await?;
            tx.execute(ONE_SNAPSHOT).await?;
            let (changed, _): (i64, i64) = sqlx::query_as(ROW_COUNT).bind(USERS_CHANGED).fetch_one(&mut *tx).await?;
            let changed = changed as u64;
            if let Some(n) = self.filtered.get(&key, changed) {
                tx.commit().await?;
                return Ok(n);
            }
            let n: i64 = bind_all(sqlx::query(&l.count), &l.binds[..l.count_binds]).fetch_one(&mut *tx).await?.get(0);
            tx.commit().await?;
            self.filtered.put(key, changed, n);
            return Ok(n);
        }
        if q.filter.is_some() {
            return Ok(bind_all(sqlx::query(&l.count), &l.binds[..l.count_binds]).fetch_one(&self.pool).await?.get(0));
        }
        let (n, rows): (i64, i64) = sqlx::query_as(ROW_COUNT).bind(c.table()).fetch_one(&self.pool).await?;
        if rows > FOLD_PAST {
            self.fold_row_counts().await;
        }
        Ok(n)
    }

    /// Other processes write the database too: no version (see `Store::directory_version`).
    fn writing(&self) -> crate::Writing<'_> {
        crate::Writing::start(None)
    }
}

store_impl!(PgStore, db = Postgres, json_cast = "::jsonb", text_cast = "::text", read = pool, write = pool, {
    async fn insert(&self, c: Collection, doc: &Doc) -> Result<()> {
        insert_doc(&self.pool, c, doc).await?;
        self.counts_changed().await;
        Ok(())
    }

    async fn replace(&self, c: Collection, doc: &Doc) -> Result<bool> {
        let replaced = replace_doc(&self.pool, c, doc).await?;
        if c == Collection::Users {
            // A rename logs moves: a store whose users are only ever updated prunes them too.
            self.counts_changed().await;
        }
        Ok(replaced)
    }

    async fn list(&self, c: Collection, q: &ListQuery) -> Result<(u64, Vec<String>)> {
        let l = list_sql::<Postgres>(c.table(), q);
        let total = self.total(c, q, &l).await?;
        if sql::nothing_to_read(total, q) {
            return Ok((total as u64, Vec::new()));
        }
        let now = std::time::Instant::now();
        if c != Collection::Users || !may_mark(&l, q.skip) {
            let (text, binds, _) = self.cursors.page::<Postgres>(c.table(), &l, q, None, now);
            let rows = bind_all(sqlx::query(&text), &binds).fetch_all(&self.pool).await?;
            self.cursors.served(&l, q.skip, &rows, now);
            return Ok((total as u64, rows.iter().map(|r| r.get::<String, _>(0)).collect()));
        }
        // The generation, the moves since the marks and the page in one snapshot: marks placed
        // so are marks of the rows the page reads.
        let (mut tx, g, deltas) = users_snapshot(&self.pool).await?;
        let keyed = matches!(l.keyset, Keyset::Key(_));
        let moves = async |h: &marks::Held| {
            let Some(snapshot) = &h.snapshot else { return Ok(Vec::new()) };
            let rows = sqlx::query(MOVES_SINCE)
                .bind(snapshot)
                .bind(i64::try_from(MOVES_MAX + 1).unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await?;
            moves_of(&rows)
        };
        let (mark, renew) = self.marks.start(&self.cursors, &l, q.skip, g, now, moves).await?;
        let (text, binds, start) = self.cursors.page::<Postgres>(c.table(), &l, q, mark, now);
        let rows = bind_all(sqlx::query(&text), &binds).fetch_all(&mut *tx).await?;
        tx.commit().await?;
        if deltas > FOLD_PAST {
            self.fold_row_counts().await;
        }
        self.cursors.served(&l, q.skip, &rows, now);
        if start == Start::Offset || renew {
            if let Some(walk) = marks_sql(c.table(), &l) {
                let pool = self.pool.clone();
                marks::take(&self.marks, &l.signature, g, now, async move {
                    let (mut tx, generation, _) = users_snapshot(&pool).await.map_err(marks::failed).ok()?;
                    let rows = sqlx::query(&walk).fetch_all(&mut *tx).await.map_err(marks::failed).ok()?;
                    let snapshot: String = sqlx::query_scalar("SELECT pg_current_snapshot()::text")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(marks::failed)
                        .ok()?;
                    tx.commit().await.map_err(marks::failed).ok()?;
                    let cursors = marks::marks_of(keyed, &rows).map_err(marks::failed).ok()?;
                    Some(marks::Walked { generation, snapshot: Some(snapshot), cursors })
                });
            }
        }
        Ok((total as u64, rows.iter().map(|r| r.get::<String, _>(0)).collect()))
    }

    fn page_starts(&self) -> crate::PageStarts {
        self.cursors.starts()
    }

    async fn append_feed(&self, e: NewFeedEntry<'_>) -> Result<i64> {
        // The lock orders this domain's appends by seq, draw to commit (see the module doc).
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(FEED_LOCK)
            .bind(e.domain)
            .execute(&mut *tx)
            .await?;
        let seq = insert_feed(&mut *tx, e).await?;
        tx.commit().await?;
        Ok(seq)
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written before the row counts existed (schema step 11) gets its rows
    /// counted by the step, and every collection table gets the counting triggers.
    #[tokio::test]
    async fn the_row_count_step_counts_the_rows_already_there() {
        let db = tether_testkit::postgres_db().await;
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        migrate_to(&mut conn, 10).await.unwrap();
        for i in 0..3 {
            sqlx::query("INSERT INTO users (id, key1, doc) VALUES ($1, $1, '{}')")
                .bind(format!("u{i}"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO groups (id, doc) VALUES ('g', '{}')").execute(&mut conn).await.unwrap();
        migrate(&mut conn).await.unwrap();
        let store = PgStore::connect(&db.url).await.unwrap();
        let total = |c| {
            let store = &store;
            async move { crate::Store::list(store, c, &ListQuery::default()).await.unwrap().0 }
        };
        assert_eq!((total(Collection::Users).await, total(Collection::Groups).await), (3, 1));
        let counted: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT event_object_table::text FROM information_schema.triggers \
             WHERE trigger_name LIKE '%\\_rows\\_inserted' OR trigger_name LIKE '%\\_rows\\_deleted' ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut tables: Vec<String> = Collection::ALL.iter().map(|c| c.table().to_string()).collect();
        tables.sort();
        assert_eq!(counted, tables);
        // And no other table holds documents without being counted.
        let with_docs: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.columns WHERE column_name = 'doc' \
             AND table_schema = current_schema() ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(with_docs, tables);
    }

    /// A database migrated to `step` and given one user per value of `field` (documents
    /// holding that field alone), then migrated to the last step and opened.
    async fn users_before_step(
        step: usize,
        field: &str,
        values: &[&str],
    ) -> (tether_testkit::PgDatabase, PgConnection, PgStore) {
        let db = tether_testkit::postgres_db().await;
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        migrate_to(&mut conn, step).await.unwrap();
        for (i, v) in values.iter().enumerate() {
            sqlx::query("INSERT INTO users (id, key1, doc) VALUES ($1, $1, jsonb_build_object($2::text, $3::text))")
                .bind(format!("u{i}"))
                .bind(field)
                .bind(v)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        migrate(&mut conn).await.unwrap();
        let store = PgStore::connect(&db.url).await.unwrap();
        (db, conn, store)
    }

    /// A database written before the users' tally existed (schema step 14) gets its users
    /// tallied by the step.
    #[tokio::test]
    async fn the_tally_step_tallies_the_users_already_there() {
        let (_db, mut conn, store) = users_before_step(13, "state", &["ACTIVATED", "SUSPENDED", "ACTIVATED"]).await;
        let filter = tether_core::query::parse_filter_param(tether_core::query::USER_FIELDS, "state:$eq:ACTIVATED");
        let q = ListQuery { filter: Some(filter.unwrap()), ..ListQuery::default() };
        let tallied: i64 = sqlx::query_scalar("SELECT sum(n)::bigint FROM users_tally WHERE state = 'ACTIVATED'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!((crate::Store::list(&store, Collection::Users, &q).await.unwrap().0, tallied), (2, 2));
    }

    /// The stored columns of the indexed fields (schema step 16) are filled for the users
    /// already there, and lists filtered by them find those users.
    #[tokio::test]
    async fn the_indexed_fields_step_fills_the_columns_of_the_users_already_there() {
        let (_db, mut conn, store) = users_before_step(15, "department", &["Sales", "IT", "Sales"]).await;
        let filter = tether_core::query::parse_filter_param(tether_core::query::USER_FIELDS, "department:$eq:Sales");
        let q = ListQuery { filter: Some(filter.unwrap()), ..ListQuery::default() };
        let (total, rows) = crate::Store::list(&store, Collection::Users, &q).await.unwrap();
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE department = 'Sales'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!((total, rows.len(), stored), (2, 2, 2));
    }
}
