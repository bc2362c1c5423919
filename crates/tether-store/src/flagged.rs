//! The users granted sudo or LDAP binding, whose password never expires, or who were never
//! activated, each flag with partial indexes of the users that have it.
//!
//! These are a security review's lists (who is an administrator on systems, who may bind to
//! the LDAP front end, whose password is exempt from expiry), and in a directory they are a
//! few users among many. Their totals are summed from the tally (`tally.rs`), but the page
//! walked the sort index, reading each user's document, until it had found its rows: every
//! user when they are few (three with sudo among 1,000,000). For each flag, two partial
//! indexes hold only the users that have it, one by username and one by insertion order
//! (SQLite schema step 20, PostgreSQL step 18). One pair per flag, not one for them all:
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

use crate::sql::Dialect;

/// A flag with partial indexes of its own: `users_<name>_by_username` and
/// `users_<name>_by_seq` in both stores, of the users whose `field` is `value`, under
/// [`Dialect::flagged`](crate::sql::Dialect)'s condition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Flag {
    pub(crate) name: &'static str,
    pub(crate) field: &'static str,
    pub(crate) value: bool,
}

const fn flag(name: &'static str, field: &'static str, value: bool) -> Flag {
    Flag { name, field, value }
}

/// The flags, in the order [`implied`] prefers them. Not activated: the users a script
/// written for JumpCloud's older API lists as pending activation (`activated:$eq:false`); by
/// the model they are staged or suspended, but the store adds a term only where the filter
/// itself proves it, so the unusual users' indexes cannot serve them.
pub(crate) const FLAGS: [Flag; 4] = [
    flag("sudo", "sudo", true),
    flag("ldap_binding_user", "ldap_binding_user", true),
    flag("password_never_expires", "password_never_expires", true),
    flag("not_activated", "activated", false),
];

/// The flag every document `f` matches has, if there is one ([`FLAGS`]' order decides
/// between several). Conservative: `None` only costs the index.
pub(crate) fn implied(f: &Filter) -> Option<Flag> {
    FLAGS.into_iter().find(|flag| has(f, flag))
}

/// Whether every document `f` matches has `flag`.
fn has(f: &Filter, flag: &Flag) -> bool {
    match f {
        Filter::Cmp { field, op: Op::Eq, value: Scalar::Bool(v) } => *field == flag.field && *v == flag.value,
        Filter::And(parts) => parts.iter().any(|p| has(p, flag)),
        Filter::Or(parts) => !parts.is_empty() && parts.iter().all(|p| has(p, flag)),
        _ => false,
    }
}

/// The condition of a partial index of the users that every row `f` matches satisfies, if
/// there is one, for the list's statements to carry: the unusual users' (`unusual.rs`),
/// else a flag's.
pub(crate) fn partial_index_term<D: Dialect>(table: &str, f: &Filter) -> Option<String> {
    if table != "users" {
        return None;
    }
    match D::unusual().filter(|_| crate::unusual::implied(f)) {
        Some(w) => Some(w.to_string()),
        None => implied(f).and_then(D::flagged),
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
        for Flag { name, field, value } in FLAGS {
            for (sort, by) in [(None, "seq"), (Some(("username", false)), "username")] {
                for skip in [0, 200] {
                    let filter = Some(parse_filter_param(USER_FIELDS, &format!("{field}:$eq:{value}")).unwrap());
                    let l = list_sql::<D>("users", &ListQuery { filter, sort, limit: 100, skip });
                    out.push((format!("users_{name}_by_{by}"), l));
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
    /// statement when that costs no more, and where the bound value is unknown: only the
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
        let name = |filter: &Filter| implied(filter).map(|flag| flag.name);
        #[rustfmt::skip]
        let rows: [(Filter, Option<&str>); 15] = [
            (f("sudo:$eq:true"), Some("sudo")),
            (f("ldap_binding_user:$eq:true"), Some("ldap_binding_user")),
            (f("password_never_expires:$eq:true"), Some("password_never_expires")),
            (f("activated:$eq:false"), Some("not_activated")),
            (f("activated:$eq:true"), None),
            (f("sudo:$eq:false"), None),
            (f("sudo:$ne:false"), None),                  // a missing flag too
            (f("suspended:$eq:true"), None),               // the unusual users' own index
            (f("department:$eq:IT"), None),
            (Filter::And(vec![f("department:$eq:IT"), f("ldap_binding_user:$eq:true")]), Some("ldap_binding_user")),
            (Filter::Or(vec![f("sudo:$eq:true"), f("department:$eq:IT")]), None),
            (Filter::Or(vec![f("sudo:$eq:true"), f("ldap_binding_user:$eq:true")]), None),
            (Filter::Or(vec![]), None),                    // matches nobody: no index needed
            (Filter::And(vec![f("ldap_binding_user:$eq:true"), f("sudo:$eq:true")]), Some("sudo")),
            (Filter::And(vec![f("activated:$eq:false"), f("sudo:$eq:true")]), Some("sudo")),
        ];
        for (filter, want) in rows {
            assert_eq!(name(&filter), want, "{filter:?}");
        }
        let both = Filter::Or(vec![Filter::And(vec![f("sudo:$eq:true"), f("department:$eq:IT")]), f("sudo:$eq:true")]);
        assert_eq!(name(&both), Some("sudo"));
    }
}
