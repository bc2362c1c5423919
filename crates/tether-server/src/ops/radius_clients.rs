//! The RADIUS front end's table of devices (RADIUS servers with their opened shared secrets),
//! held between datagrams: reading every server and opening its secret per request would
//! cost the store more than the answer. Kept apart from `ops::radius` so `AppState` can hold
//! it without depending on the operations.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_core::radius::RadiusServer;

/// How long a tetherd answers from the table it read when another tetherd may have changed
/// it (PostgreSQL, no directory version); on the embedded store the table is read again after
/// any write to the directory.
const FRESH: Duration = Duration::from_secs(1);

/// A network device the front end answers: its server and shared secret.
pub struct Client {
    pub server: RadiusServer,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("server", &self.server).field("secret", &"<redacted>").finish()
    }
}

/// Every device by address, as read at `read` under the store's directory version `version`.
pub struct Clients {
    read: Instant,
    version: Option<u64>,
    by_ip: HashMap<IpAddr, Arc<Client>>,
}

impl Clients {
    pub fn new(read: Instant, version: Option<u64>, by_ip: HashMap<IpAddr, Arc<Client>>) -> Self {
        Clients { read, version, by_ip }
    }

    /// Whether the table still stands when the store's directory version is `now`.
    pub fn fresh(&self, now: Option<u64>) -> bool {
        match now {
            Some(v) => self.version == Some(v),
            None => self.read.elapsed() < FRESH,
        }
    }

    pub fn get(&self, ip: IpAddr) -> Option<Arc<Client>> {
        self.by_ip.get(&ip).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_stands_while_the_directory_does() {
        let t = Clients::new(Instant::now(), Some(4), HashMap::new());
        assert!(t.fresh(Some(4)));
        assert!(!t.fresh(Some(5)), "a write to the directory");
        let shared = Clients::new(Instant::now() - FRESH, None, HashMap::new());
        assert!(!shared.fresh(None), "read a second ago from a store others write");
        assert!(Clients::new(Instant::now(), None, HashMap::new()).fresh(None));
    }
}
