//! The RADIUS packet (RFC 2865) and its two keyed checks: the project's own codec, small and
//! strict, on well-kept primitives (`md-5`, `hmac`). No RADIUS crate checks and writes
//! Message-Authenticator the way BlastRADIUS (CVE-2024-3596) requires, and the codec is a
//! few hundred lines: a packet is a header and a list of type-length-value attributes.
//!
//! Parsing refuses anything not exactly well-formed (the length field must match the
//! datagram, every attribute must fit, a Message-Authenticator must be 16 bytes and alone):
//! a request that cannot be read exactly is dropped, never guessed at.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

/// The largest packet (RFC 2865 §3).
pub const MAX_LEN: usize = 4096;
const HEADER: usize = 20;

/// Attribute types used here (RFC 2865, 2869).
pub mod attr {
    pub const USER_NAME: u8 = 1;
    pub const USER_PASSWORD: u8 = 2;
    pub const REPLY_MESSAGE: u8 = 18;
    pub const STATE: u8 = 24;
    pub const PROXY_STATE: u8 = 33;
    pub const EAP_MESSAGE: u8 = 79;
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    AccessRequest,
    AccessAccept,
    AccessReject,
    AccountingRequest,
    AccountingResponse,
    AccessChallenge,
    StatusServer,
}

impl Code {
    fn from_u8(c: u8) -> Option<Code> {
        Some(match c {
            1 => Code::AccessRequest,
            2 => Code::AccessAccept,
            3 => Code::AccessReject,
            4 => Code::AccountingRequest,
            5 => Code::AccountingResponse,
            11 => Code::AccessChallenge,
            12 => Code::StatusServer,
            _ => return None,
        })
    }

    fn as_u8(self) -> u8 {
        match self {
            Code::AccessRequest => 1,
            Code::AccessAccept => 2,
            Code::AccessReject => 3,
            Code::AccountingRequest => 4,
            Code::AccountingResponse => 5,
            Code::AccessChallenge => 11,
            Code::StatusServer => 12,
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("shorter than a RADIUS header")]
    Short,
    #[error("the length field says {field}, the datagram has {actual} bytes")]
    Length { field: usize, actual: usize },
    #[error("unknown code {0}")]
    Code(u8),
    #[error("an attribute runs past the packet or is shorter than its header")]
    Attribute,
    #[error("Message-Authenticator is not 16 bytes, or appears twice")]
    MessageAuthenticator,
    #[error("User-Password is not a multiple of 16 bytes up to 128")]
    Password,
}

/// A packet as read: its header and its attributes in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub code: Code,
    pub id: u8,
    pub authenticator: [u8; 16],
    pub attrs: Vec<(u8, Vec<u8>)>,
}

impl Packet {
    /// Reads a datagram: the packet is its first Length octets (RFC 2865 §3: octets past it
    /// are padding and ignored; a datagram shorter than Length is refused).
    pub fn parse(buf: &[u8]) -> Result<Packet, PacketError> {
        let buf = packet_of(buf)?;
        let code = Code::from_u8(buf[0]).ok_or(PacketError::Code(buf[0]))?;
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&buf[4..HEADER]);
        let mut attrs = Vec::new();
        let mut seen_ma = false;
        for (t, range) in spans(buf)? {
            if t == attr::MESSAGE_AUTHENTICATOR {
                if seen_ma || range.len() != 16 {
                    return Err(PacketError::MessageAuthenticator);
                }
                seen_ma = true;
            }
            attrs.push((t, buf[range].to_vec()));
        }
        Ok(Packet { code, id: buf[1], authenticator, attrs })
    }

    /// The first value of attribute `t`.
    pub fn get(&self, t: u8) -> Option<&[u8]> {
        self.attrs.iter().find(|(a, _)| *a == t).map(|(_, v)| v.as_slice())
    }

    /// Every value of attribute `t`, in order.
    pub fn all(&self, t: u8) -> impl Iterator<Item = &[u8]> {
        self.attrs.iter().filter(move |(a, _)| *a == t).map(|(_, v)| v.as_slice())
    }
}

/// The packet a datagram holds: its first Length octets.
pub fn packet_of(buf: &[u8]) -> Result<&[u8], PacketError> {
    if buf.len() < HEADER {
        return Err(PacketError::Short);
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if len < HEADER || len > buf.len() || len > MAX_LEN {
        return Err(PacketError::Length { field: len, actual: buf.len() });
    }
    Ok(&buf[..len])
}

/// Each attribute's type and the range of its value in `buf` (a whole packet).
fn spans(buf: &[u8]) -> Result<Vec<(u8, std::ops::Range<usize>)>, PacketError> {
    let mut out = Vec::new();
    let mut at = HEADER;
    while at < buf.len() {
        if at + 2 > buf.len() {
            return Err(PacketError::Attribute);
        }
        let l = usize::from(buf[at + 1]);
        if l < 2 || at + l > buf.len() {
            return Err(PacketError::Attribute);
        }
        out.push((buf[at], at + 2..at + l));
        at += l;
    }
    Ok(out)
}

fn hmac_md5(secret: &[u8], parts: &[&[u8]]) -> Hmac<Md5> {
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac
}

fn hmac_md5_bytes(secret: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    hmac_md5(secret, parts).finalize().into_bytes().into()
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Whether a request (the raw datagram, already parsed) carries a Message-Authenticator
/// made with `secret`: HMAC-MD5 of the packet with that attribute's value zeroed (RFC 3579
/// §3.2). Absent counts as wrong: every request must carry one (BlastRADIUS).
pub fn request_is_signed(buf: &[u8], secret: &[u8]) -> bool {
    let Ok(buf) = packet_of(buf) else { return false };
    let Ok(spans) = spans(buf) else { return false };
    let Some((_, range)) = spans.iter().find(|(t, r)| *t == attr::MESSAGE_AUTHENTICATOR && r.len() == 16) else {
        return false;
    };
    let mut zeroed = buf.to_vec();
    zeroed[range.clone()].fill(0);
    // Compared in constant time.
    hmac_md5(secret, &[&zeroed]).verify_slice(&buf[range.clone()]).is_ok()
}

/// An answer to the request `(id, request_authenticator)`: Message-Authenticator first (so
/// no attribute an attacker could choose precedes it), then `attrs`, then the Response
/// Authenticator over all of it (RFC 2865 §3, RFC 3579 §3.2). `None` when the attributes do
/// not fit in a packet (a Proxy-State must come back whole, or there is no answer).
pub fn answer(
    code: Code,
    id: u8,
    request_authenticator: &[u8; 16],
    attrs: &[(u8, Vec<u8>)],
    secret: &[u8],
) -> Option<Vec<u8>> {
    let mut buf = vec![code.as_u8(), id, 0, 0];
    buf.extend_from_slice(request_authenticator);
    buf.extend_from_slice(&[attr::MESSAGE_AUTHENTICATOR, 18]);
    let ma_at = buf.len();
    buf.extend_from_slice(&[0u8; 16]);
    for (t, v) in attrs {
        if v.len() > 253 || buf.len() + 2 + v.len() > MAX_LEN {
            return None;
        }
        buf.push(*t);
        buf.push((v.len() + 2) as u8);
        buf.extend_from_slice(v);
    }
    let len = (buf.len() as u16).to_be_bytes();
    buf[2..4].copy_from_slice(&len);
    let ma = hmac_md5_bytes(secret, &[&buf]);
    buf[ma_at..ma_at + 16].copy_from_slice(&ma);
    let response = md5(&[&buf, secret]);
    buf[4..HEADER].copy_from_slice(&response);
    Some(buf)
}

/// `plain` (whole 16-byte blocks) hidden the way RFC 2865 §5.2 (User-Password) and RFC 2548
/// §2.4.2 (MS-MPPE keys) both do: each block XORed with MD5(secret + the previous hidden
/// block), the first with MD5(secret + `first`).
fn md5_hide(plain: &[u8], secret: &[u8], first: &[&[u8]]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(plain.len());
    for (i, chunk) in plain.chunks(16).enumerate() {
        let b = if i == 0 { first_key(secret, first) } else { md5(&[secret, &out[(i - 1) * 16..i * 16]]) };
        out.extend(chunk.iter().zip(b).map(|(p, k)| p ^ k));
    }
    out
}

/// MD5(secret + `first`): what the first block is XORed with.
fn first_key(secret: &[u8], first: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(secret);
    for p in first {
        h.update(p);
    }
    h.finalize().into()
}

/// What [`md5_hide`] hid.
fn md5_unhide(hidden: &[u8], secret: &[u8], first: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hidden.len());
    for (i, chunk) in hidden.chunks(16).enumerate() {
        let b = if i == 0 { first_key(secret, first) } else { md5(&[secret, &hidden[(i - 1) * 16..i * 16]]) };
        out.extend(chunk.iter().zip(b).map(|(c, k)| c ^ k));
    }
    out
}

/// The password of a User-Password value (RFC 2865 §5.2), without its zero padding.
pub fn unhide_password(hidden: &[u8], secret: &[u8], request_authenticator: &[u8; 16]) -> Result<Vec<u8>, PacketError> {
    if hidden.is_empty() || !hidden.len().is_multiple_of(16) || hidden.len() > 128 {
        return Err(PacketError::Password);
    }
    let mut out = md5_unhide(hidden, secret, &[request_authenticator]);
    while out.last() == Some(&0) {
        out.pop();
    }
    Ok(out)
}

/// Microsoft's vendor number and the MS-MPPE key attributes (RFC 2548 §2.4.2, 2.4.3).
pub const MICROSOFT: u32 = 311;
pub const MS_MPPE_SEND_KEY: u8 = 16;
pub const MS_MPPE_RECV_KEY: u8 = 17;

/// A Vendor-Specific value carrying an MS-MPPE key hidden as RFC 2548 §2.4.2 says: a salt
/// (high bit set, different for each key of an answer), then the key's length and the key,
/// zero-padded to 16-byte blocks, each XORed with MD5(secret + the previous block), the
/// first chained from the Request Authenticator and the salt.
pub fn mppe_key(
    vendor_type: u8,
    key: &[u8],
    salt: [u8; 2],
    secret: &[u8],
    request_authenticator: &[u8; 16],
) -> Vec<u8> {
    let mut plain = vec![key.len() as u8];
    plain.extend_from_slice(key);
    plain.resize(plain.len().div_ceil(16) * 16, 0);
    let salt = [salt[0] | 0x80, salt[1]];
    let hidden = md5_hide(&plain, secret, &[request_authenticator, &salt]);
    let mut out = MICROSOFT.to_be_bytes().to_vec();
    out.push(vendor_type);
    out.push((2 + 2 + hidden.len()) as u8);
    out.extend_from_slice(&salt);
    out.extend_from_slice(&hidden);
    out
}

/// The key of an MS-MPPE Vendor-Specific value (what an access point does; for tests).
pub fn mppe_key_of(value: &[u8], secret: &[u8], request_authenticator: &[u8; 16]) -> Option<(u8, Vec<u8>)> {
    if value.len() < 8 + 16 || value[..4] != MICROSOFT.to_be_bytes() || usize::from(value[5]) != value.len() - 4 {
        return None;
    }
    let (salt, hidden) = (&value[6..8], &value[8..]);
    if !hidden.len().is_multiple_of(16) {
        return None;
    }
    let plain = md5_unhide(hidden, secret, &[request_authenticator, salt]);
    let len = usize::from(plain[0]);
    plain.get(1..1 + len).map(|k| (value[4], k.to_vec()))
}

/// A User-Password value hiding `password` (what a client sends; for tests and the
/// benchmark's client).
pub fn hide_password(password: &[u8], secret: &[u8], request_authenticator: &[u8; 16]) -> Vec<u8> {
    let mut padded = password.to_vec();
    let n = padded.len().div_ceil(16).max(1) * 16;
    padded.resize(n.min(128), 0);
    md5_hide(&padded, secret, &[request_authenticator])
}

/// A request as a client makes one, signed with Message-Authenticator (for tests and the
/// benchmark's client).
pub fn request(code: Code, id: u8, authenticator: &[u8; 16], attrs: &[(u8, Vec<u8>)], secret: &[u8]) -> Vec<u8> {
    let mut buf = vec![code.as_u8(), id, 0, 0];
    buf.extend_from_slice(authenticator);
    for (t, v) in attrs {
        buf.push(*t);
        buf.push((v.len() + 2) as u8);
        buf.extend_from_slice(v);
    }
    buf.extend_from_slice(&[attr::MESSAGE_AUTHENTICATOR, 18]);
    let ma_at = buf.len();
    buf.extend_from_slice(&[0u8; 16]);
    let len = (buf.len() as u16).to_be_bytes();
    buf[2..4].copy_from_slice(&len);
    let ma = hmac_md5_bytes(secret, &[&buf]);
    buf[ma_at..ma_at + 16].copy_from_slice(&ma);
    buf
}

/// Whether an answer to a request with `request_authenticator` was made with `secret`
/// (its Response Authenticator and its Message-Authenticator; for tests and the benchmark).
pub fn answer_is_genuine(buf: &[u8], request_authenticator: &[u8; 16], secret: &[u8]) -> bool {
    if buf.len() < HEADER {
        return false;
    }
    let mut with_request = buf.to_vec();
    with_request[4..HEADER].copy_from_slice(request_authenticator);
    let response_ok = md5(&[&with_request, secret]) == buf[4..HEADER];
    response_ok && request_is_signed(&with_request, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"xyzzy5461";
    const AUTH: [u8; 16] = [7; 16];

    /// RFC 2865 §7.1's example: user "nemo", password "arctangent", secret "xyzzy5461".
    #[test]
    fn the_rfc_password_example() {
        let ra: [u8; 16] =
            [0x0f, 0x40, 0x3f, 0x94, 0x73, 0x97, 0x80, 0x57, 0xbd, 0x83, 0xd5, 0xcb, 0x98, 0xf4, 0x22, 0x7a];
        let hidden = [0x0d, 0xbe, 0x70, 0x8d, 0x93, 0xd4, 0x13, 0xce, 0x31, 0x96, 0xe4, 0x3f, 0x78, 0x2a, 0x0a, 0xee];
        assert_eq!(hide_password(b"arctangent", SECRET, &ra), hidden);
        assert_eq!(unhide_password(&hidden, SECRET, &ra).unwrap(), b"arctangent");
    }

    #[test]
    fn mppe_keys_are_salted_and_read_back() {
        let key: Vec<u8> = (0..32).collect();
        let a = mppe_key(MS_MPPE_RECV_KEY, &key, [1, 2], SECRET, &AUTH);
        // Vendor 311, type, length, salt with its high bit set, 48 hidden bytes (1 + 32 padded).
        assert_eq!((&a[..4], a[4], a[5], a[6], a.len()), (&[0, 0, 1, 0x37][..], 17, 52, 0x81, 56));
        assert!(!a.windows(8).any(|w| w == &key[..8]), "the key is not in clear");
        assert_eq!(mppe_key_of(&a, SECRET, &AUTH), Some((MS_MPPE_RECV_KEY, key.clone())));
        assert_ne!(mppe_key_of(&a, b"another-secret", &AUTH), Some((MS_MPPE_RECV_KEY, key.clone())));
        // Another salt hides the same key differently.
        let b = mppe_key(MS_MPPE_RECV_KEY, &key, [1, 3], SECRET, &AUTH);
        assert_ne!(a[8..], b[8..]);
    }

    #[test]
    fn long_passwords_chain_their_blocks() {
        let pw = b"a password that is longer than sixteen bytes, thrice over...";
        let hidden = hide_password(pw, SECRET, &AUTH);
        assert_eq!(hidden.len(), 64);
        assert_eq!(unhide_password(&hidden, SECRET, &AUTH).unwrap(), pw);
        assert_ne!(unhide_password(&hidden, b"other", &AUTH).unwrap(), pw);
        for bad in [&[][..], &[1u8; 15][..], &[1u8; 144][..]] {
            assert_eq!(unhide_password(bad, SECRET, &AUTH), Err(PacketError::Password));
        }
    }

    #[test]
    fn a_signed_request_reads_back_and_checks() {
        let attrs =
            vec![(attr::USER_NAME, b"nemo".to_vec()), (attr::USER_PASSWORD, hide_password(b"pw", SECRET, &AUTH))];
        let buf = request(Code::AccessRequest, 9, &AUTH, &attrs, SECRET);
        let p = Packet::parse(&buf).unwrap();
        assert_eq!((p.code, p.id, p.get(attr::USER_NAME)), (Code::AccessRequest, 9, Some(&b"nemo"[..])));
        assert!(request_is_signed(&buf, SECRET));
        assert!(!request_is_signed(&buf, b"wrong secret"));
        // Any byte changed breaks the signature.
        let mut tampered = buf.clone();
        tampered[HEADER + 2] ^= 1;
        assert!(!request_is_signed(&tampered, SECRET));
        // No Message-Authenticator: not signed.
        let mut unsigned = vec![1, 9, 0, 0];
        unsigned.extend_from_slice(&AUTH);
        unsigned.extend_from_slice(&[attr::USER_NAME, 6, b'n', b'e', b'm', b'o']);
        let len = (unsigned.len() as u16).to_be_bytes();
        unsigned[2..4].copy_from_slice(&len);
        assert!(Packet::parse(&unsigned).is_ok());
        assert!(!request_is_signed(&unsigned, SECRET));
    }

    #[test]
    fn answers_put_the_message_authenticator_first_and_verify() {
        let attrs = vec![(attr::REPLY_MESSAGE, b"hello".to_vec()), (attr::PROXY_STATE, b"ps".to_vec())];
        let buf = answer(Code::AccessAccept, 3, &AUTH, &attrs, SECRET).unwrap();
        let p = Packet::parse(&buf).unwrap();
        assert_eq!(p.code, Code::AccessAccept);
        assert_eq!(p.attrs[0].0, attr::MESSAGE_AUTHENTICATOR, "first");
        assert_eq!(&p.attrs[1..], &attrs[..]);
        assert!(answer_is_genuine(&buf, &AUTH, SECRET));
        assert!(!answer_is_genuine(&buf, &AUTH, b"other"));
        assert!(!answer_is_genuine(&buf, &[8; 16], SECRET), "bound to its request");
    }

    #[test]
    fn malformed_packets_are_refused() {
        let good = request(Code::AccessRequest, 1, &AUTH, &[(attr::USER_NAME, b"x".to_vec())], SECRET);
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            Packet::parse(&b)
        };
        assert_eq!(Packet::parse(&good[..19]), Err(PacketError::Short));
        assert_eq!(with(&|b| b.extend_from_slice(&[0, 0, 7])), Packet::parse(&good), "padding past Length is ignored");
        let mut padded = good.clone();
        padded.push(9);
        assert!(request_is_signed(&padded, SECRET), "the signature covers Length octets only");
        assert!(matches!(with(&|b| b[3] += 1), Err(PacketError::Length { .. })), "shorter than Length");
        assert!(matches!(with(&|b| b[3] = 19), Err(PacketError::Length { .. })), "Length below a header");
        assert_eq!(with(&|b| b[0] = 99), Err(PacketError::Code(99)));
        assert_eq!(with(&|b| b[HEADER + 1] = 1), Err(PacketError::Attribute), "attribute length below 2");
        assert_eq!(with(&|b| b[HEADER + 1] = 200), Err(PacketError::Attribute), "attribute past the end");
        let twice = {
            let mut b = good.clone();
            b.extend_from_slice(&[attr::MESSAGE_AUTHENTICATOR, 18]);
            b.extend_from_slice(&[0; 16]);
            let len = (b.len() as u16).to_be_bytes();
            b[2..4].copy_from_slice(&len);
            b
        };
        assert_eq!(Packet::parse(&twice), Err(PacketError::MessageAuthenticator));
        // An answer that cannot carry every attribute back whole is not made.
        let big: Vec<(u8, Vec<u8>)> = (0..20).map(|_| (attr::PROXY_STATE, vec![1; 250])).collect();
        assert!(answer(Code::AccessReject, 1, &AUTH, &big, SECRET).is_none());
        assert!(answer(Code::AccessReject, 1, &AUTH, &[(attr::PROXY_STATE, vec![1; 254])], SECRET).is_none());
    }
}
