//! The embedded SQLite backend: one file in the data directory, WAL mode, a single writer
//! connection (SQLite serialises writers anyway; one connection avoids busy errors) and a
//! small pool of readers.

mod filter;
mod schema;

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, Row};
use tether_core::query::ListQuery;

use crate::sql::{self, list_sql, lower, parse, stmt, Bind};
use crate::{Collection, Doc, Edge, FeedEntry, Result, Secret, Store, StoreError, WriteOp};
use filter::Sqlite;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Unfiltered totals by table (a count over a million rows takes ~20 ms), forgotten on
    /// every insert or delete. Only this process writes an embedded store.
    totals: std::sync::Mutex<Totals>,
}

#[derive(Default)]
struct Totals {
    /// Bumped by every write that may change a total: a count read before a bump is stale.
    generation: u64,
    by_table: std::collections::HashMap<&'static str, i64>,
}

impl SqliteStore {
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
        Ok(SqliteStore { writer, reader, totals: Default::default() })
    }
}

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
            return sql::conflict(c, db.message().ends_with(".key2"));
        }
    }
    StoreError::Db(e)
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.as_str()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    q
}

/// The statements shared by single writes and batches, on any executor (pool or transaction).
async fn insert_doc<'e>(e: impl sqlx::SqliteExecutor<'e>, c: Collection, doc: &Doc) -> Result<()> {
    let sql = format!("INSERT INTO {} (id, key1, key2, doc) VALUES (?, ?, ?, ?)", c.table());
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

async fn replace_doc<'e>(e: impl sqlx::SqliteExecutor<'e>, c: Collection, doc: &Doc) -> Result<bool> {
    let sql = format!("UPDATE {} SET key1 = ?, key2 = ?, doc = ? WHERE id = ?", c.table());
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

async fn link_edge<'e>(e: impl sqlx::SqliteExecutor<'e>, kind: Edge, from: &str, to: &str) -> Result<bool> {
    let r = sqlx::query(stmt::LINK).bind(kind.name()).bind(from).bind(to).execute(e).await?;
    Ok(r.rows_affected() == 1)
}

async fn unlink_edge<'e>(e: impl sqlx::SqliteExecutor<'e>, kind: Edge, from: &str, to: &str) -> Result<bool> {
    let r = sqlx::query(stmt::UNLINK).bind(kind.name()).bind(from).bind(to).execute(e).await?;
    Ok(r.rows_affected() == 1)
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert(&self, c: Collection, doc: &Doc) -> Result<()> {
        insert_doc(&self.writer, c, doc).await?;
        self.forget_totals();
        Ok(())
    }

    async fn replace(&self, c: Collection, doc: &Doc) -> Result<bool> {
        replace_doc(&self.writer, c, doc).await
    }

    async fn get(&self, c: Collection, id: &str) -> Result<Option<Value>> {
        let sql = format!("SELECT doc FROM {} WHERE id = ?", c.table());
        let row: Option<String> = sqlx::query_scalar(&sql).bind(id).fetch_optional(&self.reader).await?;
        row.as_deref().map(parse).transpose()
    }

    async fn get_by_key(&self, c: Collection, key1: &str) -> Result<Option<Value>> {
        let sql = format!("SELECT doc FROM {} WHERE key1 = ?", c.table());
        let row: Option<String> =
            sqlx::query_scalar(&sql).bind(key1.to_lowercase()).fetch_optional(&self.reader).await?;
        row.as_deref().map(parse).transpose()
    }

    async fn get_by_keys(&self, c: Collection, key2: bool, keys: &[&str]) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for chunk in keys.chunks(500) {
            let text = sql::by_keys::<Sqlite>(c.table(), key2, chunk.len());
            let mut q = sqlx::query_scalar::<_, String>(&text);
            for k in chunk {
                q = q.bind(k.to_lowercase());
            }
            for row in q.fetch_all(&self.reader).await? {
                out.push(parse(&row)?);
            }
        }
        Ok(out)
    }

    async fn delete(&self, c: Collection, id: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let r = sqlx::query(&format!("DELETE FROM {} WHERE id = ?", c.table())).bind(id).execute(&mut *tx).await?;
        sqlx::query(stmt::DELETE_EDGES_OF).bind(id).execute(&mut *tx).await?;
        sqlx::query(stmt::DELETE_SECRETS_OF).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        self.forget_totals();
        Ok(r.rows_affected() == 1)
    }

    async fn list(&self, c: Collection, q: &ListQuery) -> Result<(u64, Vec<String>)> {
        let l = list_sql::<Sqlite>(c.table(), q);
        let cached = {
            let t = self.totals.lock().expect("not poisoned");
            (q.filter.is_none().then(|| t.by_table.get(c.table()).copied()).flatten(), t.generation)
        };
        let total: i64 = match cached {
            (Some(n), _) => n,
            (None, generation) => {
                let n: i64 =
                    bind_all(sqlx::query(&l.count), &l.binds[..l.count_binds]).fetch_one(&self.reader).await?.get(0);
                let mut t = self.totals.lock().expect("not poisoned");
                if q.filter.is_none() && t.generation == generation {
                    t.by_table.insert(c.table(), n);
                }
                n
            }
        };
        let rows = bind_all(sqlx::query(&l.select), &l.binds).fetch_all(&self.reader).await?;
        Ok((total as u64, rows.iter().map(|r| r.get::<String, _>(0)).collect()))
    }

    async fn put_secret(&self, owner: &str, purpose: Secret, hash: Option<&str>) -> Result<()> {
        match hash {
            Some(h) => {
                sqlx::query(stmt::PUT_SECRET).bind(owner).bind(purpose.name()).bind(h).execute(&self.writer).await?
            }
            None => sqlx::query(stmt::DELETE_SECRET).bind(owner).bind(purpose.name()).execute(&self.writer).await?,
        };
        Ok(())
    }

    async fn secret(&self, owner: &str, purpose: Secret) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(stmt::SECRET).bind(owner).bind(purpose.name()).fetch_optional(&self.reader).await?)
    }

    async fn secret_owner(&self, purpose: Secret, hash: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(stmt::SECRET_OWNER).bind(purpose.name()).bind(hash).fetch_optional(&self.reader).await?)
    }

    async fn link(&self, e: Edge, from: &str, to: &str) -> Result<bool> {
        link_edge(&self.writer, e, from, to).await
    }

    async fn unlink(&self, e: Edge, from: &str, to: &str) -> Result<bool> {
        unlink_edge(&self.writer, e, from, to).await
    }

    async fn targets(&self, e: Edge, from: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(stmt::TARGETS).bind(e.name()).bind(from).fetch_all(&self.reader).await?)
    }

    async fn sources(&self, e: Edge, to: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(stmt::SOURCES).bind(e.name()).bind(to).fetch_all(&self.reader).await?)
    }

    async fn write_batch(&self, ops: &[WriteOp]) -> Result<()> {
        let plan = sql::plan_batch(ops);
        let mut tx = self.writer.begin().await?;
        for (c, docs) in &plan.inserts {
            let text = sql::insert_rows::<Sqlite>(c.table(), docs.len(), "");
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
            let text = sql::link_rows::<Sqlite>(edges.len());
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
        if !plan.inserts.is_empty() {
            self.forget_totals();
        }
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
        let r = sqlx::query(
            "INSERT INTO feed (domain_id, kind, object_id, body, secret, created) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(domain)
        .bind(kind)
        .bind(object)
        .bind(body.to_string())
        .bind(secret)
        .bind(created)
        .execute(&self.writer)
        .await?;
        Ok(r.last_insert_rowid())
    }

    async fn read_feed(&self, domain: &str, after: i64, limit: usize) -> Result<Vec<FeedEntry>> {
        let rows = sqlx::query(
            "SELECT seq, kind, object_id, body, secret, created FROM feed WHERE domain_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(domain)
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.reader)
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
            sqlx::query_as(stmt::EXPIRE_FEED_SECRETS).bind(before).fetch_all(&self.writer).await?;
        Ok(rows)
    }

    async fn count_feed(&self, domain: &str, after: i64) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(stmt::COUNT_FEED).bind(domain).bind(after).fetch_one(&self.reader).await?;
        Ok(n as u64)
    }

    async fn clear_feed_secrets(&self, domain: &str, upto: i64) -> Result<()> {
        sqlx::query(stmt::CLEAR_FEED_SECRETS).bind(domain).bind(upto).execute(&self.writer).await?;
        Ok(())
    }

    async fn setting(&self, key: &str) -> Result<Option<Value>> {
        let v: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.reader)
            .await?;
        v.as_deref().map(parse).transpose()
    }

    async fn put_setting(&self, key: &str, value: &Value) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value.to_string())
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
