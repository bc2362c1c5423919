//! Password capture on a Samba domain controller (`"InstalledOn": "dc"`).
//!
//! A change of `pwdLastSet` on a user in scope means a new password. Its SHA-512 crypt hash
//! (`virtualCryptSHA512`, available when the DC was provisioned with `password hash
//! userPassword schemes = CryptSHA512`) is read locally through the DC's privileged ldapi
//! socket with `samba-tool user getpassword` and sent to tetherd, which verifies logins
//! against it and rehashes to argon2id at the next successful one. Hashes never cross the
//! network to AD and plaintext never exists. On Windows the same step is a password filter
//! DLL (`PasswordFilter` notification) handing the new password to the agent, which would
//! hash it before sending.
//!
//! Passwords set before the agent first ran are not captured (there is no hash to read for
//! them until the user changes the password), as the seeds describe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tether_core::wire::{CapturedPassword, Secret};

use crate::AgentError;

/// The privileged ldapi socket of the DC whose configuration is `smb_conf`.
pub fn privileged_socket(smb_conf: &Path) -> PathBuf {
    crate::smb_conf::SmbConf::read(smb_conf).private_dir.join("ldap_priv/ldapi")
}

fn urlencode_path(p: &Path) -> String {
    p.to_string_lossy()
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reads one user's `virtualCryptSHA512` (`{CRYPT}$6$…`), or `None` if it has none.
pub async fn read_hash(smb_conf: &Path, sam: &str) -> Result<Option<String>, String> {
    let url = format!("ldapi://{}", urlencode_path(&privileged_socket(smb_conf)));
    let out = tokio::process::Command::new("samba-tool")
        .args(["user", "getpassword", sam, "--attributes=virtualCryptSHA512", "-H", &url])
        .arg(format!("--configfile={}", smb_conf.display()))
        .output()
        .await
        .map_err(|e| format!("cannot run samba-tool: {e}"))?;
    if !out.status.success() {
        return Err(format!("samba-tool user getpassword {sam}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    // LDIF output: long values continue on lines that start with one space.
    let text = String::from_utf8_lossy(&out.stdout).replace("\n ", "");
    Ok(text.lines().find_map(|l| l.strip_prefix("virtualCryptSHA512: ")).map(str::to_string))
}

/// Compares `pwdLastSet` of the users in scope with the last seen values (kept in
/// `StateDir/passwords.json`) and returns the hashes of changed passwords. The first run
/// only records the baseline.
pub async fn capture(
    state_dir: &Path,
    smb_conf: &Path,
    users: &[(String, String, i64)],
) -> Result<Vec<CapturedPassword>, AgentError> {
    let path = state_dir.join("passwords.json");
    let first_run = !path.exists();
    let mut seen: BTreeMap<String, i64> =
        std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    let mut out = Vec::new();
    for (guid, sam, pwd_last_set) in users {
        let changed = seen.get(guid) != Some(pwd_last_set);
        if first_run || !changed || *pwd_last_set == 0 {
            seen.insert(guid.clone(), *pwd_last_set);
            continue;
        }
        match read_hash(smb_conf, sam).await {
            Ok(Some(hash)) => {
                out.push(CapturedPassword {
                    guid: guid.clone(),
                    hash: Secret(hash),
                    pwd_last_set: Some(*pwd_last_set),
                });
                seen.insert(guid.clone(), *pwd_last_set);
            }
            Ok(None) => {
                tracing::warn!(user = %sam, "no virtualCryptSHA512: provision the DC with `password hash userPassword schemes = CryptSHA512`");
                seen.insert(guid.clone(), *pwd_last_set);
            }
            // Not recorded as seen: retried next cycle.
            Err(e) => tracing::warn!(error = %e, "password capture failed"),
        }
    }
    crate::session::write_state(&path, &serde_json::to_vec(&seen).expect("serializes"))?;
    Ok(out)
}
