//! A TCP forwarder the test can cut: the agent talks to the DC through it, and `cut` drops
//! every connection and refuses new ones while the DC itself stays up and writable — a
//! network failure between one client and AD, which stopping Samba cannot show.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub struct TcpCut {
    /// Where clients connect (the upstream's IP, another port: a certificate naming the IP
    /// still matches).
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    pipes: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl TcpCut {
    /// Forwards connections on a free port of `upstream`'s IP to `upstream`.
    pub async fn start(upstream: SocketAddr) -> TcpCut {
        let listener = TcpListener::bind((upstream.ip(), 0)).await.expect("bind the forwarder");
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let pipes: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (o, p) = (open.clone(), pipes.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                p.lock().unwrap().push(pipe.abort_handle());
            }
        })
        .abort_handle();
        TcpCut { addr, open, pipes, accept }
    }

    /// Drops every forwarded connection and refuses new ones until [`TcpCut::restore`].
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for p in self.pipes.lock().unwrap().drain(..) {
            p.abort();
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpCut {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
