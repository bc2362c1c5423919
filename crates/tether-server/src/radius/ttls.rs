//! One EAP-TTLS conversation (RFC 5281): a TLS server (rustls, over in-memory buffers) fed a
//! fragment per RADIUS round trip, until the tunnel carries the user's name and password
//! (PAP inside). What WPA2/WPA3-Enterprise Wi-Fi and 802.1X switches speak.
//!
//! TLS 1.2 only: the keys handed to the access point are derived as RFC 5281 §8 says
//! (the TLS PRF with "ttls keying material"), which TLS 1.3 replaced with another derivation
//! (RFC 9427) that supplicants in the field do not agree on yet. No session resumption: a
//! resumed tunnel would skip the password check, and every login must be checked now.
//!
//! A conversation lives in memory between round trips, found by the RADIUS `State` it was
//! last given (16 random bytes, new each round, each taken once), belonging to the device
//! it began with; one idle for [`IDLE`] or older than [`LIFETIME`] is forgotten, at most
//! [`AT_ONCE`] exist, and at most [`PER_DEVICE`] for one device (one device holding the
//! secret cannot take every other device's Wi-Fi logins away).

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::eap::{self, flag, method, Eap, Inbound, Outbound};

/// How long a conversation waits for the supplicant's next message.
pub const IDLE: Duration = Duration::from_secs(30);
/// How long a conversation may last in all (a handshake takes well under a second).
pub const LIFETIME: Duration = Duration::from_secs(60);
/// Conversations in progress at once; a new one beyond this is refused.
pub const AT_ONCE: usize = 4096;
/// Conversations in progress at once for one device (a controller relays for all its access
/// points; a thousand handshakes at the same moment is a building arriving at 9:00).
pub const PER_DEVICE: usize = 1024;
/// Round trips a conversation may take (a handshake with a long certificate chain in
/// fragments of the smallest size needs about twenty).
const ROUNDS_MAX: u32 = 48;

/// What to answer a supplicant's message.
pub enum Step {
    /// Send this EAP request (in an Access-Challenge).
    Continue(Vec<u8>),
    /// The tunnel delivered PAP credentials; `msk` keys the link once the user is let in.
    Credentials { username: String, password: String, msk: Box<[u8; 64]> },
    /// End with an EAP-Failure; why, for the log.
    Fail(String),
}

pub struct Conversation {
    tls: rustls::ServerConnection,
    /// The identifier of the last request sent (the response must carry it).
    id: u8,
    inbound: Inbound,
    outbound: Outbound,
    /// TLS bytes per fragment sent (the access point's Framed-MTU).
    fragment: usize,
    rounds: u32,
    /// Set when TLS failed and its alert is on its way: the next response ends it.
    failing: Option<String>,
    /// The RADIUS server (device) the conversation began with.
    server: String,
    began: Instant,
}

impl Conversation {
    /// A conversation for `server`'s device answering the Identity response `identity_id`,
    /// with fragments of `fragment` TLS bytes, and the EAP-TTLS Start request that opens it.
    pub fn start(
        config: Arc<rustls::ServerConfig>,
        server: &str,
        identity_id: u8,
        fragment: usize,
        now: Instant,
    ) -> Result<(Conversation, Vec<u8>), String> {
        let tls = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
        // Each request takes a new identifier (RFC 3748 §4.1).
        let id = identity_id.wrapping_add(1);
        let start = eap::request(id, method::TTLS, &[flag::START]);
        let c = Conversation {
            tls,
            id,
            inbound: Inbound::default(),
            outbound: Outbound::default(),
            fragment,
            rounds: 0,
            failing: None,
            server: server.to_string(),
            began: now,
        };
        Ok((c, start))
    }

    /// The next step after the supplicant's `response`.
    pub fn respond(&mut self, response: &Eap<'_>) -> Step {
        self.rounds += 1;
        if self.rounds > ROUNDS_MAX {
            return Step::Fail("too many round trips".into());
        }
        if let Some(why) = self.failing.take() {
            return Step::Fail(why);
        }
        if response.code != eap::code::RESPONSE || response.id != self.id {
            return Step::Fail(format!("EAP code {} identifier {} was not expected", response.code, response.id));
        }
        match response.method {
            Some(method::TTLS) => {}
            Some(method::NAK) => {
                return Step::Fail("the supplicant declined EAP-TTLS (set it to TTLS with PAP inside)".into())
            }
            other => return Step::Fail(format!("EAP method {other:?} in a TTLS conversation")),
        }
        let frame = match eap::frame(response.data) {
            Ok(f) => f,
            Err(e) => return Step::Fail(e.to_string()),
        };
        if self.outbound.pending() {
            // The supplicant acknowledges each fragment with an empty response.
            if !frame.tls.is_empty() || frame.flags & flag::MORE != 0 {
                return Step::Fail("data while the server's fragments were pending".into());
            }
            let next = self.outbound.next_fragment(self.fragment);
            return self.send(next);
        }
        let message = match self.inbound.push(&frame) {
            Ok(Some(m)) => m,
            // Acknowledge the fragment and wait for the next.
            Ok(None) => return self.send(vec![0]),
            Err(e) => return Step::Fail(e.to_string()),
        };
        if let Err(e) = self.feed(&message) {
            // The alert TLS wrote goes to the supplicant (its user then sees why); the
            // conversation ends at its next message.
            return match self.pending_tls() {
                Ok(alert) if !alert.is_empty() => {
                    self.failing = Some(format!("TLS: {e}"));
                    self.send_flight(alert)
                }
                _ => Step::Fail(format!("TLS: {e}")),
            };
        }
        if !self.tls.is_handshaking() {
            let mut plain = Vec::new();
            if let Err(e) = self.tls.reader().read_to_end(&mut plain) {
                if e.kind() != std::io::ErrorKind::WouldBlock {
                    return Step::Fail(format!("TLS: {e}"));
                }
            }
            if !plain.is_empty() {
                // Data sent before the server's last flight went out (False Start): refused.
                if self.tls.wants_write() {
                    return Step::Fail("tunnel data before the handshake ended".into());
                }
                return self.credentials(&plain);
            }
        }
        let out = match self.pending_tls() {
            Ok(out) => out,
            Err(e) => return Step::Fail(format!("TLS: {e}")),
        };
        if out.is_empty() {
            if !self.tls.is_handshaking() {
                // Some supplicants acknowledge the server's last flight before sending the
                // tunnel's data: ask for it (the round trips stay bounded).
                return self.send(vec![0]);
            }
            return Step::Fail("a message that asks for no answer".into());
        }
        self.send_flight(out)
    }

    /// What TLS has to send.
    fn pending_tls(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while self.tls.wants_write() {
            self.tls.write_tls(&mut out)?;
        }
        Ok(out)
    }

    /// Sends `flight` a fragment at a time.
    fn send_flight(&mut self, flight: Vec<u8>) -> Step {
        self.outbound = Outbound::new(flight);
        let next = self.outbound.next_fragment(self.fragment);
        self.send(next)
    }

    /// Gives the TLS engine a whole message.
    fn feed(&mut self, mut message: &[u8]) -> Result<(), rustls::Error> {
        while !message.is_empty() {
            match self.tls.read_tls(&mut message) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(rustls::Error::General(e.to_string())),
            }
            self.tls.process_new_packets()?;
        }
        Ok(())
    }

    fn credentials(&self, plain: &[u8]) -> Step {
        let (username, password) = match eap::inner_pap(plain) {
            Ok(c) => c,
            Err(e) => return Step::Fail(e.to_string()),
        };
        // RFC 5281 §8: the first 64 bytes of PRF(master secret, "ttls keying material",
        // client random + server random), which is RFC 5705's exporter without a context.
        match self.tls.export_keying_material([0u8; 64], b"ttls keying material", None) {
            Ok(msk) => Step::Credentials { username, password, msk: Box::new(msk) },
            Err(e) => Step::Fail(format!("TLS key export: {e}")),
        }
    }

    fn send(&mut self, ttls: Vec<u8>) -> Step {
        self.id = self.id.wrapping_add(1);
        Step::Continue(eap::request(self.id, method::TTLS, &ttls))
    }
}

/// The conversations waiting for their supplicant's next message, by `State`.
#[derive(Default)]
pub struct Conversations {
    waiting: HashMap<[u8; 16], (Instant, Conversation)>,
}

impl Conversations {
    /// Keeps `c` until its next message; the `State` that names it, or `None` when
    /// [`AT_ONCE`] conversations, or [`PER_DEVICE`] of its device's, are already waiting.
    pub fn put(&mut self, c: Conversation, now: Instant) -> Option<[u8; 16]> {
        let full = |w: &HashMap<[u8; 16], (Instant, Conversation)>| {
            w.len() >= AT_ONCE || w.values().filter(|(_, o)| o.server == c.server).count() >= PER_DEVICE
        };
        if full(&self.waiting) {
            self.waiting.retain(|_, (at, o)| Self::alive(o, *at, now));
            if full(&self.waiting) {
                return None;
            }
        }
        let mut state = [0u8; 16];
        getrandom::fill(&mut state).expect("the OS random source works");
        self.waiting.insert(state, (now, c));
        Some(state)
    }

    fn alive(c: &Conversation, last: Instant, now: Instant) -> bool {
        now.duration_since(last) < IDLE && now.duration_since(c.began) < LIFETIME
    }

    /// The conversation `state` names, when it is `server`'s and not idle or old (taken: a
    /// `State` answers once; another device's is left alone).
    pub fn take(&mut self, state: &[u8], server: &str, now: Instant) -> Option<Conversation> {
        let key: [u8; 16] = state.try_into().ok()?;
        if self.waiting.get(&key)?.1.server != server {
            return None;
        }
        let (at, c) = self.waiting.remove(&key)?;
        Self::alive(&c, at, now).then_some(c)
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    fn config() -> Arc<rustls::ServerConfig> {
        let p = tether_testkit::pki();
        crate::tls::ServerTls::load(&p.cert_file, &p.key_file).expect("test certificate").config_for_eap()
    }

    /// A self-signed certificate naming many hosts, larger than a fragment (as real chains
    /// are): its configuration and PEM.
    fn large_certificate() -> (Arc<rustls::ServerConfig>, String) {
        let names: Vec<String> =
            (0..60).map(|i| format!("wifi-{i}.radius.example.test")).chain(["localhost".into()]).collect();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names).unwrap().self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (crate::tls::ServerTls::load(&c, &k).unwrap().config_for_eap(), cert.pem())
    }

    /// A real TLS client (rustls) trusting `ca_pem`, as a supplicant's TLS engine.
    fn supplicant(ca_pem: &str) -> rustls::ClientConnection {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap()
    }

    fn response(id: u8, tls: &[u8]) -> Vec<u8> {
        eap::response(id, method::TTLS, &eap::frame_bytes(0, None, tls))
    }

    #[test]
    fn a_tunnel_carries_pap_and_both_ends_derive_the_same_keys() {
        let (config, ca) = large_certificate();
        let (mut conversation, start) = Conversation::start(config, "srv", 255, eap::FRAGMENT, Instant::now()).unwrap();
        let start = eap::parse(&start).unwrap();
        assert_eq!((start.method, start.data), (Some(method::TTLS), &[flag::START][..]));
        assert_eq!(start.id, 0, "the identifier after the Identity response's");
        let mut client = supplicant(&ca);
        let (mut id, mut gathered, mut sent_credentials, mut fragments) = (start.id, Vec::new(), false, 0);
        for _ in 0..ROUNDS_MAX {
            if !client.is_handshaking() && !sent_credentials {
                let avps = [eap::avp(1, b"ada"), eap::avp(2, b"Secret-1\0\0\0\0\0\0\0\0")].concat();
                std::io::Write::write_all(&mut client.writer(), &avps).unwrap();
                sent_credentials = true;
            }
            let mut out = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut out).unwrap();
            }
            let resp = response(id, &out);
            match conversation.respond(&eap::parse(&resp).unwrap()) {
                Step::Continue(next) => {
                    let next = eap::parse(&next).unwrap();
                    assert_eq!(next.id, id.wrapping_add(1), "each request a new identifier");
                    id = next.id;
                    let f = eap::frame(next.data).unwrap();
                    gathered.extend_from_slice(f.tls);
                    if f.flags & flag::MORE != 0 {
                        fragments += 1;
                        continue;
                    }
                    let mut rd = &gathered[..];
                    while !rd.is_empty() {
                        client.read_tls(&mut rd).unwrap();
                        client.process_new_packets().unwrap();
                    }
                    gathered.clear();
                }
                Step::Credentials { username, password, msk } => {
                    assert_eq!((username.as_str(), password.as_str()), ("ada", "Secret-1"));
                    assert_eq!(client.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
                    let theirs = client.export_keying_material([0u8; 64], b"ttls keying material", None).unwrap();
                    assert_eq!(theirs, *msk, "the supplicant's keys are the access point's");
                    assert!(fragments > 0, "the certificate flight came in fragments");
                    return;
                }
                Step::Fail(why) => panic!("{why}"),
            }
        }
        panic!("no credentials after {ROUNDS_MAX} rounds");
    }

    fn started() -> (Conversation, u8) {
        let (c, s) = Conversation::start(config(), "srv", 7, eap::FRAGMENT, Instant::now()).unwrap();
        let id = eap::parse(&s).unwrap().id;
        (c, id)
    }

    #[test]
    fn a_conversation_ends_on_what_it_did_not_ask_for() {
        type Make = fn(u8) -> Vec<u8>;
        let table: [(&str, Make); 5] = [
            ("another identifier", |id| response(id.wrapping_add(7), &[])),
            ("a Nak (the supplicant wants another method)", |id| eap::response(id, method::NAK, &[13])),
            ("another method", |id| eap::response(id, method::IDENTITY, b"x")),
            ("TTLS version 1", |id| eap::response(id, method::TTLS, &[1])),
            ("nothing to answer during the handshake", |id| response(id, &[])),
        ];
        for (why, make) in table {
            let (mut c, id) = started();
            assert!(matches!(c.respond(&eap::parse(&make(id)).unwrap()), Step::Fail(_)), "{why}");
        }
        // Not TLS: the TLS alert goes to the supplicant, and its next message ends it.
        let (mut c, id) = started();
        let Step::Continue(alert) = c.respond(&eap::parse(&response(id, b"GET / HTTP/1.1\r\n\r\n")).unwrap()) else {
            panic!("the alert is sent")
        };
        let alert = eap::parse(&alert).unwrap();
        assert_eq!(eap::frame(alert.data).unwrap().tls.first(), Some(&21), "a TLS alert record");
        assert!(matches!(c.respond(&eap::parse(&response(alert.id, &[])).unwrap()), Step::Fail(_)));
        // Acknowledgements with nothing to acknowledge do not go on forever.
        let (mut c, mut id) = started();
        let mut ended = false;
        for _ in 0..=ROUNDS_MAX {
            match c.respond(&eap::parse(&eap::response(id, method::TTLS, &[flag::MORE])).unwrap()) {
                Step::Continue(next) => id = eap::parse(&next).unwrap().id,
                _ => {
                    ended = true;
                    break;
                }
            }
        }
        assert!(ended, "bounded round trips");
    }

    #[test]
    fn a_state_is_taken_once_by_its_device_while_fresh() {
        let mut all = Conversations::default();
        let t0 = Instant::now();
        let c = |server: &str, at| Conversation::start(config(), server, 1, eap::FRAGMENT, at).unwrap().0;
        let s1 = all.put(c("srv", t0), t0).unwrap();
        assert!(all.take(&s1, "srv", t0).is_some());
        assert!(all.take(&s1, "srv", t0).is_none(), "once");
        let s2 = all.put(c("srv", t0), t0).unwrap();
        assert!(all.take(&s2, "other", t0).is_none(), "not another device's");
        assert!(all.take(&s2, "srv", t0).is_some(), "which leaves it alone");
        let s3 = all.put(c("srv", t0), t0).unwrap();
        assert!(all.take(&s3, "srv", t0 + IDLE).is_none(), "idle too long");
        assert!(all.take(&[0; 15], "srv", t0).is_none() && all.take(&[], "srv", t0).is_none());
        // Busy at every round, but older than its lifetime.
        let old = c("srv", t0);
        let s4 = all.put(old, t0 + LIFETIME - Duration::from_secs(1)).unwrap();
        assert!(all.take(&s4, "srv", t0 + LIFETIME).is_none(), "too old");
        assert!(all.is_empty());
    }

    #[test]
    fn one_device_cannot_take_every_place() {
        let mut all = Conversations::default();
        let t0 = Instant::now();
        let c = |server: &str| Conversation::start(config(), server, 1, eap::FRAGMENT, t0).unwrap().0;
        for _ in 0..PER_DEVICE {
            assert!(all.put(c("noisy"), t0).is_some());
        }
        assert!(all.put(c("noisy"), t0).is_none(), "its quota is full");
        assert!(all.put(c("quiet"), t0).is_some(), "another device still begins");
        // Once its conversations are idle, they are forgotten and it may begin again.
        assert!(all.put(c("noisy"), t0 + IDLE).is_some());
        assert_eq!(all.len(), 1, "every idle conversation forgotten");
    }
}
