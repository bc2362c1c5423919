//! The stored revision of a document two writers may change at once (a user, a group, a
//! domain, an agent): the storage layer writes a copy back only while the revision it was
//! read at is still the stored one, so a change made meanwhile by another request, agent or
//! tetherd is never silently overwritten (optimistic concurrency).
//!
//! It travels with the document (read from the stored `_v`, never serialized), takes no part
//! in equality (a copy compares equal to what it was cloned from, whatever was saved since),
//! and a save moves it on in place, so the same copy can be saved twice in a row.

use std::sync::atomic::{AtomicI64, Ordering};

use serde::{Deserialize, Deserializer};

/// A stored revision; unknown (`None`) for a document not read from the store, which is
/// then written unconditionally.
#[derive(Debug)]
pub struct Revision(AtomicI64);

const UNKNOWN: i64 = -1;

impl Default for Revision {
    /// Unknown: a document built here, not read from the store.
    fn default() -> Self {
        Revision::new(None)
    }
}

impl Revision {
    pub fn new(v: Option<i64>) -> Self {
        Revision(AtomicI64::new(v.filter(|v| *v >= 0).unwrap_or(UNKNOWN)))
    }

    /// The revision this copy was read at (or last saved as).
    pub fn get(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|v| *v >= 0)
    }

    /// Once stored as revision `v` (a new document is stored as 0).
    pub fn set(&self, v: i64) {
        self.0.store(v.max(UNKNOWN), Ordering::Relaxed);
    }

    /// After a successful save: the stored revision moved on by one.
    pub fn advance(&self) {
        let _ = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| (v >= 0).then_some(v + 1));
    }
}

impl Clone for Revision {
    fn clone(&self) -> Self {
        Revision::new(self.get())
    }
}

impl PartialEq for Revision {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<'de> Deserialize<'de> for Revision {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<i64>::deserialize(d).map(Revision::new)
    }
}

#[cfg(test)]
mod tests {
    use super::Revision;

    #[test]
    fn advances_only_when_known_and_never_decides_equality() {
        let r = Revision::new(Some(3));
        r.advance();
        assert_eq!(r.get(), Some(4));
        let unknown = Revision::new(None);
        unknown.advance();
        assert_eq!(unknown.get(), None, "an unknown revision stays unknown");
        assert_eq!(r, unknown, "revisions take no part in equality");
        assert_eq!(Revision::default().get(), None);
        let v: Revision = serde_json::from_str("7").unwrap();
        assert_eq!((v.get(), v.clone().get()), (Some(7), Some(7)));
    }
}
