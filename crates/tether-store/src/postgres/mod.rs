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

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, Row};
use tether_core::query::ListQuery;

use crate::sql::{self, list_sql, lower, parse, stmt, Bind};
use crate::{Collection, Doc, Edge, FeedEntry, Result, Secret, Store, StoreError, WriteOp};
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
            return sql::conflict(c, db.constraint().is_some_and(|n| n.ends_with("_key2")));
        }
    }
    StoreError::Db(e)
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.as_str()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    q
}

/// The statements shared by single writes and batches, on any executor (pool or transaction).
async fn insert_doc<'e>(e: impl sqlx::PgExecutor<'e>, c: Collection, doc: &Doc) -> Result<()> {
    let sql = format!("INSERT INTO {} (id, key1, key2, doc) VALUES ($1, $2, $3, $4::jsonb)", c.table());
    sqlx::query(&sql)
        .bind(&doc.id)
        .bind(lower(&doc.key1))
        .bind(lower(&doc.key2))
        .bind(doc.body.to_string())
        .execute(e)
        .await
        .map_err(|err| conflict(c, err))?;
    Ok(())
}

async fn replace_doc<'e>(e: impl sqlx::PgExecutor<'e>, c: Collection, doc: &Doc) -> Result<bool> {
    let sql = format!("UPDATE {} SET key1 = $1, key2 = $2, doc = $3::jsonb WHERE id = $4", c.table());
    let r = sqlx::query(&sql)
        .bind(lower(&doc.key1))
        .bind(lower(&doc.key2))
        .bind(doc.body.to_string())
        .bind(&doc.id)
        .execute(e)
        .await
        .map_err(|err| conflict(c, err))?;
    Ok(r.rows_affected() == 1)
}

async fn link_edge<'e>(e: impl sqlx::PgExecutor<'e>, kind: Edge, from: &str, to: &str) -> Result<bool> {
    let r = sqlx::query(stmt::LINK).bind(kind.name()).bind(from).bind(to).execute(e).await?;
    Ok(r.rows_affected() == 1)
}

async fn unlink_edge<'e>(e: impl sqlx::PgExecutor<'e>, kind: Edge, from: &str, to: &str) -> Result<bool> {
    let r = sqlx::query(stmt::UNLINK).bind(kind.name()).bind(from).bind(to).execute(e).await?;
    Ok(r.rows_affected() == 1)
}

#[async_trait]
impl Store for PgStore {
    async fn insert(&self, c: Collection, doc: &Doc) -> Result<()> {
        insert_doc(&self.pool, c, doc).await
    }

    async fn replace(&self, c: Collection, doc: &Doc) -> Result<bool> {
        replace_doc(&self.pool, c, doc).await
    }

    async fn get(&self, c: Collection, id: &str) -> Result<Option<Value>> {
        let sql = format!("SELECT doc::text FROM {} WHERE id = $1", c.table());
        let row: Option<String> = sqlx::query_scalar(&sql).bind(id).fetch_optional(&self.pool).await?;
        row.as_deref().map(parse).transpose()
    }

    async fn get_by_key(&self, c: Collection, key1: &str) -> Result<Option<Value>> {
        let sql = format!("SELECT doc::text FROM {} WHERE key1 = $1", c.table());
        let row: Option<String> = sqlx::query_scalar(&sql).bind(key1.to_lowercase()).fetch_optional(&self.pool).await?;
        row.as_deref().map(parse).transpose()
    }

    async fn get_by_keys(&self, c: Collection, key2: bool, keys: &[&str]) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for chunk in keys.chunks(500) {
            let text = sql::by_keys::<Postgres>(c.table(), key2, chunk.len());
            let mut q = sqlx::query_scalar::<_, String>(&text);
            for k in chunk {
                q = q.bind(k.to_lowercase());
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push(parse(&row)?);
            }
        }
        Ok(out)
    }

    async fn delete(&self, c: Collection, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(&format!("DELETE FROM {} WHERE id = $1", c.table())).bind(id).execute(&mut *tx).await?;
        sqlx::query(stmt::DELETE_EDGES_OF).bind(id).execute(&mut *tx).await?;
        sqlx::query(stmt::DELETE_SECRETS_OF).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn list(&self, c: Collection, q: &ListQuery) -> Result<(u64, Vec<String>)> {
        let l = list_sql::<Postgres>(c.table(), q);
        let total: i64 = bind_all(sqlx::query(&l.count), &l.binds[..l.count_binds]).fetch_one(&self.pool).await?.get(0);
        let rows = bind_all(sqlx::query(&l.select), &l.binds).fetch_all(&self.pool).await?;
        Ok((total as u64, rows.iter().map(|r| r.get::<String, _>(0)).collect()))
    }

    async fn put_secret(&self, owner: &str, purpose: Secret, hash: Option<&str>) -> Result<()> {
        match hash {
            Some(h) => {
                sqlx::query(stmt::PUT_SECRET).bind(owner).bind(purpose.name()).bind(h).execute(&self.pool).await?
            }
            None => sqlx::query(stmt::DELETE_SECRET).bind(owner).bind(purpose.name()).execute(&self.pool).await?,
        };
        Ok(())
    }

    async fn secret(&self, owner: &str, purpose: Secret) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(stmt::SECRET).bind(owner).bind(purpose.name()).fetch_optional(&self.pool).await?)
    }

    async fn secret_owner(&self, purpose: Secret, hash: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(stmt::SECRET_OWNER).bind(purpose.name()).bind(hash).fetch_optional(&self.pool).await?)
    }

    async fn link(&self, e: Edge, from: &str, to: &str) -> Result<bool> {
        link_edge(&self.pool, e, from, to).await
    }

    async fn unlink(&self, e: Edge, from: &str, to: &str) -> Result<bool> {
        unlink_edge(&self.pool, e, from, to).await
    }

    async fn targets(&self, e: Edge, from: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(stmt::TARGETS).bind(e.name()).bind(from).fetch_all(&self.pool).await?)
    }

    async fn sources(&self, e: Edge, to: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(stmt::SOURCES).bind(e.name()).bind(to).fetch_all(&self.pool).await?)
    }

    async fn write_batch(&self, ops: &[WriteOp]) -> Result<()> {
        let plan = sql::plan_batch(ops);
        let mut tx = self.pool.begin().await?;
        for (c, docs) in &plan.inserts {
            let text = sql::insert_rows::<Postgres>(c.table(), docs.len(), "::jsonb");
            let mut q = sqlx::query(&text);
            for d in docs {
                q = q.bind(&d.id).bind(lower(&d.key1)).bind(lower(&d.key2)).bind(d.body.to_string());
            }
            q.execute(&mut *tx).await.map_err(|err| conflict(*c, err))?;
        }
        for (c, doc) in &plan.replaces {
            replace_doc(&mut *tx, *c, doc).await?;
        }
        for edges in &plan.links {
            let text = sql::link_rows::<Postgres>(edges.len());
            let mut q = sqlx::query(&text);
            for (e, from, to) in edges {
                q = q.bind(e.name()).bind(*from).bind(*to);
            }
            q.execute(&mut *tx).await?;
        }
        for (e, from, to) in &plan.unlinks {
            unlink_edge(&mut *tx, *e, from, to).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn append_feed(
        &self,
        domain: &str,
        kind: &str,
        object: &str,
        body: &Value,
        secret: Option<&str>,
        created: &str,
    ) -> Result<i64> {
        // The lock orders this domain's appends by seq, draw to commit (see the module doc).
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(FEED_LOCK)
            .bind(domain)
            .execute(&mut *tx)
            .await?;
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO feed (domain_id, kind, object_id, body, secret, created) \
             VALUES ($1, $2, $3, $4::jsonb, $5, $6) RETURNING seq",
        )
        .bind(domain)
        .bind(kind)
        .bind(object)
        .bind(body.to_string())
        .bind(secret)
        .bind(created)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn read_feed(&self, domain: &str, after: i64, limit: usize) -> Result<Vec<FeedEntry>> {
        let rows = sqlx::query(
            "SELECT seq, kind, object_id, body::text, secret, created FROM feed \
             WHERE domain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(domain)
        .bind(after)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FeedEntry {
                    seq: r.get(0),
                    kind: r.get(1),
                    object_id: r.get(2),
                    body: parse(r.get::<&str, _>(3))?,
                    secret: r.get(4),
                    created: r.get(5),
                })
            })
            .collect()
    }

    async fn expire_feed_secrets(&self, before: &str) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as(stmt::EXPIRE_FEED_SECRETS).bind(before).fetch_all(&self.pool).await?;
        Ok(rows)
    }

    async fn count_feed(&self, domain: &str, after: i64) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(stmt::COUNT_FEED).bind(domain).bind(after).fetch_one(&self.pool).await?;
        Ok(n as u64)
    }

    async fn clear_feed_secrets(&self, domain: &str, upto: i64) -> Result<()> {
        sqlx::query(stmt::CLEAR_FEED_SECRETS).bind(domain).bind(upto).execute(&self.pool).await?;
        Ok(())
    }

    async fn setting(&self, key: &str) -> Result<Option<Value>> {
        let v: Option<String> = sqlx::query_scalar("SELECT value::text FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        v.as_deref().map(parse).transpose()
    }

    async fn put_setting(&self, key: &str, value: &Value) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2::jsonb) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
