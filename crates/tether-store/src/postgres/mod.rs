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

mod filter;
mod schema;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgExecutor, Row};
use tether_core::query::ListQuery;

use crate::sql::{self, bind_all, list_sql, lower, stmt};
use crate::{Collection, Doc, Edge, NewFeedEntry, Result, StoreError};
use filter::Postgres;

/// The advisory lock class (first key) of feed appends; the second key is the domain's hash.
const FEED_LOCK: i32 = 0x7446_6564; // "tFed"
/// The advisory lock class of schema migrations.
const MIGRATION_LOCK: i32 = 0x744d_6967; // "tMig"

pub struct PgStore {
    pool: PgPool,
}

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
        Ok(PgStore { pool })
    }
}

async fn migrate(conn: &mut PgConnection) -> Result<()> {
    let mut tx = conn.begin().await?;
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
    for (i, step) in schema::MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
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
    /// After rows were inserted or deleted (nothing is cached here).
    fn counts_changed(&self) {}

    /// Other processes write the database too: no version (see `Store::directory_version`).
    fn writing(&self) -> crate::Writing<'_> {
        crate::Writing(None)
    }
}

store_impl!(PgStore, db = Postgres, json_cast = "::jsonb", text_cast = "::text", read = pool, write = pool, {
    async fn insert(&self, c: Collection, doc: &Doc) -> Result<()> {
        insert_doc(&self.pool, c, doc).await
    }

    async fn replace(&self, c: Collection, doc: &Doc) -> Result<bool> {
        replace_doc(&self.pool, c, doc).await
    }

    async fn list(&self, c: Collection, q: &ListQuery) -> Result<(u64, Vec<String>)> {
        let l = list_sql::<Postgres>(c.table(), q);
        let total: i64 = bind_all(sqlx::query(&l.count), &l.binds[..l.count_binds]).fetch_one(&self.pool).await?.get(0);
        let rows = bind_all(sqlx::query(&l.select), &l.binds).fetch_all(&self.pool).await?;
        Ok((total as u64, rows.iter().map(|r| r.get::<String, _>(0)).collect()))
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
