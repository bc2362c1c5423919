//! What a supplicant (through any access point with the shared secret) sends to the EAP-TTLS
//! front end (`tether_server::radius::{eap, ttls}`): EAP packets, TTLS fragments and their
//! flags, TLS records, and the Diameter AVPs of the tunnel, through one conversation's
//! state machine.
//!
//! The input is a sequence of messages (a length byte, then that many bytes); a message whose
//! first byte is odd is sent as a TTLS response with the identifier the server expects (so
//! the fuzzer reaches the fragment and TLS logic), an even one as raw EAP bytes.
//!
//! Properties: nothing panics; every request the server makes parses, is EAP-TTLS with
//! version 0 and fits one fragment; a conversation ends (no endless round trips); the
//! byte-level parsers never read past their input, and an AVP written re-reads as written.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tether_server::radius::eap::{self, flag, method};
use tether_server::radius::ttls::{Conversation, Step};

/// The TLS configuration of a throwaway self-signed certificate, made once.
fn config() -> Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
            let dir = std::env::temp_dir().join(format!("tether-fuzz-eap-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
            std::fs::write(&c, cert.pem()).unwrap();
            std::fs::write(&k, key.serialize_pem()).unwrap();
            let tls = tether_server::tls::ServerTls::load(&c, &k).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            tls.config_for_eap()
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    // The parsers alone.
    if let Ok(e) = eap::parse(data) {
        assert_eq!(usize::from(u16::from_be_bytes([data[2], data[3]])), data.len());
        if let Ok(f) = eap::frame(e.data) {
            assert_eq!(f.flags & flag::VERSION, 0);
            let mut inbound = eap::Inbound::default();
            if let Ok(Some(m)) = inbound.push(&f) {
                assert!(m.len() <= eap::MESSAGE_MAX);
            }
        }
    }
    if let Ok(avps) = eap::avps(data) {
        assert!(avps.iter().map(|a| a.data.len()).sum::<usize>() <= data.len());
        // Mandatory AVPs without a vendor re-read as written.
        for a in avps.iter().filter(|a| a.vendor.is_none() && a.mandatory) {
            let again = eap::avp(a.code, a.data);
            let back = eap::avps(&again).expect("an AVP as written reads");
            assert_eq!((back[0].code, back[0].data), (a.code, a.data));
        }
    }
    let _ = eap::inner_pap(data);

    // The conversation.
    let (mut c, start) =
        Conversation::start(config(), "fuzz", 1, eap::FRAGMENT_MIN, std::time::Instant::now()).unwrap();
    let mut id = eap::parse(&start).unwrap().id;
    let mut rest = data;
    let mut rounds = 0;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        let (msg, tail) = tail.split_at(n);
        rest = tail;
        let bytes = match msg.split_first() {
            Some((k, body)) if k % 2 == 1 => eap::response(id, method::TTLS, body),
            Some((_, body)) => body.to_vec(),
            None => eap::response(id, method::TTLS, &[]),
        };
        let Ok(message) = eap::parse(&bytes) else { continue };
        rounds += 1;
        match c.respond(&message) {
            Step::Continue(next) => {
                let next = eap::parse(&next).expect("the server's requests parse");
                assert_eq!((next.code, next.method), (eap::code::REQUEST, Some(method::TTLS)));
                let f = eap::frame(next.data).expect("and their TTLS framing");
                assert!(f.tls.len() <= eap::FRAGMENT_MIN);
                id = next.id;
            }
            Step::Credentials { .. } | Step::Fail(_) => return,
        }
        assert!(rounds <= 64, "a conversation ends");
    }
});
