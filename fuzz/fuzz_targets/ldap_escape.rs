//! The escaping of values the agents put into LDAP filters and DNs, and the parsing of AD's
//! text, fed the input as text (for names: given name and surname on its first two lines):
//! - filter values: `ldap3::ldap_escape` as the agents use it in their sAMAccountName
//!   filters, and `tether_ad::read::guid_filter_value` in their objectGUID filters;
//! - RDN values: `ldap3::dn_escape` of a CN as `tether_ad` builds it (`NewUser::cn`) and as
//!   the sync agent names groups;
//! - `BindFailure::from_diagnostic` (AD's bind diagnostics), `unicode_pwd`, `filetime_to_unix`.
//!
//! Properties (RFC 4515 / RFC 4514): an escaped filter value has no `(`, `)`, `*`, NUL or a
//! backslash not followed by two hex digits, and the agents' filters built with it parse
//! (with ldap3's own parser, the one that encodes them for AD) to exactly the intended
//! structure whose value is the original bytes; an objectGUID filter either parses to one
//! equality on objectGUID with the decoded bytes or not at all (never to another filter);
//! an escaped RDN value has no unescaped `"+,;<=>\`, NUL, leading space or `#`, or trailing
//! space, so a DN built with it has exactly the intended RDNs; escaping round-trips through
//! `ldap_unescape`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_ad::ldap3::asn1::{OctetString, Sequence, Tag, TagClass};
use tether_ad::ldap3::{dn_escape, ldap_escape, ldap_unescape, parse_filter};
use tether_ad::read::{filetime_to_unix, guid_filter_value};
use tether_ad::{unicode_pwd, BindFailure, NewUser};

const AND: u64 = 0;
const EQ: u64 = 3;

/// Every backslash starts `\XX` with two hex digits.
fn hex_escapes_only(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if i + 2 >= b.len() || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit() {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn octets(t: &Tag) -> &[u8] {
    match t {
        Tag::OctetString(OctetString { inner, .. }) => inner,
        other => panic!("not an octet string: {other:?}"),
    }
}

/// `(attr=value)` with the value's bytes, as ldap3 encodes an equality match.
fn is_eq(t: &Tag, attr: &str, value: &[u8]) -> bool {
    match t {
        Tag::Sequence(Sequence { class: TagClass::Context, id: EQ, inner }) if inner.len() == 2 => {
            octets(&inner[0]) == attr.as_bytes() && octets(&inner[1]) == value
        }
        _ => false,
    }
}

/// `(&(a=v)...)` whose conditions are exactly `terms`, equality matches in this order.
fn check_and(filter: &str, terms: &[(&str, &[u8])]) {
    let t = parse_filter(filter).unwrap_or_else(|()| panic!("the agent's filter does not parse: {filter}"));
    let Tag::Sequence(Sequence { class: TagClass::Context, id: AND, inner }) = &t else {
        panic!("not an AND filter: {filter} is {t:?}");
    };
    assert_eq!(inner.len(), terms.len(), "{filter} is {t:?}");
    for ((a, v), c) in terms.iter().zip(inner) {
        assert!(is_eq(c, a, v), "{filter} does not match {a} = {v:?}: {c:?}");
    }
}

fn filter_value(s: &str) {
    let e = ldap_escape(s);
    assert!(!e.bytes().any(|c| matches!(c, b'(' | b')' | b'*' | 0)), "{s:?} escaped as {e:?}");
    assert!(hex_escapes_only(&e), "{s:?} escaped as {e:?}");
    assert_eq!(ldap_unescape(e.as_ref()).expect("its own escapes unescape"), s);
    // The users' lookup by name (tether-ad's `by_username`, the agents' too), and
    // sync_groups.rs find_group's, the name first in both.
    let user = [("sAMAccountName", s.as_bytes()), ("objectCategory", b"person"), ("objectClass", b"user")];
    check_and(&tether_ad::by_username(s), &user);
    let group = [("sAMAccountName", s.as_bytes()), ("objectClass", b"group")];
    check_and(&format!("(&(sAMAccountName={e})(objectClass=group))"), &group);
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

fn guid(g: &str) {
    let v = guid_filter_value(g);
    let decoded = hex_decode(g);
    // tether-agent sync.rs find_user (any 32-byte guid from the feed).
    let f = format!("(objectGUID={v})");
    match (parse_filter(&f), &decoded) {
        (Ok(t), Some(bytes)) => assert!(is_eq(&t, "objectGUID", bytes), "{g:?}: {f} is {t:?}"),
        (Err(()), None) => {}
        (Ok(t), None) => panic!("a guid that is not hex makes a filter: {g:?} gives {f} = {t:?}"),
        (Err(()), Some(_)) => panic!("a hex guid makes no filter: {g:?} gives {f}"),
    }
    // tether-agent sync_groups.rs find_group.
    let f = format!("(&(objectGUID={v})(objectClass=group))");
    match &decoded {
        Some(bytes) => check_and(&f, &[("objectGUID", bytes), ("objectClass", b"group")]),
        None => assert!(parse_filter(&f).is_err(), "a guid that is not hex makes a filter: {g:?} gives {f}"),
    }
}

/// Splits a DN into its RDNs at the commas that are not escaped (RFC 4514 section 2.4).
fn rdns(dn: &str) -> Vec<&str> {
    let b = dn.as_bytes();
    let (mut out, mut start, mut i) = (Vec::new(), 0, 0);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b',' => {
                out.push(&dn[start..i]);
                start = i + 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    out.push(&dn[start..]);
    out
}

fn rdn_value(s: &str) {
    let e = dn_escape(s);
    let b = e.as_bytes();
    assert!(hex_escapes_only(&e), "{s:?} escaped as {e:?}");
    assert!(!b.iter().any(|c| matches!(c, b'"' | b'+' | b',' | b';' | b'<' | b'=' | b'>' | 0)), "{s:?} as {e:?}");
    assert!(!matches!(b.first(), Some(b' ' | b'#')), "{s:?} escaped as {e:?}");
    assert!(!matches!(b.last(), Some(b' ')), "{s:?} escaped as {e:?}");
    assert_eq!(ldap_unescape(e.as_ref()).expect("its own escapes unescape"), s);
    // tether-ad users.rs create_user_as and create_group, tether-agent sync_groups.rs.
    let container = "CN=Users,DC=corp,DC=example,DC=com";
    let dn = format!("CN={e},{container}");
    let parts = rdns(&dn);
    assert_eq!(parts.len(), 5, "{s:?} makes the DN {dn}");
    assert_eq!(parts[0], format!("CN={e}"));
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    filter_value(&text);
    rdn_value(&text);
    guid(&text);
    if data.len() >= 16 {
        // A 32-character value, as the agents accept from the feed.
        guid(&data[..16].iter().map(|b| format!("{b:02x}")).collect::<String>());
    }
    let mut lines = text.splitn(3, '\n');
    let (given, sn) = (lines.next().unwrap_or_default(), lines.next().unwrap_or_default());
    let nu = NewUser {
        container: "CN=Users,DC=c",
        sam_account_name: given,
        given_name: given,
        sn,
        mail: sn,
        password: None,
    };
    let cn = nu.cn();
    assert_eq!(cn, cn.trim());
    rdn_value(&cn);
    filter_value(given);

    let f = BindFailure::from_diagnostic(&text);
    assert!(!f.reason().is_empty());
    let pwd = unicode_pwd(&text);
    assert_eq!(pwd.len() % 2, 0);
    let units: Vec<u16> = pwd.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    assert_eq!(String::from_utf16(&units).expect("UTF-16"), format!("\"{text}\""));
    if let Some(b) = data.get(..8) {
        let ft = i64::from_le_bytes(b.try_into().expect("8 bytes"));
        if let Some(secs) = filetime_to_unix(ft) {
            assert!(ft > 0 && ft != i64::MAX, "{ft} gives {secs}");
        }
    }
});
