//! The ADI benchmark (`tether-bench adi`): Tether against a real Samba AD DC in one run, each
//! step against the DC's own rate (see the crate's documentation).

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tether_ad::connect;
use tether_ad::read::paged_search;
use tether_agent::config::{ImportConfig, SyncConfig};
use tether_agent::session::Session;
use tether_testkit::{Dc, TestServer};

use crate::parts::{cpu_seconds, peak_rss_mb, Part};
use crate::sandbox::{dc, sandbox};
use crate::stats::{by_kind, dist};
use crate::{adi_auth, picture};

/// Plain stored attributes only, for comparison with the import's own attribute list.
const PLAIN_ATTRS: &[&str] =
    &["objectGUID", "sAMAccountName", "givenName", "sn", "mail", "userAccountControl", "title", "department"];
/// What the import agent reads for each user.
const USER_ATTRS: &[&str] = tether_agent::import::USER_ATTRS;

async fn domain_with_agent(s: &TestServer, d: &Dc, use_case: &str, kind: &str) -> Result<String> {
    let r = s.call("POST", "/api/v2/activedirectories", Some(json!({"domain": d.base_dn, "useCase": use_case}))).await;
    let id = r.body["id"].as_str().context("domain")?.to_string();
    let a = s.call("POST", &format!("/api/v2/activedirectories/{id}/agents"), Some(json!({"agentType": kind}))).await;
    Ok(a.body["connectKey"].as_str().context("key")?.to_string())
}

pub(crate) fn import_config_json(s: &TestServer, d: &Dc, key: &str, state: &Path, installed_on: &str) -> Value {
    tether_testkit::with_keys(
        d.import_agent_config(&s.url, key, state, &d.users_container(), &d.group_dn),
        // The default main loop (no shortened poll interval): the latency figures are what an
        // admin gets.
        json!({"InstalledOn": installed_on}),
    )
}

fn import_config(s: &TestServer, d: &Dc, key: &str, state: &Path, installed_on: &str) -> Result<ImportConfig> {
    let v = import_config_json(s, d, key, state, installed_on);
    Ok(ImportConfig::from_str(Path::new("bench.json"), &v.to_string())?)
}

/// The seeded user number `k` as Tether holds it: (its document, its AD DN, its id).
pub(crate) async fn seeded_user(s: &TestServer, d: &Dc, k: usize) -> Result<(Value, String, String)> {
    let sam = format!("{}user{k:04}", d.seed_prefix);
    let u =
        s.call("GET", &format!("/api/systemusers?filter=username:$eq:{sam}"), None).await.body["results"][0].clone();
    let dn = u["external_dn"].as_str().context("imported user")?.to_string();
    let id = u["id"].as_str().unwrap_or_default().to_string();
    Ok((u, dn, id))
}

/// The DC's CPU time over `window`, in ms per second.
pub(crate) async fn dc_cpu_ms_per_s(window: Duration) -> f64 {
    let before = crate::parts::samba_cpu_seconds();
    tokio::time::sleep(window).await;
    let used = crate::parts::samba_cpu_seconds() - before;
    (used * 1000.0 / window.as_secs_f64() * 10.0).round() / 10.0
}

async fn sn_of(ldap: &mut tether_ad::Ldap, base: &str) -> Option<String> {
    let (e, _) = ldap
        .search(base, tether_ad::ldap3::Scope::Subtree, "(sAMAccountName=benchsync)", vec!["sn"])
        .await
        .ok()?
        .success()
        .ok()?;
    e.into_iter()
        .next()
        .map(tether_ad::ldap3::SearchEntry::construct)
        .and_then(|e| e.attrs.get("sn").and_then(|v| v.first().cloned()))
}

/// The values of `attr` of the `benchsync` user in AD.
async fn ad_values(admin: &mut tether_ad::Ldap, base: &str, attr: &str) -> Result<Vec<String>> {
    let (e, _) = admin
        .search(base, tether_ad::ldap3::Scope::Subtree, "(sAMAccountName=benchsync)", vec![attr])
        .await?
        .success()?;
    Ok(e.into_iter()
        .next()
        .map(tether_ad::ldap3::SearchEntry::construct)
        .and_then(|e| e.attrs.get(attr).cloned())
        .unwrap_or_default())
}

/// Waits until `attr` of the `benchsync` user in AD satisfies `ok` (30 s at most).
async fn wait_ad(
    admin: &mut tether_ad::Ldap,
    base: &str,
    attr: &str,
    since: Instant,
    ok: impl Fn(&[String]) -> bool,
) -> Result<()> {
    loop {
        let values = ad_values(admin, base, attr).await?;
        if ok(&values) {
            return Ok(());
        }
        if since.elapsed() > Duration::from_secs(30) {
            bail!("a Tether change ({attr}) did not reach AD within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The direct members (lowercased DNs) of the AD group named `cn` below `base`.
pub(crate) async fn group_members(admin: &mut tether_ad::Ldap, base: &str, cn: &str) -> Result<HashSet<String>> {
    let filter = format!("(cn={cn})");
    let (e, _) = admin.search(base, tether_ad::ldap3::Scope::Subtree, &filter, vec!["member"]).await?.success()?;
    let attrs = e.into_iter().next().map(|e| tether_ad::ldap3::SearchEntry::construct(e).attrs).unwrap_or_default();
    Ok(attrs.get("member").cloned().unwrap_or_default().into_iter().map(|m| m.to_lowercase()).collect())
}

/// A user added to AD by one LDAP add on the admin's connection (the physical limit of
/// provisioning), with a password; its DN.
pub(crate) async fn raw_add(admin: &mut tether_ad::Ldap, d: &Dc, sam: &str) -> Result<String> {
    let new = tether_ad::NewUser {
        container: &d.users_container(),
        sam_account_name: sam,
        given_name: "Raw",
        sn: sam,
        mail: &format!("{sam}@bench.test"),
        password: Some("Raw-Bench-Pw1!"),
    };
    Ok(tether_ad::create_user(admin, &new).await?)
}

/// Runs the ADI benchmark with `n` users and `changes` timed changes each way; writes the
/// JSON results to `out` (and the latency picture beside it).
pub async fn run(
    n: usize,
    changes: usize,
    out: &Path,
    import_only: bool,
    bulk: usize,
    group_size: usize,
) -> Result<()> {
    let d = dc(n)?;
    let mut results = json!({"users": n, "changes": changes, "cores": std::thread::available_parallelism().map(|c| c.get()).unwrap_or(0)});
    let mut ldap = connect(&d.import_target()).await?;

    // 1. The raw read rate of AD for the same users and attributes.
    let filter = "(&(objectCategory=person)(objectClass=user))";
    let t = Instant::now();
    let paged = paged_search(&mut ldap, &d.users_container(), filter, USER_ATTRS).await?;
    let paged_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (unpaged, _) = ldap
        .search(&d.users_container(), tether_ad::ldap3::Scope::Subtree, filter, USER_ATTRS.to_vec())
        .await?
        .success()?;
    let unpaged_s = t.elapsed().as_secs_f64();
    let raw_rate = paged.len() as f64 / paged_s;
    // The same users with plain stored attributes only: what the DC's computed ones cost.
    let t = Instant::now();
    let plain = paged_search(&mut ldap, &d.users_container(), filter, PLAIN_ATTRS).await?;
    let plain_rate = plain.len() as f64 / t.elapsed().as_secs_f64();
    results["raw_read"] = json!({"entries": paged.len(), "attributes": USER_ATTRS.len(), "paged_users_per_s": raw_rate.round(),
        "unpaged_users_per_s": (unpaged.len() as f64 / unpaged_s).round(),
        "paged_users_per_s_8_plain_attributes": plain_rate.round()});

    // 2. The initial import, and 3. idle cycles. tetherd runs in a process of its own.
    let mut server = Part::spawn(&["serve"])?;
    let line = server.first_line()?;
    let (url, api_key) = line.split_once(' ').context("tetherd's URL and key")?;
    let s = TestServer::attach(url.to_string(), api_key.to_string());
    let key = domain_with_agent(&s, &d, "TWOWAYSYNC", "IMPORT").await?;
    let state = tempfile::tempdir()?;
    let icfg = import_config(&s, &d, &key, state.path(), "member_server")?;
    // The initial import runs in a process of its own: the import agent's peak RSS.
    let cfg_path = state.path().join("importagent.config.json");
    std::fs::write(&cfg_path, import_config_json(&s, &d, &key, state.path(), "member_server").to_string())?;
    std::fs::set_permissions(&cfg_path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let t = Instant::now();
    let child = Command::new(std::env::current_exe()?).arg("import-once").arg("--config").arg(&cfg_path).output()?;
    let import_s = t.elapsed().as_secs_f64();
    if !child.status.success() {
        bail!("the import agent failed: {}", String::from_utf8_lossy(&child.stderr));
    }
    eprint!("{}", String::from_utf8_lossy(&child.stderr));
    let st: Value = serde_json::from_slice(&child.stdout)?;
    let session = Session::establish(&icfg.server, &icfg.state_dir(), "member_server").await?;
    let imported = s.call("GET", "/api/systemusers?limit=1", None).await.body["totalCount"].as_u64().unwrap_or(0);
    let import_rate = imported as f64 / import_s;
    results["initial_import"] = json!({"users": imported, "seconds": (import_s * 100.0).round() / 100.0, "users_per_s": import_rate.round(),
        "ratio_to_raw_paged_read": (import_rate / raw_rate * 100.0).round() / 100.0, "entries_read": st["entries_read"],
        "import_agent_peak_rss_mb": st["peak_rss_mb"]});
    // Idle cycles as the running agent makes them (its state kept in memory between
    // cycles), then as a cycle that starts from the state saved in `StateDir` (an agent's
    // first cycle after a start, and a one-shot `cycle` call): at 10,000 users parsing that
    // file is most of such a cycle.
    let mut memory = tether_agent::import::Memory::default();
    tether_agent::import::cycle_with(&icfg, &mut ldap, &session, false, None, Some(&mut memory)).await?;
    for (key, running) in [("idle_cycle", true), ("idle_cycle_from_saved_state", false)] {
        let (mut idle, mut idle_reads) = (Vec::new(), 0);
        let cpu0 = cpu_seconds();
        for _ in 0..20 {
            let t = Instant::now();
            let m = running.then_some(&mut memory);
            idle_reads +=
                tether_agent::import::cycle_with(&icfg, &mut ldap, &session, false, None, m).await?.entries_read;
            idle.push(t.elapsed());
        }
        // The agent's CPU per idle cycle (the bench process does nothing else meanwhile; the
        // process clock ticks at 10 ms, so 20 cycles give an upper bound).
        let cpu_at_most = (cpu_seconds() - cpu0 + 0.01) / 20.0;
        results[key] = json!({"entries_read_total_of_20": idle_reads, "time": dist(idle),
            "cpu_ms_per_cycle_at_most": (cpu_at_most * 1000.0 * 100.0).round() / 100.0});
    }
    if import_only {
        results["peak_rss_mb"] = json!({"tetherd": (server.peak_rss_mb() * 10.0).round() / 10.0});
        // A complete cycle that finds nothing changed (as every agent start and every
        // reconcile does).
        let t = Instant::now();
        tether_agent::import::cycle(&icfg, &mut ldap, &session, true).await?;
        results["unchanged_complete_cycle_s"] = json!((t.elapsed().as_secs_f64() * 100.0).round() / 100.0);
        results["peak_rss_mb"]["tetherd_after_unchanged_complete_cycle"] =
            json!((server.peak_rss_mb() * 10.0).round() / 10.0);
        println!("{}", serde_json::to_string_pretty(&results)?);
        drop(server);
        sandbox(&["down"], &d.dir)?;
        return Ok(());
    }

    eprintln!("done: initial import and idle cycles; tetherd peak RSS so far {:.0} MB", server.peak_rss_mb());
    // The membership check an incremental cycle makes when a deletion (or any write it cannot
    // see) moved AD's USN: every group's DN and name, without members (`follow_moves`), then
    // the members of the groups the closure counts, looked up by objectGUID; and, as it was
    // until 2026-11-28, every group's members. A first read of every group (untimed) finds
    // the counted ones and warms the DC's cache for both, so neither is timed cold.
    let groups = tether_ad::read::read_groups(&mut ldap, &d.base_dn).await?;
    let counted = tether_agent::import::counted_groups(&icfg, groups)?;
    let counted: Vec<&str> = counted.iter().map(String::as_str).collect();
    let t = Instant::now();
    let listed =
        tether_ad::read::paged_search(&mut ldap, &d.base_dn, "(objectClass=group)", &["objectGUID", "cn"]).await?;
    let list_s = t.elapsed().as_secs_f64();
    let groups = tether_ad::read::read_groups_by_guid(&mut ldap, &d.base_dn, &counted).await?;
    let check_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let every = tether_ad::read::read_groups(&mut ldap, &d.base_dn).await?;
    let all_s = t.elapsed().as_secs_f64();
    let all = json!({"groups": every.len(), "member_values": every.iter().map(|g| g.members.len()).sum::<usize>(),
        "ms": (all_s * 1000.0).round()});
    results["membership_check"] = json!({"groups": groups.len(), "member_values": groups.iter().map(|g| g.members.len()).sum::<usize>(),
        "ms": (check_s * 1000.0).round(), "ratio_to_initial_import": (check_s / import_s * 1000.0).round() / 1000.0,
        "of_which_listing_every_group_without_members": {"groups": listed.len(), "ms": (list_s * 1000.0 * 10.0).round() / 10.0},
        "every_group_of_the_domain": all});
    drop((groups, every, listed));

    // 4. AD → Tether latency, with the import agent running: attribute edits, disables and
    //    enables, group membership changes and deletions, in turn.
    // What the DC spends on its own with nobody asking it anything, for the idle figure below.
    let dc_cpu_idle = dc_cpu_ms_per_s(Duration::from_secs(10)).await;
    // Its metrics tell how each cycle learnt what changed (notified, or by uSNChanged searches).
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let with_metrics = tether_testkit::with_keys(
        import_config_json(&s, &d, &key, state.path(), "member_server"),
        json!({"MetricsListen": format!("127.0.0.1:{metrics_port}")}),
    );
    std::fs::write(&cfg_path, with_metrics.to_string())?;
    let importer = Part::spawn(&["agent", "--kind", "import", "--config", &cfg_path.to_string_lossy()])?;
    let mut admin = connect(&d.admin_target()).await?;
    let team = tether_ad::create_group(&mut admin, &d.users_container(), "benchteam").await?;
    tether_ad::set_member(&mut admin, &d.group_dn, &team, true).await?;
    let team_id = loop {
        let g = s.call("GET", "/api/v2/usergroups?filter=name:eq:benchteam", None).await.body;
        if let Some(id) = g[0]["id"].as_str() {
            break id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (latency, lat) = crate::adi_latency::ad_to_tether(&s, &d, &mut admin, &team, &team_id, 1, changes, n).await?;
    let mut series: Vec<(&str, Vec<Duration>)> =
        vec![("AD → Tether (edit, disable/enable, membership, deletion)", lat)];
    results["ad_to_tether_latency"] = latency;
    // The DC's CPU while the running agent idles (its notification search and its ticks),
    // against the DC alone measured before the agent started.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let dc_cpu_agent = dc_cpu_ms_per_s(Duration::from_secs(10)).await;
    results["dc_cpu_idle_ms_per_s"] = json!({"dc_alone": dc_cpu_idle, "with_the_import_agent_idle": dc_cpu_agent});
    // Cycles by how they read, over the whole step (its first, complete one included).
    results["ad_to_tether_latency"]["cycles_by_read"] =
        crate::adi_agent::cycles_by_read(&format!("http://127.0.0.1:{metrics_port}")).await;
    results["import_agent_peak_rss_mb_running"] = json!((importer.peak_rss_mb() * 10.0).round() / 10.0);
    drop(importer);
    // The idle tick's two ways to ask, side by side from the benchmark's own connection (the
    // agent stopped): the whole rootDSE ten times a second (the agent's tick until
    // 2026-11-28), and `highestCommittedUSN` alone (its tick since).
    for (key, whole) in [("rootdse_whole_10_per_s", true), ("usn_alone_10_per_s", false)] {
        let ticking = async {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                if whole {
                    tether_ad::read::root_dse(&mut ldap).await?;
                } else {
                    tether_ad::read::highest_committed_usn(&mut ldap).await?;
                }
            }
        };
        let cost = tokio::select! {
            c = dc_cpu_ms_per_s(Duration::from_secs(10)) => c,
            r = ticking => return r,
        };
        results["dc_cpu_idle_ms_per_s"][key] = json!(cost);
    }
    // What one change-notification search costs the DC while nothing changes (the agent holds
    // one with `ChangeNotifications: on`, and by default on Active Directory).
    let inbox = Arc::new(tether_agent::notify::Inbox::default());
    let metrics = Arc::new(tether_agent::metrics::AgentMetrics::default());
    let attrs = tether_agent::import::notified_attrs();
    let watch = tokio::spawn(tether_agent::notify::watch(d.import_target(), attrs, false, inbox, metrics));
    tokio::time::sleep(Duration::from_secs(2)).await;
    results["dc_cpu_idle_ms_per_s"]["one_notification_search_open"] =
        json!(dc_cpu_ms_per_s(Duration::from_secs(10)).await);
    watch.abort();
    results["told_of_deletions"] =
        crate::adi_tombstones::told_of_deletions(&s, &d, &key, &cfg_path, changes + 10, n).await?;
    // The same changes to users of their own (past the told-of-deletions step's), with the
    // agent installed on the DC.
    results["on_the_dc"] = if n >= 2 * changes + 70 {
        crate::adi_on_dc::on_the_dc(&s, &d, &key, &cfg_path, &team, &team_id, changes + 70, changes, n).await?
    } else {
        json!({"skipped": format!("needs --users ≥ 2 × --changes + 70 = {}", 2 * changes + 70)})
    };

    eprintln!("done: AD → Tether latency; tetherd peak RSS so far {:.0} MB", server.peak_rss_mb());
    // 5. Tether → AD latency and bulk provisioning, with the sync agent running.
    let skey = s
        .call(
            "POST",
            &format!(
                "/api/v2/activedirectories/{}/agents",
                s.call("GET", "/api/v2/activedirectories", None).await.body[0]["id"].as_str().unwrap()
            ),
            Some(json!({"agentType": "SYNC"})),
        )
        .await
        .body["connectKey"]
        .as_str()
        .unwrap()
        .to_string();
    let sstate = tempfile::tempdir()?;
    // The sync agent runs in a process of its own.
    let scfg_json = d.sync_agent_config(&s.url, &skey, sstate.path(), &d.users_container(), &d.group_dn);
    let scfg_path = sstate.path().join("syncagent.config.json");
    std::fs::write(&scfg_path, scfg_json.to_string())?;
    std::fs::set_permissions(&scfg_path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    SyncConfig::load(&scfg_path)?;
    let syncer = Part::spawn(&["agent", "--kind", "sync", "--config", &scfg_path.to_string_lossy()])?;
    let domain_id = s.call("GET", "/api/v2/activedirectories", None).await.body[0]["id"].as_str().unwrap().to_string();
    let r = s.call("POST", "/api/systemusers", Some(json!({"username": "benchsync", "email": "benchsync@example.com", "firstname": "Bench", "lastname": "L", "state": "ACTIVATED", "password": "Bench-Passw0rd-start"}))).await;
    let uid = r.body["id"].as_str().context("user")?.to_string();
    s.call(
        "POST",
        &format!("/api/v2/activedirectories/{domain_id}/associations"),
        Some(json!({"op": "add", "type": "user", "id": uid})),
    )
    .await;
    let t = Instant::now();
    while sn_of(&mut admin, &d.base_dn).await.is_none() {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("the sync agent did not create the user");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Guards sized for the benchmark's stream of single changes.
    let big = json!({"count": 1_000_000});
    s.call(
        "PATCH",
        &format!("/api/v2/activedirectories/{domain_id}"),
        Some(json!({"guards": {"suspends": big, "passwordResets": big, "membershipRemovals": big, "unbinds": big}})),
    )
    .await;
    // A Tether group associated with the domain, for membership changes: it holds
    // `group_size` imported users already (500 by default; from the end of the seed: the AD → Tether
    // step changed the first ones), so a membership change is measured in a group of size.
    let g = s.call("POST", "/api/v2/usergroups", Some(json!({"name": "benchsyncgroup"}))).await.body;
    let gid = g["id"].as_str().context("group")?.to_string();
    s.call(
        "POST",
        &format!("/api/v2/usergroups/{gid}/associations"),
        Some(json!({"op": "add", "type": "active_directory", "id": domain_id})),
    )
    .await;
    let size = group_size.min(n / 2);
    let t = Instant::now();
    for i in 0..size {
        let sam = format!("{}user{:04}", d.seed_prefix, n - i);
        let u = s.call("GET", &format!("/api/systemusers?filter=username:$eq:{sam}"), None).await.body;
        let id = u["results"][0]["id"].as_str().context("an imported user")?.to_string();
        s.call(
            "POST",
            &format!("/api/v2/usergroups/{gid}/members"),
            Some(json!({"op": "add", "type": "user", "id": id})),
        )
        .await;
    }
    let posted = t.elapsed();
    loop {
        if group_members(&mut admin, &d.users_container(), "benchsyncgroup").await?.len() >= size {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            bail!("the group's {size} members did not reach AD");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    results["tether_to_ad_group_members"] = json!(size);
    let fill = t.elapsed().as_secs_f64();
    results["tether_to_ad_group_fill_s"] = json!((fill * 10.0).round() / 10.0);
    // The API's share: when the last member was added in Tether (each addition a lookup by
    // username and a POST, one after the other, as a script does).
    results["tether_to_ad_group_fill_api_s"] = json!((posted.as_secs_f64() * 10.0).round() / 10.0);
    // The physical limit: the same members added to an AD group of the benchmark's own, one
    // LDAP modify each, on the admin's open connection. (It also lets the import side take in
    // the fill's burst of AD writes before single changes are timed.)
    let dns = group_members(&mut admin, &d.users_container(), "benchsyncgroup").await?;
    let raw_group = tether_ad::create_group(&mut admin, &d.users_container(), "benchrawfill").await?;
    let t = Instant::now();
    for dn in &dns {
        tether_ad::set_member(&mut admin, &raw_group, dn, true).await?;
    }
    let raw = t.elapsed().as_secs_f64();
    results["tether_to_ad_group_fill_raw_s"] = json!((raw * 10.0).round() / 10.0);
    results["tether_to_ad_group_fill_ratio"] = json!((raw / fill * 100.0).round() / 100.0);
    let (mut lat, mut kinds) = (Vec::new(), Vec::new());
    let mut member = false;
    for i in 0..changes {
        let t = Instant::now();
        match i % 4 {
            0 => {
                let value = format!("Last{i}");
                s.call("PUT", &format!("/api/systemusers/{uid}"), Some(json!({"lastname": value}))).await;
                wait_ad(&mut admin, &d.base_dn, "sn", t, |v| v.first().map(String::as_str) == Some(value.as_str()))
                    .await?;
            }
            1 => {
                // A new password shows in AD as a new pwdLastSet (the user may be disabled
                // just now, so a bind would not tell).
                let before = ad_values(&mut admin, &d.base_dn, "pwdLastSet").await?;
                let pw = format!("Bench-Passw0rd-{i}");
                s.call("PUT", &format!("/api/systemusers/{uid}"), Some(json!({"password": pw}))).await;
                wait_ad(&mut admin, &d.base_dn, "pwdLastSet", t, |v| v != before.as_slice()).await?;
            }
            2 => {
                let suspend = i % 8 == 2;
                s.call("PUT", &format!("/api/systemusers/{uid}"), Some(json!({"suspended": suspend}))).await;
                wait_ad(&mut admin, &d.base_dn, "userAccountControl", t, |v| {
                    v.first().and_then(|x| x.parse::<u32>().ok()).is_some_and(|uac| (uac & 2 != 0) == suspend)
                })
                .await?;
            }
            _ => {
                member = !member;
                let op = if member { "add" } else { "remove" };
                s.call(
                    "POST",
                    &format!("/api/v2/usergroups/{gid}/members"),
                    Some(json!({"op": op, "type": "user", "id": uid})),
                )
                .await;
                wait_ad(&mut admin, &d.base_dn, "memberOf", t, |v| {
                    v.iter().any(|g| g.to_lowercase().starts_with("cn=benchsyncgroup,")) == member
                })
                .await?;
            }
        }
        lat.push(t.elapsed());
        kinds.push((["attribute", "password", "suspend", "membership"][i % 4], t.elapsed()));
    }
    series.push(("Tether → AD (attribute, password, suspend, membership)", lat.clone()));
    results["tether_to_ad_latency"] = dist(lat);
    results["tether_to_ad_latency"]["by_kind"] = by_kind(&kinds);

    eprintln!("done: Tether → AD latency; tetherd peak RSS so far {:.0} MB", server.peak_rss_mb());
    // Bulk provisioning: `bulk` users (100 by default) bound through one group, against as
    // many raw adds.
    // Where the time goes: the CPU each part spends on each side (DC, tetherd, sync agent).
    let cpu = |syncer: &Part| [crate::parts::samba_cpu_seconds(), server.cpu_seconds(), syncer.cpu_seconds()];
    let cpu_raw = cpu(&syncer);
    let t = Instant::now();
    for i in 0..bulk {
        raw_add(&mut admin, &d, &format!("rawb{i:03}")).await?;
    }
    let raw_s = t.elapsed().as_secs_f64();
    let raw_add = bulk as f64 / raw_s;
    let cpu_raw = cpu(&syncer).iter().zip(cpu_raw).map(|(after, before)| after - before).collect::<Vec<_>>();
    let g = s.call("POST", "/api/v2/usergroups", Some(json!({"name": "bench-bulk"}))).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut names = HashSet::new();
    let mut ids = Vec::new();
    for i in 0..bulk {
        let name = format!("tb{i:03}");
        let u = s.call("POST", "/api/systemusers", Some(json!({"username": name, "email": format!("{name}@bench.test"), "firstname": "Tb", "lastname": name}))).await;
        s.call(
            "POST",
            &format!("/api/v2/usergroups/{g}/members"),
            Some(json!({"op": "add", "type": "user", "id": u.body["id"]})),
        )
        .await;
        ids.push(u.body["id"].as_str().unwrap().to_string());
        names.insert(name);
    }
    eprintln!("bulk provisioning: Tether's part starts");
    let cpu_tether = cpu(&syncer);
    let t = Instant::now();
    s.call(
        "POST",
        &format!("/api/v2/activedirectories/{domain_id}/associations"),
        Some(json!({"op": "add", "type": "user_group", "id": g})),
    )
    .await;
    // Done when tetherd has linked every user to its AD account: the sync agent reports a
    // user's objectGUID and DN after reading it back from AD, so a linked user is in AD.
    // Asked of tetherd, one user at a time, not of the DC: the DC is what is measured, and a
    // search for the 100 names every 100 ms cost it ~5 ms of CPU each (~5 % of its time
    // during the step, measured with ldapsearch on the 10,000-user DC); the raw adds had no
    // such check. AD is searched once at the end for all of them.
    let mut next = 0;
    while next < ids.len() {
        let u = s.call("GET", &format!("/api/systemusers/{}", ids[next]), None).await;
        if u.body["external_dn"].is_string() {
            next += 1;
            continue;
        }
        if t.elapsed() > Duration::from_secs(300) {
            bail!("bulk provisioning did not finish");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tether_s = t.elapsed().as_secs_f64();
    let wanted = format!("(|{})", names.iter().map(|n| format!("(sAMAccountName={n})")).collect::<String>());
    let (e, _) =
        admin.search(&d.users_container(), tether_ad::ldap3::Scope::Subtree, &wanted, vec!["1.1"]).await?.success()?;
    if e.len() != bulk {
        bail!("bulk provisioning: tetherd linked {bulk} users, AD holds {}", e.len());
    }
    let tether_add = bulk as f64 / tether_s;
    let cpu_tether = cpu(&syncer).iter().zip(cpu_tether).map(|(after, before)| after - before).collect::<Vec<_>>();
    // CPU seconds of each part per wall second of the step: 1.0 is one core busy throughout.
    let busy = |c: &[f64], wall: f64| {
        let r = |x: f64| (x / wall * 100.0).round() / 100.0;
        json!({"dc": r(c[0]), "tetherd": r(c[1]), "sync_agent": r(c[2])})
    };
    results["bulk_provisioning"] = json!({"users": bulk, "raw_adds_per_s": raw_add.round(), "tether_users_per_s": tether_add.round(),
        "ratio": (tether_add / raw_add * 100.0).round() / 100.0,
        "cores_busy": {"raw_adds": busy(&cpu_raw, raw_s), "tether": busy(&cpu_tether, tether_s)}});
    eprintln!("done: bulk provisioning; new hires start");
    results["new_hires"] = crate::adi_hires::new_hires(&s, &mut admin, &d, &g, "bench-bulk", bulk).await?;
    eprintln!("done: new hires; offboarding starts");
    results["offboarding"] =
        crate::adi_hires::offboarding(&s, &mut admin, &d, &domain_id, &g, "bench-bulk", "benchrawhires").await?;
    results["peak_rss_mb"] = json!({"sync_agent": (syncer.peak_rss_mb() * 10.0).round() / 10.0});
    drop(syncer);

    eprintln!("done: offboarding; tetherd peak RSS so far {:.0} MB", server.peak_rss_mb());
    // 6. Raw simple binds as the same users, each client on its own open LDAPS connection:
    //    the DC's own answer to a login, under 16 clients (10 s) and one (5 s).
    // Users from the end: the latency steps disabled some of the first ones.
    let names: Vec<String> = (0..16).map(|c| format!("{}user{:04}", d.seed_prefix, n.max(1) - c % n.max(1))).collect();
    let mut dns = Vec::new();
    for user in &names {
        let (found, _) = admin
            .search(
                &d.users_container(),
                tether_ad::ldap3::Scope::Subtree,
                &format!("(sAMAccountName={user})"),
                vec!["1.1"],
            )
            .await?
            .success()?;
        dns.push(tether_ad::ldap3::SearchEntry::construct(found.into_iter().next().context("seeded user")?).dn);
    }
    let (window_16, window_1) = (Duration::from_secs(10), Duration::from_secs(5));
    results["raw_ad_binds"] = adi_auth::raw_binds(&d, &dns, 16, window_16).await?.json("binds_per_s");
    results["raw_ad_binds"]["one_client"] = adi_auth::raw_binds(&d, &dns, 1, window_1).await?.json("binds_per_s");

    // 7. Delegated authentication through an import agent, at the same two loads (the bench
    //    process holds tetherd, the agent's delegation and the clients).
    let s2 = TestServer::start().await;
    let key2 = domain_with_agent(&s2, &d, "ADASAUTHORITY", "IMPORT").await?;
    let state2 = tempfile::tempdir()?;
    let cfg2 = import_config(&s2, &d, &key2, state2.path(), "member_server")?;
    let session2 = Session::establish(&cfg2.server, &cfg2.state_dir(), "member_server").await?;
    tether_agent::import::cycle(&cfg2, &mut ldap, &session2, true).await?;
    let worker = tokio::spawn(tether_agent::delegation::serve(session2.clone(), cfg2.ldap_target()));
    let s2 = Arc::new(s2);
    eprintln!("delegated authentication: the clients start");
    let many = adi_auth::delegated(&s2, &names, &d.seed_password, 16, window_16).await?;
    let single = adi_auth::delegated(&s2, &names, &d.seed_password, 1, window_1).await?;
    worker.abort();
    results["delegated_auth"] = many.json("auth_per_s");
    results["delegated_auth"]["one_client"] = single.json("auth_per_s");
    series.push(("delegated authentication (16 clients)", many.lat));
    series.push(("delegated authentication (1 client)", single.lat));
    let svg = out.with_extension("svg");
    let title = format!("Latency, {n} users ({} cores)", results["cores"]);
    std::fs::write(&svg, picture::cdf_svg(&title, &series))?;
    eprintln!("latency picture: {}", svg.display());
    results["peak_rss_mb"]["tetherd"] = json!((server.peak_rss_mb() * 10.0).round() / 10.0);
    results["peak_rss_mb"]["import_agent_initial_import"] =
        results["initial_import"]["import_agent_peak_rss_mb"].clone();
    results["peak_rss_mb"]["import_agent_running"] = results["import_agent_peak_rss_mb_running"].clone();
    results["peak_rss_mb"]["bench_process"] = json!((peak_rss_mb() * 10.0).round() / 10.0);
    drop(server);

    std::fs::write(out, serde_json::to_string_pretty(&results)?)?;
    println!("{}", serde_json::to_string_pretty(&results)?);
    eprintln!("written to {}", out.display());
    sandbox(&["down"], &d.dir)?;
    Ok(())
}
