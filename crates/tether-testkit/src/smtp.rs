//! An SMTP relay on 127.0.0.1 for the tests: it speaks enough SMTP for tetherd's delivery
//! and records each message's DATA, so a test reads the e-mails tetherd sent.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Accepts connections, answers like a relay, records each message's DATA.
pub async fn smtp_relay() -> (String, Arc<Mutex<Vec<String>>>) {
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
