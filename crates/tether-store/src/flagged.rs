//! The users granted sudo or LDAP binding, or whose password never expires, each flag with
//! partial indexes of the users that have it.
//!
//! These are a security review's lists (who is an administrator on systems, who may bind to
//! the LDAP front end, whose password is exempt from expiry), and in a directory they are a
//! few users among many. Their totals are summed from the tally (`tally.rs`), but the page
//! walked the sort index, reading each user's document, until it had found its rows: every
//! user when they are few (three with sudo among 1,000,000). For each flag, two partial
//! indexes hold only the users that have it, one by username and one by insertion order
//! (SQLite schema step 20, PostgreSQL step 18). One pair per flag, not one for the three:
//! an organisation where most passwords never expire would otherwise walk most users to
//! list its three with sudo. Users without the flags cost a write nothing but evaluating the
//! conditions.
//!
//! The users' source (`externally_managed`: imported from AD, or Tether's own) is a flag too,
//! and the console lists by it, but either value may be the rare one: a directory that
//! wraps AD holds a few users of its own, and after the move off AD a few are still AD's.
//! It has a whole index instead (`users_by_source`, SQLite step 21, PostgreSQL step 19), by
//! value then username, so a page of either value sorted as the console sorts is read in
//! order; on SQLite a second one by value then insertion order (`users_by_source_in_order`),
//! since SQLite takes an index for any value and would otherwise sort every user of the
//! common value for a page in insertion order (PostgreSQL's statistics send such a page to
//! the table's order). Its total, like every flag's, comes from the tally.
//!
//! As with the unusual users (`unusual.rs`), a filter that can only match users with the
//! flag ([`implied`]) carries the index's condition too, word for word, which changes no
//! answer. SQLite would match `flag = ?` to the index by the bound value (it prepares the
//! statement again with it), and so would PostgreSQL's plans made for the values, but not
//! the generic plan PostgreSQL turns to for a statement run often.

use tether_core::query::{Filter, Op, Scalar};

/// The flags with partial indexes of their own: `users_<flag>_by_username` and
/// `users_<flag>_by_seq` in both stores, under [`Dialect::flagged`](crate::sql::Dialect)'s
/// condition.
pub(crate) const FLAGS: [&str; 3] = ["sudo", "ldap_binding_user", "password_never_expires"];

/// The flag every document `f` matches has true, if there is one ([`FLAGS`]' order decides
/// between several). Conservative: `None` only costs the index.
pub(crate) fn implied(f: &Filter) -> Option<&'static str> {
    FLAGS.into_iter().find(|flag| has(f, flag))
}

/// Whether every document `f` matches has `flag` true.
fn has(f: &Filter, flag: &str) -> bool {
    match f {
        Filter::Cmp { field, op: Op::Eq, value: Scalar::Bool(true) } => field == &flag,
        Filter::And(parts) => parts.iter().any(|p| has(p, flag)),
        Filter::Or(parts) => !parts.is_empty() && parts.iter().all(|p| has(p, flag)),
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

    /// For each flag, pages of the users that have it, in insertion order and sorted by
    /// username (at the start and deep), each with the partial index that should serve it.
    fn pages<D: Dialect>() -> Vec<(String, ListSql)> {
        let mut out = Vec::new();
        for flag in FLAGS {
            for (sort, by) in [(None, "seq"), (Some(("username", false)), "username")] {
                for skip in [0, 200] {
                    let filter = Some(parse_filter_param(USER_FIELDS, &format!("{flag}:$eq:true")).unwrap());
                    let l = list_sql::<D>("users", &ListQuery { filter, sort, limit: 100, skip });
                    out.push((format!("users_{flag}_by_{by}"), l));
                }
            }
        }
        out
    }

    /// SQLite walks the flag's partial index in the page's order, without sorting afterwards.
    #[tokio::test]
    async fn sqlite_pages_the_users_with_a_flag_by_its_partial_index() {
        let (_dir, mut c) = plans::sqlite().await;
        for (index, l) in pages::<Sqlite>() {
            let (walked, plan) = plans::sqlite_walks(&mut c, &l, &index).await;
            assert!(walked, "{}: {plan:?}", l.select);
        }
    }

    /// PostgreSQL may use either of the flag's indexes (its statistics decide), but no other
    /// flag's; in a generic plan too, which it turns to after five runs of a prepared
    /// statement when that costs no more, and where the bound `true` is unknown: only the
    /// added term lets such a plan use the index.
    #[tokio::test]
    async fn postgres_pages_the_users_with_a_flag_by_its_partial_index() {
        let (_db, mut c) = plans::postgres().await;
        for (index, l) in pages::<Postgres>() {
            let plan = plans::postgres_generic_plan(&mut c, &l.select, &l.binds).await;
            let prefix = index.trim_end_matches("username").trim_end_matches("seq");
            let partial = names(&plan, &format!("{prefix}username")) || names(&plan, &format!("{prefix}seq"));
            assert!(partial, "{}: {plan:#?}", l.select);
        }
    }

    /// The console's lists by source (alone, and with a state), sorted by username, and a
    /// script's in insertion order: each value, at the start and deep.
    fn by_source<D: Dialect>() -> Vec<ListSql> {
        let mut out = Vec::new();
        for value in ["true", "false"] {
            let source = parse_filter_param(USER_FIELDS, &format!("externally_managed:$eq:{value}")).unwrap();
            let active = parse_filter_param(USER_FIELDS, "state:$eq:ACTIVATED").unwrap();
            for (filter, sort) in [
                (Filter::And(vec![source.clone()]), Some(("username", false))),
                (Filter::And(vec![source.clone(), active]), Some(("username", false))),
                (source, None),
            ] {
                for skip in [0, 200] {
                    let q = ListQuery { filter: Some(filter.clone()), sort, limit: 200, skip };
                    out.push(list_sql::<D>("users", &q));
                }
            }
        }
        out
    }

    /// SQLite reads each through one of the source's indexes, in the page's order: a page of
    /// the common value must not sort every user who has it.
    #[tokio::test]
    async fn sqlite_reads_the_users_of_a_source_through_its_index() {
        let (_dir, mut c) = plans::sqlite().await;
        for l in by_source::<Sqlite>() {
            let index = if l.order.contains("username") { "users_by_source" } else { "users_by_source_in_order" };
            let (walked, plan) = plans::sqlite_walks(&mut c, &l, index).await;
            assert!(walked, "{}: {plan:?}", l.select);
        }
    }

    /// PostgreSQL can read each through it (scans off: its statistics decide at run time,
    /// and a common value may be read through the username's index instead).
    #[tokio::test]
    async fn postgres_reads_the_users_of_a_source_through_its_index() {
        let (_db, mut c) = plans::postgres().await;
        for l in by_source::<Postgres>() {
            let plan = plans::postgres_generic_plan(&mut c, &l.select, &l.binds).await;
            assert!(names(&plan, "users_by_source"), "{}: {plan:#?}", l.select);
        }
    }

    #[test]
    fn a_filter_implies_a_flag_only_when_it_matches_no_user_without_it() {
        let f = |s: &str| parse_filter_param(USER_FIELDS, s).unwrap();
        #[rustfmt::skip]
        let rows: [(Filter, Option<&str>); 12] = [
            (f("sudo:$eq:true"), Some("sudo")),
            (f("ldap_binding_user:$eq:true"), Some("ldap_binding_user")),
            (f("password_never_expires:$eq:true"), Some("password_never_expires")),
            (f("sudo:$eq:false"), None),
            (f("sudo:$ne:false"), None),                  // a missing flag too
            (f("suspended:$eq:true"), None),               // the unusual users' own index
            (f("department:$eq:IT"), None),
            (Filter::And(vec![f("department:$eq:IT"), f("ldap_binding_user:$eq:true")]), Some("ldap_binding_user")),
            (Filter::Or(vec![f("sudo:$eq:true"), f("department:$eq:IT")]), None),
            (Filter::Or(vec![f("sudo:$eq:true"), f("ldap_binding_user:$eq:true")]), None),
            (Filter::Or(vec![]), None),                    // matches nobody: no index needed
            (Filter::And(vec![f("ldap_binding_user:$eq:true"), f("sudo:$eq:true")]), Some("sudo")),
        ];
        for (filter, want) in rows {
            assert_eq!(implied(&filter), want, "{filter:?}");
        }
        let both = Filter::Or(vec![Filter::And(vec![f("sudo:$eq:true"), f("department:$eq:IT")]), f("sudo:$eq:true")]);
        assert_eq!(implied(&both), Some("sudo"));
    }
}
