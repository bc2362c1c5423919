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
        let domain = s.domain("DC=gf,DC=test", "TWOWAYSYNC").await;
        let key = s.connect_key(&domain, "SYNC").await;
        let token = "g".repeat(40);
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

    /// Everything queued, in one batch.
    async fn poll(&self) -> Vec<Value> {
        let (status, entries) = self.post("/api/agent/v1/sync/poll", json!({"waitMs": 10, "limit": 1000})).await;
        assert_eq!(status, 200, "{entries}");
        entries.as_array().unwrap().clone()
    }

    async fn group(&self, name: &str) -> String {
        let g = self.s.create("/api/v2/usergroups", json!({"name": name})).await;
        let path = format!("/api/v2/activedirectories/{}/associations", self.domain);
        let r = self.s.call("POST", &path, Some(json!({"op": "add", "type": "user_group", "id": g}))).await;
        assert_eq!(r.status, 204, "{:?}", r.body);
        g
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

/// Members who come, go and come back, one API call at a time: the batch delivers one entry
/// of the group, the last one written, with the members it has then (each with its groups in
/// the domain), the users who left and did not come back (once each), and every other entry
/// in the order written; acknowledging it acknowledges the group's earlier entries.
#[tokio::test]
async fn a_batch_carries_each_group_once_as_it_is_then() {
    let s = TestServer::start().await;
    let a = Agent::new(&s).await;
    let user = |n: &'static str| s.user(json!({"username": n, "email": format!("{n}@gf.test")}));
    let (ua, ub, uc, ud) = (user("gfa").await, user("gfb").await, user("gfc").await, user("gfd").await);
    // ud is bound to the domain directly: leaving the group does not unbind it.
    s.bind_user(&a.domain, &ud).await;
    let other = a.group("gfother").await;
    a.member(&other, &ua, true).await;
    let g = a.group("gfeed").await;
    for (u, add) in [(&ua, true), (&ub, true), (&ud, true), (&ub, false), (&uc, true), (&uc, false), (&uc, true)] {
        a.member(&g, u, add).await;
    }
    a.member(&g, &ud, false).await;
    let entries = a.poll().await;
    let of_g: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "group" && e["objectId"] == g.as_str()).collect();
    assert_eq!(of_g.len(), 1, "one entry of the group: {entries:#?}");
    let e = of_g[0];
    assert_eq!(e, entries.last().unwrap(), "the last entry written (the last change) is the one delivered");
    let body = &e["body"];
    assert_eq!(ids(&body["members"], "userId"), {
        let mut v = vec![ua.clone(), uc.clone()];
        v.sort();
        v
    });
    assert_eq!(ids(&body["removed"], "username"), ["gfb", "gfd"], "left and not back, once each: {body}");
    assert_eq!(body["name"], "gfeed");
    assert_eq!(body["useCase"], "TWOWAYSYNC");
    let groups_of = |id: &str| {
        let m = body["members"].as_array().unwrap().iter().find(|m| m["userId"] == id).unwrap();
        let mut v: Vec<&str> = m["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap()).collect();
        v.sort();
        v
    };
    assert_eq!(groups_of(&ua), ["gfeed", "gfother"]);
    assert_eq!(groups_of(&uc), ["gfeed"]);
    // The other group's entry, the users' own entries: all there, in the order written.
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(entries.iter().any(|e| e["kind"] == "group" && e["objectId"] == other.as_str()));
    let kinds = |u: &str| -> Vec<&str> {
        entries.iter().filter(|e| e["objectId"] == u).map(|e| e["kind"].as_str().unwrap()).collect()
    };
    assert_eq!(kinds(&ub), ["user", "user_disconnected"], "{entries:#?}");
    assert_eq!(kinds(&uc), ["user", "user_disconnected", "user"]);
    let last = e["seq"].as_i64().unwrap();
    assert_eq!(a.post("/api/agent/v1/sync/ack", json!({"seq": last})).await, (200, json!({"cursor": last})));
    assert!(a.poll().await.is_empty(), "nothing left");
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
