//! How the process hands memory back. Every password hash (argon2id, 19 MiB of working
//! memory) runs on one of tokio's blocking threads, and glibc gives each thread an arena of
//! its own; once a large block has been freed, glibc raises its mmap threshold and later
//! blocks of that size come from those arenas and stay there. Sixteen arenas each keeping a
//! hash's memory made an idle tetherd hold ~350 MB after a few hundred password changes.
//! Fixing the threshold keeps every block of 1 MiB or more mapped on its own, returned to
//! the system when freed.

/// Blocks at least this large are mapped apart and unmapped when freed.
const MMAP_THRESHOLD: i32 = 1 << 20;

/// Applies the policy above (glibc only; elsewhere the allocator's own policy stands).
/// Binaries call it first thing in `main`.
pub fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters, under glibc's own locks.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
