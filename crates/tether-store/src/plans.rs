//! For tests: the plans the databases choose for the store's statements, on a store migrated
//! to the last schema step. SQLite keeps no statistics, so its plan on an empty table is the
//! plan it takes at any size; PostgreSQL would scan a table this small, so scans are disabled
//! and a plan still names an index only if the statement's condition lets it use it.

use sqlx::{Connection, Executor, PgConnection, Row, SqliteConnection};

use crate::sql::{bind_all, Bind, ListSql};

/// A list's two statements with their parameters: the total, then the page.
pub(crate) fn statements(l: &ListSql) -> [(&str, &[Bind]); 2] {
    [(&l.count, &l.binds[..l.count_binds]), (&l.select, &l.binds)]
}

/// A migrated embedded store (the directory lives as long as the connection is used).
pub(crate) async fn sqlite() -> (tempfile::TempDir, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    crate::sqlite::SqliteStore::open(dir.path()).await.unwrap();
    let url = format!("sqlite://{}", dir.path().join("tether.db").display());
    let c = SqliteConnection::connect(&url).await.unwrap();
    (dir, c)
}

/// `EXPLAIN QUERY PLAN`: each step's parent step and detail.
pub(crate) async fn sqlite_plan(c: &mut SqliteConnection, sql: &str, binds: &[Bind]) -> Vec<(i64, String)> {
    let rows = bind_all(sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}")), binds).fetch_all(c).await.unwrap();
    rows.iter().map(|r| (r.get("parent"), r.get("detail"))).collect()
}

/// Whether a SQLite plan sorts its rows after reading them; a deep page (`deep`) may sort
/// its own page again at the top, after the subquery that walks to it.
pub(crate) fn sorted_after(plan: &[(i64, String)], deep: bool) -> bool {
    plan.iter().any(|(p, d)| d.contains("TEMP B-TREE FOR ORDER BY") && !(deep && *p == 0))
}

/// Whether SQLite reads the page `l` through `index` (named as a whole word) in the page's
/// order, without sorting afterwards; and the plan, for the failure's message.
pub(crate) async fn sqlite_walks(c: &mut SqliteConnection, l: &ListSql, index: &str) -> (bool, Vec<(i64, String)>) {
    let plan = sqlite_plan(c, &l.select, &l.binds).await;
    let walked = plan.iter().any(|(_, d)| names_word(d, index));
    let deep = l.select.contains(" IN (SELECT");
    (walked && !sorted_after(&plan, deep), plan)
}

/// A migrated PostgreSQL database, and a connection to it with scans disabled.
pub(crate) async fn postgres() -> (tether_testkit::PgDatabase, PgConnection) {
    let db = tether_testkit::postgres_db().await;
    crate::postgres::PgStore::connect(&db.url).await.unwrap();
    let mut c = PgConnection::connect(&db.url).await.unwrap();
    c.execute("SET enable_seqscan = off").await.unwrap();
    (db, c)
}

/// `EXPLAIN`: the plan's lines.
pub(crate) async fn postgres_plan(c: &mut PgConnection, sql: &str, binds: &[Bind]) -> Vec<String> {
    let rows = bind_all(sqlx::query(&format!("EXPLAIN {sql}")), binds).fetch_all(c).await.unwrap();
    rows.iter().map(|r| r.get::<String, _>(0)).collect()
}

/// Whether a plan line names `index` (as a whole word).
pub(crate) fn names(plan: &[String], index: &str) -> bool {
    plan.iter().any(|d| names_word(d, index))
}

fn names_word(line: &str, index: &str) -> bool {
    line.split_whitespace().any(|w| w == index)
}

/// `EXPLAIN` of `sql` as a prepared statement's generic plan, the one PostgreSQL turns to
/// after five runs when it costs no more than the plans made for the values: planned
/// without the parameters' values (`plan_cache_mode = force_generic_plan`).
pub(crate) async fn postgres_generic_plan(c: &mut PgConnection, sql: &str, binds: &[Bind]) -> Vec<String> {
    c.execute("SET plan_cache_mode = force_generic_plan").await.unwrap();
    c.execute(format!("PREPARE generic AS {sql}").as_str()).await.unwrap();
    let values: Vec<String> = binds
        .iter()
        .map(|b| match b {
            Bind::Text(t) => format!("'{}'", t.replace('\'', "''")),
            Bind::Int(i) => i.to_string(),
        })
        .collect();
    let rows =
        sqlx::query(&format!("EXPLAIN EXECUTE generic({})", values.join(", "))).fetch_all(&mut *c).await.unwrap();
    c.execute("DEALLOCATE generic").await.unwrap();
    rows.iter().map(|r| r.get::<String, _>(0)).collect()
}
