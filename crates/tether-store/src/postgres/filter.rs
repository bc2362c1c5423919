//! The PostgreSQL dialect of the filter translation ([`crate::sql`]), written to give the
//! SQLite dialect's answers whatever the database's collation:
//!
//! - fields are read with `(doc->>'field')`, the expression the indexes are built on; a
//!   boolean reads as `'true'`/`'false'`, so booleans are bound as that text; the users'
//!   free-text fields lists are filtered by are read from their stored columns instead
//!   (the same value, `indexed.rs`), whose indexes answer a count alone;
//! - `$n` parameters;
//! - ranges (`$gt` …) compare under `COLLATE "C"` (bytes, as SQLite does); equality needs
//!   no collation (it is byte equality under every deterministic collation) and so keeps
//!   using the expression indexes;
//! - `search` and sorting fold case with `lower(… COLLATE "C")`, which folds ASCII letters
//!   only, exactly like SQLite's `lower()` and `NOCASE`; a missing field sorts first when
//!   ascending and last when descending, as NULLs do in SQLite;
//! - `search` for an ASCII term is `LIKE '%term%'` (the term's `%`, `_` and `\` escaped),
//!   which the trigram indexes of the users' username, email, first and last name serve
//!   (schema step 10, `pg_trgm`); other terms, and other fields, read every row, as before;
//! - regular expressions use `~*` (case-insensitive). Patterns are validated by the core
//!   with Rust regex syntax; PostgreSQL's ARE syntax agrees on everything but exotic
//!   constructs (named groups `(?P<n>…)`, `\pL` classes), which fail here as a database error.

use tether_core::query::Op;

use crate::sql::{Bind, Dialect};

pub(crate) struct Postgres;

/// The username field as [`Dialect::field`] spells it (users and groups alike: only the
/// users table has a username).
const USERNAME: &str = "(doc->>'username')";

/// The condition of the partial indexes `users_unusual_*` (schema step 17).
const UNUSUAL: &str = "((doc->>'state') IS DISTINCT FROM 'ACTIVATED' OR (doc->>'suspended') = 'true' \
                       OR (doc->>'account_locked') = 'true' OR (doc->>'password_expired') = 'true')";

impl Dialect for Postgres {
    const TRUE: &'static str = "TRUE";
    const FALSE: &'static str = "FALSE";
    const DOC: &'static str = "doc::text";
    const VERSIONED_DOC: &'static str = "(doc || jsonb_build_object('_v', version))::text";

    fn param(n: usize) -> String {
        format!("${n}")
    }

    fn field(name: &str) -> String {
        format!("(doc->>'{name}')")
    }

    fn unusual() -> Option<&'static str> {
        Some(UNUSUAL)
    }

    /// As schema step 18 spells it.
    fn flagged(flag: crate::flagged::Flag) -> Option<String> {
        Some(format!("(doc->>'{}') = '{}'", flag.field, flag.value))
    }

    fn stored(table: &str, field: &str) -> Option<String> {
        crate::indexed::indexed(table, field).map(str::to_string)
    }

    /// `->>` reads numbers as their text.
    fn number(param: &str) -> String {
        format!("CAST({param} AS TEXT)")
    }

    fn bool(b: bool) -> Bind {
        Bind::Text(b.to_string())
    }

    fn regex(pattern: &str) -> Bind {
        Bind::Text(pattern.to_string())
    }

    /// An ASCII term as a LIKE pattern (the trigram indexes serve it); any other term as
    /// itself, for `strpos`: pg_trgm folds case with the database's collation, which for some
    /// letters depends on their place in the word (Greek final sigma under ICU), so its index
    /// could miss a row the search matches.
    fn search(term: &str) -> Bind {
        if !term.is_ascii() {
            return Bind::Text(term.to_string());
        }
        let mut p = String::with_capacity(term.len() + 2);
        p.push('%');
        for c in term.chars() {
            if matches!(c, '%' | '_' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('%');
        Bind::Text(p)
    }

    fn cmp(col: &str, op: Op, p: &str) -> String {
        match op {
            Op::Eq => format!("{col} = {p}::text"),
            Op::Ne => format!("{col} IS DISTINCT FROM {p}::text"),
            Op::Gt => format!("{col} COLLATE \"C\" > {p}::text"),
            Op::Ge => format!("{col} COLLATE \"C\" >= {p}::text"),
            Op::Lt => format!("{col} COLLATE \"C\" < {p}::text"),
            Op::Le => format!("{col} COLLATE \"C\" <= {p}::text"),
            Op::Search => {
                format!("strpos(lower(coalesce({col}, '') COLLATE \"C\"), lower({p}::text COLLATE \"C\")) > 0")
            }
            Op::Regex => format!("coalesce({col}, '') ~* {p}::text"),
        }
    }

    fn search_cmp(col: &str, p: &str, term: &str) -> String {
        if term.is_ascii() {
            format!("lower(coalesce({col}, '') COLLATE \"C\") LIKE lower({p}::text COLLATE \"C\")")
        } else {
            Self::cmp(col, Op::Search, p)
        }
    }

    fn sort(col: &str, desc: bool) -> String {
        let dir = if desc { "DESC NULLS LAST" } else { "ASC NULLS FIRST" };
        format!("{} {dir}", Self::sort_key(col))
    }

    fn sort_key(col: &str) -> String {
        // The users' username sort key is stored (schema step 3), with the same value.
        if col == USERNAME {
            return "sort_username COLLATE \"C\"".to_string();
        }
        format!("lower({col} COLLATE \"C\")")
    }
}
