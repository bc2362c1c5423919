//! Optional delivery of the notifications outbox through an SMTP relay (off by default).
//!
//! A deliberately small SMTP client: plaintext to a relay the admin runs next to tetherd
//! (postfix or a smarthost on localhost), which does TLS and authentication onwards. Each
//! queued notification is sent once; failures are retried a few times, then marked `failed`
//! with the relay's answer.

use std::time::Duration;

use serde_json::Value;
use tether_core::query::{Filter, ListQuery, Op, Scalar};
use tether_store::{Collection, Doc};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::AppState;

/// Where to send mail.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    /// `host:port` of the relay.
    pub relay: String,
    /// The envelope and header sender.
    pub from: String,
}

const MAX_ATTEMPTS: u64 = 5;

async fn expect(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, code: &str) -> Result<(), String> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
            return Err("the relay closed the connection".into());
        }
        if !line.starts_with(code) {
            return Err(format!("the relay answered: {}", line.trim_end()));
        }
        // Multi-line replies continue with `250-`; the last line is `250 `.
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

/// Sends one message.
pub async fn send(cfg: &SmtpConfig, to: &str, subject: &str, body: &str) -> Result<(), String> {
    if !to.contains('@') || to.contains(['\r', '\n', '<', '>']) {
        return Err(format!("`{to}` is not an email address"));
    }
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&cfg.relay))
        .await
        .map_err(|_| "timed out connecting to the relay".to_string())?
        .map_err(|e| format!("cannot connect to {}: {e}", cfg.relay))?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    expect(&mut read, "220").await?;
    let steps: [(String, &str); 4] = [
        ("EHLO tether\r\n".into(), "250"),
        (format!("MAIL FROM:<{}>\r\n", cfg.from), "250"),
        (format!("RCPT TO:<{to}>\r\n"), "25"),
        ("DATA\r\n".into(), "354"),
    ];
    for (cmd, code) in steps {
        write.write_all(cmd.as_bytes()).await.map_err(|e| e.to_string())?;
        expect(&mut read, code).await?;
    }
    let subject = subject.replace(['\r', '\n'], " ");
    // Dot-stuffing: a line starting with "." gets another.
    let text: String =
        body.lines().map(|l| if l.starts_with('.') { format!(".{l}\r\n") } else { format!("{l}\r\n") }).collect();
    let msg = format!(
        "From: {}\r\nTo: {to}\r\nSubject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}.\r\n",
        cfg.from
    );
    write.write_all(msg.as_bytes()).await.map_err(|e| e.to_string())?;
    expect(&mut read, "250").await?;
    let _ = write.write_all(b"QUIT\r\n").await;
    Ok(())
}

/// Sends queued notifications until the server stops.
pub async fn deliver(s: AppState, cfg: SmtpConfig) {
    loop {
        if let Err(e) = deliver_once(&s, &cfg).await {
            tracing::warn!(error = %e.message, "notification delivery");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

pub async fn deliver_once(s: &AppState, cfg: &SmtpConfig) -> Result<(), crate::error::ApiError> {
    let q = ListQuery {
        filter: Some(Filter::Cmp { field: "status", op: Op::Eq, value: Scalar::Text("queued".into()) }),
        limit: 50,
        ..Default::default()
    };
    let (_, queued): (u64, Vec<Value>) = s.repo.list(Collection::Notifications, &q).await?;
    for mut n in queued {
        deliver_one(s, cfg, &mut n).await?;
        let id = text(&n, "id");
        s.repo.store().replace(Collection::Notifications, &Doc { id, key1: None, key2: None, body: n }).await?;
    }
    Ok(())
}

fn text(n: &Value, k: &str) -> String {
    n[k].as_str().unwrap_or_default().to_string()
}

/// Hands one queued notification to the relay and records the outcome in it.
async fn deliver_one(s: &AppState, cfg: &SmtpConfig, n: &mut Value) -> Result<(), crate::error::ApiError> {
    let mut body = text(n, "body");
    if let Some(user_id) = n["activationFor"].as_str() {
        // The link is made now, for this email only (the outbox keeps the placeholder).
        match crate::console::activation_link_for_email(s, user_id).await? {
            Some(link) => body = body.replace(crate::notify::LINK_PLACEHOLDER, &link),
            None => {
                n["status"] = "cancelled".into();
                n["error"] = "the user has a password now, is suspended or was deleted".into();
                return Ok(());
            }
        }
    }
    let r = send(cfg, &text(n, "recipient"), &text(n, "subject"), &body).await;
    let attempts = n["attempts"].as_u64().unwrap_or(0) + 1;
    n["attempts"] = attempts.into();
    match r {
        Ok(()) => {
            n["status"] = "sent".into();
            n["sentAt"] = s.now_str().into();
        }
        Err(e) => {
            n["error"] = e.clone().into();
            if attempts >= MAX_ATTEMPTS || e.contains("not an email address") {
                n["status"] = "failed".into();
            }
        }
    }
    Ok(())
}
