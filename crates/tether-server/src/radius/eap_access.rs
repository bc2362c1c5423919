//! EAP requests (RFC 3579): the round trips of an EAP-TTLS conversation, then the same
//! access decision as PAP for the name and password the tunnel carried.
//!
//! A conversation begins with the supplicant's EAP-Response/Identity (an access point that
//! sends EAP-Start, an empty EAP-Message, is first asked for it); the name there is only the
//! outer identity (often `anonymous`) and decides nothing. An Identity response always
//! begins anew, dropping the conversation its `State` named (a supplicant restarting after
//! roaming sends one with the last `State` its access point saw). Every
//! refusal ends with an EAP-Failure in an Access-Reject. The Access-Accept carries
//! EAP-Success, the link's keys (MS-MPPE-Recv-Key and MS-MPPE-Send-Key, hidden with the
//! shared secret), the inner User-Name and the groups' reply attributes.

use std::time::Instant;

use super::eap::{self, method};
use super::packet::{self, attr, Code, Packet};
use super::ttls::{Conversation, Step};
use super::{reply_attributes, Outcome, Shared};
use crate::ops::radius::{Access, Client};

const VENDOR_SPECIFIC: u8 = 26;
const USER_NAME: u8 = attr::USER_NAME;
const FRAMED_MTU: u8 = 12;

type Decided = crate::error::ApiResult<(Outcome, Code, Vec<(u8, Vec<u8>)>)>;

fn eap_attrs(eap: &[u8]) -> Vec<(u8, Vec<u8>)> {
    eap::split(eap).into_iter().map(|v| (attr::EAP_MESSAGE, v)).collect()
}

fn failure(id: u8) -> Decided {
    Ok((Outcome::Rejected, Code::AccessReject, eap_attrs(&eap::outcome(false, id))))
}

impl Shared {
    pub(super) async fn eap(&self, request: &Packet, client: &Client) -> Decided {
        let joined: Vec<u8> = request.all(attr::EAP_MESSAGE).flatten().copied().collect();
        if joined.is_empty() {
            // EAP-Start (RFC 3579 §2.1): ask for the identity.
            let mut id = [0u8; 1];
            getrandom::fill(&mut id).expect("the OS random source works");
            return Ok((
                Outcome::Challenged,
                Code::AccessChallenge,
                eap_attrs(&eap::request(id[0], method::IDENTITY, &[])),
            ));
        }
        let message = match eap::parse(&joined) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(server = %client.server.id, "EAP refused: {e}");
                return failure(0);
            }
        };
        let now = Instant::now();
        let state = request.get(attr::STATE);
        let taken =
            state.and_then(|st| self.conversations.lock().expect("not poisoned").take(st, &client.server.id, now));
        if message.code == eap::code::RESPONSE && message.method == Some(method::IDENTITY) {
            let Some(config) = &self.eap else {
                tracing::warn!(server = %client.server.id, "EAP refused: tetherd has no TLS certificate (--tls-cert)");
                return failure(message.id);
            };
            let mtu = request.get(FRAMED_MTU).and_then(|v| <[u8; 4]>::try_from(v).ok()).map(u32::from_be_bytes);
            let fragment = eap::fragment_size(mtu);
            return match Conversation::start(config.clone(), &client.server.id, message.id, fragment, now) {
                Ok((c, start)) => self.challenge(c, &start, message.id, now),
                Err(e) => {
                    tracing::warn!("EAP-TTLS could not start: {e}");
                    failure(message.id)
                }
            };
        }
        let Some(mut conversation) = taken else { return failure(message.id) };
        match conversation.respond(&message) {
            Step::Continue(next) => self.challenge(conversation, &next, message.id, now),
            Step::Fail(why) => {
                tracing::info!(server = %client.server.id, "EAP-TTLS refused: {why}");
                failure(message.id)
            }
            Step::Credentials { username, password, msk } => {
                let s = &self.state;
                match crate::ops::radius::access(s, &client.server, &username, password, None, false).await? {
                    Access::Accept(replies) => {
                        let mut attrs = eap_attrs(&eap::outcome(true, message.id));
                        let mut salt = [0u8; 2];
                        getrandom::fill(&mut salt).expect("the OS random source works");
                        let (secret, ra) = (&client.secret, &request.authenticator);
                        // The first 32 bytes key what the access point receives, the next what it sends.
                        let recv = packet::mppe_key(packet::MS_MPPE_RECV_KEY, &msk[..32], salt, secret, ra);
                        let send =
                            packet::mppe_key(packet::MS_MPPE_SEND_KEY, &msk[32..], [salt[0], salt[1] ^ 1], secret, ra);
                        attrs.push((VENDOR_SPECIFIC, recv));
                        attrs.push((VENDOR_SPECIFIC, send));
                        if username.len() <= 253 {
                            attrs.push((USER_NAME, username.into_bytes()));
                        }
                        attrs.extend(reply_attributes(&replies, client));
                        Ok((Outcome::Accepted, Code::AccessAccept, attrs))
                    }
                    Access::Reject | Access::Challenge(_) => failure(message.id),
                }
            }
        }
    }

    /// An Access-Challenge carrying `request`, the conversation kept under a new `State`.
    fn challenge(&self, c: Conversation, request: &[u8], id: u8, now: Instant) -> Decided {
        let Some(state) = self.conversations.lock().expect("not poisoned").put(c, now) else {
            tracing::warn!("EAP refused: {} conversations in progress already", super::ttls::AT_ONCE);
            return failure(id);
        };
        let mut attrs = eap_attrs(request);
        attrs.push((attr::STATE, state.to_vec()));
        Ok((Outcome::Challenged, Code::AccessChallenge, attrs))
    }
}
