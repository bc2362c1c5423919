//! The v2 user groups API and its graph shapes.

use serde_json::{json, Value};
use tether_testkit::TestServer;

async fn user(s: &TestServer, name: &str) -> String {
    let r = s.call("POST", "/api/systemusers", Some(json!({"username": name, "email": format!("{name}@x.io")}))).await;
    r.body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn group_crud_and_members() {
    let s = TestServer::start().await;
    let r = s.call("POST", "/api/v2/usergroups", Some(json!({"name": "Engineering", "description": "eng"}))).await;
    assert_eq!(r.status, 201);
    assert_eq!((r.body["type"].as_str(), r.body["membershipMethod"].as_str()), (Some("user_group"), Some("STATIC")));
    let gid = r.body["id"].as_str().unwrap().to_string();
    let r = s.call("POST", "/api/v2/usergroups", Some(json!({"name": "engineering"}))).await;
    assert_eq!((r.status.as_u16(), r.body["status"].as_str()), (409, Some("DUPLICATE")));
    let r = s.call("PATCH", &format!("/api/v2/usergroups/{gid}"), Some(json!({"description": "new"}))).await;
    assert_eq!((r.body["name"].as_str(), r.body["description"].as_str()), (Some("Engineering"), Some("new")));

    let (a, b) = (user(&s, "ua").await, user(&s, "ub").await);
    for u in [&a, &b] {
        let r = s
            .call(
                "POST",
                &format!("/api/v2/usergroups/{gid}/members"),
                Some(json!({"op": "add", "type": "user", "id": u})),
            )
            .await;
        assert_eq!(r.status, 204);
    }
    let r = s.call("GET", &format!("/api/v2/usergroups/{gid}/members"), None).await;
    assert_eq!(r.total(), Some(2));
    assert_eq!(r.body[0], json!({"to": {"id": a, "type": "user"}, "attributes": null}));
    let r = s.call("GET", &format!("/api/v2/usergroups/{gid}/membership"), None).await;
    assert_eq!((r.body[1]["id"].as_str(), r.body[1]["type"].as_str()), (Some(b.as_str()), Some("user")));
    assert!(r.body[1]["paths"].is_array());
    let r = s.call("GET", &format!("/api/v2/users/{a}/memberof"), None).await;
    assert_eq!((r.body[0]["id"].as_str(), r.body[0]["type"].as_str()), (Some(gid.as_str()), Some("user_group")));

    let r = s
        .call(
            "POST",
            &format!("/api/v2/usergroups/{gid}/members"),
            Some(json!({"op": "remove", "type": "user", "id": a})),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(s.call("GET", &format!("/api/v2/usergroups/{gid}/members"), None).await.total(), Some(1));
    // (body, status)
    let rows: Vec<(Value, u16)> = vec![
        (json!({"op": "remove", "type": "user", "id": a}), 404),
        (json!({"op": "add", "type": "user", "id": "0123456789abcdef01234567"}), 404),
        (json!({"op": "zap", "type": "user", "id": a}), 400),
        (json!({"op": "add", "type": "system", "id": a}), 400),
    ];
    for (body, status) in rows {
        let r = s.call("POST", &format!("/api/v2/usergroups/{gid}/members"), Some(body.clone())).await;
        assert_eq!(r.status.as_u16(), status, "{body}");
    }
    let r = s.call("GET", "/api/v2/usergroups?filter=name:eq:Engineering", None).await;
    assert_eq!(r.total(), Some(1));
    let r = s.call("GET", "/api/v2/usergroups?filter=members:eq:x", None).await;
    assert_eq!(r.status, 400);
    assert_eq!(s.call("DELETE", &format!("/api/v2/usergroups/{gid}"), None).await.status, 204);
    assert!(s.call("GET", &format!("/api/v2/users/{b}/memberof"), None).await.body.as_array().unwrap().is_empty());

    // The group's history outlives it: every change, with who made it.
    let h = s.call("GET", &format!("/api/v2/usergroups/{gid}/history"), None).await.body;
    let rows: Vec<(String, Value)> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_string(), e["changes"].clone()))
        .collect();
    let want = [
        ("create", json!({"name": [null, "Engineering"]})),
        ("update", json!({"description": ["eng", "new"]})),
        ("membership", json!({"members": [null, "ua"]})),
        ("membership", json!({"members": [null, "ub"]})),
        ("membership", json!({"members": ["ua", null]})),
        ("delete", json!({"name": ["Engineering", null]})),
    ];
    assert_eq!(rows.len(), want.len(), "{h}");
    for ((action, changes), (wa, wc)) in rows.iter().zip(want) {
        assert_eq!(action, wa, "{h}");
        for (k, v) in wc.as_object().unwrap() {
            assert_eq!(&changes[k], v, "{action}: {changes}");
        }
    }
    assert!(h.as_array().unwrap().iter().all(|e| e["actor"]["type"] == "api_key"));
}
