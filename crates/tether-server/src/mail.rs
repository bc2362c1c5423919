//! The SMTP client that delivers the notifications outbox (`notify.rs`) through a relay
//! (off by default).
//!
//! A deliberately small SMTP client: plaintext to a relay the admin runs next to tetherd
//! (postfix or a smarthost on localhost), which does TLS and authentication onwards. Each
//! queued notification is sent once; failures are retried a few times, then marked `failed`
//! with the relay's answer.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Where to send mail.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    /// `host:port` of the relay.
    pub relay: String,
    /// The envelope and header sender.
    pub from: String,
}

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
    let stream = tokio::time::timeout(std::time::Duration::from_secs(10), TcpStream::connect(&cfg.relay))
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
