//! The system under test in processes of their own (this binary again, with an internal
//! subcommand), so that each one's memory is measured apart, and what /proc says of them.

use std::process::Command;

use anyhow::{Context, Result};

/// A part of the system under test in a process of its own (this binary, another
/// subcommand), so its memory is measured apart; killed when dropped.
pub(crate) struct Part {
    child: std::process::Child,
}

impl Part {
    pub(crate) fn spawn(args: &[&str]) -> Result<Part> {
        // tetherd in the part serves HTTPS with the run's test CA, which this process trusts.
        let child = Command::new(std::env::current_exe()?)
            .args(args)
            .env(tether_testkit::PKI_DIR_VAR, &tether_testkit::pki().dir)
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        Ok(Part { child })
    }

    /// The first line the process prints.
    pub(crate) fn first_line(&mut self) -> Result<String> {
        use std::io::BufRead;
        let out = self.child.stdout.as_mut().context("piped stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line)?;
        Ok(line.trim().to_string())
    }

    /// CPU time (user + system) the process has used so far (10 ms ticks).
    pub(crate) fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Peak resident memory so far (VmHWM), MB.
    pub(crate) fn peak_rss_mb(&self) -> f64 {
        rss_of(&format!("/proc/{}/status", self.child.id()))
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) this process has used, from /proc (10 ms ticks).
pub(crate) fn cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/self/stat")
}

/// CPU time (user + system) used so far by every running `samba` process (the DC's
/// LDAP workers among them), whatever titles Samba gave them.
pub(crate) fn samba_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
    dir.flatten()
        .filter(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|x| x.file_name().is_some_and(|n| n == "samba")))
        .map(|e| cpu_seconds_of(&e.path().join("stat").to_string_lossy()))
        .sum()
}

fn cpu_seconds_of(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command's closing parenthesis: state is the 3rd field, utime the 14th.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<f64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // `rest` starts at the state (not a number), so utime and stime are at 10 and 11 here.
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) / 100.0
}

pub(crate) fn peak_rss_mb() -> f64 {
    rss_of("/proc/self/status")
}

/// Peak resident memory of another process (a server the benchmark started), MB to 0.1.
pub(crate) fn peak_rss_mb_of(pid: u32) -> f64 {
    (rss_of(&format!("/proc/{pid}/status")) * 10.0).round() / 10.0
}

fn rss_of(status: &str) -> f64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
            })
        })
        .flatten()
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
