//! The v1 users API, against an in-process server.

use serde_json::{json, Value};
use tether_testkit::TestServer;

async fn create(s: &TestServer, username: &str, extra: Value) -> Value {
    let mut body = json!({"username": username, "email": format!("{username}@example.com"),
                          "firstname": "First", "lastname": "Last"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = s.call("POST", "/api/systemusers", Some(body)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn health_and_authentication() {
    let s = TestServer::start().await;
    let r = s.call_as(None, "GET", "/health", None).await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (200, json!({"status": "ok"})));
    let r = s.call_as(None, "GET", "/api/systemusers", None).await;
    assert_eq!((r.status.as_u16(), r.body["status"].as_str()), (401, Some("MISSING_API_KEY")));
    let r = s.call_as(Some("wrong"), "GET", "/api/systemusers", None).await;
    assert_eq!((r.status.as_u16(), r.body["code"].as_u64()), (401, Some(401)));
    // A read-only key reads but does not write.
    let k = s.call("POST", "/api/v2/apikeys", Some(json!({"name": "ro", "role": "read_only"}))).await;
    assert_eq!(k.status, 201);
    let ro = k.body["key"].as_str().unwrap().to_string();
    assert_eq!(s.call_as(Some(&ro), "GET", "/api/systemusers", None).await.status, 200);
    let r = s.call_as(Some(&ro), "POST", "/api/systemusers", Some(json!({"username": "x", "email": "x@y.z"}))).await;
    assert_eq!((r.status.as_u16(), r.body["status"].as_str()), (403, Some("FORBIDDEN")));
    // The key is stored hashed: listing never shows it.
    let list = s.call("GET", "/api/v2/apikeys", None).await;
    assert!(!list.body.to_string().contains(&ro));
}

#[tokio::test]
async fn create_get_update_delete() {
    let s = TestServer::start().await;
    let u = create(
        &s,
        "ann",
        json!({"password": "Passw0rd!", "department": "Eng",
        "addresses": [{"type": "work", "locality": "Oslo"}], "phoneNumbers": [{"type": "work", "number": "1"}]}),
    )
    .await;
    let id = u["id"].as_str().unwrap().to_string();
    assert_eq!(u["_id"], u["id"]);
    assert_eq!(u["state"], "ACTIVATED");
    assert_eq!((u["activated"].clone(), u["suspended"].clone()), (json!(true), json!(false)));
    assert_eq!(u["passwordStatus"], "active");
    assert!(u.get("password").is_none(), "password is write-only");
    assert_eq!(u["addresses"][0]["locality"], "Oslo");
    assert!(u["password_date"].is_string());

    // Partial update keeps what was not sent; paths match case-insensitively.
    let r = s.call("PUT", &format!("/api/SystemUsers/{id}"), Some(json!({"jobTitle": "CTO"}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!((r.body["jobTitle"].as_str(), r.body["department"].as_str()), (Some("CTO"), Some("Eng")));
    let r = s.call("GET", &format!("/api/systemusers/{id}"), None).await;
    assert_eq!(r.body["jobTitle"], "CTO");

    let r = s.call("DELETE", &format!("/api/systemusers/{id}"), None).await;
    assert_eq!(r.status, 200);
    let r = s.call("GET", &format!("/api/systemusers/{id}"), None).await;
    assert_eq!((r.status.as_u16(), r.body["status"].as_str()), (404, Some("NOT_FOUND")));
}

#[tokio::test]
async fn error_cases_table() {
    let s = TestServer::start().await;
    create(&s, "bob", json!({})).await;
    // (method, path, body, status, reason, text the message must contain)
    let rows: Vec<(&str, &str, Value, u16, &str, &str)> = vec![
        (
            "POST",
            "/api/systemusers",
            json!({"username": "BOB", "email": "other@example.com"}),
            409,
            "DUPLICATE",
            "username",
        ),
        (
            "POST",
            "/api/systemusers",
            json!({"username": "bob2", "email": "Bob@Example.com"}),
            409,
            "DUPLICATE",
            "email",
        ),
        ("POST", "/api/systemusers", json!({"email": "a@b.c"}), 400, "INVALID_FIELD", "username"),
        (
            "POST",
            "/api/systemusers",
            json!({"username": "c", "email": "a@b.c", "password": "short"}),
            422,
            "PASSWORD_POLICY",
            "at least 8",
        ),
        (
            "POST",
            "/api/systemusers",
            json!({"username": "c", "email": "a@b.c", "password": "alllowercase"}),
            422,
            "PASSWORD_POLICY",
            "at least 3 of",
        ),
        (
            "POST",
            "/api/systemusers",
            json!({"username": "c", "email": "a@b.c", "state": "ODD"}),
            400,
            "INVALID_FIELD",
            "state",
        ),
        (
            "POST",
            "/api/systemusers",
            json!({"username": "c", "email": "a@b.c", "manager": "0123456789abcdef01234567"}),
            400,
            "INVALID_FIELD",
            "manager",
        ),
        ("GET", "/api/systemusers?filter=nosuch:$eq:1", Value::Null, 400, "UNKNOWN_FIELD", "nosuch"),
        ("GET", "/api/systemusers?filter=username:$like:1", Value::Null, 400, "INVALID_FILTER", "operator"),
        ("GET", "/api/systemusers?limit=101", Value::Null, 400, "INVALID_FIELD", "at most 100"),
        ("GET", "/api/systemusers?sort=password", Value::Null, 400, "UNKNOWN_FIELD", "password"),
        ("POST", "/api/search/systemusers", json!({"filter": [{"nosuch": "x"}]}), 400, "UNKNOWN_FIELD", "nosuch"),
        (
            "POST",
            "/api/search/systemusers",
            json!({"filter": [{"username": {"$regex": "("}}]}),
            400,
            "INVALID_FILTER",
            "regular expression",
        ),
        ("POST", "/api/search/systemusers", json!({"limit": 1001}), 400, "INVALID_FIELD", "1000"),
        ("GET", "/api/systemusers/0123456789abcdef01234567", Value::Null, 404, "NOT_FOUND", "user"),
        ("GET", "/api/nothing/here", Value::Null, 404, "NOT_FOUND", "no route"),
    ];
    for (m, p, b, status, reason, text) in rows {
        let r = s.call(m, p, if b.is_null() { None } else { Some(b.clone()) }).await;
        assert_eq!(r.status.as_u16(), status, "{m} {p} {b}: {:?}", r.body);
        assert_eq!(r.body["status"], reason, "{m} {p} {b}");
        assert_eq!(r.body["code"], status, "{m} {p} {b}");
        assert!(r.body["message"].as_str().unwrap().contains(text), "{m} {p}: {}", r.body["message"]);
    }
    let r = s.call_raw("POST", "/api/systemusers", "{\"username\": ").await;
    assert_eq!((r.status.as_u16(), r.body["status"].as_str()), (400, Some("INVALID_JSON")));
    assert!(r.body["message"].as_str().unwrap().contains("line 1"), "{:?}", r.body);
}

#[tokio::test]
async fn restricted_fields_and_conversion() {
    let s = TestServer::start().await;
    let u = create(&s, "carl", json!({"password": "Passw0rd!"})).await;
    let path = format!("/api/systemusers/{}", u["id"].as_str().unwrap());
    let r = s.call("PUT", &path, Some(json!({"externally_managed": true}))).await;
    assert_eq!(r.status, 200);
    let fields: Vec<&str> =
        r.body["restrictedFields"].as_array().unwrap().iter().map(|f| f["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["firstname", "lastname", "username", "email", "password"]);
    assert!(r.body["restrictedFields"].as_array().unwrap().iter().all(|f| f["type"] == "active_directory"));
    // (body, expected status, field named)
    let rows: Vec<(Value, u16, &str)> = vec![
        (json!({"firstname": "Other"}), 422, "firstname"),
        (json!({"email": "new@example.com"}), 422, "email"),
        (json!({"username": "carl2"}), 422, "username"),
        (json!({"password": "N3w-Passw0rd"}), 422, "password"),
        (json!({"firstname": "First"}), 200, ""),    // unchanged: accepted
        (json!({"password": "Passw0rd!"}), 200, ""), // unchanged: accepted
        (json!({"department": "Ops"}), 200, ""),
    ];
    for (body, status, field) in rows {
        let r = s.call("PUT", &path, Some(body.clone())).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {:?}", r.body);
        if status == 422 {
            assert_eq!(r.body["status"], "RESTRICTED_FIELD");
            assert!(r.body["message"].as_str().unwrap().contains(&format!("`{field}`")), "{:?}", r.body);
        }
    }
    let r = s.call("PUT", &path, Some(json!({"externally_managed": false}))).await;
    assert_eq!((r.body["externally_managed"].clone(), r.body["restrictedFields"].clone()), (json!(false), json!([])));
    let r = s.call("PUT", &path, Some(json!({"firstname": "Other"}))).await;
    assert_eq!((r.status.as_u16(), r.body["firstname"].as_str()), (200, Some("Other")));
}

#[tokio::test]
async fn lists_filters_and_search() {
    let s = TestServer::start().await;
    for i in 0..15 {
        create(
            &s,
            &format!("user{i:02}"),
            json!({"department": if i % 3 == 0 { "Eng" } else { "Ops" }, "suspended": i == 4}),
        )
        .await;
    }
    let r = s.call("GET", "/api/systemusers", None).await;
    assert_eq!((r.body["totalCount"].as_u64(), r.body["results"].as_array().unwrap().len()), (Some(15), 10));
    let r = s.call("GET", "/api/systemusers?limit=5&skip=12", None).await;
    assert_eq!(r.body["results"].as_array().unwrap().len(), 3);
    let r = s.call("GET", "/api/systemusers?filter=department:$eq:Eng&limit=100", None).await;
    assert_eq!(r.body["totalCount"], 5);
    let r = s.call("GET", "/api/systemusers?filter=department:$eq:Eng&filter=username:$gte:user06", None).await;
    assert_eq!(r.body["totalCount"], 3, "two filters combine with AND");
    let r = s.call("GET", "/api/systemusers?filter=state:$eq:SUSPENDED", None).await;
    assert_eq!(r.body["results"][0]["username"], "user04");
    let r = s.call("GET", "/api/systemusers?sort=-username&limit=1&fields=username", None).await;
    assert_eq!(
        r.body["results"][0],
        json!({"_id": r.body["results"][0]["_id"], "id": r.body["results"][0]["id"], "username": "user14"})
    );

    let search = |b: Value| s.call("POST", "/api/search/systemusers", Some(b));
    let r = search(json!({"filter": [{"username": "user03"}]})).await;
    assert_eq!(r.body["totalCount"], 1);
    let r = search(json!({"filter": {"or": [{"username": "user01"}, {"username": "user02"}]}})).await;
    assert_eq!(r.body["totalCount"], 2);
    let r = search(json!({"filter": {"and": [{"department": "Eng"}, {"suspended": false}]}, "limit": 1000})).await;
    assert_eq!(r.body["totalCount"], 5);
    let r = search(json!({"filter": [{"username": {"$regex": "^USER1[0-2]$"}}]})).await;
    assert_eq!(r.body["totalCount"], 3, "regex is case-insensitive");
    let r = search(json!({"searchFilter": {"searchTerm": "ER0", "fields": ["username"]}})).await;
    assert_eq!(r.body["totalCount"], 10);
}

#[tokio::test]
async fn lifecycle_endpoints_and_settings() {
    let s = TestServer::start().await;
    let r = s.call("PUT", "/api/settings", Some(json!({"newUserState": "STAGED"}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["passwordPolicy"]["minLength"], 8, "partial update keeps the policy");
    let u = create(&s, "dana", json!({})).await;
    assert_eq!(
        (u["state"].as_str(), u["activated"].as_bool(), u["passwordStatus"].as_str()),
        (Some("STAGED"), Some(false), Some("pending"))
    );
    let id = u["id"].as_str().unwrap();
    let r = s.call("POST", &format!("/api/systemusers/{id}/state/activate"), None).await;
    assert_eq!((r.body["state"].as_str(), r.body["activated"].as_bool()), (Some("ACTIVATED"), Some(true)));
    let r = s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"suspended": true}))).await;
    assert_eq!((r.body["state"].as_str(), r.body["suspended"].as_bool()), (Some("SUSPENDED"), Some(true)));
    let r = s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"state": "ACTIVATED"}))).await;
    assert_eq!((r.body["state"].as_str(), r.body["suspended"].as_bool()), (Some("ACTIVATED"), Some(false)));
    let r =
        s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"state": "SUSPENDED", "suspended": false}))).await;
    assert_eq!((r.status.as_u16(), r.body["status"].as_str()), (400, Some("INVALID_STATE")));
    let r = s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"account_locked": true}))).await;
    assert_eq!(r.body["account_locked"], true);
    let r = s.call("POST", &format!("/api/systemusers/{id}/unlock"), None).await;
    assert_eq!(r.body["account_locked"], false);
    s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"password": "Passw0rd!"}))).await;
    let r = s.call("POST", &format!("/api/systemusers/{id}/expire"), None).await;
    assert_eq!(
        (r.body["password_expired"].as_bool(), r.body["passwordStatus"].as_str()),
        (Some(true), Some("expired"))
    );
    let r = s.call("PUT", "/api/settings", Some(json!({"passwordPolicy": {"minLength": 12}}))).await;
    assert_eq!(r.body["passwordPolicy"]["minCharacterClasses"], 3);
    let r = s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"password": "Passw0rd!x"}))).await;
    assert_eq!((r.status.as_u16(), r.body["status"].as_str()), (422, Some("PASSWORD_POLICY")));
    assert!(r.body["message"].as_str().unwrap().contains("12"));
}

#[tokio::test]
async fn verify_local_passwords() {
    let s = TestServer::start().await;
    let u = create(&s, "eve", json!({"password": "Passw0rd!"})).await;
    let verify =
        |user: &str, pw: &str| s.call("POST", "/api/v2/auth/verify", Some(json!({"username": user, "password": pw})));
    let r = verify("eve", "Passw0rd!").await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (200, json!({"authenticated": true, "method": "local"})));
    let r = verify("EVE", "Passw0rd!").await;
    assert_eq!(r.status, 200, "usernames are case-insensitive");
    for (user, pw) in [("eve", "wrong"), ("eve", ""), ("nobody", "Passw0rd!")] {
        let r = verify(user, pw).await;
        assert_eq!((r.status.as_u16(), r.body.clone()), (401, json!({"authenticated": false})), "{user}/{pw}");
    }
    s.call("PUT", &format!("/api/systemusers/{}", u["id"].as_str().unwrap()), Some(json!({"suspended": true}))).await;
    assert_eq!(verify("eve", "Passw0rd!").await.status, 401, "a suspended user cannot authenticate");
}

#[tokio::test]
async fn bulk_updates_report_each_item() {
    let s = TestServer::start().await;
    let a = create(&s, "fay", json!({})).await;
    let r = s
        .call(
            "PATCH",
            "/api/v2/bulk/users",
            Some(json!([
                {"id": a["id"], "department": "Bulk"},
                {"id": "0123456789abcdef01234567", "department": "X"},
            ])),
        )
        .await;
    let job = r.body["jobId"].as_str().unwrap().to_string();
    let r = s.call("GET", &format!("/api/v2/bulk/users/{job}/results"), None).await;
    assert_eq!(r.body[0]["status"], "finished");
    assert_eq!(r.body[1]["status"], "failed");
    let r = s.call("GET", &format!("/api/systemusers/{}", a["id"].as_str().unwrap()), None).await;
    assert_eq!(r.body["department"], "Bulk");
}

#[tokio::test]
async fn openapi_document_lists_the_routes() {
    let s = TestServer::start().await;
    let r = s.call_as(None, "GET", "/api/openapi.json", None).await;
    assert_eq!(r.status, 200);
    for p in [
        "/api/systemusers",
        "/api/v2/usergroups/{id}/members",
        "/api/v2/activedirectories/{id}/agents",
        "/api/v2/auth/verify",
    ] {
        assert!(r.body["paths"].get(p).is_some(), "missing {p}");
    }
    assert!(r.body["components"]["schemas"].get("User").is_some());
    // A stored document's revision is internal: in no schema.
    let schemas = r.body["components"]["schemas"].as_object().unwrap();
    assert!(schemas["User"]["properties"].get("username").is_some());
    for (name, schema) in schemas {
        assert!(schema["properties"].get("_v").is_none(), "{name} shows `_v`");
    }
}

#[tokio::test]
async fn verify_locks_a_username_out_after_repeated_failures() {
    let s = TestServer::start().await;
    create(&s, "bruce", json!({"password": "Passw0rd!"})).await;
    let verify = |pw: &str| s.call("POST", "/api/v2/auth/verify", Some(json!({"username": "bruce", "password": pw})));
    for _ in 0..9 {
        assert_eq!(verify("guess").await.status, 401);
    }
    assert_eq!(verify("Passw0rd!").await.status, 200, "a success resets the count");
    for _ in 0..10 {
        verify("guess").await;
    }
    let r = verify("Passw0rd!").await;
    assert_eq!(r.status, 429, "locked out: even the right password is refused");
    assert!(r.body["reason"].as_str().unwrap().contains("too many failed attempts"));
    s.advance(time::Duration::minutes(16));
    assert_eq!(verify("Passw0rd!").await.status, 200, "the lockout ends");
}

/// A user's document and its password are written together: an update refused as a
/// duplicate (409) leaves the old password working and the new one refused, and records
/// nothing (issue "No lost writes": the hash used to be written before the refusal).
#[tokio::test]
async fn a_refused_update_does_not_change_the_password() {
    let s = TestServer::start().await;
    let a = create(&s, "atom", json!({"password": "Old-Passw0rd"})).await;
    create(&s, "btom", json!({})).await;
    let id = a["id"].as_str().unwrap();
    let body = json!({"email": "btom@example.com", "password": "New-Passw0rd"});
    let r = s.call("PUT", &format!("/api/systemusers/{id}"), Some(body)).await;
    assert_eq!((r.status.as_u16(), r.body["status"].as_str()), (409, Some("DUPLICATE")), "{:?}", r.body);
    let verify =
        |pw: &'static str| s.call("POST", "/api/v2/auth/verify", Some(json!({"username": "atom", "password": pw})));
    assert_eq!(verify("Old-Passw0rd").await.status, 200, "the old password still works");
    assert_eq!(verify("New-Passw0rd").await.status, 401, "the refused one never took effect");
    let after = s.call("GET", &format!("/api/systemusers/{id}"), None).await.body;
    assert_eq!((after["email"].as_str(), &after["password_date"]), (Some("atom@example.com"), &a["password_date"]));
    let h = s.call("GET", &format!("/api/v2/users/{id}/history"), None).await.body;
    assert_eq!(h.as_array().map(Vec::len), Some(1), "only the creation: {h}");
}
