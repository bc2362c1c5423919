//! The password the sync agent gives an AD account it creates for a Tether user who has no
//! password yet (the user's next login to Tether sets the real one in AD).
//!
//! Fifteen characters drawn from 74 (~93 bits): more than any guessing or hash-cracking
//! reaches, and the longest that keeps every round of Samba's SHA-512 `crypt` (the
//! `password hash userPassword schemes` a password-capturing Samba DC computes, 5,000 rounds)
//! in one hash block. The earlier 40-character password cost each round a second block:
//! ~4 % of the DC's CPU per user created (measured side by side with `ldapmodify` on the
//! benchmark's 10,000-user DC, docs/performance.md). AD's complexity rule asks for three of
//! four kinds of character, not the whole sAMAccountName, and no part of the display name:
//! the password holds all four kinds, and one that contains the account name or a part of
//! the given name or surname is drawn again (stricter than AD, which sees no display name
//! here).

/// Upper case, lower case, digits and symbols that need no quoting anywhere.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%+-.:=?@_~";
/// The length (see the module doc).
pub const LENGTH: usize = 15;
/// Random bytes from this one up are dropped, so each character is drawn uniformly: the
/// largest multiple of the alphabet's size that a byte holds.
const LIMIT: u8 = (256 / ALPHABET.len() * ALPHABET.len()) as u8;

/// A random password for the account `sam` (its sAMAccountName) of `names` (given name,
/// surname).
pub fn password(sam: &str, names: &[&str]) -> String {
    password_from(sam, names, |b| getrandom::fill(b).expect("OS randomness"))
}

/// [`password`] from the random bytes `fill` gives (a parameter so the rules are tested).
pub fn password_from(sam: &str, names: &[&str], mut fill: impl FnMut(&mut [u8])) -> String {
    let mut tokens = name_tokens(names);
    if sam.chars().count() >= 3 {
        tokens.push(sam.to_lowercase());
    }
    loop {
        let mut out = String::with_capacity(LENGTH);
        while out.len() < LENGTH {
            let mut b = [0u8; 32];
            fill(&mut b);
            out.extend(
                b.iter()
                    .filter(|&&x| x < LIMIT)
                    .map(|&x| ALPHABET[x as usize % ALPHABET.len()] as char)
                    .take(LENGTH - out.len()),
            );
        }
        let kinds = [
            out.bytes().any(|c| c.is_ascii_uppercase()),
            out.bytes().any(|c| c.is_ascii_lowercase()),
            out.bytes().any(|c| c.is_ascii_digit()),
            out.bytes().any(|c| !c.is_ascii_alphanumeric()),
        ];
        let lower = out.to_lowercase();
        if kinds.iter().all(|k| *k) && !tokens.iter().any(|t| lower.contains(t.as_str())) {
            return out;
        }
    }
}

/// The parts of names AD's complexity rule checks (of the display name): each name split at
/// `,.-_ #` and tab, the parts of three characters or more, lower-cased.
fn name_tokens(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .flat_map(|n| n.split([',', '.', '-', '_', ' ', '#', '\t']))
        .filter(|t| t.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifteen_characters_of_every_kind_and_all_different() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let p = password("jdoe", &["Jane", "Doe"]);
            assert_eq!(p.len(), LENGTH, "{p}");
            assert!(p.bytes().all(|c| ALPHABET.contains(&c)), "{p}");
            assert!(p.bytes().any(|c| c.is_ascii_uppercase()), "{p}");
            assert!(p.bytes().any(|c| c.is_ascii_lowercase()), "{p}");
            assert!(p.bytes().any(|c| c.is_ascii_digit()), "{p}");
            assert!(p.bytes().any(|c| !c.is_ascii_alphanumeric()), "{p}");
            assert!(seen.insert(p));
        }
    }

    #[test]
    fn a_draw_containing_a_name_or_lacking_a_kind_is_drawn_again() {
        // In turn: a draw that spells the surname (`Abc`), one holding the whole account name
        // `u-1` (split, it has no part of three characters), one with no digit; the fourth
        // is kept.
        let draws: Vec<&[u8]> = vec![b"xAbc1!xxxxxxxxx", b"xU-1!Zxxxxxxxxx", b"Qwerty!Qwertyxx", b"Zq7!mmmmmmmmmmm"];
        let mut i = 0;
        let p = password_from("u-1", &["Ann", "Abc"], |b| {
            let d = draws[i.min(draws.len() - 1)];
            i += 1;
            b.fill(0);
            for (o, c) in b.iter_mut().zip(d) {
                *o = ALPHABET.iter().position(|a| a == c).unwrap() as u8;
            }
        });
        assert_eq!(p, "Zq7!mmmmmmmmmmm");
        assert_eq!(i, 4);
        assert_eq!(name_tokens(&["u-1", "Ann", "Abc"]), ["ann", "abc"]);
    }
}
