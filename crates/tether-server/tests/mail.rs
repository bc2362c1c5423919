//! The notifications outbox delivered through an SMTP relay (a minimal relay in the test
//! that speaks SMTP and records what it received).

use std::sync::{Arc, Mutex};

use serde_json::json;
use tether_server::mail::SmtpConfig;
use tether_testkit::TestServer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Accepts connections, answers like a relay, records each message's DATA.
async fn relay() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 relay ready\r\n").await.unwrap();
                let mut data: Option<String> = None;
                let mut line = String::new();
                while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                    if let Some(d) = data.as_mut() {
                        if line == ".\r\n" {
                            store.lock().unwrap().push(std::mem::take(d));
                            data = None;
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            d.push_str(&line);
                        }
                    } else if line.starts_with("EHLO") {
                        w.write_all(b"250-relay\r\n250 8BITMIME\r\n").await.unwrap();
                    } else if line.starts_with("DATA") {
                        data = Some(String::new());
                        w.write_all(b"354 go ahead\r\n").await.unwrap();
                    } else if line.starts_with("QUIT") {
                        w.write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    } else {
                        w.write_all(b"250 ok\r\n").await.unwrap();
                    }
                    line.clear();
                }
            });
        }
    });
    (addr, got)
}

#[tokio::test]
async fn queued_notifications_are_delivered_through_the_relay() {
    let (addr, got) = relay().await;
    let s =
        TestServer::start_with(|c| c.smtp = Some(SmtpConfig { relay: addr, from: "tether@example.com".into() })).await;
    let d = s.call("POST", "/api/v2/activedirectories", Some(json!({"domain": "DC=mail,DC=test"}))).await;
    let u = s.call("POST", "/api/systemusers", Some(json!({"username": "mia", "email": "mia@example.com"}))).await;
    s.call(
        "POST",
        &format!("/api/v2/activedirectories/{}/associations", d.body["id"].as_str().unwrap()),
        Some(json!({"op": "add", "type": "user", "id": u.body["id"]})),
    )
    .await;
    // No admin email set: the last-agent notice has no address and fails with the reason.
    let a = s
        .call("POST", &format!("/api/v2/activedirectories/{}/agents", d.body["id"].as_str().unwrap()), Some(json!({})))
        .await;
    s.call(
        "POST",
        &format!(
            "/api/v2/activedirectories/{}/agents/{}/pause",
            d.body["id"].as_str().unwrap(),
            a.body["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..50 {
        let n = s.call("GET", "/api/v2/notifications", None).await.body;
        statuses = n
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["template"].as_str().unwrap().to_string(), x["status"].as_str().unwrap().to_string()))
            .collect();
        if statuses.iter().all(|(_, st)| st != "queued") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        statuses,
        [("activation".to_string(), "sent".to_string()), ("last_agent_deactivated".into(), "failed".into())]
    );
    let mails = got.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("To: mia@example.com") && mails[0].contains("Subject: Activate your account"),
        "{}",
        mails[0]
    );
}
