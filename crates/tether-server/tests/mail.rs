//! The notifications outbox delivered through an SMTP relay (the test kit's, which speaks
//! SMTP and records what it received).

use serde_json::json;
use tether_server::mail::SmtpConfig;
use tether_testkit::TestServer;

#[tokio::test]
async fn queued_notifications_are_delivered_through_the_relay() {
    let (addr, got) = tether_testkit::smtp_relay().await;
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
