//! How long to wait before trying AD or tetherd again.

use std::time::Duration;

/// Capped exponential backoff with jitter for reconnecting to AD or the server: the cap
/// doubles from 1 s to 30 s and the wait is drawn between half the cap and the cap, so
/// agents that lost AD together do not all come back in the same instant.
pub fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let cap = (500u64 << attempt.clamp(1, 6)).min(30_000);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    Duration::from_millis(cap / 2 + h.finish() % (cap / 2 + 1))
}
