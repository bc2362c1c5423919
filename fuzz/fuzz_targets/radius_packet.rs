//! What a network device (or anyone on the network) sends to the RADIUS front end
//! (`tether_server::radius`), through everything the front end does before a decision: the
//! packet parser, the Message-Authenticator check, the User-Password unhiding, and the
//! answer built for it.
//!
//! Properties: nothing panics; a datagram that parses re-reads attribute for attribute from
//! its packet's bytes (its first Length octets); a datagram is only "signed" when it parses and carries one
//! Message-Authenticator; every answer built parses, starts with Message-Authenticator and
//! verifies under the secret it was made with.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_server::radius::packet::{self, attr, Code, Packet};

const SECRET: &[u8] = b"fuzz-secret";

fuzz_target!(|data: &[u8]| {
    let parsed = Packet::parse(data);
    let signed = packet::request_is_signed(data, SECRET);
    let Ok(p) = parsed else {
        assert!(!signed, "an unparsable datagram is never signed");
        return;
    };
    if signed {
        assert_eq!(p.all(attr::MESSAGE_AUTHENTICATOR).count(), 1);
    }
    let packet = packet::packet_of(data).expect("a parsed datagram holds a packet");
    let mut rebuilt = packet[..20].to_vec();
    for (t, v) in &p.attrs {
        rebuilt.push(*t);
        rebuilt.push((v.len() + 2) as u8);
        rebuilt.extend_from_slice(v);
    }
    assert_eq!(rebuilt, packet, "read attribute for attribute");
    if let Some(hidden) = p.get(attr::USER_PASSWORD) {
        if let Ok(pw) = packet::unhide_password(hidden, SECRET, &p.authenticator) {
            assert!(pw.len() <= hidden.len());
        }
    }
    // The answer the front end would send, with the request's Proxy-State.
    let mut attrs: Vec<(u8, Vec<u8>)> = vec![(attr::REPLY_MESSAGE, b"fuzz".to_vec())];
    attrs.extend(p.all(attr::PROXY_STATE).map(|v| (attr::PROXY_STATE, v.to_vec())));
    // Too large to carry the Proxy-States back: no answer (never a cut one).
    let Some(answer) = packet::answer(Code::AccessReject, p.id, &p.authenticator, &attrs, SECRET) else { return };
    let back = Packet::parse(&answer).expect("an answer parses");
    assert_eq!(back.attrs[0].0, attr::MESSAGE_AUTHENTICATOR);
    assert!(packet::answer_is_genuine(&answer, &p.authenticator, SECRET));
});
