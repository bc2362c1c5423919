//! The store's contract, run against the embedded SQLite backend.

use std::sync::Arc;

use serde_json::json;
use tether_core::query::{parse_filter_param, parse_search_filter, parse_sort, ListQuery, USER_FIELDS};
use tether_core::user::User;
use tether_store::sqlite::SqliteStore;
use tether_store::{Collection, Edge, Repo, Secret, StoreError};

async fn repo() -> (tempfile::TempDir, Repo) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    (dir, Repo::new(Arc::new(store)))
}

fn user(i: usize, first: &str, suspended: bool) -> User {
    User {
        id: format!("{i:024x}"),
        username: format!("user{i}"),
        email: format!("user{i}@example.com"),
        firstname: first.into(),
        suspended,
        ..User::default()
    }
}

#[tokio::test]
async fn users_unique_keys_are_case_insensitive() {
    let (_d, r) = repo().await;
    r.insert_user(&user(1, "Ann", false), Some("hash1")).await.unwrap();
    let mut dup = user(2, "Bob", false);
    dup.username = "USER1".into();
    match r.insert_user(&dup, None).await {
        Err(StoreError::Conflict { field, .. }) => assert_eq!(field, "username"),
        other => panic!("{other:?}"),
    }
    let mut dup = user(3, "Bob", false);
    dup.email = "User1@Example.com".into();
    match r.insert_user(&dup, None).await {
        Err(StoreError::Conflict { field, .. }) => assert_eq!(field, "email"),
        other => panic!("{other:?}"),
    }
    let got = r.user_by_username("USER1").await.unwrap().unwrap();
    assert_eq!(got.firstname, "Ann");
    assert_eq!(r.password_hash(&got.id).await.unwrap().as_deref(), Some("hash1"));
}

#[tokio::test]
async fn list_filters_sorts_and_windows() {
    let (_d, r) = repo().await;
    for (i, (n, s)) in
        [("Ann", false), ("bob", true), ("Carl", false), ("Dana", true), ("Eve", false)].iter().enumerate()
    {
        r.insert_user(&user(i, n, *s), None).await.unwrap();
    }
    let q = |f: &str| ListQuery {
        filter: Some(parse_filter_param(USER_FIELDS, f).unwrap()),
        limit: 100,
        ..ListQuery::default()
    };
    let names = |v: Vec<User>| v.into_iter().map(|u| u.firstname).collect::<Vec<_>>();
    let (n, v) = r.list_users(&q("suspended:$eq:true")).await.unwrap();
    assert_eq!((n, names(v)), (2, vec!["bob".to_string(), "Dana".into()]));
    let (n, _) = r.list_users(&q("suspended:$ne:true")).await.unwrap();
    assert_eq!(n, 3);
    let (_, v) = r.list_users(&q("firstname:in:Ann|Eve")).await.unwrap();
    assert_eq!(names(v), ["Ann", "Eve"]);
    let (_, v) = r.list_users(&q("firstname:search:AR")).await.unwrap();
    assert_eq!(names(v), ["Carl"]);
    let re = parse_search_filter(USER_FIELDS, &json!({"firstname": {"$regex": "^[ab]"}})).unwrap();
    let (_, v) = r.list_users(&ListQuery { filter: re, limit: 100, ..ListQuery::default() }).await.unwrap();
    assert_eq!(names(v), ["Ann", "bob"], "regex is case-insensitive");
    let sorted = ListQuery { sort: parse_sort(USER_FIELDS, "-firstname").unwrap(), limit: 2, skip: 1, filter: None };
    let (n, v) = r.list_users(&sorted).await.unwrap();
    assert_eq!((n, names(v)), (5, vec!["Dana".to_string(), "Carl".into()]));
}

#[tokio::test]
async fn delete_removes_edges_and_secrets() {
    let (_d, r) = repo().await;
    let u = user(1, "Ann", false);
    r.insert_user(&u, Some("h")).await.unwrap();
    let s = r.store();
    assert!(s.link(Edge::Member, "g1", &u.id).await.unwrap());
    assert!(!s.link(Edge::Member, "g1", &u.id).await.unwrap(), "second link is a no-op");
    assert_eq!(s.sources(Edge::Member, &u.id).await.unwrap(), ["g1"]);
    assert!(s.delete(Collection::Users, &u.id).await.unwrap());
    assert!(s.targets(Edge::Member, "g1").await.unwrap().is_empty());
    assert_eq!(s.secret(&u.id, Secret::Password).await.unwrap(), None);
    assert!(!s.delete(Collection::Users, &u.id).await.unwrap());
}

#[tokio::test]
async fn reopen_keeps_data_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    {
        let r = Repo::new(Arc::new(SqliteStore::open(dir.path()).await.unwrap()));
        r.insert_user(&user(7, "Zed", false), None).await.unwrap();
        let mut s = r.settings().await.unwrap();
        s.password_policy.min_length = 12;
        r.put_settings(&s).await.unwrap();
    }
    let r = Repo::new(Arc::new(SqliteStore::open(dir.path()).await.unwrap()));
    assert_eq!(r.user_by_username("user7").await.unwrap().unwrap().firstname, "Zed");
    assert_eq!(r.settings().await.unwrap().password_policy.min_length, 12);
}
