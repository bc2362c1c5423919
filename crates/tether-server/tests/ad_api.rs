//! Active Directory domains, agents (pause, grace, delete), associations, and the agent
//! protocol's registration and heartbeat.

use serde_json::{json, Value};
use tether_testkit::TestServer;

async fn domain(s: &TestServer, body: Value) -> Value {
    let r = s.call("POST", "/api/v2/activedirectories", Some(body)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn domains_use_cases_and_agent_types() {
    let s = TestServer::start().await;
    let d = domain(&s, json!({"domain": "DC=corp,DC=example,DC=com"})).await;
    assert_eq!((d["useCase"].as_str(), d["delegationState"].as_str()), (Some("TWOWAYSYNC"), Some("DISABLED")));
    let r = s.call("POST", "/api/v2/activedirectories", Some(json!({"domain": "dc=CORP,dc=example,dc=com"}))).await;
    assert_eq!(r.status, 409, "same domain, other case");
    let r = s.call("POST", "/api/v2/activedirectories", Some(json!({"domain": "corp.example.com"}))).await;
    assert_eq!((r.status.as_u16(), r.body["status"].as_str()), (400, Some("INVALID_FIELD")));
    let id = d["id"].as_str().unwrap();

    // (use case, agent type, allowed)
    let rows = [
        ("ADASAUTHORITY", "IMPORT", true),
        ("ADASAUTHORITY", "SYNC", false),
        ("TWOWAYSYNC", "IMPORT", true),
        ("TWOWAYSYNC", "SYNC", true),
        ("JCASAUTHORITY", "IMPORT", false),
        ("JCASAUTHORITY", "SYNC", true),
    ];
    for (i, (uc, t, ok)) in rows.iter().enumerate() {
        let d = domain(&s, json!({"domain": format!("DC=d{i},DC=test"), "useCase": uc})).await;
        let r = s
            .call(
                "POST",
                &format!("/api/v2/activedirectories/{}/agents", d["id"].as_str().unwrap()),
                Some(json!({"agentType": t})),
            )
            .await;
        assert_eq!(r.status.as_u16(), if *ok { 201 } else { 422 }, "{uc} {t}: {:?}", r.body);
    }
    // An older client sends no agentType: an import agent.
    let r = s.call("POST", &format!("/api/v2/activedirectories/{id}/agents"), Some(json!({}))).await;
    assert_eq!((r.body["agentType"].as_str(), r.body["state"].as_str()), (Some("IMPORT"), Some("unsealed")));
    assert!(r.body["connectKey"].as_str().unwrap().len() > 32);
    let r = s.call("GET", &format!("/api/v2/activedirectories/{id}/agents"), None).await;
    assert!(r.body[0].get("connectKey").is_none(), "the connect key is shown once");

    let r =
        s.call("PATCH", &format!("/api/v2/activedirectories/{id}"), Some(json!({"useCase": "JCASAUTHORITY"}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["steps"]["agentsToRemove"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["steps"]["agentTypesToInstall"], json!(["SYNC"]));
    let r = s
        .call(
            "PATCH",
            &format!("/api/v2/activedirectories/{id}"),
            Some(json!({"guards": {"deletes": {"count": 5, "percent": 10.0}}})),
        )
        .await;
    assert_eq!(r.body["guards"]["deletes"], json!({"count": 5, "percent": 10.0}));
    assert_eq!(r.body["guards"]["suspends"], json!({"count": 100}));
    let r = s.call("GET", &format!("/api/v2/activedirectories/{id}/plan"), None).await;
    assert_eq!(r.body, json!({"status": "none", "changes": []}));
    let r = s.call("DELETE", &format!("/api/v2/activedirectories/{id}"), None).await;
    assert_eq!(r.status, 409, "agents first");
}

#[tokio::test]
async fn agent_pause_grace_delete_and_token_revocation() {
    let s = TestServer::start().await;
    let d = domain(&s, json!({"domain": "DC=corp,DC=test", "useCase": "TWOWAYSYNC"})).await;
    let base = format!("/api/v2/activedirectories/{}", d["id"].as_str().unwrap());
    let a = s.call("POST", &format!("{base}/agents"), Some(json!({"agentType": "SYNC"}))).await.body;
    let agent = format!("{base}/agents/{}", a["id"].as_str().unwrap());
    let key = a["connectKey"].as_str().unwrap().to_string();

    // Registration: idempotent with the same token, refused with another.
    let token = "t".repeat(40);
    let reg =
        |tok: String| {
            s.call_as(None, "POST", "/api/agent/v1/register",
        Some(json!({"connectKey": key, "token": tok, "hostname": "dc1", "version": "0.1.0", "installedOn": "dc"})))
        };
    let r = reg(token.clone()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["agentType"], "SYNC");
    assert_eq!(reg(token.clone()).await.status, 200, "a retry with the same token succeeds");
    assert_eq!(reg("u".repeat(40)).await.status, 401, "the key is spent for other tokens");
    let r = s.call("GET", &agent, None).await;
    assert_eq!(
        (r.body["state"].as_str(), r.body["hostname"].as_str(), r.body["installedOn"].as_str()),
        (Some("active"), Some("dc1"), Some("dc"))
    );
    assert_eq!(r.body["source_ip"], "127.0.0.1");

    let beat = || async {
        s.client
            .post(format!("{}/api/agent/v1/heartbeat", s.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(beat().await, 200);
    // Agent tokens are not admin keys.
    assert_eq!(s.call_as(Some(&token), "GET", "/api/systemusers", None).await.status, 401);

    let r = s.call("DELETE", &agent, None).await;
    assert_eq!((r.status.as_u16(), r.body["status"].as_str()), (409, Some("CONFLICT")));
    assert!(r.body["message"].as_str().unwrap().contains("pause"));
    let r = s.call("POST", &format!("{agent}/pause"), None).await;
    assert_eq!(r.body["paused"], true);
    assert!(r.body["deletableAt"].is_string());
    assert_eq!(s.call("DELETE", &agent, None).await.status, 409, "inside the grace");
    s.advance(time::Duration::seconds(450));
    assert_eq!(s.call("DELETE", &agent, None).await.status, 409, "still inside the grace");
    let r = s.call("POST", &format!("{agent}/resume"), None).await;
    assert_eq!((r.body["paused"].as_bool(), r.body["deletableAt"].is_null()), (Some(false), true));
    s.call("POST", &format!("{agent}/pause"), None).await;
    s.advance(time::Duration::seconds(901));
    assert_eq!(s.call("DELETE", &agent, None).await.status, 204);
    assert_eq!(beat().await, 401, "the deleted agent's token is revoked");
    assert_eq!(s.call("DELETE", &base, None).await.status, 204);
}

#[tokio::test]
async fn associations_bind_users_and_groups() {
    let s = TestServer::start().await;
    let d = domain(&s, json!({"domain": "DC=assoc,DC=test"})).await;
    let base = format!("/api/v2/activedirectories/{}", d["id"].as_str().unwrap());
    let mk = |n: &'static str| {
        s.call("POST", "/api/systemusers", Some(json!({"username": n, "email": format!("{n}@x.io")})))
    };
    let u1 = mk("direct").await.body["id"].as_str().unwrap().to_string();
    let u2 = mk("viagroup").await.body["id"].as_str().unwrap().to_string();
    let g = s.create("/api/v2/usergroups", json!({"name": "G"})).await;
    s.add_member(&g, &u2).await;

    let r = s
        .call(
            "POST",
            &format!("{base}/associations?targets=user"),
            Some(json!({"op": "add", "type": "user", "id": u1})),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = s
        .call(
            "POST",
            &format!("/api/v2/usergroups/{g}/associations?targets=active_directory"),
            Some(json!({"op": "add", "type": "active_directory", "id": d["id"]})),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = s.call("GET", &format!("{base}/associations?targets=user"), None).await;
    assert_eq!(r.body, json!([{"to": {"id": u1, "type": "user"}, "attributes": null}]));
    let r = s.call("GET", &format!("{base}/associations?targets=user_group"), None).await;
    assert_eq!(r.body[0]["to"]["id"], g.as_str());
    let r = s.call("GET", &format!("/api/v2/usergroups/{g}/associations?targets=active_directory"), None).await;
    assert_eq!(r.body[0]["to"]["type"], "active_directory");
    let r = s.call("GET", &format!("{base}/users"), None).await;
    let ids: Vec<&str> = r.body.as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [u1.as_str(), u2.as_str()]);
    assert_eq!(r.body[1]["paths"][0][0]["to"]["type"], "user_group");
    let r = s.call("GET", &format!("{base}/usergroups"), None).await;
    assert_eq!(r.total(), Some(1));
    assert_eq!(s.call("GET", &format!("{base}/associations?targets=system"), None).await.status, 400);
    let r = s
        .call(
            "POST",
            &format!("{base}/associations?targets=user"),
            Some(json!({"op": "remove", "type": "user", "id": u1})),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(s.call("GET", &format!("{base}/associations?targets=user"), None).await.total(), Some(0));
}

#[tokio::test]
async fn notifications_outbox() {
    let s = TestServer::start().await;
    s.call("PUT", "/api/settings", Some(json!({"adminEmail": "it@example.com"}))).await;
    let d = domain(&s, json!({"domain": "DC=notify,DC=test", "useCase": "TWOWAYSYNC"})).await;
    let base = format!("/api/v2/activedirectories/{}", d["id"].as_str().unwrap());
    let mk = |n: &'static str, pw: bool| {
        let mut b = json!({"username": n, "email": format!("{n}@x.io")});
        if pw {
            b["password"] = json!("Passw0rd!");
        }
        s.call("POST", "/api/systemusers", Some(b))
    };
    let with_pw = mk("withpw", true).await.body["id"].as_str().unwrap().to_string();
    let without = mk("nopw", false).await.body["id"].as_str().unwrap().to_string();
    for id in [&with_pw, &without] {
        s.call(
            "POST",
            &format!("{base}/associations?targets=user"),
            Some(json!({"op": "add", "type": "user", "id": id})),
        )
        .await;
    }
    let n = s.call("GET", "/api/v2/notifications?limit=100", None).await;
    let rows: Vec<(String, String)> = n
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["template"].as_str().unwrap().into(), x["recipient"].as_str().unwrap().into()))
        .collect();
    assert_eq!(rows, [("directory_bound".into(), "withpw@x.io".into()), ("activation".into(), "nopw@x.io".into())]);

    // The last running agent of the domain deactivated: the administrator is told.
    let a1 = s.call("POST", &format!("{base}/agents"), Some(json!({"agentType": "IMPORT"}))).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a2 = s.call("POST", &format!("{base}/agents"), Some(json!({"agentType": "SYNC"}))).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.call("POST", &format!("{base}/agents/{a1}/pause"), None).await;
    let q = "/api/v2/notifications?filter=template:eq:last_agent_deactivated";
    assert_eq!(s.call("GET", q, None).await.total(), Some(0), "another agent still runs");
    s.call("POST", &format!("{base}/agents/{a2}/pause"), None).await;
    let r = s.call("GET", q, None).await;
    assert_eq!((r.total(), r.body[0]["recipient"].as_str()), (Some(1), Some("it@example.com")));

    // Password expiry: no notification when both an import and a sync agent serve the domain.
    s.call("POST", &format!("/api/systemusers/{with_pw}/expire"), None).await;
    let other = mk("solo", true).await.body["id"].as_str().unwrap().to_string();
    s.call("POST", &format!("/api/systemusers/{other}/expire"), None).await;
    let r = s.call("GET", "/api/v2/notifications?filter=template:eq:password_expired", None).await;
    assert_eq!((r.total(), r.body[0]["recipient"].as_str()), (Some(1), Some("solo@x.io")));
}

#[tokio::test]
async fn an_agent_reaches_only_its_own_domain() {
    let s = TestServer::start().await;
    let a = domain(&s, json!({"domain": "DC=a,DC=test"})).await;
    let b = domain(&s, json!({"domain": "DC=b,DC=test"})).await;
    let key = s
        .call(
            "POST",
            &format!("/api/v2/activedirectories/{}/agents", a["id"].as_str().unwrap()),
            Some(json!({"agentType": "SYNC"})),
        )
        .await;
    let token = "k".repeat(40);
    s.call_as(
        None,
        "POST",
        "/api/agent/v1/register",
        Some(json!({"connectKey": key.body["connectKey"], "token": token})),
    )
    .await;
    let u = s.call("POST", "/api/systemusers", Some(json!({"username": "bea", "email": "bea@x.io"}))).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.call(
        "POST",
        &format!("/api/v2/activedirectories/{}/associations", b["id"].as_str().unwrap()),
        Some(json!({"op": "add", "type": "user", "id": u})),
    )
    .await;
    let post = |path: &str, body: Value| {
        let req = s.client.post(format!("{}{path}", s.url)).bearer_auth(&token).json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // Domain B's user: the agent of domain A may not touch it, and sees none of B's feed.
    assert_eq!(
        post("/api/agent/v1/sync/status", json!({"userId": u, "guid": "00".repeat(16), "dn": "CN=x"})).await,
        403
    );
    let r = s
        .client
        .post(format!("{}/api/agent/v1/sync/poll", s.url))
        .bearer_auth(&token)
        .json(&json!({"waitMs": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
    // A sync agent is not an import agent.
    assert_eq!(post("/api/agent/v1/import", json!({"users": []})).await, 403);
    assert_eq!(post("/api/agent/v1/auth/poll", json!({"waitMs": 10})).await, 403);
    assert_eq!(post("/api/agent/v1/passwords", json!([])).await, 403);
}

#[tokio::test]
async fn a_sync_agent_acknowledges_only_what_it_was_delivered() {
    let s = TestServer::start().await;
    let d = domain(&s, json!({"domain": "DC=ack,DC=test", "useCase": "TWOWAYSYNC"})).await;
    let id = d["id"].as_str().unwrap();
    let key = s.connect_key(id, "SYNC").await;
    let token = "t".repeat(40);
    let r = s.call_as(None, "POST", "/api/agent/v1/register", Some(json!({"connectKey": key, "token": token}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Three users bound to the domain: three feed entries.
    for name in ["ack1", "ack2", "ack3"] {
        let u =
            s.call("POST", "/api/systemusers", Some(json!({"username": name, "email": format!("{name}@x.io")}))).await;
        s.bind_user(id, u.body["id"].as_str().unwrap()).await;
    }
    let post = |path: &str, body: Value| {
        let req = s.client.post(format!("{}{path}", s.url)).bearer_auth(&token).json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Before any delivery, nothing can be acknowledged.
    assert_eq!(post("/api/agent/v1/sync/ack", json!({"seq": 1_000_000})).await.0, 409);
    let (status, entries) = post("/api/agent/v1/sync/poll", json!({"waitMs": 10, "limit": 1})).await;
    assert_eq!(status, 200);
    let first = entries[0]["seq"].as_i64().unwrap();
    // Past the one entry delivered: refused, the cursor stays.
    let (status, body) = post("/api/agent/v1/sync/ack", json!({"seq": first + 2})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("delivered"), "{body}");
    assert_eq!(post("/api/agent/v1/sync/ack", json!({"seq": first})).await, (200, json!({"cursor": first})));
    // The rest is delivered next, in order, and then acknowledged.
    let (_, rest) = post("/api/agent/v1/sync/poll", json!({"waitMs": 10})).await;
    let seqs: Vec<i64> = rest.as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs.len(), 2, "{rest}");
    assert_eq!(post("/api/agent/v1/sync/ack", json!({"seq": seqs[1]})).await.0, 200);
}

/// Takeovers that leave the password pending (UserTakeoverAction=deactivate) count against the
/// domain's `passwordClears` bound: past it, the cycle is held and nobody's password is
/// removed until an administrator approves.
#[tokio::test]
async fn password_clearing_takeovers_are_guarded() {
    let s = TestServer::start().await;
    let domain = s.domain("DC=tk,DC=test", "TWOWAYSYNC").await;
    let r = s
        .call(
            "PATCH",
            &format!("/api/v2/activedirectories/{domain}"),
            Some(json!({"guards": {"passwordClears": {"count": 1}}})),
        )
        .await;
    assert_eq!(r.body["guards"]["passwordClears"], json!({"count": 1}), "{:?}", r.body);
    let key = s.connect_key(&domain, "IMPORT").await;
    let token = "t".repeat(40);
    let body = json!({"connectKey": key, "token": token, "installedOn": "member_server"});
    assert_eq!(s.call_as(None, "POST", "/api/agent/v1/register", Some(body)).await.status, 200);
    let post =
        |path: &str, body: Value| s.client.post(format!("{}{path}", s.url)).bearer_auth(&token).json(&body).send();
    let beat: Value = post("/api/agent/v1/heartbeat", json!({})).await.unwrap().json().await.unwrap();
    assert_eq!(beat["primary"], true, "{beat}");
    // Two Tether users with passwords, and their namesakes in AD.
    let mut users = Vec::new();
    for (i, name) in ["tka", "tkb"].into_iter().enumerate() {
        s.user(json!({"username": name, "email": format!("{name}@tk.test"), "password": "Own-Passw0rd-1"})).await;
        users.push(
            json!({"guid": format!("{i:032x}"), "dn": format!("CN={name},DC=tk,DC=test"), "samAccountName": name,
                          "givenName": "Tak", "sn": "Over", "mail": format!("{name}@tk.test")}),
        );
    }
    let report = json!({"settings": {}, "complete": false, "users": users, "fencing": beat["fencing"]});
    let out: Value = post("/api/agent/v1/import", report).await.unwrap().json().await.unwrap();
    assert_eq!(out["held"], true, "{out}");
    assert!(out["heldReason"].as_str().unwrap().contains("2 passwordClears exceed the bound of 1"), "{out}");
    let verify = |name: &'static str| {
        s.call("POST", "/api/v2/auth/verify", Some(json!({"username": name, "password": "Own-Passw0rd-1"})))
    };
    assert_eq!(
        (verify("tka").await.status.as_u16(), verify("tkb").await.status.as_u16()),
        (200, 200),
        "nothing applied"
    );
    let plan = s.call("GET", &format!("/api/v2/activedirectories/{domain}/plan"), None).await.body;
    let lines = plan["changes"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{plan}");
    assert!(lines.iter().all(|l| l["category"] == "passwordClears"), "{plan}");
}
