//! TOTP second factors (RFC 6238, as CONTRACT.md fixes them: SHA-1, 6 digits, 30 s, one step
//! of clock skew either way, each code accepted once). The code arithmetic is `totp-rs`'s;
//! what is decided here is which time step a code belongs to, so a caller can refuse a step
//! already used, and the enrollment URI authenticator apps read.

use totp_rs::{Algorithm, TOTP};

pub const DIGITS: usize = 6;
pub const PERIOD: u64 = 30;
/// Steps accepted on either side of the current one.
pub const SKEW: u64 = 1;
/// The length of a new secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;

fn totp(secret: &[u8]) -> Option<TOTP> {
    // totp-rs refuses secrets shorter than 128 bits; every secret made here is 160.
    TOTP::new(Algorithm::SHA1, DIGITS, 0, PERIOD, secret.to_vec()).ok()
}

/// The time step (Unix seconds / 30) whose code `code` is, among the current one and one
/// either side at `now`; `None` when it is none of them. Compared in constant time.
pub fn step_of(secret: &[u8], code: &str, now: u64) -> Option<u64> {
    let t = totp(secret)?;
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = now / PERIOD;
    let mut found = None;
    for step in current.saturating_sub(SKEW)..=current + SKEW {
        let want = t.generate(step * PERIOD);
        // Every candidate is compared, whichever matches.
        if constant_time_eq(want.as_bytes(), code.as_bytes()) {
            found = Some(step);
        }
    }
    found
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The code of `secret` at Unix time `now` (for tests and the RADIUS benchmark's client).
pub fn code_at(secret: &[u8], now: u64) -> Option<String> {
    Some(totp(secret)?.generate(now))
}

/// Base32 (RFC 4648, no padding), as authenticator apps take secrets.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `otpauth://totp/ISSUER:ACCOUNT?…` URI of a secret (Google Authenticator's key URI
/// format, which every authenticator app reads).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}",
        percent(issuer),
        percent(account),
        base32(secret),
        percent(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 vectors (secret "12345678901234567890"), 6 digits.
    #[test]
    fn the_rfc_vectors() {
        let secret = b"12345678901234567890";
        for (t, code) in [(59u64, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")] {
            assert_eq!(code_at(secret, t).as_deref(), Some(code), "T={t}");
            assert_eq!(step_of(secret, code, t), Some(t / PERIOD));
        }
    }

    #[test]
    fn one_step_either_side_and_nothing_else() {
        let secret = [7u8; SECRET_BYTES];
        let now = 1_800_000_015;
        let step = now / PERIOD;
        let at = |s: u64| code_at(&secret, s * PERIOD).unwrap();
        // (the code of step, accepted as)
        let rows = [
            (step - 2, None),
            (step - 1, Some(step - 1)),
            (step, Some(step)),
            (step + 1, Some(step + 1)),
            (step + 2, None),
        ];
        for (s, want) in rows {
            assert_eq!(step_of(&secret, &at(s), now), want, "step {s}");
        }
        for bad in ["", "12345", "1234567", "12a456", "      "] {
            assert_eq!(step_of(&secret, bad, now), None, "{bad:?}");
        }
        assert_eq!(step_of(&secret, &format!(" {} ", at(step)), now), Some(step), "spaces around are ignored");
    }

    #[test]
    fn the_enrollment_uri() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI"); // RFC 4648 §10, unpadded
        assert_eq!(base32(b""), "");
        let uri = otpauth_uri("Tether", "ann@example.test", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/Tether:ann%40example.test?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Tether&algorithm=SHA1&digits=6&period=30"
        );
    }
}
