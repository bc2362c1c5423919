//! The console and portal over plain HTTP: sessions, CSRF, security headers, escaping, and
//! the portal's password rules. (The browser flows are in tether-agent/tests/console_e2e.rs.)

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;
use tether_testkit::TestServer;

fn client() -> reqwest::Client {
    tether_testkit::pki().client_builder().redirect(Policy::none()).build().unwrap()
}

/// The session cookie (`name=value`) a login answered with.
fn session_cookie(r: &reqwest::Response) -> String {
    let c = r.headers().get(SET_COOKIE).expect("a session cookie").to_str().unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path="] {
        assert!(c.contains(flag), "{c}");
    }
    c.split(';').next().unwrap().to_string()
}

fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + r#"name="csrf" value=""#.len();
    html[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn console_sessions_csrf_headers_and_escaping() {
    let s = TestServer::start().await;
    let c = client();
    let r = c.get(format!("{}/console/users", s.url)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()[LOCATION].to_str().unwrap()), (303, "/console/login"));
    // A read-only key cannot log in; a wrong one neither.
    let ro = s.call("POST", "/api/v2/apikeys", Some(json!({"name": "ro", "role": "read_only"}))).await.body["key"]
        .as_str()
        .unwrap()
        .to_string();
    for key in [ro.as_str(), "nope"] {
        let r = c.post(format!("{}/console/login", s.url)).form(&[("apikey", key)]).send().await.unwrap();
        assert!(r.headers().get(SET_COOKIE).is_none());
        assert!(r.headers()[LOCATION].to_str().unwrap().contains("err="), "{key}");
    }
    let r = c.post(format!("{}/console/login", s.url)).form(&[("apikey", s.api_key.as_str())]).send().await.unwrap();
    let cookie = session_cookie(&r);

    // A user whose name would be markup is shown as text.
    let id = s.user(json!({"username": "evil", "email": "evil@x.io", "firstname": "<script>x</script>"})).await;
    let r = c.get(format!("{}/console/users", s.url)).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
    let html = r.text().await.unwrap();
    assert!(html.contains("&#60;script&#62;x&#60;/script&#62;") || html.contains("&lt;script&gt;"), "escaped");
    assert!(!html.contains("<script>x</script>"));
    let token = csrf_of(&html);

    // A form without the session's token changes nothing.
    let bulk = format!("{}/console/users/bulk", s.url);
    for bad in [None, Some("0000")] {
        let mut form = vec![("ids", id.as_str()), ("action", "suspend")];
        if let Some(t) = bad {
            form.push(("csrf", t));
        }
        let r = c.post(&bulk).header(COOKIE, &cookie).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 403, "{bad:?}");
    }
    assert_eq!(s.call("GET", &format!("/api/systemusers/{id}"), None).await.body["state"], "ACTIVATED");
    let form = [("ids", id.as_str()), ("action", "suspend"), ("csrf", token.as_str())];
    let r = c.post(&bulk).header(COOKIE, &cookie).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()[LOCATION].to_str().unwrap().contains("msg="));
    assert_eq!(s.call("GET", &format!("/api/systemusers/{id}"), None).await.body["state"], "SUSPENDED");
    // The change is in the user's history under the admin's key.
    let h = s.call("GET", &format!("/api/v2/users/{id}/history"), None).await.body;
    assert_eq!(h.as_array().unwrap().last().unwrap()["actor"]["name"], "bootstrap");

    // Logging out ends the session.
    let r = c
        .post(format!("{}/console/logout", s.url))
        .header(COOKIE, &cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = c.get(format!("{}/console/users", s.url)).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(r.status(), 303, "the old cookie no longer works");
}

#[tokio::test]
async fn portal_login_and_password_rules() {
    let s = TestServer::start().await;
    let c = client();
    let id =
        s.user(json!({"username": "pat", "email": "pat@x.io", "firstname": "Pat", "password": "Start-Passw0rd"})).await;
    let login = |pw: &'static str| {
        c.post(format!("{}/portal/login", s.url)).form(&[("username", "pat"), ("password", pw)]).send()
    };
    let r = login("Wrong-Passw0rd").await.unwrap();
    assert!(r.headers().get(SET_COOKIE).is_none());
    let r = login("Start-Passw0rd").await.unwrap();
    let cookie = session_cookie(&r);
    let page = |c: &reqwest::Client, cookie: &str| {
        c.get(format!("{}/portal/profile", s.url)).header(COOKIE, cookie.to_string()).send()
    };
    let html = page(&c, &cookie).await.unwrap().text().await.unwrap();
    assert!(html.contains("At least 8 characters"), "the policy is shown");
    let token = csrf_of(&html);
    let change = |cur: &'static str, new: &'static str, again: &'static str| {
        c.post(format!("{}/portal/password", s.url))
            .header(COOKIE, cookie.clone())
            .form(&[("csrf", token.as_str()), ("current", cur), ("new", new), ("again", again)])
            .send()
    };
    // (current, new, again, what the redirect says)
    let rows = [
        ("Wrong-Passw0rd", "Next-Passw0rd1", "Next-Passw0rd1", "current+password+is+wrong"),
        ("Start-Passw0rd", "Next-Passw0rd1", "Other-Passw0rd1", "differ"),
        ("Start-Passw0rd", "short", "short", "at+least+8"),
        ("Start-Passw0rd", "Next-Passw0rd1", "Next-Passw0rd1", "msg=Password+changed"),
    ];
    for (cur, new, again, want) in rows {
        let r = change(cur, new, again).await.unwrap();
        let to = r.headers()[LOCATION].to_str().unwrap().to_string();
        assert!(to.contains(want), "{new}: {to}");
    }
    let v = s.call("POST", "/api/v2/auth/verify", Some(json!({"username": "pat", "password": "Next-Passw0rd1"}))).await;
    assert_eq!(v.status, 200);
    // With AD as the password authority, the portal refuses and says why.
    let d = s.call("POST", "/api/v2/activedirectories", Some(json!({"domain": "DC=x,DC=test"}))).await;
    let ad = json!({"id": d.body["id"], "name": "ActiveDirectory"});
    assert_eq!(
        s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"passwordAuthority": ad}))).await.status,
        200
    );
    // The password change ended the session it was made in (the user went on in a new one):
    // log in again for the rest.
    let cookie = session_cookie(&login("Next-Passw0rd1").await.unwrap());
    let html = page(&c, &cookie).await.unwrap().text().await.unwrap();
    assert!(html.contains("Active Directory manages your password"), "{html}");
    let token = csrf_of(&html);
    let change = |cur: &'static str, new: &'static str, again: &'static str| {
        c.post(format!("{}/portal/password", s.url))
            .header(COOKIE, cookie.clone())
            .form(&[("csrf", token.as_str()), ("current", cur), ("new", new), ("again", again)])
            .send()
    };
    let r = change("Next-Passw0rd1", "Third-Passw0rd1", "Third-Passw0rd1").await.unwrap();
    assert!(r.headers()[LOCATION].to_str().unwrap().contains("err="));
}

#[tokio::test]
async fn activation_link_sets_the_first_password_once() {
    // The link exists only in the email: the test reads it from the relay.
    let (relay, mails) = tether_testkit::smtp_relay().await;
    let s = TestServer::start_with(|c| {
        c.smtp = Some(tether_server::mail::SmtpConfig { relay, from: "tether@example.com".into() })
    })
    .await;
    let link_to = |to: &'static str| {
        let mails = mails.clone();
        async move {
            for _ in 0..100 {
                let found = mails.lock().unwrap().iter().rev().find(|m| m.contains(&format!("To: {to}"))).cloned();
                if let Some(m) = found {
                    return m
                        .split_whitespace()
                        .find(|w| w.starts_with("/portal/activate/"))
                        .expect("a link in the email")
                        .to_string();
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("no email to {to}");
        }
    };
    let c = client();
    let id = s.user(json!({"username": "newbie", "email": "newbie@x.io", "firstname": "New"})).await;
    // Binding a user without a password to a syncing domain sends the activation email.
    let domain =
        s.create("/api/v2/activedirectories", json!({"domain": "DC=act,DC=test", "useCase": "TWOWAYSYNC"})).await;
    s.bind_user(&domain, &id).await;
    let n = s.call("GET", "/api/v2/notifications", None).await.body;
    let mail =
        n.as_array().unwrap().iter().find(|m| m["template"] == "activation").expect("an activation email").clone();
    assert!(!mail.to_string().contains("/portal/activate/"), "the outbox keeps no link: {mail}");
    let path = link_to("newbie@x.io").await;
    let html = c.get(format!("{}{path}", s.url)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Welcome, newbie") && html.contains("At least 8 characters"), "{html}");
    let post = |new: &'static str, again: &'static str| {
        c.post(format!("{}{path}", s.url)).form(&[("new", new), ("again", again)]).send()
    };
    // (new, again, where it leads)
    let r = post("Weak", "Weak").await.unwrap();
    assert!(r.headers()[LOCATION].to_str().unwrap().contains("err="), "the policy applies");
    let r = post("Welcome-Passw0rd", "Welcome-Passw0rd").await.unwrap();
    let to = r.headers()[LOCATION].to_str().unwrap().to_string();
    assert!(to.starts_with("/portal/profile"), "{to}");
    session_cookie(&r);
    let v = s
        .call("POST", "/api/v2/auth/verify", Some(json!({"username": "newbie", "password": "Welcome-Passw0rd"})))
        .await;
    assert_eq!(v.status, 200);
    // The password goes to AD with the rest of the user.
    let h = s.call("GET", &format!("/api/v2/users/{id}/history"), None).await.body;
    assert_eq!(h.as_array().unwrap().last().unwrap()["changes"]["password"][1], "changed");
    // Single use.
    let r = post("Other-Passw0rd1", "Other-Passw0rd1").await.unwrap();
    assert!(r.headers()[LOCATION].to_str().unwrap().starts_with("/portal/login?err="));
    // A link past its lifetime is refused.
    let id2 = s.user(json!({"username": "late", "email": "late@x.io"})).await;
    s.bind_user(&domain, &id2).await;
    let path2 = link_to("late@x.io").await;
    s.advance(time::Duration::hours(73));
    let r = c.get(format!("{}{path2}", s.url)).send().await.unwrap();
    assert!(r.headers()[LOCATION].to_str().unwrap().contains("expired"));
}

/// The LDAP page lists who is associated with the LDAP server; a user's page says how the
/// user stands in LDAP, with its bind DN and unix ids.
#[tokio::test]
async fn ldap_server_and_a_users_standing_in_ldap() {
    let s = TestServer::start().await;
    let c = client();
    let r = c.post(format!("{}/console/login", s.url)).form(&[("apikey", s.api_key.as_str())]).send().await.unwrap();
    let cookie = session_cookie(&r);
    let server = s.call("GET", "/api/v2/ldapservers", None).await.body[0]["id"].as_str().unwrap().to_string();
    let reader = s.user(json!({"username": "reader", "email": "r@x.io", "ldap_binding_user": true})).await;
    let ann = s.user(json!({"username": "ann", "email": "a@x.io", "unix_uid": 7001, "unix_guid": 7002})).await;
    let bob = s.user(json!({"username": "bob", "email": "b@x.io"})).await;
    let ops = s.create("/api/v2/usergroups", json!({"name": "ops"})).await;
    s.add_member(&ops, &ann).await;
    for (kind, id) in [("user", &reader), ("user_group", &ops)] {
        let path = format!("/api/v2/ldapservers/{server}/associations");
        let r = s.call("POST", &path, Some(json!({"op": "add", "type": kind, "id": id}))).await;
        assert_eq!(r.status, 204);
    }
    let get = |path: String| {
        let (c, cookie) = (c.clone(), cookie.clone());
        async move {
            let r = c.get(path).header(COOKIE, &cookie).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let html = get(format!("{}/console/ldap", s.url)).await;
    for want in [
        "User groups in LDAP (1)",
        &format!("href=\"/console/groups/{ops}\">ops</a></td><td>1</td>"),
        "cn=ops,ou=Groups,o=tether",
        "Users in LDAP directly (1)",
        &format!("href=\"/console/users/{reader}\">reader</a>"),
        "uid=reader,ou=Users,o=tether",
        "REMOVE",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    assert!(!html.contains(">ann</a>"), "ann is in LDAP through ops, not directly");
    let html = get(format!("{}/console/users/{ann}", s.url)).await;
    for want in ["yes, through ops", "<code>uid=ann,ou=Users,o=tether</code>", "7001 / 7002", "its own entry only"] {
        assert!(html.contains(want), "{want} in {html}");
    }
    let html = get(format!("{}/console/users/{reader}", s.url)).await;
    assert!(html.contains("yes, directly") && html.contains("yes (LDAP binding user)"), "{html}");
    let html = get(format!("{}/console/users/{bob}", s.url)).await;
    assert!(html.contains("<dt>In LDAP</dt><dd>no "), "{html}");
}

/// The RADIUS page lists each server with its device, MFA policy, groups and users (never its
/// secret); a user's page says whether TOTP is enrolled.
#[tokio::test]
async fn radius_servers_and_a_users_second_factor() {
    let s = TestServer::start().await;
    let c = client();
    let r = c.post(format!("{}/console/login", s.url)).form(&[("apikey", s.api_key.as_str())]).send().await.unwrap();
    let cookie = session_cookie(&r);
    let body = json!({"name": "office wifi", "networkSourceIp": "10.1.2.3", "sharedSecret": "never-shown-s3cret",
                      "mfa": "REQUIRED"});
    let server = s.call("POST", "/api/radiusservers", Some(body)).await.body["id"].as_str().unwrap().to_string();
    let ann = s.user(json!({"username": "ann", "email": "a@x.io"})).await;
    let wifi = s.create("/api/v2/usergroups", json!({"name": "wifi-users"})).await;
    s.add_member(&wifi, &ann).await;
    for (kind, id) in [("user", &ann), ("user_group", &wifi)] {
        let path = format!("/api/v2/radiusservers/{server}/associations");
        let r = s.call("POST", &path, Some(json!({"op": "add", "type": kind, "id": id}))).await;
        assert_eq!(r.status, 204);
    }
    let get = |path: String| {
        let (c, cookie) = (c.clone(), cookie.clone());
        async move {
            let r = c.get(path).header(COOKIE, &cookie).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let html = get(format!("{}/console/radius", s.url)).await;
    for want in [
        "office wifi",
        "<code>10.1.2.3</code>",
        "<dd>REQUIRED</dd>",
        &format!("href=\"/console/groups/{wifi}\">wifi-users</a></td><td>1</td>"),
        &format!("href=\"/console/users/{ann}\">ann</a>"),
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    assert!(!html.contains("never-shown-s3cret"), "the shared secret is never shown");
    let html = get(format!("{}/console/users/{ann}", s.url)).await;
    assert!(html.contains("Not enrolled") && !html.contains("value=\"resetmfa\""), "{html}");
}
