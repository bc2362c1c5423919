//! tetherd's own key, for the few secrets it must keep readable: a new password waiting in a
//! domain's change feed until its sync agent writes it to AD.
//!
//! Everything else secret is hashed (API keys, agent tokens, connect keys, passwords). A feed
//! password cannot be hashed (AD needs it in clear), so it is sealed with ChaCha20-Poly1305
//! under a 256-bit key that lives outside the database: a copy of the database (a backup, a
//! stolen disk image of PostgreSQL) does not reveal it. The entry's object id is the
//! associated data, so a sealed password cannot be moved to another user's entry.
//!
//! The key is a file of 64 hex digits, mode 0600: `secret.key` in the data directory
//! (created on first start), or `--secret-key-file` (several tetherd on one PostgreSQL
//! database share one).

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// Sealed values start with this (the format may change; the prefix says which one).
const V1: &str = "v1:";

pub struct SecretKey(LessSafeKey);

/// Whether a stored value was sealed (else it predates sealing).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(V1)
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    fn from_bytes(bytes: &[u8; 32]) -> Self {
        SecretKey(LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, bytes).expect("a 32-byte key")))
    }

    /// A key that lives only in memory (tests, and servers that keep no feed passwords).
    pub fn ephemeral() -> Self {
        let mut b = [0u8; 32];
        SystemRandom::new().fill(&mut b).expect("the system's random source");
        Self::from_bytes(&b)
    }

    /// Reads the key file, or creates it (0600) when `create` and it does not exist. Refuses
    /// a file that other users may read or write.
    pub fn load_or_create(path: &Path, create: bool) -> Result<Self, String> {
        match std::fs::metadata(path) {
            Ok(meta) => {
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(format!(
                        "{} can be read by other users of this machine; run `chmod 600 {}`",
                        path.display(),
                        path.display()
                    ));
                }
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let bytes = hex::decode(text.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
                let bytes =
                    bytes.ok_or_else(|| format!("{}: expected 64 hex digits (a 256-bit key)", path.display()))?;
                Ok(Self::from_bytes(&bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut b = [0u8; 32];
                SystemRandom::new().fill(&mut b).map_err(|_| "no system random source".to_string())?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                writeln!(f, "{}", hex::encode(b))
                    .and_then(|_| f.sync_all())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                tracing::info!(path = %path.display(), "created the secret key");
                Ok(Self::from_bytes(&b))
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Seals `plain` for the object `context` (a user id).
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).expect("the system's random source");
        let mut buf = plain.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut buf)
            .expect("sealing cannot fail for this size");
        format!("{V1}{}{}", hex::encode(nonce), hex::encode(buf))
    }

    /// Opens what [`SecretKey::seal`] made for the same `context`; `None` when it was sealed
    /// under another key, for another object, or altered.
    pub fn open(&self, sealed: &str, context: &str) -> Option<String> {
        let raw = hex::decode(sealed.strip_prefix(V1)?).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = ct.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf).ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_object() {
        let k = SecretKey::ephemeral();
        let sealed = k.seal("N3w-Passw0rd!", "user1");
        assert!(sealed.starts_with("v1:") && !sealed.contains("N3w"));
        assert_eq!(k.open(&sealed, "user1").as_deref(), Some("N3w-Passw0rd!"));
        assert_eq!(k.open(&sealed, "user2"), None, "moved to another user's entry");
        assert_eq!(SecretKey::ephemeral().open(&sealed, "user1"), None, "another key");
        let mut altered = sealed.clone();
        altered.replace_range(sealed.len() - 2.., "00");
        assert_eq!(k.open(&altered, "user1"), None);
        assert_ne!(k.seal("same", "u"), k.seal("same", "u"), "a fresh nonce each time");
        assert_eq!(k.open("N3w-Passw0rd!", "user1"), None, "a clear value is not taken as sealed");
    }

    #[test]
    fn the_key_file_is_created_private_and_refused_when_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let a = SecretKey::load_or_create(&path, true).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let b = SecretKey::load_or_create(&path, false).unwrap();
        assert_eq!(b.open(&a.seal("x", "u"), "u").as_deref(), Some("x"), "the same key is read back");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(SecretKey::load_or_create(&path, false).unwrap_err().contains("chmod 600"));
        assert!(SecretKey::load_or_create(&dir.path().join("absent"), false).is_err());
        std::fs::write(dir.path().join("short"), "abcd").unwrap();
        std::fs::set_permissions(dir.path().join("short"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(SecretKey::load_or_create(&dir.path().join("short"), false).unwrap_err().contains("64 hex digits"));
    }
}
