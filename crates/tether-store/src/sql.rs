//! What the SQL backends share: the walk of a core [`Filter`] into a `WHERE` clause and the
//! list query around it (order, window), the statements whose text is the same in both
//! dialects, unique-key conflicts and document decoding.
//!
//! Each backend's `filter` module supplies its [`Dialect`]: how a document field is read,
//! how a parameter is spelled, and the few comparisons whose SQL differs. Field names come
//! only from the core's static catalogues (or the store's own internal fields), so they are
//! safe to inline; every value is a bound parameter.

use serde_json::Value;
use tether_core::query::{Filter, ListQuery, Op, Scalar};

use crate::{Collection, Doc, Edge, Result, StoreError, WriteOp};

/// A bound parameter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// The tables whose rows carry a `version` (documents two writers may change at once).
pub(crate) const VERSIONED: [&str; 4] = ["users", "groups", "domains", "agents"];

/// A document's stored text: without `_v`, which is the row's `version` column.
pub(crate) fn body_text(v: &Value) -> String {
    match v {
        Value::Object(m) if m.contains_key("_v") => {
            let mut m = m.clone();
            m.remove("_v");
            Value::Object(m).to_string()
        }
        other => other.to_string(),
    }
}

/// The select expression of a table's documents: with `_v` where the table is versioned.
pub(crate) fn doc_select<D: Dialect>(table: &str) -> &'static str {
    if VERSIONED.contains(&table) {
        D::VERSIONED_DOC
    } else {
        D::DOC
    }
}

/// The SQL that differs between the backends' filter translations.
pub(crate) trait Dialect {
    /// The literals of true and false (for empty `IN` lists and empty `AND`/`OR`).
    const TRUE: &'static str;
    const FALSE: &'static str;
    /// The select expression of the `doc` column as JSON text.
    const DOC: &'static str;
    /// The same, with the row's `version` column as the document's `_v` field.
    const VERSIONED_DOC: &'static str;
    /// The `n`th (1-based) parameter.
    fn param(n: usize) -> String;
    /// The expression reading the document field `name` (any name but `id`).
    fn field(name: &str) -> String;
    /// The condition of the partial indexes of the users who are not simply active
    /// (`unusual.rs`), exactly as the schema spells it.
    fn unusual() -> Option<&'static str> {
        None
    }
    /// The condition of the partial indexes of the users with `flag` (`flagged.rs`),
    /// exactly as the schema spells it.
    fn flagged(_flag: crate::flagged::Flag) -> Option<String> {
        None
    }
    /// A column of `table` that holds `field`'s value as [`Dialect::field`] reads it, read
    /// instead where there is one (`indexed.rs`).
    fn stored(_table: &str, _field: &str) -> Option<String> {
        None
    }
    /// A boolean compared against a document field.
    fn bool(b: bool) -> Bind;
    /// The bound value of a regular expression (case-insensitive matching).
    fn regex(pattern: &str) -> Bind;
    /// The bound value of a substring search for `term` (as [`Dialect::cmp`]'s
    /// `Op::Search` reads it).
    fn search(term: &str) -> Bind {
        Bind::Text(term.to_string())
    }
    /// `col` contains the search term bound as `param` ([`Dialect::search`] of `term`).
    fn search_cmp(col: &str, param: &str, _term: &str) -> String {
        Self::cmp(col, Op::Search, param)
    }
    /// A condition (with `{p}` for its one parameter, and that parameter) that narrows rows
    /// of `table` to a superset of those where one of `fields` contains `term`, served by a
    /// text index; `None` when no index covers them. The search itself is still applied to
    /// what it lets through, so the answer is the same as without it.
    fn text_index(_table: &str, _fields: &[&str], _term: &str) -> Option<(String, Bind)> {
        None
    }
    /// An integer parameter as compared with a numeric document field, so that an index on
    /// the field's expression serves the comparison (SQLite's planner uses it for a bare
    /// parameter only, not for a `CAST` of one).
    fn number(param: &str) -> String;
    /// `col <op> param`.
    fn cmp(col: &str, op: Op, param: &str) -> String;
    /// An `ORDER BY` term: `col` compared with ASCII letters case-folded, then bytewise;
    /// a missing field (NULL) first when ascending and last when descending.
    fn sort(col: &str, desc: bool) -> String;
    /// The sort key of `col` as [`Dialect::sort`] compares it, without the direction: what
    /// a page's last row is selected and compared by (`key >= k AND (key > k OR seq > s)`).
    fn sort_key(col: &str) -> String;
}

/// The SQL expression reading `field` from a document row.
pub(crate) fn column<D: Dialect>(field: &str) -> String {
    if field == "id" {
        "id".to_string()
    } else {
        debug_assert!(field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{field}");
        D::field(field)
    }
}

fn bind<D: Dialect>(v: &Scalar) -> Bind {
    match v {
        Scalar::Text(s) => Bind::Text(s.clone()),
        Scalar::Bool(b) => D::bool(*b),
    }
}

/// The fields and the term of `f` when it is a substring search for one term over one or
/// several fields (what `searchTerm` and `field:search:term` become).
fn text_search(f: &Filter) -> Option<(Vec<&'static str>, &str)> {
    fn one(f: &Filter) -> Option<(&'static str, &str)> {
        match f {
            Filter::Cmp { field, op: Op::Search, value: Scalar::Text(t) } => Some((*field, t.as_str())),
            _ => None,
        }
    }
    match f {
        Filter::Or(parts) if !parts.is_empty() => {
            let each: Vec<(&'static str, &str)> = parts.iter().map(one).collect::<Option<_>>()?;
            let term = each[0].1;
            each.iter().all(|(_, t)| *t == term).then(|| (each.iter().map(|(f, _)| *f).collect(), term))
        }
        _ => one(f).map(|(field, t)| (vec![field], t)),
    }
}

/// Appends the SQL of `f` (a filter of `table`'s documents) to `sql` and its parameters to
/// `binds` (numbered after the ones already there).
pub(crate) fn to_sql<D: Dialect>(table: &str, f: &Filter, sql: &mut String, binds: &mut Vec<Bind>) {
    let of_doc = |field: &str| D::stored(table, field).unwrap_or_else(|| column::<D>(field));
    render::<D>(table, f, sql, binds, true, Some(&of_doc))
}

/// The same condition over columns named as the fields (a table of the fields' values, such
/// as `users_tally`), without a text index.
pub(crate) fn to_sql_over_columns<D: Dialect>(f: &Filter, sql: &mut String, binds: &mut Vec<Bind>) {
    render::<D>("", f, sql, binds, false, None)
}

/// `of_doc` reads a field from a document row; `None` reads the column named as the field.
fn render<D: Dialect>(
    table: &str,
    f: &Filter,
    sql: &mut String,
    binds: &mut Vec<Bind>,
    may_index: bool,
    of_doc: Option<&dyn Fn(&str) -> String>,
) {
    if let Some((cond, bind)) =
        text_search(f).filter(|_| may_index).and_then(|(fields, term)| D::text_index(table, &fields, term))
    {
        binds.push(bind);
        sql.push('(');
        sql.push_str(&cond.replace("{p}", &D::param(binds.len())));
        sql.push_str(" AND ");
        render::<D>(table, f, sql, binds, false, of_doc);
        sql.push(')');
        return;
    }
    let column = |field: &str| of_doc.map_or_else(|| field.to_string(), |c| c(field));
    match f {
        Filter::Cmp { field, op, value } => {
            binds.push(match (op, value) {
                (Op::Regex, Scalar::Text(p)) => D::regex(p),
                (Op::Regex, _) => unreachable!("regex values are text"),
                (Op::Search, Scalar::Text(t)) => D::search(t),
                _ => bind::<D>(value),
            });
            let (col, p) = (column(field), D::param(binds.len()));
            sql.push_str(&match (op, value) {
                (Op::Search, Scalar::Text(t)) => D::search_cmp(&col, &p, t),
                _ => D::cmp(&col, *op, &p),
            });
        }
        Filter::In { field, values } => {
            if values.is_empty() {
                sql.push_str(D::FALSE);
                return;
            }
            sql.push_str(&column(field));
            sql.push_str(" IN (");
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                binds.push(bind::<D>(v));
                sql.push_str(&D::param(binds.len()));
            }
            sql.push(')');
        }
        Filter::And(parts) | Filter::Or(parts) => {
            let and = matches!(f, Filter::And(_));
            if parts.is_empty() {
                sql.push_str(if and { D::TRUE } else { D::FALSE });
                return;
            }
            sql.push('(');
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    sql.push_str(if and { " AND " } else { " OR " });
                }
                render::<D>(table, p, sql, binds, may_index, of_doc);
            }
            sql.push(')');
        }
    }
}

/// The two statements of a list: the total, and the window of documents.
pub(crate) struct ListSql {
    /// `SELECT count(*)`, or the sum over the users' tally (`tally.rs`) of a filter it can
    /// answer; its parameters are the first `count_binds` of `binds`.
    pub count: String,
    pub count_binds: usize,
    /// Whether `count` sums the users' tally (a few rows) rather than counting documents.
    pub tallied: bool,
    /// The ordered window; all of `binds` (the filter's, then limit and offset). Its rows
    /// are the document, then what [`ListSql::keyset`] says.
    pub select: String,
    pub binds: Vec<Bind>,
    /// What the window's rows carry after the document, to continue after its last row.
    pub keyset: Keyset,
    /// The list's filter and order, parameters included (a page's continuation is kept under
    /// it: `cursors.rs`).
    pub signature: String,
    pub(crate) cond: String,
    pub(crate) order: String,
}

/// What a page's last row is found again by, for the next page (`cursors.rs`): its `seq`
/// (insertion order, the default), or its sort key (text) and `seq` (a list sorted by
/// username, ascending: the sort admins' scripts and the console use, and the one an index
/// serves). Other orders are walked with `OFFSET`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Keyset {
    None,
    Seq,
    /// The sort key's expression.
    Key(String),
}

impl Keyset {
    /// The columns a window's rows carry after the document.
    pub(crate) fn columns(&self) -> String {
        match self {
            Keyset::None => String::new(),
            Keyset::Seq => ", seq".to_string(),
            Keyset::Key(k) => format!(", seq, {k}"),
        }
    }
}

/// Filters, orders (by the sort field, then insertion order) and windows `table`.
pub(crate) fn list_sql<D: Dialect>(table: &str, q: &ListQuery) -> ListSql {
    let mut cond = String::new();
    let mut binds = Vec::new();
    if let Some(f) = &q.filter {
        cond.push_str(" WHERE ");
        to_sql::<D>(table, f, &mut cond, &mut binds);
        if let Some(w) = crate::flagged::partial_index_term::<D>(table, f) {
            cond.push_str(" AND ");
            cond.push_str(&w);
        }
    }
    let from_tally = q.filter.as_ref().and_then(|f| crate::tally::count_sql::<D>(table, f, &binds));
    let tallied = from_tally.is_some();
    let count = from_tally.unwrap_or_else(|| format!("SELECT count(*) FROM {table}{cond}"));
    let count_binds = binds.len();
    let order = match q.sort {
        Some((f, desc)) => format!("{}, seq", D::sort(&column::<D>(f), desc)),
        None => "seq".to_string(),
    };
    let keyset = match q.sort {
        None => Keyset::Seq,
        Some(("username", false)) => Keyset::Key(D::sort_key(&column::<D>("username"))),
        Some(_) => Keyset::None,
    };
    let signature = format!("{table}{cond} ORDER BY {order} {binds:?}");
    let columns = format!("{}{}", doc_select::<D>(table), keyset.columns());
    binds.push(Bind::Int(i64::try_from(q.limit).unwrap_or(i64::MAX)));
    binds.push(Bind::Int(i64::try_from(q.skip).unwrap_or(i64::MAX)));
    let (limit, offset) = (D::param(binds.len() - 1), D::param(binds.len()));
    let select = if q.skip == 0 {
        format!("SELECT {columns} FROM {table}{cond} ORDER BY {order} LIMIT {limit} OFFSET {offset}")
    } else {
        // A deep page: the skipped rows are walked in the index alone (it holds `seq`), and
        // only the page's documents are read.
        format!(
            "SELECT {columns} FROM {table} WHERE seq IN (SELECT seq FROM {table}{cond} ORDER BY {order} \
             LIMIT {limit} OFFSET {offset}) ORDER BY {order}"
        )
    };
    ListSql { count, count_binds, tallied, select, binds, keyset, signature, cond, order }
}

/// Whether a list of `total` rows has none to read at `q`'s window: a filter no row matches,
/// a page at or past the end. Its page is then not read at all, where reading it would walk
/// every row the filter rejects (a state no user has: the whole table) or every row before
/// the offset.
pub(crate) fn nothing_to_read(total: i64, q: &ListQuery) -> bool {
    q.limit == 0 || i64::try_from(q.skip).map_or(true, |skip| skip >= total)
}

/// Selects `fields` of the rows of `table` that `filter` matches, in insertion order.
pub(crate) fn project_sql<D: Dialect>(table: &str, filter: &Filter, fields: &[&str]) -> (String, Vec<Bind>) {
    debug_assert!(!fields.is_empty(), "a projection of no field");
    let mut cond = String::new();
    let mut binds = Vec::new();
    to_sql::<D>(table, filter, &mut cond, &mut binds);
    let cols: Vec<String> = fields.iter().map(|f| column::<D>(f)).collect();
    (format!("SELECT {} FROM {table} WHERE {cond} ORDER BY seq", cols.join(", ")), binds)
}

/// Statements spelled the same in both dialects (`$n` parameters, which sqlx's SQLite
/// driver binds by number too).
pub(crate) mod stmt {
    pub const DELETE_EDGES_OF: &str = "DELETE FROM edges WHERE src = $1 OR dst = $1";
    pub const DELETE_SECRETS_OF: &str = "DELETE FROM secrets WHERE owner = $1";
    pub const PUT_SECRET: &str = "INSERT INTO secrets (owner, purpose, hash) VALUES ($1, $2, $3) \
                                  ON CONFLICT (owner, purpose) DO UPDATE SET hash = excluded.hash";
    pub const DELETE_SECRET: &str = "DELETE FROM secrets WHERE owner = $1 AND purpose = $2";
    pub const SECRET: &str = "SELECT hash FROM secrets WHERE owner = $1 AND purpose = $2";
    pub const SECRET_OWNER: &str = "SELECT owner FROM secrets WHERE purpose = $1 AND hash = $2";
    pub const LINK: &str = "INSERT INTO edges (kind, src, dst) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
    pub const UNLINK: &str = "DELETE FROM edges WHERE kind = $1 AND src = $2 AND dst = $3";
    pub const TARGETS: &str = "SELECT dst FROM edges WHERE kind = $1 AND src = $2 ORDER BY seq";
    pub const SOURCES: &str = "SELECT src FROM edges WHERE kind = $1 AND dst = $2 ORDER BY seq";
    pub const CLEAR_FEED_SECRETS: &str =
        "UPDATE feed SET secret = NULL WHERE domain_id = $1 AND seq <= $2 AND secret IS NOT NULL";
    pub const EXPIRE_FEED_SECRETS: &str =
        "UPDATE feed SET secret = NULL WHERE secret IS NOT NULL AND created < $1 RETURNING object_id, created";
    /// One attempt for a login key (see `Store::count_attempt`): while locked nothing
    /// changes; a key whose lock or window is over starts again; else the attempt is counted.
    /// Answers the lock's end, -1 when the count is past the limit (the caller gives the
    /// attempt back), 0 otherwise. Only a failure locks (`ATTEMPT_FAILED`).
    pub const COUNT_ATTEMPT: &str = "INSERT INTO login_attempts (key, n, since, locked_until) VALUES ($1, 1, $2, 0) \
        ON CONFLICT (key) DO UPDATE SET \
        n = CASE WHEN login_attempts.locked_until > $2 THEN login_attempts.n \
                 WHEN login_attempts.locked_until > 0 OR login_attempts.since < $3 THEN 1 \
                 ELSE login_attempts.n + 1 END, \
        since = CASE WHEN login_attempts.locked_until > $2 THEN login_attempts.since \
                     WHEN login_attempts.locked_until > 0 OR login_attempts.since < $3 THEN $2 \
                     ELSE login_attempts.since END, \
        locked_until = CASE WHEN login_attempts.locked_until > $2 THEN login_attempts.locked_until \
                            ELSE 0 END \
        RETURNING CASE WHEN locked_until > $2 THEN locked_until WHEN n > $4 THEN -1 ELSE 0 END";
    /// A counted attempt failed: at the limit, the key is locked (its count goes).
    pub const ATTEMPT_FAILED: &str = "UPDATE login_attempts SET n = 0, locked_until = $4 \
        WHERE key = $1 AND locked_until <= $2 AND n >= $3";
    /// Takes `$2` consecutive numbers of counter `$1`, none below `$3`; answers the last.
    pub const TAKE_NUMBERS: &str = "INSERT INTO counters (name, n) VALUES ($1, $3 + $2 - 1) \
        ON CONFLICT (name) DO UPDATE SET \
        n = (CASE WHEN counters.n > $3 - 1 THEN counters.n ELSE $3 - 1 END) + $2 \
        RETURNING n";
    pub const COUNT_FEED: &str = "SELECT count(*) FROM feed WHERE domain_id = $1 AND seq > $2";
}

/// How a batch is sent: its inserts grouped by collection into multi-row statements, then
/// its replaces, its links (multi-row) and its unlinks, each kind in the batch's order. One
/// statement per row costs more than the row itself (an import writes three rows per user).
pub(crate) struct BatchPlan<'a> {
    /// Chunks of at most [`ROWS_PER_INSERT`] documents of one collection.
    pub inserts: Vec<(Collection, Vec<&'a Doc>)>,
    pub replaces: Vec<(Collection, &'a Doc)>,
    /// Chunks of at most [`ROWS_PER_INSERT`] edges.
    pub links: Vec<Vec<(Edge, &'a str, &'a str)>>,
    pub unlinks: Vec<(Edge, &'a str, &'a str)>,
}

/// Rows per multi-row statement: well under both databases' limits on parameters.
pub(crate) const ROWS_PER_INSERT: usize = 250;

pub(crate) fn plan_batch(ops: &[WriteOp]) -> BatchPlan<'_> {
    let mut p = BatchPlan { inserts: Vec::new(), replaces: Vec::new(), links: Vec::new(), unlinks: Vec::new() };
    let mut by_collection: Vec<(Collection, Vec<&Doc>)> = Vec::new();
    let mut links = Vec::new();
    for op in ops {
        match op {
            WriteOp::Insert(c, d) => match by_collection.iter_mut().find(|(x, _)| x == c) {
                Some((_, v)) => v.push(d),
                None => by_collection.push((*c, vec![d])),
            },
            WriteOp::Replace(c, d) => p.replaces.push((*c, d)),
            WriteOp::Link(e, a, b) => links.push((*e, a.as_str(), b.as_str())),
            WriteOp::Unlink(e, a, b) => p.unlinks.push((*e, a.as_str(), b.as_str())),
        }
    }
    for (c, docs) in by_collection {
        p.inserts.extend(docs.chunks(ROWS_PER_INSERT).map(|ch| (c, ch.to_vec())));
    }
    p.links = links.chunks(ROWS_PER_INSERT).map(<[_]>::to_vec).collect();
    p
}

/// `INSERT INTO table (id, key1, key2, doc) VALUES ($1, $2, $3, $4<cast>), …` for `rows`.
/// (Parameters in the dialect's spelling: SQLite's `?` are bound by position, where
/// numbered ones are looked up by name, one scan of the statement's names per value.)
pub(crate) fn insert_rows<D: Dialect>(table: &str, rows: usize, doc_cast: &str) -> String {
    let mut sql = format!("INSERT INTO {table} (id, key1, key2, doc) VALUES ");
    for r in 0..rows {
        let n = r * 4;
        if r > 0 {
            sql.push_str(", ");
        }
        let p = |i| D::param(n + i);
        sql.push_str(&format!("({}, {}, {}, {}{doc_cast})", p(1), p(2), p(3), p(4)));
    }
    sql
}

/// `INSERT INTO edges (kind, src, dst) VALUES …` for `rows`, existing edges kept.
pub(crate) fn link_rows<D: Dialect>(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO edges (kind, src, dst) VALUES ");
    for r in 0..rows {
        let n = r * 3;
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("({}, {}, {})", D::param(n + 1), D::param(n + 2), D::param(n + 3)));
    }
    sql.push_str(" ON CONFLICT DO NOTHING");
    sql
}

/// `SELECT <doc> FROM table WHERE key1 (or key2) IN ($1, …)` for `n` keys.
pub(crate) fn by_keys<D: Dialect>(table: &str, key2: bool, n: usize) -> String {
    let params: Vec<String> = (1..=n).map(D::param).collect();
    let doc = doc_select::<D>(table);
    format!("SELECT {doc} FROM {table} WHERE {} IN ({})", if key2 { "key2" } else { "key1" }, params.join(", "))
}

/// A unique key is stored lowercased, so uniqueness and lookups ignore case.
pub(crate) fn lower(k: &Option<String>) -> Option<String> {
    k.as_ref().map(|s| s.to_lowercase())
}

/// The conflict error of a unique violation on `c`, from the violated index's name (or the
/// database's message naming it): a unix id, the second key (`key2`), or the first.
pub(crate) fn conflict(c: Collection, index: &str) -> StoreError {
    let [k1, k2] = c.key_names();
    let field = if index.contains("unix_uid") {
        "unix_uid"
    } else if index.ends_with("key2") {
        k2
    } else {
        k1
    };
    StoreError::Conflict { collection: singular(c), field }
}

pub(crate) fn singular(c: Collection) -> &'static str {
    match c {
        Collection::Users => "user",
        Collection::Groups => "group",
        Collection::Domains => "domain",
        Collection::Agents => "agent",
        Collection::ApiKeys => "api key",
        Collection::Notifications => "notification",
        Collection::History => "history entry",
        Collection::RadiusServers => "radius server",
    }
}

/// Decodes a stored JSON document.
pub(crate) fn parse(s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Binds `binds` in order (a list query's filter values).
pub(crate) fn bind_all<'q, DB: sqlx::Database>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.as_str()),
            Bind::Int(i) => q.bind(*i),
        };
    }
    q
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tether_core::query::{parse_filter_param, USER_FIELDS};

    /// A dialect that spells everything visibly, to test the walk itself.
    pub(crate) struct T;
    impl Dialect for T {
        const TRUE: &'static str = "T";
        const FALSE: &'static str = "F";
        const DOC: &'static str = "d";
        const VERSIONED_DOC: &'static str = "d";
        fn param(n: usize) -> String {
            format!("${n}")
        }
        fn field(name: &str) -> String {
            format!("f({name})")
        }
        fn bool(b: bool) -> Bind {
            Bind::Int(i64::from(b))
        }
        fn regex(p: &str) -> Bind {
            Bind::Text(format!("re:{p}"))
        }
        fn number(p: &str) -> String {
            format!("n({p})")
        }
        fn cmp(col: &str, op: Op, param: &str) -> String {
            format!("{col} {op:?} {param}")
        }
        fn sort(col: &str, desc: bool) -> String {
            format!("{col} {}", if desc { "D" } else { "A" })
        }
        fn sort_key(col: &str) -> String {
            format!("k({col})")
        }
        fn text_index(table: &str, fields: &[&str], term: &str) -> Option<(String, Bind)> {
            let covered = table == "users" && fields.iter().all(|f| ["username", "email"].contains(f));
            covered.then(|| (format!("idx({}) {{p}}", fields.join(",")), Bind::Text(format!("m:{term}"))))
        }
    }

    #[test]
    fn a_substring_search_a_text_index_covers_is_narrowed_by_it_first() {
        let search = |fields: &[&'static str], term: &str| {
            let parts = fields
                .iter()
                .map(|f| Filter::Cmp { field: f, op: Op::Search, value: Scalar::Text(term.into()) })
                .collect();
            Filter::Or(parts)
        };
        let suspended = || parse_filter_param(USER_FIELDS, "suspended:$eq:true").unwrap();
        let rows: [(&str, Filter, &str, Vec<Bind>); 5] = [
            // covered: the index's condition, then the search itself on what it lets through
            (
                "users",
                Filter::And(vec![suspended(), search(&["username", "email"], "ann")]),
                "(f(suspended) Eq $1 AND (idx(username,email) $2 AND (f(username) Search $3 OR f(email) Search $4)))",
                vec![Bind::Int(1), Bind::Text("m:ann".into()), Bind::Text("ann".into()), Bind::Text("ann".into())],
            ),
            // one field, as `username:search:ann` gives it
            (
                "users",
                Filter::Cmp { field: "username", op: Op::Search, value: Scalar::Text("ann".into()) },
                "(idx(username) $1 AND f(username) Search $2)",
                vec![Bind::Text("m:ann".into()), Bind::Text("ann".into())],
            ),
            // a field the index does not cover: only the one it covers is narrowed
            (
                "users",
                search(&["username", "lastname"], "ann"),
                "((idx(username) $1 AND f(username) Search $2) OR f(lastname) Search $3)",
                vec![Bind::Text("m:ann".into()), Bind::Text("ann".into()), Bind::Text("ann".into())],
            ),
            // another table, two different terms
            ("groups", search(&["username"], "ann"), "(f(username) Search $1)", vec![Bind::Text("ann".into())]),
            (
                "users",
                Filter::Or(vec![search(&["username"], "ann"), search(&["email"], "bob")]),
                "((idx(username) $1 AND (f(username) Search $2)) OR (idx(email) $3 AND (f(email) Search $4)))",
                vec![
                    Bind::Text("m:ann".into()),
                    Bind::Text("ann".into()),
                    Bind::Text("m:bob".into()),
                    Bind::Text("bob".into()),
                ],
            ),
        ];
        for (table, f, want, binds) in rows {
            let l = list_sql::<T>(table, &ListQuery { filter: Some(f), sort: None, limit: 1, skip: 0 });
            assert_eq!(l.count, format!("SELECT count(*) FROM {table} WHERE {want}"), "{table}");
            assert_eq!(&l.binds[..l.count_binds], &binds[..], "{want}");
        }
    }

    #[test]
    fn walks_and_numbers_parameters() {
        let f = Filter::And(vec![
            parse_filter_param(USER_FIELDS, "suspended:$eq:true").unwrap(),
            Filter::Or(vec![
                parse_filter_param(USER_FIELDS, "firstname:in:a|b").unwrap(),
                Filter::In { field: "id", values: vec![] },
                Filter::Cmp { field: "username", op: Op::Regex, value: Scalar::Text("^x".into()) },
            ]),
            Filter::Or(vec![]),
        ]);
        let q = ListQuery { filter: Some(f), sort: Some(("lastname", true)), limit: 5, skip: 10 };
        let l = list_sql::<T>("users", &q);
        let cond = "(f(suspended) Eq $1 AND (f(firstname) IN ($2, $3) OR F OR f(username) Regex $4) AND F)";
        assert_eq!(l.count, format!("SELECT count(*) FROM users WHERE {cond}"));
        assert_eq!(l.count_binds, 4);
        // A page after the first: the window is taken in the index, then its documents read.
        let order = "ORDER BY f(lastname) D, seq";
        assert_eq!(
            l.select,
            format!(
                "SELECT d FROM users WHERE seq IN (SELECT seq FROM users WHERE {cond} {order} LIMIT $5 OFFSET $6) {order}"
            )
        );
        let first = list_sql::<T>("users", &ListQuery { skip: 0, ..q.clone() });
        assert_eq!(first.select, format!("SELECT d FROM users WHERE {cond} {order} LIMIT $5 OFFSET $6"));
        assert_eq!(
            l.binds,
            [
                Bind::Int(1),
                Bind::Text("a".into()),
                Bind::Text("b".into()),
                Bind::Text("re:^x".into()),
                Bind::Int(5),
                Bind::Int(10)
            ]
        );
    }

    #[test]
    fn batches_go_by_kind_in_order_and_in_chunks() {
        use crate::{Collection, Doc, Edge, WriteOp};
        let doc = |id: &str| Doc { id: id.into(), key1: None, key2: None, body: Value::Null, version: None };
        let mut ops = vec![
            WriteOp::Link(Edge::Member, "g".into(), "u1".into()),
            WriteOp::Insert(Collection::History, doc("h1")),
            WriteOp::Insert(Collection::Users, doc("u1")),
            WriteOp::Unlink(Edge::Member, "g".into(), "u0".into()),
            WriteOp::Replace(Collection::Users, doc("u9")),
            WriteOp::Insert(Collection::History, doc("h2")),
        ];
        ops.extend((0..ROWS_PER_INSERT + 1).map(|i| WriteOp::Link(Edge::DomainUser, "d".into(), format!("x{i}"))));
        let p = plan_batch(&ops);
        let inserts: Vec<(Collection, Vec<&str>)> =
            p.inserts.iter().map(|(c, d)| (*c, d.iter().map(|d| d.id.as_str()).collect())).collect();
        assert_eq!(inserts, [(Collection::History, vec!["h1", "h2"]), (Collection::Users, vec!["u1"])]);
        assert_eq!(p.replaces.len(), 1);
        assert_eq!(p.unlinks, [(Edge::Member, "g", "u0")]);
        assert_eq!(p.links.iter().map(Vec::len).collect::<Vec<_>>(), [ROWS_PER_INSERT, 2]);
        assert_eq!(p.links[0][0], (Edge::Member, "g", "u1"));
        assert_eq!(
            insert_rows::<T>("t", 2, "::jsonb"),
            "INSERT INTO t (id, key1, key2, doc) VALUES ($1, $2, $3, $4::jsonb), ($5, $6, $7, $8::jsonb)"
        );
        assert_eq!(link_rows::<T>(1), "INSERT INTO edges (kind, src, dst) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING");
        assert_eq!(by_keys::<T>("users", true, 2), "SELECT d FROM users WHERE key2 IN ($1, $2)");
    }

    #[test]
    fn a_window_at_or_past_the_total_has_nothing_to_read() {
        let rows: [(i64, usize, usize, bool); 6] = [
            (0, 0, 100, true),
            (1, 0, 100, false),
            (250, 200, 100, false),
            (250, 250, 100, true),
            (250, 300, 100, true),
            (250, 0, 0, true),
        ];
        for (total, skip, limit, want) in rows {
            let q = ListQuery { filter: None, sort: None, limit, skip };
            assert_eq!(nothing_to_read(total, &q), want, "total {total}, skip {skip}, limit {limit}");
        }
        let huge = ListQuery { filter: None, sort: None, limit: 1, skip: usize::MAX };
        assert!(nothing_to_read(i64::MAX, &huge));
    }

    #[test]
    fn unbounded_windows_saturate() {
        let q = ListQuery { filter: None, sort: None, limit: usize::MAX, skip: 0 };
        let l = list_sql::<T>("groups", &q);
        assert_eq!(l.select, "SELECT d, seq FROM groups ORDER BY seq LIMIT $1 OFFSET $2");
        assert_eq!(l.binds, [Bind::Int(i64::MAX), Bind::Int(0)]);
    }
}
