//! The RADIUS front end, driven by FreeRADIUS's own clients (`radtest` and `radclient`, from
//! Debian's freeradius-utils) against an in-process tetherd: PAP answered by the directory,
//! and every request that must not be answered (unknown address, wrong secret, no
//! Message-Authenticator) dropped and counted.

use serde_json::{json, Value};
use tether_testkit::radius::{eapol_test, radtest};
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

/// Fails when any file of the server's data directory (the database and its WAL) holds
/// `needle`: secrets are sealed at rest.
fn assert_not_on_disk(s: &TestServer, needle: &[u8]) {
    assert!(!on_disk(s, needle), "a secret in clear in {}", s.dir.path().display());
}

fn on_disk(s: &TestServer, needle: &[u8]) -> bool {
    std::fs::read_dir(s.dir.path()).unwrap().any(|e| {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

/// Base32 (RFC 4648) back to bytes.
fn unbase32(s: &str) -> Vec<u8> {
    let (mut out, mut buf, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes() {
        let v = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".iter().position(|a| *a == c).unwrap() as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buf >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}

/// The value of the `/metrics` series `series` (name and labels), 0 when absent.
async fn metric(s: &TestServer, series: &str) -> u64 {
    s.metric(series).await.map_or(0, |v| v as u64)
}

/// The count of RADIUS datagrams with `outcome`.
async fn outcome_count(s: &TestServer, outcome: &str) -> u64 {
    metric(s, &format!("tether_radius_request_seconds_count{{outcome=\"{outcome}\"}}")).await
}

/// Passwords answered from the credential memory (`hit`) and checked against their hash (`miss`).
async fn credential_checks(s: &TestServer) -> (u64, u64) {
    let series = |outcome: &str| format!("tether_credential_cache_total{{outcome=\"{outcome}\"}}");
    (metric(s, &series("hit")).await, metric(s, &series("miss")).await)
}

/// The office's RADIUS server (127.0.0.1) and who gets in: ann directly, bob through the
/// group wifi (whose members are put on VLAN 20), carl not at all.
struct Office {
    server: Value,
    ann: String,
    bob: String,
    wifi: String,
}

async fn office(s: &TestServer) -> Office {
    let server = radius_server(s, "127.0.0.1").await;
    let id = server["id"].as_str().unwrap().to_string();
    let ann = user(s, "ann").await;
    let bob = user(s, "bob").await;
    user(s, "carl").await;
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
    associate(s, &id, "user", &ann).await;
    associate(s, &id, "user_group", &wifi).await;
    Office { server, ann, bob, wifi }
}

#[tokio::test]
async fn pap_is_answered_by_the_directory() {
    let s = TestServer::start().await;
    let Office { server, ann, bob, wifi } = office(&s).await;
    assert!(server.get("sharedSecret").is_none(), "the secret is never read back: {server}");

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
    assert_not_on_disk(&s, SECRET.as_bytes());
    let r =
        s.call("PUT", &format!("/api/radiusservers/{id}"), Some(json!({"sharedSecret": "a-new-radius-s3cret"}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body.get("sharedSecret").is_none());
    assert_eq!(answered(&pap(&s.radius, SECRET, "ann", PASSWORD).await), "no reply");
    assert_eq!(answered(&pap(&s.radius, "a-new-radius-s3cret", "ann", PASSWORD).await), "accept");
    // Deleted: no longer answered.
    assert_eq!(s.call("DELETE", &format!("/api/radiusservers/{id}"), None).await.status, 200);
    assert_eq!(answered(&pap(&s.radius, "a-new-radius-s3cret", "ann", PASSWORD).await), "no reply");
}

#[tokio::test]
async fn radius_servers_are_checked_as_they_are_written() {
    let s = TestServer::start().await;
    let post = |body: Value| {
        let s = &s;
        async move { s.call("POST", "/api/radiusservers", Some(body)).await }
    };
    let long = "sixteen-chars-ok";
    let rows = [
        (json!({"name": "a", "networkSourceIp": "10.0.0.1"}), 400, "sharedSecret"),
        (json!({"name": "a", "networkSourceIp": "ten", "sharedSecret": long}), 400, "networkSourceIp"),
        (json!({"name": "", "networkSourceIp": "10.0.0.1", "sharedSecret": long}), 400, "name"),
        (json!({"name": "a", "networkSourceIp": "10.0.0.1", "sharedSecret": ""}), 400, "sharedSecret"),
        (json!({"name": "a", "networkSourceIp": "10.0.0.1", "sharedSecret": "fifteen-chars-x"}), 400, "16 to 128"),
        (json!({"name": "a", "networkSourceIp": "10.0.0.1", "sharedSecret": long, "mfa": "SOMETIMES"}), 400, "mfa"),
        (json!({"name": "a", "networkSourceIp": "10.0.0.1", "sharedSecret": long, "color": "red"}), 400, "color"),
        (json!({"name": "a", "networkSourceIp": "10.0.0.1", "sharedSecret": long}), 200, ""),
        (json!({"name": "b", "networkSourceIp": "10.0.0.1", "sharedSecret": long}), 409, "networkSourceIp"),
        (json!({"name": "c", "networkSourceIp": "::ffff:10.0.0.1", "sharedSecret": long}), 409, "networkSourceIp"),
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

/// The code of a base32 TOTP secret at Unix time `at`, by `oathtool` (Debian's oathtool).
async fn oathtool(secret: &str, at: i64) -> String {
    let out = tokio::process::Command::new("oathtool")
        .args(["--totp", "-b", secret, "-N", &format!("@{at}")])
        .output()
        .await
        .unwrap_or_else(|e| panic!("oathtool (Debian's oathtool) cannot run: {e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The `State` of an Access-Challenge radclient printed, as radclient takes it back.
fn state_of(out: &str) -> String {
    let at = out.find("State = 0x").unwrap_or_else(|| panic!("a State in {out}")) + "State = ".len();
    out[at..].split_whitespace().next().unwrap().to_string()
}

/// A user enrolls TOTP in the portal (the URI and QR code, confirmed by a code from
/// oathtool), the portal login then asks for a code, and a RADIUS server with `mfa` asks by
/// Access-Challenge; every code works once; `resetmfa` removes it.
#[tokio::test]
async fn totp_enrollment_portal_login_and_the_radius_challenge() {
    use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
    let s = TestServer::start().await;
    let server = radius_server(&s, "127.0.0.1").await;
    let id = server["id"].as_str().unwrap().to_string();
    let r = s.call("PUT", &format!("/api/radiusservers/{id}"), Some(json!({"mfa": "ENABLED"}))).await;
    assert_eq!((r.status.as_u16(), r.body["mfa"].as_str()), (200, Some("ENABLED")), "{:?}", r.body);
    let tia = user(&s, "tia").await;
    associate(&s, &id, "user", &tia).await;
    // Not enrolled: ENABLED lets the password alone in.
    assert_eq!(answered(&pap(&s.radius, SECRET, "tia", PASSWORD).await), "accept");

    let c = tether_testkit::pki().client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let cookie = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
    };
    let login =
        || c.post(format!("{}/portal/login", s.url)).form(&[("username", "tia"), ("password", PASSWORD)]).send();
    let r = login().await.unwrap();
    let session = cookie(&r, "tether_portal").expect("a session");
    let html =
        c.get(format!("{}/portal/mfa", s.url)).header(COOKIE, &session).send().await.unwrap().text().await.unwrap();
    let field = |id: &str| {
        let at = html.find(&format!("id=\"{id}\">")).unwrap_or_else(|| panic!("{id} in {html}")) + id.len() + 6;
        html[at..].split('<').next().unwrap().to_string()
    };
    let (secret, uri) = (field("mfa-secret"), field("mfa-uri"));
    assert!(uri.starts_with("otpauth://totp/Tether:tia%40example.test?secret=") && uri.contains(&secret), "{uri}");
    assert!(html.contains("<svg") && html.contains("QR code"), "a QR code");
    let csrf = {
        let at = html.find(r#"name="csrf" value=""#).unwrap() + r#"name="csrf" value=""#.len();
        html[at..].split('"').next().unwrap().to_string()
    };
    let confirm = |code: String| {
        c.post(format!("{}/portal/mfa", s.url))
            .header(COOKIE, &session)
            .form(&[("csrf", csrf.clone()), ("code", code), ("password", PASSWORD.to_string())])
            .send()
    };
    let now = || time::OffsetDateTime::now_utc().unix_timestamp();
    let r = confirm("000000".into()).await.unwrap();
    assert!(r.headers()[LOCATION].to_str().unwrap().contains("err="), "a wrong code");
    let first = oathtool(&secret, now()).await;
    // The session alone is not enough: the password is asked for again.
    let r = c
        .post(format!("{}/portal/mfa", s.url))
        .header(COOKIE, &session)
        .form(&[("csrf", csrf.as_str()), ("code", first.as_str()), ("password", "Not-Her-Passw0rd")])
        .send()
        .await
        .unwrap();
    assert!(r.headers()[LOCATION].to_str().unwrap().contains("err=That+password"), "{:?}", r.headers());
    assert_eq!(s.call("GET", &format!("/api/systemusers/{tia}"), None).await.body["totp_enabled"], false);
    let r = confirm(first.clone()).await.unwrap();
    assert!(r.headers()[LOCATION].to_str().unwrap().contains("msg=Two-step"), "{:?}", r.headers());
    let u = s.call("GET", &format!("/api/systemusers/{tia}"), None).await.body;
    assert_eq!(u["totp_enabled"], true, "{u}");
    let raw = unbase32(&secret);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    assert!(on_disk(&s, b"tia@example.test"), "the scan reads what the store wrote");
    for needle in [secret.as_bytes(), &raw, hex.as_bytes()] {
        assert_not_on_disk(&s, needle);
    }

    // The portal login: the password, then a code (the one just used is refused).
    let r = login().await.unwrap();
    assert_eq!(r.headers()[LOCATION], "/portal/login/code");
    assert!(cookie(&r, "tether_portal").is_none(), "no session before the code");
    let pending = cookie(&r, "tether_mfa").expect("the password step");
    let code = |code: String| {
        c.post(format!("{}/portal/login/code", s.url)).header(COOKIE, &pending).form(&[("code", code)]).send()
    };
    let r = code(first.clone()).await.unwrap();
    assert!(r.headers()[LOCATION].to_str().unwrap().contains("err=code"), "a code is used once");
    // The server's clock a minute on: the app's code of then.
    s.advance(time::Duration::seconds(60));
    let r = code(oathtool(&secret, now() + 60).await).await.unwrap();
    assert_eq!(r.headers()[LOCATION], "/portal/profile");
    assert!(cookie(&r, "tether_portal").is_some(), "the session opens");

    // RADIUS: the password, a challenge, the code with its State.
    let out = pap(&s.radius, SECRET, "tia", PASSWORD).await;
    assert!(out.contains("Received Access-Challenge") && out.contains("Reply-Message"), "{out}");
    let state = state_of(&out);
    s.advance(time::Duration::seconds(60));
    let reply = |state: &str, code: &str| {
        format!("User-Name = \"tia\"\nUser-Password = \"{code}\"\nState = {state}\nMessage-Authenticator = 0x00\n")
    };
    let next = oathtool(&secret, now() + 120).await;
    let (_, out) = radclient(&s.radius, "auth", SECRET, &reply(&state, &next)).await;
    assert_eq!(answered(&out), "accept", "{out}");
    let (_, out) = radclient(&s.radius, "auth", SECRET, &reply(&state, &next)).await;
    assert_eq!(answered(&out), "reject", "a State is answered once: {out}");
    let state = state_of(&pap(&s.radius, SECRET, "tia", PASSWORD).await);
    let (_, out) = radclient(&s.radius, "auth", SECRET, &reply(&state, "123456")).await;
    assert_eq!(answered(&out), "reject", "a wrong code: {out}");
    assert!(outcome_count(&s, "challenged").await >= 2);
    // EAP-TTLS (Wi-Fi) has no way to ask for a code: refused, never in on the password alone
    // (which was checked, and right: answered from the credential memory).
    let checks = credential_checks(&s).await;
    let (ok, out) = eapol_test(&s.radius, SECRET, "tia", PASSWORD).await;
    assert!(!ok, "an enrolled user by EAP: {out}");
    assert_eq!(credential_checks(&s).await, (checks.0 + 1, checks.1), "the password was right");

    // resetmfa: the password alone again (ENABLED); REQUIRED refuses users without TOTP.
    let r = s.call("POST", &format!("/api/systemusers/{tia}/resetmfa"), None).await;
    assert_eq!((r.status.as_u16(), &r.body["totp_enabled"]), (200, &json!(false)), "{:?}", r.body);
    assert_eq!(answered(&pap(&s.radius, SECRET, "tia", PASSWORD).await), "accept");
    let (ok, out) = eapol_test(&s.radius, SECRET, "tia", PASSWORD).await;
    assert!(ok, "not enrolled, by EAP: {out}");
    let r = s.call("PUT", &format!("/api/radiusservers/{id}"), Some(json!({"mfa": "REQUIRED"}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(answered(&pap(&s.radius, SECRET, "tia", PASSWORD).await), "reject");
    // totp_enabled cannot be written by an administrator.
    let r = s.call("PUT", &format!("/api/systemusers/{tia}"), Some(json!({"totp_enabled": true}))).await;
    assert_eq!(r.body["totp_enabled"], false, "{:?}", r.body);
}

/// docs/radius/openvpn-verify.sh, as written, with its configuration as the doc says: the
/// right password gets in, a wrong one and a user not associated do not, and a password
/// with quotes survives the trip.
#[tokio::test]
async fn the_openvpn_script_lets_in_exactly_the_right_logins() {
    let s = TestServer::start().await;
    let server = radius_server(&s, "127.0.0.1").await;
    let id = server["id"].as_str().unwrap().to_string();
    let odd = "Quo\"te\\d-Passw0rd";
    let vpn = s.user(json!({"username": "vpn.user", "email": "vpn@example.test", "password": odd})).await;
    user(&s, "other").await;
    associate(&s, &id, "user", &vpn).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("tether-radius.secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let conf = dir.path().join("tether-radius.conf");
    std::fs::write(&conf, format!("TETHER_RADIUS={}\nTETHER_RADIUS_SECRET_FILE={}\n", s.radius, secret_file.display()))
        .unwrap();
    let script = tether_testkit::workspace_root().join("docs/radius/openvpn-verify.sh");
    let verify = |user: &str, password: &str| {
        let creds = dir.path().join("creds");
        std::fs::write(&creds, format!("{user}\n{password}\n")).unwrap();
        let (script, conf) = (script.clone(), conf.clone());
        async move {
            let out = tokio::process::Command::new("sh")
                .arg(&script)
                .arg(&creds)
                .env("TETHER_RADIUS_CONF", &conf)
                .output()
                .await
                .unwrap();
            out.status.code()
        }
    };
    assert_eq!(verify("vpn.user", odd).await, Some(0), "the right password");
    assert_eq!(verify("vpn.user", "Wrong-Passw0rd").await, Some(1));
    assert_eq!(verify("other", PASSWORD).await, Some(1), "not associated");
}

/// 60 wrong passwords through one device, each for another username (a password spray, or
/// 60 users mistyping), lock neither the device's address nor anyone else; the per-username
/// limit still locks the name guessed at.
#[tokio::test]
async fn wrong_passwords_through_a_device_lock_no_one_else_out() {
    let s = TestServer::start().await;
    let server = radius_server(&s, "127.0.0.1").await;
    let id = server["id"].as_str().unwrap().to_string();
    let ann = user(&s, "ann").await;
    let eve = user(&s, "eve").await;
    associate(&s, &id, "user", &ann).await;
    associate(&s, &id, "user", &eve).await;
    let spray: String = (0..60)
        .map(|i| format!("User-Name = \"u{i}\"\nUser-Password = \"Wrong-{i}\"\nMessage-Authenticator = 0x00\n\n"))
        .collect();
    let (_, out) = radclient(&s.radius, "auth", SECRET, &spray).await;
    assert_eq!(out.matches("Received Access-Reject").count(), 60, "{out}");
    assert_eq!(answered(&pap(&s.radius, SECRET, "ann", PASSWORD).await), "accept", "the device is not locked");
    for _ in 0..10 {
        assert_eq!(answered(&pap(&s.radius, SECRET, "eve", "Wrong-Passw0rd").await), "reject");
    }
    assert_eq!(answered(&pap(&s.radius, SECRET, "eve", PASSWORD).await), "reject", "eve's name is locked");
}

#[tokio::test]
async fn wpa_enterprise_logins_by_eap_ttls_with_pap_inside() {
    let s = TestServer::start().await;
    let Office { ann, .. } = office(&s).await;

    let (ok, out) = eapol_test(&s.radius, SECRET, "ann", PASSWORD).await;
    assert!(ok, "ann gets on the network: {out}");
    assert!(out.contains("MPPE keys OK: 1  mismatch: 0"), "the access point gets the link's keys: {out}");
    // Both keys, against the keying material the supplicant derived (RFC 5281 §8): the
    // first 32 bytes are what the access point receives, the next what it sends.
    let hex = |prefix: &str| {
        let line = out.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix} in {out}"));
        line.split_once("): ").unwrap().1.replace(' ', "")
    };
    let derived = hex("EAP-TTLS: Derived key - hexdump(len=64)");
    assert_eq!(hex("MS-MPPE-Recv-Key (crypt) - hexdump(len=32)"), derived[..64]);
    assert_eq!(hex("MS-MPPE-Send-Key (sign) - hexdump(len=32)"), derived[64..]);
    assert!(out.contains("Flags 0xc0"), "the server's first flight in fragments (Length, More): {out}");
    let (ok, out) = eapol_test(&s.radius, SECRET, "bob", PASSWORD).await;
    assert!(ok, "bob, through the group: {out}");
    // The group's VLAN comes with the Accept (eapol_test prints the attributes it received).
    for want in
        ["Attribute 64 (Tunnel-Type)", "Attribute 65 (Tunnel-Medium-Type)", "Attribute 81 (Tunnel-Private-Group-Id)"]
    {
        assert!(out.contains(want), "{want} in {out}");
    }
    let table = [
        ("ann", "wrong-password", "a wrong password"),
        ("carl", PASSWORD, "a user not associated with the server"),
        ("nobody", PASSWORD, "no such user"),
    ];
    for (who, pw, why) in table {
        let (ok, out) = eapol_test(&s.radius, SECRET, who, pw).await;
        assert!(!ok, "{why} is refused: {out}");
        assert!(out.contains("EAP-Failure") || out.contains("CTRL-EVENT-EAP-FAILURE"), "{why}: {out}");
    }
    // An Identity response carrying a stale State (a supplicant starting over) begins anew
    // (the EAP-TTLS Start: code 1, type 21, flags 0x20).
    let input = "User-Name = \"ann\"\nEAP-Message = 0x0207000801616e6e\nState = 0x000102030405060708090a0b0c0d0e0f\n\
                 Message-Authenticator = 0x00\n";
    let (_, out) = radclient(&s.radius, "auth", SECRET, input).await;
    assert!(out.contains("Received Access-Challenge") && out.contains("EAP-Message = 0x010800061520"), "{out}");

    // A device with the wrong secret is not answered at all.
    let before = outcome_count(&s, "dropped_bad_message_authenticator").await;
    let (ok, _) = eapol_test(&s.radius, "not-the-shared-secret", "ann", PASSWORD).await;
    assert!(!ok);
    assert!(outcome_count(&s, "dropped_bad_message_authenticator").await > before);
    // The conversations were counted: each TLS round trip is a challenge.
    assert!(outcome_count(&s, "challenged").await >= 8, "TLS round trips");

    // Suspended: refused at once.
    let r = s.call("PUT", &format!("/api/systemusers/{ann}"), Some(json!({"suspended": true}))).await;
    assert_eq!(r.status, 200);
    let (ok, out) = eapol_test(&s.radius, SECRET, "ann", PASSWORD).await;
    assert!(!ok, "suspended: {out}");
}

/// A hash captured from AD (SHA-512-crypt here) is replaced with Tether's own at the first
/// login; the next login is answered from the credential memory, not by a second check of
/// the new argon2id hash.
#[tokio::test]
async fn a_captured_hash_is_upgraded_once_and_the_next_login_costs_no_hash() {
    let s = TestServer::start().await;
    let server = radius_server(&s, "127.0.0.1").await;
    let dee = user(&s, "dee").await;
    associate(&s, server["id"].as_str().unwrap(), "user", &dee).await;
    // `openssl passwd -6 -salt tethersalt 'Radius-Passw0rd!'`
    let captured =
        "$6$tethersalt$R7icXYXno9VzWvs8ZXvj44Z4RfXHrhPtJM6bPqNPQ/TyZrKz..4pmZnSFgadd8k0akIUilQg7gd3khTKLUe/p.";
    let u = s.repo().user(&dee).await.unwrap().unwrap();
    s.repo().save_user(&u, Some(captured)).await.unwrap();
    assert_eq!(answered(&pap(&s.radius, SECRET, "dee", PASSWORD).await), "accept");
    let upgraded = s.repo().password_hash(&dee).await.unwrap().unwrap();
    assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
    assert_eq!(credential_checks(&s).await, (0, 1), "the captured hash was checked");
    assert_eq!(answered(&pap(&s.radius, SECRET, "dee", PASSWORD).await), "accept");
    assert_eq!(credential_checks(&s).await, (1, 1), "the new hash was not checked again");
    assert_eq!(answered(&pap(&s.radius, SECRET, "dee", "Wrong-Passw0rd!").await), "reject");
    assert_eq!(credential_checks(&s).await, (1, 2));
}

/// EAP-Start (an empty EAP-Message, RFC 3579 §2.1), which radclient cannot send (it leaves
/// empty attributes out): sent with the project's own codec, answered by an Access-Challenge
/// asking for the identity.
#[tokio::test]
async fn eap_start_is_answered_with_an_identity_request() {
    use tether_server::radius::packet::{self, attr, Code, Packet};
    let s = TestServer::start().await;
    radius_server(&s, "127.0.0.1").await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let auth = [9u8; 16];
    let attrs = vec![(attr::USER_NAME, b"ann".to_vec()), (attr::EAP_MESSAGE, Vec::new())];
    let req = packet::request(Code::AccessRequest, 5, &auth, &attrs, SECRET.as_bytes());
    socket.send_to(&req, &s.radius).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(std::time::Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    assert!(packet::answer_is_genuine(&buf[..n], &auth, SECRET.as_bytes()));
    let answer = Packet::parse(&buf[..n]).unwrap();
    assert_eq!(answer.code, Code::AccessChallenge);
    let eap = answer.get(attr::EAP_MESSAGE).expect("an EAP-Message");
    assert_eq!((eap[0], &eap[2..]), (1, &[0, 5, 1][..]), "EAP-Request/Identity: {eap:?}");
}
