//! Secrets and their hashes: random ids and tokens, constant-time comparison, and the user
//! password hashes. Keys and tokens are random 256-bit values; only their SHA-256 is stored
//! (they carry full entropy, so a slow hash adds nothing and would cost every request).
//! User passwords are argon2id, computed off the async threads and at most one per core.

use sha2::{Digest, Sha256};

use crate::error::{ApiError, Code};

/// Random hex of `bytes` bytes from the OS.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source works");
    hex::encode(buf)
}

/// A new object id: 24 hex digits.
pub fn new_id() -> String {
    random_hex(12)
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Whether two secrets are equal, in time independent of where they differ (both are
/// hashed first, so lengths leak nothing either).
pub fn same_secret(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter().zip(y.iter()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0
}

/// Hashes a user password with argon2id (off the async threads: it is slow on purpose).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    let _permit = hashing_permit().await;
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::new(Code::Internal, format!("hashing failed: {e}")))
    })
    .await
    .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?
}

/// Password hashes computed at once: one per core. Each argon2id run takes 19 MiB and a
/// core's worth of time, so 500 parallel logins queue here instead of taking 10 GiB.
async fn hashing_permit() -> tokio::sync::SemaphorePermit<'static> {
    static HASHING: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let sem = HASHING.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
    });
    sem.acquire().await.expect("the semaphore is never closed")
}

/// Rounds of a captured SHA-512 crypt hash (`$6$rounds=N$…`) above which it is refused: AD
/// and Samba use 5,000 by default; a hash of a billion rounds would make each login check
/// take minutes of CPU.
pub const MAX_SHA512_ROUNDS: u32 = 100_000;

/// Whether a captured `$6$` hash may be stored: well formed, and at most
/// [`MAX_SHA512_ROUNDS`] rounds.
pub fn acceptable_crypt_hash(hash: &str) -> Result<(), String> {
    let crypt = hash.strip_prefix("{CRYPT}").unwrap_or(hash);
    let rest = crypt.strip_prefix("$6$").ok_or("not a SHA-512 crypt hash ($6$)")?;
    if let Some(r) = rest.strip_prefix("rounds=") {
        let n: u32 = r.split('$').next().and_then(|n| n.parse().ok()).ok_or("unreadable rounds")?;
        if n > MAX_SHA512_ROUNDS {
            return Err(format!("{n} rounds is more than {MAX_SHA512_ROUNDS}"));
        }
    }
    Ok(())
}

/// The same work as checking a real password, for a user who has none (or does not exist),
/// so that the time of an answer does not tell whether the username exists.
pub async fn check_no_password(password: String) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = match DUMMY.get() {
        Some(h) => h.clone(),
        None => {
            let h = hash_password("not a password of anyone".into()).await.unwrap_or_default();
            DUMMY.get_or_init(|| h).clone()
        }
    };
    let _ = check_password(password, hash).await;
}

/// Verifies a password against a stored hash: argon2id (Tether's own), or a SHA-512 crypt
/// hash (`$6$…`) captured from AD on a domain controller. `Ok(true)` means the password is
/// right and the hash should be replaced by an argon2id one.
pub async fn verify_password(password: String, hash: String) -> bool {
    check_password(password, hash).await.is_some()
}

/// Like [`verify_password`]; `Some(rehash)` when it matches, where `rehash` says the stored
/// hash is of a captured kind that should be upgraded to argon2id now.
pub async fn check_password(password: String, hash: String) -> Option<bool> {
    let _permit = hashing_permit().await;
    tokio::task::spawn_blocking(move || {
        if let Some(crypt) = hash.strip_prefix("{CRYPT}").or(Some(hash.as_str())).filter(|h| h.starts_with("$6$")) {
            // Stored before the bound existed, or written around it: never run it.
            acceptable_crypt_hash(crypt).ok()?;
            return sha_crypt::sha512_check(&password, crypt).is_ok().then_some(true);
        }
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let parsed = PasswordHash::new(&hash).ok()?;
        argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok().then_some(false)
    })
    .await
    .ok()
    .flatten()
}
