//! Lists filtered by the users' free-text fields that have an index of their own
//! (`indexed.rs`: department, company, location, job title, employee type and identifier,
//! manager) answer what the documents hold: the total and every page, for each operator, for
//! a field missing or empty, after updates and deletions. On PostgreSQL the filter reads the
//! field's stored column instead of the document. Both backends.

use serde_json::{json, Value};
use tether_core::query::{parse_filter_param, Filter, ListQuery, Op, Scalar, USER_FIELDS};
use tether_store::{Collection, Doc, Store};

use crate::common::{user, Backend, Db};

on_both_backends!(an_indexed_field_lists_what_the_documents_hold);

const FIELDS: [&str; 7] =
    ["department", "company", "location", "jobTitle", "employeeType", "employeeIdentifier", "manager"];
const VALUES: [&str; 4] = ["Sales", "sales", "IT", ""];

/// User `i`'s value of field `k`: one of [`VALUES`], or none (the field removed).
fn value(i: usize, k: usize) -> Option<&'static str> {
    match (i * 7 + k * 3) % 5 {
        4 => None,
        v => Some(VALUES[v]),
    }
}

fn doc(i: usize, shift: usize) -> Doc {
    let mut d = tether_store::user_doc(&user(i, "ann", false));
    for (k, field) in FIELDS.iter().enumerate() {
        match value(i + shift, k) {
            Some(v) => d.body[*field] = json!(v),
            None => {
                d.body.as_object_mut().unwrap().remove(*field);
            }
        }
    }
    d
}

/// Whether a document's field matches, as the filters are specified (ASCII values).
fn matches(v: Option<&str>, op: Op, arg: &str) -> bool {
    match (op, v) {
        (Op::Eq, v) => v == Some(arg),
        (Op::Ne, v) => v != Some(arg),
        (Op::Gt, Some(v)) => v > arg,
        (Op::Search, v) => v.unwrap_or("").to_lowercase().contains(&arg.to_lowercase()),
        (Op::Regex, v) => v.unwrap_or("").to_lowercase().starts_with(&arg[1..].to_lowercase()),
        _ => false,
    }
}

/// Each filter of one field, and the ids of the users it matches (in insertion order).
fn filters(docs: &[Doc]) -> Vec<(Filter, Vec<String>)> {
    let mut out = Vec::new();
    for field in FIELDS {
        let f = field;
        let field_of = |d: &Doc| d.body.get(f).and_then(Value::as_str).map(str::to_string);
        let ids = |keep: &dyn Fn(Option<&str>) -> bool| {
            docs.iter().filter(|d| keep(field_of(d).as_deref())).map(|d| d.id.clone()).collect::<Vec<_>>()
        };
        let cmp = |op, v: &str| Filter::Cmp { field: f, op, value: Scalar::Text(v.into()) };
        for (op, v) in [(Op::Eq, "Sales"), (Op::Eq, ""), (Op::Eq, "nowhere"), (Op::Ne, "Sales"), (Op::Gt, "J")] {
            out.push((cmp(op, v), ids(&|x| matches(x, op, v))));
        }
        out.push((cmp(Op::Search, "ALE"), ids(&|x| matches(x, Op::Search, "ALE"))));
        out.push((cmp(Op::Regex, "^sa"), ids(&|x| matches(x, Op::Regex, "^sa"))));
        let any = parse_filter_param(USER_FIELDS, &format!("{field}:$in:IT|sales")).unwrap();
        out.push((any, ids(&|x| matches(x, Op::Eq, "IT") || matches(x, Op::Eq, "sales"))));
    }
    out
}

/// Every filter's total and rows, by pages of 4, in insertion order and sorted by username
/// both ways.
async fn check(s: &dyn Store, docs: &[Doc], when: &str) {
    let username = |id: &String| docs.iter().find(|d| &d.id == id).unwrap().body["username"].to_string();
    for (f, inserted) in filters(docs) {
        for sort in [None, Some(("username", false)), Some(("username", true))] {
            let mut want = inserted.clone();
            if let Some((_, desc)) = sort {
                want.sort_by_key(username);
                if desc {
                    want.reverse();
                }
            }
            let mut got = Vec::new();
            for skip in (0..docs.len() + 4).step_by(4) {
                let q = ListQuery { filter: Some(f.clone()), sort, limit: 4, skip };
                let (total, page) = s.list(Collection::Users, &q).await.unwrap();
                assert_eq!(total as usize, want.len(), "{when}: {f:?} {sort:?} total at {skip}");
                got.extend(
                    page.iter().map(|d| serde_json::from_str::<Value>(d).unwrap()["id"].as_str().unwrap().to_string()),
                );
            }
            assert_eq!(got, want, "{when}: {f:?} {sort:?}");
        }
    }
}

async fn an_indexed_field_lists_what_the_documents_hold(b: Backend) {
    let db = Db::new(b).await;
    let s = db.open().await;
    let mut docs: Vec<Doc> = (0..23).map(|i| doc(i, 0)).collect();
    for d in &docs {
        s.insert(Collection::Users, d).await.unwrap();
    }
    check(&*s, &docs, "inserted").await;
    // Every third user's values change (some fields come, some go), every fifth leaves.
    for (i, d) in docs.iter_mut().enumerate().filter(|(i, _)| i % 3 == 0) {
        *d = doc(i, 2);
        assert!(s.replace(Collection::Users, d).await.unwrap());
    }
    check(&*s, &docs, "updated").await;
    for d in docs.iter().step_by(5) {
        assert!(s.delete(Collection::Users, &d.id).await.unwrap());
    }
    docs = docs.into_iter().enumerate().filter(|(i, _)| i % 5 != 0).map(|(_, d)| d).collect();
    check(&*s, &docs, "deleted").await;
    // Another process's store answers the same (PostgreSQL: its own connection and memory).
    check(&*db.open().await, &docs, "reopened").await;
}
