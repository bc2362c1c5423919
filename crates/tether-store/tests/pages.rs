//! Lists read page by page, as admins' scripts read them (`skip` = the last page's `skip` +
//! its size): the same pages as `OFFSET` when nothing changes, and, when users come and go
//! meanwhile, each user that stayed seen exactly once (a page continues after the row the
//! last one ended on: `cursors.rs`). A page at a random offset of a long list starts at the
//! mark before it (`marks.rs`) and is still its offset page, also after writes (the mark
//! placed by the moves since: `moves.rs`). And the totals PostgreSQL keeps by triggers stay exact with several processes
//! writing. Both backends.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use tether_core::query::{parse_filter_param, parse_sort, Filter, ListQuery, USER_FIELDS};
use tether_core::user::User;
use tether_store::{Collection, Repo, WriteOp};

use crate::common::{repo, user, Backend, Db};

on_both_backends!(
    consecutive_pages_are_the_offset_pages_when_nothing_changes,
    a_reader_paging_through_sees_each_user_that_stayed_once_while_others_come_and_go,
    deep_pages_start_at_marks_and_answer_their_offset_pages,
    an_update_that_keeps_the_username_keeps_the_marks,
    the_moves_are_pruned,
    a_filtered_total_follows_every_write,
);

/// The list shapes a page can be continued in (insertion order, by username) and those it
/// cannot (walked by offset), unfiltered and filtered.
fn shapes() -> Vec<(&'static str, ListQuery)> {
    let sort = |s: &str| parse_sort(USER_FIELDS, s).unwrap();
    let active = || Some(parse_filter_param(USER_FIELDS, "suspended:$eq:false").unwrap());
    vec![
        ("insertion order", ListQuery { limit: 7, ..ListQuery::default() }),
        ("by username", ListQuery { sort: sort("username"), limit: 7, ..ListQuery::default() }),
        ("by username, filtered", ListQuery { sort: sort("username"), filter: active(), limit: 7, skip: 0 }),
        ("insertion order, filtered", ListQuery { filter: active(), limit: 7, ..ListQuery::default() }),
        ("by username, descending", ListQuery { sort: sort("-username"), limit: 7, ..ListQuery::default() }),
        ("by first name", ListQuery { sort: sort("firstname"), limit: 7, ..ListQuery::default() }),
    ]
}

/// Usernames that sort apart from their insertion order, in mixed case.
fn mixed(i: usize) -> User {
    let first = ["ann", "Bob", "carl", "DANA", "eve"][i % 5];
    User {
        username: format!("{}{}", if i.is_multiple_of(2) { "Z" } else { "a" }, (i * 7919) % 1000),
        ..user(i, first, i.is_multiple_of(3))
    }
}

fn ids(v: &[User]) -> Vec<String> {
    v.iter().map(|u| u.id.clone()).collect()
}

/// Every page of `q`, read one after the other until one comes back short.
async fn read_through(r: &Repo, q: &ListQuery, mut between: impl AsyncFnMut(usize, &[User])) -> Vec<User> {
    let mut out = Vec::new();
    for page in 0.. {
        let (_, v) = r.list_users(&ListQuery { skip: page * q.limit, ..q.clone() }).await.unwrap();
        if v.len() < q.limit {
            out.extend(v);
            return out;
        }
        between(page, &v).await;
        out.extend(v);
    }
    unreachable!()
}

async fn consecutive_pages_are_the_offset_pages_when_nothing_changes(b: Backend) {
    let (db, r) = repo(b).await;
    for i in 0..45 {
        r.insert_user(&mixed(i), None).await.unwrap();
    }
    for (shape, q) in shapes() {
        let (total, all) = r.list_users(&ListQuery { limit: 1000, ..q.clone() }).await.unwrap();
        assert_eq!(total as usize, all.len(), "{shape}");
        let paged = read_through(&r, &q, async |_, _| {}).await;
        assert_eq!(ids(&paged), ids(&all), "{shape}: pages read one after the other");
        // A page asked of another process (which has seen no earlier page) is the same.
        let other = Repo::new(db.open().await);
        let (_, deep) = other.list_users(&ListQuery { skip: 14, ..q.clone() }).await.unwrap();
        assert_eq!(ids(&deep), ids(&all[14..21]), "{shape}: a page by its offset");
    }
}

async fn a_reader_paging_through_sees_each_user_that_stayed_once_while_others_come_and_go(b: Backend) {
    let (_db, r) = repo(b).await;
    let mut next = 0;
    for _ in 0..40 {
        r.insert_user(&mixed(next), None).await.unwrap();
        next += 1;
    }
    for (shape, q) in shapes().into_iter().take(4) {
        let before = r.list_users(&ListQuery { limit: 1000, ..q.clone() }).await.unwrap().1;
        let ids_before = ids(&before);
        let mut deleted = None;
        // After the first page: one of its users is deleted and two users come that sort
        // before it by username (and after it in insertion order): with offsets, the next
        // pages would repeat a user (by username: one row more before them) or skip one for
        // good (in insertion order: one row less).
        let paged = read_through(&r, &q, async |page, first| {
            if page != 0 {
                return;
            }
            r.store().delete(Collection::Users, &first[2].id).await.unwrap();
            deleted = Some(first[2].id.clone());
            for _ in 0..2 {
                // Active, so the filtered shapes count them before the cursor too.
                let u = User { username: format!("A{next:03}"), suspended: false, ..mixed(next) };
                r.insert_user(&u, None).await.unwrap();
                next += 1;
            }
        })
        .await;
        let mut times: BTreeMap<String, usize> = BTreeMap::new();
        for id in ids(&paged) {
            *times.entry(id).or_default() += 1;
        }
        let repeated: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
        assert!(repeated.is_empty(), "{shape}: seen twice: {repeated:?}");
        let deleted = deleted.expect("a first page");
        for id in ids_before.iter().filter(|id| **id != deleted) {
            assert!(times.contains_key(id), "{shape}: {id}, there from start to end, was never seen");
        }
    }
}

/// Usernames that sort apart from their insertion order, each its own, for long lists.
fn long(i: usize) -> User {
    User {
        username: format!("{}{:06}", if i.is_multiple_of(2) { "Z" } else { "a" }, (i * 7919) % 100_003),
        ..user(i, "Mark", i.is_multiple_of(3))
    }
}

/// Asks the page at `skip` of `q` until one starts at a mark (the first of a generation
/// walks its offset and has the marks taken in the background), for 10 s at most.
async fn until_marked(r: &Repo, q: &ListQuery, skip: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let before = r.store().page_starts().marked;
        r.list_users(&ListQuery { skip, ..q.clone() }).await.unwrap();
        if r.store().page_starts().marked > before {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no page started at a mark");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn deep_pages_start_at_marks_and_answer_their_offset_pages(b: Backend) {
    let (db, r) = repo(b).await;
    let n = 1234;
    let batch: Vec<WriteOp> =
        (0..n).map(|i| WriteOp::Insert(Collection::Users, tether_store::user_doc(&long(i)))).collect();
    r.store().write_batch(&batch).await.unwrap();
    // On PostgreSQL the writes below come from another process too (an embedded store has
    // one writer).
    let other = match b {
        Backend::Postgres => Some(Repo::new(db.open().await)),
        Backend::Sqlite => None,
    };
    let mut next = n;
    for (shape, q) in shapes().into_iter().take(2) {
        let whole = ListQuery { limit: 5000, ..q.clone() };
        let all = async |r: &Repo| ids(&r.list_users(&whole).await.unwrap().1);
        let expected = all(&r).await;
        until_marked(&r, &q, 600).await;
        // (skip) each answered from the mark before it: the first and second mark, around
        // them, between, past the last, the last page.
        for skip in [500, 501, 999, 1000, 1100, 777, expected.len() - 7] {
            let before = r.store().page_starts();
            let (_, page) = r.list_users(&ListQuery { skip, ..q.clone() }).await.unwrap();
            assert_eq!(ids(&page), expected[skip..skip + 7], "{shape} at {skip}");
            let after = r.store().page_starts();
            assert_eq!(
                (after.marked, after.offset),
                (before.marked + 1, before.offset),
                "{shape} at {skip}: from a mark"
            );
        }
        // After each write (a user deleted before the pages, one added, one renamed, the
        // rows the first two marks stand at deleted and renamed), a deep page starts at the
        // mark before it once the moves since the marks are counted.
        let (first_mark, second_mark) = (expected[499].clone(), expected[999].clone());
        for write in ["delete", "insert", "rename", "delete a mark's row", "rename a mark's row"] {
            let w = other.as_ref().unwrap_or(&r);
            let current = all(&r).await;
            let rename = async |id: &str| {
                let mut u = w.user(id).await.unwrap().unwrap();
                u.username = format!("zz{}", u.username);
                assert!(w.save_user(&u, None).await.unwrap());
            };
            match write {
                "delete" => assert!(w.store().delete(Collection::Users, &current[3]).await.unwrap()),
                "insert" => {
                    let u = User { username: format!("A{next:06}"), ..long(next) };
                    w.insert_user(&u, None).await.unwrap();
                    next += 1;
                }
                "rename" => rename(&current[5]).await,
                "delete a mark's row" => assert!(w.store().delete(Collection::Users, &first_mark).await.unwrap()),
                _ => rename(&second_mark).await,
            }
            let expected = all(&r).await;
            for skip in [500, 999, 1000, 1001, expected.len() - 7] {
                let before = r.store().page_starts();
                let (_, page) = r.list_users(&ListQuery { skip, ..q.clone() }).await.unwrap();
                assert_eq!(ids(&page), expected[skip..skip + 7], "{shape} at {skip} after a {write}");
                let after = r.store().page_starts();
                assert_eq!(
                    (after.moved, after.offset),
                    (before.moved + 1, before.offset),
                    "{shape} at {skip} after a {write}: from a mark placed by the moves"
                );
            }
        }
        // More moves than a page reads: by its offset, and the marks are taken again.
        let batch: Vec<WriteOp> =
            (next..next + 1100).map(|i| WriteOp::Insert(Collection::Users, tether_store::user_doc(&long(i)))).collect();
        next += 1100;
        other.as_ref().unwrap_or(&r).store().write_batch(&batch).await.unwrap();
        let expected = all(&r).await;
        let before = r.store().page_starts();
        let (_, page) = r.list_users(&ListQuery { skip: 1000, ..q.clone() }).await.unwrap();
        assert_eq!(ids(&page), expected[1000..1007], "{shape} after 1,100 inserts");
        assert_eq!(r.store().page_starts().offset, before.offset + 1, "{shape} after 1,100 inserts: by its offset");
        until_marked(&r, &q, 600).await;
        let (_, page) = r.list_users(&ListQuery { skip: 2001, ..q.clone() }).await.unwrap();
        assert_eq!(ids(&page), expected[2001..2008], "{shape} after 1,100 inserts, from the new marks");
    }
}

/// A repo on `db` holding 1,234 users of [`long`], and 7-user pages of them by username.
async fn long_list(db: &Db) -> (Repo, ListQuery) {
    let r = Repo::new(db.open().await);
    let batch: Vec<WriteOp> =
        (0..1234).map(|i| WriteOp::Insert(Collection::Users, tether_store::user_doc(&long(i)))).collect();
    r.store().write_batch(&batch).await.unwrap();
    (r, ListQuery { limit: 7, ..shapes()[1].1.clone() })
}

/// An update that changes no username moves no row of the users' lists: the next deep page
/// still starts at a mark, on both stores (on SQLite every write used to make them stale).
async fn an_update_that_keeps_the_username_keeps_the_marks(b: Backend) {
    let db = Db::new(b).await;
    let (r, q) = long_list(&db).await;
    let whole = ListQuery { limit: 5000, ..q.clone() };
    until_marked(&r, &q, 600).await;
    let expected = ids(&r.list_users(&whole).await.unwrap().1);
    for i in [3, 1003] {
        let mut u = r.user(&expected[i]).await.unwrap().unwrap();
        u.email = format!("changed{i}@example.test");
        u.suspended = !u.suspended;
        assert!(r.save_user(&u, None).await.unwrap());
        let before = r.store().page_starts();
        let (_, page) = r.list_users(&ListQuery { skip: 1000, ..q.clone() }).await.unwrap();
        assert_eq!(ids(&page), expected[1000..1007], "after an update of row {i}");
        let after = r.store().page_starts();
        assert_eq!((after.marked, after.offset), (before.marked + 1, before.offset), "row {i}: still from a mark");
    }
}

/// The log of the users' moves (`moves.rs`) is pruned, and keeps what a page reads: after
/// 1,000 single inserts (past a prune on SQLite, which prunes every 1,024th move; a dozen on
/// PostgreSQL) a deep page still starts at the mark the moves place; and after 2,100 more
/// users in one transaction and 64 single inserts, a few thousand rows are logged, not one
/// per user ever written.
async fn the_moves_are_pruned(b: Backend) {
    let db = Db::new(b).await;
    let r = Repo::new(db.open().await);
    let batch = async |from: usize, to: usize| {
        let ops: Vec<WriteOp> =
            (from..to).map(|i| WriteOp::Insert(Collection::Users, tether_store::user_doc(&long(i)))).collect();
        r.store().write_batch(&ops).await.unwrap();
    };
    batch(0, 2100).await;
    let q = ListQuery { limit: 7, ..shapes()[1].1.clone() };
    until_marked(&r, &q, 600).await;
    for i in 2100..3100 {
        r.insert_user(&long(i), None).await.unwrap();
    }
    let expected = ids(&r.list_users(&ListQuery { limit: 5000, ..q.clone() }).await.unwrap().1);
    let before = r.store().page_starts();
    let (_, page) = r.list_users(&ListQuery { skip: 1500, ..q.clone() }).await.unwrap();
    assert_eq!(ids(&page), expected[1500..1507]);
    assert_eq!(r.store().page_starts().moved, before.moved + 1, "from the mark the 1,000 moves place");
    batch(3100, 5200).await;
    for i in 5200..5264 {
        r.insert_user(&long(i), None).await.unwrap();
    }
    let logged = async || -> i64 {
        use sqlx::Connection;
        match &db.pg {
            Some(pg) => {
                let mut c = sqlx::PgConnection::connect(&pg.url).await.unwrap();
                sqlx::query_scalar("SELECT count(*) FROM users_moves").fetch_one(&mut c).await.unwrap()
            }
            None => {
                let path = db.dir.path().join("tether.db");
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
                sqlx::query_scalar("SELECT count(*) FROM users_moves").fetch_one(&mut c).await.unwrap()
            }
        }
    };
    // SQLite keeps the last 2,048 to 3,071; PostgreSQL the newest 2,048 or so by
    // transaction id (whole transactions), pruned in the background.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n = logged().await;
        if (1024..=3072).contains(&n) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{n} moves logged of 5,264");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A filtered list's total (remembered while no user is written: `remembered.rs`) is what
/// the filter matches after every kind of write, each total read twice and at two pages: a
/// user updated into the filter and one out of it, one created, one deleted, one updated
/// elsewhere. The filter names a field the users' tally does not hold, so the documents are
/// counted (and the count remembered). On PostgreSQL the writes come from another process:
/// the reader's memory must not outlive them.
async fn a_filtered_total_follows_every_write(b: Backend) {
    let db = Db::new(b).await;
    let store = db.open().await;
    let reader = Repo::new(store.clone());
    let r = match b {
        Backend::Sqlite => Repo::new(store),
        Backend::Postgres => Repo::new(db.open().await),
    };
    let ops: Vec<WriteOp> =
        (0..30).map(|i| WriteOp::Insert(Collection::Users, tether_store::user_doc(&long(i)))).collect();
    r.store().write_batch(&ops).await.unwrap();
    let filter = Some(Filter::And(vec![
        parse_filter_param(USER_FIELDS, "suspended:$eq:true").unwrap(),
        parse_filter_param(USER_FIELDS, "department:$ne:nowhere").unwrap(),
    ]));
    let q = ListQuery { filter, limit: 4, ..ListQuery::default() };
    let totals = async || {
        let mut seen = Vec::new();
        for skip in [0, 4, 0, 4] {
            seen.push(reader.list_users(&ListQuery { skip, ..q.clone() }).await.unwrap().0);
        }
        seen
    };
    let suspend = async |i: usize, suspended: bool| {
        let mut u = r.user(&long(i).id).await.unwrap().unwrap();
        u.suspended = suspended;
        assert!(r.save_user(&u, None).await.unwrap());
    };
    assert_eq!(totals().await, [10; 4], "every third of 30 suspended");
    suspend(1, true).await;
    assert_eq!(totals().await, [11; 4], "one updated into the filter");
    suspend(0, false).await;
    assert_eq!(totals().await, [10; 4], "one updated out of it");
    r.insert_user(&User { suspended: true, ..long(30) }, None).await.unwrap();
    assert_eq!(totals().await, [11; 4], "one created");
    assert!(r.store().delete(Collection::Users, &long(3).id).await.unwrap());
    assert_eq!(totals().await, [10; 4], "one deleted");
    let mut u = r.user(&long(6).id).await.unwrap().unwrap();
    u.email = "elsewhere@example.test".into();
    assert!(r.save_user(&u, None).await.unwrap());
    assert_eq!(totals().await, [10; 4], "an update elsewhere");
}

/// On PostgreSQL the write generation and the moves are read in the snapshot of the rows
/// read: marks taken while another process's write is under way (its transaction not yet
/// committed, so the walk does not see its row) are placed by that write's move once it
/// commits, though it began before the walk (and before another write the walk saw).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_marks_taken_during_a_write_count_its_move_once_it_commits() {
    use sqlx::Connection;
    let db = Db::new(Backend::Postgres).await;
    let (r, q) = long_list(&db).await;
    // Another process inserts a user sorting before every other one, in a transaction left
    // open while the marks are taken.
    let mut c = sqlx::PgConnection::connect(&db.pg.as_ref().unwrap().url).await.unwrap();
    let mut tx = c.begin().await.unwrap();
    let first = tether_store::user_doc(&User { username: "0first".into(), ..long(5000) });
    sqlx::query("INSERT INTO users (id, key1, key2, doc) VALUES ($1, $2, $3, $4::jsonb)")
        .bind(&first.id)
        .bind(first.key1.as_deref().map(str::to_lowercase))
        .bind(first.key2.as_deref().map(str::to_lowercase))
        .bind(first.body.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    // A write that began later and commits first: the open one is among the snapshot's
    // running transactions, not past the last it knows of.
    r.insert_user(&long(5001), None).await.unwrap();
    until_marked(&r, &q, 600).await;
    tx.commit().await.unwrap();
    let expected = ids(&r.list_users(&ListQuery { limit: 5000, ..q.clone() }).await.unwrap().1);
    assert_eq!(expected[0], first.id);
    let before = r.store().page_starts();
    let (_, page) = r.list_users(&ListQuery { skip: 1000, ..q.clone() }).await.unwrap();
    assert_eq!(ids(&page), expected[1000..1007], "one row later than the marks say");
    assert_eq!(r.store().page_starts().moved, before.moved + 1, "placed by the moves the marks did not see");
}

/// On SQLite the directory version (by which LDAP answers are held) moves only once a write
/// has ended, also one whose request was dropped mid-way (its client gone) while the
/// statement still runs on the writer's thread; the cached total is forgotten; and the pages
/// answer their offsets throughout, from the marks while the insert has not landed (their
/// generation is read with the rows). The dropped insert is held on SQLite's write lock,
/// taken by another connection, so it is cancelled while it waits and commits once the lock
/// is let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_write_dropped_mid_way_moves_the_version_only_once_it_landed() {
    use sqlx::{Connection, Executor};
    let db = Db::new(Backend::Sqlite).await;
    let (r, q) = long_list(&db).await;
    let whole = ListQuery { limit: 5000, ..q.clone() };
    until_marked(&r, &q, 600).await;
    let version = r.store().directory_version();
    let list_before = r.list_users(&whole).await.unwrap();

    let path = db.dir.path().join("tether.db");
    let mut lock = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    lock.execute("BEGIN IMMEDIATE").await.unwrap();
    let first = User { username: "0first".into(), ..long(5000) };
    let dropped = tokio::time::timeout(std::time::Duration::from_millis(300), r.insert_user(&first, None)).await;
    assert!(dropped.is_err(), "the insert waits for the write lock, and is dropped");
    // The insert has not landed: the version has not moved, and a deep page is still that
    // of the rows without it, from the marks of those rows.
    assert_eq!(r.store().directory_version(), version, "moved before the write landed");
    for _ in 0..3 {
        let before = r.store().page_starts();
        let (_, page) = r.list_users(&ListQuery { skip: 1000, ..q.clone() }).await.unwrap();
        assert_eq!(ids(&page), ids(&list_before.1[1000..1007]));
        assert_eq!(r.store().page_starts().marked, before.marked + 1, "from the marks: nothing landed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    lock.execute("COMMIT").await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while r.store().directory_version() == version {
        assert!(std::time::Instant::now() < deadline, "the version never moved");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let expected = ids(&r.list_users(&whole).await.unwrap().1);
    assert_eq!(expected[0], first.id, "the dropped insert landed");
    let before = r.store().page_starts();
    let (_, page) = r.list_users(&ListQuery { skip: 1000, ..q.clone() }).await.unwrap();
    assert_eq!(ids(&page), expected[1000..1007], "one row later than the old marks say");
    assert_eq!(r.store().page_starts().moved, before.moved + 1, "placed by the move since");
    assert_eq!(r.list_users(&whole).await.unwrap().0, 1235, "the total counts it");
}

/// PostgreSQL keeps each table's row count by triggers (deltas folded now and then): with two
/// processes inserting and deleting at once, in batches and one by one, past many folds,
/// the unfiltered total stays the count of the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_totals_stay_exact_with_two_processes_writing() {
    let db = Db::new(Backend::Postgres).await;
    let (a, b) = (Arc::new(Repo::new(db.open().await)), Arc::new(Repo::new(db.open().await)));
    let writer = |r: Arc<Repo>, from: usize| {
        tokio::spawn(async move {
            for i in from..from + 150 {
                r.insert_user(&user(i, "One", false), None).await.unwrap();
                if i % 3 == 0 {
                    r.store().delete(Collection::Users, &user(i, "", false).id).await.unwrap();
                }
            }
            let batch: Vec<WriteOp> = (from + 500..from + 600)
                .map(|i| WriteOp::Insert(Collection::Users, tether_store::user_doc(&user(i, "Batch", false))))
                .collect();
            r.store().write_batch(&batch).await.unwrap();
        })
    };
    let (ta, tb) = (writer(a.clone(), 0), writer(b.clone(), 10_000));
    // Totals read while the writers run are never below zero or above what was written.
    for _ in 0..20 {
        let (n, _) = a.list_users(&ListQuery { limit: 1, ..ListQuery::default() }).await.unwrap();
        assert!(n <= 500, "{n}");
    }
    ta.await.unwrap();
    tb.await.unwrap();
    // 2 × (150 − 50 deleted + 100 in a batch)
    let every = ListQuery {
        filter: Some(parse_filter_param(USER_FIELDS, "username:$ne:nobody").unwrap()),
        ..ListQuery { limit: 1, ..ListQuery::default() }
    };
    let counted = a.list_users(&every).await.unwrap().0;
    assert_eq!(counted, 400, "count(*) through a filter");
    for r in [&a, &b] {
        assert_eq!(r.list_users(&ListQuery { limit: 1, ..ListQuery::default() }).await.unwrap().0, 400);
    }
    // Every collection's table is counted.
    for c in Collection::ALL {
        let doc =
            tether_store::Doc { id: format!("counted-{c:?}"), key1: None, key2: None, body: json!({}), version: None };
        let before = a.store().list(c, &ListQuery::default()).await.unwrap().0;
        a.store().insert(c, &doc).await.unwrap();
        assert_eq!(b.store().list(c, &ListQuery::default()).await.unwrap().0, before + 1, "{c:?}");
        a.store().delete(c, &doc.id).await.unwrap();
        assert_eq!(b.store().list(c, &ListQuery::default()).await.unwrap().0, before, "{c:?}");
    }
    // A failed batch adds nothing.
    let clash = vec![
        WriteOp::Insert(Collection::Users, tether_store::user_doc(&user(90_000, "New", false))),
        WriteOp::Insert(Collection::Users, tether_store::user_doc(&user(1, "Clash", false))),
    ];
    assert!(a.store().write_batch(&clash).await.is_err());
    assert_eq!(b.list_users(&ListQuery { limit: 1, ..ListQuery::default() }).await.unwrap().0, 400);
}
