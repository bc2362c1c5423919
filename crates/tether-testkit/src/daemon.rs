//! Server processes started by a test (the real `tetherd` binary), stopped when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A process killed and reaped when dropped.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` (stdout piped, stderr discarded) and answers the URL of its first stdout
/// line, `listening on URL`, which `tetherd serve` prints before serving.
pub fn daemon(cmd: &mut Command) -> (Daemon, String) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("the binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout is piped")).read_line(&mut line).expect("stdout");
    let url =
        line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first stdout line: {line:?}")).to_string();
    (Daemon(child), url)
}
