//! The users' free-text fields that lists are filtered by, each with an index of its own
//! (SQLite schema step 18, PostgreSQL step 16).
//!
//! A script lists the users of a department (`filter=department:$eq:IT` is JumpCloud's own
//! example), a company, a site, a job title, a manager's reports, or the one user with an
//! HR employee number. Without an index such a list counted every user for its total
//! (~1.1 s at 1,000,000 users on SQLite, ~0.23 s on PostgreSQL) and walked every user before
//! its page when the value was rare. With one, an equality or an `$in` on the field reads
//! only the users that match: their number for the total, and their rows for the page. The
//! SQLite indexes hold the username's sort key after the value, so a page sorted by username
//! is read in order (SQLite keeps no statistics and takes the index for a common value too,
//! where sorting 20,000 matches took ~80 ms); the PostgreSQL ones hold `seq`, and its
//! planner walks the username's index instead when the value is common.
//!
//! Each index is paid for by every write of a user (measured: docs/performance.md).
//! Closed-valued fields (the state, the flags) are summed from the tally instead
//! (`tally.rs`); the username and email have indexes of their own, and substring searches
//! the trigram indexes.

/// The fields, and the name each has in the schema: its index is `users_by_<name>` in both
/// backends, and on PostgreSQL its value is also the stored column `<name>` (read instead of
/// `doc->>'field'`, the same value, so that an index alone answers a count).
pub(crate) const INDEXED: [(&str, &str); 7] = [
    ("department", "department"),
    ("company", "company"),
    ("location", "location"),
    ("jobTitle", "job_title"),
    ("employeeType", "employee_type"),
    ("employeeIdentifier", "employee_identifier"),
    ("manager", "manager"),
];

/// The name an indexed field of `table` has in the schema.
pub(crate) fn indexed(table: &str, field: &str) -> Option<&'static str> {
    INDEXED.iter().find(|(f, _)| table == "users" && *f == field).map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use tether_core::query::{parse_filter_param, ListQuery, USER_FIELDS};

    use super::INDEXED;
    use crate::plans::{self, names, sorted_after, statements};
    use crate::postgres::filter::Postgres;
    use crate::sql::{list_sql, Dialect, ListSql};
    use crate::sqlite::filter::Sqlite;

    /// For each indexed field, an equality and an `$in`: the list's total and its page, at
    /// the start and deep, in insertion order or sorted by username.
    fn lists<D: Dialect>(sort: Option<(&'static str, bool)>) -> Vec<(String, ListSql)> {
        let mut out = Vec::new();
        for (field, name) in INDEXED {
            let index = format!("users_by_{name}");
            for f in [format!("{field}:$eq:IT"), format!("{field}:$in:IT|Sales")] {
                for skip in [0, 200] {
                    let filter = Some(parse_filter_param(USER_FIELDS, &f).unwrap());
                    out.push((index.clone(), list_sql::<D>("users", &ListQuery { filter, sort, limit: 100, skip })));
                }
            }
        }
        out
    }

    /// Every such statement names the field's index in its plan (a list without one scans
    /// the table: no `SEARCH … USING INDEX`). SQLite keeps no statistics, so it takes the
    /// index for any value; the index holds the username's sort key after the value, so an
    /// equality sorted by username is read in the index's order, not sorted afterwards.
    #[tokio::test]
    async fn sqlite_reads_a_list_filtered_by_an_indexed_field_through_its_index() {
        let (_dir, mut c) = plans::sqlite().await;
        let sorted = Some(("username", false));
        for (index, l) in lists::<Sqlite>(None).into_iter().chain(lists::<Sqlite>(sorted)) {
            let in_order = l.order.contains("username") && l.signature.contains(" = ");
            let deep = l.select.contains(" IN (SELECT");
            for (sql, binds) in statements(&l) {
                let plan = plans::sqlite_plan(&mut c, sql, binds).await;
                let by_index = plan.iter().any(|(_, d)| d.starts_with("SEARCH users USING") && d.contains(&index));
                assert!(by_index, "{sql}: {plan:?}");
                assert!(!(in_order && sorted_after(&plan, deep)), "{sql}: {plan:?}");
            }
        }
    }

    /// The same on PostgreSQL: the plan takes the index only if the filter reads its column.
    #[tokio::test]
    async fn postgres_reads_a_list_filtered_by_an_indexed_field_through_its_index() {
        let (_db, mut c) = plans::postgres().await;
        for (index, l) in lists::<Postgres>(None) {
            for (sql, binds) in statements(&l) {
                let plan = plans::postgres_plan(&mut c, sql, binds).await;
                assert!(names(&plan, &index), "{sql}: {plan:#?}");
            }
        }
    }
}
