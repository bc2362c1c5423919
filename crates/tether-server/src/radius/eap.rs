//! EAP inside RADIUS (RFC 3579), the EAP-TTLS framing (RFC 5281 §9) and the Diameter AVPs
//! the tunnel carries: the byte-level part of WPA-Enterprise, kept free of TLS and I/O so it
//! can be tested by tables and fuzzed.
//!
//! Everything a supplicant sends is read strictly: an EAP length that does not match, a
//! TTLS message longer than it announced or than [`MESSAGE_MAX`], an AVP that runs past its
//! buffer, each ends the conversation (the caller answers with an EAP-Failure). A TLS
//! handshake has no business being larger than a few certificates.

/// EAP codes (RFC 3748 §4).
pub mod code {
    pub const REQUEST: u8 = 1;
    pub const RESPONSE: u8 = 2;
    pub const SUCCESS: u8 = 3;
    pub const FAILURE: u8 = 4;
}

/// EAP method types used here (RFC 3748 §5, RFC 5281).
pub mod method {
    pub const IDENTITY: u8 = 1;
    pub const NAK: u8 = 3;
    pub const TTLS: u8 = 21;
}

/// TTLS flags (RFC 5281 §9.2): Length included, More fragments, Start; the low three bits
/// are the version (0).
pub mod flag {
    pub const LENGTH: u8 = 0x80;
    pub const MORE: u8 = 0x40;
    pub const START: u8 = 0x20;
    pub const VERSION: u8 = 0x07;
}

/// The largest TTLS message (all its fragments) read from a supplicant: no client
/// certificate is asked for, so a supplicant's flight is a few hundred bytes.
pub const MESSAGE_MAX: usize = 16 * 1024;
/// TLS bytes per fragment sent at most: with EAP and RADIUS headers an answer stays near
/// 1,100 bytes, under any path's MTU (FreeRADIUS's default `fragment_size` is 1,024 too).
pub const FRAGMENT: usize = 1000;
/// The smallest fragment, whatever the access point's Framed-MTU says (a handshake must fit
/// in the conversation's round trips).
pub const FRAGMENT_MIN: usize = 256;

/// The TLS bytes per fragment for an access point whose link carries `framed_mtu` bytes
/// (RADIUS Framed-MTU, when it sent one): the EAPOL, EAP and TTLS headers (14 bytes) must
/// fit too.
pub fn fragment_size(framed_mtu: Option<u32>) -> usize {
    let fits = framed_mtu.map_or(FRAGMENT, |m| (m as usize).saturating_sub(14));
    fits.clamp(FRAGMENT_MIN, FRAGMENT)
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EapError {
    #[error("the EAP length field does not match the EAP-Message attributes")]
    Length,
    #[error("an EAP request or response without a method type")]
    NoType,
    #[error("the TTLS flags ask for version {0} (only 0 exists)")]
    Version(u8),
    #[error("a TTLS Length flag without the four length bytes")]
    ShortLength,
    #[error("a TTLS message longer than announced or than the limit")]
    TooLong,
    #[error("a TTLS message shorter than it announced")]
    Short,
    #[error("a Diameter AVP runs past its buffer or is shorter than its header")]
    Avp,
    #[error("a mandatory AVP this server does not know: {0}")]
    UnknownMandatory(u32),
    #[error("no User-Name or User-Password AVP in the tunnel")]
    NoCredentials,
}

/// One EAP packet as read.
#[derive(Debug, PartialEq, Eq)]
pub struct Eap<'a> {
    pub code: u8,
    pub id: u8,
    /// The method type (requests and responses only).
    pub method: Option<u8>,
    /// What follows the type (requests and responses) or the header.
    pub data: &'a [u8],
}

/// Reads the EAP packet `buf` (the EAP-Message attributes of one RADIUS packet, joined).
pub fn parse(buf: &[u8]) -> Result<Eap<'_>, EapError> {
    if buf.len() < 4 || usize::from(u16::from_be_bytes([buf[2], buf[3]])) != buf.len() {
        return Err(EapError::Length);
    }
    let (code, id) = (buf[0], buf[1]);
    if matches!(code, code::REQUEST | code::RESPONSE) {
        let Some(&method) = buf.get(4) else { return Err(EapError::NoType) };
        return Ok(Eap { code, id, method: Some(method), data: &buf[5..] });
    }
    Ok(Eap { code, id, method: None, data: &buf[4..] })
}

/// An EAP request of `method` carrying `data`.
pub fn request(id: u8, method: u8, data: &[u8]) -> Vec<u8> {
    let len = (5 + data.len()) as u16;
    let mut out = vec![code::REQUEST, id];
    out.extend_from_slice(&len.to_be_bytes());
    out.push(method);
    out.extend_from_slice(data);
    out
}

/// A response (what a supplicant sends; for tests and the fuzz target).
pub fn response(id: u8, method: u8, data: &[u8]) -> Vec<u8> {
    let mut out = request(id, method, data);
    out[0] = code::RESPONSE;
    out
}

/// EAP-Success or EAP-Failure answering the response `id`.
pub fn outcome(success: bool, id: u8) -> Vec<u8> {
    vec![if success { code::SUCCESS } else { code::FAILURE }, id, 0, 4]
}

/// The EAP-Message attribute values carrying `eap` (at most 253 bytes each, RFC 3579 §3.1).
pub fn split(eap: &[u8]) -> Vec<Vec<u8>> {
    eap.chunks(253).map(<[u8]>::to_vec).collect()
}

/// One TTLS message or fragment as read: its flags, the announced total length, the TLS bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub flags: u8,
    pub total: Option<usize>,
    pub tls: &'a [u8],
}

/// Reads the data of an EAP-TTLS response.
pub fn frame(data: &[u8]) -> Result<Frame<'_>, EapError> {
    let Some(&flags) = data.first() else { return Ok(Frame { flags: 0, total: None, tls: &[] }) };
    if flags & flag::VERSION != 0 {
        return Err(EapError::Version(flags & flag::VERSION));
    }
    if flags & flag::LENGTH == 0 {
        return Ok(Frame { flags, total: None, tls: &data[1..] });
    }
    let Some(len) = data.get(1..5) else { return Err(EapError::ShortLength) };
    let total = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    Ok(Frame { flags, total: Some(total), tls: &data[5..] })
}

/// The data of a TTLS request: `flags` and, when given, the total length, then `tls`.
pub fn frame_bytes(flags: u8, total: Option<usize>, tls: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    if let Some(t) = total {
        out.extend_from_slice(&(t as u32).to_be_bytes());
    }
    out.extend_from_slice(tls);
    out
}

/// A supplicant's TTLS message gathered from its fragments.
#[derive(Debug, Default)]
pub struct Inbound {
    buf: Vec<u8>,
    expected: Option<usize>,
}

impl Inbound {
    /// Adds a fragment; the whole message once its last fragment (no More flag) arrived.
    pub fn push(&mut self, f: &Frame<'_>) -> Result<Option<Vec<u8>>, EapError> {
        if let Some(total) = f.total {
            // The first fragment announces the length; a later announcement must agree.
            if total > MESSAGE_MAX || self.expected.is_some_and(|e| e != total) {
                return Err(EapError::TooLong);
            }
            self.expected = Some(total);
        }
        let limit = self.expected.unwrap_or(MESSAGE_MAX);
        if self.buf.len() + f.tls.len() > limit {
            return Err(EapError::TooLong);
        }
        self.buf.extend_from_slice(f.tls);
        if f.flags & flag::MORE != 0 {
            return Ok(None);
        }
        // The last fragment: the message must be as long as it announced.
        if self.expected.take().is_some_and(|e| e != self.buf.len()) {
            return Err(EapError::Short);
        }
        Ok(Some(std::mem::take(&mut self.buf)))
    }

    /// Whether part of a message is waiting for its next fragment.
    pub fn partial(&self) -> bool {
        !self.buf.is_empty() || self.expected.is_some()
    }
}

/// A TLS message for the supplicant, sent a fragment per round trip.
#[derive(Debug, Default)]
pub struct Outbound {
    data: Vec<u8>,
    sent: usize,
}

impl Outbound {
    pub fn new(data: Vec<u8>) -> Outbound {
        Outbound { data, sent: 0 }
    }

    /// Whether fragments remain to be sent.
    pub fn pending(&self) -> bool {
        self.sent < self.data.len()
    }

    /// The TTLS data of the next fragment of at most `size` TLS bytes (Length on the first
    /// of several, More on all but the last).
    pub fn next_fragment(&mut self, size: usize) -> Vec<u8> {
        let rest = &self.data[self.sent..];
        let chunk = &rest[..rest.len().min(size)];
        let more = chunk.len() < rest.len();
        let mut flags = if more { flag::MORE } else { 0 };
        let total = (self.sent == 0 && more).then_some(self.data.len());
        if total.is_some() {
            flags |= flag::LENGTH;
        }
        let out = frame_bytes(flags, total, chunk);
        self.sent += chunk.len();
        out
    }
}

/// One Diameter AVP (RFC 5281 §10.1).
#[derive(Debug, PartialEq, Eq)]
pub struct Avp<'a> {
    pub code: u32,
    pub vendor: Option<u32>,
    pub mandatory: bool,
    pub data: &'a [u8],
}

const AVP_VENDOR: u8 = 0x80;
const AVP_MANDATORY: u8 = 0x40;

/// The AVPs of `buf`, each padded to four bytes (the last one's padding may be absent).
pub fn avps(buf: &[u8]) -> Result<Vec<Avp<'_>>, EapError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let head = buf.get(at..at + 8).ok_or(EapError::Avp)?;
        let code = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let flags = head[4];
        let len = usize::from(head[5]) << 16 | usize::from(head[6]) << 8 | usize::from(head[7]);
        let header = if flags & AVP_VENDOR != 0 { 12 } else { 8 };
        if len < header || at + len > buf.len() {
            return Err(EapError::Avp);
        }
        let vendor = (flags & AVP_VENDOR != 0)
            .then(|| u32::from_be_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]));
        out.push(Avp { code, vendor, mandatory: flags & AVP_MANDATORY != 0, data: &buf[at + header..at + len] });
        at += len.div_ceil(4) * 4;
    }
    Ok(out)
}

/// An AVP as a supplicant writes one (mandatory, no vendor; for tests and the fuzz target).
pub fn avp(code: u32, data: &[u8]) -> Vec<u8> {
    let len = 8 + data.len();
    let mut out = code.to_be_bytes().to_vec();
    out.push(AVP_MANDATORY);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(data);
    out.resize(len.div_ceil(4) * 4, 0);
    out
}

/// RADIUS attribute numbers as AVP codes (RFC 5281 §10.2: the RADIUS space below 256).
const USER_NAME: u32 = 1;
const USER_PASSWORD: u32 = 2;

/// The user name and password of PAP in the tunnel (RFC 5281 §11.2.5): the User-Password
/// AVP is the password padded with zeros. Any other mandatory AVP (an inner EAP, CHAP, …)
/// is a method this server does not offer: refused, as §10.1 requires.
pub fn inner_pap(buf: &[u8]) -> Result<(String, String), EapError> {
    let (mut user, mut password) = (None, None);
    for a in avps(buf)? {
        match (a.vendor, a.code) {
            (None, USER_NAME) => user = Some(a.data),
            (None, USER_PASSWORD) => password = Some(a.data),
            (vendor, code) if a.mandatory => return Err(EapError::UnknownMandatory(vendor.unwrap_or(0) << 16 | code)),
            _ => {}
        }
    }
    let (Some(user), Some(password)) = (user, password) else { return Err(EapError::NoCredentials) };
    let end = password.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| EapError::NoCredentials);
    Ok((text(user)?, text(&password[..end])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eap_packets_read_exactly() {
        let identity = response(7, method::IDENTITY, b"anonymous");
        assert_eq!(
            parse(&identity),
            Ok(Eap { code: code::RESPONSE, id: 7, method: Some(method::IDENTITY), data: b"anonymous" })
        );
        assert_eq!(parse(&outcome(true, 9)), Ok(Eap { code: code::SUCCESS, id: 9, method: None, data: &[] }));
        let table: &[(&[u8], EapError)] = &[
            (&[2, 1, 0], EapError::Length),
            (&[2, 1, 0, 6, 1], EapError::Length),
            (&[2, 1, 0, 4], EapError::NoType),
            (&[2, 1, 0, 5, 1, 0], EapError::Length),
        ];
        for (bytes, err) in table {
            assert_eq!(parse(bytes).as_ref(), Err(err), "{bytes:?}");
        }
        let long = request(1, method::TTLS, &[5; 600]);
        let parts = split(&long);
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [253, 253, 99]);
        assert_eq!(parts.concat(), long);
    }

    #[test]
    fn fragments_are_sent_with_length_first_and_more_until_the_last() {
        let mut out = Outbound::new((0..2500u32).map(|i| i as u8).collect());
        let first = out.next_fragment(FRAGMENT);
        assert_eq!(first[0], flag::LENGTH | flag::MORE);
        assert_eq!(&first[1..5], &2500u32.to_be_bytes());
        assert_eq!(first.len(), 5 + FRAGMENT);
        let second = out.next_fragment(FRAGMENT);
        assert_eq!((second[0], second.len()), (flag::MORE, 1 + FRAGMENT));
        let last = out.next_fragment(FRAGMENT);
        assert_eq!((last[0], last.len()), (0, 1 + 500));
        assert!(!out.pending());
        // One fragment needs no length.
        assert_eq!(Outbound::new(vec![1, 2]).next_fragment(FRAGMENT), vec![0, 1, 2]);
        // The access point's Framed-MTU, within bounds.
        let table = [
            (None, FRAGMENT),
            (Some(1400), FRAGMENT),
            (Some(500), 486),
            (Some(100), FRAGMENT_MIN),
            (Some(0), FRAGMENT_MIN),
        ];
        for (mtu, size) in table {
            assert_eq!(fragment_size(mtu), size, "{mtu:?}");
        }
    }

    #[test]
    fn fragments_are_gathered_and_bounded() {
        let mut inb = Inbound::default();
        let a = frame_bytes(flag::LENGTH | flag::MORE, Some(6), &[1, 2, 3]);
        assert_eq!(inb.push(&frame(&a).unwrap()), Ok(None));
        assert!(inb.partial());
        assert_eq!(inb.push(&frame(&[0, 4, 5, 6]).unwrap()), Ok(Some(vec![1, 2, 3, 4, 5, 6])));
        assert!(!inb.partial());
        // More than announced, more than the limit, a second announcement that disagrees.
        let mut inb = Inbound::default();
        let a = frame_bytes(flag::LENGTH | flag::MORE, Some(4), &[1, 2, 3]);
        inb.push(&frame(&a).unwrap()).unwrap();
        assert_eq!(inb.push(&frame(&[0, 4, 5]).unwrap()), Err(EapError::TooLong));
        let huge = frame_bytes(flag::LENGTH | flag::MORE, Some(MESSAGE_MAX + 1), &[]);
        assert_eq!(Inbound::default().push(&frame(&huge).unwrap()), Err(EapError::TooLong));
        let mut inb = Inbound::default();
        inb.push(&frame(&frame_bytes(flag::LENGTH | flag::MORE, Some(9), &[1])).unwrap()).unwrap();
        let other = frame_bytes(flag::LENGTH, Some(8), &[2]);
        assert_eq!(inb.push(&frame(&other).unwrap()), Err(EapError::TooLong));
        // Shorter than announced.
        let mut inb = Inbound::default();
        inb.push(&frame(&frame_bytes(flag::LENGTH | flag::MORE, Some(9), &[1])).unwrap()).unwrap();
        assert_eq!(inb.push(&frame(&[0, 2]).unwrap()), Err(EapError::Short));
        // Version 1 and a cut length are refused; an empty response is an acknowledgement.
        assert_eq!(frame(&[1]), Err(EapError::Version(1)));
        assert_eq!(frame(&[flag::LENGTH, 0, 0]), Err(EapError::ShortLength));
        assert_eq!(frame(&[]), Ok(Frame { flags: 0, total: None, tls: &[] }));
    }

    #[test]
    fn pap_in_the_tunnel() {
        // wpa_supplicant pads the password to 16 bytes with zeros.
        let mut pw = b"Secret-1".to_vec();
        pw.resize(16, 0);
        let buf = [avp(USER_NAME, b"ada"), avp(USER_PASSWORD, &pw)].concat();
        assert_eq!(inner_pap(&buf), Ok(("ada".into(), "Secret-1".into())));
        // An inner EAP-Message (79) is a method not offered; a non-mandatory unknown AVP is skipped.
        let eap = [avp(USER_NAME, b"ada"), avp(79, &[2, 1, 0, 5, 1])].concat();
        assert_eq!(inner_pap(&eap), Err(EapError::UnknownMandatory(79)));
        let mut optional = avp(500, b"x");
        optional[4] = 0;
        let buf = [optional, avp(USER_NAME, b"ada"), avp(USER_PASSWORD, b"pw")].concat();
        assert_eq!(inner_pap(&buf), Ok(("ada".into(), "pw".into())));
        assert_eq!(inner_pap(&avp(USER_NAME, b"ada")), Err(EapError::NoCredentials));
        // Lengths shorter than the header or past the buffer.
        assert_eq!(avps(&[0, 0, 0, 1, 0x40, 0, 0, 4]), Err(EapError::Avp));
        assert_eq!(avps(&[0, 0, 0, 1, 0x40, 0, 0, 12, 1]), Err(EapError::Avp));
        assert_eq!(avps(&[0, 0, 0, 1, 0xc0, 0, 0, 8]), Err(EapError::Avp));
    }
}
