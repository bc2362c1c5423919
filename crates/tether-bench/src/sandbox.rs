//! The benchmark's own DC: provisioned in `target/bench-ad` on 127.0.0.77 and seeded once
//! per size; the stopped, seeded directory is kept as `target/bench-ad-template-N` and
//! copied for later runs.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use tether_testkit::{workspace_root, Dc};

const IP: &str = "127.0.0.77";

pub(crate) fn sandbox(args: &[&str], dir: &Path) -> Result<String> {
    let out = Command::new("bash")
        .arg(workspace_root().join("scripts/ad-sandbox.sh"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()?;
    if !out.status.success() {
        bail!("ad-sandbox.sh {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A seeded DC of `users` users, from the template when one exists.
pub(crate) fn dc(users: usize) -> Result<Dc> {
    let target = workspace_root().join("target");
    let dir = target.join("bench-ad");
    let template = target.join(format!("bench-ad-template-{users}"));
    let _ = sandbox(&["down"], &dir);
    let _ = std::fs::remove_dir_all(&dir);
    if template.exists() {
        let st = Command::new("cp").arg("-a").arg(&template).arg(&dir).status()?;
        if !st.success() {
            bail!("cannot copy the template");
        }
        sandbox(&["up", "--ip", IP], &dir)?;
    } else {
        eprintln!("seeding {users} users (once per size; ~45 users/s)…");
        sandbox(&["up", "--ip", IP], &dir)?;
        sandbox(&["seed", "--users", &users.to_string()], &dir)?;
        sandbox(&["down"], &dir)?;
        let st = Command::new("cp").arg("-a").arg(&dir).arg(&template).status()?;
        if !st.success() {
            bail!("cannot save the template");
        }
        sandbox(&["up", "--ip", IP], &dir)?;
    }
    let env = sandbox(&["env"], &dir)?;
    let get = |k: &str| -> Result<String> {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("export {k}=")))
            .map(|v| v.trim_matches('\'').to_string())
            .with_context(|| format!("no {k}"))
    };
    Ok(Dc {
        dir,
        url: get("TETHER_AD_URL")?,
        host: get("TETHER_AD_HOST")?,
        realm: get("TETHER_AD_REALM")?,
        base_dn: get("TETHER_AD_BASE_DN")?,
        admin_dn: get("TETHER_AD_ADMIN_DN")?,
        admin_password: get("TETHER_AD_ADMIN_PASSWORD")?,
        ca_file: get("TETHER_AD_CA_FILE")?,
        import_dn: get("TETHER_AD_IMPORT_DN")?,
        import_password: get("TETHER_AD_IMPORT_PASSWORD")?,
        group_dn: get("TETHER_AD_GROUP_DN")?,
        seed_prefix: get("TETHER_AD_SEED_PREFIX")?,
        seed_password: get("TETHER_AD_SEED_PASSWORD")?,
    })
}
