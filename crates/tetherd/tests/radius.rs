//! The RADIUS front end, driven by FreeRADIUS's own clients (`radtest` and `radclient`, from
//! Debian's freeradius-utils) against an in-process tetherd: PAP answered by the directory,
//! and every request that must not be answered (unknown address, wrong secret, no
//! Message-Authenticator) dropped and counted.

use serde_json::{json, Value};
use tether_testkit::TestServer;

const SECRET: &str = "office-radius-s3cret";
const PASSWORD: &str = "Radius-Passw0rd!";

/// `radclient -x` sending `input` (attribute lines) as `command` (`auth`, `status`); (exit
/// code, what it printed). One retry after 1 s: a dropped request reads "No reply".
async fn radclient(server: &str, command: &str, secret: &str, input: &str) -> (i32, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("radclient")
        .args(["-x", "-r", "1", "-t", "1", server, command, secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("radclient (Debian's freeradius-utils) cannot run: {e}"));
    child.stdin.take().unwrap().write_all(input.as_bytes()).await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// `radtest USER PASSWORD SERVER 0 SECRET` (it adds Message-Authenticator itself); what
/// radclient printed.
async fn radtest(server: &str, secret: &str, user: &str, password: &str) -> String {
    let out = tokio::process::Command::new("radtest")
        .args(["-x", user, password, server, "0", secret])
        .output()
        .await
        .unwrap_or_else(|e| panic!("radtest (Debian's freeradius-utils) cannot run: {e}"));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A PAP request of `user` with `password` through `radclient` (signed with
/// Message-Authenticator, as radtest does); what it printed.
async fn pap(server: &str, secret: &str, user: &str, password: &str) -> String {
    let input = format!("User-Name = \"{user}\"\nUser-Password = \"{password}\"\nMessage-Authenticator = 0x00\n");
    radclient(server, "auth", secret, &input).await.1
}

fn answered(out: &str) -> &'static str {
    if out.contains("Received Access-Accept") {
        "accept"
    } else if out.contains("Received Access-Reject") {
        "reject"
    } else if out.contains("No reply from server") {
        "no reply"
    } else {
        "?"
    }
}

async fn user(s: &TestServer, name: &str) -> String {
    s.user(json!({"username": name, "email": format!("{name}@example.test"), "password": PASSWORD})).await
}

async fn radius_server(s: &TestServer, ip: &str) -> Value {
    let r = s
        .call(
            "POST",
            "/api/radiusservers",
            Some(json!({"name": "office wifi", "networkSourceIp": ip, "sharedSecret": SECRET})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

async fn associate(s: &TestServer, server: &str, kind: &str, id: &str) {
    let path = format!("/api/v2/radiusservers/{server}/associations");
    let r = s.call("POST", &path, Some(json!({"op": "add", "type": kind, "id": id}))).await;
    assert_eq!(r.status, 204, "{:?}", r.body);
}

/// The count of RADIUS datagrams with `outcome`.
async fn outcome_count(s: &TestServer, outcome: &str) -> u64 {
    let m = s.client.get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
    let series = format!("tether_radius_request_seconds_count{{outcome=\"{outcome}\"}} ");
    m.lines().find_map(|l| l.strip_prefix(&series)).map_or(0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn pap_is_answered_by_the_directory() {
    let s = TestServer::start().await;
    let server = radius_server(&s, "127.0.0.1").await;
    assert!(server.get("sharedSecret").is_none(), "the secret is never read back: {server}");
    let id = server["id"].as_str().unwrap().to_string();
    // ann: directly. bob: through the group wifi, which puts its members on VLAN 20. carl: no.
    let ann = user(&s, "ann").await;
    let bob = user(&s, "bob").await;
    user(&s, "carl").await;
    let wifi = s
        .create(
            "/api/v2/usergroups",
            json!({"name": "wifi", "attributes": {"radius": {"reply": [
                {"name": "Tunnel-Type", "value": "VLAN"},
                {"name": "Tunnel-Medium-Type", "value": "IEEE-802"},
                {"name": "Tunnel-Private-Group-Id", "value": "20"}
            ]}}}),
        )
        .await;
    s.add_member(&wifi, &bob).await;
    associate(&s, &id, "user", &ann).await;
    associate(&s, &id, "user_group", &wifi).await;

    let out = radtest(&s.radius, SECRET, "ann", PASSWORD).await;
    assert_eq!(answered(&out), "accept", "{out}");
    let out = radtest(&s.radius, SECRET, "bob", PASSWORD).await;
    assert_eq!(answered(&out), "accept", "{out}");
    for want in ["Tunnel-Type:0 = VLAN", "Tunnel-Medium-Type:0 = IEEE-802", "Tunnel-Private-Group-Id:0 = \"20\""] {
        assert!(out.contains(want), "{want} in {out}");
    }
    for (who, pw) in [("ann", "wrong-password"), ("carl", PASSWORD), ("nobody", PASSWORD)] {
        let out = radtest(&s.radius, SECRET, who, pw).await;
        assert_eq!(answered(&out), "reject", "{who}: {out}");
    }
    // Status-Server (RFC 5997), signed like any request.
    let (_, out) = radclient(&s.radius, "status", SECRET, "Message-Authenticator = 0x00\n").await;
    assert_eq!(answered(&out), "accept", "{out}");

    // Never answered: a wrong secret, a request without Message-Authenticator.
    let before = (outcome_count(&s, "dropped_bad_message_authenticator").await, outcome_count(&s, "accepted").await);
    let out = pap(&s.radius, "not-the-secret", "ann", PASSWORD).await;
    assert_eq!(answered(&out), "no reply", "{out}");
    let input = format!("User-Name = \"ann\"\nUser-Password = \"{PASSWORD}\"\n");
    let (_, out) = radclient(&s.radius, "auth", SECRET, &input).await;
    assert_eq!(answered(&out), "no reply", "without Message-Authenticator: {out}");
    let after = (outcome_count(&s, "dropped_bad_message_authenticator").await, outcome_count(&s, "accepted").await);
    assert_eq!(after.1, before.1, "nothing accepted");
    assert!(after.0 >= before.0 + 2, "both counted as dropped: {before:?} → {after:?}");

    // Suspended, or out of the group: refused at once.
    let r = s.call("PUT", &format!("/api/systemusers/{ann}"), Some(json!({"suspended": true}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(answered(&pap(&s.radius, SECRET, "ann", PASSWORD).await), "reject");
    let r = s
        .call(
            "POST",
            &format!("/api/v2/usergroups/{wifi}/members"),
            Some(json!({"op": "remove", "type": "user", "id": bob})),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(answered(&pap(&s.radius, SECRET, "bob", PASSWORD).await), "reject");
}

#[tokio::test]
async fn only_known_devices_with_their_current_secret_are_answered() {
    let s = TestServer::start().await;
    // A server for another address: requests from 127.0.0.1 come from no known device.
    let other = radius_server(&s, "127.0.0.2").await;
    let ann = user(&s, "ann").await;
    associate(&s, other["id"].as_str().unwrap(), "user", &ann).await;
    let out = pap(&s.radius, SECRET, "ann", PASSWORD).await;
    assert_eq!(answered(&out), "no reply", "{out}");
    assert!(outcome_count(&s, "dropped_unknown_client").await >= 1);

    // The device's server, then a new secret: the old one is no longer answered.
    let server = radius_server(&s, "127.0.0.1").await;
    let id = server["id"].as_str().unwrap().to_string();
    associate(&s, &id, "user", &ann).await;
    assert_eq!(answered(&pap(&s.radius, SECRET, "ann", PASSWORD).await), "accept");
    let r = s.call("PUT", &format!("/api/radiusservers/{id}"), Some(json!({"sharedSecret": "a-new-s3cret"}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body.get("sharedSecret").is_none());
    assert_eq!(answered(&pap(&s.radius, SECRET, "ann", PASSWORD).await), "no reply");
    assert_eq!(answered(&pap(&s.radius, "a-new-s3cret", "ann", PASSWORD).await), "accept");
    // Deleted: no longer answered.
    assert_eq!(s.call("DELETE", &format!("/api/radiusservers/{id}"), None).await.status, 200);
    assert_eq!(answered(&pap(&s.radius, "a-new-s3cret", "ann", PASSWORD).await), "no reply");
}

#[tokio::test]
async fn radius_servers_are_checked_as_they_are_written() {
    let s = TestServer::start().await;
    let post = |body: Value| {
        let s = &s;
        async move { s.call("POST", "/api/radiusservers", Some(body)).await }
    };
    let rows = [
        (json!({"name": "a", "networkSourceIp": "10.0.0.1"}), 400, "sharedSecret"),
        (json!({"name": "a", "networkSourceIp": "ten", "sharedSecret": "x"}), 400, "networkSourceIp"),
        (json!({"name": "", "networkSourceIp": "10.0.0.1", "sharedSecret": "x"}), 400, "name"),
        (json!({"name": "a", "networkSourceIp": "10.0.0.1", "sharedSecret": ""}), 400, "sharedSecret"),
        (json!({"name": "a", "networkSourceIp": "10.0.0.1", "sharedSecret": "x", "mfa": "SOMETIMES"}), 400, "mfa"),
        (json!({"name": "a", "networkSourceIp": "10.0.0.1", "sharedSecret": "x", "color": "red"}), 400, "color"),
        (json!({"name": "a", "networkSourceIp": "10.0.0.1", "sharedSecret": "x"}), 200, ""),
        (json!({"name": "b", "networkSourceIp": "10.0.0.1", "sharedSecret": "y"}), 409, "networkSourceIp"),
    ];
    for (body, status, names) in rows {
        let r = post(body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {:?}", r.body);
        assert!(r.body.to_string().contains(names), "{body}: {:?} names {names}", r.body);
    }
    let r = s.call("GET", "/api/radiusservers", None).await;
    assert_eq!(r.body["totalCount"], 1, "{:?}", r.body);
    assert_eq!(r.body["results"][0]["mfa"], "DISABLED");
    assert!(!r.body.to_string().contains("sharedSecret"), "{:?}", r.body);
}
