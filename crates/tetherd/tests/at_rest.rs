//! What `tetherd serve` leaves on disk: a data directory only its user may enter, database
//! and key files only its user may read, and a refusal to use a directory everyone can read.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use tether_testkit::daemon;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_data_directory_is_private_and_a_readable_one_is_refused() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    // Made by hand with the usual umask, still empty: tetherd makes it private.
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (d, _) = daemon(
        Command::new(env!("CARGO_BIN_EXE_tetherd")).args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&dir),
    );
    drop(d);
    assert_eq!(mode(&dir), 0o700, "data directory");
    for f in ["tether.db", "secret.key"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    for f in ["tether.db-wal", "tether.db-shm"] {
        if dir.join(f).exists() {
            assert_eq!(mode(&dir.join(f)) & 0o077, 0, "{f}");
        }
    }
    let key = std::fs::read_to_string(dir.join("secret.key")).unwrap();
    assert_eq!(key.trim().len(), 64, "a 256-bit key in hex");

    // With the database in it, a directory everyone can read is refused.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tetherd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--data-dir") && err.contains("chmod 700"), "{err}");

    // A key file others can read is refused too, naming the flag.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key_file = parent.path().join("shared.key");
    std::fs::write(&key_file, key).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tetherd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .arg("--secret-key-file")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--secret-key-file") && err.contains("chmod 600"), "{err}");
}
