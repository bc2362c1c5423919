//! The `tether` binary against an in-process server.

use serde_json::{json, Value};
use tether_testkit::TestServer;

async fn tether(s: &TestServer, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .env("TETHER_URL", &s.url)
        .env("TETHER_CA_FILE", tether_testkit::ca_file())
        .env("TETHER_API_KEY", &s.api_key)
        .output()
        .await
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test]
async fn users_set_all_converts_every_externally_managed_user() {
    let s = TestServer::start().await;
    for i in 0..130 {
        let managed = i % 2 == 0;
        let r = s.call("POST", "/api/systemusers", Some(json!({"username": format!("u{i:03}"), "email": format!("u{i}@x.io"), "externally_managed": managed}))).await;
        assert_eq!(r.status, 200);
    }
    let (ok, out, _) = tether(&s, &["users", "list", "--externally-managed", "true", "--json"]).await;
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().len(), 65, "paging beyond 100 works");
    let (ok, _, err) = tether(&s, &["users", "set", "--all", "--externally-managed", "false"]).await;
    assert!(ok, "{err}");
    assert!(err.contains("65 user(s) updated, 0 failed"), "{err}");
    let r = s.call("GET", "/api/systemusers?filter=externally_managed:$eq:true", None).await;
    assert_eq!(r.body["totalCount"], 0);
    let r = s.call("GET", "/api/systemusers?limit=1", None).await;
    assert_eq!(r.body["totalCount"], 130, "no user deleted");
}

#[tokio::test]
async fn users_groups_and_ad_commands() {
    let s = TestServer::start().await;
    let (ok, out, err) =
        tether(&s, &["users", "create", "--username", "jdoe", "--email", "jdoe@x.io", "--firstname", "John"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("USERNAME") && out.contains("jdoe") && out.contains("ACTIVATED"), "{out}");
    let (ok, _, err) = tether(&s, &["users", "create", "--username", "JDOE", "--email", "x@x.io"]).await;
    assert!(!ok && err.contains("409") && err.contains("DUPLICATE"), "{err}");
    let (ok, out, _) = tether(&s, &["users", "set", "jdoe", "--externally-managed", "true", "--json"]).await;
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()[0]["externally_managed"], true);
    let (ok, _, err) = tether(&s, &["users", "set", "jdoe", "--firstname", "Jim"]).await;
    assert!(!ok && err.contains("RESTRICTED_FIELD"), "{err}");
    let (ok, _, err) = tether(&s, &["users", "set", "jdoe", "--externally-managed", "false"]).await;
    assert!(ok, "{err}");

    assert!(tether(&s, &["groups", "create", "Eng"]).await.0);
    assert!(tether(&s, &["groups", "add-member", "Eng", "jdoe"]).await.0);
    let (_, out, _) = tether(&s, &["groups", "members", "Eng"]).await;
    assert!(out.contains("jdoe"), "{out}");
    assert!(tether(&s, &["groups", "remove-member", "Eng", "jdoe"]).await.0);

    let (ok, out, _) = tether(&s, &["ad", "create", "DC=corp,DC=test", "--json"]).await;
    assert!(ok);
    let d: Value = serde_json::from_str(&out).unwrap();
    let did = d["id"].as_str().unwrap();
    let (_, out, _) = tether(&s, &["ad", "add-agent", did, "--type", "SYNC", "--json"]).await;
    let a: Value = serde_json::from_str(&out).unwrap();
    assert!(a["connectKey"].is_string());
    let aid = a["id"].as_str().unwrap();
    let (_, out, _) = tether(&s, &["ad", "agents", did]).await;
    assert!(out.contains("unsealed") && out.contains("SYNC"), "{out}");
    let (ok, _, err) = tether(&s, &["ad", "delete-agent", did, aid]).await;
    assert!(!ok && err.contains("409"), "{err}");
    let (ok, out, _) = tether(&s, &["ad", "pause", did, aid]).await;
    assert!(ok && out.contains("true"), "{out}");
    let (_, out, _) = tether(&s, &["ad", "list"]).await;
    assert!(out.contains("DC=corp,DC=test") && out.contains("TWOWAYSYNC"), "{out}");
    let (ok, out, _) = tether(&s, &["users", "delete", "jdoe"]).await;
    assert!(ok && out.contains("jdoe"));
}

#[tokio::test]
async fn missing_key_is_a_clear_error() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["users", "list"])
        .env_remove("TETHER_API_KEY")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TETHER_API_KEY"));
}

#[tokio::test]
async fn users_history_shows_who_changed_what() {
    let s = TestServer::start().await;
    assert!(tether(&s, &["users", "create", "--username", "hist", "--email", "hist@x.io", "--firstname", "A"]).await.0);
    assert!(tether(&s, &["users", "set", "hist", "--firstname", "B", "--suspended", "true"]).await.0);
    let (ok, out, err) = tether(&s, &["users", "history", "hist"]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("AT"), "{out}");
    assert!(lines[1].contains("create") && lines[1].contains("api_key bootstrap"), "{out}");
    assert!(
        lines[2].contains("update") && lines[2].contains(r#"firstname: "A" → "B""#) && lines[2].contains("SUSPENDED"),
        "{out}"
    );
}

#[tokio::test]
async fn groups_history_shows_renames_and_members() {
    let s = TestServer::start().await;
    assert!(tether(&s, &["users", "create", "--username", "gh1", "--email", "gh1@x.io"]).await.0);
    assert!(tether(&s, &["groups", "create", "ops"]).await.0);
    assert!(tether(&s, &["groups", "add-member", "ops", "gh1"]).await.0);
    assert!(tether(&s, &["groups", "remove-member", "ops", "gh1"]).await.0);
    let (ok, out, err) = tether(&s, &["groups", "history", "ops"]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[1].contains("create") && lines[1].contains(r#"name: null → "ops""#), "{out}");
    assert!(lines[2].contains("membership") && lines[2].contains(r#"members: null → "gh1""#), "{out}");
    assert!(lines[3].contains("membership") && lines[3].contains(r#"members: "gh1" → null"#), "{out}");
}

/// `tether users bind USER DOMAIN` and `unbind`, with the domain named by its DN (any case)
/// or its id; an unknown domain is a clear error.
#[tokio::test]
async fn users_bind_and_unbind_a_domain() {
    let s = TestServer::start().await;
    let domain = s.domain("DC=bind,DC=test", "TWOWAYSYNC").await;
    let id = s.user(json!({"username": "binder", "email": "binder@x.io"})).await;
    let bound = || async {
        let r = s.call("GET", &format!("/api/v2/activedirectories/{domain}/associations?targets=user"), None).await;
        r.body.as_array().unwrap().iter().any(|a| a["to"]["id"] == id.as_str())
    };
    let (ok, _, err) = tether(&s, &["users", "bind", "binder", "dc=BIND,dc=test"]).await;
    assert!(ok, "{err}");
    assert!(bound().await, "bound by the domain's DN");
    let (ok, _, err) = tether(&s, &["users", "unbind", &id, &domain]).await;
    assert!(ok, "{err}");
    assert!(!bound().await, "unbound by ids");
    let (ok, _, err) = tether(&s, &["users", "bind", "binder", "DC=nowhere,DC=test"]).await;
    assert!(!ok && err.contains("no AD domain `DC=nowhere,DC=test`"), "{err}");
}

#[tokio::test]
async fn ldap_commands_put_users_and_groups_in_ldap() {
    let s = TestServer::start().await;
    for name in ["ann", "bob"] {
        s.user(json!({"username": name, "email": format!("{name}@x.io")})).await;
    }
    assert!(tether(&s, &["groups", "create", "Ops"]).await.0);
    assert!(tether(&s, &["groups", "add-member", "Ops", "bob"]).await.0);
    let (ok, out, err) = tether(&s, &["ldap", "show"]).await;
    assert!(ok && out.contains("REMOVE"), "{out} {err}");
    let (ok, out, err) = tether(&s, &["ldap", "set", "--lockout-action", "maintain", "--json"]).await;
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["userLockoutAction"], "MAINTAIN");
    let (ok, _, err) = tether(&s, &["ldap", "set", "--expiration-action", "sometimes"]).await;
    assert!(!ok && err.contains("400") && err.contains("userPasswordExpirationAction"), "{err}");
    assert!(tether(&s, &["ldap", "add-user", "ann"]).await.0);
    assert!(tether(&s, &["ldap", "add-group", "Ops"]).await.0);
    let (_, out, _) = tether(&s, &["ldap", "users"]).await;
    assert!(out.contains("ann") && out.contains("bob"), "{out}");
    assert!(tether(&s, &["ldap", "remove-group", "Ops"]).await.0);
    let (_, out, _) = tether(&s, &["ldap", "users"]).await;
    assert!(out.contains("ann") && !out.contains("bob"), "{out}");
    let (ok, _, err) = tether(&s, &["ldap", "remove-user", "bob"]).await;
    assert!(!ok && err.contains("404"), "not in LDAP directly: {err}");
}

#[tokio::test]
async fn radius_commands_manage_servers_and_who_gets_in() {
    let s = TestServer::start().await;
    for name in ["ann", "bob"] {
        s.user(json!({"username": name, "email": format!("{name}@x.io")})).await;
    }
    assert!(tether(&s, &["groups", "create", "Wifi"]).await.0);
    assert!(tether(&s, &["groups", "add-member", "Wifi", "bob"]).await.0);
    let create = tokio::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["radius", "create", "--name", "Office", "--source-ip", "10.0.0.9", "--json"])
        .env("TETHER_URL", &s.url)
        .env("TETHER_CA_FILE", tether_testkit::ca_file())
        .env("TETHER_API_KEY", &s.api_key)
        .env("TETHER_RADIUS_SECRET", "cli-radius-s3cret")
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&create.stdout);
    assert!(create.status.success(), "{}", String::from_utf8_lossy(&create.stderr));
    assert!(out.contains("10.0.0.9") && !out.contains("cli-radius-s3cret"), "{out}");
    let (ok, out, err) = tether(&s, &["radius", "set", "office", "--mfa", "enabled", "--json"]).await;
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["mfa"], "ENABLED");
    let (ok, _, err) = tether(&s, &["radius", "set", "Office", "--source-ip", "not-an-address"]).await;
    assert!(!ok && err.contains("400") && err.contains("networkSourceIp"), "{err}");
    assert!(tether(&s, &["radius", "add-user", "Office", "ann"]).await.0);
    assert!(tether(&s, &["radius", "add-group", "Office", "Wifi"]).await.0);
    let (_, out, _) = tether(&s, &["radius", "users", "Office"]).await;
    assert!(out.contains("ann") && out.contains("bob"), "{out}");
    assert!(tether(&s, &["radius", "remove-group", "Office", "Wifi"]).await.0);
    let (_, out, _) = tether(&s, &["radius", "users", "Office"]).await;
    assert!(out.contains("ann") && !out.contains("bob"), "{out}");
    let (ok, out, _) = tether(&s, &["radius", "list"]).await;
    assert!(ok && out.contains("Office") && out.contains("ENABLED"), "{out}");
    let (ok, out, err) = tether(&s, &["users", "reset-mfa", "ann", "--json"]).await;
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["totp_enabled"], false);
    assert!(tether(&s, &["radius", "delete", "Office"]).await.0);
    let (ok, _, err) = tether(&s, &["radius", "users", "Office"]).await;
    assert!(!ok && err.contains("no RADIUS server `Office`"), "{err}");
}
