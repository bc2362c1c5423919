//! Whether the import agent's main loop may rely on the watch of the DC's database
//! (`dc_watch.rs`): only while it is armed, the cycles read the DC it watches, and no write
//! went unheard. A watch relied on wrongly would leave changes to the safety net (90 s by
//! default) without a word; this falls back to the rootDSE tick instead, and says so.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// What the watch, the import cycle and the main loop share: whether the watch is armed,
/// the events it saw, and what the cycles read, by which the main loop relies on the watch
/// only while it has heard every write. Time-free: each call says what happened.
#[derive(Debug, Default)]
pub struct Watched {
    armed: AtomicBool,
    /// Events seen since the start; arming counts as one (what was written before it was
    /// not heard, so a cycle across it proves nothing).
    events: AtomicU64,
    /// The watched DC's `dsServiceName`.
    dc: Mutex<Option<String>>,
    /// The last cycle read another DC than the watched one.
    elsewhere: AtomicBool,
    /// A cycle found a write the watch did not hear; cleared when armed again.
    deaf: AtomicBool,
    cycles: Mutex<Cycles>,
}

/// The readings of the last two cycles: (USN read, events counted when that cycle began).
#[derive(Debug, Default)]
struct Cycles {
    began: u64,
    read: Option<u64>,
    last: Option<(u64, u64)>,
}

impl Watched {
    /// Whether the main loop may rely on the watch: armed, the last cycle read the watched
    /// DC, and no write went unheard.
    pub fn relied_on(&self) -> bool {
        self.armed.load(Ordering::SeqCst) && !self.elsewhere.load(Ordering::SeqCst) && !self.deaf.load(Ordering::SeqCst)
    }

    /// The watch of `dc`'s database is armed.
    pub fn arm(&self, dc: &str) {
        *self.dc.lock().expect("watch lock") = Some(dc.to_string());
        self.deaf.store(false, Ordering::SeqCst);
        self.heard();
        self.armed.store(true, Ordering::SeqCst);
    }

    /// The watch is lost.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    /// An event of the watched folder.
    pub fn heard(&self) {
        self.events.fetch_add(1, Ordering::SeqCst);
    }

    /// A cycle begins.
    pub fn cycle_begins(&self) {
        let mut c = self.cycles.lock().expect("watch lock");
        c.began = self.events.load(Ordering::SeqCst);
        c.read = None;
    }

    /// The cycle read rootDSE: `highestCommittedUSN` `usn`, of the DC `dc` when it read that
    /// too. Another DC's USNs say nothing of this one's: the comparison starts again.
    pub fn cycle_read(&self, dc: Option<&str>, usn: u64) {
        let mut c = self.cycles.lock().expect("watch lock");
        if let Some(dc) = dc {
            let other = self.dc.lock().expect("watch lock").as_deref().is_some_and(|w| w != dc);
            if other != self.elsewhere.swap(other, Ordering::SeqCst) {
                c.last = None;
            }
        }
        c.read = Some(usn);
    }

    /// The cycle ended (applied or not). `true` when it found the USN moved since the
    /// cycle before though no event came since that one began: the watch missed a write,
    /// and is no longer relied on.
    pub fn cycle_ends(&self) -> bool {
        let mut c = self.cycles.lock().expect("watch lock");
        let Some(usn) = c.read.take() else { return false };
        let unheard =
            matches!(c.last, Some((before, began)) if usn > before && self.events.load(Ordering::SeqCst) == began);
        c.last = Some((usn, c.began));
        let armed = self.armed.load(Ordering::SeqCst);
        armed && unheard && !self.deaf.swap(true, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One cycle: the events seen before it began, whether it read the DC (`Some`) and the
    /// USN it read; the answer of [`Watched::cycle_ends`].
    fn cycle(w: &Watched, events_before: u64, dc: Option<&str>, usn: u64) -> bool {
        for _ in 0..events_before {
            w.heard();
        }
        w.cycle_begins();
        w.cycle_read(dc, usn);
        w.cycle_ends()
    }

    #[test]
    fn relied_on_only_while_every_write_was_heard() {
        let w = Watched::default();
        assert!(!w.relied_on(), "not armed");
        w.arm("DC1");
        assert!(w.relied_on());
        // (events before the cycle, DC read, USN read, deaf from then on)
        for (events, dc, usn, deaf) in [
            (0, Some("DC1"), 100, false), // the first reading: nothing to compare with
            (0, None, 100, false),        // idle: the USN did not move
            (1, Some("DC1"), 104, false), // a write, heard
            (0, None, 104, false),
            (0, Some("DC1"), 109, true),  // moved, and no event since the cycle before began
            (0, Some("DC1"), 112, false), // said once
        ] {
            assert_eq!(cycle(&w, events, dc, usn), deaf, "{events} {dc:?} {usn}");
        }
        assert!(!w.relied_on(), "a write went unheard");
        w.arm("DC1");
        assert!(w.relied_on(), "armed again");
        // Arming counts as an event: a cycle across it proves nothing.
        assert!(!cycle(&w, 0, Some("DC1"), 130));
    }

    #[test]
    fn a_cycle_on_another_dc_puts_the_loop_back_on_its_tick() {
        let w = Watched::default();
        w.arm("DC1");
        assert!(!cycle(&w, 0, Some("DC1"), 100));
        // Another DC's USNs are not compared with this one's.
        assert!(!cycle(&w, 0, Some("DC2"), 5_000));
        assert!(!w.relied_on(), "reading another DC");
        assert!(!cycle(&w, 0, Some("DC1"), 120), "back: the comparison starts again");
        assert!(w.relied_on());
    }

    #[test]
    fn a_write_made_during_a_cycle_is_counted_for_the_next() {
        let w = Watched::default();
        w.arm("DC1");
        assert!(!cycle(&w, 0, Some("DC1"), 100));
        // The write lands after this cycle read the USN, its event while it runs.
        w.cycle_begins();
        w.cycle_read(None, 100);
        w.heard();
        assert!(!w.cycle_ends());
        assert!(!cycle(&w, 0, Some("DC1"), 101), "heard during the cycle before");
    }
}
