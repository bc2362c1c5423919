//! The RADIUS front end: Wi-Fi controllers and VPN gateways ask whether a user gets in, with
//! the same users, passwords, login limits and states as every other front end (the decision
//! is `ops::radius::access`).
//!
//! What a request must pass before anything is decided, each failure a silent drop (RFC
//! 2865: an answer would tell an attacker what was wrong) counted in `/metrics`: a
//! well-formed packet, from a RADIUS server's source address, carrying a Message-Authenticator
//! made with that server's secret (BlastRADIUS: a request without one is never answered, so
//! a forged answer cannot be built from one). Every answer carries Message-Authenticator
//! first. A retransmission (same source, identifier and Request Authenticator) gets the same
//! answer again, and no second password check, while the first is remembered.
//!
//! Two ways in: PAP (the password in User-Password, VPNs and captive portals) and EAP-TTLS
//! with PAP inside (`eap_access`, WPA-Enterprise Wi-Fi and 802.1X), which needs tetherd's
//! TLS certificate.

pub mod eap;
mod eap_access;
pub mod packet;
pub mod replies;
pub mod ttls;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::ops::radius::{Access, Client};
use crate::state::AppState;
use packet::{attr, Code, Packet};

/// How long an answer is kept for retransmissions of its request (clients retry for a few
/// seconds; RFC 5080 §2.2.2 suggests remembering a few times that).
const REMEMBER: Duration = Duration::from_secs(30);
/// At most this many datagrams are handled at once; more are dropped (and counted) until
/// some finish: a flood cannot queue unbounded work (devices retry).
const IN_FLIGHT_MAX: usize = 1024;

/// At most this many answers are remembered (the oldest go first): at most 64 MiB of
/// answers of the largest size.
const REMEMBERED_MAX: usize = 16_384;

/// Serves RADIUS on `socket` until `shutdown` completes; EAP-TTLS with the TLS
/// configuration `eap` (see [`crate::tls::ServerTls::config_for_eap`]), refused without one.
pub async fn run(
    socket: UdpSocket,
    state: AppState,
    eap: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared { state, socket, recent: Mutex::default(), eap, conversations: Mutex::default() });
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_MAX));
    tokio::pin!(shutdown);
    let mut buf = vec![0u8; packet::MAX_LEN + 1];
    loop {
        let (n, peer) = tokio::select! {
            r = shared.socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "RADIUS receive failed");
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            shared.state.metrics.radius_request(Outcome::Busy.as_str(), 0.0);
            continue;
        };
        let datagram = buf[..n].to_vec();
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.handle(datagram, peer).await;
            drop(permit);
        });
    }
}

struct Shared {
    state: AppState,
    socket: UdpSocket,
    recent: Mutex<Recent>,
    eap: Option<Arc<rustls::ServerConfig>>,
    conversations: Mutex<ttls::Conversations>,
}

/// A request as retransmissions name it.
type RequestKey = (SocketAddr, u8, [u8; 16]);

/// Requests seen lately: when each was first seen, and whether it is in flight (`None`) or
/// answered (the answer).
#[derive(Default)]
struct Recent {
    answers: HashMap<RequestKey, (Instant, Option<Vec<u8>>)>,
    order: VecDeque<(Instant, RequestKey)>,
}

enum Seen {
    New,
    InFlight,
    Answered(Vec<u8>),
}

impl Recent {
    fn expire(&mut self, now: Instant) {
        while let Some((at, key)) = self.order.front().cloned() {
            if now.duration_since(at) < REMEMBER && self.order.len() <= REMEMBERED_MAX {
                break;
            }
            self.order.pop_front();
            // Only the entry this one made (a key forgotten and seen again has a newer one).
            if self.answers.get(&key).is_some_and(|(seen, _)| *seen == at) {
                self.answers.remove(&key);
            }
        }
    }

    fn begin(&mut self, key: RequestKey, now: Instant) -> Seen {
        self.expire(now);
        match self.answers.get(&key) {
            Some((_, Some(answer))) => Seen::Answered(answer.clone()),
            Some((_, None)) => Seen::InFlight,
            None => {
                self.answers.insert(key, (now, None));
                self.order.push_back((now, key));
                Seen::New
            }
        }
    }

    fn finish(&mut self, key: &RequestKey, answer: Option<Vec<u8>>) {
        match answer {
            Some(a) => {
                if let Some(slot) = self.answers.get_mut(key) {
                    slot.1 = Some(a);
                }
            }
            // Nothing was answered (the store failed): the client's retry is a new request.
            None => {
                self.answers.remove(key);
            }
        }
    }
}

/// What became of a datagram (the `outcome` label of `tether_radius_request_seconds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Rejected,
    Challenged,
    Status,
    Duplicate,
    Malformed,
    UnknownClient,
    BadAuthenticator,
    Unsupported,
    Failed,
    Busy,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::Challenged => "challenged",
            Outcome::Status => "status",
            Outcome::Duplicate => "duplicate",
            Outcome::Malformed => "dropped_malformed",
            Outcome::UnknownClient => "dropped_unknown_client",
            Outcome::BadAuthenticator => "dropped_bad_message_authenticator",
            Outcome::Unsupported => "dropped_unsupported",
            Outcome::Failed => "dropped_store_failure",
            Outcome::Busy => "dropped_busy",
        }
    }
}

impl Shared {
    async fn handle(&self, datagram: Vec<u8>, peer: SocketAddr) {
        let started = Instant::now();
        let (outcome, answer) = self.answer(&datagram, peer).await;
        if let Some(a) = answer {
            if let Err(e) = self.socket.send_to(&a, peer).await {
                tracing::debug!(%peer, error = %e, "RADIUS send failed");
            }
        }
        if !matches!(outcome, Outcome::Accepted | Outcome::Rejected | Outcome::Challenged | Outcome::Status) {
            tracing::debug!(%peer, outcome = outcome.as_str(), "RADIUS request not answered anew");
        }
        self.state.metrics.radius_request(outcome.as_str(), started.elapsed().as_secs_f64());
    }

    async fn answer(&self, datagram: &[u8], peer: SocketAddr) -> (Outcome, Option<Vec<u8>>) {
        let Ok(request) = Packet::parse(datagram) else { return (Outcome::Malformed, None) };
        let client = match crate::ops::radius::client(&self.state, peer.ip()).await {
            Ok(Some(c)) => c,
            Ok(None) => return (Outcome::UnknownClient, None),
            Err(e) => {
                tracing::warn!(error = %e.message, "RADIUS client lookup failed");
                return (Outcome::Failed, None);
            }
        };
        if !packet::request_is_signed(datagram, &client.secret) {
            return (Outcome::BadAuthenticator, None);
        }
        if !matches!(request.code, Code::AccessRequest | Code::StatusServer) {
            return (Outcome::Unsupported, None);
        }
        let key = (peer, request.id, request.authenticator);
        let seen = self.recent.lock().expect("not poisoned").begin(key, Instant::now());
        match seen {
            Seen::Answered(a) => return (Outcome::Duplicate, Some(a)),
            Seen::InFlight => return (Outcome::Duplicate, None),
            Seen::New => {}
        }
        let decided = self.decide(&request, &client).await;
        let (outcome, answer) = match decided {
            Ok((outcome, code, attrs)) => {
                let mut attrs = attrs;
                // Proxy-State is returned as it came, in order (RFC 2865 §5.33).
                attrs.extend(request.all(attr::PROXY_STATE).map(|v| (attr::PROXY_STATE, v.to_vec())));
                match packet::answer(code, request.id, &request.authenticator, &attrs, &client.secret) {
                    Some(a) => (outcome, Some(a)),
                    // Too large to carry every Proxy-State back: no answer rather than a mangled one.
                    None => (Outcome::Malformed, None),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e.message, "RADIUS request failed");
                (Outcome::Failed, None)
            }
        };
        self.recent.lock().expect("not poisoned").finish(&key, answer.clone());
        (outcome, answer)
    }

    /// The answer's code and attributes (Proxy-State and Message-Authenticator aside).
    async fn decide(
        &self,
        request: &Packet,
        client: &Client,
    ) -> crate::error::ApiResult<(Outcome, Code, Vec<(u8, Vec<u8>)>)> {
        let reject = Ok((Outcome::Rejected, Code::AccessReject, Vec::new()));
        if request.code == Code::StatusServer {
            return Ok((Outcome::Status, Code::AccessAccept, Vec::new()));
        }
        if request.get(attr::EAP_MESSAGE).is_some() {
            return self.eap(request, client).await;
        }
        let username = request.get(attr::USER_NAME).and_then(|u| std::str::from_utf8(u).ok());
        let hidden = request.get(attr::USER_PASSWORD);
        // PAP here (CHAP and MS-CHAP are refused: they need the password in clear at rest).
        let (Some(username), Some(hidden)) = (username, hidden) else { return reject };
        let Ok(password) = packet::unhide_password(hidden, &client.secret, &request.authenticator) else {
            return reject;
        };
        let Ok(password) = String::from_utf8(password) else { return reject };
        let s = &self.state;
        // No source address for the login limits: the peer is a device asking for all its
        // users, and a lock on its address would let anyone shut every user out (the
        // per-username limit applies).
        let decided = match request.get(attr::STATE) {
            // The answer to a challenge: the password is the code.
            Some(state) => crate::ops::radius::answer_challenge(s, &client.server, username, state, &password).await?,
            None => crate::ops::radius::access(s, &client.server, username, password, None, true).await?,
        };
        match decided {
            Access::Reject => reject,
            Access::Challenge(state) => Ok((
                Outcome::Challenged,
                Code::AccessChallenge,
                vec![(attr::STATE, state), (attr::REPLY_MESSAGE, b"Enter your verification code".to_vec())],
            )),
            Access::Accept(replies) => Ok((Outcome::Accepted, Code::AccessAccept, reply_attributes(&replies, client))),
        }
    }
}

/// The Accept's attributes for the user's groups' `attributes.radius.reply`; one that
/// cannot be encoded is left out and logged.
fn reply_attributes(replies: &[tether_core::radius::ReplyAttribute], client: &Client) -> Vec<(u8, Vec<u8>)> {
    let mut attrs = Vec::new();
    for r in replies {
        match replies::encode(r) {
            Ok(a) => attrs.push(a),
            Err(why) => tracing::warn!(server = %client.server.id, "reply attribute left out: {why}"),
        }
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmissions_are_answered_from_memory_until_forgotten() {
        let mut r = Recent::default();
        let peer: SocketAddr = "10.0.0.2:1812".parse().unwrap();
        let t0 = Instant::now();
        let key = (peer, 7, [1; 16]);
        assert!(matches!(r.begin(key, t0), Seen::New));
        assert!(matches!(r.begin(key, t0), Seen::InFlight), "a retry while the first is decided");
        r.finish(&key, Some(vec![2, 7]));
        assert!(matches!(r.begin(key, t0 + Duration::from_secs(1)), Seen::Answered(a) if a == vec![2, 7]));
        // Another identifier or authenticator is another request.
        assert!(matches!(r.begin((peer, 8, [1; 16]), t0), Seen::New));
        assert!(matches!(r.begin((peer, 7, [2; 16]), t0), Seen::New));
        // Past the memory's span, the same key is new again.
        assert!(matches!(r.begin(key, t0 + REMEMBER + Duration::from_secs(1)), Seen::New));
        // A request nothing answered is forgotten at once; seen again, its new entry is not
        // expired by the old one's.
        let other = (peer, 9, [3; 16]);
        assert!(matches!(r.begin(other, t0), Seen::New));
        r.finish(&other, None);
        let later = t0 + REMEMBER - Duration::from_secs(1);
        assert!(matches!(r.begin(other, later), Seen::New));
        r.finish(&other, Some(vec![3]));
        assert!(matches!(r.begin(other, t0 + REMEMBER + Duration::from_millis(10)), Seen::Answered(_)));
    }
}
