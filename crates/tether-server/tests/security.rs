//! The hardening of issue #13, one test per point: sessions follow their principal (5), the
//! cost of a login is bounded and its answer tells nothing (6), agents stay in their lane
//! (7, in ad_api.rs and import_samba.rs), `/metrics` is cheap and may need a token (9).

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use tether_testkit::TestServer;

fn browser() -> reqwest::Client {
    tether_testkit::pki().client_builder().redirect(Policy::none()).build().unwrap()
}

fn cookie_of(r: &reqwest::Response) -> (String, String) {
    let raw = r.headers().get(SET_COOKIE).expect("a session cookie").to_str().unwrap().to_string();
    (raw.split(';').next().unwrap().to_string(), raw)
}

async fn user(s: &TestServer, name: &str, password: &str) -> String {
    let r = s
        .call(
            "POST",
            "/api/systemusers",
            Some(json!({"username": name, "email": format!("{name}@x.io"), "password": password})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["id"].as_str().unwrap().to_string()
}

async fn portal_login(s: &TestServer, c: &reqwest::Client, name: &str, password: &str) -> reqwest::Response {
    c.post(format!("{}/portal/login", s.url)).form(&[("username", name), ("password", password)]).send().await.unwrap()
}

/// Whether the session cookie still opens the portal.
async fn portal_open(s: &TestServer, c: &reqwest::Client, cookie: &str) -> bool {
    let r = c.get(format!("{}/portal/profile", s.url)).header(COOKIE, cookie).send().await.unwrap();
    r.status() == 200
}

#[tokio::test]
async fn a_console_session_ends_with_its_api_key() {
    let s = TestServer::start().await;
    let c = browser();
    let k = s.call("POST", "/api/v2/apikeys", Some(json!({"name": "temp admin", "role": "admin"}))).await.body;
    let r = c
        .post(format!("{}/console/login", s.url))
        .form(&[("apikey", k["key"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let (cookie, raw) = cookie_of(&r);
    assert!(raw.contains("; Secure"), "served over HTTPS, the cookie is Secure: {raw}");
    let users = |cookie: String| {
        let req = c.get(format!("{}/console/users", s.url)).header(COOKIE, cookie);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(users(cookie.clone()).await, 200);
    let r = s.call("DELETE", &format!("/api/v2/apikeys/{}", k["id"].as_str().unwrap()), None).await;
    assert_eq!(r.status, 204);
    assert_eq!(users(cookie).await, 303, "the deleted key's session is over");
}

#[tokio::test]
async fn a_portal_session_ends_when_the_user_loses_the_right_to_it() {
    let s = TestServer::start().await;
    let c = browser();
    // (what happens to the user, the admin's request)
    // (A lockout comes from AD through the import; the same check ends those sessions.)
    let changes: [(&str, &str, Option<Value>); 3] = [
        ("suspended", "PUT", Some(json!({"suspended": true}))),
        ("password changed", "PUT", Some(json!({"password": "Other-Passw0rd-2"}))),
        ("deleted", "DELETE", None),
    ];
    for (i, (what, method, body)) in changes.into_iter().enumerate() {
        let name = format!("sess{i}");
        let id = user(&s, &name, "Portal-Passw0rd-1").await;
        let r = portal_login(&s, &c, &name, "Portal-Passw0rd-1").await;
        let (cookie, raw) = cookie_of(&r);
        assert!(raw.contains("; Secure"), "{raw}");
        assert!(portal_open(&s, &c, &cookie).await, "{what}: logged in");
        let r = s.call(method, &format!("/api/systemusers/{id}"), body).await;
        assert!(r.status.is_success(), "{what}: {:?}", r.body);
        assert!(!portal_open(&s, &c, &cookie).await, "{what}: the session is over");
    }

    // The user's own change in the portal keeps them logged in (in a new session).
    let id = user(&s, "selfchange", "Portal-Passw0rd-1").await;
    let r = portal_login(&s, &c, "selfchange", "Portal-Passw0rd-1").await;
    let (cookie, _) = cookie_of(&r);
    let html =
        c.get(format!("{}/portal/profile", s.url)).header(COOKIE, &cookie).send().await.unwrap().text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let r = c
        .post(format!("{}/portal/password", s.url))
        .header(COOKIE, &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("current", "Portal-Passw0rd-1"),
            ("new", "Self-Passw0rd-22"),
            ("again", "Self-Passw0rd-22"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.headers()[LOCATION].to_str().unwrap().contains("msg="), "{:?}", r.headers());
    let (renewed, _) = cookie_of(&r);
    assert!(!portal_open(&s, &c, &cookie).await, "the old session ended with the old password");
    assert!(portal_open(&s, &c, &renewed).await, "the user goes on in the new session");
    let _ = id;
}

#[tokio::test]
async fn logout_needs_the_forms_csrf_token() {
    let s = TestServer::start().await;
    let c = browser();
    user(&s, "leaver", "Portal-Passw0rd-1").await;
    let (cookie, _) = cookie_of(&portal_login(&s, &c, "leaver", "Portal-Passw0rd-1").await);
    // A page elsewhere posting to the logout URL (no token) ends nothing.
    let r =
        c.post(format!("{}/portal/logout", s.url)).header(COOKIE, &cookie).form(&[("x", "y")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(portal_open(&s, &c, &cookie).await);

    let r = c.post(format!("{}/console/login", s.url)).form(&[("apikey", s.api_key.as_str())]).send().await.unwrap();
    let (admin, _) = cookie_of(&r);
    let r = c
        .post(format!("{}/console/logout", s.url))
        .header(COOKIE, &admin)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c.get(format!("{}/console/users", s.url)).header(COOKIE, &admin).send().await.unwrap();
    assert_eq!(r.status(), 200, "still logged in");
}

#[tokio::test]
async fn login_pages_show_only_their_own_fixed_messages() {
    let s = TestServer::start().await;
    let c = browser();
    for page in ["/portal/login", "/console/login"] {
        let planted = "Your+account+is+blocked.+Call+0800+123+456";
        let html =
            c.get(format!("{}{page}?err={planted}&msg={planted}", s.url)).send().await.unwrap().text().await.unwrap();
        assert!(!html.contains("0800") && !html.contains("blocked"), "{page} shows text from its link");
        let html = c.get(format!("{}{page}?err=throttled", s.url)).send().await.unwrap().text().await.unwrap();
        assert!(html.contains("Too many failed attempts"), "{page}: the code's own text");
    }
    // A refused login links to a code, not to words.
    let r = portal_login(&s, &c, "nobody", "Wrong-Passw0rd-9").await;
    assert_eq!(r.headers()[LOCATION], "/portal/login?err=denied");
}

#[tokio::test]
async fn parallel_guesses_count_before_their_passwords_are_checked() {
    let s = TestServer::start().await;
    user(&s, "target", "Right-Passw0rd-1").await;
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let req = s
                .client
                .post(format!("{}/api/v2/auth/verify", s.url))
                .header("x-api-key", &s.api_key)
                .json(&json!({"username": "target", "password": format!("Guess-{i}-Pw!")}));
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let checked = answers.iter().filter(|st| **st == 401).count();
    let throttled = answers.iter().filter(|st| **st == 429).count();
    assert_eq!(checked + throttled, 30, "{answers:?}");
    assert!(checked <= 10, "{checked} of 30 parallel guesses had their password checked (limit 10)");
    // Now locked: even the right password is not checked.
    let r = s
        .call("POST", "/api/v2/auth/verify", Some(json!({"username": "target", "password": "Right-Passw0rd-1"})))
        .await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn every_failed_verification_reads_the_same() {
    let s = TestServer::start().await;
    user(&s, "known", "Right-Passw0rd-1").await;
    // A user delegated to a domain whose import agent has not connected yet ("pending").
    let d = s
        .call("POST", "/api/v2/activedirectories", Some(json!({"domain": "DC=p,DC=test", "useCase": "ADASAUTHORITY"})))
        .await;
    let pend = user(&s, "pending", "Right-Passw0rd-1").await;
    let r = s
        .call(
            "PUT",
            &format!("/api/systemusers/{pend}"),
            Some(json!({"delegatedAuthority": {"id": d.body["id"], "name": "ActiveDirectory"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let domain = s.call("GET", &format!("/api/v2/activedirectories/{}", d.body["id"].as_str().unwrap()), None).await;
    assert_eq!(domain.body["delegationState"], "PENDING", "{:?}", domain.body);
    let mut answers = Vec::new();
    for (name, pw) in
        [("known", "Wrong-Passw0rd-1"), ("nobody-here", "Wrong-Passw0rd-1"), ("pending", "Wrong-Passw0rd-1")]
    {
        let r = s.call("POST", "/api/v2/auth/verify", Some(json!({"username": name, "password": pw}))).await;
        answers.push((r.status.as_u16(), r.body));
    }
    assert!(answers.iter().all(|a| *a == (401, json!({"authenticated": false}))), "{answers:?}");
}

#[tokio::test]
async fn captured_hashes_with_absurd_rounds_are_refused_at_import() {
    let s = TestServer::start().await;
    let d = s.call("POST", "/api/v2/activedirectories", Some(json!({"domain": "DC=h,DC=test"}))).await;
    let key = s.connect_key(d.body["id"].as_str().unwrap(), "IMPORT").await;
    let token = "h".repeat(40);
    let r = s
        .call_as(
            None,
            "POST",
            "/api/agent/v1/register",
            Some(json!({"connectKey": key, "token": token, "installedOn": "dc"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let guid = "ab".repeat(16);
    let hash = "{CRYPT}$6$rounds=999999999$saltsalt$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let r = s
        .client
        .post(format!("{}/api/agent/v1/passwords", s.url))
        .bearer_auth(&token)
        .json(&json!([{"guid": guid, "hash": hash}]))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["stored"], 0);
    assert_eq!(body["refused"][0]["guid"], guid.as_str(), "{body}");
    assert!(body["refused"][0]["reason"].as_str().unwrap().contains("rounds"), "{body}");
}

#[tokio::test]
async fn metrics_need_the_token_when_one_is_set_and_count_the_queue() {
    let s = TestServer::start_with(|c| c.metrics_token = Some("scrape-token-0123456789".into())).await;
    let get = |auth: Option<&str>| {
        let mut req = s.client.get(format!("{}/metrics", s.url));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get(None).await.0, 401);
    assert_eq!(get(Some("Bearer wrong-token")).await.0, 401);
    // Queue depth: three users bound to a domain with a sync agent, nothing delivered yet.
    let domain =
        s.create("/api/v2/activedirectories", json!({"domain": "DC=m,DC=test", "useCase": "TWOWAYSYNC"})).await;
    let key = s.connect_key(&domain, "SYNC").await;
    let r = s
        .call_as(None, "POST", "/api/agent/v1/register", Some(json!({"connectKey": key, "token": "m".repeat(40)})))
        .await;
    let agent = r.body["agentId"].as_str().or(r.body["id"].as_str()).unwrap_or_default().to_string();
    for i in 0..3 {
        let id = user(&s, &format!("queued{i}"), "Queue-Passw0rd-1").await;
        s.bind_user(&domain, &id).await;
    }
    let (status, text) = get(Some("Bearer scrape-token-0123456789")).await;
    assert_eq!(status, 200);
    let depth = text
        .lines()
        .find(|l| l.starts_with("tether_sync_queue_depth{") && l.contains(&domain))
        .unwrap_or_else(|| panic!("no queue depth for {agent} in\n{text}"));
    assert!(depth.ends_with(" 3"), "{depth}");
}

#[tokio::test]
async fn activation_links_live_only_in_the_email_and_die_with_the_need_for_them() {
    let (relay, mails) = tether_testkit::smtp_relay().await;
    let s = TestServer::start_with(|c| {
        c.smtp = Some(tether_server::mail::SmtpConfig { relay, from: "tether@example.com".into() })
    })
    .await;
    let c = browser();
    let domain =
        s.create("/api/v2/activedirectories", json!({"domain": "DC=al,DC=test", "useCase": "TWOWAYSYNC"})).await;
    // (what happens after the email was sent, the admin's request)
    let rows: [(&str, &str, Option<Value>); 3] = [
        ("password set by an admin", "PUT", Some(json!({"password": "Admin-Set-Passw0rd"}))),
        ("suspended", "PUT", Some(json!({"suspended": true}))),
        ("deleted", "DELETE", None),
    ];
    for (i, (what, method, body)) in rows.into_iter().enumerate() {
        let name = format!("act{i}");
        let r =
            s.call("POST", "/api/systemusers", Some(json!({"username": name, "email": format!("{name}@x.io")}))).await;
        let id = r.body["id"].as_str().unwrap().to_string();
        s.bind_user(&domain, &id).await;
        let mut link = None;
        for _ in 0..100 {
            link =
                mails.lock().unwrap().iter().find(|m| m.contains(&format!("To: {name}@x.io"))).and_then(|m| {
                    m.split_whitespace().find(|w| w.starts_with("/portal/activate/")).map(str::to_string)
                });
            if link.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let link = link.unwrap_or_else(|| panic!("{what}: no email"));
        let token = link.trim_start_matches("/portal/activate/");
        // Neither the outbox nor any other document holds the token.
        let outbox = s.call("GET", "/api/v2/notifications?limit=100", None).await.body.to_string();
        assert!(!outbox.contains(token), "{what}: the token is in the outbox");
        let user = s.call("GET", &format!("/api/systemusers/{id}"), None).await.body.to_string();
        assert!(!user.contains(token));
        // The link works now...
        let r = c.get(format!("{}{link}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{what}: the fresh link opens");
        // ...and not after the user no longer needs it.
        let r = s.call(method, &format!("/api/systemusers/{id}"), body).await;
        assert!(r.status.is_success(), "{what}: {:?}", r.body);
        let r = c.get(format!("{}{link}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{what}: the link is dead");
        assert!(r.headers()[LOCATION].to_str().unwrap().contains("err=expired"), "{what}");
        if what == "suspended" {
            // Reactivated, the old link stays dead.
            s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"suspended": false}))).await;
            let r = c.get(format!("{}{link}", s.url)).send().await.unwrap();
            assert_eq!(r.status(), 303, "the link died with the suspension");
        }
    }
    // Read-only keys do not read the outbox (addresses, and what was sent to whom).
    let ro = s.call("POST", "/api/v2/apikeys", Some(json!({"name": "ro", "role": "read_only"}))).await.body["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.call_as(Some(&ro), "GET", "/api/v2/notifications", None).await.status, 403);
}

/// A sync agent of a new two-way domain (registered by hand) and a user bound to it.
async fn bound_user_with_sync_agent(s: &TestServer, name: &str) -> (String, String) {
    let domain = s
        .create("/api/v2/activedirectories", json!({"domain": format!("DC={name},DC=test"), "useCase": "TWOWAYSYNC"}))
        .await;
    let key = s.connect_key(&domain, "SYNC").await;
    let token = format!("{name:x<40}");
    let r = s.call_as(None, "POST", "/api/agent/v1/register", Some(json!({"connectKey": key, "token": token}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = s.user(json!({"username": name, "email": format!("{name}@x.io")})).await;
    s.bind_user(&domain, &id).await;
    (id, token)
}

async fn poll(s: &TestServer, token: &str) -> Vec<Value> {
    let r = s
        .client
        .post(format!("{}/api/agent/v1/sync/poll", s.url))
        .bearer_auth(token)
        .json(&json!({"waitMs": 10, "limit": 100}))
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap().as_array().unwrap().clone()
}

#[tokio::test]
async fn feed_passwords_are_sealed_at_rest_and_expire() {
    let s = TestServer::start().await;
    let (id, token) = bound_user_with_sync_agent(&s, "sealed").await;
    let password = "Sealed-At-Rest-Pw-4242";
    let r = s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"password": password}))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The database files (and SQLite's journal) never hold it in clear...
    let mut bytes = Vec::new();
    for f in ["tether.db", "tether.db-wal"] {
        bytes.extend(std::fs::read(s.dir.path().join(f)).unwrap_or_default());
    }
    assert!(bytes.len() > 10_000, "the database was read ({} bytes)", bytes.len());
    assert!(!bytes.windows(password.len()).any(|w| w == password.as_bytes()), "the password is in the database");
    // ...yet the sync agent receives it.
    let entries = poll(&s, &token).await;
    assert!(entries.iter().any(|e| e["objectId"] == id.as_str() && e["password"] == password), "{entries:?}");

    // A password that waited past the bound (7 days) is not delivered, and the user says so.
    let (late, token2) = bound_user_with_sync_agent(&s, "expired").await;
    s.call("PUT", &format!("/api/systemusers/{late}"), Some(json!({"password": "Waited-Too-Long-Pw-1"}))).await;
    s.advance(time::Duration::days(8));
    let entries = poll(&s, &token2).await;
    let mine: Vec<&Value> = entries.iter().filter(|e| e["objectId"] == late.as_str()).collect();
    assert!(!mine.is_empty() && mine.iter().all(|e| e["password"].is_null()), "{mine:?}");
    let u = s.call("GET", &format!("/api/systemusers/{late}"), None).await.body;
    assert!(u["adSyncError"].as_str().unwrap_or_default().contains("not delivered"), "{u}");
}

#[tokio::test]
async fn one_address_guessing_many_usernames_is_stopped() {
    let s = TestServer::start().await;
    let c = browser();
    user(&s, "office", "Office-Passw0rd-1").await;
    // Colleagues behind one address log in all day: successes give their attempt back.
    for _ in 0..60 {
        let r = portal_login(&s, &c, "office", "Office-Passw0rd-1").await;
        assert_eq!(r.headers()[LOCATION], "/portal/profile");
    }
    // One guess at each of 50 usernames from the same address (no username reaches its own limit)...
    for i in 0..50 {
        let r = portal_login(&s, &c, &format!("guess{i}"), "Wrong-Passw0rd-9").await;
        assert_eq!(r.headers()[LOCATION], "/portal/login?err=denied", "guess {i}");
    }
    // ...and the address is locked: even a right password from it is not checked now.
    let r = portal_login(&s, &c, "office", "Office-Passw0rd-1").await;
    assert_eq!(r.headers()[LOCATION], "/portal/login?err=throttled");
    // The API's callers (integrations with an admin key) are limited per user only.
    let v = s
        .call("POST", "/api/v2/auth/verify", Some(json!({"username": "office", "password": "Office-Passw0rd-1"})))
        .await;
    assert_eq!(v.status, 200);
}

/// A user `name` (with a Tether password) of a new domain whose delegated authority is AD,
/// linked to its AD account, and the token of the domain's import agent (registered by hand,
/// on a DC, so it answers delegated checks).
async fn delegated_user(s: &TestServer, name: &str) -> (String, String) {
    let domain = s.domain(&format!("DC={name},DC=test"), "TWOWAYSYNC").await;
    let r = s
        .call("PATCH", &format!("/api/v2/activedirectories/{domain}"), Some(json!({"delegationState": "ENABLED"})))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // An import agent on a DC (it answers delegated checks) and a sync agent (it links the user).
    let (import_token, sync_token) = (format!("{name:i<40}"), format!("{name:y<40}"));
    for (kind, token) in [("IMPORT", &import_token), ("SYNC", &sync_token)] {
        let key = s.connect_key(&domain, kind).await;
        let body = json!({"connectKey": key, "token": token, "installedOn": "dc"});
        assert_eq!(s.call_as(None, "POST", "/api/agent/v1/register", Some(body)).await.status, 200);
    }
    assert_eq!(s.agent_post(&import_token, "/api/agent/v1/heartbeat", json!({})).await.status, 200);
    let id = user(s, name, "Tether-Passw0rd-1").await;
    s.bind_user(&domain, &id).await;
    let link = json!({"userId": id, "guid": "cd".repeat(16), "dn": format!("CN={name},DC={name},DC=test")});
    assert_eq!(s.agent_post(&sync_token, "/api/agent/v1/sync/status", link).await.status, 200);
    let authority = json!({"delegatedAuthority": {"id": domain, "name": "ActiveDirectory"}});
    assert_eq!(s.call("PUT", &format!("/api/systemusers/{id}"), Some(authority)).await.status, 200);
    (id, import_token)
}

/// A delegated check whose caller stops waiting — it timed out, or went away mid-wait — is
/// withdrawn: no agent receives it (nor its password) afterwards.
#[tokio::test]
async fn a_delegated_check_is_withdrawn_when_its_caller_stops_waiting() {
    let s = TestServer::start().await;
    let (_, agent) = delegated_user(&s, "leaver").await;
    let login = |password: &str, timeout_ms: u64| {
        s.client
            .post(format!("{}/api/v2/auth/verify", s.url))
            .header("x-api-key", &s.api_key)
            .json(&json!({"username": "leaver", "password": password}))
            .timeout(std::time::Duration::from_millis(timeout_ms))
            .send()
    };
    let poll = || s.agent_post(&agent, "/api/agent/v1/auth/poll", json!({"waitMs": 300}));
    // A caller that waits: its check reaches the agent (what the cases below must not do).
    let (r, asked) = tokio::join!(login("AD-Passw0rd-7", 10_000), async {
        let asked = s.next_auth_check(&agent).await;
        let answer = json!({"id": asked["id"], "ok": true});
        assert_eq!(s.agent_post(&agent, "/api/agent/v1/auth/result", answer).await.status, 200);
        asked
    });
    assert_eq!(r.unwrap().status(), 200);
    assert_eq!(asked["password"], "AD-Passw0rd-7");
    // No agent polls before the delegation timeout (2 s in tests): the login is refused (the
    // agent is on a DC, so Tether keeps the password AD accepted above: not this one), and an
    // agent polling afterwards receives nothing.
    let r = login("AD-Passw0rd-8", 10_000).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(poll().await.body, json!([]));
    // The caller goes away after 300 ms, well before the timeout (the broker's own test,
    // `a_check_whose_caller_goes_away_is_withdrawn`, makes sure the check was queued first;
    // this one, that a client's disconnect reaches the broker through the HTTP server).
    assert!(login("AD-Passw0rd-9", 300).await.unwrap_err().is_timeout());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(poll().await.body, json!([]), "a check whose caller left is withdrawn");
}

/// A delegated login that AD answers while an administrator suspends the user: the
/// suspension stands (the login used to save the copy of the user it loaded before asking AD,
/// undoing the suspension), and the login is refused.
#[tokio::test]
async fn a_suspension_made_while_ad_answers_a_delegated_login_stands() {
    let s = TestServer::start().await;
    let (id, import_token) = delegated_user(&s, "racer").await;
    let post = |token: &str, path: &str, body: Value| {
        s.client.post(format!("{}{path}", s.url)).bearer_auth(token).json(&body).send()
    };
    let login = s.call("POST", "/api/v2/auth/verify", Some(json!({"username": "racer", "password": "AD-Passw0rd-1"})));
    let agent_side = async {
        let asked = s.next_auth_check(&import_token).await;
        // While AD is being asked, the administrator suspends the user.
        let r = s.call("PUT", &format!("/api/systemusers/{id}"), Some(json!({"suspended": true}))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let answer = json!({"id": asked["id"], "ok": true});
        assert_eq!(post(&import_token, "/api/agent/v1/auth/result", answer).await.unwrap().status(), 200);
    };
    let (verdict, ()) = tokio::join!(login, agent_side);
    assert_eq!(verdict.status, 401, "a suspended user is refused: {:?}", verdict.body);
    let u = s.call("GET", &format!("/api/systemusers/{id}"), None).await.body;
    assert_eq!((u["state"].as_str(), u["suspended"].as_bool()), (Some("SUSPENDED"), Some(true)), "{u}");
}

/// The primary import agent's heartbeat writes the domain (its lease) every few seconds; an
/// administrator's change made while a heartbeat is being applied must stand (the heartbeat
/// reads the domain again when it changed meanwhile, instead of writing back its old copy).
#[tokio::test]
async fn an_admin_change_made_while_heartbeats_are_applied_stands() {
    let s = TestServer::start().await;
    let domain = s.domain("DC=lease,DC=test", "TWOWAYSYNC").await;
    let token = "h".repeat(40);
    let key = s.connect_key(&domain, "IMPORT").await;
    let body = json!({"connectKey": key, "token": token, "installedOn": "member_server"});
    assert_eq!(s.call_as(None, "POST", "/api/agent/v1/register", Some(body)).await.status, 200);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let beats = {
        let (client, url, token, stop) = (s.client.clone(), s.url.clone(), token.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r =
                    client.post(format!("{url}/api/agent/v1/heartbeat")).bearer_auth(&token).json(&json!({})).send();
                assert_eq!(r.await.unwrap().status(), 200);
                n += 1;
            }
            n
        })
    };
    for i in 1..=60u64 {
        // Heartbeats back to back on a busy machine can win every one of tetherd's tries:
        // the admin is answered 409 STALE ("try again") and tries again, as told.
        let guards = json!({"guards": {"deletes": {"count": i}}});
        let mut tries = 0;
        let r = loop {
            let r = s.call("PATCH", &format!("/api/v2/activedirectories/{domain}"), Some(guards.clone())).await;
            tries += 1;
            if r.status != 409 || r.body["status"] != "STALE" || tries == 20 {
                break r;
            }
        };
        assert_eq!(r.status, 200, "{:?}", r.body);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let d = s.call("GET", &format!("/api/v2/activedirectories/{domain}"), None).await.body;
        assert_eq!(d["guards"]["deletes"]["count"], i, "change {i} was undone by a heartbeat");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(beats.await.unwrap() > 60, "heartbeats ran throughout");
}
