//! `tether-bench store --users 100000`: tetherd alone at scale. Users are seeded through the
//! storage layer (batched inserts, as an import writes them), then the API is measured the way
//! admins' scripts use it: paging the user list, looking a user up by name, searching.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};
use tether_core::user::User;
use tether_store::{Collection, Store, WriteOp};
use tether_testkit::TestServer;

use crate::parts::peak_rss_mb;
use crate::stats::dist;

fn user(i: usize) -> User {
    let mut u = User {
        id: format!("{i:024x}"),
        username: format!("user{i:07}"),
        email: format!("user{i:07}@bench.test"),
        firstname: "Bench".into(),
        lastname: format!("User{i}"),
        department: format!("Dept{}", i % 50),
        created: "2026-11-22T00:00:00Z".into(),
        // Active, as the model keeps an active user (before the nineteenth session the
        // seeds were active but never activated, which no write through the API makes).
        activated: true,
        ..User::default()
    };
    u.refresh_derived();
    u
}

/// A cheap deterministic sequence for request parameters.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// A random user of the `k`th third of `n` (three calls with k = 0, 1, 2 pick three
/// different users).
fn one_in_third(seed: &mut u64, n: usize, k: usize) -> usize {
    k * (n / 3) + next(seed) as usize % (n / 3)
}

async fn timed(
    s: &TestServer,
    n: usize,
    mut req: impl FnMut(usize) -> (String, String, Option<Value>),
) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let (method, path, body) = req(i);
        let t = Instant::now();
        let r = s.call(&method, &path, body).await;
        lat.push(t.elapsed());
        assert!(r.status.is_success(), "{path}: {:?}", r.body);
    }
    lat
}

/// On the embedded SQLite store, or with `postgres` on a fresh database of the test kit's
/// private PostgreSQL cluster (`target/test-pg`, or `TETHER_TEST_POSTGRES_URL`).
pub async fn run(n: usize, postgres: bool) -> Result<Value> {
    // The database lives as long as the run (dropping it drops the database).
    let db = if postgres { Some(tether_testkit::postgres_db().await) } else { None };
    // The embedded store is loaded through the server's own store (which remembers its
    // totals: a second writer would leave them stale); PostgreSQL by another process, as a
    // second tetherd would.
    let (s, other): (TestServer, Option<Box<dyn Store>>) = match &db {
        Some(db) => (
            TestServer::start_on(&db.url).await,
            Some(Box::new(tether_store::postgres::PgStore::connect(&db.url).await?)),
        ),
        None => (TestServer::start().await, None),
    };
    let create_s = load(other.as_deref().unwrap_or(s.repo().store()), n).await?;
    if let Some(db) = &db {
        // What autovacuum does soon after a bulk load: without statistics the planner takes
        // the freshly filled table for an empty one and scans it, and without the visibility
        // map no index-only scan is possible.
        use sqlx::{Connection, Executor};
        let mut c = sqlx::PgConnection::connect(&db.url).await?;
        c.execute("VACUUM ANALYZE").await?;
    }
    let db_mb = if postgres {
        Value::Null
    } else {
        json!(std::fs::metadata(s.dir.path().join("tether.db")).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0).round())
    };
    // Marks (`marks.rs`): the first deep page of a generation walks its offset and has them
    // taken in the background. How long until a page starts at one, in both orders; the
    // pages measured next find them taken.
    let marks_taken_ms = json!({"sorted_by_username": until_marked(&s, n, "&sort=username").await,
        "insertion_order": until_marked(&s, n, "").await});
    let mut seed = SEED;
    let (list_first, list_deep) = pages(&s, n, &mut seed).await;
    let (random_sorted, next_sorted) = next_pages(&s, n, &mut seed, "&sort=username").await;
    let (random_inserted, next_inserted) = next_pages(&s, n, &mut seed, "").await;
    let by_name = timed(&s, 200, |_| {
        let i = next(&mut seed) % n as u64;
        ("GET".into(), format!("/api/systemusers?filter=username:$eq:user{i:07}"), None)
    })
    .await;
    // Filtered lists answer an exact total counted by their query (the unfiltered total is
    // kept: docs/performance.md): a department (2 % of the users, no index of its own) and
    // every active user (all of them).
    let by_department = timed(&s, 20, |_| {
        let d = next(&mut seed) % 50;
        ("GET".into(), format!("/api/systemusers?limit=100&filter=department:$eq:Dept{d}"), None)
    })
    .await;
    // The same sorted by username: the planner may read the department's users and sort them.
    let by_department_sorted = timed(&s, 20, |_| {
        let d = next(&mut seed) % 50;
        ("GET".into(), format!("/api/systemusers?limit=100&sort=username&filter=department:$eq:Dept{d}"), None)
    })
    .await;
    // A reader paging through one department's users: the embedded store counts it once
    // while nothing is written (its later pages reuse the total).
    let department_pages = timed(&s, 20, |i| {
        let skip = i * 100;
        ("GET".into(), format!("/api/systemusers?limit=100&skip={skip}&filter=department:$eq:Dept7"), None)
    })
    .await;
    // Random deep pages of that department (its total remembered by now): the page itself.
    let dept_pages = (n as u64 / 50 / 100).max(1);
    let department_deep = timed(&s, 20, |_| {
        let skip = next(&mut seed) % dept_pages * 100;
        ("GET".into(), format!("/api/systemusers?limit=100&skip={skip}&filter=department:$eq:Dept7"), None)
    })
    .await;
    let all_active =
        timed(&s, 20, |_| ("GET".into(), "/api/systemusers?limit=100&filter=suspended:$eq:false".into(), None)).await;
    // The console's users by a state no user has (every bench user is active), sorted by
    // username: the page would walk every user to find none.
    let no_user = "/api/systemusers?limit=100&sort=username&filter=state:$eq:STAGED";
    let none_staged = timed(&s, 20, |_| ("GET".into(), no_user.into(), None)).await;
    let search_exact = timed(&s, 200, |_| {
        let i = next(&mut seed) % n as u64;
        let body = json!({"filter": [{"email": format!("user{i:07}@bench.test")}], "limit": 10});
        ("POST".into(), "/api/search/systemusers".into(), Some(body))
    })
    .await;
    let search_term = timed(&s, 20, |_| {
        let i = next(&mut seed) % n as u64;
        let body =
            json!({"searchFilter": {"searchTerm": format!("{i:07}"), "fields": ["username", "email"]}, "limit": 10});
        ("POST".into(), "/api/search/systemusers".into(), Some(body))
    })
    .await;
    // A random page after each write (a user created, by the other process on PostgreSQL):
    // the marks no longer hold as taken, and the page places them by the moves since
    // (`moves.rs`: one more each time, 20 at the last).
    let mut after_write = Vec::new();
    let before = s.repo().store().page_starts();
    for i in 0..20 {
        let doc = tether_store::user_doc(&user(n + i));
        other.as_deref().unwrap_or(s.repo().store()).insert(Collection::Users, &doc).await?;
        let skip = next(&mut seed) % (n as u64 / 100) * 100;
        let t = Instant::now();
        let r = s.call("GET", &format!("/api/systemusers?limit=100&skip={skip}&sort=username"), None).await;
        after_write.push(t.elapsed());
        assert!(r.status.is_success(), "{:?}", r.body);
    }
    let after = s.repo().store().page_starts();
    let after_write_started = json!({"placed_by_the_moves": after.moved - before.moved,
        "at_offset": after.offset - before.offset});
    // A random page after an update that changes no username (a user's department, by
    // the API): no row of the list moved, so it still starts at a mark.
    let mut after_update = Vec::new();
    for i in 0..20 {
        let id = user(next(&mut seed) as usize % n).id;
        let body = json!({"department": format!("Moved{i}")});
        let r = s.call("PUT", &format!("/api/systemusers/{id}"), Some(body)).await;
        assert!(r.status.is_success(), "{:?}", r.body);
        let skip = next(&mut seed) % (n as u64 / 100) * 100;
        let t = Instant::now();
        let r = s.call("GET", &format!("/api/systemusers?limit=100&skip={skip}&sort=username"), None).await;
        after_update.push(t.elapsed());
        assert!(r.status.is_success(), "{:?}", r.body);
    }
    // A user updated by the API (its department, so no tally row moves): what each write
    // pays for the triggers.
    let updates = timed(&s, 200, |i| {
        let id = user(next(&mut seed) as usize % n).id;
        ("PUT".into(), format!("/api/systemusers/{id}"), Some(json!({"department": format!("Again{i}")})))
    })
    .await;
    // A department one user has (given by the updates above), a new one each time: the
    // first page with its total, in insertion order and sorted as the console sorts.
    let one_user = |order: &'static str, k: usize| {
        move |i: usize| {
            ("GET".into(), format!("/api/systemusers?limit=100{order}&filter=department:$eq:Again{}", i * 10 + k), None)
        }
    };
    let rare = timed(&s, 20, one_user("", 0)).await;
    let rare_sorted = timed(&s, 20, one_user("&sort=username", 5)).await;
    // Three users suspended by the API, then the console's suspended users (a page of 100,
    // sorted by username) and a script's (`suspended:$eq:true`, insertion order): the total
    // is the tally's, the page must find three users among a million.
    for k in 0..3 {
        let id = user(one_in_third(&mut seed, n, k)).id;
        let r = s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"state": "SUSPENDED"}))).await;
        assert!(r.status.is_success(), "{:?}", r.body);
    }
    let console_suspended = "/api/systemusers?limit=100&sort=username&filter=state:$eq:SUSPENDED";
    let few_suspended = timed(&s, 20, |_| ("GET".into(), console_suspended.into(), None)).await;
    let script_suspended = "/api/systemusers?limit=100&filter=suspended:$eq:true";
    let few_suspended_script = timed(&s, 20, |_| ("GET".into(), script_suspended.into(), None)).await;
    // Three users given sudo by the API, then a security review's lists of them (the flag,
    // in insertion order and sorted by username): a rare value of a tallied field.
    for k in 0..3 {
        let id = user(one_in_third(&mut seed, n, k)).id;
        let r = s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"sudo": true}))).await;
        assert!(r.status.is_success(), "{:?}", r.body);
    }
    let sudo = |order: &'static str| {
        move |_| ("GET".into(), format!("/api/systemusers?limit=100{order}&filter=sudo:$eq:true"), None)
    };
    let few_sudo = timed(&s, 20, sudo("")).await;
    let few_sudo_sorted = timed(&s, 20, sudo("&sort=username")).await;
    // Three users imported from AD among Tether's own (inserted as the import writes them),
    // then the console's list by source, sorted by username: either source may be the rare
    // one.
    for i in 0..3 {
        let mut u = user(n + 100 + i);
        u.externally_managed = true;
        other.as_deref().unwrap_or(s.repo().store()).insert(Collection::Users, &tether_store::user_doc(&u)).await?;
    }
    // Three users staged (never activated), inserted as an import of staged users writes
    // them, then a script's list of the users pending activation, as JumpCloud's older API
    // asks for them (`activated:$eq:false`, insertion order).
    for i in 0..3 {
        let mut u = user(n + 200 + i);
        (u.state, u.activated) = (tether_core::user::UserState::Staged, false);
        other.as_deref().unwrap_or(s.repo().store()).insert(Collection::Users, &tether_store::user_doc(&u)).await?;
    }
    let pending = "/api/systemusers?limit=100&filter=activated:$eq:false";
    let few_pending = timed(&s, 20, |_| ("GET".into(), pending.into(), None)).await;
    let console_ad = "/api/systemusers?limit=100&sort=username&filter=externally_managed:$eq:true";
    let few_from_ad = timed(&s, 20, |_| ("GET".into(), console_ad.into(), None)).await;
    // And the common source, a script's list in insertion order: its page must not sort
    // every user who has it.
    let script_tether = "/api/systemusers?limit=100&filter=externally_managed:$eq:false";
    let all_from_tether = timed(&s, 20, |_| ("GET".into(), script_tether.into(), None)).await;
    let starts = s.repo().store().page_starts();
    let total = s.call("GET", "/api/systemusers?limit=1", None).await.body["totalCount"].clone();
    drop((s, other));
    let without = if postgres { Value::Null } else { without_text_index(n).await? };
    Ok(json!({
        "store": if postgres { "postgres" } else { "sqlite" },
        "users": n,
        "total_count_seen": total,
        "create_users_per_s": (n as f64 / create_s).round(),
        "create_seconds": (create_s * 10.0).round() / 10.0,
        "database_mb": db_mb,
        "list_first_page_100": dist(list_first),
        "list_random_page_100_sorted": dist(list_deep),
        "read_through_sorted": json!({"random_page": dist(random_sorted), "next_page": dist(next_sorted)}),
        "read_through_insertion_order": json!({"random_page": dist(random_inserted), "next_page": dist(next_inserted)}),
        "random_page_sorted_after_a_write": dist(after_write),
        "random_page_sorted_after_a_write_started": after_write_started,
        "random_page_sorted_after_an_update": dist(after_update),
        "marks_taken_ms": marks_taken_ms,
        "pages_started": {"at_offset": starts.offset, "after_the_page_before": starts.continued,
            "at_a_mark": starts.marked, "at_a_mark_placed_by_the_moves": starts.moved},
        "lookup_by_username": dist(by_name),
        "update_one_user": dist(updates),
        "list_first_page_filtered_with_total": json!({"a_department_2_percent": dist(by_department),
            "a_department_2_percent_sorted": dist(by_department_sorted),
            "a_department_page_by_page": dist(department_pages),
            "a_department_random_page": dist(department_deep),
            "a_department_one_user_has": dist(rare),
            "a_department_one_user_has_sorted": dist(rare_sorted),
            "three_suspended_users_sorted": dist(few_suspended),
            "three_suspended_users_by_flag": dist(few_suspended_script),
            "three_sudo_users": dist(few_sudo),
            "three_sudo_users_sorted": dist(few_sudo_sorted),
            "three_users_from_ad_sorted": dist(few_from_ad),
            "three_users_pending_activation": dist(few_pending),
            "every_user_of_tethers_own": dist(all_from_tether),
            "every_active_user": dist(all_active),
            "a_state_no_user_has_sorted": dist(none_staged)}),
        "search_exact_email": dist(search_exact),
        "search_substring_username_or_email": dist(search_term),
        "without_text_index": without,
        "peak_rss_mb_process": (peak_rss_mb() * 10.0).round() / 10.0,
        "note": if postgres { "the process runs tetherd only; PostgreSQL's own memory is not counted" } else { "" },
    }))
}

const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// Writes `n` users through the storage layer in batches, as an import does; answers the
/// seconds it took.
async fn load(store: &dyn Store, n: usize) -> Result<f64> {
    let t = Instant::now();
    let batch = 2000;
    for start in (0..n).step_by(batch) {
        let ops: Vec<WriteOp> = (start..(start + batch).min(n))
            .map(|i| WriteOp::Insert(Collection::Users, tether_store::user_doc(&user(i))))
            .collect();
        store.write_batch(&ops).await?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// The first page, and random pages sorted by username.
async fn pages(s: &TestServer, n: usize, seed: &mut u64) -> (Vec<Duration>, Vec<Duration>) {
    let pages = n.div_ceil(100) as u64;
    let first = timed(s, 200, |_| ("GET".into(), "/api/systemusers?limit=100".into(), None)).await;
    let deep = timed(s, 200, |_| {
        let skip = next(seed) % pages * 100;
        ("GET".into(), format!("/api/systemusers?limit=100&skip={skip}&sort=username"), None)
    })
    .await;
    (first, deep)
}

/// Asks a deep page of the users' list in `order` every 5 ms until one starts at a mark
/// (`marks.rs`); answers the milliseconds it took.
async fn until_marked(s: &TestServer, n: usize, order: &str) -> f64 {
    let t = Instant::now();
    let path = format!("/api/systemusers?limit=100&skip={}{order}", n / 200 * 100);
    loop {
        let before = s.repo().store().page_starts().marked;
        let r = s.call("GET", &path, None).await;
        assert!(r.status.is_success(), "{path}: {:?}", r.body);
        if s.repo().store().page_starts().marked > before {
            return (t.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "no page of {path} started at a mark");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A reader paging through, as admins' scripts do: from 100 random pages (`order` empty:
/// insertion order), each followed by the next three (`skip` + 100 each time). Answers the
/// random pages' times and the next pages' (continued where the last one ended).
async fn next_pages(s: &TestServer, n: usize, seed: &mut u64, order: &str) -> (Vec<Duration>, Vec<Duration>) {
    let pages = n.div_ceil(100).saturating_sub(3).max(1) as u64;
    let (mut random, mut continued) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let start = next(seed) % pages * 100;
        for k in 0..4 {
            let skip = start + k * 100;
            let path = format!("/api/systemusers?limit=100&skip={skip}{order}");
            let t = Instant::now();
            let r = s.call("GET", &path, None).await;
            let took = t.elapsed();
            assert!(r.status.is_success(), "{path}: {:?}", r.body);
            if k == 0 {
                random.push(took)
            } else {
                continued.push(took)
            }
        }
    }
    (random, continued)
}

/// The same load and pages on an embedded store whose trigram index (table `users_text`
/// and its triggers) is dropped before the load: what the index costs writes and the pages,
/// which do not use it, side by side in the same run.
async fn without_text_index(n: usize) -> Result<Value> {
    use sqlx::{Connection, Executor};
    let s = TestServer::start().await;
    let url = format!("sqlite://{}", s.dir.path().join("tether.db").display());
    let mut c = sqlx::SqliteConnection::connect(&url).await?;
    for t in ["users_text_insert", "users_text_delete", "users_text_update"] {
        c.execute(format!("DROP TRIGGER {t}").as_str()).await?;
    }
    c.execute("DROP TABLE users_text").await?;
    c.close().await?;
    let create_s = load(s.repo().store(), n).await?;
    let mut seed = SEED;
    let (first, deep) = pages(&s, n, &mut seed).await;
    Ok(json!({
        "create_users_per_s": (n as f64 / create_s).round(),
        "database_mb": std::fs::metadata(s.dir.path().join("tether.db")).map(|m| (m.len() as f64 / 1e6).round()).unwrap_or(0.0),
        "list_first_page_100": dist(first),
        "list_random_page_100_sorted": dist(deep),
    }))
}
