//! The store's contract, run against both backends: every test body below runs once on the
//! embedded SQLite backend (`sqlite::<test>`) and once on PostgreSQL (`postgres::<test>`, a
//! fresh database on the test run's server: `tether_testkit::postgres`, which fails — never
//! skips — when PostgreSQL cannot be started).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tether_core::query::{parse_filter_param, parse_search_filter, parse_sort, ListQuery, GROUP_FIELDS, USER_FIELDS};
use tether_core::user::{RestrictedField, User};
use tether_store::postgres::PgStore;
use tether_store::{Collection, Doc, Edge, Repo, Secret, Store, StoreError, UserKey, WriteOp};

use crate::common::{repo, user, Backend, Db};

on_both_backends!(
    substring_search_through_the_text_index_answers_as_a_scan,
    users_unique_keys_are_case_insensitive,
    list_filters_sorts_and_windows,
    sorting_and_ranges_compare_bytes_after_ascii_case_folding,
    internal_fields_find_linked_objects,
    member_links_name_each_users_account_in_the_domain_as_link_in_does,
    delete_removes_edges_and_secrets,
    secrets_are_set_replaced_and_found_by_hash,
    edges_keep_insertion_order,
    write_batch_is_all_or_nothing,
    a_user_and_its_password_are_saved_together,
    large_batches_span_several_statements,
    feed_is_per_domain_ordered_and_forgets_secrets,
    reopen_keeps_data_and_settings,
    feed_stays_ordered_with_concurrent_appenders_on_two_stores,
    a_copy_read_before_another_write_is_refused_as_stale,
    numbers_are_taken_once_and_unix_ids_are_unique,
    a_user_with_its_linked_groups_in_one_read,
    every_directory_write_moves_the_version,
);

/// The embedded store's directory version moves after every write to documents, edges,
/// secrets and settings, failed ones included, and not for login attempts, the feed or
/// shared state; PostgreSQL, written by other processes too, has none.
async fn every_directory_write_moves_the_version(b: Backend) {
    let (_d, r) = repo(b).await;
    let s = r.store();
    let Backend::Sqlite = b else {
        r.insert_user(&user(1, "Ann", false), None).await.unwrap();
        assert_eq!(s.directory_version(), None);
        return;
    };
    let ann = user(1, "Ann", false);
    let version = || s.directory_version().expect("the embedded store has a version");
    let doc_of = |u: &User| tether_store::user_doc(u);
    let mut renamed = ann.clone();
    renamed.email = "renamed@example.test".into();
    let attempt = tether_store::Attempt { now: 100, window_start: 0, max: 5, lock_until: 200 };
    let feed_body = json!({});
    let entry = tether_store::NewFeedEntry {
        domain: "d",
        kind: "k",
        object: "o",
        body: &feed_body,
        secret: None,
        created: "2026-01-01T00:00:00Z",
    };
    // (what, whether it is a write to the directory)
    let steps: Vec<(&str, bool)> = vec![
        ("insert", true),
        ("replace", true),
        ("a failed insert (duplicate)", true),
        ("link", true),
        ("unlink", true),
        ("put_secret", true),
        ("replace_with_secret", true),
        ("write_batch", true),
        ("put_setting", true),
        ("delete", true),
        ("count_attempt", false),
        ("attempt_failed", false),
        ("append_feed", false),
        ("put_shared", false),
        ("take_numbers", false),
    ];
    for (what, moves) in steps {
        let before = version();
        match what {
            "insert" => s.insert(Collection::Users, &doc_of(&ann)).await.unwrap(),
            "replace" => assert!(s.replace(Collection::Users, &doc_of(&renamed)).await.unwrap()),
            "a failed insert (duplicate)" => assert!(s.insert(Collection::Users, &doc_of(&ann)).await.is_err()),
            "link" => assert!(s.link(Edge::Member, "g", &ann.id).await.unwrap()),
            "unlink" => assert!(s.unlink(Edge::Member, "g", &ann.id).await.unwrap()),
            "put_secret" => s.put_secret(&ann.id, Secret::Password, Some("h1")).await.unwrap(),
            "replace_with_secret" => {
                assert!(s.replace_with_secret(Collection::Users, &doc_of(&ann), Secret::Password, "h2").await.unwrap())
            }
            "write_batch" => s.write_batch(&[WriteOp::Link(Edge::Member, "g".into(), ann.id.clone())]).await.unwrap(),
            "put_setting" => s.put_setting("k", &json!(1)).await.unwrap(),
            "delete" => assert!(s.delete(Collection::Users, &ann.id).await.unwrap()),
            "count_attempt" => drop(s.count_attempt("key", attempt).await.unwrap()),
            "attempt_failed" => s.attempt_failed("key", attempt).await.unwrap(),
            "append_feed" => drop(s.append_feed(entry).await.unwrap()),
            "put_shared" => s.put_shared("k", &json!(1), 500).await.unwrap(),
            "take_numbers" => drop(s.take_numbers("unix", 1, 5000).await.unwrap()),
            other => unreachable!("{other}"),
        }
        assert_eq!(version() > before, moves, "{what}");
    }
    // Reads leave it.
    let before = version();
    drop(r.users_with_groups(&[("user1", UserKey::Username)], "srv", Edge::LdapUser, Edge::LdapGroup).await.unwrap());
    drop(s.get(Collection::Users, &ann.id).await.unwrap());
    assert_eq!(version(), before);
}

async fn a_user_with_its_linked_groups_in_one_read(b: Backend) {
    let (_d, r) = repo(b).await;
    let s = r.store();
    use UserKey::{Id, UnixUid, Username};
    let (ann, mut bob, cid) = (user(1, "Ann", false), user(2, "Bob", false), user(3, "Cid", false));
    bob.unix_uid = Some(70002);
    for u in [&ann, &bob, &cid] {
        r.insert_user(u, None).await.unwrap();
    }
    let group = |i: usize, name: &str| tether_core::group::Group {
        id: format!("g{i:023}"),
        name: name.into(),
        ..Default::default()
    };
    let (ops, dev, hr) = (group(1, "Ops"), group(2, "Dev"), group(3, "HR"));
    for g in [&ops, &dev, &hr] {
        r.insert_group(g).await.unwrap();
    }
    // ann: directly, and a member of dev then ops (both linked) and hr (not linked).
    // bob: only through ops. cid: nothing.
    s.link(Edge::LdapUser, "srv", &ann.id).await.unwrap();
    for (g, u) in [(&dev, &ann), (&hr, &ann), (&ops, &ann), (&ops, &bob), (&hr, &cid)] {
        s.link(Edge::Member, &g.id, &u.id).await.unwrap();
    }
    for g in [&ops, &dev] {
        s.link(Edge::LdapGroup, "srv", &g.id).await.unwrap();
    }
    s.link(Edge::LdapGroup, "other", &hr.id).await.unwrap();
    let read = |key: String, by: UserKey| {
        let r = r.clone();
        async move {
            r.users_with_groups(&[(&key, by)], "srv", Edge::LdapUser, Edge::LdapGroup)
                .await
                .unwrap()
                .remove(0)
                .map(|(u, direct, gs)| (u.username, direct, gs.into_iter().map(|g| g.name).collect::<Vec<_>>()))
        }
    };
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(read(ann.id.clone(), Id).await, Some(("user1".into(), true, names(&["Dev", "Ops"]))));
    assert_eq!(read("USER1".into(), Username).await, Some(("user1".into(), true, names(&["Dev", "Ops"]))));
    assert_eq!(read("user2".into(), Username).await, Some(("user2".into(), false, names(&["Ops"]))));
    assert_eq!(read(cid.id.clone(), Id).await, Some(("user3".into(), false, vec![])));
    assert_eq!(read("nobody".into(), Username).await, None);
    // By unix uid (the index on it).
    assert_eq!(read("70002".into(), UnixUid).await, Some(("user2".into(), false, names(&["Ops"]))));
    assert_eq!(read("70009".into(), UnixUid).await, None);
    // Several at once, in the order asked, each on its own.
    let all = r
        .users_with_groups(
            &[("user2", Username), (&ann.id, Id), ("nobody", Username), ("user1", Username)],
            "srv",
            Edge::LdapUser,
            Edge::LdapGroup,
        )
        .await
        .unwrap();
    let got: Vec<Option<(String, bool, usize)>> =
        all.into_iter().map(|f| f.map(|(u, d, gs)| (u.username, d, gs.len()))).collect();
    assert_eq!(
        got,
        vec![Some(("user2".into(), false, 1)), Some(("user1".into(), true, 2)), None, Some(("user1".into(), true, 2))]
    );
    assert!(r.users_with_groups(&[], "srv", Edge::LdapUser, Edge::LdapGroup).await.unwrap().is_empty());
}

async fn numbers_are_taken_once_and_unix_ids_are_unique(b: Backend) {
    let (_d, r) = repo(b).await;
    let s = r.store();
    // A counter raised only upward, each value once (a TOTP step used once).
    assert!(s.raise_counter("totp:u", 100).await.unwrap());
    assert!(!s.raise_counter("totp:u", 100).await.unwrap(), "the same value again");
    assert!(!s.raise_counter("totp:u", 99).await.unwrap(), "a lower one");
    assert!(s.raise_counter("totp:u", 101).await.unwrap());
    let raises = (0..20).map(|_| {
        let r = r.clone();
        tokio::spawn(async move { r.store().raise_counter("totp:u", 200).await.unwrap() })
    });
    let won = futures_join(raises).await.into_iter().filter(|w| *w).count();
    assert_eq!(won, 1, "of 20 at once, one raises it");
    assert_eq!(s.take_numbers("unix", 1, 5000).await.unwrap(), 5000);
    assert_eq!(s.take_numbers("unix", 3, 5000).await.unwrap(), 5001, "a block of three: 5001..=5003");
    // Raised past a number given by hand; later takes continue above it.
    assert_eq!(s.take_numbers("unix", 0, 7001).await.unwrap(), 7001);
    assert_eq!(s.take_numbers("unix", 1, 5000).await.unwrap(), 7001);
    assert_eq!(s.take_numbers("other", 2, 1).await.unwrap(), 1, "counters are separate");
    // Concurrent takes never hand out a number twice.
    let takes = (0..20).map(|_| {
        let r = r.clone();
        tokio::spawn(async move { r.store().take_numbers("unix", 1, 5000).await.unwrap() })
    });
    let mut got: Vec<i64> = futures_join(takes).await;
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 20);
    // The users' unix uids are unique; absent ones are not, nor are primary groups.
    let mut a = user(1, "Ann", false);
    a.unix_uid = Some(5000);
    a.unix_guid = Some(5000);
    r.insert_user(&a, None).await.unwrap();
    r.insert_user(&user(2, "Bob", false), None).await.unwrap();
    r.insert_user(&user(3, "Cid", false), None).await.unwrap();
    let mut dup = user(4, "Dee", false);
    dup.unix_uid = Some(5000);
    assert_eq!(conflict_field(r.insert_user(&dup, None).await), "unix_uid");
    dup.unix_uid = Some(5004);
    dup.unix_guid = Some(5000);
    r.insert_user(&dup, None).await.expect("a shared primary group");
}

async fn futures_join<T: Send + 'static>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn doc(id: &str, key1: Option<&str>, body: Value) -> Doc {
    Doc { id: id.into(), key1: key1.map(str::to_string), key2: None, body, version: None }
}

fn conflict_field<T: std::fmt::Debug>(r: Result<T, StoreError>) -> &'static str {
    match r {
        Err(StoreError::Conflict { field, .. }) => field,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn users_unique_keys_are_case_insensitive(b: Backend) {
    let (_d, r) = repo(b).await;
    r.insert_user(&user(1, "Ann", false), Some("hash1")).await.unwrap();
    let mut dup = user(2, "Bob", false);
    dup.username = "USER1".into();
    assert_eq!(conflict_field(r.insert_user(&dup, None).await), "username");
    let mut dup = user(3, "Bob", false);
    dup.email = "User1@Example.com".into();
    assert_eq!(conflict_field(r.insert_user(&dup, None).await), "email");
    let got = r.user_by_username("USER1").await.unwrap().unwrap();
    assert_eq!(got.firstname, "Ann");
    assert_eq!(r.password_hash(&got.id).await.unwrap().as_deref(), Some("hash1"));
    // A replace that takes another document's key conflicts too, and changes nothing.
    let mut other = user(4, "Cid", false);
    r.insert_user(&other, None).await.unwrap();
    other.email = "USER1@example.COM".into();
    assert_eq!(conflict_field(r.save_user(&other, None).await), "email");
    assert_eq!(r.user(&other.id).await.unwrap().unwrap().email, "user4@example.com");
    // Renaming to another case of its own key is no conflict; a missing document is `false`.
    other.email = "USER4@example.com".into();
    assert!(r.save_user(&other, None).await.unwrap());
    assert!(!r.save_user(&user(5, "Dee", false), None).await.unwrap());
    // Groups and domains have one key.
    let s = r.store();
    s.insert(Collection::Groups, &doc("g1", Some("Admins"), json!({"name": "Admins"}))).await.unwrap();
    assert_eq!(conflict_field(s.insert(Collection::Groups, &doc("g2", Some("ADMINS"), json!({}))).await), "name");
    // (Documents of the versioned collections come back with their stored revision, `_v`.)
    assert_eq!(s.get_by_key(Collection::Groups, "admins").await.unwrap(), Some(json!({"name": "Admins", "_v": 0})));
}

/// The trigram index only narrows: whatever it lets through is searched as before, so terms
/// it cannot serve (under 3 characters, fields it does not hold) and characters special to
/// LIKE or to FTS5 answer exactly as a scan does, and it follows updates and deletions.
async fn substring_search_through_the_text_index_answers_as_a_scan(b: Backend) {
    let (db, r) = repo(b).await;
    let people = [
        ("ann", "Ann", "Lee", "ann@example.com", "Sales"),
        ("a_b%c", "Percy", "Under_Score", "pct@example.com", "R&D"),
        ("obrien", "Conan", "O\"Brien", "conan@example.com", "Sales"),
        ("emile", "Émile", "Zola", "emile@example.com", "Letters"),
        ("emile2", "ÉMILE", "Upper", "emile2@example.com", "Letters"),
        ("back", "Back\\Slash", "Annex", "back@example.org", "IT"),
        ("greek", "ΑΟΣΑ", "Final", "greek@example.net", "Letters"),
    ];
    for (i, (username, first, last, email, dept)) in people.iter().enumerate() {
        let u = User {
            id: format!("{i:024x}"),
            username: username.to_string(),
            email: email.to_string(),
            firstname: first.to_string(),
            lastname: last.to_string(),
            department: dept.to_string(),
            ..User::default()
        };
        r.insert_user(&u, None).await.unwrap();
    }
    let found = |term: Value, field: Option<&'static str>| {
        let r = &r;
        async move {
            let filter = match field {
                None => tether_core::query::parse_search_term(USER_FIELDS, &json!({"searchTerm": term})).unwrap(),
                Some(f) => {
                    Some(parse_filter_param(USER_FIELDS, &format!("{f}:search:{}", term.as_str().unwrap())).unwrap())
                }
            };
            let (n, v) = r.list_users(&ListQuery { filter, limit: 100, ..ListQuery::default() }).await.unwrap();
            let names: Vec<String> = v.into_iter().map(|u| u.username).collect();
            assert_eq!(n as usize, names.len());
            names
        }
    };
    #[rustfmt::skip]
    let rows: [(&str, Option<&str>, &[&str]); 16] = [
        // term, one field (`field:search:term`) or the four of `searchTerm`, usernames
        ("ANN",       None,              &["ann", "back"]),         // username, and last name "Annex"
        ("nn",        None,              &["ann", "back"]),         // 2 characters: no trigram, a scan
        ("example.c", None,              &["ann", "a_b%c", "obrien", "emile", "emile2"]),
        ("_",         None,              &["a_b%c"]),               // not a LIKE wildcard
        ("b%c",       None,              &["a_b%c"]),
        ("%",         None,              &["a_b%c"]),
        ("o\"bri",    None,              &["obrien"]),              // a double quote: not FTS5 syntax
        ("k\\sl",     None,              &["back"]),                // a backslash: not a LIKE escape
        ("émile",     None,              &[]),                      // ASCII letters fold, 'É' does not
        ("ÉMILE",     None,              &["emile", "emile2"]),
        ("mile",      None,              &["emile", "emile2"]),
        ("sales",     Some("department"), &["ann", "obrien"]),      // a field the index does not hold
        ("lee",       Some("lastname"),  &["ann"]),
        ("zzz",       None,              &[]),
        ("ΑΟΣ",       None,              &["greek"]),               // a final sigma in the term, not in the name
        ("",          None,              &["ann", "a_b%c", "obrien", "emile", "emile2", "back", "greek"]),
    ];
    for (term, field, want) in rows {
        assert_eq!(found(json!(term), field).await, want, "{term:?} in {field:?}");
    }
    // Updates and deletions reach the index.
    let mut ann = r.user(&format!("{:024x}", 0)).await.unwrap().unwrap();
    ann.lastname = "Zimmer".into();
    assert!(r.save_user(&ann, None).await.unwrap());
    assert_eq!(found(json!("lee"), None).await, Vec::<String>::new());
    assert_eq!(found(json!("zimm"), None).await, ["ann"]);
    assert!(db.open().await.delete(Collection::Users, &format!("{:024x}", 3)).await.unwrap());
    assert_eq!(found(json!("mile"), None).await, ["emile2"]);
}

async fn list_filters_sorts_and_windows(b: Backend) {
    let (_d, r) = repo(b).await;
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
    let (_, v) = r.list_users(&q("suspended:$eq:false")).await.unwrap();
    assert_eq!(names(v), ["Ann", "Carl", "Eve"]);
    let (_, v) = r.list_users(&q("firstname:in:Ann|Eve")).await.unwrap();
    assert_eq!(names(v), ["Ann", "Eve"]);
    let (_, v) = r.list_users(&q("firstname:search:AR")).await.unwrap();
    assert_eq!(names(v), ["Carl"]);
    let (_, v) = r.list_users(&q("username:$eq:user3")).await.unwrap();
    assert_eq!(names(v), ["Dana"]);
    let (_, v) = r.list_users(&q(&format!("id:$eq:{:024x}", 4))).await.unwrap();
    assert_eq!(names(v), ["Eve"]);
    let re = parse_search_filter(USER_FIELDS, &json!({"firstname": {"$regex": "^[ab]"}})).unwrap();
    let (_, v) = r.list_users(&ListQuery { filter: re, limit: 100, ..ListQuery::default() }).await.unwrap();
    assert_eq!(names(v), ["Ann", "bob"], "regex is case-insensitive");
    let both = parse_search_filter(
        USER_FIELDS,
        &json!({"or": [{"firstname": "Eve"}, {"and": [{"suspended": true}, {"firstname": {"$regex": "a$"}}]}]}),
    );
    let (_, v) = r.list_users(&ListQuery { filter: both.unwrap(), limit: 100, ..ListQuery::default() }).await.unwrap();
    assert_eq!(names(v), ["Dana", "Eve"]);
    let sorted = ListQuery { sort: parse_sort(USER_FIELDS, "-firstname").unwrap(), limit: 2, skip: 1, filter: None };
    let (n, v) = r.list_users(&sorted).await.unwrap();
    assert_eq!((n, names(v)), (5, vec!["Dana".to_string(), "Carl".into()]));
    let sorted = ListQuery { sort: parse_sort(USER_FIELDS, "firstname").unwrap(), limit: 10, skip: 3, filter: None };
    assert_eq!(names(r.list_users(&sorted).await.unwrap().1), ["Dana", "Eve"]);
    // The total counts before the window, even past the end.
    let past = ListQuery { limit: 10, skip: 50, ..ListQuery::default() };
    assert_eq!(r.list_users(&past).await.unwrap(), (5, vec![]));
    // No filter, no sort: insertion order.
    let all = r.list_users(&ListQuery { limit: usize::MAX >> 1, ..ListQuery::default() }).await.unwrap();
    assert_eq!(names(all.1), ["Ann", "bob", "Carl", "Dana", "Eve"]);
}

async fn sorting_and_ranges_compare_bytes_after_ascii_case_folding(b: Backend) {
    let db = Db::new(b).await;
    let s = db.open().await;
    // A natural-language collation would order these differently ('_' before '-', 'É'
    // next to 'e'); the store compares bytes, with ASCII letters case-folded for sorting.
    for (i, (name, desc)) in
        [("zed", Some("b")), ("a_b", None), ("Émile", Some("a")), ("a-b", Some("C")), ("A_c", None)]
            .into_iter()
            .enumerate()
    {
        let mut body = json!({"name": name});
        if let Some(d) = desc {
            body["description"] = json!(d);
        }
        s.insert(Collection::Groups, &doc(&format!("g{i}"), Some(name), body)).await.unwrap();
    }
    let list = |filter: Option<&str>, sort: Option<&str>| {
        let s = s.clone();
        let q = ListQuery {
            filter: filter.map(|f| parse_filter_param(GROUP_FIELDS, f).unwrap()),
            sort: sort.and_then(|o| parse_sort(GROUP_FIELDS, o).unwrap()),
            limit: 100,
            skip: 0,
        };
        async move {
            let (_, docs) = s.list(Collection::Groups, &q).await.unwrap();
            let docs = docs.iter().map(|d| serde_json::from_str::<Value>(d).unwrap());
            docs.map(|d| d["name"].as_str().unwrap().to_string()).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(None, Some("name")).await, ["a-b", "a_b", "A_c", "zed", "Émile"]);
    assert_eq!(list(None, Some("-name")).await, ["Émile", "zed", "A_c", "a_b", "a-b"]);
    // Missing fields sort first ascending, last descending; ties keep insertion order.
    assert_eq!(list(None, Some("description")).await, ["a_b", "A_c", "Émile", "zed", "a-b"]);
    assert_eq!(list(None, Some("-description")).await, ["a-b", "zed", "Émile", "a_b", "A_c"]);
    // Ranges compare bytes, case included.
    assert_eq!(list(Some("name:$gt:a_"), None).await, ["zed", "a_b", "Émile"]);
    assert_eq!(list(Some("name:$lt:B"), None).await, ["A_c"]);
    assert_eq!(list(Some("name:$le:a_b"), None).await, ["a_b", "a-b", "A_c"]);
    assert_eq!(list(Some("name:$ge:zed"), None).await, ["zed", "Émile"]);
    // A missing field is "not equal" to anything, and never matches a comparison.
    assert_eq!(list(Some("description:$ne:a"), None).await, ["zed", "a_b", "a-b", "A_c"]);
    assert_eq!(list(Some("description:$lt:zzz"), None).await, ["zed", "Émile", "a-b"]);
    assert_eq!(list(Some("name:search:MIL"), None).await, ["Émile"]);
    assert_eq!(list(Some("name:search:_"), None).await, ["a_b", "A_c"], "no LIKE wildcards");
    let q = ListQuery {
        filter: Some(tether_core::query::Filter::In { field: "name", values: vec![] }),
        ..ListQuery::default()
    };
    assert_eq!(s.list(Collection::Groups, &q).await.unwrap(), (0, vec![]));
}

/// A group's members as the change feed names them, read as a few fields each: the
/// objectGUID of each one's account in the domain is the one `User::link_in` gives, for every
/// shape of link (a link per domain, the importing domain's own link, a link imported by
/// another domain, a link older than links per domain, none), in creation order, across the
/// 500-id chunks, and a missing id is left out.
async fn member_links_name_each_users_account_in_the_domain_as_link_in_does(b: Backend) {
    use tether_core::user::AdLink;
    let (_d, r) = repo(b).await;
    let imported_by =
        |d: &str| vec![RestrictedField { field: "username".into(), kind: "active_directory".into(), id: d.into() }];
    let link = |g: &str| AdLink { guid: g.into(), dn: format!("CN={g},DC=x") };
    // (own AD link, importing domain, links per domain)
    type Shape<'a> = (Option<&'a str>, Option<&'a str>, Vec<(&'a str, &'a str)>);
    let shapes: Vec<Shape> = vec![
        (None, None, vec![]),
        (None, None, vec![("dom1", "l-1a")]),
        (Some("own-2"), Some("dom1"), vec![]),
        (Some("own-3"), Some("dom2"), vec![]),
        (Some("own-4"), Some("dom2"), vec![("dom1", "l-4a")]),
        (Some("own-5"), None, vec![]),
        (Some("own-6"), None, vec![("dom2", "l-6b")]),
        (Some("own-7"), Some("dom1"), vec![("dom2", "l-7b")]),
    ];
    let mut users = Vec::new();
    for (i, (own, import, links)) in shapes.into_iter().enumerate() {
        let mut u = user(i + 1, "M", false);
        u.ad_guid = own.map(str::to_string);
        if let Some(d) = import {
            u.restricted_fields = imported_by(d);
        }
        u.ad_links = links.into_iter().map(|(d, g)| (d.to_string(), link(g))).collect();
        r.insert_user(&u, None).await.unwrap();
        users.push(u);
    }
    let mut ids: Vec<String> = (0..600).map(|i| format!("missing-{i}")).collect();
    ids.extend(users.iter().rev().map(|u| u.id.clone()));
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    for domain in ["dom1", "dom2", "dom3"] {
        let want: Vec<tether_store::MemberLink> = users
            .iter()
            .map(|u| tether_store::MemberLink {
                id: u.id.clone(),
                username: u.username.clone(),
                guid: u.link_in(domain).map(|l| l.guid),
            })
            .collect();
        assert_eq!(r.member_links(domain, &ids).await.unwrap(), want, "{domain}");
    }
    // Not vacuous: each domain names some accounts and leaves others out.
    let named = |d: &'static str| users.iter().filter(|u| u.link_in(d).is_some()).count();
    assert_eq!([named("dom1"), named("dom2"), named("dom3")], [5, 5, 1]);
}

async fn internal_fields_find_linked_objects(b: Backend) {
    let (_d, r) = repo(b).await;
    let mut linked = user(1, "Ann", false);
    linked.ad_guid = Some("guid-1".into());
    linked.restricted_fields =
        vec![RestrictedField { field: "username".into(), kind: "active_directory".into(), id: "dom1".into() }];
    r.insert_user(&linked, None).await.unwrap();
    r.insert_user(&user(2, "Bob", false), None).await.unwrap();
    let got = r.user_by_ad_guid("guid-1").await.unwrap().unwrap();
    assert_eq!((got.id, got.ad_guid.as_deref()), (linked.id.clone(), Some("guid-1")));
    assert!(r.user_by_ad_guid("GUID-1").await.unwrap().is_none(), "equality is exact");
    assert_eq!(r.users_of_domain("dom1").await.unwrap().len(), 1);
    assert!(r.users_of_domain("dom2").await.unwrap().is_empty());

    // The lean lookup: objectGUID, id, username and domain of linked users only, across the
    // 500-value chunks of the lookup.
    let mut other = user(3, "Cy", false);
    other.ad_guid = Some("guid-3".into());
    other.restricted_fields =
        vec![RestrictedField { field: "email".into(), kind: "active_directory".into(), id: "dom2".into() }];
    r.insert_user(&other, None).await.unwrap();
    let mut guids: Vec<String> = (0..700).map(|i| format!("unknown-{i}")).collect();
    guids.insert(0, "guid-3".into());
    guids.push("guid-1".into());
    guids.push(user(2, "", false).id); // not linked
    let guids: Vec<&str> = guids.iter().map(String::as_str).collect();
    let linked_row = |u: &User, d: &str| tether_store::AdLinked {
        guid: u.ad_guid.clone().unwrap(),
        id: u.id.clone(),
        username: u.username.clone(),
        domain: Some(d.into()),
    };
    let mut got = r.ad_linked(&guids).await.unwrap();
    got.sort_by(|a, b| a.guid.cmp(&b.guid));
    assert_eq!(got, [linked_row(&linked, "dom1"), linked_row(&other, "dom2")]);
    let bob = user(2, "", false);
    let ids = [linked.id.as_str(), bob.id.as_str(), other.id.as_str()];
    assert_eq!(r.ad_linked_among("dom2", &ids).await.unwrap(), [linked_row(&other, "dom2")]);
    assert_eq!(r.ad_linked_among("dom1", &ids[..2]).await.unwrap(), [linked_row(&linked, "dom1")]);
    // A missing field reads as None.
    let all = tether_core::query::Filter::In {
        field: "id",
        values: ids.iter().rev().map(|i| tether_core::query::Scalar::Text(i.to_string())).collect(),
    };
    let rows = r.store().project(Collection::Users, &all, &["username", "_adGuid"]).await.unwrap();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        rows,
        [vec![some("user1"), some("guid-1")], vec![some("user2"), None], vec![some("user3"), some("guid-3")]],
        "insertion order"
    );
}

async fn delete_removes_edges_and_secrets(b: Backend) {
    let (_d, r) = repo(b).await;
    let u = user(1, "Ann", false);
    r.insert_user(&u, Some("h")).await.unwrap();
    let s = r.store();
    assert!(s.link(Edge::Member, "g1", &u.id).await.unwrap());
    assert!(!s.link(Edge::Member, "g1", &u.id).await.unwrap(), "second link is a no-op");
    assert!(s.link(Edge::DomainUser, &u.id, "d1").await.unwrap());
    assert_eq!(s.sources(Edge::Member, &u.id).await.unwrap(), ["g1"]);
    assert!(s.delete(Collection::Users, &u.id).await.unwrap());
    assert!(s.targets(Edge::Member, "g1").await.unwrap().is_empty());
    assert!(s.sources(Edge::DomainUser, "d1").await.unwrap().is_empty(), "edges from it go too");
    assert_eq!(s.secret(&u.id, Secret::Password).await.unwrap(), None);
    assert!(s.get(Collection::Users, &u.id).await.unwrap().is_none());
    assert!(!s.delete(Collection::Users, &u.id).await.unwrap());
}

async fn secrets_are_set_replaced_and_found_by_hash(b: Backend) {
    let db = Db::new(b).await;
    let s = db.open().await;
    assert_eq!(s.secret("a1", Secret::AgentToken).await.unwrap(), None);
    s.put_secret("a1", Secret::AgentToken, Some("t1")).await.unwrap();
    s.put_secret("a1", Secret::ConnectKey, Some("c1")).await.unwrap();
    s.put_secret("a1", Secret::AgentToken, Some("t2")).await.unwrap();
    assert_eq!(s.secret("a1", Secret::AgentToken).await.unwrap().as_deref(), Some("t2"));
    assert_eq!(s.secret_owner(Secret::AgentToken, "t2").await.unwrap().as_deref(), Some("a1"));
    assert_eq!(s.secret_owner(Secret::AgentToken, "t1").await.unwrap(), None, "replaced");
    assert_eq!(s.secret_owner(Secret::ApiKey, "c1").await.unwrap(), None, "per purpose");
    s.put_secret("a1", Secret::ConnectKey, None).await.unwrap();
    s.put_secret("a1", Secret::ConnectKey, None).await.unwrap();
    assert_eq!(s.secret("a1", Secret::ConnectKey).await.unwrap(), None);
    assert_eq!(s.secret("a1", Secret::AgentToken).await.unwrap().as_deref(), Some("t2"));
}

async fn edges_keep_insertion_order(b: Backend) {
    let db = Db::new(b).await;
    let s = db.open().await;
    for u in ["u3", "u1", "u2"] {
        assert!(s.link(Edge::Member, "g", u).await.unwrap());
    }
    s.link(Edge::Member, "h", "u1").await.unwrap();
    s.link(Edge::DomainGroup, "d", "g").await.unwrap();
    assert_eq!(s.targets(Edge::Member, "g").await.unwrap(), ["u3", "u1", "u2"]);
    assert_eq!(s.sources(Edge::Member, "u1").await.unwrap(), ["g", "h"]);
    assert!(s.targets(Edge::DomainUser, "d").await.unwrap().is_empty(), "per kind");
    assert!(s.unlink(Edge::Member, "g", "u1").await.unwrap());
    assert!(!s.unlink(Edge::Member, "g", "u1").await.unwrap());
    s.link(Edge::Member, "g", "u1").await.unwrap();
    assert_eq!(s.targets(Edge::Member, "g").await.unwrap(), ["u3", "u2", "u1"]);
}

async fn a_user_and_its_password_are_saved_together(b: Backend) {
    let (_d, r) = repo(b).await;
    r.insert_user(&user(1, "Ann", false), Some("hash1")).await.unwrap();
    r.insert_user(&user(2, "Bob", false), None).await.unwrap();
    let id = user(1, "", false).id;
    // Taking Bob's email conflicts: neither the document nor the password changes.
    let taken = User { email: "user2@example.com".into(), ..user(1, "Ann", false) };
    assert_eq!(conflict_field(r.save_user(&taken, Some("hash2")).await), "email");
    assert_eq!(r.password_hash(&id).await.unwrap().as_deref(), Some("hash1"));
    assert_eq!(r.user(&id).await.unwrap().unwrap().email, "user1@example.com");
    // Without the conflict both change; a missing user gets no password.
    assert!(r.save_user(&user(1, "Anne", false), Some("hash2")).await.unwrap());
    assert_eq!(r.password_hash(&id).await.unwrap().as_deref(), Some("hash2"));
    assert!(!r.save_user(&user(7, "Ghost", false), Some("hash3")).await.unwrap());
    assert_eq!(r.password_hash(&user(7, "", false).id).await.unwrap(), None);
}

async fn write_batch_is_all_or_nothing(b: Backend) {
    let (_d, r) = repo(b).await;
    let s = r.store();
    r.insert_user(&user(1, "Ann", false), None).await.unwrap();
    let mut renamed = user(1, "Anne", false);
    renamed.username = "ann".into();
    let failing = [
        WriteOp::Insert(Collection::Users, tether_store::user_doc(&user(2, "Bob", false))),
        WriteOp::Link(Edge::Member, "g".into(), user(2, "", false).id),
        WriteOp::Replace(Collection::Users, tether_store::user_doc(&renamed)),
        // user3 takes user1's email: the whole batch fails.
        WriteOp::Insert(
            Collection::Users,
            tether_store::user_doc(&User { email: "USER1@example.com".into(), ..user(3, "Cy", false) }),
        ),
    ];
    assert_eq!(conflict_field(s.write_batch(&failing).await), "email");
    assert!(r.user(&user(2, "", false).id).await.unwrap().is_none());
    assert!(s.targets(Edge::Member, "g").await.unwrap().is_empty());
    assert_eq!(r.user(&user(1, "", false).id).await.unwrap().unwrap().firstname, "Ann");
    // Without the conflict it all applies; replacing a missing document is no error.
    let ok = [
        WriteOp::Insert(Collection::Users, tether_store::user_doc(&user(2, "Bob", false))),
        WriteOp::Link(Edge::Member, "g".into(), user(2, "", false).id),
        WriteOp::Link(Edge::Member, "g".into(), user(2, "", false).id),
        WriteOp::Replace(Collection::Users, tether_store::user_doc(&renamed)),
        WriteOp::Replace(Collection::Users, tether_store::user_doc(&user(9, "Nobody", false))),
        WriteOp::Unlink(Edge::Member, "g".into(), "absent".into()),
    ];
    s.write_batch(&ok).await.unwrap();
    assert_eq!(r.user_by_username("ANN").await.unwrap().unwrap().firstname, "Anne");
    assert_eq!(s.targets(Edge::Member, "g").await.unwrap(), [user(2, "", false).id]);
    s.write_batch(&[]).await.unwrap();
}

/// A batch larger than one multi-row statement: every row lands, in order within its kind,
/// and a conflict in a later statement undoes the earlier ones. Lookups by many keys at once
/// ignore case like single lookups.
async fn large_batches_span_several_statements(b: Backend) {
    let (_d, r) = repo(b).await;
    let s = r.store();
    let n = 600;
    let mut ops = Vec::new();
    for i in 0..n {
        ops.push(WriteOp::Insert(Collection::Users, tether_store::user_doc(&user(i, "Many", false))));
        ops.push(WriteOp::Link(Edge::Member, "big".into(), user(i, "", false).id));
    }
    // The last user takes the first one's username: nothing of the batch is written.
    let clash = User { username: "USER0".into(), ..user(n, "Clash", false) };
    let mut failing = ops.clone();
    failing.push(WriteOp::Insert(Collection::Users, tether_store::user_doc(&clash)));
    assert_eq!(conflict_field(s.write_batch(&failing).await), "username");
    assert_eq!(r.list_users(&ListQuery { limit: 1, ..Default::default() }).await.unwrap().0, 0);
    assert!(s.targets(Edge::Member, "big").await.unwrap().is_empty());
    s.write_batch(&ops).await.unwrap();
    let members = s.targets(Edge::Member, "big").await.unwrap();
    assert_eq!(members, (0..n).map(|i| user(i, "", false).id).collect::<Vec<_>>());
    assert_eq!(r.list_users(&ListQuery { limit: 1, ..Default::default() }).await.unwrap().0, n as u64);
    let found = r.users_by_keys(false, &["USER1", "user599", "nobody"]).await.unwrap();
    let mut names: Vec<String> = found.into_iter().map(|u| u.username).collect();
    names.sort();
    assert_eq!(names, ["user1", "user599"]);
    let by_email = r.users_by_keys(true, &["User7@Example.com"]).await.unwrap();
    assert_eq!(by_email.len(), 1);
    assert_eq!(by_email[0].username, "user7");
    // Totals follow single deletes and inserts too (the embedded store remembers them).
    let total = || async { r.list_users(&ListQuery { limit: 1, ..Default::default() }).await.unwrap().0 };
    s.delete(Collection::Users, &user(3, "", false).id).await.unwrap();
    assert_eq!(total().await, n as u64 - 1);
    r.insert_user(&user(n + 1, "Late", false), None).await.unwrap();
    assert_eq!(total().await, n as u64);
    // A deep page is the same window as the equivalent walk from the start.
    let sorted = |skip| ListQuery { sort: Some(("username", false)), limit: 7, skip, ..Default::default() };
    let deep = r.list_users(&sorted(300)).await.unwrap().1;
    let all = r.list_users(&ListQuery { limit: 307, ..sorted(0) }).await.unwrap().1;
    let ids = |v: &[User]| v.iter().map(|u| u.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&deep), ids(&all[300..]));
}

async fn feed_is_per_domain_ordered_and_forgets_secrets(b: Backend) {
    let db = Db::new(b).await;
    let s = db.open().await;
    assert!(s.read_feed("d1", 0, 10).await.unwrap().is_empty());
    let mut seqs = Vec::new();
    for i in 0..5 {
        let (d, secret) = if i % 2 == 0 { ("d1", Some("pw")) } else { ("d2", None) };
        let body = json!({"n": i, "nested": {"list": [1, "two", null], "t": true}});
        seqs.push(
            s.append_feed(feed_entry(d, &format!("u{i}"), &body, secret, &format!("2025-01-0{}T00:00:00Z", i + 1)))
                .await
                .unwrap(),
        );
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let d1 = s.read_feed("d1", 0, 10).await.unwrap();
    assert_eq!(d1.iter().map(|e| e.seq).collect::<Vec<_>>(), [seqs[0], seqs[2], seqs[4]]);
    assert_eq!(d1[1].object_id, "u2");
    assert_eq!(d1[1].kind, "user");
    assert_eq!(d1[1].body, json!({"n": 2, "nested": {"list": [1, "two", null], "t": true}}));
    assert_eq!(d1[1].secret.as_deref(), Some("pw"));
    assert_eq!(d1[1].created, "2025-01-03T00:00:00Z");
    assert_eq!(s.read_feed("d1", seqs[0], 1).await.unwrap()[0].seq, seqs[2], "after and limit");
    assert_eq!(s.read_feed("d2", 0, 10).await.unwrap().len(), 2);
    // Counted without being read.
    assert_eq!(s.count_feed("d1", 0).await.unwrap(), 3);
    assert_eq!(s.count_feed("d1", seqs[0]).await.unwrap(), 2);
    assert_eq!(s.count_feed("d3", 0).await.unwrap(), 0);
    s.clear_feed_secrets("d1", seqs[2]).await.unwrap();
    let d1 = s.read_feed("d1", 0, 10).await.unwrap();
    assert_eq!(d1.iter().map(|e| e.secret.as_deref()).collect::<Vec<_>>(), [None, None, Some("pw")]);
    // Secrets older than a bound are forgotten, each reported once with its object.
    s.append_feed(feed_entry("d2", "u9", &json!({}), Some("pw"), "2025-02-01T00:00:00Z")).await.unwrap();
    let expired = s.expire_feed_secrets("2025-01-10T00:00:00Z").await.unwrap();
    assert_eq!(expired, [("u4".to_string(), "2025-01-05T00:00:00Z".to_string())]);
    assert!(s.expire_feed_secrets("2025-01-10T00:00:00Z").await.unwrap().is_empty());
    assert_eq!(s.read_feed("d2", 0, 10).await.unwrap().last().unwrap().secret.as_deref(), Some("pw"));
}

async fn reopen_keeps_data_and_settings(b: Backend) {
    let db = Db::new(b).await;
    {
        let r = Repo::new(db.open().await);
        assert_eq!(r.store().setting("missing").await.unwrap(), None);
        r.insert_user(&user(7, "Zed", false), None).await.unwrap();
        let mut s = r.settings().await.unwrap();
        s.password_policy.min_length = 12;
        r.put_settings(&s).await.unwrap();
        r.store().put_setting("x", &json!({"a": [1, 2]})).await.unwrap();
        r.store().put_setting("x", &json!("replaced")).await.unwrap();
    }
    let r = Repo::new(db.open().await);
    assert_eq!(r.user_by_username("user7").await.unwrap().unwrap().firstname, "Zed");
    assert_eq!(r.settings().await.unwrap().password_policy.min_length, 12);
    assert_eq!(r.store().setting("x").await.unwrap(), Some(json!("replaced")));
}

/// Many tasks on two stores (two "processes") append to two domains at once while a reader
/// per domain follows the feed as a sync agent does (`read_feed(after = last seen)`, small
/// pages): every entry must be read exactly once, in increasing order. An entry committed
/// late with a lower seq than one already read would be skipped for good.
async fn feed_stays_ordered_with_concurrent_appenders_on_two_stores(b: Backend) {
    const TASKS_PER_STORE: usize = 8;
    const APPENDS_PER_TASK: usize = 40;
    let db = Db::new(b).await;
    let stores = [db.open().await, db.open().await];
    let domains = ["dom-a", "dom-b"];
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = domains
        .iter()
        .map(|d| {
            let (s, d, done) = (stores[0].clone(), d.to_string(), done.clone());
            tokio::spawn(async move {
                let (mut after, mut seen) = (0i64, Vec::new());
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let page = s.read_feed(&d, after, 7).await.unwrap();
                    for e in &page {
                        assert!(e.seq > after, "{d}: read {} after {after}", e.seq);
                        after = e.seq;
                        seen.push((e.seq, e.object_id.clone()));
                    }
                    if page.is_empty() {
                        if finished {
                            return seen;
                        }
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    let mut writers = Vec::new();
    for (si, store) in stores.iter().enumerate() {
        for t in 0..TASKS_PER_STORE {
            let s = store.clone();
            writers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0..APPENDS_PER_TASK {
                    let d = ["dom-a", "dom-b"][(i + t) % 2];
                    let object = format!("s{si}t{t}i{i}");
                    let seq = s.append_feed(feed_entry(d, &object, &json!({"i": i}), None, "now")).await.unwrap();
                    mine.push((d, seq, object));
                }
                mine
            }));
        }
    }
    let mut appended: BTreeMap<&str, BTreeSet<(i64, String)>> = BTreeMap::new();
    for w in writers {
        for (d, seq, object) in w.await.unwrap() {
            assert!(appended.entry(d).or_default().insert((seq, object)), "seq {seq} handed out twice");
        }
    }
    done.store(true, Ordering::SeqCst);
    for (d, reader) in domains.iter().zip(readers) {
        let seen = tokio::time::timeout(Duration::from_secs(60), reader).await.expect("reader finishes").unwrap();
        let expected = &appended[d];
        let read: BTreeSet<(i64, String)> = seen.iter().cloned().collect();
        assert_eq!(read.len(), seen.len(), "{d}: an entry was read twice");
        let missed: Vec<_> = expected.difference(&read).collect();
        assert!(
            missed.is_empty(),
            "{d}: the reader skipped {} entries, e.g. {:?}",
            missed.len(),
            &missed[..missed.len().min(5)]
        );
        assert_eq!(&read, expected, "{d}: the reader saw entries nobody appended");
        assert_eq!(seen.len(), TASKS_PER_STORE * APPENDS_PER_TASK);
    }
}

/// PostgreSQL only: processes starting together on an empty database migrate it once
/// (SQLite is one process's file).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_starts_migrate_once() {
    let db = Db::new(Backend::Postgres).await;
    let url = db.pg.as_ref().unwrap().url.clone();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for s in starts {
        stores.push(s.await.unwrap().expect("every concurrent start succeeds"));
    }
    stores[0].put_setting("k", &json!(1)).await.unwrap();
    assert_eq!(stores[3].setting("k").await.unwrap(), Some(json!(1)));
}

/// A `user` entry for `object` in `domain`'s feed.
fn feed_entry<'a>(
    domain: &'a str,
    object: &'a str,
    body: &'a serde_json::Value,
    secret: Option<&'a str>,
    created: &'a str,
) -> tether_store::NewFeedEntry<'a> {
    tether_store::NewFeedEntry { domain, kind: "user", object, body, secret, created }
}

/// Optimistic concurrency: a document written back from a copy read before someone else's
/// write is refused (`Stale`), with and without a password; the same copy may be saved
/// twice in a row; a copy that was never read from the store writes unconditionally.
async fn a_copy_read_before_another_write_is_refused_as_stale(b: Backend) {
    let (_d, r) = repo(b).await;
    r.insert_user(&user(1, "Ann", false), Some("hash1")).await.unwrap();
    let id = user(1, "", false).id;
    let first = r.user(&id).await.unwrap().unwrap();
    let second = r.user(&id).await.unwrap().unwrap();
    let mut changed = first.clone();
    changed.firstname = "Anna".into();
    assert!(r.save_user(&changed, None).await.unwrap());
    changed.lastname = "Again".into();
    assert!(r.save_user(&changed, None).await.unwrap(), "a saved copy moves on with the stored revision");
    let mut late = second.clone();
    late.suspended = true;
    for hash in [None, Some("hash2")] {
        match r.save_user(&late, hash).await {
            Err(StoreError::Stale { collection }) => assert_eq!(collection, "user"),
            other => panic!("expected stale, got {other:?}"),
        }
    }
    let now = r.user(&id).await.unwrap().unwrap();
    assert_eq!((now.firstname.as_str(), now.lastname.as_str(), now.suspended), ("Anna", "Again", false));
    assert_eq!(r.password_hash(&id).await.unwrap().as_deref(), Some("hash1"), "nothing of the stale write");
    // In a batch too: the whole batch is refused.
    let batch = [WriteOp::Replace(Collection::Users, tether_store::user_doc(&late))];
    assert!(matches!(r.store().write_batch(&batch).await, Err(StoreError::Stale { .. })));
    // Not read from the store: unconditional (as before revisions existed).
    let blind = User { firstname: "Blind".into(), ..user(1, "", false) };
    assert!(r.save_user(&blind, None).await.unwrap());
    assert_eq!(r.user(&id).await.unwrap().unwrap().firstname, "Blind");
    // Revisions never reach the API object.
    assert!(serde_json::to_value(&now).unwrap().get("_v").is_none());
}
