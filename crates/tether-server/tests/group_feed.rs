//! Group entries of the change feed are filled when they are delivered: a batch carries each
//! group once, as it is then.

use serde_json::{json, Value};
use tether_testkit::TestServer;

/// A registered sync agent of a new two-way domain: the domain's id and the agent's calls.
struct Agent<'a> {
    s: &'a TestServer,
    domain: String,
    token: String,
}

impl<'a> Agent<'a> {
    async fn new(s: &'a TestServer) -> Agent<'a> {
        Agent::of(s, "DC=gf,DC=test", 'g').await
    }

    /// The agent of a new domain `dn`, its token `letter` 40 times.
    async fn of(s: &'a TestServer, dn: &str, letter: char) -> Agent<'a> {
        let domain = s.domain(dn, "TWOWAYSYNC").await;
        let key = s.connect_key(&domain, "SYNC").await;
        let token = letter.to_string().repeat(40);
        let r =
            s.call_as(None, "POST", "/api/agent/v1/register", Some(json!({"connectKey": key, "token": token}))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        Agent { s, domain, token }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.s.client.post(format!("{}{path}", self.s.url)).bearer_auth(&self.token).json(&body).send().await;
        let r = r.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// Everything queued, in one batch, to an agent that applies group entries of the
    /// changes alone.
    async fn poll(&self) -> Vec<Value> {
        self.poll_with(json!({"waitMs": 10, "limit": 1000, "deltas": true})).await
    }

    async fn poll_with(&self, poll: Value) -> Vec<Value> {
        let (status, entries) = self.post("/api/agent/v1/sync/poll", poll).await;
        assert_eq!(status, 200, "{entries}");
        entries.as_array().unwrap().clone()
    }

    async fn group(&self, name: &str) -> String {
        let g = self.s.create("/api/v2/usergroups", json!({"name": name})).await;
        self.associate(&g).await;
        g
    }

    async fn associate(&self, g: &str) {
        let path = format!("/api/v2/activedirectories/{}/associations", self.domain);
        let r = self.s.call("POST", &path, Some(json!({"op": "add", "type": "user_group", "id": g}))).await;
        assert_eq!(r.status, 204, "{:?}", r.body);
    }

    /// The agent's report of a user or group written to AD: `{userId|groupId, guid, dn,
    /// error}`.
    async fn status(&self, body: Value) {
        let (status, r) = self.post("/api/agent/v1/sync/status", body).await;
        assert_eq!(status, 200, "{r}");
    }

    /// A user bound to the domain and linked to its account there (`guid`, `dn`), as the
    /// agent reports one it wrote.
    async fn link(&self, user: &str, guid: &str, dn: &str) {
        self.s.bind_user(&self.domain, user).await;
        self.status(json!({"userId": user, "guid": guid, "dn": dn})).await;
    }

    /// Everything queued, applied and acknowledged (the group linked with `guid`, as the
    /// agent reports a group it wrote).
    async fn settle(&self, group: &str, guid: &str) -> Vec<Value> {
        let entries = self.poll().await;
        self.status(json!({"groupId": group, "guid": guid, "dn": format!("CN={group},DC=gf,DC=test")})).await;
        if let Some(last) = entries.last() {
            let seq = last["seq"].as_i64().unwrap();
            assert_eq!(self.post("/api/agent/v1/sync/ack", json!({"seq": seq})).await.0, 200);
        }
        entries
    }

    async fn member(&self, group: &str, user: &str, add: bool) {
        let op = if add { "add" } else { "remove" };
        let path = format!("/api/v2/usergroups/{group}/members");
        let r = self.s.call("POST", &path, Some(json!({"op": op, "type": "user", "id": user}))).await;
        assert_eq!(r.status, 204, "{op} {user}: {:?}", r.body);
    }
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v.as_array().unwrap().iter().map(|m| m[key].as_str().unwrap().to_string()).collect();
    out.sort();
    out
}

/// Members who come, go and come back, one API call at a time (users bound to the domain
/// directly, so their membership changes write the group's entries only): the batch delivers
/// one entry of each run, its last, with the members the group has then (each with its groups
/// in the domain) and the users who left and did not come back (once each); an entry between
/// two runs keeps them apart and in order; acknowledging the first run's entry acknowledges
/// the entries it stands for, and not the second run's.
#[tokio::test]
async fn a_run_of_one_groups_entries_is_delivered_once_as_it_is_then() {
    let s = TestServer::start().await;
    let a = Agent::new(&s).await;
    let user = |n: &'static str| s.user(json!({"username": n, "email": format!("{n}@gf.test")}));
    let (ua, ub, uc, ud) = (user("gfa").await, user("gfb").await, user("gfc").await, user("gfd").await);
    for u in [&ua, &ub, &uc, &ud] {
        s.bind_user(&a.domain, u).await;
    }
    let other = a.group("gfother").await;
    a.member(&other, &ua, true).await;
    let g = a.group("gfeed").await;
    for (u, add) in [(&ua, true), (&ub, true), (&ub, false), (&uc, true), (&uc, false), (&uc, true)] {
        a.member(&g, u, add).await;
    }
    let r = s.call("PUT", &format!("/api/systemusers/{ua}"), Some(json!({"lastname": "Between"}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    a.member(&g, &ud, true).await;
    a.member(&g, &ud, false).await;
    let entries = a.poll().await;
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in the order written: {seqs:?}");
    let tail: Vec<(&str, &str)> = entries[entries.len() - 3..]
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["objectId"].as_str().unwrap()))
        .collect();
    assert_eq!(tail, [("group", g.as_str()), ("user", ua.as_str()), ("group", g.as_str())], "{entries:#?}");
    let of_g: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "group" && e["objectId"] == g.as_str()).collect();
    let (first, second) = (&of_g[of_g.len() - 2]["body"], &of_g[of_g.len() - 1]["body"]);
    let both = {
        let mut v = vec![ua.clone(), uc.clone()];
        v.sort();
        v
    };
    assert_eq!(ids(&first["members"], "userId"), both, "the state at delivery: {first}");
    assert_eq!(ids(&first["removed"], "username"), ["gfb"], "left and not back, once: {first}");
    assert_eq!(ids(&second["members"], "userId"), both);
    assert_eq!(ids(&second["removed"], "username"), ["gfd"], "{second}");
    assert_eq!(first["name"], "gfeed");
    assert_eq!(first["useCase"], "TWOWAYSYNC");
    let groups_of = |id: &str| {
        let m = first["members"].as_array().unwrap().iter().find(|m| m["userId"] == id).unwrap();
        let mut v: Vec<&str> = m["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap()).collect();
        v.sort();
        v
    };
    assert_eq!(groups_of(&ua), ["gfeed", "gfother"]);
    assert_eq!(groups_of(&uc), ["gfeed"]);
    // The first run's entry applied and acknowledged (the agent stops before the rest): what
    // comes again is what follows it, the second run's leaver with it.
    let seq = of_g[of_g.len() - 2]["seq"].as_i64().unwrap();
    assert_eq!(a.post("/api/agent/v1/sync/ack", json!({"seq": seq})).await, (200, json!({"cursor": seq})));
    let again = a.poll().await;
    let kinds: Vec<&str> = again.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["user", "group"], "{again:#?}");
    assert_eq!(ids(&again[1]["body"]["removed"], "username"), ["gfd"]);
    let last = again[1]["seq"].as_i64().unwrap();
    assert_eq!(a.post("/api/agent/v1/sync/ack", json!({"seq": last})).await, (200, json!({"cursor": last})));
    assert!(a.poll().await.is_empty(), "nothing left");
}

/// A user who leaves the group and with it the domain: the group's entry (with the leaver)
/// stays before the user's disconnection, as written, and is not merged across it.
#[tokio::test]
async fn a_leaver_is_delivered_before_its_disconnection() {
    let s = TestServer::start().await;
    let a = Agent::new(&s).await;
    let u = s.user(json!({"username": "gfleaver", "email": "gfleaver@gf.test"})).await;
    let v = s.user(json!({"username": "gfstays", "email": "gfstays@gf.test"})).await;
    s.bind_user(&a.domain, &v).await;
    let g = a.group("gfleft").await;
    a.member(&g, &u, true).await;
    a.member(&g, &u, false).await;
    a.member(&g, &v, true).await;
    let entries = a.poll().await;
    let mine: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["objectId"] == g.as_str() || e["objectId"] == u.as_str())
        .map(|e| (e["kind"].as_str().unwrap(), e["objectId"].as_str().unwrap()))
        .collect();
    let want = [("user", u.as_str()), ("group", g.as_str()), ("user_disconnected", u.as_str()), ("group", g.as_str())];
    assert_eq!(mine[mine.len() - 4..], want, "{entries:#?}");
    let leaver = entries.iter().rev().filter(|e| e["objectId"] == g.as_str()).nth(1).unwrap();
    assert_eq!(ids(&leaver["body"]["removed"], "username"), ["gfleaver"], "{leaver}");
}

/// A group deleted before its entry is delivered: the entry goes with the name and the users
/// who left it as written, no members, and the group's disconnection follows.
#[tokio::test]
async fn a_group_deleted_before_delivery_goes_with_what_its_entry_holds() {
    let s = TestServer::start().await;
    let a = Agent::new(&s).await;
    let u = s.user(json!({"username": "gfgone", "email": "gfgone@gf.test"})).await;
    s.bind_user(&a.domain, &u).await;
    let g = a.group("gfdeleted").await;
    a.member(&g, &u, true).await;
    a.member(&g, &u, false).await;
    let r = s.call("DELETE", &format!("/api/v2/usergroups/{g}"), None).await;
    assert!(r.status.is_success(), "{:?}", r.body);
    let entries = a.poll().await;
    let of_g: Vec<&Value> = entries.iter().filter(|e| e["objectId"] == g.as_str()).collect();
    let kinds: Vec<&str> = of_g.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["group", "group_disconnected"], "{entries:#?}");
    let body = &of_g[0]["body"];
    assert_eq!(body["name"], "gfdeleted");
    assert_eq!(body["members"], json!([]));
    assert_eq!(ids(&body["removed"], "username"), ["gfgone"]);
}

/// New hires added one call at a time to an associated group: each addition binds the user,
/// whose entry comes between the group's. The group's entries without leavers are delivered
/// once, after the users, with every member; one with a leaver is kept in its place (before
/// the leaver's disconnection); acknowledging a user's entry between them leaves the group's
/// last entry queued, with every member.
#[tokio::test]
async fn new_hires_bring_the_group_once_after_their_own_entries() {
    let s = TestServer::start().await;
    let a = Agent::new(&s).await;
    let g = a.group("gfhires").await;
    let user = |n: &'static str| s.user(json!({"username": n, "email": format!("{n}@gf.test")}));
    let (h1, h2, h3) = (user("gfh1").await, user("gfh2").await, user("gfh3").await);
    let kinds = |entries: &[Value]| -> Vec<(String, String)> {
        let mine = [&g, &h1, &h2, &h3];
        entries
            .iter()
            .filter(|e| mine.iter().any(|id| e["objectId"] == id.as_str()))
            .map(|e| (e["kind"].as_str().unwrap().to_string(), e["objectId"].as_str().unwrap().to_string()))
            .collect()
    };
    let k = |kind: &str, id: &str| (kind.to_string(), id.to_string());
    // Only additions: the users' entries, then the group once.
    a.member(&g, &h1, true).await;
    a.member(&g, &h2, true).await;
    let entries = a.poll().await;
    assert_eq!(kinds(&entries), [k("user", &h1), k("user", &h2), k("group", &g)], "{entries:#?}");
    let last = entries.last().unwrap();
    assert_eq!(ids(&last["body"]["members"], "userId"), ids(&json!([{"u": h1}, {"u": h2}]), "u"));
    let seq = last["seq"].as_i64().unwrap();
    assert_eq!(a.post("/api/agent/v1/sync/ack", json!({"seq": seq})).await, (200, json!({"cursor": seq})));
    // A leaver between the hires: its entry stays before its disconnection.
    a.member(&g, &h1, false).await;
    a.member(&g, &h3, true).await;
    let entries = a.poll().await;
    let want = [k("group", &g), k("user_disconnected", &h1), k("user", &h3), k("group", &g)];
    assert_eq!(kinds(&entries), want, "{entries:#?}");
    let of_g: Vec<&Value> = entries.iter().filter(|e| e["objectId"] == g.as_str()).collect();
    assert_eq!(ids(&of_g[0]["body"]["removed"], "username"), ["gfh1"], "{:#}", of_g[0]);
    let now = ids(&json!([{"u": h2}, {"u": h3}]), "u");
    assert_eq!(ids(&of_g[1]["body"]["members"], "userId"), now);
    assert_eq!(of_g[1]["body"]["removed"], json!([]));
    // The agent stops after the hire's entry: the group's entry comes again, whole.
    let hire = entries.iter().find(|e| e["objectId"] == h3.as_str()).unwrap()["seq"].as_i64().unwrap();
    assert_eq!(a.post("/api/agent/v1/sync/ack", json!({"seq": hire})).await, (200, json!({"cursor": hire})));
    let again = a.poll().await;
    assert_eq!(kinds(&again), [k("group", &g)], "{again:#?}");
    assert_eq!(ids(&again[0]["body"]["members"], "userId"), now);
}

/// A group already written to AD (linked, its last write without error) whose joiners are
/// linked to their accounts: its membership changes go as the changes alone (`delta`). Of a
/// run of adjacent entries only the last goes, with the run's joiners that are members now
/// and its leavers that are not; two runs with an entry between are both delivered (the
/// first, without leavers, would be left out if whole), so acknowledging the first leaves
/// the second queued as it was. A joiner not linked yet sends the group whole.
#[tokio::test]
async fn a_linked_groups_membership_changes_go_alone() {
    let s = TestServer::start().await;
    let a = Agent::new(&s).await;
    let user = |n: &'static str| s.user(json!({"username": n, "email": format!("{n}@gf.test")}));
    let (ua, ub, uc, ud) = (user("gfda").await, user("gfdb").await, user("gfdc").await, user("gfdd").await);
    for (i, u) in [&ua, &ub, &uc].into_iter().enumerate() {
        a.link(u, &format!("{i:032x}"), &format!("CN=u{i},DC=gf,DC=test")).await;
    }
    s.bind_user(&a.domain, &ud).await;
    let other = a.group("gfdother").await;
    a.member(&other, &uc, true).await;
    let g = a.group("gfdelta").await;
    let entries = a.poll().await;
    assert!(entries.iter().all(|e| e["body"]["delta"].is_null()), "a group new to AD goes whole: {entries:#?}");
    a.status(json!({"groupId": g, "guid": "f".repeat(32), "dn": "CN=gfdelta,DC=gf,DC=test"})).await;
    let last = entries.last().unwrap()["seq"].as_i64().unwrap();
    assert_eq!(a.post("/api/agent/v1/sync/ack", json!({"seq": last})).await.0, 200);

    a.member(&g, &ua, true).await;
    a.member(&g, &ub, true).await;
    let r = s.call("PUT", &format!("/api/systemusers/{ua}"), Some(json!({"lastname": "Between"}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for (u, add) in [(&ub, false), (&uc, true), (&ub, true), (&ua, false)] {
        a.member(&g, u, add).await;
    }
    let entries = a.poll().await;
    let kinds: Vec<&str> = entries.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["group", "user", "group"], "{entries:#?}");
    let (first, second) = (&entries[0]["body"], &entries[2]["body"]);
    for b in [first, second] {
        assert_eq!(b["delta"], true, "{b}");
        assert_eq!((&b["name"], &b["dn"]), (&json!("gfdelta"), &json!("CN=gfdelta,DC=gf,DC=test")));
        assert!(b.get("joined").is_none(), "{b}");
    }
    // As the state is at delivery: ua left in the second run, ub left and came back in it.
    assert_eq!(ids(&first["members"], "username"), ["gfdb"], "{first}");
    assert_eq!(first["removed"], json!([]), "{first}");
    assert_eq!(ids(&second["members"], "username"), ["gfdb", "gfdc"], "{second}");
    assert_eq!(ids(&second["removed"], "username"), ["gfda"], "{second}");
    let m = &first["members"].as_array().unwrap()[0];
    assert_eq!((&m["guid"], &m["groups"]), (&json!(format!("{:032x}", 1)), &json!(["gfdelta"])), "{m}");
    // The first run applied and acknowledged: the second comes again as it was.
    let seq = entries[0]["seq"].as_i64().unwrap();
    assert_eq!(a.post("/api/agent/v1/sync/ack", json!({"seq": seq})).await.0, 200);
    let again = a.poll().await;
    assert_eq!(again.len(), 2, "{again:#?}");
    assert_eq!(again[1]["body"], *second);
    let last = again[1]["seq"].as_i64().unwrap();
    assert_eq!(a.post("/api/agent/v1/sync/ack", json!({"seq": last})).await.0, 200);

    // A joiner without an account in the domain yet: whole, its leaver with the domain's
    // groups it is still in.
    a.member(&g, &ud, true).await;
    a.member(&g, &uc, false).await;
    let entries = a.poll().await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let b = &entries[0]["body"];
    assert!(b["delta"].is_null(), "{b}");
    assert_eq!(ids(&b["members"], "username"), ["gfdb", "gfdd"], "{b}");
    assert_eq!(
        b["removed"],
        json!([{"userId": uc, "username": "gfdc", "guid": format!("{:032x}", 2), "groups": ["gfdother"]}])
    );
    let last = entries[0]["seq"].as_i64().unwrap();
    assert_eq!(a.post("/api/agent/v1/sync/ack", json!({"seq": last})).await.0, 200);
    // An older agent, which does not say it applies the changes alone: whole.
    a.member(&g, &ub, false).await;
    let older = a.poll_with(json!({"waitMs": 10, "limit": 1000})).await;
    assert_eq!(older.len(), 1, "{older:#?}");
    assert!(older[0]["body"]["delta"].is_null(), "{older:#?}");
    assert_eq!(ids(&older[0]["body"]["members"], "username"), ["gfdd"]);
}

/// A whole entry counts once it is acknowledged: a batch sent whole for a new hire (an
/// earlier entry of the group with an existing user's joining left out before it), of which
/// the agent acknowledges only the hire's own entry, comes again whole, the left-out joiner
/// in it, though the hire is linked by then.
#[tokio::test]
async fn a_whole_entry_counts_once_acknowledged() {
    let s = TestServer::start().await;
    let a = Agent::new(&s).await;
    let ua = s.user(json!({"username": "gfwa", "email": "gfwa@gf.test"})).await;
    a.link(&ua, &"a".repeat(32), "CN=gfwa,DC=gf,DC=test").await;
    let hire = s.user(json!({"username": "gfwh", "email": "gfwh@gf.test"})).await;
    let g = a.group("gfwhole").await;
    a.settle(&g, &"e".repeat(32)).await;
    a.member(&g, &ua, true).await;
    a.member(&g, &hire, true).await;
    let entries = a.poll().await;
    let kinds: Vec<&str> = entries.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["user", "group"], "the first group entry left out: {entries:#?}");
    assert!(entries[1]["body"]["delta"].is_null(), "a hire not linked yet: whole");
    // The hire's entry applied (its account linked) and acknowledged; the agent stops there.
    a.status(json!({"userId": hire, "guid": "b".repeat(32), "dn": "CN=gfwh,DC=gf,DC=test"})).await;
    let seq = entries[0]["seq"].as_i64().unwrap();
    assert_eq!(a.post("/api/agent/v1/sync/ack", json!({"seq": seq})).await.0, 200);
    let again = a.poll().await;
    assert_eq!(again.len(), 1, "{again:#?}");
    let b = &again[0]["body"];
    assert!(b["delta"].is_null(), "never acknowledged, so whole again: {b}");
    assert_eq!(ids(&b["members"], "username"), ["gfwa", "gfwh"], "{b}");
}

/// A group associated with two domains: an error one domain's agent reports on it sends it
/// whole to that domain next, though the other domain's agent wrote it since without error
/// (which clears the error shown on the group); the other domain gets the change alone.
#[tokio::test]
async fn an_error_in_one_domain_sends_the_group_whole_there_only() {
    let s = TestServer::start().await;
    let (a, b) = (Agent::of(&s, "DC=gfa,DC=test", 'h').await, Agent::of(&s, "DC=gfb,DC=test", 'k').await);
    let (u1, u2) = (
        s.user(json!({"username": "gfe1", "email": "gfe1@gf.test"})).await,
        s.user(json!({"username": "gfe2", "email": "gfe2@gf.test"})).await,
    );
    for (i, u) in [&u1, &u2].into_iter().enumerate() {
        for (agent, letter) in [(&a, 'a'), (&b, 'b')] {
            agent.link(u, &format!("{letter}{i:031x}"), &format!("CN=u{i},DC=gf,DC=test")).await;
        }
    }
    let g = a.group("gftwo").await;
    b.associate(&g).await;
    a.settle(&g, &"c".repeat(32)).await;
    b.settle(&g, &"c".repeat(32)).await;
    a.member(&g, &u1, true).await;
    let mut seqs = Vec::new();
    for agent in [&a, &b] {
        let entries = agent.poll().await;
        assert_eq!(entries.len(), 1, "{entries:#?}");
        assert_eq!(entries[0]["body"]["delta"], true, "{entries:#?}");
        seqs.push(entries[0]["seq"].as_i64().unwrap());
    }
    // Domain A's agent could not write it; domain B's did. Both acknowledge it.
    a.status(json!({"groupId": g, "error": "AD refused: insufficient rights"})).await;
    b.status(json!({"groupId": g, "guid": "c".repeat(32), "dn": "CN=gftwo,DC=gf,DC=test"})).await;
    let shown = s.call("GET", &format!("/api/v2/usergroups/{g}"), None).await.body;
    assert!(shown["adSyncError"].is_null(), "{shown}");
    for (agent, seq) in [&a, &b].into_iter().zip(seqs) {
        assert_eq!(agent.post("/api/agent/v1/sync/ack", json!({"seq": seq})).await.0, 200);
    }
    a.member(&g, &u2, true).await;
    let (to_a, to_b) = (a.poll().await, b.poll().await);
    assert!(to_a[0]["body"]["delta"].is_null(), "whole where the error was: {to_a:#?}");
    assert_eq!(ids(&to_a[0]["body"]["members"], "username"), ["gfe1", "gfe2"]);
    assert_eq!(to_b[0]["body"]["delta"], true, "{to_b:#?}");
    assert_eq!(ids(&to_b[0]["body"]["members"], "username"), ["gfe2"]);
}

/// Entries skipped by a rejected sync plan were never applied, a whole group entry among
/// them maybe: the domain's groups go whole next.
#[tokio::test]
async fn a_rejected_plan_sends_the_groups_whole_next() {
    let s = TestServer::start().await;
    let a = Agent::new(&s).await;
    let mut users = Vec::new();
    for (i, n) in ["gfr1", "gfr2", "gfr3"].into_iter().enumerate() {
        let u = s.user(json!({"username": n, "email": format!("{n}@gf.test")})).await;
        a.link(&u, &format!("{i:032x}"), &format!("CN={n},DC=gf,DC=test")).await;
        users.push(u);
    }
    let g = s.create("/api/v2/usergroups", json!({"name": "gfrejected"})).await;
    a.member(&g, &users[0], true).await;
    a.member(&g, &users[1], true).await;
    a.associate(&g).await;
    a.settle(&g, &"d".repeat(32)).await;
    let guard = json!({"guards": {"membershipRemovals": {"count": 1}}});
    let r = s.call("PATCH", &format!("/api/v2/activedirectories/{}", a.domain), Some(guard)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    a.member(&g, &users[0], false).await;
    a.member(&g, &users[1], false).await;
    assert!(a.poll().await.is_empty(), "held by the guard");
    let r = s.call("POST", &format!("/api/v2/activedirectories/{}/plan/reject", a.domain), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    a.member(&g, &users[2], true).await;
    let entries = a.poll().await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert!(entries[0]["body"]["delta"].is_null(), "whole after the rejection: {entries:#?}");
    assert_eq!(ids(&entries[0]["body"]["members"], "username"), ["gfr3"]);
}
