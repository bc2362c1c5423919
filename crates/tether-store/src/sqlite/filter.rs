//! The SQLite dialect of the filter translation ([`crate::sql`]): document fields read with
//! `json_extract` (booleans come out as 1/0), `?` parameters, `REGEXP` from sqlx's `regexp`
//! feature (Rust regex syntax, case-insensitive through `(?i)`), and `COLLATE NOCASE`
//! (ASCII case folding, then bytes) for sorting. A substring search of the users' username,
//! email, first or last name of 3 characters or more is narrowed first by the FTS5 trigram
//! index `users_text` (schema step 13).

use tether_core::query::Op;

use crate::sql::{Bind, Dialect};

pub(crate) struct Sqlite;

/// The users' fields in the `users_text` index (its columns have their names).
pub(crate) const TEXT_INDEXED: [&str; 4] = ["username", "email", "firstname", "lastname"];

/// The condition of the partial indexes `users_unusual_*` (schema step 19).
const UNUSUAL: &str = "(json_extract(doc, '$.state') IS NOT 'ACTIVATED' OR json_extract(doc, '$.suspended') = 1 \
                       OR json_extract(doc, '$.account_locked') = 1 OR json_extract(doc, '$.password_expired') = 1)";

impl Dialect for Sqlite {
    const TRUE: &'static str = "1";
    const FALSE: &'static str = "0";
    const DOC: &'static str = "doc";
    const VERSIONED_DOC: &'static str = "json_set(doc, '$._v', version)";

    fn param(_: usize) -> String {
        "?".to_string()
    }

    fn field(name: &str) -> String {
        format!("json_extract(doc, '$.{name}')")
    }

    fn unusual() -> Option<&'static str> {
        Some(UNUSUAL)
    }

    /// As schema step 20 spells it.
    fn flagged(flag: crate::flagged::Flag) -> Option<String> {
        Some(format!("json_extract(doc, '$.{}') = {}", flag.field, i64::from(flag.value)))
    }

    fn bool(b: bool) -> Bind {
        Bind::Int(i64::from(b))
    }

    fn regex(pattern: &str) -> Bind {
        Bind::Text(format!("(?i){pattern}"))
    }

    fn number(param: &str) -> String {
        param.to_string()
    }

    fn cmp(col: &str, op: Op, p: &str) -> String {
        match op {
            Op::Eq => format!("{col} = {p}"),
            Op::Ne => format!("{col} IS NOT {p}"),
            Op::Gt => format!("{col} > {p}"),
            Op::Ge => format!("{col} >= {p}"),
            Op::Lt => format!("{col} < {p}"),
            Op::Le => format!("{col} <= {p}"),
            Op::Search => format!("instr(lower(coalesce({col}, '')), lower({p})) > 0"),
            Op::Regex => format!("coalesce({col}, '') REGEXP {p}"),
        }
    }

    fn text_index(table: &str, fields: &[&str], term: &str) -> Option<(String, Bind)> {
        // A trigram index finds nothing for a shorter term.
        // (FTS5 cannot take a NUL in a phrase: such a term is searched by scan.)
        let covered = table == "users"
            && term.chars().count() >= 3
            && !term.contains('\0')
            && fields.iter().all(|f| TEXT_INDEXED.contains(f));
        let phrase = format!("{{{}}} : \"{}\"", fields.join(" "), term.replace('"', "\"\""));
        covered.then(|| {
            ("seq IN (SELECT rowid FROM users_text WHERE users_text MATCH {p})".to_string(), Bind::Text(phrase))
        })
    }

    fn sort(col: &str, desc: bool) -> String {
        format!("{} {}", Self::sort_key(col), if desc { "DESC" } else { "ASC" })
    }

    fn sort_key(col: &str) -> String {
        format!("{col} COLLATE NOCASE")
    }
}
