//! The total of a list filtered by the users' closed-valued fields alone is read from the
//! users' tally (`tally.rs`): it must be the number of documents the filter matches, for
//! every operator, after every kind of write, for documents whose fields are missing or of
//! another type than the model writes, and on PostgreSQL across the folds of its deltas.
//! The lists' pages, read through partial indexes where a filter implies one (`unusual.rs`,
//! `flagged.rs`), must hold that many documents. Both backends.

use serde_json::{json, Value};
use tether_core::query::{parse_filter_param, Filter, ListQuery, Op, Scalar, USER_FIELDS};
use tether_core::user::UserState;
use tether_store::{Collection, Doc, Store, WriteOp};

use crate::common::{user, Backend, Db};

on_both_backends!(the_tally_answers_what_the_documents_do);

/// A user whose closed-valued fields vary with `i`.
fn varied(i: usize) -> Doc {
    let mut u = user(i, "ann", false);
    u.state = [UserState::Staged, UserState::Activated, UserState::Suspended][i % 3];
    u.suspended = i % 3 == 2;
    u.activated = !i.is_multiple_of(3);
    u.externally_managed = i.is_multiple_of(2);
    u.account_locked = i.is_multiple_of(5);
    u.password_expired = i % 7 == 1;
    u.sudo = i % 11 == 3;
    u.ldap_binding_user = i % 13 == 4;
    u.password_never_expires = i.is_multiple_of(4);
    tether_store::user_doc(&u)
}

/// The same user with a field set to `v` (`Null` removes it).
fn with(mut d: Doc, field: &str, v: Value) -> Doc {
    match v {
        Value::Null => {
            d.body.as_object_mut().unwrap().remove(field);
        }
        v => d.body[field] = v,
    }
    d
}

/// Filters of tallied fields alone, each operator and combination among them.
fn filters() -> Vec<Filter> {
    let p = |s: &str| parse_filter_param(USER_FIELDS, s).unwrap();
    let cmp = |field, op, v: &str| Filter::Cmp { field, op, value: Scalar::Text(v.into()) };
    vec![
        p("state:$eq:ACTIVATED"),
        p("state:$ne:SUSPENDED"),
        p("state:$in:STAGED|SUSPENDED"),
        p("state:$gt:B"),
        cmp("state", Op::Regex, "^s"),
        cmp("state", Op::Search, "ATE"),
        p("suspended:$eq:true"),
        p("suspended:$eq:false"),
        p("suspended:$ne:true"),
        Filter::And(vec![p("externally_managed:$eq:true"), p("state:$eq:ACTIVATED")]),
        Filter::Or(vec![p("account_locked:$eq:true"), p("password_expired:$eq:true")]),
        Filter::And(vec![
            p("sudo:$eq:false"),
            Filter::Or(vec![p("activated:$eq:true"), p("ldap_binding_user:$eq:true")]),
        ]),
        p("password_never_expires:$eq:false"),
        // Lists of a flag's users, which also read its partial indexes (`flagged.rs`).
        p("sudo:$eq:true"),
        p("ldap_binding_user:$eq:true"),
        p("password_never_expires:$eq:true"),
        p("activated:$eq:false"),
        Filter::And(vec![p("state:$eq:ACTIVATED"), p("sudo:$eq:true")]),
        Filter::Or(vec![p("sudo:$eq:true"), p("ldap_binding_user:$eq:true")]),
        Filter::And(vec![]),
    ]
}

/// Each filter's total; the documents it matches, counted (the filter and a term no tally
/// holds); and the number of documents its list returns.
async fn totals(s: &dyn Store) -> Vec<(u64, u64, usize)> {
    let mut out = Vec::new();
    for f in filters() {
        let all = |filter| ListQuery { filter: Some(filter), limit: 10_000, ..Default::default() };
        let (total, docs) = s.list(Collection::Users, &all(f.clone())).await.unwrap();
        let any_id = parse_filter_param(USER_FIELDS, "id:$ne:none").unwrap();
        let (counted, _) = s.list(Collection::Users, &all(Filter::And(vec![f, any_id]))).await.unwrap();
        out.push((total, counted, docs.len()));
    }
    out
}

async fn check(s: &dyn Store, after: &str) {
    for (i, (total, counted, docs)) in totals(s).await.into_iter().enumerate() {
        assert_eq!((total, total as usize), (counted, docs), "{after}: filter {:?}", filters()[i]);
    }
}

async fn the_tally_answers_what_the_documents_do(b: Backend) {
    let db = Db::new(b).await;
    let s = db.open().await;
    let s = s.as_ref();
    // Several users in one statement.
    let ops: Vec<WriteOp> = (0..40).map(|i| WriteOp::Insert(Collection::Users, varied(i))).collect();
    s.write_batch(&ops).await.unwrap();
    check(s, "a batch of inserts").await;
    assert_eq!(totals(s).await[0].0, 13, "ACTIVATED: every third of 40");
    // Documents the model would not write: a field missing, a boolean as text, a null state.
    s.insert(Collection::Users, &with(varied(40), "suspended", Value::Null)).await.unwrap();
    s.insert(Collection::Users, &with(varied(41), "suspended", json!("true"))).await.unwrap();
    s.insert(Collection::Users, &with(varied(42), "state", Value::Null)).await.unwrap();
    s.insert(Collection::Users, &with(varied(43), "sudo", json!(1))).await.unwrap();
    check(s, "odd documents").await;
    // Updates: of a tallied field, of another field, a tallied field removed.
    assert!(s.replace(Collection::Users, &with(varied(1), "state", json!("SUSPENDED"))).await.unwrap());
    check(s, "a state changed").await;
    assert!(s.replace(Collection::Users, &with(varied(4), "department", json!("Sales"))).await.unwrap());
    check(s, "another field changed").await;
    assert!(s.replace(Collection::Users, &with(varied(5), "account_locked", Value::Null)).await.unwrap());
    check(s, "a field removed").await;
    // Deletions, and updates in a batch.
    for i in [7, 8, 41] {
        assert!(s.delete(Collection::Users, &varied(i).id).await.unwrap());
    }
    check(s, "deletions").await;
    let ops = vec![
        WriteOp::Replace(Collection::Users, with(varied(9), "suspended", json!(true))),
        WriteOp::Replace(Collection::Users, with(varied(10), "externally_managed", json!(false))),
        WriteOp::Insert(Collection::Users, varied(44)),
    ];
    s.write_batch(&ops).await.unwrap();
    check(s, "a batch of updates and an insert").await;
    // Many single writes: PostgreSQL folds its deltas meanwhile, and the tally stays a few
    // rows (one per combination, and the deltas since the last fold).
    for i in 100..300 {
        s.insert(Collection::Users, &varied(i)).await.unwrap();
        if !i.is_multiple_of(2) {
            assert!(s.delete(Collection::Users, &varied(i - 1).id).await.unwrap());
        }
    }
    check(s, "single inserts and deletions").await;
    assert_eq!(totals(s).await.last().unwrap().0, 40 + 4 - 3 + 1 + 200 - 100, "every user");
    let rows: i64 = match b {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.dir.path().join("tether.db").display()))
                .await
                .unwrap();
            sqlx::query_scalar("SELECT count(*) FROM users_tally").fetch_one(&pool).await.unwrap()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.pg.as_ref().unwrap().url).await.unwrap();
            sqlx::query_scalar("SELECT count(*) FROM users_tally").fetch_one(&pool).await.unwrap()
        }
    };
    assert!(rows < 100, "{rows} rows in the tally after 300 writes");
    // A filter no user matches, and a page past the end: answered without reading a page.
    let before = s.page_starts();
    let q = ListQuery { filter: Some(p_state("ARCHIVED")), limit: 10, ..Default::default() };
    let (total, docs) = s.list(Collection::Users, &q).await.unwrap();
    assert_eq!((total, docs.len()), (0, 0));
    let (total, docs) = s.list(Collection::Users, &ListQuery { skip: 142, ..Default::default() }).await.unwrap();
    assert_eq!((total, docs.len()), (142, 0));
    let after = s.page_starts();
    assert_eq!((after.offset, after.continued, after.marked), (before.offset, before.continued, before.marked));
}

fn p_state(s: &str) -> Filter {
    parse_filter_param(USER_FIELDS, &format!("state:$eq:{s}")).unwrap()
}
