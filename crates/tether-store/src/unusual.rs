//! The users who are not simply active (staged or suspended, locked, or with an expired
//! password), found through partial indexes of them alone.
//!
//! The console lists the staged or the suspended users, and scripts ask for the locked or
//! the suspended. Their totals are summed from the tally (`tally.rs`), but the page itself
//! walked the sort index, reading each user's document, until it had found its rows: every
//! user when they are few (three suspended among 1,000,000: ~1–2 s on SQLite, ~0.4 s on
//! PostgreSQL). Two partial indexes hold only the users [`Dialect::unusual`] matches, one by
//! username and one by insertion order (SQLite schema step 19, PostgreSQL step 17); active
//! users cost a write nothing but evaluating the condition.
//!
//! A partial index serves a query only when the query's condition includes the index's
//! (each database proves it by comparing expressions, and neither can see that
//! `state = $1`, bound to `SUSPENDED`, excludes `ACTIVATED`). So when a filter can only
//! match such users ([`implied`]), its statements also carry the index's condition, word for
//! word: a term that changes no answer, since every row the filter matches satisfies it.

use tether_core::query::{Filter, Op, Scalar};

/// The value of `state` of an active user: every other value is unusual.
const ACTIVE: &str = "ACTIVATED";

/// Whether every document `f` matches satisfies [`Dialect::unusual`](crate::sql::Dialect):
/// a state other than active (as bytes, as both stores compare it), or one of the three
/// flags true. Conservative: `false` only costs the index.
pub(crate) fn implied(f: &Filter) -> bool {
    let unusual_state = |v: &Scalar| !matches!(v, Scalar::Text(t) if t == ACTIVE);
    match f {
        Filter::Cmp { field: "state", op: Op::Eq, value } => unusual_state(value),
        // `IS NOT` / `IS DISTINCT FROM`: the index's own term (a missing state included).
        Filter::Cmp { field: "state", op: Op::Ne, value } => !unusual_state(value),
        Filter::In { field: "state", values } => values.iter().all(unusual_state),
        Filter::Cmp {
            field: "suspended" | "account_locked" | "password_expired",
            op: Op::Eq,
            value: Scalar::Bool(true),
        } => true,
        Filter::And(parts) => parts.iter().any(implied),
        Filter::Or(parts) => parts.iter().all(implied),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use tether_core::query::{parse_filter_param, ListQuery, USER_FIELDS};

    use super::*;
    use crate::plans::{self, names};
    use crate::postgres::filter::Postgres;
    use crate::sql::{list_sql, Dialect, ListSql};
    use crate::sqlite::filter::Sqlite;

    /// Pages of lists only unusual users match, in insertion order and sorted by username
    /// (at the start and deep), each with the partial index that should serve it.
    fn pages<D: Dialect>() -> Vec<(&'static str, ListSql)> {
        let mut out = Vec::new();
        for f in ["state:$eq:SUSPENDED", "state:$in:STAGED|SUSPENDED", "suspended:$eq:true", "account_locked:$eq:true"]
        {
            for (sort, index) in
                [(None, "users_unusual_by_seq"), (Some(("username", false)), "users_unusual_by_username")]
            {
                for skip in [0, 200] {
                    let filter = Some(parse_filter_param(USER_FIELDS, f).unwrap());
                    out.push((index, list_sql::<D>("users", &ListQuery { filter, sort, limit: 100, skip })));
                }
            }
        }
        out
    }

    /// SQLite walks the partial index in the page's order, without sorting afterwards.
    #[tokio::test]
    async fn sqlite_pages_the_unusual_users_by_their_partial_index() {
        let (_dir, mut c) = plans::sqlite().await;
        for (index, l) in pages::<Sqlite>() {
            let (walked, plan) = plans::sqlite_walks(&mut c, &l, index).await;
            assert!(walked, "{}: {plan:?}", l.select);
        }
    }

    /// PostgreSQL may use them (which one, and whether it sorts after, its statistics
    /// decide: a few unusual users are read by either and sorted).
    #[tokio::test]
    async fn postgres_pages_the_unusual_users_by_their_partial_index() {
        let (_db, mut c) = plans::postgres().await;
        for (_, l) in pages::<Postgres>() {
            let plan = plans::postgres_plan(&mut c, &l.select, &l.binds).await;
            let partial = names(&plan, "users_unusual_by_seq") || names(&plan, "users_unusual_by_username");
            assert!(partial, "{}: {plan:#?}", l.select);
        }
    }

    #[test]
    fn a_filter_implies_the_unusual_users_only_when_it_matches_no_active_one() {
        let f = |s: &str| parse_filter_param(USER_FIELDS, s).unwrap();
        #[rustfmt::skip]
        let rows: [(Filter, bool); 15] = [
            (f("state:$eq:SUSPENDED"), true),
            (f("state:$eq:STAGED"), true),
            (f("state:$eq:activated"), true),             // not the active value, byte for byte
            (f("state:$eq:ACTIVATED"), false),
            (f("state:$ne:ACTIVATED"), true),              // the index's own term
            (f("state:$ne:STAGED"), false),
            (f("state:$in:STAGED|SUSPENDED"), true),
            (f("state:$in:STAGED|ACTIVATED"), false),
            (f("suspended:$eq:true"), true),
            (f("account_locked:$eq:true"), true),
            (f("password_expired:$eq:true"), true),
            (f("suspended:$eq:false"), false),
            (f("sudo:$eq:true"), false),
            (Filter::And(vec![f("department:$eq:IT"), f("account_locked:$eq:true")]), true),
            (Filter::Or(vec![f("state:$eq:STAGED"), f("department:$eq:IT")]), false),
        ];
        for (filter, want) in rows {
            assert_eq!(implied(&filter), want, "{filter:?}");
        }
        let both = Filter::Or(vec![f("state:$eq:STAGED"), f("password_expired:$eq:true")]);
        assert!(implied(&both));
    }
}
