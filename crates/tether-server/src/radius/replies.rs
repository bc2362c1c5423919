//! The reply attributes a user group may add to its members' Access-Accept
//! (`attributes.radius.reply`), by their dictionary names: the standard attributes network
//! devices act on (a VLAN by group, a filter, timeouts). A name outside this table, or a value
//! of the wrong form, is left out of the answer and logged, never sent half-encoded.

use tether_core::radius::ReplyAttribute;

enum Kind {
    Text,
    Integer,
    Ipv4,
    /// RFC 2868: a tag byte (0: none) then a 24-bit integer.
    TaggedInteger(&'static [(&'static str, u32)]),
}

const TUNNEL_TYPES: &[(&str, u32)] = &[("PPTP", 1), ("L2TP", 3), ("GRE", 10), ("VLAN", 13)];
const TUNNEL_MEDIA: &[(&str, u32)] = &[("IPv4", 1), ("IPv6", 2), ("IEEE-802", 6)];

/// (name, type, kind)
const DICTIONARY: &[(&str, u8, Kind)] = &[
    ("Framed-IP-Address", 8, Kind::Ipv4),
    ("Framed-IP-Netmask", 9, Kind::Ipv4),
    ("Filter-Id", 11, Kind::Text),
    ("Framed-MTU", 12, Kind::Integer),
    ("Reply-Message", 18, Kind::Text),
    ("Class", 25, Kind::Text),
    ("Session-Timeout", 27, Kind::Integer),
    ("Idle-Timeout", 28, Kind::Integer),
    ("Tunnel-Type", 64, Kind::TaggedInteger(TUNNEL_TYPES)),
    ("Tunnel-Medium-Type", 65, Kind::TaggedInteger(TUNNEL_MEDIA)),
    ("Tunnel-Private-Group-Id", 81, Kind::Text),
];

/// The attribute's type and value on the wire, or why it cannot be sent.
pub fn encode(a: &ReplyAttribute) -> Result<(u8, Vec<u8>), String> {
    let Some((_, t, kind)) = DICTIONARY.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(a.name.trim())) else {
        return Err(format!("`{}` is not a reply attribute Tether sends", a.name));
    };
    let v = a.value.trim();
    let value = match kind {
        Kind::Text if !v.is_empty() && v.len() <= 253 => v.as_bytes().to_vec(),
        Kind::Text => return Err(format!("`{}` takes 1 to 253 bytes", a.name)),
        Kind::Integer => v.parse::<u32>().map_err(|_| format!("`{}` takes a number", a.name))?.to_be_bytes().to_vec(),
        Kind::Ipv4 => v
            .parse::<std::net::Ipv4Addr>()
            .map_err(|_| format!("`{}` takes an IPv4 address", a.name))?
            .octets()
            .to_vec(),
        Kind::TaggedInteger(names) => {
            let n = match names.iter().find(|(n, _)| n.eq_ignore_ascii_case(v)) {
                Some((_, n)) => *n,
                None => v.parse::<u32>().ok().filter(|n| *n < 1 << 24).ok_or_else(|| {
                    let known: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                    format!("`{}` takes one of {} or a number", a.name, known.join(", "))
                })?,
            };
            let b = n.to_be_bytes();
            vec![0, b[1], b[2], b[3]]
        }
    };
    Ok((*t, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(name: &str, value: &str) -> Result<(u8, Vec<u8>), String> {
        encode(&ReplyAttribute { name: name.into(), value: value.into() })
    }

    #[test]
    fn a_vlan_by_group_and_the_rest() {
        // FreeRADIUS's encodings of the same values.
        assert_eq!(enc("Tunnel-Type", "VLAN"), Ok((64, vec![0, 0, 0, 13])));
        assert_eq!(enc("tunnel-medium-type", "IEEE-802"), Ok((65, vec![0, 0, 0, 6])));
        assert_eq!(enc("Tunnel-Private-Group-Id", "20"), Ok((81, b"20".to_vec())));
        assert_eq!(enc("Session-Timeout", "3600"), Ok((27, vec![0, 0, 0x0e, 0x10])));
        assert_eq!(enc("Framed-IP-Address", "10.1.2.3"), Ok((8, vec![10, 1, 2, 3])));
        assert_eq!(enc("Filter-Id", "staff"), Ok((11, b"staff".to_vec())));
        assert_eq!(enc("Tunnel-Type", "13"), Ok((64, vec![0, 0, 0, 13])));
        for (name, value) in [
            ("Cisco-AVPair", "x"),
            ("Session-Timeout", "soon"),
            ("Framed-IP-Address", "::1"),
            ("Tunnel-Type", "carrier pigeon"),
            ("Filter-Id", ""),
        ] {
            assert!(enc(name, value).is_err(), "{name}={value}");
        }
    }
}
